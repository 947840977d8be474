//! The text measures the filters share: SQuAD-normalised words (from `qa-metrics`, so that a
//! filter and the metric agree on what "the same answer" means), n-grams, and content words.

use std::collections::HashSet;

use qa_metrics::squad::normalize_answer;

/// Words of `text` after SQuAD normalisation: lower-cased, ASCII punctuation and the articles
/// `a`, `an`, `the` removed, split on whitespace.
pub fn normalized_words(text: &str) -> Vec<String> {
    normalize_answer(text)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whitespace-separated tokens of the raw text: what the length limits count.
pub fn token_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// English function words, question words included: what a content word is not. (`a`, `an`
/// and `the` never reach this list: normalisation removes them.)
pub const STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "many",
    "much",
    "name",
    "named",
    "called",
    "kind",
    "type",
    "one",
];

/// The normalised words of `text` that are not stop-words.
pub fn content_words(text: &str) -> HashSet<String> {
    normalized_words(text)
        .into_iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// The share of `candidate`'s word n-grams that also occur in `reference`, both normalised.
///
/// `n` falls back to the length of the shorter text when either has fewer than `n` words (so
/// two short questions are still compared, on their longest common n). Each n-gram of the
/// candidate counts once per occurrence; the result is 0 when either text has no words.
///
/// ```
/// use qa_filters::text::ngram_overlap;
/// let seed = "who won super bowl 50 in santa clara";
/// assert_eq!(ngram_overlap(seed, seed, 8), 1.0);
/// // 3 of the candidate's 6 trigrams ("who won super", "won super bowl", "super bowl 50").
/// assert_eq!(ngram_overlap("who won super bowl 50 at levi stadium", seed, 3), 0.5);
/// ```
pub fn ngram_overlap(candidate: &str, reference: &str, n: usize) -> f64 {
    let (candidate, reference) = (normalized_words(candidate), normalized_words(reference));
    let n = n.min(candidate.len()).min(reference.len());
    if n == 0 {
        return 0.0;
    }
    let seen: HashSet<&[String]> = reference.windows(n).collect();
    let grams = candidate.windows(n);
    let total = grams.len();
    let shared = grams.filter(|gram| seen.contains(gram)).count();
    shared as f64 / total as f64
}

/// Whether the normalised words of `needle` occur as a contiguous run in those of `haystack`
/// (so "Denver" is in "the Denver Broncos" but "Den" is not).
pub fn contains_words(haystack: &str, needle: &str) -> bool {
    let needle = normalize_answer(needle);
    !needle.is_empty()
        && format!(" {} ", normalize_answer(haystack)).contains(&format!(" {needle} "))
}

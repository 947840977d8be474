//! SQuAD v1.1 answer normalisation, Exact Match and F1, with the official evaluation script's
//! semantics (`evaluate-v1.1.py`), and ROUGE-L over the same normalised tokens.
//!
//! Normalisation, in the official order: lower-case; remove the ASCII punctuation characters of
//! Python's `string.punctuation` (only those: `–` or `“` stay); remove the whole words `a`, `an`
//! and `the`, where "whole" follows Python's `\b` (a word character is a Unicode letter or number,
//! or `_`); collapse whitespace (Python's `str.split()`, which also splits on U+001C–U+001F).

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};

/// Python's `string.punctuation`.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A word character for Python's `re` `\b`: `str.isalnum()` (letters and numbers) or `_`.
fn is_word_char(c: char) -> bool {
    use GeneralCategory::*;
    c == '_'
        || matches!(
            get_general_category(c),
            UppercaseLetter
                | LowercaseLetter
                | TitlecaseLetter
                | ModifierLetter
                | OtherLetter
                | DecimalNumber
                | LetterNumber
                | OtherNumber
        )
}

/// Whitespace for Python's `str.split()`: Unicode White_Space plus the four ASCII separators.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Normalises an answer exactly as the official SQuAD v1.1 script does.
///
/// ```
/// use qa_metrics::squad::normalize_answer;
/// assert_eq!(normalize_answer("The  Theater's  “Best”!"), "theaters “best”");
/// ```
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    let chars: Vec<char> = lowered
        .chars()
        .filter(|c| !PUNCTUATION.contains(*c))
        .collect();
    // Articles become a space (the script's `re.sub(r'\b(a|an|the)\b', ' ', text)`).
    let mut without_articles = String::with_capacity(lowered.len());
    let mut i = 0;
    while i < chars.len() {
        let before_is_word = i > 0 && is_word_char(chars[i - 1]);
        let article_len = if before_is_word {
            0
        } else {
            ["the", "an", "a"]
                .iter()
                .map(|article| article.chars().collect::<Vec<_>>())
                .find(|article| {
                    chars[i..].starts_with(article)
                        && chars
                            .get(i + article.len())
                            .is_none_or(|&next| !is_word_char(next))
                })
                .map_or(0, |article| article.len())
        };
        if article_len > 0 {
            without_articles.push(' ');
            i += article_len;
        } else {
            without_articles.push(chars[i]);
            i += 1;
        }
    }
    without_articles
        .split(is_python_space)
        .filter(|token| !token.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whitespace tokens of a normalised answer.
fn tokens(normalized: &str) -> Vec<&str> {
    normalized.split(' ').filter(|t| !t.is_empty()).collect()
}

/// Exact Match of one prediction against one gold answer: 1.0 when their normalised forms are
/// equal, else 0.0.
///
/// ```
/// assert_eq!(qa_metrics::squad::exact_match("the Denver Broncos", "Denver Broncos!"), 1.0);
/// ```
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(gold),
    ))
}

/// Token F1 of one prediction against one gold answer, with multiset overlap. As in the
/// official v1.1 script, it is 0.0 whenever nothing overlaps, including when both are empty.
///
/// ```
/// let f1 = qa_metrics::squad::f1("Denver Broncos", "the Broncos");
/// assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
/// ```
pub fn f1(prediction: &str, gold: &str) -> f64 {
    f1_tokens(
        &tokens(&normalize_answer(prediction)),
        &tokens(&normalize_answer(gold)),
    )
}

fn f1_tokens(prediction: &[&str], gold: &[&str]) -> f64 {
    let mut gold_counts: HashMap<&str, usize> = HashMap::with_capacity(gold.len());
    for token in gold {
        *gold_counts.entry(token).or_default() += 1;
    }
    let mut same = 0usize;
    for token in prediction {
        if let Some(count) = gold_counts.get_mut(token)
            && *count > 0
        {
            *count -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / prediction.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// ROUGE-L F-measure (β = 1) of one prediction against one gold answer: the longest common
/// subsequence of their normalised tokens over both lengths. 0.0 when either is empty.
///
/// ```
/// let r = qa_metrics::squad::rouge_l("in the city of Paris", "Paris city");
/// // tokens: [in, city, of, paris] vs [paris, city]; LCS = 1
/// assert!((r - 2.0 * 0.25 * 0.5 / 0.75).abs() < 1e-12);
/// ```
pub fn rouge_l(prediction: &str, gold: &str) -> f64 {
    rouge_l_tokens(
        &tokens(&normalize_answer(prediction)),
        &tokens(&normalize_answer(gold)),
    )
}

fn rouge_l_tokens(prediction: &[&str], gold: &[&str]) -> f64 {
    if prediction.is_empty() || gold.is_empty() {
        return 0.0;
    }
    // One row of the LCS table at a time.
    let mut previous = vec![0usize; gold.len() + 1];
    let mut current = vec![0usize; gold.len() + 1];
    for p in prediction {
        for (j, g) in gold.iter().enumerate() {
            current[j + 1] = if p == g {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let lcs = previous[gold.len()];
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / prediction.len() as f64;
    let recall = lcs as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// The three scores of one question, each the maximum over its gold answers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuestionScores {
    /// Exact Match, 0.0 or 1.0.
    pub exact_match: f64,
    /// Token F1 in [0, 1].
    pub f1: f64,
    /// ROUGE-L F-measure in [0, 1].
    pub rouge_l: f64,
}

impl QuestionScores {
    /// The scores of a question that received no prediction.
    pub const MISSING: QuestionScores = QuestionScores {
        exact_match: 0.0,
        f1: 0.0,
        rouge_l: 0.0,
    };
}

/// Scores one prediction against all gold answers of its question (each metric its maximum over
/// the golds, as the official script does). No gold answers give zero.
///
/// ```
/// let s = qa_metrics::squad::score_question("Broncos", &["Denver Broncos", "Broncos"]);
/// assert_eq!((s.exact_match, s.f1), (1.0, 1.0));
/// ```
pub fn score_question<S: AsRef<str>>(prediction: &str, golds: &[S]) -> QuestionScores {
    let prediction_norm = normalize_answer(prediction);
    let prediction_tokens = tokens(&prediction_norm);
    let mut best = QuestionScores::MISSING;
    for gold in golds {
        let gold_norm = normalize_answer(gold.as_ref());
        let gold_tokens = tokens(&gold_norm);
        best.exact_match = best
            .exact_match
            .max(f64::from(u8::from(prediction_norm == gold_norm)));
        best.f1 = best.f1.max(f1_tokens(&prediction_tokens, &gold_tokens));
        best.rouge_l = best
            .rouge_l
            .max(rouge_l_tokens(&prediction_tokens, &gold_tokens));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_inside_words_is_removed_not_split() {
        assert_eq!(normalize_answer("U.S.-based co-op's"), "usbased coops");
        assert_eq!(normalize_answer("snake_case"), "snakecase");
    }

    #[test]
    fn unicode_punctuation_is_kept() {
        assert_eq!(normalize_answer("1990–1995"), "1990–1995");
        assert_eq!(normalize_answer("“Quoted”"), "“quoted”");
        assert_eq!(exact_match("“Quoted”", "Quoted"), 0.0);
    }

    #[test]
    fn articles_only_as_whole_words() {
        assert_eq!(normalize_answer("the theater"), "theater");
        assert_eq!(normalize_answer("Anthem of a Nation"), "anthem of nation");
        assert_eq!(normalize_answer("an apple, the end"), "apple end");
        // Punctuation is removed first, so "the-end" becomes "theend", which keeps "the".
        assert_eq!(normalize_answer("the-end"), "theend");
        // A letter with a diacritic is a word character: "théa" is no article.
        assert_eq!(normalize_answer("théa a"), "théa");
        // Digits are word characters too, and so are other numerals (Python's isalnum).
        assert_eq!(normalize_answer("a1 the½ a"), "a1 the½");
        // Unicode punctuation is no word character: the article next to it goes.
        assert_eq!(normalize_answer("“the”"), "“ ”");
    }

    #[test]
    fn whitespace_collapses_like_python_split() {
        assert_eq!(
            normalize_answer(" Two\t\nwords\u{a0}here\u{1f}too "),
            "two words here too"
        );
        // A zero-width space is neither whitespace nor a word character for Python: it stays,
        // and "a" before it is a whole word.
        assert_eq!(normalize_answer("a\u{200b}b"), "\u{200b}b");
        assert_eq!(normalize_answer("x\u{200b}b"), "x\u{200b}b");
    }

    #[test]
    fn empty_prediction_and_empty_gold() {
        assert_eq!(exact_match("", "Denver"), 0.0);
        assert_eq!(f1("", "Denver"), 0.0);
        // Both empty after normalisation: equal strings (EM 1) but no overlapping token (F1 0),
        // exactly as evaluate-v1.1.py scores them.
        assert_eq!(exact_match("the", "a"), 1.0);
        assert_eq!(f1("the", "a"), 0.0);
        assert_eq!(rouge_l("the", "a"), 0.0);
    }

    #[test]
    fn several_golds_take_the_maximum() {
        let s = score_question("Broncos", &["Denver Broncos", "the Broncos", "Carolina"]);
        assert_eq!(s.exact_match, 1.0);
        assert_eq!(s.f1, 1.0);
        let s = score_question("Denver team", &["Denver Broncos", "Broncos"]);
        assert_eq!(s.exact_match, 0.0);
        assert!((s.f1 - 0.5).abs() < 1e-12);
        let none: [&str; 0] = [];
        assert_eq!(score_question("x", &none), QuestionScores::MISSING);
    }

    #[test]
    fn repeated_tokens_count_as_a_multiset() {
        // Prediction "a b b b", gold "b b c": overlap is min(3, 2) = 2 tokens of b.
        let f = f1("x b b b", "b b c");
        let (p, r) = (2.0 / 4.0, 2.0 / 3.0);
        assert!((f - 2.0 * p * r / (p + r)).abs() < 1e-12);
        // ROUGE-L on the same: LCS is "b b".
        assert!((rouge_l("x b b b", "b b c") - 2.0 * p * r / (p + r)).abs() < 1e-12);
        // Order matters for ROUGE-L but not for F1.
        assert_eq!(f1("c b", "b c"), 1.0);
        assert!((rouge_l("c b", "b c") - 0.5).abs() < 1e-12);
    }
}

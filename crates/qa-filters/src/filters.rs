//! The filters, one small type each, with their thresholds as fields (the same names as in the
//! `filters:` config section). `docs/filters.md` defines each measure precisely.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::text::{contains_words, content_words, ngram_overlap, normalized_words, token_count};
use crate::{Candidate, Filter, Verdict};

type Outcome = std::result::Result<(), Verdict>;

/// The context is not empty (nor only whitespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonEmptyContext {}

impl Filter for NonEmptyContext {
    fn name(&self) -> &'static str {
        "non_empty_context"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        if candidate.record.context.trim().is_empty() {
            return Err(Verdict::reject("context", "the context is empty"));
        }
        Ok(())
    }
}

/// Every answer has between `min_tokens` and `max_tokens` whitespace tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerLength {
    /// Fewest tokens (default 1: no empty answers).
    pub min_tokens: usize,
    /// Most tokens (default 200).
    pub max_tokens: usize,
}

impl Default for AnswerLength {
    fn default() -> Self {
        AnswerLength {
            min_tokens: 1,
            max_tokens: 200,
        }
    }
}

impl Filter for AnswerLength {
    fn name(&self) -> &'static str {
        "answer_length"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        for (index, answer) in candidate.record.answers.iter().enumerate() {
            let tokens = token_count(answer);
            if !(self.min_tokens..=self.max_tokens).contains(&tokens) {
                return Err(Verdict::reject(
                    "answers",
                    format!(
                        "answer {index} has {tokens} tokens, outside {}..={}",
                        self.min_tokens, self.max_tokens
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The question has at least `min_tokens` whitespace tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuestionLength {
    /// Fewest tokens (default 8).
    pub min_tokens: usize,
}

impl Default for QuestionLength {
    fn default() -> Self {
        QuestionLength { min_tokens: 8 }
    }
}

impl Filter for QuestionLength {
    fn name(&self) -> &'static str {
        "question_length"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let tokens = token_count(&candidate.record.question);
        if tokens < self.min_tokens {
            return Err(Verdict::reject(
                "question",
                format!(
                    "the question has {tokens} tokens, fewer than {}",
                    self.min_tokens
                ),
            ));
        }
        Ok(())
    }
}

/// Every answer occurs in the context, as a run of whole normalised words.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerInContext {}

impl Filter for AnswerInContext {
    fn name(&self) -> &'static str {
        "answer_in_context"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let record = candidate.record;
        for (index, answer) in record.answers.iter().enumerate() {
            if !contains_words(&record.context, answer) {
                return Err(Verdict::reject(
                    "answers",
                    format!("answer {index} ({answer:?}) does not occur in the context"),
                ));
            }
        }
        Ok(())
    }
}

/// The answer is not the question: neither equal to it nor containing it (after normalisation),
/// the failure where a generator copies its input into its output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionNotAnswer {}

impl Filter for QuestionNotAnswer {
    fn name(&self) -> &'static str {
        "question_not_answer"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let record = candidate.record;
        for (index, answer) in record.answers.iter().enumerate() {
            if contains_words(answer, &record.question) {
                return Err(Verdict::reject(
                    "answers",
                    format!("answer {index} is (or contains) the question"),
                ));
            }
        }
        Ok(())
    }
}

/// Neither question nor answer contains a placeholder (`{question}`, `{context}`, any
/// `{word}`) or one of `fragments`, the prompt text a generator may echo (compared
/// case-insensitively).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptLeak {
    /// Text that must not appear (the synthesis stage adds its own prompt's instruction lines).
    pub fragments: Vec<String>,
}

impl Default for PromptLeak {
    fn default() -> Self {
        PromptLeak {
            fragments: ["question:", "context:", "answer:", "paraphrase"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// Whether `text` has a `{placeholder}`: braces around one word.
fn has_placeholder(text: &str) -> bool {
    text.match_indices('{').any(|(start, _)| {
        let rest = &text[start + 1..];
        rest.find('}').is_some_and(|end| {
            end > 0 && rest[..end].chars().all(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

impl Filter for PromptLeak {
    fn name(&self) -> &'static str {
        "prompt_leak"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let record = candidate.record;
        let fields = std::iter::once(("question", &record.question))
            .chain(record.answers.iter().map(|a| ("answers", a)));
        for (field, text) in fields {
            if has_placeholder(text) {
                return Err(Verdict::reject(field, "it contains a template placeholder"));
            }
            let lowered = text.to_lowercase();
            if let Some(fragment) = self
                .fragments
                .iter()
                .find(|f| !f.trim().is_empty() && lowered.contains(&f.trim().to_lowercase()))
            {
                return Err(Verdict::reject(
                    field,
                    format!("it contains prompt text ({fragment:?})"),
                ));
            }
        }
        Ok(())
    }
}

/// The question is not its seed question (after normalisation): data must be generated, never
/// copied. The pipeline always runs this filter on candidates with a seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotACopy {}

impl Filter for NotACopy {
    fn name(&self) -> &'static str {
        "not_a_copy"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let Some(seed) = candidate.seed else {
            return Ok(());
        };
        if normalized_words(&candidate.record.question) == normalized_words(&seed.question) {
            return Err(Verdict::reject(
                "question",
                format!("the question is a copy of its seed {:?}", seed.id),
            ));
        }
        Ok(())
    }
}

/// At most `max_overlap` of the question's word `n`-grams occur in the seed question
/// ([`ngram_overlap`]); candidates without a seed pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NgramOverlap {
    /// n-gram length (default 8; shorter questions use their own length).
    pub n: usize,
    /// Largest share of shared n-grams allowed (default 0.4).
    pub max_overlap: f64,
}

impl Default for NgramOverlap {
    fn default() -> Self {
        NgramOverlap {
            n: 8,
            max_overlap: 0.4,
        }
    }
}

impl Filter for NgramOverlap {
    fn name(&self) -> &'static str {
        "ngram_overlap"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let Some(seed) = candidate.seed else {
            return Ok(());
        };
        let overlap = ngram_overlap(&candidate.record.question, &seed.question, self.n);
        if overlap > self.max_overlap {
            return Err(Verdict::reject(
                "question",
                format!(
                    "{:.0}% of its {}-grams are in the seed question (at most {:.0}% allowed)",
                    overlap * 100.0,
                    self.n,
                    self.max_overlap * 100.0
                ),
            ));
        }
        Ok(())
    }
}

/// The question reads as a question: it ends with `?`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionForm {}

impl Filter for QuestionForm {
    fn name(&self) -> &'static str {
        "question_form"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        if !candidate.record.question.trim_end().ends_with('?') {
            return Err(Verdict::reject("question", "it does not end with '?'"));
        }
        Ok(())
    }
}

/// The question is still about what its seed asked: it keeps at least `min_seed_share` of the
/// seed question's content words, and at least `min_grounded_share` of its own content words
/// occur in the seed question or the context. Random text fails the second, an on-topic but
/// different question the first. Candidates without a seed pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SameTopic {
    /// Share of the seed's content words kept (default 0.5).
    pub min_seed_share: f64,
    /// Share of the question's content words found in the seed question or the context
    /// (default 0.5).
    pub min_grounded_share: f64,
}

impl Default for SameTopic {
    fn default() -> Self {
        SameTopic {
            min_seed_share: 0.5,
            min_grounded_share: 0.5,
        }
    }
}

impl Filter for SameTopic {
    fn name(&self) -> &'static str {
        "same_topic"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        let Some(seed) = candidate.seed else {
            return Ok(());
        };
        let question = content_words(&candidate.record.question);
        let seed_words = content_words(&seed.question);
        if !seed_words.is_empty() {
            let kept = seed_words.intersection(&question).count();
            let share = kept as f64 / seed_words.len() as f64;
            if share < self.min_seed_share {
                return Err(Verdict::reject(
                    "question",
                    format!(
                        "it keeps {kept} of the seed question's {} content words ({:.0}% < {:.0}%)",
                        seed_words.len(),
                        share * 100.0,
                        self.min_seed_share * 100.0
                    ),
                ));
            }
        }
        let context: HashSet<String> = normalized_words(&candidate.record.context)
            .into_iter()
            .collect();
        let grounded = question
            .iter()
            .filter(|w| seed_words.contains(*w) || context.contains(*w))
            .count();
        let share = if question.is_empty() {
            0.0
        } else {
            grounded as f64 / question.len() as f64
        };
        if share < self.min_grounded_share {
            return Err(Verdict::reject(
                "question",
                format!(
                    "{grounded} of its {} content words occur in the seed question or the \
                     context ({:.0}% < {:.0}%)",
                    question.len(),
                    share * 100.0,
                    self.min_grounded_share * 100.0
                ),
            ));
        }
        Ok(())
    }
}

/// No two kept records have the same normalised question over the same normalised context.
#[derive(Debug, Clone, Default)]
pub struct Duplicates {
    kept: HashSet<(String, String)>,
}

impl Duplicates {
    fn key(candidate: &Candidate<'_>) -> (String, String) {
        let record = candidate.record;
        (
            normalized_words(&record.question).join(" "),
            normalized_words(&record.context).join(" "),
        )
    }
}

impl Filter for Duplicates {
    fn name(&self) -> &'static str {
        "duplicates"
    }

    fn check(&self, candidate: &Candidate<'_>) -> Outcome {
        if self.kept.contains(&Self::key(candidate)) {
            return Err(Verdict::reject(
                "question",
                "the same question over the same context was already kept",
            ));
        }
        Ok(())
    }

    fn accept(&mut self, candidate: &Candidate<'_>) {
        self.kept.insert(Self::key(candidate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qa_data::{QaRecord, Source};

    const CONTEXT: &str = "Super Bowl 50 was played at Levi's Stadium in Santa Clara, where the \
                           Denver Broncos beat the Carolina Panthers 24 to 10 in February 2016.";
    const SEED: &str = "Which NFL team won Super Bowl 50 at Levi's Stadium?";

    fn record(question: &str, answer: &str, context: &str) -> QaRecord {
        QaRecord {
            id: "c1".to_string(),
            question: question.to_string(),
            context: context.to_string(),
            answers: vec![answer.to_string()],
            source: Source::SyntheticFromHuman,
            provenance: None,
        }
    }

    fn seed() -> QaRecord {
        QaRecord {
            id: "seed1".to_string(),
            source: Source::Human,
            ..record(SEED, "Denver Broncos", CONTEXT)
        }
    }

    /// The verdict of `filter` on `question`/`answer`/`context` derived from the seed.
    fn verdict(filter: &dyn Filter, question: &str, answer: &str, context: &str) -> Outcome {
        let seed = seed();
        let candidate = record(question, answer, context);
        filter.check(&Candidate::with_seed(&candidate, &seed))
    }

    fn passes(filter: &dyn Filter, question: &str, answer: &str) -> bool {
        verdict(filter, question, answer, CONTEXT).is_ok()
    }

    const GOOD: &str = "At Levi's Stadium, which NFL team was the winner of Super Bowl 50?";

    #[test]
    fn an_empty_or_blank_context_is_refused() {
        let filter = NonEmptyContext::default();
        for context in ["", "  \n\t "] {
            let refused = verdict(&filter, GOOD, "Denver Broncos", context).expect_err("refused");
            assert_eq!(refused.field, "context");
        }
        assert!(passes(&filter, GOOD, "Denver Broncos"));
    }

    #[test]
    fn answer_length_is_bounded_at_both_ends() {
        let filter = AnswerLength {
            min_tokens: 1,
            max_tokens: 3,
        };
        assert!(!passes(&filter, GOOD, ""));
        assert!(!passes(&filter, GOOD, "   "));
        assert!(passes(&filter, GOOD, "Denver"));
        assert!(passes(&filter, GOOD, "the Denver Broncos"));
        assert!(!passes(&filter, GOOD, "the Denver Broncos team"));
        assert!(passes(&AnswerLength::default(), GOOD, &"word ".repeat(200)));
        assert!(!passes(
            &AnswerLength::default(),
            GOOD,
            &"word ".repeat(201)
        ));
    }

    #[test]
    fn questions_need_eight_tokens() {
        let filter = QuestionLength::default();
        assert!(!passes(
            &filter,
            "Who won Super Bowl 50 at Levi's?",
            "Denver"
        ));
        assert!(passes(
            &filter,
            "Who won Super Bowl 50 at Levi's Stadium?",
            "Denver"
        ));
    }

    #[test]
    fn questions_end_with_a_question_mark() {
        let filter = QuestionForm::default();
        assert!(passes(&filter, GOOD, "Denver"));
        assert!(passes(&filter, "Who won the game ?  ", "Denver"));
        assert!(!passes(
            &filter,
            "The Denver Broncos won Super Bowl 50.",
            "Denver"
        ));
    }

    #[test]
    fn the_answer_must_occur_in_the_context_as_whole_words() {
        let filter = AnswerInContext::default();
        assert!(passes(&filter, GOOD, "the Denver Broncos"));
        assert!(passes(&filter, GOOD, "DENVER broncos!"));
        assert!(!passes(&filter, GOOD, "Denv"));
        assert!(!passes(&filter, GOOD, "Seattle Seahawks"));
        assert!(!passes(&filter, GOOD, ""));
    }

    #[test]
    fn a_question_copied_into_the_answer_is_refused() {
        let filter = QuestionNotAnswer::default();
        let refused = verdict(&filter, GOOD, GOOD, CONTEXT).expect_err("refused");
        assert_eq!(refused.field, "answers");
        let longer = format!("Answer: {GOOD} The Broncos.");
        assert!(!passes(&filter, GOOD, &longer));
        assert!(passes(&filter, GOOD, "Denver Broncos"));
    }

    #[test]
    fn prompt_text_and_placeholders_are_leaks() {
        let filter = PromptLeak::default();
        assert!(!passes(
            &filter,
            "Paraphrase this question: who won?",
            "Denver"
        ));
        assert!(!passes(
            &filter,
            "question: Who won Super Bowl 50?",
            "Denver"
        ));
        assert!(!passes(&filter, "Who won {question} in 2016?", "Denver"));
        assert!(!passes(&filter, GOOD, "context: Denver"));
        // Braces around something that is not a word are not a placeholder.
        assert!(passes(
            &filter,
            "Which set {1, 2} holds the score of Super Bowl 50?",
            "24"
        ));
        assert!(passes(&filter, GOOD, "Denver"));
        let custom = PromptLeak {
            fragments: vec!["Rewrite the question".to_string()],
        };
        assert!(!passes(&custom, "rewrite the question: who won?", "Denver"));
    }

    #[test]
    fn a_verbatim_or_normalised_copy_of_the_seed_is_refused() {
        let filter = NotACopy::default();
        assert!(!passes(&filter, SEED, "Denver"));
        assert!(!passes(
            &filter,
            "which NFL team won super bowl 50 at the Levi's stadium",
            "Denver"
        ));
        assert!(passes(&filter, GOOD, "Denver"));
        // Without a seed there is nothing to copy.
        let candidate = record(SEED, "Denver", CONTEXT);
        assert!(filter.check(&Candidate::new(&candidate)).is_ok());
    }

    #[test]
    fn ngram_overlap_is_refused_above_the_threshold_only() {
        // The seed normalises to 10 words ("which nfl team won super bowl 50 at levis
        // stadium"), so with n = 8 it has 3 8-grams.
        let filter = NgramOverlap::default();
        // Shares the seed's first 8 words and adds two: 1 of 3 8-grams (33%) passes...
        assert!(passes(
            &filter,
            "Which NFL team won Super Bowl 50 at that time?",
            "Denver"
        ));
        // ...2 of 3 (67%) does not.
        assert!(!passes(
            &filter,
            "Which NFL team won Super Bowl 50 at Levi's arena?",
            "Denver"
        ));
        assert!(!passes(&filter, SEED, "Denver"));
        assert!(passes(&filter, GOOD, "Denver"));
        // Exactly at the threshold passes: 2 of 5 bigrams is 40%.
        let at = NgramOverlap {
            n: 2,
            max_overlap: 0.4,
        };
        assert_eq!(ngram_overlap("which nfl team lost it", SEED, 2), 0.5);
        assert_eq!(ngram_overlap("which nfl went team lost it", SEED, 2), 0.2);
        assert_eq!(ngram_overlap("which nfl team lost it now", SEED, 2), 0.4);
        assert!(passes(&at, "which nfl team lost it now", "Denver"));
        assert!(!passes(&at, "which nfl team lost it", "Denver"));
    }

    #[test]
    fn short_questions_fall_back_to_their_own_length() {
        // 4 words against a 10-word seed: n becomes 4, one 4-gram, shared.
        assert_eq!(ngram_overlap("won super bowl 50", SEED, 8), 1.0);
        assert_eq!(ngram_overlap("lost super bowl 50", SEED, 8), 0.0);
        assert_eq!(ngram_overlap("", SEED, 8), 0.0);
    }

    #[test]
    fn random_or_off_topic_text_is_not_the_same_question() {
        let filter = SameTopic::default();
        assert!(passes(&filter, GOOD, "Denver"));
        // Fluent, long, ends with '?', low overlap, but about something else.
        let off_topic = "What is the boiling point of water at sea level in degrees?";
        let refused = verdict(&filter, off_topic, "Denver", CONTEXT).expect_err("refused");
        assert!(refused.reason.contains("content words"), "{refused:?}");
        // Keeps the seed's words but pads them with noise: not grounded.
        let noisy = "Which NFL team won Super Bowl 50 zork blarg quux frob wibble plugh xyzzy?";
        let refused = verdict(&filter, noisy, "Denver", CONTEXT).expect_err("refused");
        assert!(
            refused.reason.contains("seed question or the context"),
            "{refused:?}"
        );
        // At the threshold: the seed has 8 content words (nfl team won super bowl 50 levis
        // stadium); keeping exactly half of them passes, one fewer does not.
        let half = "Which NFL team won the Super trophy in February?";
        assert!(passes(&filter, half, "Denver"));
        let under = "Which NFL team won the trophy in February?";
        let refused = verdict(&filter, under, "Denver", CONTEXT).expect_err("refused");
        assert!(refused.reason.contains("keeps 3 of"), "{refused:?}");
    }

    #[test]
    fn duplicates_are_refused_only_after_a_kept_one() {
        let mut filter = Duplicates::default();
        let seed = seed();
        let first = record(GOOD, "Denver", CONTEXT);
        let same = record(&GOOD.to_uppercase(), "Broncos", CONTEXT);
        let other_context = record(GOOD, "Denver", "Denver won Super Bowl 50 at Levi's.");
        assert!(filter.check(&Candidate::with_seed(&same, &seed)).is_ok());
        filter.accept(&Candidate::with_seed(&first, &seed));
        assert!(filter.check(&Candidate::with_seed(&same, &seed)).is_err());
        assert!(
            filter
                .check(&Candidate::with_seed(&other_context, &seed))
                .is_ok()
        );
    }
}

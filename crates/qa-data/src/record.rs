//! The record that flows through every stage of the experiment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a record's answer comes from: the three training sets of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Question and answer written by SQuAD's crowd workers (model A's data, and the test set).
    Human,
    /// Human question and context, answer produced by a model (model B's data).
    AiContaminated,
    /// Question paraphrased by a model from a human seed, context and answer kept (model C's data).
    SyntheticFromHuman,
}

impl Source {
    /// The name used in files and reports (`human`, `ai_contaminated`, `synthetic_from_human`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Human => "human",
            Source::AiContaminated => "ai_contaminated",
            Source::SyntheticFromHuman => "synthetic_from_human",
        }
    }
}

/// How a generated record was made, so that any record can be traced to its human parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Id of the human record this one was derived from.
    pub parent_id: String,
    /// The generating model (a Hugging Face id, a directory, or an endpoint's model name).
    pub generator: String,
    /// The prompt template, with its `{question}`/`{context}`/`{answer}` placeholders.
    pub prompt_template: String,
    /// The sampling settings (temperature, top_p, seed, …) exactly as the generator used them.
    #[serde(default)]
    pub sampling: BTreeMap<String, serde_json::Value>,
    /// Which of the candidates generated for the parent this one is (0-based), if several were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_index: Option<u32>,
    /// What the endpoint billed for the completion (absent for a local model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::CompletionUsage>,
}

/// One question/answer pair with its context.
///
/// Serialised as one JSON object per line. Files of the earlier Python experiment, which have a
/// single `answer` string instead of `answers`, read as well (`answer` becomes `answers[0]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawQaRecord")]
pub struct QaRecord {
    /// Unique id (SQuAD's question id for human records).
    pub id: String,
    /// The question.
    pub question: String,
    /// The passage the answer is taken from.
    pub context: String,
    /// Gold answers: the first is the training target, all of them count at evaluation.
    pub answers: Vec<String>,
    /// Which of the experiment's data sets this record belongs to.
    pub source: Source,
    /// How the record was generated; absent for human records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl QaRecord {
    /// The training target: the first gold answer.
    pub fn answer(&self) -> &str {
        // `RawQaRecord`'s conversion and every constructor in this crate refuse an empty list.
        self.answers.first().map(String::as_str).unwrap_or("")
    }
}

/// The on-disk shape, accepting both `answers` and the legacy single `answer`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQaRecord {
    id: String,
    question: String,
    context: String,
    #[serde(default)]
    answers: Option<Vec<String>>,
    #[serde(default)]
    answer: Option<String>,
    source: Source,
    #[serde(default)]
    provenance: Option<Provenance>,
}

impl crate::files::Keyed for QaRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl TryFrom<RawQaRecord> for QaRecord {
    type Error = String;

    fn try_from(raw: RawQaRecord) -> Result<Self, Self::Error> {
        let answers = match (raw.answers, raw.answer) {
            (Some(_), Some(_)) => {
                return Err(
                    "record has both `answers` and the legacy `answer`; keep one".to_string(),
                );
            }
            (Some(answers), None) => answers,
            (None, Some(answer)) => vec![answer],
            (None, None) => return Err("missing field `answers` (or legacy `answer`)".to_string()),
        };
        if answers.is_empty() {
            return Err("field `answers` is empty: a record needs at least one answer".to_string());
        }
        Ok(QaRecord {
            id: raw.id,
            question: raw.question,
            context: raw.context,
            answers,
            source: raw.source,
            provenance: raw.provenance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_answer_field_becomes_first_answer() {
        let line =
            r#"{"id":"q1","question":"Who?","context":"Ann ran.","answer":"Ann","source":"human"}"#;
        let record: QaRecord = serde_json::from_str(line).expect("legacy record parses");
        assert_eq!(record.answers, vec!["Ann".to_string()]);
        assert_eq!(record.answer(), "Ann");
        assert_eq!(record.source, Source::Human);
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let record = QaRecord {
            id: "q1-syn".into(),
            question: "Which person ran?".into(),
            context: "Ann ran.".into(),
            answers: vec!["Ann".into(), "Ann.".into()],
            source: Source::SyntheticFromHuman,
            provenance: Some(Provenance {
                parent_id: "q1".into(),
                generator: "google/flan-t5-xl".into(),
                prompt_template: "Paraphrase: {question}".into(),
                sampling: BTreeMap::from([("temperature".to_string(), serde_json::json!(0.8))]),
                candidate_index: Some(2),
                usage: None,
            }),
        };
        let text = serde_json::to_string(&record).expect("serialises");
        let back: QaRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, record);
    }

    #[test]
    fn both_or_neither_answer_fields_are_refused() {
        let both = r#"{"id":"q","question":"?","context":"c","answer":"a","answers":["a"],"source":"human"}"#;
        let neither = r#"{"id":"q","question":"?","context":"c","source":"human"}"#;
        let empty = r#"{"id":"q","question":"?","context":"c","answers":[],"source":"human"}"#;
        for line in [both, neither, empty] {
            assert!(serde_json::from_str::<QaRecord>(line).is_err(), "{line}");
        }
    }
}

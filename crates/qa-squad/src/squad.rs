//! The SQuAD v1.1 / v2.0 JSON reader, and the gold questions of scoring ([`read_gold`]: our
//! JSONL records, or an original SQuAD JSON).
//!
//! A file-level problem (unreadable, not UTF-8, not JSON, cut short, wrong shape, duplicate
//! question ids) is an [`Error`](crate::Error). A problem confined to one question (no
//! answers, an empty question or context, an `answer_start` that does not point at the answer
//! text) rejects that question only: it is counted and kept, with its reason, in
//! [`SquadFile::rejected`]. SQuAD v2.0 questions marked `is_impossible` have no answer to learn
//! from and are skipped and counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use qa_data::files::read_json;
use qa_data::rejection::Rejection;
use qa_data::{QaRecord, Source};

/// Name under which this reader files its rejections.
pub const READER_NAME: &str = "squad-reader";

/// One article (a Wikipedia page) with its usable questions, in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    /// The article's title.
    pub title: String,
    /// Its questions that passed every check, as records with `source = human`.
    pub records: Vec<QaRecord>,
}

/// A SQuAD file after reading and checking.
#[derive(Debug, Clone)]
pub struct SquadFile {
    /// The file that was read.
    pub path: PathBuf,
    /// The file's `version` field, if present (`"1.1"`, `"v2.0"`).
    pub version: Option<String>,
    /// Articles in file order.
    pub articles: Vec<Article>,
    /// SQuAD v2.0 questions marked unanswerable, skipped.
    pub skipped_unanswerable: usize,
    /// Questions refused by a check, with reasons.
    pub rejected: Vec<Rejection>,
}

impl SquadFile {
    /// Number of usable questions over all articles.
    pub fn question_count(&self) -> usize {
        self.articles.iter().map(|a| a.records.len()).sum()
    }
}

#[derive(Deserialize)]
struct SquadJson {
    #[serde(default)]
    version: Option<String>,
    data: Vec<SquadArticle>,
}

/// The top level of a SQuAD file, which must be an object: serde's derived structs also accept
/// a JSON array (as a tuple), which would turn `[1, 2]` into a baffling "expected a string".
struct SquadTopLevel(SquadJson);

impl<'de> Deserialize<'de> for SquadTopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = SquadJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a SQuAD file: an object with a `data` list of articles")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SquadJson, A::Error> {
                SquadJson::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectOnly).map(SquadTopLevel)
    }
}

#[derive(Deserialize)]
struct SquadArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    context: String,
    qas: Vec<SquadQa>,
}

#[derive(Deserialize, Serialize)]
struct SquadQa {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<SquadAnswer>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    is_impossible: bool,
}

#[derive(Deserialize, Serialize)]
struct SquadAnswer {
    text: String,
    answer_start: usize,
}

/// The environment variable that names the directory of the offline SQuAD copy.
pub const SQUAD_DIR_VAR: &str = "SQUAD_DIR";

/// `name` (e.g. `dev-v1.1.json`) in the SQuAD copy that ships beside a checkout of this
/// repository (`../shared/data/squad/`), or in the directory named by `SQUAD_DIR`: the data of
/// `configs/offline-squad.yaml` and of the real-data tests and benchmarks.
pub fn offline_squad_file(name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os(SQUAD_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/squad")
        });
    Ok(qa_data::files::existing_file(
        dir.join(name),
        &format!("the offline SQuAD copy is expected here (set {SQUAD_DIR_VAR} to its directory)"),
    )?)
}

/// What the Hub's `squad` columns hold beyond a [`QaRecord`]: a question's article title and
/// where each of its answers starts in the context (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadSpans {
    /// The article's title.
    pub title: String,
    /// Each answer's text and `answer_start`, in file order.
    pub answers: Vec<(String, usize)>,
}

/// The title and answer offsets of every question in the SQuAD file `path`, by question id.
pub fn read_spans(path: impl AsRef<Path>) -> Result<HashMap<String, SquadSpans>> {
    let SquadTopLevel(parsed) = read_json(path.as_ref())?;
    let mut spans = HashMap::new();
    for article in parsed.data {
        for paragraph in article.paragraphs {
            for qa in paragraph.qas {
                let answers = qa
                    .answers
                    .into_iter()
                    .map(|a| (a.text, a.answer_start))
                    .collect();
                let title = article.title.clone();
                spans.insert(qa.id, SquadSpans { title, answers });
            }
        }
    }
    Ok(spans)
}

/// Reads and checks a SQuAD JSON file (v1.1 or v2.0).
pub fn read_squad(path: impl AsRef<Path>) -> Result<SquadFile> {
    let path = path.as_ref();
    let SquadTopLevel(parsed) = read_json(path)?;
    check(path, parsed)
}

/// Turns the parsed file into checked articles, sorting refused questions out.
fn check(path: &Path, parsed: SquadJson) -> Result<SquadFile> {
    let file = path.display().to_string();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut articles = Vec::with_capacity(parsed.data.len());
    let mut rejected = Vec::new();
    let mut skipped_unanswerable = 0;

    for (a, article) in parsed.data.into_iter().enumerate() {
        let mut records = Vec::new();
        for (p, paragraph) in article.paragraphs.into_iter().enumerate() {
            for (q, qa) in paragraph.qas.into_iter().enumerate() {
                let location = format!("data[{a}].paragraphs[{p}].qas[{q}]");
                if let Some(first) = seen.insert(qa.id.clone(), location.clone()) {
                    return Err(qa_data::Error::DuplicateId {
                        path: path.to_path_buf(),
                        id: qa.id,
                        first,
                        second: location,
                    }
                    .into());
                }
                if qa.is_impossible {
                    skipped_unanswerable += 1;
                    continue;
                }
                match problem(&paragraph.context, &qa) {
                    None => records.push(QaRecord {
                        id: qa.id,
                        question: qa.question,
                        context: paragraph.context.clone(),
                        answers: qa.answers.into_iter().map(|answer| answer.text).collect(),
                        source: Source::Human,
                        provenance: None,
                    }),
                    Some((field, reason)) => {
                        tracing::warn!(file, location, field, reason, "rejected question");
                        rejected.push(Rejection {
                            id: Some(qa.id.clone()),
                            file: file.clone(),
                            location,
                            field,
                            rejected_by: READER_NAME.to_string(),
                            reason,
                            record: serde_json::json!({
                                "title": article.title,
                                "context": paragraph.context,
                                "qa": qa,
                            }),
                        });
                    }
                }
            }
        }
        articles.push(Article {
            title: article.title,
            records,
        });
    }
    Ok(SquadFile {
        path: path.to_path_buf(),
        version: parsed.version,
        articles,
        skipped_unanswerable,
        rejected,
    })
}

/// The first thing wrong with a question, as `(field, reason)`, or `None` when it is usable.
fn problem(context: &str, qa: &SquadQa) -> Option<(String, String)> {
    if context.trim().is_empty() {
        return Some(("context".into(), "the context is empty".into()));
    }
    if qa.question.trim().is_empty() {
        return Some(("question".into(), "the question is empty".into()));
    }
    if qa.answers.is_empty() {
        return Some((
            "answers".into(),
            "the question has no answers and is not marked is_impossible".into(),
        ));
    }
    for (i, answer) in qa.answers.iter().enumerate() {
        if answer.text.trim().is_empty() {
            return Some((format!("answers[{i}].text"), "the answer is empty".into()));
        }
        // SQuAD offsets count Unicode code points (Python `str` indices), not bytes.
        let found: String = context
            .chars()
            .skip(answer.answer_start)
            .take(answer.text.chars().count())
            .collect();
        if found != answer.text {
            return Some((
                format!("answers[{i}].answer_start"),
                format!(
                    "answer {:?} is not at character {} of the context (found {:?})",
                    answer.text, answer.answer_start, found
                ),
            ));
        }
    }
    None
}

/// Reads the gold questions: our JSONL records (`human_test.jsonl`) or an original SQuAD JSON.
pub fn read_gold(path: impl AsRef<Path>) -> Result<Vec<QaRecord>> {
    let path = path.as_ref();
    if path.extension().is_some_and(|e| e == "jsonl") {
        return Ok(qa_data::files::read_keyed_jsonl(path)?);
    }
    let squad = read_squad(path)?;
    if !squad.rejected.is_empty() {
        tracing::warn!(
            path = %path.display(),
            rejected = squad.rejected.len(),
            "gold questions refused by the SQuAD reader are not scored"
        );
    }
    Ok(squad.articles.into_iter().flat_map(|a| a.records).collect())
}

#[cfg(test)]
mod tests {
    use qa_data::Error as DataError;

    use crate::Error;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write fixture");
        path
    }

    const GOOD: &str = r#"{"version":"1.1","data":[{"title":"T","paragraphs":[
        {"context":"Ann ran to Zürich quickly.","qas":[
            {"id":"q1","question":"Who ran?","answers":[{"text":"Ann","answer_start":0}]},
            {"id":"q2","question":"Where to?","answers":[{"text":"Zürich","answer_start":11},{"text":"Zürich quickly","answer_start":11}]}
        ]}]}]}"#;

    #[test]
    fn reads_records_with_all_gold_answers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = read_squad(write(dir.path(), "good.json", GOOD)).expect("reads");
        assert_eq!(file.question_count(), 2);
        assert_eq!(file.version.as_deref(), Some("1.1"));
        let q2 = &file.articles[0].records[1];
        assert_eq!(q2.answers, ["Zürich", "Zürich quickly"]);
        assert!(file.rejected.is_empty());
    }

    #[test]
    fn skips_v2_unanswerable_questions_and_counts_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = r#"{"version":"v2.0","data":[{"title":"T","paragraphs":[{"context":"Ann ran.","qas":[
            {"id":"q1","question":"Who ran?","answers":[{"text":"Ann","answer_start":0}],"is_impossible":false},
            {"id":"q2","question":"Who flew?","answers":[],"plausible_answers":[{"text":"Ann","answer_start":0}],"is_impossible":true}
        ]}]}]}"#;
        let file = read_squad(write(dir.path(), "v2.json", text)).expect("reads");
        assert_eq!(file.question_count(), 1);
        assert_eq!(file.skipped_unanswerable, 1);
        assert!(file.rejected.is_empty());
    }

    #[test]
    fn question_level_problems_are_rejected_with_field_and_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = r#"{"data":[{"title":"T","paragraphs":[
            {"context":"Ann ran.","qas":[
                {"id":"no-answers","question":"Who?","answers":[]},
                {"id":"bad-start","question":"Who?","answers":[{"text":"Ann","answer_start":2}]},
                {"id":"empty-question","question":"  ","answers":[{"text":"Ann","answer_start":0}]},
                {"id":"fine","question":"Who?","answers":[{"text":"ran","answer_start":4}]}
            ]},
            {"context":"","qas":[{"id":"empty-context","question":"Who?","answers":[{"text":"Ann","answer_start":0}]}]}
        ]}]}"#;
        let file = read_squad(write(dir.path(), "mixed.json", text)).expect("reads");
        assert_eq!(file.question_count(), 1);
        let got: Vec<(&str, &str)> = file
            .rejected
            .iter()
            .map(|r| (r.id.as_deref().unwrap_or(""), r.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("no-answers", "answers"),
                ("bad-start", "answers[0].answer_start"),
                ("empty-question", "question"),
                ("empty-context", "context"),
            ]
        );
        assert_eq!(file.rejected[1].location, "data[0].paragraphs[0].qas[1]");
        assert!(file.rejected[1].reason.contains("found \"n r\""));
        assert!(file.rejected.iter().all(|r| r.file.ends_with("mixed.json")));
    }

    #[test]
    fn file_level_problems_are_errors_of_the_right_kind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cut = &GOOD[..GOOD.len() / 2];
        let dup = GOOD.replace("\"q2\"", "\"q1\"");
        let line2 = GOOD.find('\n').expect("fixture has two lines") + 1;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", cut.as_bytes().to_vec()),
            ("not-json", b"version: 1.1\ndata: []\n".to_vec()),
            ("wrong-shape", b"[1, 2, 3]".to_vec()),
            ("no-data", br#"{"version": "1.1"}"#.to_vec()),
            (
                "bad-type",
                GOOD.replace("\"answer_start\":0", "\"answer_start\":\"zero\"")
                    .into_bytes(),
            ),
            (
                "non-utf8",
                [
                    &GOOD.as_bytes()[..line2],
                    b"\xc3\x28",
                    &GOOD.as_bytes()[line2..],
                ]
                .concat(),
            ),
            ("duplicate", dup.into_bytes()),
            ("empty", b"\n".to_vec()),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, bytes).expect("write");
            let Error::Data(err) = read_squad(&path).expect_err(name) else {
                panic!("{name}: not a data error");
            };
            let ok = match name {
                "truncated" => matches!(err, DataError::Truncated { .. }),
                "not-json" => matches!(err, DataError::NotJson { line: 1, .. }),
                "wrong-shape" | "no-data" => {
                    matches!(&err, DataError::InvalidField { field, .. } if field == "<top level>")
                }
                "bad-type" => matches!(
                    &err,
                    DataError::InvalidField { field, .. }
                        if field == "data[0].paragraphs[0].qas[0].answers[0].answer_start"
                ),
                "non-utf8" => matches!(err, DataError::NotUtf8 { line: 2, .. }),
                "duplicate" => matches!(
                    &err,
                    DataError::DuplicateId { id, first, second, .. }
                        if id == "q1" && first.ends_with("qas[0]") && second.ends_with("qas[1]")
                ),
                "empty" => matches!(err, DataError::Empty { .. }),
                _ => unreachable!(),
            };
            assert!(ok, "{name}: unexpected error {err:?}");
            assert!(err.to_string().contains(&format!("{name}.json")), "{err}");
        }
    }

    #[test]
    fn a_gold_question_given_twice_is_refused_naming_both_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gold = dir.path().join("gold.jsonl");
        let line = |id: &str| {
            format!(
                r#"{{"id":"{id}","question":"Who ran?","context":"Ann ran.","answers":["Ann"],"source":"human"}}"#
            )
        };
        std::fs::write(&gold, [line("a"), line("b"), line("a")].join("\n") + "\n").expect("write");
        let err = read_gold(&gold).expect_err("a repeated id");
        assert!(
            matches!(&err, Error::Data(DataError::DuplicateId { id, first, second, .. })
                if id == "a" && first == "line 1" && second == "line 3"),
            "{err:?}"
        );
    }
}

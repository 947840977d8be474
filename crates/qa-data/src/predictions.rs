//! Prediction files: our JSONL (`{"id": …, "prediction": …}` per line) and the official SQuAD
//! format (one JSON object mapping each question id to its answer string).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{JsonlReader, read_json};

/// One model answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// Id of the question answered.
    pub id: String,
    /// The answer text.
    pub prediction: String,
}

/// A prediction with where it was read from (`line 12` or `key "56be…"`), for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedPrediction {
    /// Where in the file.
    pub location: String,
    /// The prediction.
    pub prediction: Prediction,
}

/// Reads a prediction file: `.jsonl` is our format, `.json` the official SQuAD one.
///
/// Fails on an empty file and on a question id answered twice (naming both places).
pub fn read_predictions(path: impl AsRef<Path>) -> Result<Vec<LocatedPrediction>> {
    let path = path.as_ref();
    let predictions: Vec<LocatedPrediction> = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => JsonlReader::<Prediction>::open(path)?
            .map(|item| {
                item.map(|(line, prediction)| LocatedPrediction {
                    location: format!("line {line}"),
                    prediction,
                })
            })
            .collect::<Result<_>>()?,
        Some("json") => {
            let OrderedPairs(pairs) = read_json(path)?;
            pairs
                .into_iter()
                .map(|(id, prediction)| LocatedPrediction {
                    location: format!("key {id:?}"),
                    prediction: Prediction { id, prediction },
                })
                .collect()
        }
        _ => {
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
                expected: "`.jsonl` (one {\"id\", \"prediction\"} object per line) or `.json` \
                           (the official SQuAD object mapping ids to answers)",
            });
        }
    };
    if predictions.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut seen: HashMap<&str, &str> = HashMap::with_capacity(predictions.len());
    for p in &predictions {
        if let Some(first) = seen.insert(&p.prediction.id, &p.location) {
            return Err(Error::DuplicateId {
                path: path.to_path_buf(),
                id: p.prediction.id.clone(),
                first: first.to_string(),
                second: p.location.clone(),
            });
        }
    }
    Ok(predictions)
}

/// A JSON object read as its `(key, string value)` pairs in file order, keeping repeated keys
/// (a map type would silently keep only the last one).
struct OrderedPairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping question ids to answer strings")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedPairs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn both_formats_read_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let jsonl = write(
            dir.path(),
            "p.jsonl",
            "{\"id\":\"b\",\"prediction\":\"x\"}\n{\"id\":\"a\",\"prediction\":\"\"}\n",
        );
        let json = write(dir.path(), "p.json", r#"{"b": "x", "a": ""}"#);
        for path in [jsonl, json] {
            let ids: Vec<_> = read_predictions(&path)
                .expect("reads")
                .into_iter()
                .map(|p| (p.prediction.id, p.prediction.prediction))
                .collect();
            assert_eq!(
                ids,
                [("b".to_string(), "x".to_string()), ("a".into(), "".into())]
            );
        }
    }

    #[test]
    fn duplicates_empty_and_malformed_files_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dup_lines = write(
            dir.path(),
            "dup.jsonl",
            "{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"a\",\"prediction\":\"y\"}\n",
        );
        let err = read_predictions(&dup_lines).expect_err("duplicate");
        assert!(
            matches!(&err, Error::DuplicateId { id, first, second, .. } if id == "a" && first == "line 1" && second == "line 2"),
            "{err:?}"
        );
        let dup_keys = write(dir.path(), "dup.json", r#"{"a": "x", "a": "y"}"#);
        assert!(matches!(
            read_predictions(&dup_keys),
            Err(Error::DuplicateId { .. })
        ));
        let empty = write(dir.path(), "empty.jsonl", "");
        assert!(matches!(read_predictions(&empty), Err(Error::Empty { .. })));
        let empty_object = write(dir.path(), "empty.json", "{}");
        assert!(matches!(
            read_predictions(&empty_object),
            Err(Error::Empty { .. })
        ));
        let malformed = write(
            dir.path(),
            "bad.jsonl",
            "{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"b\"}\n",
        );
        assert!(matches!(
            read_predictions(&malformed),
            Err(Error::InvalidField { line: 2, .. })
        ));
        let not_string = write(dir.path(), "bad.json", r#"{"a": 3}"#);
        assert!(matches!(
            read_predictions(&not_string),
            Err(Error::InvalidField { .. })
        ));
        let other = write(dir.path(), "p.csv", "a,b");
        assert!(matches!(
            read_predictions(&other),
            Err(Error::UnknownFormat { .. })
        ));
    }
}

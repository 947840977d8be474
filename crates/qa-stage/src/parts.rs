//! The parts of a sharded prediction run, and their merge.
//!
//! A run of one [`Shard`] writes its predictions file and, beside it, a [`PartInfo`]
//! (`<file>.shard.json`): which part it is, of which input, with which settings. The merge
//! proves that it has a whole run before writing anything: every part present once, all made
//! from the same input with the same settings, each complete (exactly the ids its shard owns,
//! none twice); then it writes the predictions in input order, atomically, with a [`Manifest`]
//! beside them (`<file>.manifest.json`: the input and parts with their checksums, the output's).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shard::Shard;
use qa_data::QaRecord;
use qa_data::files::{
    read_json, read_keyed_jsonl, sha256_file, write_json_atomic, write_jsonl_atomic,
};
use qa_data::manifest::{FileDigest, Manifest};
use qa_data::predictions::{Prediction, read_predictions};

/// What a sharded run records beside its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    /// The part.
    pub shard: Shard,
    /// The input file's SHA-256.
    pub input_sha256: String,
    /// The settings that decide the output; every part of a run has the same.
    pub settings: serde_json::Value,
}

/// Where the [`PartInfo`] of the output file `out` is.
pub fn part_info_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".shard.json");
    PathBuf::from(name)
}

/// Records that `out` is part `shard` of a run over `input` with `settings`.
pub fn write_part_info(
    out: &Path,
    shard: Shard,
    input: &Path,
    settings: &impl Serialize,
) -> Result<()> {
    let info = PartInfo {
        shard,
        input_sha256: sha256_file(input)?,
        settings: serde_json::to_value(settings).map_err(|reason| qa_data::Error::Serialize {
            path: out.to_path_buf(),
            reason,
        })?,
    };
    Ok(write_json_atomic(part_info_path(out), &info)?)
}

fn refuse(path: &Path, message: String) -> Error {
    Error::Merge {
        path: path.to_path_buf(),
        message,
    }
}

/// Merges the prediction files `parts` of a sharded run over `input` into `out`; returns the
/// number of predictions written.
pub fn merge_predictions(input: &Path, parts: &[PathBuf], out: &Path) -> Result<usize> {
    let records: Vec<QaRecord> = read_keyed_jsonl(input)?;
    let input_sha256 = sha256_file(input)?;
    let ids: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let mut first: Option<(PathBuf, PartInfo)> = None;
    let mut by_index: HashMap<usize, &Path> = HashMap::new();
    let mut answers: HashMap<String, String> = HashMap::with_capacity(records.len());
    for part in parts {
        let info_path = part_info_path(part);
        if !info_path.is_file() {
            return Err(refuse(
                part,
                format!(
                    "no {} beside it: not the output of a sharded run",
                    info_path.display()
                ),
            ));
        }
        let info: PartInfo = read_json(&info_path)?;
        if info.input_sha256 != input_sha256 {
            return Err(refuse(
                part,
                format!("made from another input than {}", input.display()),
            ));
        }
        match &first {
            None => first = Some((part.clone(), info.clone())),
            Some((first_path, first_info)) => {
                if info.shard.count != first_info.shard.count
                    || info.settings != first_info.settings
                {
                    return Err(refuse(
                        part,
                        format!(
                            "made with other settings or shard count than {}",
                            first_path.display()
                        ),
                    ));
                }
            }
        }
        if let Some(other) = by_index.insert(info.shard.index, part) {
            return Err(refuse(
                part,
                format!(
                    "shard {}/{} again (also {})",
                    info.shard.index,
                    info.shard.count,
                    other.display()
                ),
            ));
        }
        let owned = records.iter().filter(|r| info.shard.owns(&r.id)).count();
        // A shard that owns no question writes an empty file, which the reader refuses as
        // empty; nothing is missing from it.
        let empty = std::fs::metadata(part)
            .map_err(|e| Error::io(part, e))?
            .len()
            == 0;
        let predictions = match (owned, empty) {
            (0, true) => Vec::new(),
            _ => read_predictions(part)?,
        };
        for located in &predictions {
            let id = &located.prediction.id;
            if !info.shard.owns(id) || !ids.contains(id.as_str()) {
                return Err(refuse(
                    part,
                    format!(
                        "{}: id {id:?} is not a question of shard {}/{} of {}",
                        located.location,
                        info.shard.index,
                        info.shard.count,
                        input.display()
                    ),
                ));
            }
        }
        if predictions.len() != owned {
            return Err(refuse(
                part,
                format!(
                    "{} of the shard's {owned} predictions: the part is unfinished or truncated",
                    predictions.len()
                ),
            ));
        }
        answers.extend(
            predictions
                .into_iter()
                .map(|p| (p.prediction.id, p.prediction.prediction)),
        );
    }
    let Some((_, info)) = first else {
        return Err(refuse(out, "no parts to merge".to_string()));
    };
    if let Some(missing) = (0..info.shard.count).find(|i| !by_index.contains_key(i)) {
        return Err(refuse(
            out,
            format!("shard {missing}/{} is missing", info.shard.count),
        ));
    }
    let merged: Vec<Prediction> = records
        .iter()
        .map(|record| Prediction {
            id: record.id.clone(),
            prediction: answers.remove(&record.id).unwrap_or_default(),
        })
        .collect();
    write_jsonl_atomic(out, &merged)?;
    let mut inputs = vec![FileDigest::of(input, input.display().to_string(), None)?];
    for part in parts {
        inputs.push(FileDigest::of(part, part.display().to_string(), None)?);
    }
    let manifest = Manifest {
        stage: "predict-merge".to_string(),
        code_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: None,
        config: info.settings,
        inputs,
        outputs: vec![FileDigest::of(
            out,
            out.display().to_string(),
            Some(merged.len() as u64),
        )?],
        counts: [
            ("predictions".to_string(), merged.len() as u64),
            ("shards".to_string(), info.shard.count as u64),
        ]
        .into(),
    };
    write_json_atomic(manifest_path(out), &manifest)?;
    Ok(merged.len())
}

/// Where the merge of `out` records its [`Manifest`]: `<out>.manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qa_data::Source;
    use qa_data::files::read_jsonl;

    fn setup(dir: &Path) -> (PathBuf, Vec<QaRecord>) {
        let records: Vec<QaRecord> = (0..20)
            .map(|i| QaRecord {
                id: format!("q{i}"),
                question: format!("Question {i}?"),
                context: "Some context.".to_string(),
                answers: vec!["context".to_string()],
                source: Source::Human,
                provenance: None,
            })
            .collect();
        let input = dir.join("test.jsonl");
        write_jsonl_atomic(&input, &records).expect("input");
        (input, records)
    }

    /// Writes part `index` of 3 as a sharded run would, keeping `keep` of its predictions.
    fn part(dir: &Path, input: &Path, records: &[QaRecord], index: usize, keep: usize) -> PathBuf {
        let shard = Shard { index, count: 3 };
        let out = dir.join(format!("part{index}.jsonl"));
        let predictions: Vec<Prediction> = records
            .iter()
            .filter(|r| shard.owns(&r.id))
            .take(keep)
            .map(|r| Prediction {
                id: r.id.clone(),
                prediction: format!("answer to {}", r.id),
            })
            .collect();
        write_jsonl_atomic(&out, &predictions).expect("part");
        write_part_info(&out, shard, input, &serde_json::json!({"model": "m"})).expect("info");
        out
    }

    #[test]
    fn complete_parts_merge_in_input_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, records) = setup(dir.path());
        let parts: Vec<PathBuf> = [2, 0, 1]
            .iter()
            .map(|&i| part(dir.path(), &input, &records, i, usize::MAX))
            .collect();
        let out = dir.path().join("merged.jsonl");
        assert_eq!(merge_predictions(&input, &parts, &out).expect("merges"), 20);
        let merged: Vec<Prediction> = read_jsonl(&out).expect("merged");
        let ids: Vec<&str> = merged.iter().map(|p| p.id.as_str()).collect();
        let expected: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, expected);
        assert!(
            merged
                .iter()
                .all(|p| p.prediction == format!("answer to {}", p.id))
        );
    }

    #[test]
    fn a_shard_without_questions_merges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, records) = setup(dir.path());
        let input_of_two = dir.path().join("two.jsonl");
        write_jsonl_atomic(&input_of_two, &records[..2]).expect("input");
        let parts: Vec<PathBuf> = (0..3)
            .map(|index| part(dir.path(), &input_of_two, &records[..2], index, usize::MAX))
            .collect();
        assert!(
            parts
                .iter()
                .any(|p| std::fs::metadata(p).expect("part").len() == 0),
            "some shard of three owns neither record"
        );
        let out = dir.path().join("merged.jsonl");
        assert_eq!(
            merge_predictions(&input_of_two, &parts, &out).expect("merges"),
            2
        );
    }

    #[test]
    fn missing_duplicated_or_truncated_parts_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, records) = setup(dir.path());
        let out = dir.path().join("merged.jsonl");
        let whole = |i| part(dir.path(), &input, &records, i, usize::MAX);
        let (p0, p1, p2) = (whole(0), whole(1), whole(2));

        let error = merge_predictions(&input, &[p0.clone(), p2.clone()], &out).expect_err("gap");
        assert!(
            error.to_string().contains("shard 1/3 is missing"),
            "{error}"
        );

        let error = merge_predictions(&input, &[p0.clone(), p1.clone(), p0.clone()], &out)
            .expect_err("twice");
        assert!(error.to_string().contains("shard 0/3 again"), "{error}");

        let truncated = part(dir.path(), &input, &records, 1, 2);
        let error = merge_predictions(&input, &[p0.clone(), truncated, p2.clone()], &out)
            .expect_err("truncated");
        let message = error.to_string();
        assert!(
            message.contains("part1.jsonl") && message.contains("unfinished or truncated"),
            "{message}"
        );

        // A part whose file holds another shard's question.
        let stray = dir.path().join("stray.jsonl");
        let mut lines = std::fs::read_to_string(&p1).expect("p1");
        let foreign = records
            .iter()
            .find(|r| !Shard { index: 1, count: 3 }.owns(&r.id))
            .expect("a record of another shard");
        lines.push_str(&format!(
            "{{\"id\":\"{}\",\"prediction\":\"x\"}}\n",
            foreign.id
        ));
        std::fs::write(&stray, lines).expect("stray");
        std::fs::copy(part_info_path(&p1), part_info_path(&stray)).expect("info");
        let error = merge_predictions(&input, &[p0, stray, p2], &out).expect_err("stray");
        assert!(
            error.to_string().contains("is not a question of shard 1/3"),
            "{error}"
        );
        assert!(
            !out.exists(),
            "nothing is written unless the whole run is there"
        );
    }
}

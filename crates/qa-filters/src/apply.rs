//! Filtering a JSONL file of records, as `qa-filter` does: kept records, rejected ones with
//! their reasons, and the funnel, each written atomically into an output directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::{
    JsonlReader, UniqueIds, read_keyed_jsonl, write_json_atomic, write_jsonl_atomic,
};

use crate::Candidate;
use crate::error::{Error, Result};
use crate::pipeline::{FilterConfig, Funnel, Pipeline};

/// The kept records.
pub const KEPT_FILE: &str = "filtered.jsonl";
/// The refused records, one [`qa_data::rejection::Rejection`] per line.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// The funnel, as JSON.
pub const FUNNEL_FILE: &str = qa_stage::layout::work_files::FUNNEL;

/// What [`filter_file`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSummary {
    /// The counts.
    pub funnel: Funnel,
    /// Kept records.
    pub kept: PathBuf,
    /// Refused records with reasons.
    pub rejected: PathBuf,
    /// The funnel as JSON.
    pub funnel_file: PathBuf,
}

/// Runs the pipeline of `config` over the records of `input`, writing [`KEPT_FILE`],
/// [`REJECTED_FILE`] and [`FUNNEL_FILE`] into `out_dir`. With `seeds` (the human records they
/// were generated from), each record is compared with the seed its `provenance.parent_id`
/// names; a record naming no seed, or one that is not there, is an error naming its line. An
/// input without records, or with an id on two lines, is an error, and nothing is written.
pub fn filter_file(
    config: &FilterConfig,
    input: &Path,
    seeds: Option<&Path>,
    out_dir: &Path,
) -> Result<FilterSummary> {
    let mut pipeline = Pipeline::new(config)?;
    let seeds: Option<HashMap<String, QaRecord>> = seeds
        .map(|path| {
            read_keyed_jsonl::<QaRecord>(path)
                .map(|records| records.into_iter().map(|r| (r.id.clone(), r)).collect())
        })
        .transpose()?;
    let mut kept = Vec::new();
    let mut rejected = Vec::new();
    let mut ids = UniqueIds::default();
    for item in JsonlReader::<QaRecord>::open(input)? {
        let (line, record) = item?;
        ids.insert(input, &record.id, line)?;
        let seed = match &seeds {
            None => None,
            Some(seeds) => {
                let parent = record.provenance.as_ref().map(|p| p.parent_id.as_str());
                let found = parent.and_then(|id| seeds.get(id));
                if found.is_none() {
                    return Err(Error::Data(qa_data::Error::InvalidField {
                        path: input.to_path_buf(),
                        line,
                        field: "provenance.parent_id".to_string(),
                        message: match parent {
                            Some(id) => format!("seed {id:?} is not in the seed file"),
                            None => "missing: the record names no seed".to_string(),
                        },
                    }));
                }
                found
            }
        };
        let candidate = Candidate {
            record: &record,
            seed,
        };
        match pipeline.run(&candidate) {
            Ok(()) => kept.push(record),
            Err(refused) => {
                let file = input.display().to_string();
                rejected.push(refused.into_rejection(&record, &file, format!("line {line}")));
            }
        }
    }
    if kept.is_empty() && rejected.is_empty() {
        return Err(Error::Data(qa_data::Error::Empty {
            path: input.to_path_buf(),
        }));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| qa_data::Error::io(out_dir, e))?;
    let summary = FilterSummary {
        funnel: pipeline.funnel().clone(),
        kept: out_dir.join(KEPT_FILE),
        rejected: out_dir.join(REJECTED_FILE),
        funnel_file: out_dir.join(FUNNEL_FILE),
    };
    write_jsonl_atomic(&summary.kept, &kept)?;
    write_jsonl_atomic(&summary.rejected, &rejected)?;
    write_json_atomic(&summary.funnel_file, &summary.funnel)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> String {
        format!(
            r#"{{"id":"{id}","question":"Who ran to the shop?","context":"Ann ran to the shop.","answers":["Ann"],"source":"human"}}"#
        )
    }

    #[test]
    fn an_empty_or_repeating_input_is_refused_and_earlier_outputs_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let input = dir.path().join("input.jsonl");
        let config = FilterConfig::default();
        std::fs::write(&input, format!("{}\n{}\n", record("q1"), record("q2"))).expect("write");
        let summary = filter_file(&config, &input, None, &out).expect("filters");
        let kept = std::fs::read(&summary.kept).expect("kept");

        std::fs::write(&input, "\n").expect("write");
        let empty = filter_file(&config, &input, None, &out).expect_err("an empty input");
        assert!(
            matches!(&empty, Error::Data(qa_data::Error::Empty { .. })),
            "{empty:?}"
        );
        let text = format!("{}\n{}\n\n{}\n", record("q1"), record("q2"), record("q1"));
        std::fs::write(&input, text).expect("write");
        let repeated = filter_file(&config, &input, None, &out).expect_err("q1 twice");
        assert!(
            repeated
                .to_string()
                .ends_with("duplicate id `q1` at line 4 (first seen at line 1)"),
            "{repeated}"
        );
        assert_eq!(std::fs::read(&summary.kept).expect("kept"), kept);
    }
}

//! The `prepare` stage: SQuAD JSON in, the human train / validation / test splits out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use qa_data::files::{write_json_atomic, write_jsonl_atomic};
use qa_data::manifest::{FileDigest, Manifest};
use qa_data::settings::{Invalid, Section, check, section_names};
use qa_stage::layout::Split;
use qa_stage::plan::{PlannedFile, Planning, StagePlan, format_count};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::split::{SplitSizes, Splits, split};
use crate::squad::{SquadFile, read_squad};

/// Output file of the training split.
pub const TRAIN_FILE: &str = Split::Train.file_name();
/// Output file of the validation split.
pub const VAL_FILE: &str = Split::Val.file_name();
/// Output file of the test split.
pub const TEST_FILE: &str = Split::Test.file_name();
/// Output file of the questions refused while reading, with reasons.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// Output file describing the run.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The official SQuAD v1.1 training set.
pub const SQUAD_TRAIN_URL: &str =
    "https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json";
/// The official SQuAD v1.1 development set (the experiment's test questions).
pub const SQUAD_DEV_URL: &str = "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json";

/// Settings of the `prepare` stage (the `prepare:` section of a config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareConfig {
    /// SQuAD train JSON: the source of the training and validation splits.
    pub train_file: PathBuf,
    /// SQuAD dev JSON: the source of the test split.
    pub test_file: PathBuf,
    /// Where `qa-prepare` downloads `train_file` from when it is missing (null: never).
    pub train_url: Option<String>,
    /// Where `qa-prepare` downloads `test_file` from when it is missing (null: never).
    pub test_url: Option<String>,
    /// Directory that receives the splits, `rejected.jsonl` and `manifest.json`.
    pub out_dir: PathBuf,
    /// Training examples.
    pub train_size: usize,
    /// Validation examples.
    pub val_size: usize,
    /// Test examples.
    pub test_size: usize,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Section for PrepareConfig {
    const NAME: &'static str = section_names::PREPARE;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("train_size", self.train_size)?;
        check::at_least_one("val_size", self.val_size)?;
        check::at_least_one("test_size", self.test_size)
    }
}

impl Default for PrepareConfig {
    /// The real experiment: 20,000 / 1,000 / 2,000 from the full official SQuAD v1.1 files.
    fn default() -> Self {
        PrepareConfig {
            train_file: "data/raw/train-v1.1.json".into(),
            test_file: "data/raw/dev-v1.1.json".into(),
            train_url: Some(SQUAD_TRAIN_URL.into()),
            test_url: Some(SQUAD_DEV_URL.into()),
            out_dir: "data/processed".into(),
            train_size: 20_000,
            val_size: 1_000,
            test_size: 2_000,
            seed: 42,
        }
    }
}

/// What a `prepare` run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareReport {
    /// Records written per split: train, validation, test.
    pub written: [usize; 3],
    /// Questions refused while reading (both files).
    pub rejected: usize,
    /// SQuAD v2.0 unanswerable questions skipped (both files).
    pub skipped_unanswerable: usize,
    /// The manifest that was written.
    pub manifest: PathBuf,
}

/// Reads both SQuAD files and samples the splits (nothing is written).
fn read_and_split(config: &PrepareConfig) -> Result<(SquadFile, SquadFile, Splits)> {
    let train_source = read_squad(&config.train_file)?;
    let test_source = read_squad(&config.test_file)?;
    tracing::info!(
        train_file = %config.train_file.display(),
        usable = train_source.question_count(),
        rejected = train_source.rejected.len(),
        "read training source"
    );
    tracing::info!(
        test_file = %config.test_file.display(),
        usable = test_source.question_count(),
        rejected = test_source.rejected.len(),
        "read test source"
    );
    let sizes = SplitSizes {
        train: config.train_size,
        val: config.val_size,
        test: config.test_size,
        seed: config.seed,
    };
    let splits = split(&train_source, &test_source, &sizes)?;
    Ok((train_source, test_source, splits))
}

/// Runs the stage: reads both SQuAD files, samples the splits and writes every output
/// atomically, the manifest last (so a manifest always describes complete outputs).
pub fn prepare(config: &PrepareConfig) -> Result<PrepareReport> {
    let (train_source, test_source, splits) = read_and_split(config)?;

    let out = &config.out_dir;
    let rejected: Vec<_> = train_source
        .rejected
        .iter()
        .chain(&test_source.rejected)
        .collect();
    let outputs = [
        (
            TRAIN_FILE,
            write_jsonl_atomic(out.join(TRAIN_FILE), &splits.train)?,
        ),
        (
            VAL_FILE,
            write_jsonl_atomic(out.join(VAL_FILE), &splits.val)?,
        ),
        (
            TEST_FILE,
            write_jsonl_atomic(out.join(TEST_FILE), &splits.test)?,
        ),
        (
            REJECTED_FILE,
            write_jsonl_atomic(out.join(REJECTED_FILE), &rejected)?,
        ),
    ];

    let skipped_unanswerable = train_source.skipped_unanswerable + test_source.skipped_unanswerable;
    let manifest = Manifest {
        stage: "prepare".into(),
        code_version: env!("CARGO_PKG_VERSION").into(),
        seed: Some(config.seed),
        config: serde_json::to_value(config).map_err(|e| qa_data::Error::Serialize {
            path: out.join(MANIFEST_FILE),
            reason: e,
        })?,
        inputs: vec![
            digest(&config.train_file, None)?,
            digest(&config.test_file, None)?,
        ],
        outputs: outputs
            .iter()
            .map(|(name, count)| FileDigest::of(&out.join(name), *name, Some(*count as u64)))
            .collect::<qa_data::Result<_>>()?,
        counts: [
            ("train_source_questions", train_source.question_count()),
            ("test_source_questions", test_source.question_count()),
            ("train", splits.train.len()),
            ("val", splits.val.len()),
            ("test", splits.test.len()),
            ("rejected", rejected.len()),
            ("skipped_unanswerable", skipped_unanswerable),
        ]
        .into_iter()
        .map(|(name, count)| (name.to_string(), count as u64))
        .collect(),
    };
    let manifest_path = out.join(MANIFEST_FILE);
    write_json_atomic(&manifest_path, &manifest)?;
    Ok(PrepareReport {
        written: [splits.train.len(), splits.val.len(), splits.test.len()],
        rejected: rejected.len(),
        skipped_unanswerable,
        manifest: manifest_path,
    })
}

/// What `prepare` would do (see [`qa_stage::plan`]): the split sizes, from the SQuAD files when
/// they are there (read and split here, so the time is measured, not estimated; samples of the
/// splits go into the plan directory for the stages after it), else from the config, as upper
/// bounds, once the files are downloaded.
pub fn plan(config: &PrepareConfig, planning: &Planning) -> Result<StagePlan> {
    let names = [TRAIN_FILE, VAL_FILE, TEST_FILE];
    let missing: Vec<String> = [&config.train_file, &config.test_file]
        .into_iter()
        .filter(|file| !file.is_file())
        .map(|file| file.display().to_string())
        .collect();
    if !missing.is_empty() {
        let sizes = [config.train_size, config.val_size, config.test_size];
        return Ok(StagePlan {
            work: format!(
                "download {}, then sample {} / {} / {} questions",
                missing.join(" and "),
                format_count(sizes[0] as u64),
                format_count(sizes[1] as u64),
                format_count(sizes[2] as u64)
            ),
            seconds: None,
            notes: vec![
                "the download's time depends on the network; the later stages plan from the \
                 configured sizes, with no sample of the questions"
                    .to_string(),
            ],
            outputs: names
                .iter()
                .zip(sizes)
                .map(|(name, size)| {
                    let file = PlannedFile {
                        records: size as u64,
                        sample: None,
                    };
                    (config.out_dir.join(name), file)
                })
                .collect(),
            ..StagePlan::default()
        });
    }
    let start = Instant::now();
    let (train_source, test_source, splits) = read_and_split(config)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut outputs = std::collections::BTreeMap::new();
    for (name, records) in names.iter().zip([&splits.train, &splits.val, &splits.test]) {
        let file = PlannedFile {
            records: records.len() as u64,
            sample: Some(planning.write_sample(name, records)?),
        };
        outputs.insert(config.out_dir.join(name), file);
    }
    Ok(StagePlan {
        work: format!(
            "{} / {} / {} questions from {} + {} SQuAD questions",
            format_count(splits.train.len() as u64),
            format_count(splits.val.len() as u64),
            format_count(splits.test.len() as u64),
            format_count(train_source.question_count() as u64),
            format_count(test_source.question_count() as u64)
        ),
        seconds: Some(seconds),
        outputs,
        ..StagePlan::default()
    })
}

fn digest(path: &Path, records: Option<u64>) -> Result<FileDigest> {
    Ok(FileDigest::of(path, path.display().to_string(), records)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the
    /// file: every split needs examples (training picks its best epoch on the validation one).
    #[test]
    fn every_numeric_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            qa_stage::config::probe_numeric_settings::<PrepareConfig>().expect("probes"),
            "\
seed: -1 1.5
test_size: 0 -1 1.5
train_size: 0 -1 1.5
val_size: 0 -1 1.5
"
        );
    }
}

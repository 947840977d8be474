//! The dry run's estimates: what a stage binary prints when it is given `--plan DIR` instead of
//! running, and how it learns the size and look of inputs that earlier stages have not written
//! yet.
//!
//! The experiment driver (`qa-experiment --dry-run`) asks each stage that would run, in order.
//! A stage answers with a [`StagePlan`]: its work in its own unit, the estimated wall time on the
//! device it would use, and the files it would write ([`PlannedFile`]: a record count, and a
//! file whose records stand in for the content). The driver collects those in
//! `DIR/planned.json`, so the next stage plans from them where the real file does not exist
//! yet, or will be rewritten. Nothing but `DIR` is written in planning: samples, and the
//! calibrations that the model stages cache per model shape and device.
//!
//! ```
//! use qa_stage::plan::{format_count, format_duration};
//!
//! assert_eq!(format_count(80_000), "80,000");
//! assert_eq!(format_duration(20_400.0), "5 h 40 min");
//! assert_eq!(format_duration(3.0 * 86_400.0 + 7_200.0), "3.1 days");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use qa_data::QaRecord;
use qa_data::files::{read_json, read_jsonl, write_json_atomic};

/// The long flag that asks a stage binary for its plan (`--plan DIR`), as the driver passes it.
pub const PLAN_FLAG: &str = crate::commands::flags::PLAN;
/// The help of that flag, the same in every stage binary.
pub const PLAN_HELP: &str = "Run nothing: print the work and its estimated time (or an \
    endpoint's requests and tokens) as one line of JSON, planning inputs not written yet from \
    DIR's record of what earlier stages would write, and caching the model's calibration in \
    DIR (qa-experiment --dry-run passes it)";
/// In the plan directory: the files earlier stages would write, path → [`PlannedFile`].
pub const PLANNED_FILE: &str = "planned.json";
/// In the plan directory: the dry run's plan of each stage, `[name, StagePlan]` pairs in order
/// (for comparing with the times the stage records measure).
pub const ESTIMATES_FILE: &str = "estimates.json";
/// In the plan directory: the model stages' cached calibrations.
pub const CALIBRATION_DIR: &str = "calibration";
/// In the plan directory: samples of files that do not exist yet.
pub const SAMPLES_DIR: &str = "samples";
/// Records read from an input, spread over it, to stand in for all of it (prompt and answer
/// lengths).
pub const SAMPLE_RECORDS: usize = 64;

/// A file as a later stage will find it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFile {
    /// How many records it will hold (at most).
    pub records: u64,
    /// A JSONL file whose records look like its records, when known ([`SAMPLE_RECORDS`] of
    /// them, spread over the file, are read).
    pub sample: Option<PathBuf>,
}

/// What a stage answers to `--plan`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    /// The work in the stage's own unit, e.g. `80,000 candidates (20,000 seeds × 4)`.
    pub work: String,
    /// The estimated wall time in seconds; `None` when it cannot be estimated (`notes` says
    /// why).
    pub seconds: Option<f64>,
    /// Where it would run, e.g. `cpu (burn-flex, 2 threads)`, when a device does the work.
    pub device: Option<String>,
    /// Whether `device` is the CPU, for the driver's warning about days-long CPU runs.
    pub on_cpu: bool,
    /// Further lines: requests and tokens of an API backend, approximations made.
    pub notes: Vec<String>,
    /// The files it writes, as later stages will read them.
    pub outputs: BTreeMap<PathBuf, PlannedFile>,
}

impl StagePlan {
    /// Prints the plan as one line of JSON on stdout, where the driver reads it.
    pub fn print(&self) -> Result<()> {
        let line = serde_json::to_string(self).map_err(|reason| qa_data::Error::Serialize {
            path: PathBuf::from("<stdout>"),
            reason,
        })?;
        println!("{line}");
        Ok(())
    }
}

/// An input as a planning stage sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedInput {
    /// Its records (at most; a planned file's count).
    pub records: u64,
    /// Records that stand in for the content (empty when nothing is known of it yet).
    pub sample: Vec<QaRecord>,
    /// The file they come from, to hand on with outputs derived from this input.
    pub sample_file: Option<PathBuf>,
}

impl PlannedInput {
    /// This input's look, for an output of `records` records derived from it.
    pub fn derived(&self, records: u64) -> PlannedFile {
        PlannedFile {
            records,
            sample: self.sample_file.clone(),
        }
    }
}

/// The planning directory of a dry run, and what earlier stages said they would write.
#[derive(Debug, Clone)]
pub struct Planning {
    dir: PathBuf,
    planned: BTreeMap<PathBuf, PlannedFile>,
}

impl Planning {
    /// Opens `dir` (created if missing) and reads its [`PLANNED_FILE`], if any.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let file = dir.join(PLANNED_FILE);
        let planned = match file.is_file() {
            true => read_json(&file)?,
            false => BTreeMap::new(),
        };
        Ok(Planning {
            dir: dir.to_path_buf(),
            planned,
        })
    }

    /// Opens `dir` for a new dry run: what an earlier one planned is forgotten. Calibrations
    /// stay, named by what they depend on; samples are rewritten by the stages that plan them.
    pub fn start(dir: &Path) -> Result<Self> {
        let file = dir.join(PLANNED_FILE);
        if file.is_file() {
            std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
        }
        Self::open(dir)
    }

    /// The planning directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the model stages cache their calibrations.
    pub fn calibration_dir(&self) -> PathBuf {
        self.dir.join(CALIBRATION_DIR)
    }

    /// Writes [`SAMPLE_RECORDS`] of `records`, spread over them, as the sample of a file named `name`
    /// that does not exist yet, and returns its path.
    pub fn write_sample(&self, name: &str, records: &[QaRecord]) -> Result<PathBuf> {
        let path = self.dir.join(SAMPLES_DIR).join(name);
        qa_data::files::write_jsonl_atomic(&path, spread(records))?;
        Ok(path)
    }

    /// Records that later stages will find at `path`, replacing what was planned there.
    pub fn record(&mut self, path: PathBuf, file: PlannedFile) -> Result<()> {
        self.planned.insert(path, file);
        Ok(write_json_atomic(
            self.dir.join(PLANNED_FILE),
            &self.planned,
        )?)
    }

    /// `path` as the stage would read it: as an earlier stage planned it, else as it is on
    /// disk; an error naming it when neither knows it.
    pub fn input(&self, path: &Path) -> Result<PlannedInput> {
        self.known_input(path)?.ok_or_else(|| {
            let missing = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither on disk nor planned by an earlier stage of this dry run",
            );
            Error::io(path, missing)
        })
    }

    /// [`Planning::input`], `None` when neither knows it.
    fn known_input(&self, path: &Path) -> Result<Option<PlannedInput>> {
        if let Some(planned) = self.planned.get(path) {
            let sample = match &planned.sample {
                Some(file) => sample_of(file)?,
                None => Vec::new(),
            };
            return Ok(Some(PlannedInput {
                records: planned.records,
                sample,
                sample_file: planned.sample.clone(),
            }));
        }
        if !path.is_file() {
            return Ok(None);
        }
        let records: Vec<QaRecord> = read_jsonl(path)?;
        Ok(Some(PlannedInput {
            records: records.len() as u64,
            sample: spread(&records),
            sample_file: Some(path.to_path_buf()),
        }))
    }
}

/// [`SAMPLE_RECORDS`] of `records`, evenly spaced: files in article order would give a first
/// few records from one or two passages.
fn spread(records: &[QaRecord]) -> Vec<QaRecord> {
    let (count, taken) = (records.len(), records.len().min(SAMPLE_RECORDS));
    (0..taken)
        .map(|i| records[i * count / taken].clone())
        .collect()
}

/// The sample that a sample file gives.
fn sample_of(file: &Path) -> Result<Vec<QaRecord>> {
    Ok(spread(&read_jsonl::<QaRecord>(file)?))
}

/// A count with thousands separators: `80,000`.
pub fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration for people: `40 s`, `12 min 5 s`, `5 h 40 min`, `3.1 days`.
pub fn format_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 1.0 {
        return "< 1 s".to_string();
    }
    if seconds >= 2.0 * 86_400.0 {
        return format!("{:.1} days", seconds / 86_400.0);
    }
    let whole = seconds.round() as u64;
    let (hours, minutes, secs) = (whole / 3600, whole % 3600 / 60, whole % 60);
    match (hours, minutes) {
        (0, 0) => format!("{secs} s"),
        (0, _) => format!("{minutes} min {secs} s"),
        _ => {
            // Rounded to the minute: seconds mean nothing at this scale.
            let minutes_total = (seconds / 60.0).round() as u64;
            format!("{} h {} min", minutes_total / 60, minutes_total % 60)
        }
    }
}

/// Mean and 90th percentile of `values` (0 for none): the typical length, and the length a
/// batch waits for.
pub fn mean_and_p90(values: &[usize]) -> (f64, usize) {
    if values.is_empty() {
        return (0.0, 0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mean = sorted.iter().sum::<usize>() as f64 / sorted.len() as f64;
    let p90 = sorted[((sorted.len() - 1) as f64 * 0.9).round() as usize];
    (mean, p90)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(format_duration(0.2), "< 1 s");
        assert_eq!(format_duration(40.4), "40 s");
        assert_eq!(format_duration(725.0), "12 min 5 s");
        assert_eq!(
            format_duration(3600.0 * 5.0 + 40.0 * 60.0 + 20.0),
            "5 h 40 min"
        );
        assert_eq!(format_duration(3600.0 * 47.0), "47 h 0 min");
        assert_eq!(format_duration(86_400.0 * 7.4), "7.4 days");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
    }

    #[test]
    fn the_90th_percentile_is_a_value_of_the_list() {
        assert_eq!(mean_and_p90(&[]), (0.0, 0));
        assert_eq!(mean_and_p90(&[5]), (5.0, 5));
        let values: Vec<usize> = (1..=11).collect();
        assert_eq!(mean_and_p90(&values), (6.0, 10));
    }

    #[test]
    fn a_planned_file_stands_in_for_the_file_on_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let on_disk = dir.path().join("train.jsonl");
        let record = QaRecord {
            id: "q1".into(),
            question: "Who ran?".into(),
            context: "Ann ran.".into(),
            answers: vec!["Ann".into()],
            source: qa_data::Source::Human,
            provenance: None,
        };
        qa_data::files::write_jsonl_atomic(&on_disk, [&record, &record]).expect("writes");
        let mut planning = Planning::open(&dir.path().join("plan")).expect("opens");
        let read = planning.input(&on_disk).expect("reads");
        assert_eq!((read.records, read.sample.len()), (2, 2));
        let later = dir.path().join("later.jsonl");
        assert!(planning.known_input(&later).expect("ok").is_none());
        let error = planning.input(&later).expect_err("unknown").to_string();
        assert!(
            error.contains("later.jsonl") && error.contains("planned"),
            "{error}"
        );
        planning
            .record(on_disk.clone(), read.derived(20_000))
            .expect("records");
        // A second stage, in another process, sees what the first planned.
        let again = Planning::open(&dir.path().join("plan")).expect("opens");
        let planned = again.input(&on_disk).expect("reads");
        assert_eq!((planned.records, planned.sample.len()), (20_000, 2));
    }
}

//! What the generation stages share: shards ([`Shard`], by record id), the settings recorded
//! beside a run's ledger, resuming after the ledger's last complete line, and gathering the
//! ledgers of sharded runs.
//!
//! A stage appends one ledger line per input record as it goes; everything else it writes is
//! derived from the ledger, so a killed run loses at most the line being written, and the
//! parts of a sharded run join into exactly what one run gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::{JsonlAppender, read_appended, sha256_file};
use qa_stage::resume::{Resume, WorkFiles};
pub use qa_stage::shard::Shard;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::generator::Generator;

/// The ledger: one line per input record done.
pub const LEDGER_FILE: &str = qa_stage::layout::work_files::LEDGER;
/// The settings of the run.
pub const SETTINGS_FILE: &str = qa_stage::layout::work_files::SETTINGS;

/// The files and part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The input records (JSONL): the human seeds, or the human records to re-answer.
    pub input: PathBuf,
    /// Which part of the input to do.
    pub shard: Shard,
    /// Where the ledger and outputs go.
    pub out_dir: PathBuf,
    /// Continue the run whose ledger is in `out_dir` (without it, a ledger there is an error).
    pub resume: bool,
}

/// What a run was started with, recorded beside its ledger: a resume must use the same, and
/// the parts of a merge must differ only in their shard.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSettings<S> {
    /// The stage's settings that decide its output.
    pub stage: S,
    /// The generator's name, for provenance.
    pub generator: String,
    /// Its sampling settings, for provenance.
    pub sampling: BTreeMap<String, serde_json::Value>,
    /// The input file's SHA-256.
    pub input_sha256: String,
    /// Which part of the input this run does.
    pub shard: Shard,
}

impl<S> RunSettings<S> {
    /// The settings of a run of `stage` with `generator` over `files`.
    pub fn new(stage: S, generator: &dyn Generator, files: &RunFiles) -> Result<Self> {
        Ok(RunSettings {
            stage,
            generator: generator.name(),
            sampling: generator.sampling(),
            input_sha256: sha256_file(&files.input)?,
            shard: files.shard,
        })
    }
}

/// Progress of a run, reported after each input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input records done (this part's).
    pub done: usize,
    /// Input records of this part.
    pub total: usize,
    /// Records kept so far.
    pub kept: usize,
    /// Generated items refused so far.
    pub rejected: usize,
}

/// A ledger line: the outcome for one input record.
pub(crate) trait LedgerLine: Serialize + DeserializeOwned {
    /// The record's index in the input file.
    fn index(&self) -> usize;
}

/// A started or resumed run: its ledger open for appending, the lines already done, and the
/// indices of this part still to do.
pub(crate) struct OpenRun<T> {
    pub ledger: JsonlAppender,
    pub done: Vec<T>,
    pub pending: Vec<usize>,
    /// Records of this part, done or not.
    pub part_len: usize,
}

/// Starts a run over `input` in `files.out_dir` (recording `settings`; a ledger already there
/// is an error) or resumes one (which must have been started with the same `settings`), through
/// the stages' one resume protocol ([`qa_stage::resume`]).
pub(crate) fn open<S, T>(
    files: &RunFiles,
    settings: &RunSettings<S>,
    input: &[QaRecord],
) -> Result<OpenRun<T>>
where
    S: Serialize + DeserializeOwned,
    T: LedgerLine,
{
    let work =
        WorkFiles::in_dir(&files.out_dir).open::<_, T>(settings, Resume::if_asked(files.resume))?;
    let next = work.done.last().map_or(0, |last| last.index() + 1);
    let mine: Vec<usize> = (0..input.len())
        .filter(|&i| files.shard.owns(&input[i].id))
        .collect();
    let part_len = mine.len();
    let pending = mine.into_iter().filter(|&i| i >= next).collect();
    Ok(OpenRun {
        ledger: work.ledger,
        done: work.done,
        pending,
        part_len,
    })
}

/// The settings and ledger lines of the parts of a sharded run, by input index; the parts
/// must share their settings but the shard, and have been made from `input`.
pub(crate) fn gather<S, T>(
    parts: &[PathBuf],
    input: &Path,
) -> Result<(RunSettings<S>, BTreeMap<usize, T>)>
where
    S: Serialize + DeserializeOwned + PartialEq + Clone,
    T: LedgerLine,
{
    let mut settings: Option<RunSettings<S>> = None;
    let mut lines = BTreeMap::new();
    let mut shards = Vec::new();
    for part in parts {
        let work = WorkFiles::in_dir(part);
        let part_settings: RunSettings<S> = work.recorded()?;
        if shards.contains(&part_settings.shard) {
            return Err(Error::Config(format!(
                "{} is shard {}/{} again",
                part.display(),
                part_settings.shard.index,
                part_settings.shard.count
            )));
        }
        shards.push(part_settings.shard);
        let whole = RunSettings {
            shard: Shard::WHOLE,
            ..part_settings
        };
        match &settings {
            None => settings = Some(whole),
            Some(first) if *first != whole => {
                return Err(Error::Config(format!(
                    "{} was made with other settings than {}",
                    part.display(),
                    parts[0].display()
                )));
            }
            Some(_) => {}
        }
        for line in read_appended::<T>(&work.ledger)? {
            lines.insert(line.index(), line);
        }
    }
    let Some(settings) = settings else {
        return Err(Error::Config("nothing to merge".to_string()));
    };
    if settings.input_sha256 != sha256_file(input)? {
        return Err(Error::Config(format!(
            "{} is not the input file the parts were made from",
            input.display()
        )));
    }
    Ok((settings, lines))
}

/// The error for input record `index` (id `id`) missing from every part of a merge.
pub(crate) fn missing(index: usize, id: &str) -> Error {
    Error::Config(format!(
        "record {index} ({id}) is in none of the parts: a shard is missing or unfinished"
    ))
}

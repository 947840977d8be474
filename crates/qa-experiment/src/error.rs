//! The one error type of this crate.

use std::path::PathBuf;
use std::process::ExitStatus;

use crate::Group;

/// Everything that can stop a run of the experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the config, a stage record or an input, or writing a record, failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// The stage's configuration, dry run or merge of shards failed.
    #[error(transparent)]
    Stage(#[from] qa_stage::Error),
    /// `--only` or `--from` named no stage.
    #[error("no stage {name:?}; the stages are {}", Group::ALL.map(Group::name).join(", "))]
    UnknownStage {
        /// The name given.
        name: String,
    },
    /// A stage binary is not in the binaries' directory.
    #[error(
        "{program}: no such stage binary; build the stage binaries (`cargo build --release`) \
         and point the driver at their directory"
    )]
    MissingBinary {
        /// Where it was looked for.
        program: PathBuf,
    },
    /// A stage binary could not be started.
    // The reason is in the message and not also a `source()`, as qa-data's `Io`.
    #[error("starting {program}: {reason}")]
    Start {
        /// The binary.
        program: PathBuf,
        /// What the operating system said.
        reason: std::io::Error,
    },
    /// Fetching the SQuAD files before `prepare` failed.
    #[error("the SQuAD files could not be had ({status})")]
    Fetch {
        /// How `qa-prepare --fetch-only` ended.
        status: ExitStatus,
    },
    /// A stage's binary failed after saving something; that stays for the next run to
    /// continue.
    #[error("stage {stage} failed ({status}); re-run to continue it")]
    StageFailed {
        /// The stage.
        stage: String,
        /// How its binary ended.
        status: ExitStatus,
    },
    /// A stage's binary failed before saving anything of its own (its error says why): the
    /// outputs of its last finished run are back in place.
    #[error("stage {stage} failed ({status}) before saving anything; its last outputs are kept")]
    StageRefused {
        /// The stage.
        stage: String,
        /// How its binary ended.
        status: ExitStatus,
    },
    /// A stage's input is missing because an earlier stage was skipped (`--only`, `--from`).
    #[error("{stage}: an input is missing ({missing}); run the earlier stages first")]
    MissingInput {
        /// The stage.
        stage: String,
        /// The missing files, comma-separated.
        missing: String,
    },
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

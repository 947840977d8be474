//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong in the work around a stage: its configuration, its dry run, the merge of
/// its shards, or the data files it reads and writes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a data file failed (it names the file, line and field).
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// The parts of a sharded run do not make up a whole run.
    #[error("{path}: {message}")]
    Merge {
        /// The part (or output) at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A configuration file, variable or flag is missing, unknown or of the wrong type.
    #[error("configuration: {0}")]
    Config(String),
    /// A run's earlier work cannot be continued, or must not be overwritten
    /// ([`crate::resume`]).
    #[error("resume: {0}")]
    Resume(String),
    /// A setting is of the right type but not one its stage can run with.
    #[error("configuration: `{key}` (from {origin}) {message}")]
    InvalidSetting {
        /// The key from its section down, e.g. `train.batch_size`.
        key: String,
        /// Where the value came from: `config file PATH`, `variable QA_…`, a flag or the
        /// defaults.
        origin: String,
        /// What it must be, and what it is.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, reason: std::io::Error) -> Self {
        Error::Data(qa_data::Error::io(path, reason))
    }
}

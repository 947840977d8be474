//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong in a T5 stage: the model, the data files, the stage's configuration or
/// dry run, or the run itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading, running or training the model failed.
    #[error(transparent)]
    Model(#[from] t5_lora::Error),
    /// Reading records or writing predictions failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// The stage's dry run failed, or its work files refuse a resume or a new start
    /// ([`qa_stage::resume`]).
    #[error(transparent)]
    Stage(#[from] qa_stage::Error),
    /// A setting the stage cannot run with.
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
    /// A prediction run cannot start: its input is ambiguous.
    #[error("{0}")]
    Prediction(String),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`, as `qa_data` reports it.
    pub(crate) fn io(path: impl Into<PathBuf>, reason: std::io::Error) -> Self {
        Error::Data(qa_data::Error::io(path, reason))
    }
}

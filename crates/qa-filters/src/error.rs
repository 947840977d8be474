//! The one error type of this crate.

/// What can go wrong building or running a filter pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A threshold is out of range (the section checks its own when it loads).
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
    /// Reading or writing records failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

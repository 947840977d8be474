//! The one error type of this crate.

/// What can go wrong building or running a filter pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A threshold is out of range.
    #[error("filters.{filter}: {message}")]
    Config {
        /// The filter's config key.
        filter: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing records failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

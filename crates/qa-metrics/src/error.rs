//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while scoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a gold or prediction file failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// Reading the gold questions failed (the `stage` feature).
    #[cfg(feature = "stage")]
    #[error(transparent)]
    Squad(#[from] qa_squad::Error),
    /// The stage's dry run failed (the `stage` feature).
    #[cfg(feature = "stage")]
    #[error(transparent)]
    Stage(#[from] qa_stage::Error),
    /// Predictions name questions the gold set does not have: the files do not belong together.
    #[error(
        "{path}: {count} prediction(s) answer questions that are not in the gold set {gold}: {examples}"
    )]
    UnknownIds {
        /// The prediction file.
        path: PathBuf,
        /// The gold file.
        gold: PathBuf,
        /// How many predictions have unknown ids.
        count: usize,
        /// The first few, as `line N: id`.
        examples: String,
    },
    /// Two score lists to be compared pair by pair have different lengths.
    #[error("a paired comparison needs the same questions: {a} scores against {b}")]
    LengthMismatch {
        /// Length of the first list.
        a: usize,
        /// Length of the second list.
        b: usize,
    },
    /// There is nothing to score.
    #[error("no questions to score")]
    NoQuestions,
    /// Two systems were given the same name.
    #[error("system name `{0}` is given twice")]
    DuplicateSystem(String),
    /// A setting is out of range (each section checks its own when it loads).
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

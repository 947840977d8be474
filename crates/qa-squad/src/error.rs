//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong while reading, splitting or fetching SQuAD, or preparing the splits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a data file failed (it names the file, line and field).
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// The stage's dry run or configuration failed.
    #[error(transparent)]
    Stage(#[from] qa_stage::Error),
    /// A source file is missing and downloading it failed.
    #[error(
        "{path} is missing and could not be downloaded from {url}: {message}; \
         download it there by hand, or point the config at a copy"
    )]
    Download {
        /// Where the file was looked for and was to be written.
        path: PathBuf,
        /// Where it was downloaded from.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A split asks for more examples than the input holds.
    #[error(
        "cannot sample {requested} {split} examples from {path}: it holds {available} usable questions{hint}"
    )]
    NotEnough {
        /// Which split or splits (e.g. `train + validation`).
        split: String,
        /// How many were asked for.
        requested: usize,
        /// How many usable questions the input holds.
        available: usize,
        /// The input file.
        path: PathBuf,
        /// Extra advice, already formatted (may be empty).
        hint: String,
    },
    /// The same context ended up in two splits, which would leak test answers into training.
    #[error("context of record `{id}` appears in both the {first} and the {second} split")]
    ContextLeak {
        /// A record whose context is shared.
        id: String,
        /// The first split holding the context.
        first: String,
        /// The second split holding it.
        second: String,
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

//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while writing the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed (the message names the file, line and field).
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// Reading the SQuAD source failed.
    #[error(transparent)]
    Squad(#[from] qa_squad::Error),
    /// Resampling a breakdown or a subset failed (the settings come from `metrics.json`).
    #[error("resampling: {0}")]
    Metrics(#[from] qa_metrics::Error),
    /// A file the report needs is not in the run directory.
    #[error("{path}: not found; {hint}")]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// Which stage writes it.
        hint: &'static str,
    },
    /// The run directory's files do not fit together.
    #[error("{path}: {message}")]
    Inconsistent {
        /// The file that does not fit.
        path: PathBuf,
        /// How.
        message: String,
    },
    /// A setting of the `report:` section is out of range.
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
    /// Drawing a plot failed.
    #[error("plot {name}: {message}")]
    Plot {
        /// The plot.
        name: &'static str,
        /// What the drawing library said.
        message: String,
    },
    /// Writing the metrics table failed.
    // The reason is in the message and not also a `source()`, as qa-data's `Io`.
    #[error("{path}: {reason}")]
    Csv {
        /// The table.
        path: PathBuf,
        /// What the CSV writer said.
        reason: csv::Error,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// `config.json` or the shard index is not what a T5 checkpoint has.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint directory has no weights file.
    #[error(
        "{dir}: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)"
    )]
    NoWeights {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A weights file is unreadable: truncated or corrupted, typically an interrupted download.
    #[error("{path}: unreadable safetensors file ({message}); delete it and download it again")]
    CorruptWeights {
        /// The damaged file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// Tensors the model needs are not in the checkpoint.
    #[error("{dir}: checkpoint lacks {} tensor(s) the model needs: {}", names.len(), names.join(", "))]
    MissingTensors {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Checkpoint names of the missing tensors.
        names: Vec<String>,
    },
    /// The checkpoint has tensors the model does not know (a different architecture).
    #[error("{dir}: checkpoint has {} tensor(s) this T5 does not use: {}", names.len(), names.join(", "))]
    UnexpectedTensors {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Names of the unexpected tensors.
        names: Vec<String>,
    },
    /// A tensor has the wrong shape or type for its place in the model.
    #[error("{path}: tensor {name}: {message}")]
    BadTensor {
        /// The file holding it.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

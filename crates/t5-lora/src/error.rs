//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    #[error("{path}: damaged safetensors file ({message}); delete {} and download it again", delete.display())]
    CorruptWeights {
        /// The damaged file, as the checkpoint names it.
        path: PathBuf,
        /// The file to delete: the cache blob behind `path` when it is a link.
        delete: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model id is neither a local directory nor a checkpoint that can be found or fetched.
    #[error("model {model}: {message}")]
    ModelNotFound {
        /// The id or path asked for.
        model: String,
        /// Where it was looked for, and why it is not there.
        message: String,
    },
    /// `tokenizer.json` is unreadable or not a T5 tokenizer, or tokenizing failed.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The requested device is unknown or not compiled in.
    #[error("{0}")]
    Device(String),
    /// The requested float type is unknown, the device has no arithmetic in it, or converting
    /// a model to it failed.
    #[error("{0}")]
    Dtype(String),
    /// LoRA settings or an adapter are unusable.
    #[error("LoRA: {0}")]
    Lora(String),
    /// Training cannot start or go on: bad settings, a diverging loss, an unusable checkpoint
    /// or run directory.
    #[error("training: {0}")]
    Training(String),
    /// Reading records or writing predictions failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// A generation setting is out of range.
    #[error("invalid generation setting: {0}")]
    Generation(String),
    /// A setting the model cannot run with (each section checks its own when it loads).
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
    /// The checkpoint's tensors are not this model's: some are missing, or some are unknown (a
    /// different architecture, or a config that does not match the weights).
    #[error(
        "{dir}: checkpoint does not fit the model its config.json describes: {}",
        describe_mismatch(missing, unexpected)
    )]
    TensorMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Checkpoint names of the tensors the model needs but the checkpoint lacks.
        missing: Vec<String>,
        /// Checkpoint names of the tensors the model does not use.
        unexpected: Vec<String>,
    },
    /// A tensor has the wrong shape or type for its place in the model.
    #[error("{path}: {message}")]
    BadTensor {
        /// The file holding it.
        path: PathBuf,
        /// Which tensor, and what is wrong with it.
        message: String,
    },
}

fn describe_mismatch(missing: &[String], unexpected: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "missing {} tensor(s): {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected tensor(s): {}",
            unexpected.len(),
            unexpected.join(", ")
        ));
    }
    parts.join("; ")
}

impl Error {
    /// An I/O error about `path` (`qa_data`'s, which every crate of the workspace reports).
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Data(qa_data::Error::io(path, source))
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The manifest each stage writes beside its outputs: what went in, with which settings, and
//! what came out. Later stages and re-runs compare manifests instead of timestamps.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{read_json, sha256_file};

/// A file named in a manifest, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The path as given (inputs) or relative to the manifest's directory (outputs).
    pub path: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Number of records, for JSONL files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

impl FileDigest {
    /// Hashes `path`, recording it under the name `shown_as`.
    pub fn of(path: &Path, shown_as: impl Into<String>, records: Option<u64>) -> Result<Self> {
        let bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        Ok(FileDigest {
            path: shown_as.into(),
            sha256: sha256_file(path)?,
            bytes,
            records,
        })
    }
}

/// `manifest.json`: a stage's inputs, settings and outputs. It holds no timestamps, so that the
/// same inputs and config give a byte-identical manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The stage that wrote it (e.g. `prepare`).
    pub stage: String,
    /// Version of the code that ran the stage.
    pub code_version: String,
    /// The seed of the stage's random choices, if it makes any.
    pub seed: Option<u64>,
    /// The stage's fully resolved configuration.
    pub config: serde_json::Value,
    /// Input files with checksums.
    pub inputs: Vec<FileDigest>,
    /// Output files with checksums and record counts.
    pub outputs: Vec<FileDigest>,
    /// Named counts (records read, written, rejected, skipped, …).
    pub counts: BTreeMap<String, u64>,
}

impl Manifest {
    /// Reads a manifest written by [`crate::files::write_json_atomic`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path)
    }
}

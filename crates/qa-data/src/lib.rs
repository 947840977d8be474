//! Data for the provenance-qa experiment: the [`QaRecord`] that flows through every stage, the
//! SQuAD reader, deterministic by-article splits, prediction files, streaming JSONL files with atomic writes and
//! crash recovery, stage manifests, and layered configuration.
//!
//! ```
//! use qa_data::{QaRecord, Source, files::{read_jsonl, write_jsonl_atomic}};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("human_train.jsonl");
//! let record = QaRecord {
//!     id: "q1".into(),
//!     question: "Who ran?".into(),
//!     context: "Ann ran.".into(),
//!     answers: vec!["Ann".into()],
//!     source: Source::Human,
//!     provenance: None,
//! };
//! write_jsonl_atomic(&path, [&record])?;
//! let back: Vec<QaRecord> = read_jsonl(&path)?;
//! assert_eq!(back, [record]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod commands;
pub mod config;
#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod files;
pub mod hub_cache;
pub mod layout;
pub mod manifest;
pub mod parts;
pub mod plan;
pub mod predictions;
pub mod prepare;
mod record;
pub mod rejection;
pub mod run_place;
pub mod shard;
pub mod split;
pub mod squad;
pub mod template;
pub mod usage;

pub use error::{Error, Result};
pub use record::{Provenance, QaRecord, Source};

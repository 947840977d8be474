//! Data for the provenance-qa experiment: the [`QaRecord`] that flows through every stage, its
//! rejections and prompt templates, prediction and usage records, streaming JSONL files with
//! atomic writes and crash recovery, stage manifests, the Hugging Face cache lookup, and typed
//! settings ([`settings`]).
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

mod error;
pub mod files;
pub mod hub_cache;
pub mod manifest;
pub mod model_files;
pub mod predictions;
mod record;
pub mod rejection;
pub mod settings;
pub mod template;
pub mod usage;

pub use error::{Error, Result};
pub use record::{Provenance, QaRecord, Source};

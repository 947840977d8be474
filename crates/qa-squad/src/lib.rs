//! SQuAD v1.1 for the provenance-qa experiment: the reader, which keeps what it rejects with
//! the reason, and the gold questions of scoring ([`squad`]); deterministic by-article splits
//! with no passage in two of them ([`split`]); the download of the source files (feature
//! `download`); and the prepare stage that writes the human splits ([`prepare`]).
//!
//! Reading a SQuAD file:
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("dev.json");
//! std::fs::write(
//!     &path,
//!     r#"{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Ann ran.",
//!         "qas": [{"id": "q1", "question": "Who ran?",
//!                  "answers": [{"text": "Ann", "answer_start": 0}]}]}]}]}"#,
//! )?;
//! let squad = qa_squad::squad::read_squad(&path)?;
//! assert_eq!(squad.articles.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod prepare;
pub mod split;
pub mod squad;

pub use error::{Error, Result};

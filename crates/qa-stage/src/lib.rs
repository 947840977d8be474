//! What the stage binaries of provenance-qa and its driver share, so that every stage is run,
//! configured, planned and sharded the same way:
//!
//! - [`config`]: a stage's section of the layered configuration (defaults, YAML files, `QA_`
//!   variables, flags), validated as it loads;
//! - [`commands`]: each stage's command line as one type, parsed by its binary and written by
//!   the driver (feature `commands`), and `cli`, what every binary does around its work
//!   (feature `cli`);
//! - [`plan`]: the `--plan` dry run, which prints a stage's work and estimated time;
//! - [`shard`] and [`parts`]: one stage run as several processes, and the merge of their parts;
//! - [`layout`]: where each stage's files sit in a run directory.
//!
//! Loading a stage's section:
//!
//! ```
//! use qa_data::settings::{Invalid, Section, check, section_names};
//!
//! #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Report {
//!     bins: usize,
//! }
//!
//! impl Section for Report {
//!     const NAME: &'static str = section_names::REPORT;
//!
//!     fn validate(&self) -> Result<(), Invalid> {
//!         check::at_least_one("bins", self.bins)
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("run.yaml");
//! std::fs::write(&file, "report:\n  bins: 0\n")?;
//! let refused = qa_stage::config::load::<Report>(&[file], &()).unwrap_err();
//! assert!(refused.to_string().contains("`report.bins`"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod commands;
pub mod config;
mod error;
pub mod layout;
pub mod parts;
pub mod plan;
pub mod shard;

pub use error::{Error, Result};

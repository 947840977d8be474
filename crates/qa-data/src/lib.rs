#![doc = include_str!("../README.md")]
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

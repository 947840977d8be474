#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod commands;
pub mod config;
mod error;
pub mod layout;
pub mod parts;
pub mod plan;
pub mod resume;
pub mod shard;

pub use error::{Error, Result};

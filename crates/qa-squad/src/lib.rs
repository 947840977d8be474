#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[cfg(feature = "download")]
pub mod download;
mod error;
pub mod prepare;
pub mod split;
pub mod squad;

pub use error::{Error, Result};

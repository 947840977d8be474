#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod breakdown;
pub mod compare;
mod error;
pub mod evaluate;
pub mod power;
pub mod squad;
#[cfg(feature = "stage")]
pub mod stage;

pub use error::{Error, Result};

//! FLAN-T5 (T5 v1.0 and v1.1) in Burn: the model, Hugging Face checkpoint loading, and
//! (in later steps) generation and LoRA fine-tuning.
//!
//! One implementation serves every Burn backend: the [`burn::prelude::Device`] chosen at run
//! time decides (CPU through `burn-flex` by default).

#![deny(missing_docs)]

pub mod checkpoint;
mod error;
pub mod model;

pub use error::{Error, Result};

pub use model::{T5Config, T5ForConditionalGeneration};

//! Synthetic question/answer generation from human seed records: a [`Generator`] (a local T5
//! through `t5-lora`), the synthesis stage (paraphrased questions, quality-filtered by
//! `qa-filters`, resumable, shardable, with an acceptance floor that stops a run producing
//! garbage before anything trains on it).

#![deny(missing_docs)]

mod error;
pub mod generator;
pub mod synthesize;

pub use error::{Error, Result};
pub use generator::{Generator, Request, T5Generator, T5GeneratorConfig};

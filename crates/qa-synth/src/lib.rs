//! Generated question/answer data from human records: a [`Generator`] (a local T5 through
//! `t5-lora`, or an OpenAI-compatible chat-completions endpoint); the contamination stage
//! (model B's data: human questions, generated answers); and the synthesis stage (model C's:
//! paraphrased questions, quality-filtered by `qa-filters` and optionally by a round trip,
//! with an acceptance floor that stops a run producing garbage before anything trains on it).
//! Both stages resume after a kill and split into shards ([`run`]).

#![deny(missing_docs)]

mod backend;
mod budget;
pub mod contaminate;
mod error;
mod generator;
mod openai;
mod plan;
pub mod round_trip;
pub mod run;
mod spending;
pub mod synthesize;
mod t5;

pub use backend::{Backend, Decoding, GeneratorConfig};
pub use budget::Budget;
pub use error::{Error, Result};
pub use generator::{Completion, Generator, Request};
pub use openai::{OpenAiConfig, OpenAiGenerator};
pub use t5::{T5Generator, T5GeneratorConfig};

//! Generated question/answer data from human records: a [`Generator`] (a local T5 through
//! `t5-lora`, or an OpenAI-compatible chat-completions endpoint); the contamination stage
//! (model B's data: human questions, generated answers); and the synthesis stage (model C's:
//! paraphrased questions, quality-filtered by `qa-filters` and optionally by a round trip,
//! with an acceptance floor that stops a run producing garbage before anything trains on it).
//! Both stages resume after a kill and split into shards ([`run`]).
//!
//! A stage's generator settings, the same decoding on either backend:
//!
//! ```
//! use qa_synth::{Backend, Decoding, GeneratorConfig};
//!
//! // The study's sampling for synthesis: a local T5 by default, or an endpoint.
//! let sampling = Decoding::Sample { temperature: 0.8, top_p: 0.95 };
//! let generator = GeneratorConfig::decoding(sampling, 64);
//! assert_eq!(generator.backend, Backend::T5);
//! assert!(generator.t5.generation.do_sample);
//! assert_eq!((generator.openai.temperature, generator.openai.max_tokens), (0.8, 64));
//! ```

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

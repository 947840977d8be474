#![doc = include_str!("../README.md")]
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

//! FLAN-T5 (T5 v1.0 and v1.1) in Burn: the model, Hugging Face checkpoints and tokenizers,
//! generation, and LoRA fine-tuning with validation.
//!
//! One implementation serves every Burn backend: the [`burn::prelude::Device`] chosen at run
//! time decides (see [`device`]).

#![deny(missing_docs)]

pub mod checkpoint;
pub mod device;
mod error;
pub mod estimate;
pub mod fine_tune;
pub mod generation;
pub mod hub;
pub mod lora;
pub mod model;
pub mod predict;
pub mod tokenizer;
pub mod train;
pub mod validation;

pub use error::{Error, Result};

pub use generation::{
    GenerationConfig, generate, generate_from_ids, generate_text, generate_with_streams,
};
pub use model::{T5Config, T5ForConditionalGeneration};
pub use tokenizer::T5Tokenizer;

//! t5-lora's integration tests, in one binary (each test binary links Burn): parity with
//! Hugging Face, generation, loading, LoRA against PEFT, the tokenizer, and training.

mod common;
mod generation;
mod loading;
mod lora;
mod parity;
mod tokenizer;
mod train;

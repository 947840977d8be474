//! The [`Generator`] trait, and its local backend: a T5 checkpoint through `t5-lora`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use t5_lora::device::DeviceChoice;
use t5_lora::hub::{HubOptions, resolve_model};
use t5_lora::tokenizer::TOKENIZER_FILE;
use t5_lora::{GenerationConfig, T5ForConditionalGeneration, T5Tokenizer, generate_text};

use crate::error::Result;

/// One prompt, and how many completions to draw for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The prompt.
    pub prompt: String,
    /// Completions wanted.
    pub n: usize,
    /// The request's place in the whole run (its seed's index): completion `j` of it draws
    /// from random stream `stream · n + j`, so the text does not depend on batching, sharding
    /// or resuming.
    pub stream: u64,
}

/// A text generator: a local model or a remote endpoint.
pub trait Generator {
    /// The model's name, for provenance (a Hugging Face id, a directory, an endpoint's model).
    fn name(&self) -> String;

    /// The sampling settings, for provenance.
    fn sampling(&self) -> BTreeMap<String, serde_json::Value>;

    /// `request.n` completions for each request, in order.
    fn generate(&self, requests: &[Request]) -> Result<Vec<Vec<String>>>;
}

/// Settings of the local T5 generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct T5GeneratorConfig {
    /// A Hugging Face id or a checkpoint directory (FLAN-T5-XL in the study).
    pub model: String,
    /// Where to run.
    pub device: DeviceChoice,
    /// Prompts generated together (each with its `n` completions).
    pub batch_size: usize,
    /// Prompt tokens kept.
    pub max_source_len: usize,
    /// Sampling settings; the defaults are the study's for synthesis.
    pub generation: GenerationConfig,
}

impl Default for T5GeneratorConfig {
    fn default() -> Self {
        T5GeneratorConfig {
            model: "google/flan-t5-xl".to_string(),
            device: DeviceChoice::Cpu,
            batch_size: 8,
            max_source_len: 512,
            generation: GenerationConfig {
                do_sample: true,
                temperature: 0.8,
                top_p: 0.95,
                max_new_tokens: 256,
                ..GenerationConfig::default()
            },
        }
    }
}

/// A T5 checkpoint sampling completions with `t5-lora`.
pub struct T5Generator {
    config: T5GeneratorConfig,
    model: T5ForConditionalGeneration,
    tokenizer: T5Tokenizer,
}

impl T5Generator {
    /// Loads the model `config` names.
    pub fn load(config: &T5GeneratorConfig) -> Result<Self> {
        config.generation.validate()?;
        let dir = resolve_model(&config.model, &HubOptions::from_env())?;
        let device = config.device.device()?;
        let model = t5_lora::checkpoint::load_pretrained(&dir, &device)?;
        let tokenizer = T5Tokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
        Ok(T5Generator {
            config: config.clone(),
            model,
            tokenizer,
        })
    }
}

impl Generator for T5Generator {
    fn name(&self) -> String {
        self.config.model.clone()
    }

    fn sampling(&self) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(&self.config.generation) {
            Ok(serde_json::Value::Object(fields)) => fields.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    fn generate(&self, requests: &[Request]) -> Result<Vec<Vec<String>>> {
        let mut out = Vec::with_capacity(requests.len());
        for batch in requests.chunks(self.config.batch_size.max(1)) {
            let mut prompts = Vec::new();
            let mut streams = Vec::new();
            for request in batch {
                for j in 0..request.n {
                    prompts.push(request.prompt.as_str());
                    streams.push(request.stream * request.n as u64 + j as u64);
                }
            }
            let mut texts = generate_text(
                &self.model,
                &self.tokenizer,
                &prompts,
                self.config.max_source_len,
                &self.config.generation,
                &streams,
            )?
            .into_iter();
            for request in batch {
                out.push(texts.by_ref().take(request.n).collect());
            }
        }
        Ok(out)
    }
}

//! The local backend: a T5 checkpoint sampling completions through `t5-lora`.

use std::collections::BTreeMap;

use qa_data::settings::{Invalid, Placed, check};
use serde::{Deserialize, Serialize};
use t5_lora::{
    DeviceChoice, GenerationConfig, ModelDtype, T5ForConditionalGeneration, T5Tokenizer,
    generate_from_ids, load_model,
};

use crate::error::Result;
use crate::generator::{Completion, Generator, Request};

/// Settings of the local T5 generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct T5GeneratorConfig {
    /// A Hugging Face id or a checkpoint directory (FLAN-T5-XL in the study).
    pub model: String,
    /// Where to run.
    pub device: DeviceChoice,
    /// The float type of the model's matrices: FLAN-T5-XL takes 11.4 GB in f32, about 6.7 GB
    /// in `f16` or `bf16` (see [`ModelDtype`]).
    pub dtype: ModelDtype,
    /// Prompts generated together (each with its `n` completions).
    pub batch_size: usize,
    /// Prompt tokens kept.
    pub max_source_len: usize,
    /// Sampling settings; the defaults are the study's for synthesis.
    pub generation: GenerationConfig,
}

impl Placed for T5GeneratorConfig {
    const RUN_PLACE: &'static [&'static str] = &["device", "batch_size"];
    const DECIDING: &'static [&'static str] = &["model", "dtype", "max_source_len", "generation"];
}

impl T5GeneratorConfig {
    /// Checks the batch, the prompt length and the decoding, naming the first that is wrong.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("batch_size", self.batch_size)?;
        check::at_least_one("max_source_len", self.max_source_len)?;
        self.generation
            .validate()
            .map_err(|e| e.within("generation"))
    }
}

impl Default for T5GeneratorConfig {
    fn default() -> Self {
        T5GeneratorConfig {
            model: "google/flan-t5-xl".to_string(),
            device: DeviceChoice::Auto,
            dtype: ModelDtype::F32,
            batch_size: 8,
            max_source_len: 512,
            // Greedy; each stage's defaults set its own decoding.
            generation: GenerationConfig::default(),
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
        let (model, tokenizer) = load_model(&config.model, None, &config.device, config.dtype)?;
        Self::new(config, model, tokenizer)
    }

    /// A generator over a model already loaded (`config.model` names it in provenance).
    pub fn new(
        config: &T5GeneratorConfig,
        model: T5ForConditionalGeneration,
        tokenizer: T5Tokenizer,
    ) -> Result<Self> {
        config.validate()?;
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
        let mut sampling: BTreeMap<String, serde_json::Value> =
            match serde_json::to_value(&self.config.generation) {
                Ok(serde_json::Value::Object(fields)) => fields.into_iter().collect(),
                _ => BTreeMap::new(),
            };
        // Truncation changes what the model sees, so it belongs with the sampling settings.
        sampling.insert(
            "max_source_len".to_string(),
            self.config.max_source_len.into(),
        );
        sampling
    }

    /// Each request's prompt is encoded once for all its completions, and requests of similar
    /// prompt length go into one batch of `batch_size`, so that batches carry little padding;
    /// the completions come back in request order, and each draws from its own stream, so
    /// neither changes the text.
    fn generate(&self, requests: &[Request]) -> Result<Vec<Vec<Completion>>> {
        let prompts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let encoded = self
            .tokenizer
            .encode(&prompts, self.config.max_source_len)?;
        let mut by_length: Vec<usize> = (0..requests.len()).collect();
        by_length.sort_by_key(|&i| encoded.ids[i].len());
        let mut out = vec![Vec::new(); requests.len()];
        for batch in by_length.chunks(self.config.batch_size) {
            let mut ids = Vec::new();
            let mut streams = Vec::new();
            for &i in batch {
                let request = &requests[i];
                for j in 0..request.n {
                    ids.push(encoded.ids[i].clone());
                    streams.push(request.stream * request.n as u64 + j as u64);
                }
            }
            let mut texts = generate_from_ids(
                &self.model,
                &self.tokenizer,
                &ids,
                &self.config.generation,
                &streams,
            )?
            .into_iter();
            for &i in batch {
                out[i] = texts
                    .by_ref()
                    .take(requests[i].n)
                    .map(Completion::unbilled)
                    .collect();
            }
        }
        Ok(out)
    }
}

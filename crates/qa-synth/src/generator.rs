//! The [`Generator`] trait, its local backend (a T5 checkpoint through `t5-lora`), and the
//! config that picks a backend ([`GeneratorConfig`]); the remote one is in [`crate::openai`].

use std::collections::BTreeMap;

use qa_data::run_place;
use qa_data::usage::CompletionUsage;
use serde::{Deserialize, Serialize};
use t5_lora::device::DeviceChoice;
use t5_lora::predict::load_model;
use t5_lora::{GenerationConfig, T5ForConditionalGeneration, T5Tokenizer, generate_from_ids};

use crate::error::Result;
use crate::openai::{OpenAiConfig, OpenAiGenerator};

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

/// One generated text, with what the endpoint billed for it (`None` from a local model, or from
/// an endpoint that reports no `usage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The text as generated.
    pub text: String,
    /// Its tokens and retries, as the endpoint reported them.
    pub usage: Option<CompletionUsage>,
}

impl Completion {
    /// A completion nobody billed for.
    pub fn unbilled(text: String) -> Self {
        Completion { text, usage: None }
    }
}

/// A text generator: a local model or a remote endpoint.
pub trait Generator {
    /// The model's name, for provenance (a Hugging Face id, a directory, an endpoint's model).
    fn name(&self) -> String;

    /// The sampling settings, for provenance.
    fn sampling(&self) -> BTreeMap<String, serde_json::Value>;

    /// `request.n` completions for each request, in order.
    fn generate(&self, requests: &[Request]) -> Result<Vec<Vec<Completion>>>;
}

/// Which backend a stage generates with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A local T5 checkpoint (the `t5:` settings).
    #[default]
    T5,
    /// An OpenAI-compatible chat-completions endpoint (the `openai:` settings).
    Openai,
}

/// A stage's generator: the backend, and the settings of each (only the chosen one is used;
/// both are kept so that config files can layer a switch of backend over the defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The backend used.
    pub backend: Backend,
    /// Settings of the local T5 backend.
    pub t5: T5GeneratorConfig,
    /// Settings of the chat-completions backend.
    pub openai: OpenAiConfig,
}

impl GeneratorConfig {
    /// The chosen backend's generator: the T5 model loaded, or the endpoint's client (with its
    /// API key from the environment).
    pub fn load(&self) -> Result<Box<dyn Generator>> {
        Ok(match self.backend {
            Backend::T5 => Box::new(T5Generator::load(&self.t5)?),
            Backend::Openai => Box::new(OpenAiGenerator::from_env(&self.openai)?),
        })
    }

    /// The settings that decide what is generated, which a resumed run must share; where and
    /// how fast ([`qa_data::run_place`]: device, batch size, concurrency, timeouts, retries)
    /// may change in between, and the backend not chosen does not matter.
    pub fn output_settings(&self) -> GeneratorConfig {
        let mut kept = GeneratorConfig {
            backend: self.backend,
            ..GeneratorConfig::default()
        };
        match self.backend {
            Backend::T5 => kept.t5 = run_place::without(&self.t5, run_place::T5_GENERATOR),
            Backend::Openai => {
                kept.openai = run_place::without(&self.openai, run_place::OPENAI_GENERATOR)
            }
        }
        kept
    }

    /// What the chosen backend bills by: the endpoint's settings (its price and budget), or
    /// `None` for the local model.
    pub fn billing(&self) -> Option<&OpenAiConfig> {
        (self.backend == Backend::Openai).then_some(&self.openai)
    }

    /// The chosen backend's model, for messages.
    pub fn model(&self) -> &str {
        match self.backend {
            Backend::T5 => &self.t5.model,
            Backend::Openai => &self.openai.model,
        }
    }
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
            device: DeviceChoice::Auto,
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
        let (model, tokenizer) = load_model(&config.model, None, &config.device)?;
        Self::new(config, model, tokenizer)
    }

    /// A generator over a model already loaded (`config.model` names it in provenance).
    pub fn new(
        config: &T5GeneratorConfig,
        model: T5ForConditionalGeneration,
        tokenizer: T5Tokenizer,
    ) -> Result<Self> {
        config.generation.validate()?;
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
        for batch in by_length.chunks(self.config.batch_size.max(1)) {
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

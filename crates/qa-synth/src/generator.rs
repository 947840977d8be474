//! The [`Generator`] trait that both stages generate through, and what it takes and gives.
//! Its backends: a local T5 checkpoint (`t5.rs`) and an OpenAI-compatible endpoint
//! (`openai.rs`); `backend.rs` picks one from the config.

use std::collections::BTreeMap;

use qa_data::usage::CompletionUsage;

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

//! The generation stages' plans ([`qa_stage::plan`]): the time a local T5 takes for the
//! stage's prompts, from a calibration on the device it would use, or the requests and tokens
//! that an OpenAI-compatible endpoint would be sent.

use qa_data::usage::format_usd;
use qa_stage::plan::{Planning, StagePlan, format_count, mean_and_p90};
use t5_stage::planning::{
    CHARS_PER_TOKEN, GenerationWork, approximate_tokens, estimate_generation, model_shape,
    resolve_device,
};

use crate::backend::{Backend, GeneratorConfig};
use crate::error::Result;

/// What a stage asks of its generator.
pub(crate) struct Need<'a> {
    /// Prompts.
    pub requests: u64,
    /// Completions per prompt.
    pub completions: usize,
    /// Prompts that stand in for all of them, rendered as the stage renders them.
    pub prompts: &'a [String],
    /// Texts as long as the completions are expected to be.
    pub outputs: &'a [String],
}

/// The stage plan for `need` on `generator`, with `work` as its work; `seconds`, `device` and
/// `notes` for a local model, request and token counts for an endpoint.
pub(crate) fn generation_plan(
    generator: &GeneratorConfig,
    need: &Need<'_>,
    work: String,
    planning: &Planning,
) -> Result<StagePlan> {
    match generator.backend {
        Backend::T5 => {
            let t5 = &generator.t5;
            let shape = model_shape(&t5.model)?;
            let (device, finding) = resolve_device(t5.device)?;
            let estimate = estimate_generation(
                &shape,
                &device,
                &GenerationWork {
                    requests: need.requests,
                    rows_per_prompt: need.completions,
                    prompts: need.prompts,
                    outputs: need.outputs,
                    batch_size: t5.batch_size,
                    max_source_len: t5.max_source_len,
                    generation: &t5.generation,
                    dtype: t5.dtype,
                },
                &planning.calibration_dir(),
            )?;
            Ok(StagePlan {
                work,
                seconds: Some(finding + estimate.seconds),
                device: Some(device.name.clone()),
                on_cpu: device.is_cpu(),
                notes: estimate.notes,
                ..StagePlan::default()
            })
        }
        Backend::Openai => {
            let openai = &generator.openai;
            // One request per completion (`n` is 1: each completion has its own seed).
            let requests = need.requests * need.completions as u64;
            let tokens = |texts: &[String]| -> Vec<usize> {
                texts.iter().map(|text| approximate_tokens(text)).collect()
            };
            let (prompt_mean, _) = mean_and_p90(&tokens(need.prompts));
            let (completion_mean, _) = mean_and_p90(&tokens(need.outputs));
            let completion_mean = match need.outputs.is_empty() {
                true => openai.max_tokens as f64,
                false => completion_mean.min(openai.max_tokens as f64),
            };
            let total = |mean: f64| (mean * requests as f64).round() as u64;
            let (prompt, completion) = (total(prompt_mean), total(completion_mean));
            let most = requests * openai.max_tokens as u64;
            let mut notes = vec![
                format!(
                    "{} requests: about {} prompt and {} completion tokens (at most {} \
                     completion tokens), counted as 1 token per {CHARS_PER_TOKEN} characters",
                    format_count(requests),
                    format_count(prompt),
                    format_count(completion),
                    format_count(most)
                ),
                "an endpoint's speed is not measured in a dry run".to_string(),
            ];
            if let Some(price) = &openai.price {
                notes.push(format!(
                    "about {} at openai.price (at most {})",
                    format_usd(price.of(prompt, completion)),
                    format_usd(price.of(prompt, most))
                ));
            }
            Ok(StagePlan {
                work,
                seconds: None,
                device: Some(format!("{} at {}", openai.model, openai.base_url)),
                notes,
                ..StagePlan::default()
            })
        }
    }
}

//! Wall-time estimates for a T5 stage's `--plan` ([`qa_stage::plan`]): a model's shape without
//! its weights (its `config.json`, or the published shape of a FLAN-T5 checkpoint), and a short
//! calibration of that shape on the device the stage would use (`t5_lora::measure_generation`,
//! `t5_lora::measure_training`). Each calibration is cached in the plan directory under the
//! shape, the device, the batch and this binary, so a second dry run measures nothing again.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use t5_lora::{
    CONFIG_FILE, DeviceChoice, GenerationBatch, GenerationConfig, GenerationCost, HubOptions,
    ModelDtype, ResolvedDevice, T5Config, T5Tokenizer, TOKENIZER_FILE, TrainingBatch, TrainingCost,
    local_file, measure_generation, measure_training, published_shape, read_config,
};

use crate::error::{Error, Result};

/// Characters per token assumed when the model's tokenizer is not on the machine: English text
/// through T5's SentencePiece vocabulary comes to about four.
pub const CHARS_PER_TOKEN: usize = 4;

/// The tokens of `text` at [`CHARS_PER_TOKEN`] characters each (no end-of-sequence token).
pub fn approximate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// A model's shape, and its tokenizer when it is on the machine.
#[derive(Debug, Clone)]
pub struct ModelShape {
    /// The model's settings.
    pub config: T5Config,
    /// The tokenizer, when `tokenizer.json` is in the checkpoint directory or the cache.
    pub tokenizer: Option<T5Tokenizer>,
}

/// The shape of `model`: its `config.json` from the checkpoint directory or the Hugging Face
/// cache, else the published shape of a FLAN-T5 checkpoint of that id.
pub fn model_shape(model: &str) -> Result<ModelShape> {
    let hub = HubOptions::from_env();
    let tokenizer = local_file(model, TOKENIZER_FILE, &hub)
        .map(|path| T5Tokenizer::from_file(&path))
        .transpose()?;
    if let Some(config_file) = local_file(model, CONFIG_FILE, &hub) {
        let dir = config_file.parent().unwrap_or(Path::new("."));
        return Ok(ModelShape {
            config: read_config(dir)?,
            tokenizer,
        });
    }
    let id = model.split('@').next().unwrap_or(model);
    let Some(config) = published_shape(id) else {
        return Err(t5_lora::Error::ModelNotFound {
            model: model.to_string(),
            message: format!(
                "planning needs its {CONFIG_FILE}, which is neither in such a directory nor in \
                 the Hugging Face cache, and its shape is not one of the published FLAN-T5 \
                 shapes t5-lora knows"
            ),
        }
        .into());
    };
    Ok(ModelShape { config, tokenizer })
}

impl ModelShape {
    /// How many tokens each text comes to (with `</s>`, cut to `max_len`): through the model's
    /// tokenizer, or one per [`CHARS_PER_TOKEN`] characters without it.
    pub fn token_counts<S: AsRef<str>>(&self, texts: &[S], max_len: usize) -> Result<Vec<usize>> {
        Ok(match &self.tokenizer {
            Some(tokenizer) => tokenizer
                .encode(texts, max_len)?
                .ids
                .iter()
                .map(Vec::len)
                .collect(),
            None => texts
                .iter()
                .map(|text| (approximate_tokens(text.as_ref()) + 1).min(max_len))
                .collect(),
        })
    }

    /// The typical token lengths of a sample of `texts` (`what` names them), cut to `limit`:
    /// the mean and the 90th percentile, or `limit` for both, with a note saying so, when there
    /// is no sample.
    pub fn sample_lengths(
        &self,
        texts: &[String],
        limit: usize,
        what: &str,
    ) -> Result<(f64, usize, Option<String>)> {
        if texts.is_empty() {
            let note = format!("no sample of {what}: each counted at its limit of {limit} tokens");
            return Ok((limit as f64, limit, Some(note)));
        }
        let (mean, p90) = qa_stage::plan::mean_and_p90(&self.token_counts(texts, limit)?);
        Ok((mean, p90, None))
    }

    /// The note a plan carries when token counts are approximated.
    pub fn token_note(&self) -> Option<String> {
        self.tokenizer.is_none().then(|| {
            format!(
                "token counts approximated as 1 per {CHARS_PER_TOKEN} characters: the model's \
                 tokenizer is not on this machine"
            )
        })
    }
}

/// The device `choice` resolves to, and the seconds that took: a stage pays that once, at its
/// start (probing the GPU backends), which counts in small runs.
pub fn resolve_device(choice: DeviceChoice) -> Result<(ResolvedDevice, f64)> {
    let start = Instant::now();
    let device = choice.resolve()?;
    Ok((device, start.elapsed().as_secs_f64()))
}

/// What a calibration is cached under: its kind, the shape, the device, the batch, and this
/// binary (another build runs at another speed).
#[derive(Serialize)]
struct CacheKey<'a, B: Serialize> {
    kind: &'static str,
    shape: &'a T5Config,
    device: &'a str,
    batch: &'a B,
    program: String,
}

/// This binary's path, size and modification time.
fn program_identity() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return String::new();
    };
    let meta = std::fs::metadata(&exe).ok();
    let modified = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "{} {} {modified}",
        exe.display(),
        meta.map_or(0, |m| m.len())
    )
}

/// `measure(shape, device, batch)`, or its result cached in `cache_dir` under the key of
/// `kind`, the shape, the device, the batch and this binary.
fn cached<B: Serialize, T: Serialize + DeserializeOwned>(
    kind: &'static str,
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &B,
    cache_dir: &Path,
    measure: fn(&T5Config, &ResolvedDevice, &B) -> t5_lora::Result<T>,
) -> Result<T> {
    let key = CacheKey {
        kind,
        shape,
        device: &device.name,
        batch,
        program: program_identity(),
    };
    let text = serde_json::to_string(&key).map_err(|e| Error::io(cache_dir, e.into()))?;
    let digest = qa_data::files::sha256_bytes(text.as_bytes());
    let path = cache_dir.join(format!("{kind}-{}.json", &digest[..16]));
    if path.is_file()
        && let Ok(value) = qa_data::files::read_json(&path)
    {
        return Ok(value);
    }
    let value = measure(shape, device, batch)?;
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    qa_data::files::write_json_atomic(&path, &value)?;
    Ok(value)
}

/// The cost of generating `batch` with the `shape` model on `device`
/// ([`measure_generation`]), cached in `cache_dir`.
pub fn calibrate_generation(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &GenerationBatch,
    cache_dir: &Path,
) -> Result<GenerationCost> {
    cached(
        "generation",
        shape,
        device,
        batch,
        cache_dir,
        measure_generation,
    )
}

/// The cost of training `batch` with the `shape` model on `device` ([`measure_training`]),
/// cached in `cache_dir`.
pub fn calibrate_training(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &TrainingBatch,
    cache_dir: &Path,
) -> Result<TrainingCost> {
    cached(
        "training",
        shape,
        device,
        batch,
        cache_dir,
        measure_training,
    )
}

/// Generation work as a stage would do it.
#[derive(Debug, Clone)]
pub struct GenerationWork<'a> {
    /// Prompts to answer.
    pub requests: u64,
    /// Sequences generated from each.
    pub rows_per_prompt: usize,
    /// Prompts that stand in for all of them (rendered as the stage renders them).
    pub prompts: &'a [String],
    /// Texts as long as the generated ones are expected to be (e.g. the human answers).
    pub outputs: &'a [String],
    /// Prompts per generation call.
    pub batch_size: usize,
    /// Prompt tokens kept.
    pub max_source_len: usize,
    /// The decoding settings.
    pub generation: &'a GenerationConfig,
    /// The float type of the model's matrices.
    pub dtype: ModelDtype,
}

/// An estimated time, with what a reader should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Seconds.
    pub seconds: f64,
    /// Approximations made.
    pub notes: Vec<String>,
}

/// The time `work` takes with the `shape` model on `device`, from a calibration cached in
/// `cache_dir`: calls of `batch_size` prompts, each decoding until the 90th percentile of the
/// expected lengths.
pub fn estimate_generation(
    shape: &ModelShape,
    device: &ResolvedDevice,
    work: &GenerationWork<'_>,
    cache_dir: &Path,
) -> Result<Estimate> {
    let mut notes: Vec<String> = shape.token_note().into_iter().collect();
    if work.requests == 0 {
        return Ok(Estimate {
            seconds: 0.0,
            notes,
        });
    }
    // Stages batch prompts of similar length together, so a batch pads to about their mean; it
    // decodes until its longest output is done, about the 90th percentile.
    let (prompt_mean, _, prompt_note) =
        shape.sample_lengths(work.prompts, work.max_source_len, "the prompts")?;
    let (_, steps, steps_note) =
        shape.sample_lengths(work.outputs, work.generation.max_new_tokens, "the outputs")?;
    notes.extend(prompt_note.into_iter().chain(steps_note));
    let per_call = (work.batch_size.max(1) as u64).min(work.requests);
    let batch = GenerationBatch {
        prompts: per_call as usize,
        rows_per_prompt: work.rows_per_prompt.max(1),
        prompt_len: prompt_mean.ceil() as usize,
        generation: work.generation.clone(),
        dtype: work.dtype,
    };
    let cost = calibrate_generation(&shape.config, device, &batch, cache_dir)?;
    Ok(Estimate {
        seconds: cost.seconds(work.requests.div_ceil(per_call), steps),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_have_their_published_shapes() {
        let xl = model_shape("google/flan-t5-xl@main").expect("known");
        assert_eq!(
            (
                xl.config.d_model,
                xl.config.d_ff,
                xl.config.num_layers,
                xl.config.num_heads
            ),
            (2048, 5120, 24, 32)
        );
        assert!(model_shape("someone/unknown-model").is_err());
    }

    #[test]
    fn token_counts_without_a_tokenizer_come_from_characters() {
        let mut shape = model_shape("google/flan-t5-base").expect("known");
        shape.tokenizer = None;
        let counts = shape.token_counts(&["x".repeat(40), "y".repeat(4000)], 512);
        assert_eq!(counts.expect("counts"), [11, 512]);
        assert!(shape.token_note().is_some());
    }
}

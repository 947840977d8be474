//! Wall-time estimates for a stage's `--plan` ([`qa_stage::plan`]): a model's shape without its
//! weights, and a short calibration of that shape on the device the stage would use.
//!
//! A calibration times this crate's own generation or training code on randomly initialised
//! models of the configured widths, vocabulary and batch shape, once with one layer and once
//! with two, and extends the two timings linearly to the configured depth: the blocks are the
//! work that grows with depth, and everything else (embeddings, the output projection,
//! sampling, set-up) is in both timings. It therefore takes seconds even for FLAN-T5-XL, whose
//! weights need not be on the machine. Each result is cached in the plan directory under the
//! shape, the device, the batch and this binary, so a second dry run measures nothing again.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CONFIG_FILE, read_config};
use crate::device::{DeviceChoice, ResolvedDevice};
use crate::dtype::ModelDtype;
use crate::error::{Error, Result};
use crate::generation::{GenerationConfig, generate_repeated};
use crate::hub::{HubOptions, local_file};
use crate::lora::LoraConfig;
use crate::model::{FeedForwardProj, T5Config, T5ForConditionalGeneration};
use crate::tokenizer::{T5Tokenizer, TOKENIZER_FILE};
use crate::train::{Example, Seq2SeqBatch, TrainConfig, seq2seq_loss, train};

/// Characters per token assumed when the model's tokenizer is not on the machine: English text
/// through T5's SentencePiece vocabulary comes to about four.
pub const CHARS_PER_TOKEN: usize = 4;

/// The tokens of `text` at [`CHARS_PER_TOKEN`] characters each (no end-of-sequence token).
pub fn approximate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// The published shapes of the FLAN-T5 checkpoints (their `config.json`), for planning a run
/// whose model is not downloaded yet: (id, d_model, d_ff, layers, heads).
const KNOWN_SHAPES: [(&str, usize, usize, usize, usize); 5] = [
    ("google/flan-t5-small", 512, 1024, 8, 6),
    ("google/flan-t5-base", 768, 2048, 12, 12),
    ("google/flan-t5-large", 1024, 2816, 24, 16),
    ("google/flan-t5-xl", 2048, 5120, 24, 32),
    ("google/flan-t5-xxl", 4096, 10240, 24, 64),
];

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
        return Err(Error::ModelNotFound {
            model: model.to_string(),
            message: format!(
                "planning needs its {CONFIG_FILE}, which is neither in such a directory nor in \
                 the Hugging Face cache, and its shape is not one of the published FLAN-T5 \
                 shapes this crate knows"
            ),
        });
    };
    Ok(ModelShape { config, tokenizer })
}

/// The published shape of a FLAN-T5 checkpoint (`google/flan-t5-small` … `-xxl`), as its
/// `config.json` has it.
pub fn published_shape(id: &str) -> Option<T5Config> {
    let &(_, d_model, d_ff, layers, heads) =
        KNOWN_SHAPES.iter().find(|(known, ..)| *known == id)?;
    Some(T5Config {
        vocab_size: 32128,
        d_model,
        d_kv: 64,
        d_ff,
        num_layers: layers,
        num_decoder_layers: Some(layers),
        num_heads: heads,
        relative_attention_num_buckets: 32,
        relative_attention_max_distance: 128,
        layer_norm_epsilon: 1e-6,
        feed_forward_proj: FeedForwardProj::parse("gated-gelu").expect("a known activation"),
        tie_word_embeddings: false,
        pad_token_id: 0,
        eos_token_id: 1,
        decoder_start_token_id: 0,
    })
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

/// A generation batch as a stage runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationBatch {
    /// Distinct prompts, each encoded once.
    pub prompts: usize,
    /// Sequences generated from each prompt (a synthesis seed's candidates).
    pub rows_per_prompt: usize,
    /// Prompt tokens (padded length).
    pub prompt_len: usize,
    /// The decoding settings (the new-token budget aside, which the calibration sets).
    pub generation: GenerationConfig,
    /// The float type of the model's matrices.
    pub dtype: ModelDtype,
}

/// What one generation call costs: a fixed part (encoding the prompts, set-up) and each
/// decoding step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationCost {
    /// Seconds of a call besides its decoding steps.
    pub call_seconds: f64,
    /// Seconds of one decoding step of the whole batch.
    pub step_seconds: f64,
}

impl GenerationCost {
    /// Seconds of `calls` calls of `steps` decoding steps each.
    pub fn seconds(&self, calls: u64, steps: usize) -> f64 {
        calls as f64 * (self.call_seconds + steps as f64 * self.step_seconds)
    }
}

/// A training batch as a stage runs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingBatch {
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Prompt tokens (padded length).
    pub source_len: usize,
    /// Answer tokens (padded length).
    pub target_len: usize,
    /// The adapter trained.
    pub lora: LoraConfig,
}

/// What training costs per batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingCost {
    /// Seconds of one optimiser step (forward, backward, update).
    pub step_seconds: f64,
    /// Seconds of one batch's validation loss (forward only).
    pub loss_seconds: f64,
}

/// The shape with `layers` blocks in the encoder and the decoder, and `</s>` outside the
/// vocabulary so that generation runs every step it is given.
fn with_layers(config: &T5Config, layers: usize) -> T5Config {
    T5Config {
        num_layers: layers,
        num_decoder_layers: Some(layers),
        eos_token_id: config.vocab_size as u32,
        ..config.clone()
    }
}

/// `rows` token sequences of `len` tokens cycling through the vocabulary (`</s>` never among
/// them: the ids start above the special tokens).
fn token_rows(rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..rows)
        .map(|row| {
            (0..len.max(1))
                .map(|i| ((row * 131 + i * 7919) % (vocab.max(4) - 3) + 3) as u32)
                .collect()
        })
        .collect()
}

/// The median of a few timings of `run`: one, and more while they take under half a second
/// in all (up to nine). With `warm_up`, one untimed call first: the first call on a new model
/// touches its memory for the first time, and GPU backends compile and tune their kernels for
/// the shapes, none of which the later calls of a stage pay.
fn typical(warm_up: bool, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    if warm_up {
        run()?;
    }
    let mut timings: Vec<f64> = Vec::new();
    while timings.is_empty() || (timings.iter().sum::<f64>() < 0.5 && timings.len() < 9) {
        let start = Instant::now();
        run()?;
        timings.push(start.elapsed().as_secs_f64());
    }
    timings.sort_by(f64::total_cmp);
    Ok(timings[timings.len() / 2])
}

/// A timing at one and at two layers, extended linearly to `layers`. A second layer never makes
/// the work cheaper: a timing at two layers below the one at one layer is noise (seen on a
/// loaded machine), so the cost per layer is then zero rather than the extension negative.
fn at_depth(one: f64, two: f64, layers: f64) -> f64 {
    one + (two - one).max(0.0) * (layers - 1.0)
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

/// `measure()`, or its result cached under `key` in `cache_dir`.
fn cached<B: Serialize, T: Serialize + DeserializeOwned>(
    cache_dir: &Path,
    key: &CacheKey<'_, B>,
    measure: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let text = serde_json::to_string(key).map_err(|e| Error::io(cache_dir, e.into()))?;
    let digest = qa_data::files::sha256_bytes(text.as_bytes());
    let path = cache_dir.join(format!("{}-{}.json", key.kind, &digest[..16]));
    if path.is_file()
        && let Ok(value) = qa_data::files::read_json(&path)
    {
        return Ok(value);
    }
    let value = measure()?;
    std::fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    qa_data::files::write_json_atomic(&path, &value)?;
    Ok(value)
}

/// Times one generation call of `batch` with `steps` new tokens on `model`.
fn time_generation(
    model: &T5ForConditionalGeneration,
    batch: &GenerationBatch,
    steps: usize,
    warm_up: bool,
) -> Result<f64> {
    let (config, device) = (model.config(), &model.device());
    let prompts = token_rows(batch.prompts, batch.prompt_len, config.vocab_size);
    let ids: Vec<i64> = prompts.iter().flatten().map(|&id| i64::from(id)).collect();
    let shape = [batch.prompts, batch.prompt_len.max(1)];
    let rows: Vec<usize> = (0..batch.prompts)
        .flat_map(|prompt| std::iter::repeat_n(prompt, batch.rows_per_prompt))
        .collect();
    let streams: Vec<u64> = (0..rows.len() as u64).collect();
    let generation = GenerationConfig {
        max_new_tokens: steps,
        ..batch.generation.clone()
    };
    typical(warm_up, || {
        let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), shape), device);
        let mask = Tensor::<2, Int>::ones(shape, device);
        generate_repeated(model, input_ids, mask, &rows, &generation, &streams).map(drop)
    })
}

/// The cost of generating `batch` with the `shape` model on `device`, measured at one and two
/// layers (cached in `cache_dir`).
pub fn calibrate_generation(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &GenerationBatch,
    cache_dir: &Path,
) -> Result<GenerationCost> {
    let key = CacheKey {
        kind: "generation",
        shape,
        device: &device.name,
        batch,
        program: program_identity(),
    };
    cached(cache_dir, &key, || {
        // Two step counts apart give the cost of a step; the first call's rest is fixed. They
        // lie far apart: a large model's encoding varies from call to call by more than a few
        // of its decoding steps take.
        let (few, many) = (1, 17);
        let mut costs = Vec::new();
        for layers in [1, 2] {
            let model = with_layers(shape, layers)
                .init(&device.device)
                .into_dtype(batch.dtype)?;
            let short = time_generation(&model, batch, few, true)?;
            let long = time_generation(&model, batch, many, false)?;
            let step = ((long - short) / (many - few) as f64).max(0.0);
            costs.push(((short - few as f64 * step).max(0.0), step));
        }
        let encoder = shape.num_layers as f64;
        let decoder = shape.decoder_layers() as f64;
        Ok(GenerationCost {
            call_seconds: at_depth(costs[0].0, costs[1].0, encoder),
            step_seconds: at_depth(costs[0].1, costs[1].1, decoder),
        })
    })
}

/// Times one optimiser step and one validation-loss batch of `batch` on a random model of
/// `config`: (step, loss).
fn time_training(config: &T5Config, device: &Device, batch: &TrainingBatch) -> Result<(f64, f64)> {
    let rows = batch.batch_size.max(1);
    let sources = token_rows(rows, batch.source_len, config.vocab_size);
    let targets = token_rows(rows, batch.target_len, config.vocab_size);
    let examples: Vec<Example> = sources
        .into_iter()
        .zip(targets)
        .map(|(source, target)| Example { source, target })
        .collect();
    let settings = TrainConfig {
        batch_size: rows,
        max_source_len: batch.source_len.max(1),
        max_target_len: batch.target_len.max(1),
        epochs: 1,
        lora: batch.lora.clone(),
        ..TrainConfig::default()
    };
    let autodiff = device.clone().autodiff();
    let model = config.init(&autodiff).with_lora(&batch.lora)?;
    // One step and three steps apart give a step without the run's set-up.
    let mut three = examples.clone();
    three.extend(examples.iter().cloned());
    three.extend(examples.iter().cloned());
    let run = |examples: &[Example], warm_up: bool| {
        typical(warm_up, || {
            train(model.clone(), examples, None, &settings, None, |_| {
                ControlFlow::Continue(())
            })
            .map(drop)
        })
    };
    let one = run(&examples, true)?;
    let step = ((run(&three, false)? - one) / 2.0).max(0.0);

    let inference = config.init(device);
    let chosen: Vec<&Example> = examples.iter().collect();
    let loss = typical(true, || {
        let tensors = Seq2SeqBatch::new(&chosen, config.pad_token_id, 0, device);
        seq2seq_loss(&inference, &tensors).into_scalar::<f64>();
        Ok(())
    })?;
    Ok((step, loss))
}

/// The cost of training `batch` with the `shape` model on `device`, measured at one and two
/// layers (cached in `cache_dir`).
pub fn calibrate_training(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &TrainingBatch,
    cache_dir: &Path,
) -> Result<TrainingCost> {
    let key = CacheKey {
        kind: "training",
        shape,
        device: &device.name,
        batch,
        program: program_identity(),
    };
    cached(cache_dir, &key, || {
        let one = time_training(&with_layers(shape, 1), &device.device, batch)?;
        let two = time_training(&with_layers(shape, 2), &device.device, batch)?;
        // Encoder and decoder blocks cost about the same in a step; their mean is the depth.
        let depth = (shape.num_layers + shape.decoder_layers()) as f64 / 2.0;
        Ok(TrainingCost {
            step_seconds: at_depth(one.0, two.0, depth),
            loss_seconds: at_depth(one.1, two.1, depth),
        })
    })
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

    /// A small shape on the CPU: every part of a calibration costs time, decoding steps
    /// included, and more steps cost more.
    #[test]
    fn a_calibration_times_the_call_and_each_decoding_step() {
        // The calibration draws its model's weights and seeds training's dropout from Burn's
        // random generator: a turn of its own, or the dropout test beside it sees other masks.
        let _turn = crate::test_random::seeded();
        let mut shape = published_shape("google/flan-t5-small").expect("known");
        (shape.vocab_size, shape.d_model, shape.d_ff, shape.num_heads) = (512, 64, 128, 4);
        let device = DeviceChoice::Cpu.resolve().expect("the CPU");
        let cache = tempfile::tempdir().expect("temp dir");
        let batch = GenerationBatch {
            prompts: 4,
            rows_per_prompt: 2,
            prompt_len: 48,
            generation: GenerationConfig::default(),
            dtype: ModelDtype::F32,
        };
        let cost = calibrate_generation(&shape, &device, &batch, cache.path()).expect("timed");
        assert!(
            cost.call_seconds > 0.0 && cost.step_seconds > 0.0,
            "{cost:?}"
        );
        assert!(cost.seconds(1, 20) > cost.seconds(1, 2));
        let training = TrainingBatch {
            batch_size: 4,
            source_len: 48,
            target_len: 8,
            lora: LoraConfig::default(),
        };
        let cost = calibrate_training(&shape, &device, &training, cache.path()).expect("timed");
        assert!(
            cost.step_seconds > 0.0 && cost.loss_seconds > 0.0,
            "{cost:?}"
        );
    }

    #[test]
    fn depth_extends_linearly() {
        assert_eq!(at_depth(1.0, 1.5, 1.0), 1.0);
        assert_eq!(at_depth(1.0, 1.5, 24.0), 12.5);
        assert_eq!(at_depth(1.0, 0.5, 24.0), 1.0);
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

//! The time a model of a given shape takes on a device, for estimating a run before it starts:
//! a generation call and its decoding steps, a training step and a validation-loss batch.
//!
//! A calibration times this crate's own generation or training code on randomly initialised
//! models of the configured widths, vocabulary and batch shape, once with one layer and once
//! with two, and extends the two timings linearly to the configured depth: the blocks are the
//! work that grows with depth, and everything else (embeddings, the output projection,
//! sampling, set-up) is in both timings. It therefore takes seconds even for FLAN-T5-XL, whose
//! weights need not be on the machine.

use std::ops::ControlFlow;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::device::ResolvedDevice;
use crate::dtype::ModelDtype;
use crate::error::Result;
use crate::generation::{GenerationConfig, generate_repeated};
use crate::lora::LoraConfig;
use crate::model::{T5Config, T5ForConditionalGeneration};
use crate::train::{Example, Seq2SeqBatch, TrainConfig, seq2seq_loss, train};

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
/// layers.
pub fn measure_generation(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &GenerationBatch,
) -> Result<GenerationCost> {
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
/// layers.
pub fn measure_training(
    shape: &T5Config,
    device: &ResolvedDevice,
    batch: &TrainingBatch,
) -> Result<TrainingCost> {
    let one = time_training(&with_layers(shape, 1), &device.device, batch)?;
    let two = time_training(&with_layers(shape, 2), &device.device, batch)?;
    // Encoder and decoder blocks cost about the same in a step; their mean is the depth.
    let depth = (shape.num_layers + shape.decoder_layers()) as f64 / 2.0;
    Ok(TrainingCost {
        step_seconds: at_depth(one.0, two.0, depth),
        loss_seconds: at_depth(one.1, two.1, depth),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checkpoint::read_config;
    use crate::device::DeviceChoice;

    /// A small shape on the CPU: every part of a calibration costs time, decoding steps
    /// included, and more steps cost more.
    #[test]
    fn a_calibration_times_the_call_and_each_decoding_step() {
        // The calibration draws its model's weights and seeds training's dropout from Burn's
        // random generator: a turn of its own, or the dropout test beside it sees other masks.
        let _turn = crate::test_random::seeded();
        // The tiny fixture's shape, set to FLAN-T5-small's depth and head width, narrowed.
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5/flan-t5-tiny");
        let mut shape = read_config(&fixture).expect("the fixture's shape");
        (shape.vocab_size, shape.d_model, shape.d_ff, shape.num_heads) = (512, 64, 128, 4);
        (shape.d_kv, shape.num_layers, shape.num_decoder_layers) = (64, 8, Some(8));
        let device = DeviceChoice::Cpu.resolve().expect("the CPU");
        let batch = GenerationBatch {
            prompts: 4,
            rows_per_prompt: 2,
            prompt_len: 48,
            generation: GenerationConfig::default(),
            dtype: ModelDtype::F32,
        };
        let cost = measure_generation(&shape, &device, &batch).expect("timed");
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
        let cost = measure_training(&shape, &device, &training).expect("timed");
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
}

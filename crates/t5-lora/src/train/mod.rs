//! LoRA fine-tuning of T5 on question/answer records: the settings, and the optimisation loop
//! (AdamW, linear warm-up then decay, global gradient-norm clipping, gradient accumulation) on
//! an autodiff device. Its parts: the examples, batches and loss ([`data`]), the evaluation
//! after each epoch ([`validation`]), checkpoints ([`state`]) and the log ([`log`]).

mod data;
mod log;
mod state;
mod validation;

use std::ops::ControlFlow;

use burn::module::ParamId;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use qa_data::settings::{Invalid, Placed, Section, check};
use serde::{Deserialize, Serialize};

use crate::adapter::save_adapter;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::model::T5ForConditionalGeneration;

pub use data::{
    Encoding, Example, Seq2SeqBatch, TruncationCounts, encode_examples, epoch_batches, seq2seq_loss,
};
pub use log::{EvalLog, StepLog, TrainLog};
pub use state::{Checkpointing, OPTIMIZER_FILE, STATE_FILE, TrainingState, checkpoint_state};
pub use validation::{BestMetric, EvalScores, Validation, ValidationConfig, generation_config};

use state::{existing_checkpoint, restore_best, resume, save_checkpoint};

/// The prompt of the original study, and FLAN-T5's reading-comprehension format.
pub const DEFAULT_TEMPLATE: &str = "question: {question} context: {context}";

/// Training settings (the `train:` section of a config file); defaults follow the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The base model: a Hugging Face id or a checkpoint directory.
    pub model: String,
    /// Where to train.
    pub device: DeviceChoice,
    /// Optimiser steps between checkpoints.
    pub checkpoint_every: usize,
    /// The prompt, with `{question}` and `{context}` placeholders.
    pub prompt_template: String,
    /// Prompt tokens kept.
    pub max_source_len: usize,
    /// Answer tokens kept (`</s>` included).
    pub max_target_len: usize,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes whose gradients are summed before each optimiser step.
    pub grad_accumulation: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of the optimiser steps spent warming the learning rate up from 0.
    pub warmup_ratio: f64,
    /// Largest global gradient norm; larger gradients are scaled down (0 turns this off).
    pub max_grad_norm: f64,
    /// Seed of shuffling and of adapter initialisation.
    pub seed: u64,
    /// The adapters.
    pub lora: LoraConfig,
    /// Evaluation after each epoch, best-epoch selection and early stopping (used when a
    /// validation set is given).
    pub validation: ValidationConfig,
}

impl Placed for TrainConfig {
    // The training batch is the optimiser's and decides the adapter; only the device goes.
    const RUN_PLACE: &'static [&'static str] = &["device"];
    const DECIDING: &'static [&'static str] = &[
        "model",
        "checkpoint_every",
        "prompt_template",
        "max_source_len",
        "max_target_len",
        "batch_size",
        "grad_accumulation",
        "epochs",
        "learning_rate",
        "weight_decay",
        "warmup_ratio",
        "max_grad_norm",
        "seed",
        "lora",
        "validation",
    ];
}

impl Section for TrainConfig {
    const NAME: &'static str = qa_data::settings::section_names::TRAIN;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("checkpoint_every", self.checkpoint_every)?;
        check::at_least_one("max_source_len", self.max_source_len)?;
        check::at_least_one("max_target_len", self.max_target_len)?;
        check::at_least_one("batch_size", self.batch_size)?;
        check::at_least_one("grad_accumulation", self.grad_accumulation)?;
        check::at_least_one("epochs", self.epochs)?;
        check::positive("learning_rate", self.learning_rate)?;
        check::non_negative("weight_decay", self.weight_decay)?;
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(Invalid::new(
                "warmup_ratio",
                format!("must be in [0, 1), not {}", self.warmup_ratio),
            ));
        }
        check::non_negative("max_grad_norm", self.max_grad_norm)?;
        self.lora.validate().map_err(|e| e.within("lora"))?;
        self.validation
            .validate()
            .map_err(|e| e.within("validation"))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "google/flan-t5-base".to_string(),
            device: DeviceChoice::Auto,
            checkpoint_every: 200,
            prompt_template: DEFAULT_TEMPLATE.to_string(),
            max_source_len: 512,
            max_target_len: 64,
            batch_size: 8,
            grad_accumulation: 1,
            epochs: 3,
            learning_rate: 3e-4,
            weight_decay: 0.01,
            warmup_ratio: 0.06,
            max_grad_norm: 1.0,
            seed: 42,
            lora: LoraConfig::default(),
            validation: ValidationConfig::default(),
        }
    }
}

impl TrainConfig {
    /// How this run's records become examples.
    pub fn encoding(&self) -> Encoding<'_> {
        Encoding {
            prompt_template: &self.prompt_template,
            max_source_len: self.max_source_len,
            max_target_len: self.max_target_len,
        }
    }
}

/// Learning rate at optimiser step `step` (0-based) of `total`: linear warm-up over
/// `warmup` steps, then linear decay to 0 (`get_linear_schedule_with_warmup`).
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        peak * (total.saturating_sub(step)) as f64 / (total - warmup).max(1) as f64
    }
}

/// What [`train`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// An optimiser step was taken.
    Step(&'a StepLog),
    /// An epoch ended and the validation set was scored.
    Evaluation(&'a EvalLog),
}

/// How a call to [`train`] ended.
pub struct TrainOutcome {
    /// The model with the adapters of the last step.
    pub model: T5ForConditionalGeneration,
    /// With validation: the model with the adapters of the best evaluation
    /// (`state.best`), in inference mode.
    pub best_model: Option<T5ForConditionalGeneration>,
    /// Where the run stands.
    pub state: TrainingState,
    /// Whether the callback asked to stop before the last epoch ended.
    pub interrupted: bool,
    /// Whether early stopping ended the run before its last epoch.
    pub stopped_early: bool,
}

/// Trains the adapters of `model` (on an autodiff device, with adapters attached) on
/// `examples`.
///
/// With `validation`, the model is scored after every epoch; the best evaluation (by
/// `config.validation.best_metric`) is kept as `best_model` (and, with checkpointing, in
/// `best_dir`), and the run stops early after `config.validation.patience` evaluations without
/// improvement.
///
/// With `checkpointing`, a checkpoint found in its directory is resumed from (the adapter
/// weights, optimiser state, data position and validation record), and new ones are written as
/// the run goes. `on_event` sees every optimiser step and evaluation and may stop the run
/// (`ControlFlow::Break`), which writes a checkpoint first. A loss that is not finite stops
/// training with an error naming the step, leaving the last checkpoint as it was.
///
/// Dropout masks come from the device's random generator, seeded from `config.seed` and the
/// step before every step. Burn keeps one generator per backend, shared by all threads, so
/// run one training at a time in a process.
pub fn train(
    mut model: T5ForConditionalGeneration,
    examples: &[Example],
    validation: Option<&Validation>,
    config: &TrainConfig,
    checkpointing: Option<&Checkpointing>,
    mut on_event: impl FnMut(TrainEvent<'_>) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    let device = training_device(&model, examples, config)?;
    let mut optimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let mut state = TrainingState {
        step: 0,
        epoch: 0,
        groups_done: 0,
        param_ids: adapter_ids(&mut model).iter().map(ParamId::val).collect(),
        best: None,
        epochs_since_best: 0,
    };
    if let Some(found) = checkpointing.and_then(|c| existing_checkpoint(&c.dir)) {
        (model, optimizer, state) = resume(model, optimizer, &found)?;
    }
    // After a resume: the reloaded adapters carry the ids the optimiser state refers to.
    let run = Run::new(&mut model, device, examples, config);
    let mut best_model = None;
    while state.epoch < config.epochs && !state.out_of_patience(config.validation.patience) {
        let batches = epoch_batches(examples, config.batch_size, config.seed, state.epoch);
        let groups: Vec<&[Vec<usize>]> = batches.chunks(config.grad_accumulation).collect();
        while state.groups_done < groups.len() {
            let epoch = state.epoch;
            let step;
            (model, step) = run.step(model, &mut optimizer, groups[state.groups_done], &state)?;
            let epoch_ended = state.advance(groups.len());
            let mut flow = on_event(TrainEvent::Step(&step));
            // Evaluated even when a stop was asked for, so that the checkpoint below, at an
            // epoch's end, always carries that epoch's evaluation.
            let evaluated = epoch_ended && validation.is_some();
            if let Some(validation) = validation.filter(|_| epoch_ended) {
                let (evaluation, inference) =
                    run.evaluate(&model, validation, epoch, &mut state, checkpointing)?;
                if evaluation.best {
                    best_model = Some(inference);
                }
                if on_event(TrainEvent::Evaluation(&evaluation)).is_break() {
                    flow = ControlFlow::Break(());
                }
            }
            let last = state.step == run.total_steps;
            if let Some(checkpointing) = checkpointing
                && (flow.is_break()
                    || last
                    || evaluated
                    || state.step.is_multiple_of(checkpointing.every.max(1)))
            {
                save_checkpoint(&model, &optimizer, &state, &config.lora, checkpointing)?;
            }
            if flow.is_break() && !last {
                let best_model = restore_best(&model, best_model, &state, checkpointing)?;
                return Ok(TrainOutcome {
                    model,
                    best_model,
                    state,
                    interrupted: true,
                    stopped_early: false,
                });
            }
            if epoch_ended {
                break;
            }
        }
    }
    let stopped_early = state.epoch < config.epochs;
    let best_model = restore_best(&model, best_model, &state, checkpointing)?;
    Ok(TrainOutcome {
        model,
        best_model,
        state,
        interrupted: false,
        stopped_early,
    })
}

/// What stays fixed through a call to [`train`].
struct Run<'a> {
    examples: &'a [Example],
    config: &'a TrainConfig,
    device: Device,
    /// The padding and decoder start tokens.
    pad: u32,
    start: u32,
    /// The parameters the optimiser updates.
    adapter_ids: Vec<ParamId>,
    total_steps: usize,
    warmup_steps: usize,
}

/// The device of `model`, once `model`, `examples` and `config` are checked to be trainable.
fn training_device(
    model: &T5ForConditionalGeneration,
    examples: &[Example],
    config: &TrainConfig,
) -> Result<Device> {
    let device = model.device();
    if !device.is_autodiff() {
        return Err(Error::Training(
            "training needs an autodiff device".to_string(),
        ));
    }
    config.validate()?;
    if examples.is_empty() {
        return Err(Error::Training("training needs examples".to_string()));
    }
    Ok(device)
}

/// Ids of every adapter parameter, in model order.
fn adapter_ids(model: &mut T5ForConditionalGeneration) -> Vec<ParamId> {
    model
        .adapter_params_mut()
        .into_iter()
        .map(|param| param.id)
        .collect()
}

impl<'a> Run<'a> {
    fn new(
        model: &mut T5ForConditionalGeneration,
        device: Device,
        examples: &'a [Example],
        config: &'a TrainConfig,
    ) -> Self {
        let total_steps = total_steps(examples.len(), config);
        Run {
            examples,
            config,
            device,
            pad: model.config().pad_token_id,
            start: model.config().decoder_start_token_id,
            adapter_ids: adapter_ids(model),
            total_steps,
            warmup_steps: (total_steps as f64 * config.warmup_ratio).round() as usize,
        }
    }

    /// One optimiser step over the batches of `group`: their gradients summed, clipped, and
    /// applied at the scheduled learning rate. A loss that is not finite is an error.
    fn step(
        &self,
        model: T5ForConditionalGeneration,
        optimizer: &mut ModuleOptimizer,
        group: &[Vec<usize>],
        state: &TrainingState,
    ) -> Result<(T5ForConditionalGeneration, StepLog)> {
        // Dropout masks follow from the seed and the step, so a resumed run draws the same
        // ones.
        let seed = self.config.seed ^ (state.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.device.seed(seed);
        let mut accumulator = GradientsAccumulator::new();
        let (mut loss_sum, mut target_tokens) = (0.0, 0);
        for indices in group {
            let chosen: Vec<&Example> = indices.iter().map(|&i| &self.examples[i]).collect();
            let batch = Seq2SeqBatch::new(&chosen, self.pad, self.start, &self.device);
            // Counted on the host: reading the mask back would wait for the device.
            target_tokens += chosen.iter().map(|e| e.target.len()).sum::<usize>();
            let loss = seq2seq_loss(&model, &batch) / group.len() as f64;
            let value = loss.clone().into_scalar::<f64>() * group.len() as f64;
            if !value.is_finite() {
                return Err(Error::Training(format!(
                    "the loss became {value} at step {} (epoch {}); training stopped, the \
                     last checkpoint is kept",
                    state.step + 1,
                    state.epoch
                )));
            }
            loss_sum += value;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        let mut grads = accumulator.grads();
        let grad_norm = clip_global_norm(&mut grads, &self.adapter_ids, self.config.max_grad_norm);
        let lr = learning_rate(
            state.step,
            self.total_steps,
            self.warmup_steps,
            self.config.learning_rate,
        );
        let model = optimizer.step(lr, model, grads);
        let log = StepLog {
            step: state.step + 1,
            epoch: state.epoch,
            loss: loss_sum / group.len() as f64,
            lr,
            grad_norm,
            target_tokens,
        };
        Ok((model, log))
    }

    /// Scores `model` at the end of `epoch` and updates the run's best evaluation and its
    /// patience; a new best adapter is saved in the best directory. Returns the evaluation
    /// and the model scored (in inference mode).
    fn evaluate(
        &self,
        model: &T5ForConditionalGeneration,
        validation: &Validation,
        epoch: usize,
        state: &mut TrainingState,
        checkpointing: Option<&Checkpointing>,
    ) -> Result<(EvalLog, T5ForConditionalGeneration)> {
        let inference = model.valid();
        let scores = validation.evaluate(&inference, self.config.batch_size)?;
        let metric = self.config.validation.best_metric;
        let best = state
            .best
            .as_ref()
            .is_none_or(|b| metric.improves(&scores, &b.scores));
        let log = EvalLog {
            step: state.step,
            epoch,
            scores,
            best,
        };
        if best {
            if let Some(checkpointing) = checkpointing {
                let config = self.config;
                save_adapter(model, &config.lora, &config.model, &checkpointing.best_dir)?;
            }
            state.best = Some(log.clone());
            state.epochs_since_best = 0;
        } else {
            state.epochs_since_best += 1;
        }
        Ok((log, inference))
    }
}

/// Optimiser steps of a whole run over `examples` examples.
pub fn total_steps(examples: usize, config: &TrainConfig) -> usize {
    let batches_per_epoch = examples.div_ceil(config.batch_size.max(1));
    batches_per_epoch.div_ceil(config.grad_accumulation.max(1)) * config.epochs
}

/// Scales the gradients down to a global L2 norm of `max_norm` (PyTorch's
/// `clip_grad_norm_`, which Hugging Face's Trainer uses); returns the norm before clipping.
fn clip_global_norm(grads: &mut GradientsParams, ids: &[ParamId], max_norm: f64) -> f64 {
    let squares: f64 = ids
        .iter()
        .filter_map(|&id| grads.get::<2>(id))
        .map(|g| g.powf_scalar(2.0).sum().into_scalar::<f64>())
        .sum();
    let norm = squares.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for &id in ids {
            if let Some(g) = grads.remove::<2>(id) {
                grads.register(id, g * scale);
            }
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use qa_data::settings::undeclared_fields;

    use super::TrainConfig;

    #[test]
    fn every_setting_is_declared_run_place_or_deciding() {
        assert_eq!(undeclared_fields::<TrainConfig>(), Vec::<String>::new());
    }
}

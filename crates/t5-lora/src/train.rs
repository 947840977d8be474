//! LoRA fine-tuning of T5 on question/answer records: examples, batches grouped by length,
//! the sequence-to-sequence loss, and the optimisation loop (AdamW, linear warm-up then decay,
//! global gradient-norm clipping, gradient accumulation), on an autodiff device.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::module::{Param, ParamId};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;
use qa_data::QaRecord;
use qa_data::files::JsonlAppender;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::lora::{LoraConfig, load_adapter, save_adapter};
use crate::model::T5ForConditionalGeneration;
use crate::predict::DEFAULT_TEMPLATE;
use crate::tokenizer::{T5Tokenizer, pad_batch};
use crate::validation::{EvalScores, Validation, ValidationConfig};
use qa_data::template::PromptTemplate;

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

/// One tokenized training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Prompt tokens, `</s>` last.
    pub source: Vec<u32>,
    /// Answer tokens, `</s>` last.
    pub target: Vec<u32>,
}

/// What tokenizing the training set cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TruncationCounts {
    /// Prompts longer than `max_source_len`.
    pub sources_truncated: usize,
    /// Examples whose answer was in the prompt's context but is no longer in what was kept:
    /// the model is asked for an answer it cannot see.
    pub answers_cut_away: usize,
    /// Answers longer than `max_target_len`.
    pub targets_truncated: usize,
}

/// Tokenizes records into examples: prompt from the template, target = the first answer.
pub fn encode_examples(
    tokenizer: &T5Tokenizer,
    records: &[QaRecord],
    config: &TrainConfig,
) -> Result<(Vec<Example>, TruncationCounts)> {
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let prompts: Vec<String> = records.iter().map(|r| template.render(r)).collect();
    let sources = tokenizer.encode(&prompts, config.max_source_len)?;
    let answers: Vec<&str> = records.iter().map(QaRecord::answer).collect();
    let targets = tokenizer.encode(&answers, config.max_target_len)?;
    let answers_cut_away = prompts
        .iter()
        .zip(&answers)
        .zip(&sources.covered_bytes)
        .filter(|&((prompt, answer), &covered)| {
            prompt.contains(answer) && !prompt[..covered].contains(answer)
        })
        .count();
    let examples = sources
        .ids
        .into_iter()
        .zip(targets.ids)
        .map(|(source, target)| Example { source, target })
        .collect();
    Ok((
        examples,
        TruncationCounts {
            sources_truncated: sources.truncated,
            answers_cut_away,
            targets_truncated: targets.truncated,
        },
    ))
}

/// A padded batch for teacher-forced training.
#[derive(Debug, Clone)]
pub struct Seq2SeqBatch {
    /// Prompt tokens, `[batch, src_len]`.
    pub input_ids: Tensor<2, Int>,
    /// 1 on prompt tokens, 0 on padding, `[batch, src_len]`.
    pub attention_mask: Tensor<2, Int>,
    /// The targets shifted right behind the decoder start token, `[batch, tgt_len]`.
    pub decoder_input_ids: Tensor<2, Int>,
    /// The targets, `[batch, tgt_len]`.
    pub labels: Tensor<2, Int>,
    /// 1 on target tokens, 0 on padding (which the loss ignores), `[batch, tgt_len]`.
    pub label_mask: Tensor<2>,
}

impl Seq2SeqBatch {
    /// Pads `examples` into tensors on `device`.
    pub fn new(examples: &[&Example], pad_id: u32, start_id: u32, device: &Device) -> Self {
        let sources: Vec<Vec<u32>> = examples.iter().map(|e| e.source.clone()).collect();
        let targets: Vec<Vec<u32>> = examples.iter().map(|e| e.target.clone()).collect();
        let shifted: Vec<Vec<u32>> = targets
            .iter()
            .map(|t| {
                std::iter::once(start_id)
                    .chain(t[..t.len() - 1].iter().copied())
                    .collect()
            })
            .collect();
        let (input_ids, attention_mask) = pad_batch(&sources, pad_id, device);
        let (labels, label_mask) = pad_batch(&targets, pad_id, device);
        let (decoder_input_ids, _) = pad_batch(&shifted, pad_id, device);
        Seq2SeqBatch {
            input_ids,
            attention_mask,
            decoder_input_ids,
            labels,
            label_mask: label_mask.float(),
        }
    }
}

/// Mean cross-entropy of the target tokens, padding ignored (Hugging Face's loss with labels
/// of -100 on padding).
///
/// # Shapes
/// - output: `[1]`
pub fn seq2seq_loss(model: &T5ForConditionalGeneration, batch: &Seq2SeqBatch) -> Tensor<1> {
    let logits = model.forward(
        batch.input_ids.clone(),
        batch.attention_mask.clone(),
        batch.decoder_input_ids.clone(),
    ); // [batch, tgt_len, vocab]
    let log_probs = log_softmax(logits, 2);
    let picked = log_probs
        .gather(2, batch.labels.clone().unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2); // [batch, tgt_len]
    let total = (picked * batch.label_mask.clone()).sum();
    total.neg() / batch.label_mask.clone().sum()
}

/// The batches of one epoch, as example indices: shuffled with the seed and the epoch, then
/// grouped by prompt length within windows of 50 batches (less padding, still random), and
/// the batches themselves shuffled.
pub fn epoch_batches(
    examples: &[Example],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.shuffle(&mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(batch_size * 50) {
        let mut window = window.to_vec();
        window.sort_by_key(|&i| std::cmp::Reverse(examples[i].source.len()));
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
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

/// One logged optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepLog {
    /// Optimiser steps done (1-based).
    pub step: usize,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean loss of the step's batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens of the step.
    pub target_tokens: usize,
}

impl StepLog {
    /// Target tokens per second of a step that took `seconds`.
    pub fn tokens_per_second(&self, seconds: f64) -> f64 {
        self.target_tokens as f64 / seconds.max(1e-9)
    }
}

/// One evaluation on the validation set, at the end of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLog {
    /// Optimiser steps done when it ran.
    pub step: usize,
    /// The epoch just finished (0-based).
    pub epoch: usize,
    /// Its figures.
    #[serde(flatten)]
    pub scores: EvalScores,
    /// Whether it is the best so far (by `validation.best_metric`).
    pub best: bool,
}

/// What [`train`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// An optimiser step was taken.
    Step(&'a StepLog),
    /// An epoch ended and the validation set was scored.
    Evaluation(&'a EvalLog),
}

/// Where a run stands after an optimiser step: with the adapter and the optimiser state, all
/// that is needed to continue exactly (shuffling and dropout draw from seeds derived from the
/// run's seed, the epoch and the step, so they need no saved generator state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimiser steps done.
    pub step: usize,
    /// The epoch of the next step.
    pub epoch: usize,
    /// Step groups of that epoch already done (the data position).
    pub groups_done: usize,
    /// Ids of the adapter parameters, in model order, that the optimiser state refers to.
    pub param_ids: Vec<u64>,
    /// The best evaluation so far.
    pub best: Option<EvalLog>,
    /// Evaluations since the best one.
    #[serde(default)]
    pub epochs_since_best: usize,
}

impl TrainingState {
    /// Whether early stopping ends the run: `patience` evaluations in a row brought no
    /// improvement.
    pub fn out_of_patience(&self, config: &TrainConfig) -> bool {
        config.validation.patience > 0 && self.epochs_since_best >= config.validation.patience
    }
}

/// Checkpointing of a run: the directories, and how often (in optimiser steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointing {
    /// `adapter_config.json`, `adapter_model.safetensors`, `optimizer.bin` and `state.json`
    /// live here; each checkpoint replaces the previous one atomically.
    pub dir: PathBuf,
    /// Steps between checkpoints (the last step, the end of an epoch with validation, and a
    /// requested stop always get one).
    pub every: usize,
    /// The adapter of the best evaluation so far (a PEFT adapter directory).
    pub best_dir: PathBuf,
    /// What decides the run's output (its settings and the digests of its data), written into
    /// every checkpoint as [`RUN_FILE`] so that a resume can refuse other ones.
    pub run: serde_json::Value,
}

/// The file of a checkpoint that records what decides the run's output.
pub const RUN_FILE: &str = qa_data::layout::model_files::CHECKPOINT_RUN;

/// The file holding the optimiser state (Burn's record bytes).
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
/// The file holding [`TrainingState`].
pub const STATE_FILE: &str = "state.json";

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

/// `train_log.jsonl`: one JSON line per optimiser step (`"event": "step"`, [`StepLog`] plus
/// the step's wall time, target tokens/s and the device it ran on) and per evaluation
/// (`"event": "evaluation"`, [`EvalLog`]), appended and flushed as the run goes.
pub struct TrainLog {
    appender: JsonlAppender,
    device: String,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum LogLine<'a> {
    Step {
        #[serde(flatten)]
        step: &'a StepLog,
        seconds: f64,
        tokens_per_second: f64,
        /// A resumed run may continue on another device.
        device: &'a str,
    },
    Evaluation(&'a EvalLog),
}

impl TrainLog {
    /// Opens the log of a run that starts (or resumes) after step `start` on `device` (its name,
    /// as [`crate::device::ResolvedDevice`] gives it): lines of later steps, which a resumed run
    /// redoes, are dropped; a fresh run (`start` 0) starts an empty log.
    pub fn open(path: &Path, start: usize, device: &str) -> Result<Self> {
        let lines: Vec<serde_json::Value> = qa_data::files::read_appended(path)?;
        let kept = lines
            .into_iter()
            .filter(|line| line["step"].as_u64().is_some_and(|s| s as usize <= start));
        qa_data::files::write_jsonl_atomic(path, kept)?;
        let (appender, _) = JsonlAppender::open(path)?;
        Ok(TrainLog {
            appender,
            device: device.to_string(),
        })
    }

    /// Appends one step that took `seconds` of wall time.
    pub fn append_step(&mut self, step: &StepLog, seconds: f64) -> Result<()> {
        self.appender.append(&LogLine::Step {
            step,
            seconds,
            tokens_per_second: step.tokens_per_second(seconds),
            device: &self.device,
        })?;
        Ok(())
    }

    /// Appends one evaluation.
    pub fn append_evaluation(&mut self, evaluation: &EvalLog) -> Result<()> {
        self.appender.append(&LogLine::Evaluation(evaluation))?;
        Ok(())
    }
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
    let device = model.device();
    if !device.is_autodiff() {
        return Err(Error::Training(
            "training needs an autodiff device".to_string(),
        ));
    }
    if config.batch_size == 0 || config.grad_accumulation == 0 || examples.is_empty() {
        return Err(Error::Training(
            "training needs examples, and a batch size and accumulation of at least 1".to_string(),
        ));
    }
    config.validation.validate()?;
    let (pad, start) = (
        model.config().pad_token_id,
        model.config().decoder_start_token_id,
    );
    let mut optimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let mut state = TrainingState {
        step: 0,
        epoch: 0,
        groups_done: 0,
        param_ids: adapter_param_ids(&mut model)
            .iter()
            .map(ParamId::val)
            .collect(),
        best: None,
        epochs_since_best: 0,
    };
    if let Some(found) = checkpointing.and_then(|c| existing_checkpoint(&c.dir)) {
        (model, optimizer, state) = resume(model, optimizer, &found)?;
    }
    let adapter_ids = adapter_param_ids(&mut model);
    let total_steps = total_steps(examples.len(), config);
    let warmup = (total_steps as f64 * config.warmup_ratio).round() as usize;
    let mut best_model = None;
    while state.epoch < config.epochs && !state.out_of_patience(config) {
        let batches = epoch_batches(examples, config.batch_size, config.seed, state.epoch);
        let groups: Vec<&[Vec<usize>]> = batches.chunks(config.grad_accumulation).collect();
        while state.groups_done < groups.len() {
            let group = groups[state.groups_done];
            // Dropout masks follow from the seed and the step, so a resumed run draws the
            // same ones.
            device.seed(config.seed ^ (state.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut accumulator = GradientsAccumulator::new();
            let mut loss_sum = 0.0;
            let mut target_tokens = 0;
            for indices in group {
                let chosen: Vec<&Example> = indices.iter().map(|&i| &examples[i]).collect();
                let batch = Seq2SeqBatch::new(&chosen, pad, start, &device);
                // Counted on the host: reading the mask back would wait for the device.
                target_tokens += chosen.iter().map(|e| e.target.len()).sum::<usize>();
                let loss = seq2seq_loss(&model, &batch) / group.len() as f64;
                let value = loss.clone().into_scalar::<f64>() * group.len() as f64;
                if !value.is_finite() {
                    return Err(Error::Training(format!(
                        "the loss became {value} at step {} (epoch {}); training stopped, \
                         the last checkpoint is kept",
                        state.step + 1,
                        state.epoch
                    )));
                }
                loss_sum += value;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                accumulator.accumulate(&model, grads);
            }
            let mut grads = accumulator.grads();
            let grad_norm = clip_global_norm(&mut grads, &adapter_ids, config.max_grad_norm);
            let lr = learning_rate(state.step, total_steps, warmup, config.learning_rate);
            model = optimizer.step(lr, model, grads);
            let epoch = state.epoch;
            state.step += 1;
            state.groups_done += 1;
            let epoch_ended = state.groups_done == groups.len();
            if epoch_ended {
                state.epoch += 1;
                state.groups_done = 0;
            }
            let mut flow = on_event(TrainEvent::Step(&StepLog {
                step: state.step,
                epoch,
                loss: loss_sum / group.len() as f64,
                lr,
                grad_norm,
                target_tokens,
            }));
            // Evaluated even when a stop was asked for, so that the checkpoint below, at an
            // epoch's end, always carries that epoch's evaluation.
            let evaluated = epoch_ended && validation.is_some();
            if let Some(validation) = validation.filter(|_| epoch_ended) {
                let inference = model.valid();
                let scores = validation.evaluate(&inference, config)?;
                let metric = config.validation.best_metric;
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
                        save_adapter(&model, &config.lora, &config.model, &checkpointing.best_dir)?;
                    }
                    best_model = Some(inference);
                    state.best = Some(log.clone());
                    state.epochs_since_best = 0;
                } else {
                    state.epochs_since_best += 1;
                }
                if on_event(TrainEvent::Evaluation(&log)).is_break() {
                    flow = ControlFlow::Break(());
                }
            }
            let last = state.step == total_steps;
            if let Some(checkpointing) = checkpointing
                && (flow.is_break()
                    || last
                    || evaluated
                    || state.step.is_multiple_of(checkpointing.every.max(1)))
            {
                save_checkpoint(&model, &optimizer, &state, config, checkpointing)?;
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

/// The model of the best evaluation: the one kept in memory, or, when that evaluation was
/// before a resume, the adapter saved in `best_dir` attached to the base weights of `model`.
fn restore_best(
    model: &T5ForConditionalGeneration,
    in_memory: Option<T5ForConditionalGeneration>,
    state: &TrainingState,
    checkpointing: Option<&Checkpointing>,
) -> Result<Option<T5ForConditionalGeneration>> {
    match (in_memory, &state.best, checkpointing) {
        (Some(best), _, _) => Ok(Some(best)),
        (None, Some(_), Some(checkpointing)) => {
            let base = model.valid().strip_lora();
            Ok(Some(load_adapter(base, &checkpointing.best_dir)?.0))
        }
        _ => Ok(None),
    }
}

/// Optimiser steps of a whole run over `examples` examples.
pub fn total_steps(examples: usize, config: &TrainConfig) -> usize {
    let batches_per_epoch = examples.div_ceil(config.batch_size.max(1));
    batches_per_epoch.div_ceil(config.grad_accumulation.max(1)) * config.epochs
}

/// The state of the checkpoint in `dir`, if there is one to resume from.
pub fn checkpoint_state(dir: &Path) -> Result<Option<TrainingState>> {
    existing_checkpoint(dir)
        .map(|found| qa_data::files::read_json(found.join(STATE_FILE)).map_err(Error::from))
        .transpose()
}

/// What the checkpoint in `dir` records of the run's settings and data ([`RUN_FILE`]): `None`
/// when there is no checkpoint or it records nothing (one written before checkpoints did).
pub fn checkpoint_run(dir: &Path) -> Result<Option<serde_json::Value>> {
    existing_checkpoint(dir)
        .map(|found| found.join(RUN_FILE))
        .filter(|path| path.is_file())
        .map(|path| qa_data::files::read_json(path).map_err(Error::from))
        .transpose()
}

/// The checkpoint directory to resume from, if any: `dir`, or the previous checkpoint that a
/// crash while replacing it left at `dir.old`.
fn existing_checkpoint(dir: &Path) -> Option<PathBuf> {
    let old = sibling(dir, "old");
    [dir.to_path_buf(), old]
        .into_iter()
        .find(|d| d.join(STATE_FILE).is_file())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// Writes a checkpoint, with the run's record, into `<dir>.tmp`, then swaps it in for `dir`
/// (the previous one stays at `<dir>.old` until the new one is in place).
fn save_checkpoint(
    model: &T5ForConditionalGeneration,
    optimizer: &ModuleOptimizer,
    state: &TrainingState,
    config: &TrainConfig,
    checkpointing: &Checkpointing,
) -> Result<()> {
    let dir = &checkpointing.dir;
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    save_adapter(model, &config.lora, "", &tmp)?;
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| Error::Training(format!("saving the optimiser state: {e:?}")))?;
    // Inside the temporary directory plain writes suffice: only a complete directory is ever
    // swapped in.
    let optimizer_path = tmp.join(OPTIMIZER_FILE);
    std::fs::write(&optimizer_path, &*bytes).map_err(|e| Error::io(&optimizer_path, e))?;
    qa_data::files::write_json_atomic(tmp.join(STATE_FILE), state)?;
    qa_data::files::write_json_atomic(tmp.join(RUN_FILE), &checkpointing.run)?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Loads the checkpoint in `dir` into `model` (whose adapters must match it) and `optimizer`.
fn resume(
    model: T5ForConditionalGeneration,
    optimizer: ModuleOptimizer,
    dir: &Path,
) -> Result<(T5ForConditionalGeneration, ModuleOptimizer, TrainingState)> {
    let state: TrainingState = qa_data::files::read_json(dir.join(STATE_FILE))?;
    let base = model.strip_lora();
    let (mut model, _) = load_adapter(base, dir)?;
    // The optimiser state is keyed by parameter id: give the reloaded adapters their old ids.
    let mut adapters: Vec<&mut Param<Tensor<2>>> = model
        .projections_mut()
        .into_iter()
        .filter_map(|(_, layer)| layer.lora.as_mut())
        .flat_map(|adapter| [&mut adapter.lora_a.weight, &mut adapter.lora_b.weight])
        .collect();
    if adapters.len() != state.param_ids.len() {
        return Err(Error::Training(format!(
            "{}: the checkpoint has {} adapter tensors, this model {}",
            dir.display(),
            state.param_ids.len(),
            adapters.len()
        )));
    }
    for (param, &id) in adapters.iter_mut().zip(&state.param_ids) {
        param.id = ParamId::from(id);
    }
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| Error::Training(format!("{}: {e:?}", path.display())))?;
    Ok((model, optimizer, state))
}

/// Ids of every adapter parameter.
fn adapter_param_ids(model: &mut T5ForConditionalGeneration) -> Vec<ParamId> {
    model
        .projections_mut()
        .into_iter()
        .filter_map(|(_, layer)| layer.lora.as_ref())
        .flat_map(|adapter| [adapter.lora_a.weight.id, adapter.lora_b.weight.id])
        .collect()
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

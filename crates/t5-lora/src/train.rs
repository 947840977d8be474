//! LoRA fine-tuning of T5 on question/answer records: examples, batches grouped by length,
//! the sequence-to-sequence loss, and the optimisation loop (AdamW, linear warm-up then decay,
//! global gradient-norm clipping, gradient accumulation), on an autodiff device.

use burn::module::ParamId;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use qa_data::QaRecord;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::model::T5ForConditionalGeneration;
use crate::predict::{DEFAULT_TEMPLATE, PromptTemplate};
use crate::tokenizer::{T5Tokenizer, pad_batch};

/// Training settings (the `train:` section of a config file); defaults follow the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
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
    let template = PromptTemplate::parse(&config.prompt_template)?;
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

    /// Target tokens in the batch (those the loss counts).
    pub fn target_tokens(&self) -> usize {
        self.label_mask.clone().sum().into_scalar::<f64>() as usize
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

/// Trains the adapters of `model` (which must live on an autodiff device and carry adapters)
/// on `examples`; `on_step` sees every optimiser step. A loss that is not finite stops training
/// with an error naming the step.
pub fn train(
    mut model: T5ForConditionalGeneration,
    examples: &[Example],
    config: &TrainConfig,
    mut on_step: impl FnMut(&StepLog),
) -> Result<T5ForConditionalGeneration> {
    let device = model.device();
    if !device.is_autodiff() {
        return Err(Error::Lora("training needs an autodiff device".to_string()));
    }
    if config.batch_size == 0 || config.grad_accumulation == 0 || examples.is_empty() {
        return Err(Error::Lora(
            "training needs examples, and a batch size and accumulation of at least 1".to_string(),
        ));
    }
    let (pad, start) = (
        model.config().pad_token_id,
        model.config().decoder_start_token_id,
    );
    let adapter_ids = adapter_param_ids(&mut model);
    let mut optimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let batches_per_epoch = examples.len().div_ceil(config.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(config.grad_accumulation);
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (total_steps as f64 * config.warmup_ratio).round() as usize;
    let mut step = 0;
    for epoch in 0..config.epochs {
        let batches = epoch_batches(examples, config.batch_size, config.seed, epoch);
        for group in batches.chunks(config.grad_accumulation) {
            let mut accumulator = GradientsAccumulator::new();
            let mut loss_sum = 0.0;
            let mut target_tokens = 0;
            for indices in group {
                let chosen: Vec<&Example> = indices.iter().map(|&i| &examples[i]).collect();
                let batch = Seq2SeqBatch::new(&chosen, pad, start, &device);
                target_tokens += batch.target_tokens();
                let loss = seq2seq_loss(&model, &batch) / group.len() as f64;
                let value = loss.clone().into_scalar::<f64>() * group.len() as f64;
                if !value.is_finite() {
                    return Err(Error::Lora(format!(
                        "the loss became {value} at step {} (epoch {epoch}): training stopped",
                        step + 1
                    )));
                }
                loss_sum += value;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                accumulator.accumulate(&model, grads);
            }
            let mut grads = accumulator.grads();
            let grad_norm = clip_global_norm(&mut grads, &adapter_ids, config.max_grad_norm);
            let lr = learning_rate(step, total_steps, warmup, config.learning_rate);
            model = optimizer.step(lr, model, grads);
            step += 1;
            on_step(&StepLog {
                step,
                epoch,
                loss: loss_sum / group.len() as f64,
                lr,
                grad_norm,
                target_tokens,
            });
        }
    }
    Ok(model)
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

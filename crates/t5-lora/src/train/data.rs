//! Training data: records tokenized into examples, padded batches, the sequence-to-sequence
//! loss, and the order of an epoch's batches.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use qa_data::QaRecord;
use qa_data::template::PromptTemplate;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::Result;
use crate::model::T5ForConditionalGeneration;
use crate::tokenizer::{T5Tokenizer, pad_batch};

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

/// How records become examples: the settings of [`crate::TrainConfig`] that encoding reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding<'a> {
    /// The prompt, with `{question}` and `{context}` placeholders.
    pub prompt_template: &'a str,
    /// Prompt tokens kept.
    pub max_source_len: usize,
    /// Answer tokens kept (`</s>` included).
    pub max_target_len: usize,
}

/// Tokenizes records into examples: prompt from the template, target = the first answer.
pub fn encode_examples(
    tokenizer: &T5Tokenizer,
    records: &[QaRecord],
    encoding: &Encoding<'_>,
) -> Result<(Vec<Example>, TruncationCounts)> {
    let template = PromptTemplate::parse_question_prompt(encoding.prompt_template)?;
    let prompts: Vec<String> = records.iter().map(|r| template.render(r)).collect();
    let sources = tokenizer.encode(&prompts, encoding.max_source_len)?;
    let answers: Vec<&str> = records.iter().map(QaRecord::answer).collect();
    let targets = tokenizer.encode(&answers, encoding.max_target_len)?;
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

//! Generation for batches of inputs of different lengths: greedy search, beam search and
//! sampling, with the semantics of Hugging Face's `generate` (transformers 4.57) so that the
//! same settings give the same tokens.
//!
//! The encoder runs once per distinct input: rows of a batch that share a prompt (the `n`
//! candidates of a synthesis seed) continue one encoder output, expanded the way Hugging Face's
//! `num_return_sequences` expands it, each row still sampling from its own stream. With
//! `use_cache` (the default) the decoder keeps the keys and values of every position it has
//! seen ([`DecoderCache`]), so each new token costs one position; without it every step
//! recomputes the whole prefix, which exists to measure what the cache saves.

use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use qa_data::settings::{Invalid, check};

use crate::error::{Error, Result};
use crate::model::{DecoderCache, T5ForConditionalGeneration};
use crate::tokenizer::{T5Tokenizer, pad_batch};

/// How to generate: one struct for every caller (prediction, synthesis, validation during
/// training), with Hugging Face's names and defaults except `max_new_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Most tokens generated after the decoder start token (`</s>` included).
    pub max_new_tokens: usize,
    /// Beams of beam search; 1 means greedy search or sampling.
    pub num_beams: usize,
    /// Exponent of the length normalisation of finished beams (`score / len^length_penalty`):
    /// above 0 favours longer sequences.
    pub length_penalty: f32,
    /// Beam search stops for an input once it has `num_beams` finished sequences; otherwise
    /// it goes on while a running beam could still beat the worst finished one.
    pub early_stopping: bool,
    /// Sample the next token instead of taking the most likely one.
    pub do_sample: bool,
    /// Sampling temperature (logits are divided by it).
    pub temperature: f32,
    /// Sample among the `top_k` most likely tokens only; 0 turns this off.
    pub top_k: usize,
    /// Sample among the most likely tokens whose probabilities add up to `top_p` (nucleus).
    pub top_p: f32,
    /// Seed of sampling. Input `i` of a run draws from its own stream, so its tokens do not
    /// depend on batch size or order.
    pub seed: u64,
    /// Keep decoder keys and values between steps (see the module documentation).
    pub use_cache: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 32,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            seed: 0,
            use_cache: true,
        }
    }
}

impl GenerationConfig {
    /// Checks that every setting is in range, naming the first that is not.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("max_new_tokens", self.max_new_tokens)?;
        check::at_least_one("num_beams", self.num_beams)?;
        if self.do_sample && self.num_beams > 1 {
            return Err(Invalid::new(
                "num_beams",
                format!(
                    "must be 1 with do_sample, not {}: beam sampling is not supported",
                    self.num_beams
                ),
            ));
        }
        check::positive("temperature", self.temperature.into())?;
        check::share("top_p", self.top_p.into())?;
        if !self.length_penalty.is_finite() {
            return Err(Invalid::new(
                "length_penalty",
                format!("must be finite, not {}", self.length_penalty),
            ));
        }
        Ok(())
    }
}

/// Generates a continuation for every row of a padded batch.
///
/// Returns, for each row, the generated tokens after the decoder start token, ending with
/// `</s>` when the model produced it within `max_new_tokens`. Row `i` samples from stream
/// `first_stream + i` of `config.seed`; see [`generate_with_streams`] to choose every row's
/// stream.
///
/// # Shapes
/// - input_ids, attention_mask: `[batch, src_len]`
pub fn generate(
    model: &T5ForConditionalGeneration,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
    config: &GenerationConfig,
    first_stream: u64,
) -> Result<Vec<Vec<u32>>> {
    let streams: Vec<u64> = (first_stream..).take(input_ids.dims()[0]).collect();
    generate_with_streams(model, input_ids, attention_mask, config, &streams)
}

/// [`generate`], with row `i` sampling from stream `streams[i]` of `config.seed`: give each
/// input its position in the whole run, and its sampled tokens do not depend on batching.
/// Every row is encoded, repeated ones too; [`generate_repeated`] encodes each input once.
pub fn generate_with_streams(
    model: &T5ForConditionalGeneration,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
    config: &GenerationConfig,
    streams: &[u64],
) -> Result<Vec<Vec<u32>>> {
    let rows: Vec<usize> = (0..input_ids.dims()[0]).collect();
    generate_repeated(model, input_ids, attention_mask, &rows, config, streams)
}

/// Generates several sequences per input from one encoder pass: the encoder runs over the
/// `inputs` rows once, and output row `i` continues input `rows[i]`, sampling from stream
/// `streams[i]`. The tokens are those [`generate_with_streams`] gives for the batch with input
/// `rows[i]` in row `i`, for `inputs / rows.len()` of its encoder work.
///
/// # Shapes
/// - input_ids, attention_mask: `[inputs, src_len]`
pub fn generate_repeated(
    model: &T5ForConditionalGeneration,
    input_ids: Tensor<2, Int>,
    attention_mask: Tensor<2, Int>,
    rows: &[usize],
    config: &GenerationConfig,
    streams: &[u64],
) -> Result<Vec<Vec<u32>>> {
    config.validate()?;
    let inputs = input_ids.dims()[0];
    if streams.len() != rows.len() {
        return Err(Error::Generation(format!(
            "{} sampling streams for {} rows",
            streams.len(),
            rows.len()
        )));
    }
    if let Some(row) = rows.iter().find(|&&row| row >= inputs) {
        return Err(Error::Generation(format!(
            "row of input {row} asked for in a batch of {inputs} inputs"
        )));
    }
    let device = input_ids.device();
    let mut encoder_hidden = model.encode(input_ids, attention_mask.clone());
    let mut attention_mask = attention_mask;
    if !rows.iter().copied().eq(0..inputs) {
        let expand = row_indices(rows, &device);
        encoder_hidden = encoder_hidden.select(0, expand.clone());
        attention_mask = attention_mask.select(0, expand);
    }
    if config.num_beams > 1 {
        Ok(beam_search(model, encoder_hidden, attention_mask, config))
    } else {
        greedy_or_sample(model, encoder_hidden, attention_mask, config, streams)
    }
}

/// Prompts in, answers out: tokenizes `prompts` (each cut to `max_source_len` tokens, `</s>`
/// kept), generates as [`generate_from_ids`] does (prompt `i` sampling from `streams[i]`), and
/// decodes without special tokens.
pub fn generate_text<S: AsRef<str>>(
    model: &T5ForConditionalGeneration,
    tokenizer: &T5Tokenizer,
    prompts: &[S],
    max_source_len: usize,
    config: &GenerationConfig,
    streams: &[u64],
) -> Result<Vec<String>> {
    let encoded = tokenizer.encode(prompts, max_source_len)?;
    generate_from_ids(model, tokenizer, &encoded.ids, config, streams)
}

/// [`generate_text`] for prompts already tokenized (each ending with `</s>`). Prompts that
/// occur more than once are encoded once ([`generate_repeated`]).
pub fn generate_from_ids(
    model: &T5ForConditionalGeneration,
    tokenizer: &T5Tokenizer,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    streams: &[u64],
) -> Result<Vec<String>> {
    let mut distinct: Vec<&[u32]> = Vec::new();
    let mut first_seen: HashMap<&[u32], usize> = HashMap::new();
    let rows: Vec<usize> = prompts
        .iter()
        .map(|prompt| {
            *first_seen.entry(prompt.as_slice()).or_insert_with(|| {
                distinct.push(prompt);
                distinct.len() - 1
            })
        })
        .collect();
    let (input_ids, attention_mask) = pad_batch(&distinct, tokenizer.pad_id(), &model.device());
    generate_repeated(model, input_ids, attention_mask, &rows, config, streams)?
        .iter()
        .map(|tokens| tokenizer.decode(tokens))
        .collect()
}

/// The decoder between steps: a [`DecoderCache`], or (uncached) the prefix to recompute.
enum DecoderState {
    Cached(Box<DecoderCache>),
    Uncached(Box<Recompute>),
}

/// What decoding without a cache needs at each step.
struct Recompute {
    encoder_hidden: Tensor<3>,
    attention_mask: Tensor<2, Int>,
    prefix: Option<Tensor<2, Int>>,
}

impl DecoderState {
    fn new(
        model: &T5ForConditionalGeneration,
        encoder_hidden: Tensor<3>,
        attention_mask: Tensor<2, Int>,
        use_cache: bool,
    ) -> Self {
        if use_cache {
            DecoderState::Cached(Box::new(
                model.start_decoding(encoder_hidden, attention_mask),
            ))
        } else {
            DecoderState::Uncached(Box::new(Recompute {
                encoder_hidden,
                attention_mask,
                prefix: None,
            }))
        }
    }

    /// Feeds one token per row; returns the next-token logits.
    ///
    /// # Shapes
    /// - tokens: `[rows, 1]` → `[rows, vocab]`
    fn step(&mut self, model: &T5ForConditionalGeneration, tokens: Tensor<2, Int>) -> Tensor<2> {
        let logits = match self {
            DecoderState::Cached(cache) => model.decode_step(tokens, cache),
            DecoderState::Uncached(state) => {
                let full = match state.prefix.take() {
                    Some(previous) => Tensor::cat(vec![previous, tokens], 1),
                    None => tokens,
                };
                state.prefix = Some(full.clone());
                let [rows, len] = full.dims();
                let logits = model.decode(
                    full,
                    state.encoder_hidden.clone(),
                    state.attention_mask.clone(),
                );
                let vocab = logits.dims()[2];
                logits.slice([0..rows, len - 1..len, 0..vocab])
            }
        };
        let [rows, _, vocab] = logits.dims();
        logits.reshape([rows, vocab])
    }

    /// Keeps only `rows` (indices into the current rows).
    fn keep_rows(&mut self, rows: Tensor<1, Int>) {
        match self {
            DecoderState::Cached(cache) => cache.keep_rows(rows),
            DecoderState::Uncached(state) => {
                state.encoder_hidden = state.encoder_hidden.clone().select(0, rows.clone());
                state.attention_mask = state.attention_mask.clone().select(0, rows.clone());
                state.prefix = state.prefix.take().map(|p| p.select(0, rows));
            }
        }
    }

    /// Row `i` continues the prefix of row `rows[i]`, which has the same encoder input.
    fn reorder_beams(&mut self, rows: Tensor<1, Int>) {
        match self {
            DecoderState::Cached(cache) => cache.reorder_beams(rows),
            DecoderState::Uncached(state) => {
                state.prefix = state.prefix.take().map(|p| p.select(0, rows));
            }
        }
    }
}

fn int_tensor<const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn token_column(tokens: &[u32], device: &Device) -> Tensor<2, Int> {
    let values = tokens.iter().map(|&t| i64::from(t)).collect();
    int_tensor(values, [tokens.len(), 1], device)
}

fn row_indices(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    int_tensor(
        rows.iter().map(|&r| r as i64).collect(),
        [rows.len()],
        device,
    )
}

fn to_host_f32(tensor: Tensor<2>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 just above")
}

/// Greedy search (`do_sample = false`) or sampling, one token per step for every unfinished
/// row; rows that produced `</s>` leave the batch.
fn greedy_or_sample(
    model: &T5ForConditionalGeneration,
    encoder_hidden: Tensor<3>,
    attention_mask: Tensor<2, Int>,
    config: &GenerationConfig,
    streams: &[u64],
) -> Result<Vec<Vec<u32>>> {
    let device = encoder_hidden.device();
    let batch = streams.len();
    let (start, eos) = (
        model.config().decoder_start_token_id,
        model.config().eos_token_id,
    );
    let mut state = DecoderState::new(model, encoder_hidden, attention_mask, config.use_cache);
    let mut rngs: Vec<ChaCha8Rng> = streams
        .iter()
        .map(|&stream| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(stream);
            rng
        })
        .collect();
    let mut outputs = vec![Vec::new(); batch];
    // `active[i]` is the batch row that decoder row `i` generates for.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut next = vec![start; batch];
    for _ in 0..config.max_new_tokens {
        let logits = state.step(model, token_column(&next, &device)); // [active, vocab]
        let chosen: Vec<u32> = if config.do_sample {
            let vocab = logits.dims()[1];
            let host = to_host_f32(logits);
            active
                .iter()
                .zip(host.chunks_exact(vocab))
                .map(|(&row, row_logits)| sample_token(row_logits, config, &mut rngs[row]))
                .collect()
        } else {
            logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .expect("converted to i64 just above")
                .into_iter()
                .map(|t| t as u32)
                .collect()
        };
        let mut keep = Vec::with_capacity(active.len());
        for (i, (&row, &token)) in active.iter().zip(&chosen).enumerate() {
            outputs[row].push(token);
            if token != eos {
                keep.push(i);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            state.keep_rows(row_indices(&keep, &device));
            active = keep.iter().map(|&i| active[i]).collect();
        }
        next = keep.iter().map(|&i| chosen[i]).collect();
    }
    Ok(outputs)
}

/// Draws a token from `logits` after Hugging Face's warpers, in its order: temperature, top-k,
/// top-p.
///
/// Only the tokens top-k leaves are looked at after it: a token it removes has probability 0,
/// which changes no sum and no draw, so the result is the one over the whole vocabulary, at
/// the cost of `top_k` tokens rather than of sorting `vocab`.
fn sample_token(logits: &[f32], config: &GenerationConfig, rng: &mut ChaCha8Rng) -> u32 {
    let scores: Vec<f32> = logits.iter().map(|l| l / config.temperature).collect();
    // The tokens still possible, in vocabulary order.
    let mut tokens: Vec<usize> = (0..scores.len()).collect();
    if config.top_k > 0 && config.top_k < scores.len() {
        // Ties with the k-th score survive, as in `TopKLogitsWarper`.
        let mut ranked = scores.clone();
        let (_, &mut kth, _) =
            ranked.select_nth_unstable_by(config.top_k - 1, |a, b| b.total_cmp(a));
        tokens.retain(|&token| scores[token] >= kth);
    }
    let max = tokens
        .iter()
        .map(|&token| scores[token])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<f64> = tokens
        .iter()
        .map(|&token| f64::from(scores[token] - max).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if config.top_p < 1.0 {
        // `TopPLogitsWarper`: drop the least likely tokens whose cumulative probability stays
        // within 1 - top_p, always keeping the most likely one.
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[a].total_cmp(&probs[b]));
        let mut cumulative = 0.0;
        let limit = 1.0 - f64::from(config.top_p);
        for &index in &order[..order.len() - 1] {
            cumulative += probs[index];
            if cumulative > limit {
                break;
            }
            probs[index] = 0.0;
        }
    }
    let total: f64 = probs.iter().sum();
    let mut target = rng.random::<f64>() * total;
    let mut last_possible = 0;
    for (&token, &p) in tokens.iter().zip(&probs) {
        if p > 0.0 {
            last_possible = token;
            if target < p {
                return token as u32;
            }
            target -= p;
        }
    }
    last_possible as u32
}

/// A sequence that ended (with `</s>` or at `max_new_tokens`) and its length-normalised score.
struct Finished {
    score: f32,
    tokens: Vec<u32>,
}

/// Hugging Face's "minus infinity" for beams that must not be chosen.
const NEG_LARGE: f32 = -1.0e9;

/// One input's finished sequences, as Hugging Face's `BeamHypotheses`: at most `beams` of them,
/// best first, and whether a running beam can still beat the worst.
struct BeamHypotheses {
    finished: Vec<Finished>,
    beams: usize,
    early_stopping: bool,
    improvable: bool,
}

impl BeamHypotheses {
    fn new(beams: usize, early_stopping: bool) -> Self {
        BeamHypotheses {
            finished: Vec::with_capacity(beams + 1),
            beams,
            early_stopping,
            improvable: true,
        }
    }

    /// Whether the input takes no more sequences: none can improve it, or (with early
    /// stopping) it has `beams` of them.
    fn is_done(&self) -> bool {
        !self.improvable || (self.early_stopping && self.finished.len() == self.beams)
    }

    /// Adds a finished sequence with its normalised score (kept until [`Self::keep_best`]).
    fn add(&mut self, tokens: Vec<u32>, score: f32) {
        self.finished.push(Finished { score, tokens });
    }

    /// Keeps the best `beams`, best first.
    fn keep_best(&mut self) {
        self.finished.sort_by(|x, y| y.score.total_cmp(&x.score));
        self.finished.truncate(self.beams);
    }

    /// `_check_early_stop_heuristic`: once full, the input can improve only while its best
    /// running beam (`best_running`, normalised at the current length) beats its worst finished
    /// sequence.
    fn check_improvable(&mut self, best_running: f32) {
        if self.improvable && self.finished.len() == self.beams {
            let worst = self.finished.last().map_or(NEG_LARGE, |f| f.score);
            self.improvable = best_running > worst;
        }
    }

    /// The best finished sequence, or `running` (the best running beam) when none finished.
    fn best(mut self, running: &[u32]) -> Vec<u32> {
        match self.finished.is_empty() {
            true => running.to_vec(),
            false => self.finished.swap_remove(0).tokens,
        }
    }
}

/// The running beams of every input: row `b * beams + i` is beam `i` of input `b`, with its
/// tokens so far, its running score and the token it feeds the decoder next.
struct Beams {
    sequences: Vec<Vec<u32>>,
    scores: Vec<f32>,
    next: Vec<u32>,
}

/// A continuation of a running beam chosen for the next step: the row it extends, its score
/// and its token.
struct Continuation {
    source: usize,
    score: f32,
    token: u32,
}

impl Beams {
    /// `beams` rows per input, each starting at `start`, the first of each input at score 0 and
    /// the others out of the running (so the first step draws from one beam).
    fn new(batch: usize, beams: usize, start: u32) -> Self {
        Beams {
            sequences: vec![Vec::new(); batch * beams],
            scores: (0..batch * beams)
                .map(|row| if row % beams == 0 { 0.0 } else { NEG_LARGE })
                .collect(),
            next: vec![start; batch * beams],
        }
    }

    /// The rows the step's continuations make, in order.
    fn advance(&mut self, continuations: &[Continuation]) {
        self.sequences = continuations
            .iter()
            .map(|c| {
                let mut tokens = self.sequences[c.source].clone();
                tokens.push(c.token);
                tokens
            })
            .collect();
        self.scores = continuations.iter().map(|c| c.score).collect();
        self.next = continuations.iter().map(|c| c.token).collect();
    }
}

/// Beam search as `GenerationMixin._beam_search`: each step keeps the best `2 * num_beams`
/// continuations of an input; those ending in `</s>` among the best `num_beams` are finished
/// (scored by summed log-probability over `length^length_penalty`), the best `num_beams` others
/// run on. The answer is the best finished sequence.
fn beam_search(
    model: &T5ForConditionalGeneration,
    encoder_hidden: Tensor<3>,
    attention_mask: Tensor<2, Int>,
    config: &GenerationConfig,
) -> Vec<Vec<u32>> {
    let device = encoder_hidden.device();
    let batch = encoder_hidden.dims()[0];
    let beams = config.num_beams;
    let (start, eos) = (
        model.config().decoder_start_token_id,
        model.config().eos_token_id,
    );
    // Row `b * beams + i` is beam `i` of input `b`.
    let expand: Vec<usize> = (0..batch)
        .flat_map(|b| std::iter::repeat_n(b, beams))
        .collect();
    let expand = row_indices(&expand, &device);
    let mut state = DecoderState::new(
        model,
        encoder_hidden.select(0, expand.clone()),
        attention_mask.select(0, expand),
        config.use_cache,
    );
    let mut running = Beams::new(batch, beams, start);
    let mut hypotheses: Vec<BeamHypotheses> = (0..batch)
        .map(|_| BeamHypotheses::new(beams, config.early_stopping))
        .collect();
    let penalty = |length: usize| (length as f32).powf(config.length_penalty);
    for step in 0..config.max_new_tokens {
        let last_step = step + 1 == config.max_new_tokens;
        let log_probs = log_softmax(state.step(model, token_column(&running.next, &device)), 1);
        let vocab = log_probs.dims()[1];
        let log_probs = to_host_f32(log_probs);
        let mut continuations = Vec::with_capacity(batch * beams);
        for (b, input) in hypotheses.iter_mut().enumerate() {
            let rows = b * beams..(b + 1) * beams;
            let candidates = best_continuations(
                &log_probs[rows.start * vocab..rows.end * vocab],
                &running.scores[rows.clone()],
                vocab,
                2 * beams,
            );
            let done = input.is_done();
            let mut kept = 0;
            for (rank, &(score, beam, token)) in candidates.iter().enumerate() {
                let source = rows.start + beam;
                let ends = token == eos || last_step;
                if ends && rank < beams && !done {
                    let mut tokens = running.sequences[source].clone();
                    tokens.push(token);
                    input.add(tokens, score / penalty(step + 1));
                }
                if !ends && kept < beams {
                    kept += 1;
                    continuations.push(Continuation {
                        source,
                        score,
                        token,
                    });
                }
            }
            // Only at the last step can fewer than `beams` continuations go on; the loop ends
            // then, but the rows must stay filled.
            for &(score, beam, token) in candidates.iter().take(beams - kept) {
                continuations.push(Continuation {
                    source: rows.start + beam,
                    score: score + NEG_LARGE,
                    token,
                });
            }
            input.keep_best();
        }
        running.advance(&continuations);
        for (b, input) in hypotheses.iter_mut().enumerate() {
            input.check_improvable(running.scores[b * beams] / penalty(step + 1));
        }
        if last_step || hypotheses.iter().all(BeamHypotheses::is_done) {
            break;
        }
        let sources: Vec<usize> = continuations.iter().map(|c| c.source).collect();
        state.reorder_beams(row_indices(&sources, &device));
    }
    hypotheses
        .into_iter()
        .enumerate()
        .map(|(b, input)| input.best(&running.sequences[b * beams]))
        .collect()
}

/// The `count` best `(score, beam, token)` continuations of one input's beams, best first:
/// `log_probs` is `[beams, vocab]` flattened, `scores` the beams' running scores. Ties go to
/// the lower flat index.
fn best_continuations(
    log_probs: &[f32],
    scores: &[f32],
    vocab: usize,
    count: usize,
) -> Vec<(f32, usize, u32)> {
    let mut all: Vec<(f32, usize)> = log_probs
        .iter()
        .enumerate()
        .map(|(index, &lp)| (lp + scores[index / vocab], index))
        .collect();
    let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let count = count.min(all.len());
    all.select_nth_unstable_by(count - 1, order);
    all.truncate(count);
    all.sort_by(order);
    all.into_iter()
        .map(|(score, index)| (score, index / vocab, (index % vocab) as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(top_k: usize, top_p: f32) -> GenerationConfig {
        GenerationConfig {
            do_sample: true,
            top_k,
            top_p,
            ..GenerationConfig::default()
        }
    }

    fn draws(logits: &[f32], config: &GenerationConfig, n: usize) -> Vec<u32> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        (0..n)
            .map(|_| sample_token(logits, config, &mut rng))
            .collect()
    }

    #[test]
    fn top_k_and_top_p_limit_the_candidates() {
        let logits = [2.0, 1.0, 0.5, 0.0, -1.0];
        // top_k = 1 is greedy.
        assert!(
            draws(&logits, &sampling(1, 1.0), 50)
                .iter()
                .all(|&t| t == 0)
        );
        // top_k = 2 keeps tokens 0 and 1, and both appear.
        let two = draws(&logits, &sampling(2, 1.0), 200);
        assert!(two.iter().all(|&t| t < 2) && two.contains(&0) && two.contains(&1));
        // Probabilities ≈ [.57, .21, .13, .08, .03]: top_p = 0.7 keeps tokens 0 and 1 only.
        let nucleus = draws(&logits, &sampling(0, 0.7), 300);
        assert!(nucleus.iter().all(|&t| t < 2) && nucleus.contains(&1));
        // Without limits every token can appear.
        let all = draws(&logits, &sampling(0, 1.0), 2000);
        assert!((0..5).all(|t| all.contains(&t)));
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4 and 3/4
        let n = 20_000;
        let ones = draws(&logits, &sampling(0, 1.0), n)
            .iter()
            .filter(|&&t| t == 1)
            .count();
        let rate = ones as f64 / n as f64;
        assert!((rate - 0.75).abs() < 0.015, "{rate}");
        // Temperature 2 flattens to sqrt(3) : 1, i.e. about 0.634.
        let hot = GenerationConfig {
            temperature: 2.0,
            ..sampling(0, 1.0)
        };
        let ones = draws(&logits, &hot, n).iter().filter(|&&t| t == 1).count();
        let rate = ones as f64 / n as f64;
        assert!((rate - 0.634).abs() < 0.015, "{rate}");
    }

    #[test]
    fn best_continuations_ranks_across_beams() {
        // Two beams over a vocabulary of three; beam 1 starts 1.0 behind.
        let log_probs = [-0.1, -2.0, -3.0, -0.2, -0.5, -4.0];
        let best = best_continuations(&log_probs, &[0.0, -1.0], 3, 4);
        let picked: Vec<(usize, u32)> = best.iter().map(|&(_, b, t)| (b, t)).collect();
        assert_eq!(picked, [(0, 0), (1, 0), (1, 1), (0, 1)]);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = [
            GenerationConfig {
                max_new_tokens: 0,
                ..GenerationConfig::default()
            },
            GenerationConfig {
                num_beams: 4,
                do_sample: true,
                ..GenerationConfig::default()
            },
            GenerationConfig {
                temperature: 0.0,
                ..GenerationConfig::default()
            },
            GenerationConfig {
                top_p: 1.5,
                ..GenerationConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
        assert!(GenerationConfig::default().validate().is_ok());
    }

    /// Synthesis asks for several samples of one prompt: the encoder must run once for all of
    /// them, and each sample must still be the one the fully repeated batch gives.
    #[test]
    fn repeated_prompts_are_encoded_once_and_sample_as_if_repeated() {
        let _turn = crate::test_random::drawing();
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5/flan-t5-tiny");
        let device = crate::device::DeviceChoice::Cpu
            .resolve()
            .expect("the CPU")
            .device;
        let model =
            crate::checkpoint::load_pretrained(&fixture, &device).expect("checkpoint loads");
        let tokenizer = T5Tokenizer::from_file(&fixture.join("tokenizer.json")).expect("tokenizer");
        let questions = [
            "Where is the University of Notre Dame?",
            "Which antibiotic was found first?",
            "When did Montana become a state of the United States?",
        ];
        let distinct = tokenizer.encode(&questions, 64).expect("encodes").ids;
        let samples = 4;
        // Each prompt's samples side by side, in the order synthesis asks for them.
        let prompts: Vec<Vec<u32>> = distinct
            .iter()
            .flat_map(|ids| std::iter::repeat_n(ids.clone(), samples))
            .collect();
        let streams: Vec<u64> = (0..prompts.len() as u64).map(|i| 40 + i).collect();
        let sample = GenerationConfig {
            max_new_tokens: 24,
            do_sample: true,
            temperature: 0.8,
            top_p: 0.95,
            seed: 3,
            ..GenerationConfig::default()
        };

        let before = model.encoded_rows();
        let shared =
            generate_from_ids(&model, &tokenizer, &prompts, &sample, &streams).expect("generates");
        assert_eq!(model.encoded_rows() - before, questions.len());

        let (input_ids, attention_mask) = pad_batch(&prompts, tokenizer.pad_id(), &device);
        let before = model.encoded_rows();
        let repeated = generate_with_streams(&model, input_ids, attention_mask, &sample, &streams)
            .expect("generates");
        assert_eq!(model.encoded_rows() - before, prompts.len());
        let repeated: Vec<String> = repeated
            .iter()
            .map(|tokens| tokenizer.decode(tokens).expect("decodes"))
            .collect();
        assert_eq!(shared, repeated);
        // The samples of one prompt differ: each row kept its own stream.
        assert!(
            shared.chunks(samples).all(|texts| texts[0] != texts[1]),
            "{shared:?}"
        );
    }
}

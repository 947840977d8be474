//! Validation during training: after each epoch, the loss on a held-out set and SQuAD exact
//! match and F1 (through `qa-metrics`) of greedy answers to a subset of it; the figure that
//! picks the best epoch, and the patience of early stopping.

use qa_data::QaRecord;
use qa_data::settings::Invalid;
use qa_metrics::squad::score_question;
use serde::{Deserialize, Serialize};

use super::data::{
    Encoding, Example, Seq2SeqBatch, TruncationCounts, encode_examples, seq2seq_loss,
};
use crate::error::{Error, Result};
use crate::generation::{GenerationConfig, generate_from_ids};
use crate::model::T5ForConditionalGeneration;
use crate::tokenizer::T5Tokenizer;

/// The validation figure that decides which epoch's adapter is the best.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    /// SQuAD exact match of the greedy answers (higher is better).
    ExactMatch,
    /// SQuAD token F1 of the greedy answers (higher is better).
    #[default]
    F1,
    /// Validation loss (lower is better).
    Loss,
}

impl BestMetric {
    /// Whether `new` is strictly better than `old`: a tie keeps the earlier epoch.
    pub fn improves(self, new: &EvalScores, old: &EvalScores) -> bool {
        match self {
            BestMetric::ExactMatch => new.exact_match > old.exact_match,
            BestMetric::F1 => new.f1 > old.f1,
            BestMetric::Loss => new.loss < old.loss,
        }
    }
}

/// Validation settings (`train.validation` in a config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Validation records answered greedily for exact match and F1 after each epoch: the first
    /// N of the validation set (0: the loss only). The loss always covers the whole set.
    pub generate_examples: usize,
    /// The figure that picks the best epoch.
    pub best_metric: BestMetric,
    /// Epochs in a row without improvement of `best_metric` after which training stops
    /// (0: never stop early).
    pub patience: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            generate_examples: 200,
            best_metric: BestMetric::F1,
            patience: 2,
        }
    }
}

impl ValidationConfig {
    /// Checks that the best metric can be computed.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.generate_examples == 0 && self.best_metric != BestMetric::Loss {
            return Err(Invalid::new(
                "generate_examples",
                format!(
                    "must be at least 1 with best_metric {:?}, which needs generated answers",
                    self.best_metric
                ),
            ));
        }
        Ok(())
    }
}

/// The figures of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalScores {
    /// Mean cross-entropy per target token over the whole validation set.
    pub loss: f64,
    /// Exact match of the greedy answers, in percent.
    pub exact_match: f64,
    /// F1 of the greedy answers, in percent.
    pub f1: f64,
    /// Questions answered for exact match and F1 (0 when only the loss was computed).
    pub generated: usize,
}

/// How the validation questions are answered: greedily, at most `max_target_len` tokens.
pub fn generation_config(max_target_len: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: max_target_len,
        ..GenerationConfig::default()
    }
}

/// A tokenized validation set, with the gold answers of the questions answered each epoch.
#[derive(Debug, Clone)]
pub struct Validation {
    examples: Vec<Example>,
    golds: Vec<Vec<String>>,
    tokenizer: T5Tokenizer,
    generation: GenerationConfig,
}

impl Validation {
    /// Tokenizes `records` as training does (`encoding`); the first
    /// `settings.generate_examples` of them are also answered each epoch, with at most
    /// `encoding.max_target_len` tokens.
    pub fn new(
        tokenizer: &T5Tokenizer,
        records: &[QaRecord],
        encoding: &Encoding<'_>,
        settings: &ValidationConfig,
    ) -> Result<(Self, TruncationCounts)> {
        settings.validate()?;
        if records.is_empty() {
            return Err(Error::Training("the validation set is empty".to_string()));
        }
        let (examples, counts) = encode_examples(tokenizer, records, encoding)?;
        let golds = records
            .iter()
            .take(settings.generate_examples)
            .map(|record| record.answers.clone())
            .collect();
        let validation = Validation {
            examples,
            golds,
            tokenizer: tokenizer.clone(),
            generation: generation_config(encoding.max_target_len),
        };
        Ok((validation, counts))
    }

    /// Validation examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none (never true of a constructed set).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Scores `model`, which should be in inference mode (`Module::valid`: no dropout, no
    /// autodiff graph), in batches of `batch_size`.
    pub fn evaluate(
        &self,
        model: &T5ForConditionalGeneration,
        batch_size: usize,
    ) -> Result<EvalScores> {
        let batch_size = batch_size.max(1);
        let (pad, start) = (
            model.config().pad_token_id,
            model.config().decoder_start_token_id,
        );
        let device = model.device();
        // Examples of similar length together: less padding.
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        order.sort_by_key(|&i| (self.examples[i].source.len(), i));
        let (mut loss_sum, mut tokens) = (0.0, 0usize);
        for indices in order.chunks(batch_size) {
            let chosen: Vec<&Example> = indices.iter().map(|&i| &self.examples[i]).collect();
            let batch = Seq2SeqBatch::new(&chosen, pad, start, &device);
            let batch_tokens: usize = chosen.iter().map(|e| e.target.len()).sum();
            let mean = seq2seq_loss(model, &batch).into_scalar::<f64>();
            loss_sum += mean * batch_tokens as f64;
            tokens += batch_tokens;
        }

        let mut answered: Vec<usize> = (0..self.golds.len()).collect();
        answered.sort_by_key(|&i| (self.examples[i].source.len(), i));
        let (mut exact_match, mut f1) = (0.0, 0.0);
        for indices in answered.chunks(batch_size) {
            let prompts: Vec<Vec<u32>> = indices
                .iter()
                .map(|&i| self.examples[i].source.clone())
                .collect();
            let streams = vec![0; prompts.len()];
            let answers =
                generate_from_ids(model, &self.tokenizer, &prompts, &self.generation, &streams)?;
            for (&i, answer) in indices.iter().zip(&answers) {
                let scores = score_question(answer, &self.golds[i]);
                exact_match += scores.exact_match;
                f1 += scores.f1;
            }
        }
        let percent = |sum: f64| {
            if self.golds.is_empty() {
                0.0
            } else {
                100.0 * sum / self.golds.len() as f64
            }
        };
        Ok(EvalScores {
            loss: loss_sum / tokens.max(1) as f64,
            exact_match: percent(exact_match),
            f1: percent(f1),
            generated: self.golds.len(),
        })
    }
}

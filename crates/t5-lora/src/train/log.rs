//! What a run reports: each optimiser step and evaluation, and `train_log.jsonl`, which
//! holds them.

use std::path::Path;

use qa_data::files::JsonlAppender;
use serde::{Deserialize, Serialize};

use super::validation::EvalScores;
use crate::error::Result;

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

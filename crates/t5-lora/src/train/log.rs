//! What a run reports: each optimiser step and evaluation, and `train_log.jsonl`, which
//! holds them.

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
    /// The log of a run on `device` (its name, as [`crate::device::ResolvedDevice`] gives
    /// it), appended through `appender`: a new file, or one that holds just the lines up to the
    /// step a resumed run continues from ([`TrainLog::logged_step`] tells them).
    pub fn new(appender: JsonlAppender, device: &str) -> Self {
        TrainLog {
            appender,
            device: device.to_string(),
        }
    }

    /// The step a line of the log belongs to (an evaluation's is the step it followed).
    pub fn logged_step(line: &serde_json::Value) -> Option<usize> {
        line["step"].as_u64().map(|step| step as usize)
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

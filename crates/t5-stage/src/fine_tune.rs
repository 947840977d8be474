//! A whole fine-tuning run on files, as `qa-train` does it: records from JSONL, the base model
//! from a directory or the Hugging Face cache, and a run directory that holds everything the
//! run produces and needs to resume.
//!
//! ```text
//! <out_dir>/adapter/          the adapter to use: the best evaluation's with a validation set,
//!                             else the last step's (PEFT files)
//! <out_dir>/best_adapter/     the best evaluation's adapter, kept up to date during the run
//! <out_dir>/checkpoint/       adapter, optimiser state, data position, validation record
//! <out_dir>/settings.json     what the run was started with, which a resume must match
//! <out_dir>/train_log.jsonl   one line per optimiser step and per evaluation
//! ```
//!
//! The settings file and the log are the run's work files in the stages' one resume protocol
//! ([`qa_stage::resume`]): the log is its ledger, cut back on resume to the checkpoint's step.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use qa_data::QaRecord;
use qa_data::files::{read_keyed_jsonl, sha256_file};
use qa_data::settings::Placed;
use qa_data::template::PromptTemplate;
use qa_stage::layout::model_files;
use qa_stage::plan::{PlannedInput, Planning, StagePlan, format_count};
use qa_stage::resume::{Resume, Work, WorkFiles};
use serde::{Deserialize, Serialize};

use t5_lora::{
    Checkpointing, EvalLog, HubOptions, ModelDtype, StepLog, T5Tokenizer, TOKENIZER_FILE,
    TrainConfig, TrainEvent, TrainLog, TrainingBatch, TrainingState, TruncationCounts, Validation,
    checkpoint_state, encode_examples, generation_config, load_pretrained, resolve_model,
    save_adapter, total_steps, train,
};

use crate::error::Result;
use crate::planning::{
    GenerationWork, calibrate_training, estimate_generation, model_shape, resolve_device,
};

/// The adapter a run hands over.
pub const ADAPTER_DIR: &str = model_files::ADAPTER;
/// The best evaluation's adapter.
pub const BEST_ADAPTER_DIR: &str = model_files::BEST_ADAPTER;
/// The checkpoint a run resumes from.
pub const CHECKPOINT_DIR: &str = model_files::CHECKPOINT;
/// The training log.
pub const TRAIN_LOG_FILE: &str = model_files::TRAIN_LOG;
/// What the run was started with.
pub const TRAINING_SETTINGS_FILE: &str = model_files::TRAINING_SETTINGS;

/// The files of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingFiles {
    /// Training records (JSONL).
    pub train: PathBuf,
    /// Validation records (JSONL), scored after every epoch.
    pub validation: Option<PathBuf>,
    /// The run directory.
    pub out_dir: PathBuf,
    /// Continue the run in `out_dir` (whose log must record work) from its checkpoint, or from
    /// the start without one; without it, a checkpoint or a log there is an error rather than
    /// something to overwrite.
    pub resume: bool,
}

/// What a run reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum TrainingProgress<'a> {
    /// Data and model are loaded: `done` of `total` optimiser steps are behind.
    Started {
        /// Steps a resumed run has already taken.
        done: usize,
        /// Steps of the whole run (early stopping may end it sooner).
        total: usize,
        /// What tokenizing the training set cut.
        truncation: TruncationCounts,
    },
    /// An optimiser step, with its speed in target tokens per second.
    Step(&'a StepLog, f64),
    /// An evaluation at the end of an epoch.
    Evaluation(&'a EvalLog),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSummary {
    /// Where it stands (steps, epoch, best evaluation).
    pub state: TrainingState,
    /// Whether early stopping ended it before its last epoch.
    pub stopped_early: bool,
    /// The adapter written.
    pub adapter_dir: PathBuf,
    /// The log.
    pub log: PathBuf,
}

/// What decides a run's adapter, recorded in its settings file: the settings but where it runs
/// ([`TrainConfig`]'s run-place fields), and the SHA-256 of the training and validation files.
#[derive(Serialize, Deserialize)]
struct TrainingRecord {
    settings: TrainConfig,
    train_file_sha256: String,
    validation_file_sha256: Option<String>,
}

impl TrainingRecord {
    fn of(config: &TrainConfig, files: &TrainingFiles) -> Result<Self> {
        Ok(TrainingRecord {
            settings: config.deciding(),
            train_file_sha256: sha256_file(&files.train)?,
            validation_file_sha256: files.validation.as_ref().map(sha256_file).transpose()?,
        })
    }
}

/// The work files ([`qa_stage::resume`]) of a run in `out_dir`: [`TRAINING_SETTINGS_FILE`]
/// and the training log as its ledger.
pub fn training_work(out_dir: &Path) -> WorkFiles {
    WorkFiles {
        settings: out_dir.join(TRAINING_SETTINGS_FILE),
        ledger: out_dir.join(TRAIN_LOG_FILE),
    }
}

/// What a training run on `train` (validated on `validation`) would do (see
/// [`qa_stage::plan`]): its examples and positions, and its time on the device `config` chooses,
/// from a calibration of a step, a validation-loss batch and the validation answers, cached in
/// the plan directory. A batch's prompts are of similar length ([`t5_lora::epoch_batches`]
/// groups them), so they pad to about the sample's mean; its answers are not grouped, so they
/// pad to about the 90th percentile. Every epoch is counted, though early stopping may end the
/// run sooner.
pub fn plan_training(
    config: &TrainConfig,
    train: &PlannedInput,
    validation: Option<&PlannedInput>,
    planning: &Planning,
) -> Result<StagePlan> {
    let shape = model_shape(&config.model)?;
    let (device, finding) = resolve_device(config.device)?;
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let prompts = |input: &PlannedInput| -> Vec<String> {
        input.sample.iter().map(|r| template.render(r)).collect()
    };
    let answers = |input: &PlannedInput| -> Vec<String> {
        input
            .sample
            .iter()
            .map(|r| r.answer().to_string())
            .collect()
    };
    let mut notes: Vec<String> = shape.token_note().into_iter().collect();
    let (source_mean, _, source_note) =
        shape.sample_lengths(&prompts(train), config.max_source_len, "the prompts")?;
    let (target_mean, target_p90, target_note) =
        shape.sample_lengths(&answers(train), config.max_target_len, "the answers")?;
    notes.extend(source_note.into_iter().chain(target_note));
    let batch = TrainingBatch {
        batch_size: config.batch_size,
        source_len: source_mean.ceil() as usize,
        target_len: target_p90,
        lora: config.lora.clone(),
    };
    let cost = calibrate_training(&shape.config, &device, &batch, &planning.calibration_dir())?;
    let examples = train.records;
    let epochs = config.epochs as u64;
    let batch_size = config.batch_size.max(1) as u64;
    let mut epoch_seconds = examples.div_ceil(batch_size) as f64 * cost.step_seconds;
    if let Some(validation) = validation {
        epoch_seconds += validation.records.div_ceil(batch_size) as f64 * cost.loss_seconds;
        let answered = (config.validation.generate_examples as u64).min(validation.records);
        let generation = generation_config(config.max_target_len);
        let work = GenerationWork {
            requests: answered,
            rows_per_prompt: 1,
            prompts: &prompts(validation),
            outputs: &answers(validation),
            batch_size: config.batch_size,
            max_source_len: config.max_source_len,
            generation: &generation,
            // Validation answers with the model being trained, in f32.
            dtype: ModelDtype::F32,
        };
        let answering = estimate_generation(&shape, &device, &work, &planning.calibration_dir())?;
        epoch_seconds += answering.seconds;
        for note in answering.notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    if config.validation.patience > 0 && validation.is_some() {
        notes.push(format!(
            "every epoch counted: early stopping (patience {}) may end the run sooner",
            config.validation.patience
        ));
    }
    let passes = examples * epochs;
    Ok(StagePlan {
        work: format!(
            "{} examples ({} × {} epochs): {} source + {} target positions",
            format_count(passes),
            format_count(examples),
            epochs,
            format_count((passes as f64 * source_mean).round() as u64),
            format_count((passes as f64 * target_mean).round() as u64)
        ),
        seconds: Some(finding + epochs as f64 * epoch_seconds),
        device: Some(device.name.clone()),
        on_cpu: device.is_cpu(),
        notes,
        ..StagePlan::default()
    })
}

/// Starts the run's `work` as `files.resume` asks (a resume must find the log of a run started
/// with the same settings and data, where it runs aside), after refusing to start over a
/// checkpoint, which is work to continue too. Returns the work, its log cut back to the step the
/// run continues from, and that step: the checkpoint's, or 0 without one.
fn start_work(
    config: &TrainConfig,
    files: &TrainingFiles,
    work: &WorkFiles,
    checkpoint_dir: &Path,
) -> Result<(Work<serde_json::Value>, usize)> {
    let checkpoint = checkpoint_state(checkpoint_dir)?;
    if let (Some(state), false) = (&checkpoint, files.resume) {
        return Err(qa_stage::Error::Resume(format!(
            "{} holds a checkpoint at step {} of an earlier run: resume it, or remove it",
            checkpoint_dir.display(),
            state.step
        ))
        .into());
    }
    let resume = match files.resume {
        true => Resume::Required,
        false => Resume::No,
    };
    let mut work = work.open(&TrainingRecord::of(config, files)?, resume)?;
    // The log's lines of later steps, which a resume redoes, go.
    let done = checkpoint.map_or(0, |state| state.step);
    work.keep_only(|line| TrainLog::logged_step(line).is_some_and(|step| step <= done))?;
    Ok((work, done))
}

/// Runs (or resumes) the training that `config` and `files` describe and writes the adapter.
/// A resume must have the settings and data the run was started with (where it runs aside).
pub fn fine_tune(
    config: &TrainConfig,
    files: &TrainingFiles,
    mut on_progress: impl FnMut(TrainingProgress<'_>),
) -> Result<TrainingSummary> {
    let checkpointing = Checkpointing {
        dir: files.out_dir.join(CHECKPOINT_DIR),
        every: config.checkpoint_every,
        best_dir: files.out_dir.join(BEST_ADAPTER_DIR),
    };
    let records: Vec<QaRecord> = read_keyed_jsonl(&files.train)?;
    let validation_records: Option<Vec<QaRecord>> = files
        .validation
        .as_ref()
        .map(read_keyed_jsonl)
        .transpose()?;

    let resolved = config.device.resolve()?;
    tracing::info!(device = %resolved.name, "training");
    let device = resolved.device.autodiff();
    device.seed(config.seed);
    let dir = resolve_model(&config.model, &HubOptions::from_env())?;
    let model = load_pretrained(&dir, &device)?.with_lora(&config.lora)?;
    let tokenizer = T5Tokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
    let (examples, truncation) = encode_examples(&tokenizer, &records, &config.encoding())?;
    let validation = validation_records
        .map(|records| {
            Validation::new(&tokenizer, &records, &config.encoding(), &config.validation)
        })
        .transpose()?
        .map(|(validation, _)| validation);

    // Only now, with data and model loaded, are the work files written: a run that fails before
    // its first step leaves no log that the next one would have to resume.
    let work_files = training_work(&files.out_dir);
    let (work, done) = start_work(config, files, &work_files, &checkpointing.dir)?;
    let log_path = work_files.ledger;
    let mut log = TrainLog::new(work.ledger, &resolved.name);
    on_progress(TrainingProgress::Started {
        done,
        total: total_steps(examples.len(), config),
        truncation,
    });
    let mut last = Instant::now();
    let mut log_failure = None;
    let outcome = train(
        model,
        &examples,
        validation.as_ref(),
        config,
        Some(&checkpointing),
        |event| {
            let written = match event {
                TrainEvent::Step(step) => {
                    let seconds = std::mem::replace(&mut last, Instant::now())
                        .elapsed()
                        .as_secs_f64();
                    on_progress(TrainingProgress::Step(
                        step,
                        step.tokens_per_second(seconds),
                    ));
                    log.append_step(step, seconds)
                }
                TrainEvent::Evaluation(evaluation) => {
                    on_progress(TrainingProgress::Evaluation(evaluation));
                    log.append_evaluation(evaluation)
                }
            };
            match written {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    log_failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
    )?;
    if let Some(e) = log_failure {
        return Err(e.into());
    }
    let adapter_dir = files.out_dir.join(ADAPTER_DIR);
    let chosen = outcome.best_model.as_ref().unwrap_or(&outcome.model);
    save_adapter(chosen, &config.lora, &config.model, &adapter_dir)?;
    Ok(TrainingSummary {
        state: outcome.state,
        stopped_early: outcome.stopped_early,
        adapter_dir,
        log: log_path,
    })
}

#[cfg(test)]
mod tests {
    use qa_stage::config::probe_numeric_settings;
    use t5_lora::TrainConfig;

    /// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the
    /// file (`probe_numeric_settings`): counts take neither 0 nor fractions, rates are above
    /// 0, shares lie within their bounds, and the rest (the seed, `patience`) take what their
    /// type does.
    #[test]
    fn every_numeric_training_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            probe_numeric_settings::<TrainConfig>().expect("probes"),
            "\
batch_size: 0 -1 1.5
checkpoint_every: 0 -1 1.5
epochs: 0 -1 1.5
grad_accumulation: 0 -1 1.5
learning_rate: 0 -1
lora.lora_alpha: 0 -1
lora.lora_dropout: -1 1.5
lora.r: 0 -1 1.5
max_grad_norm: -1
max_source_len: 0 -1 1.5
max_target_len: 0 -1 1.5
seed: -1 1.5
validation.generate_examples: 0 -1 1.5
validation.patience: -1 1.5
warmup_ratio: -1 1.5
weight_decay: -1
"
        );
    }
}

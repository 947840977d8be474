//! `qa-train`: fine-tunes a T5 checkpoint with LoRA adapters on QA records.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use qa_data::QaRecord;
use qa_data::files::read_jsonl;
use serde::Serialize;
use t5_lora::device::DeviceChoice;
use t5_lora::hub::{HubOptions, resolve_model};
use t5_lora::lora::save_adapter;
use t5_lora::tokenizer::TOKENIZER_FILE;
use t5_lora::train::{
    Checkpointing, TrainConfig, TrainLog, checkpoint_state, encode_examples, total_steps, train,
};
use t5_lora::{T5Tokenizer, checkpoint};

/// Train LoRA adapters on question/answer records (target: each record's first answer).
///
/// Writes into --out-dir: adapter/ (a PEFT adapter: adapter_config.json and
/// adapter_model.safetensors), train_log.jsonl (one line per optimiser step), and checkpoint/
/// (adapter, optimiser state and data position, replaced atomically every checkpoint_every
/// steps). After an interruption, the same command with --resume continues exactly where the
/// last checkpoint left off. Settings come from the `train:` section of --config files, then
/// QA_TRAIN__<KEY> variables (QA_TRAIN__LORA__R for nested keys), then the flags.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Training records (JSONL, e.g. human_train.jsonl).
    #[arg(long, value_name = "FILE")]
    train: PathBuf,
    /// Directory for the adapter, the log and the checkpoint.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Continue from the checkpoint in --out-dir.
    #[arg(long)]
    resume: bool,
    /// YAML config file; repeat to layer several (later files win).
    #[arg(long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Flags that override single `train:` keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct Overrides {
    /// Base model: Hugging Face id or checkpoint directory [train.model].
    #[arg(long, value_name = "ID|DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// cpu or wgpu [train.device].
    #[arg(long, value_name = "DEVICE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceChoice>,
    /// Passes over the data [train.epochs, default 3].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    epochs: Option<usize>,
    /// Examples per batch [train.batch_size, default 8].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    /// Peak learning rate [train.learning_rate, default 3e-4].
    #[arg(long, value_name = "LR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    learning_rate: Option<f64>,
    /// Steps between checkpoints [train.checkpoint_every, default 200].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_every: Option<usize>,
    /// Seed of shuffling, adapter initialisation and dropout [train.seed].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    qa_data::cli::run_main("qa-train", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config: TrainConfig = qa_data::config::load_section(
        "train",
        &TrainConfig::default(),
        &args.configs,
        &args.overrides,
    )?;
    let checkpoint_dir = args.out_dir.join("checkpoint");
    let resumed = checkpoint_state(&checkpoint_dir)?;
    match (&resumed, args.resume) {
        (Some(state), false) => bail!(
            "{} holds a checkpoint at step {}: pass --resume to continue it, or remove it",
            checkpoint_dir.display(),
            state.step
        ),
        (None, true) => bail!("--resume: no checkpoint in {}", checkpoint_dir.display()),
        _ => {}
    }
    let records: Vec<QaRecord> = read_jsonl(&args.train)?;
    let device = config.device.device()?.autodiff();
    device.seed(config.seed);
    let dir = resolve_model(&config.model, &HubOptions::from_env())?;
    let model = checkpoint::load_pretrained(&dir, &device)
        .with_context(|| format!("loading {}", config.model))?
        .with_lora(&config.lora)?;
    let tokenizer = T5Tokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
    let (examples, counts) = encode_examples(&tokenizer, &records, &config)?;
    tracing::info!(examples = examples.len(), ?counts, "tokenized");
    if counts.answers_cut_away > 0 {
        tracing::warn!(
            "{} example(s) lost their answer to prompt truncation at {} tokens",
            counts.answers_cut_away,
            config.max_source_len
        );
    }

    let log_path = args.out_dir.join("train_log.jsonl");
    let start = resumed.as_ref().map_or(0, |state| state.step);
    let mut log = TrainLog::open(&log_path, start)?;
    let bar = ProgressBar::new(total_steps(examples.len(), &config) as u64)
        .with_style(ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] step {pos}/{len} {msg} ETA {eta}",
        )?)
        .with_position(start as u64);
    let mut last = Instant::now();
    let mut failure = None;
    let checkpointing = Checkpointing {
        dir: checkpoint_dir,
        every: config.checkpoint_every,
    };
    let outcome = train(model, &examples, &config, Some(&checkpointing), |step| {
        let seconds = last.elapsed().as_secs_f64();
        last = Instant::now();
        let tokens_per_second = step.target_tokens as f64 / seconds.max(1e-9);
        bar.set_position(step.step as u64);
        bar.set_message(format!(
            "loss {:.4}, {tokens_per_second:.0} tokens/s",
            step.loss
        ));
        match log.append(step, tokens_per_second) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e).context("writing the training log");
    }
    let adapter_dir = args.out_dir.join("adapter");
    save_adapter(&outcome.model, &config.lora, &config.model, &adapter_dir)?;
    println!(
        "trained {} steps; adapter in {}, log in {}",
        outcome.state.step,
        adapter_dir.display(),
        log_path.display()
    );
    Ok(())
}

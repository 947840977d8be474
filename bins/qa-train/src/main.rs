//! `qa-train`: fine-tunes a T5 checkpoint with LoRA adapters on QA records.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use qa_stage::cli::StageArgs;
use qa_stage::commands::TrainCommand;
use serde::Serialize;
use t5_lora::DeviceChoice;
use t5_lora::TrainConfig;
use t5_stage::{TrainingFiles, TrainingProgress, fine_tune, plan_training};

/// Train LoRA adapters on question/answer records (target: each record's first answer).
///
/// Writes into --out-dir: adapter/ (a PEFT adapter: adapter_config.json and
/// adapter_model.safetensors; with --validation, the best epoch's), train_log.jsonl (one line
/// per optimiser step and per evaluation), settings.json (the settings and the SHA-256 of the
/// --train and --validation files), checkpoint/ (adapter, optimiser state and data position,
/// replaced atomically every checkpoint_every steps) and, with --validation, best_adapter/.
/// After an interruption, the same command with --resume continues exactly where the last
/// checkpoint left off (from the start without one); a resume with other settings or files is
/// refused, naming what differs (--device may change). Settings come from the `train:` section of --config files, then
/// QA_TRAIN__<KEY> variables (QA_TRAIN__LORA__R for nested keys), then the flags.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    command: TrainCommand,
    #[command(flatten)]
    stage: StageArgs<Overrides>,
}

/// Flags that override single `train:` keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct Overrides {
    /// Base model: Hugging Face id or checkpoint directory [train.model].
    #[arg(long, value_name = "ID|DIR")]
    model: Option<String>,
    /// auto (default), cpu, cuda, wgpu, ndarray or tch [train.device].
    #[arg(long, value_name = "DEVICE")]
    device: Option<DeviceChoice>,
    /// Passes over the data [train.epochs, default 3].
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Examples per batch [train.batch_size, default 8].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Peak learning rate [train.learning_rate, default 3e-4].
    #[arg(long, value_name = "LR")]
    learning_rate: Option<f64>,
    /// Steps between checkpoints [train.checkpoint_every, default 200].
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
}

fn main() -> ExitCode {
    t5_lora::with_malloc_tunables();
    qa_stage::cli::run_main("qa-train", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config: TrainConfig = args.stage.load_with(&args.command)?;
    let command = args.command;
    if let Some(planning) = args.stage.planning()? {
        let train = planning.input(&command.train)?;
        let validation = command
            .validation
            .as_ref()
            .map(|file| planning.input(file))
            .transpose()?;
        return Ok(plan_training(&config, &train, validation.as_ref(), &planning)?.print()?);
    }
    let files = TrainingFiles {
        train: command.train,
        validation: command.validation,
        out_dir: command.out_dir,
        resume: command.resume,
    };
    let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] step {pos}/{len} {msg} ETA {eta}",
    )?);
    let summary = fine_tune(&config, &files, |progress| match progress {
        TrainingProgress::Started {
            done,
            total,
            truncation,
        } => {
            if truncation.answers_cut_away > 0 {
                tracing::warn!(
                    "{} example(s) lost their answer to prompt truncation at {} tokens",
                    truncation.answers_cut_away,
                    config.max_source_len
                );
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        TrainingProgress::Step(step, tokens_per_second) => {
            bar.set_position(step.step as u64);
            bar.set_message(format!(
                "loss {:.4}, {tokens_per_second:.0} tokens/s",
                step.loss
            ));
        }
        TrainingProgress::Evaluation(evaluation) => {
            let best = if evaluation.best {
                " (best so far)"
            } else {
                ""
            };
            let scores = evaluation.scores;
            bar.println(format!(
                "epoch {}: validation loss {:.4}, EM {:.2}, F1 {:.2}{best}",
                evaluation.epoch, scores.loss, scores.exact_match, scores.f1
            ));
        }
    })
    .with_context(|| format!("training in {}", files.out_dir.display()))?;
    bar.finish_and_clear();
    if summary.stopped_early {
        println!(
            "stopped early: no better {:?} for {} epochs",
            config.validation.best_metric, config.validation.patience
        );
    }
    if let Some(best) = &summary.state.best {
        println!(
            "best epoch {} (step {}): EM {:.2}, F1 {:.2}, loss {:.4}",
            best.epoch, best.step, best.scores.exact_match, best.scores.f1, best.scores.loss
        );
    }
    println!(
        "trained {} steps; adapter in {}, log in {}",
        summary.state.step,
        summary.adapter_dir.display(),
        summary.log.display()
    );
    Ok(())
}

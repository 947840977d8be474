//! `qa-prepare`: reads SQuAD JSON and writes the experiment's human splits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qa_squad::download::{Fetched, fetch_squad};
use qa_squad::prepare::{PrepareConfig, plan, prepare};
use qa_stage::cli::StageArgs;
use qa_stage::commands::PrepareCommand;
use serde::Serialize;

/// Sample the human train, validation and test splits from SQuAD.
///
/// Training and validation examples come from the SQuAD train file, test examples (with all their
/// gold answers) from the SQuAD dev file. Sampling is by article, so no context is in two splits,
/// and is fully determined by the seed. Writes human_train.jsonl, human_val.jsonl,
/// human_test.jsonl, rejected.jsonl (questions refused while reading, with reasons) and
/// manifest.json into the output directory, each atomically.
///
/// A SQuAD file that is missing is first downloaded from prepare.train_url / prepare.test_url
/// (the official files by default), checked, and saved where the config names it.
///
/// Settings come from built-in defaults (the full 20,000 / 1,000 / 2,000 experiment), then the
/// `prepare:` section of each --config file, then QA_PREPARE__<KEY> environment variables, then
/// the flags below.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    command: PrepareCommand,
    #[command(flatten)]
    stage: StageArgs<Overrides>,
}

/// Flags that override single config keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct Overrides {
    /// SQuAD train JSON, the source of the training and validation splits [prepare.train_file].
    #[arg(long, value_name = "FILE")]
    train_file: Option<PathBuf>,
    /// SQuAD dev JSON, the source of the test split [prepare.test_file].
    #[arg(long, value_name = "FILE")]
    test_file: Option<PathBuf>,
    /// Number of training examples [prepare.train_size].
    #[arg(long, value_name = "N")]
    train_size: Option<usize>,
    /// Number of validation examples [prepare.val_size].
    #[arg(long, value_name = "N")]
    val_size: Option<usize>,
    /// Number of test examples [prepare.test_size].
    #[arg(long, value_name = "N")]
    test_size: Option<usize>,
    /// Seed of the sampling [prepare.seed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    qa_stage::cli::run_main("qa-prepare", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config: PrepareConfig = args.stage.load_with(&args.command)?;
    if let Some(planning) = args.stage.planning()? {
        return Ok(plan(&config, &planning)?.print()?);
    }
    for (file, url, setting) in [
        (&config.train_file, &config.train_url, "prepare.train_url"),
        (&config.test_file, &config.test_url, "prepare.test_url"),
    ] {
        fetch(file, url.as_deref(), setting)?;
    }
    if args.command.fetch_only {
        return Ok(());
    }
    let report = prepare(&config).context("preparing the human splits")?;
    let [train, val, test] = report.written;
    println!(
        "wrote {train} train, {val} validation, {test} test records to {} \
         ({} rejected, {} unanswerable skipped); manifest: {}",
        config.out_dir.display(),
        report.rejected,
        report.skipped_unanswerable,
        report.manifest.display()
    );
    Ok(())
}

/// Downloads `file` from `url` when it is missing, with a progress bar.
fn fetch(file: &Path, url: Option<&str>, setting: &str) -> anyhow::Result<()> {
    let bar = ProgressBar::hidden();
    let mut on_progress = |done: u64, total: Option<u64>| {
        if bar.is_hidden() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
                )
                .expect("a valid template"),
            );
            bar.set_message(format!("downloading {}", file.display()));
        }
        bar.set_length(total.unwrap_or(done));
        bar.set_position(done);
    };
    if let Fetched::Downloaded(bytes) = fetch_squad(file, url, setting, &mut on_progress)? {
        bar.finish_and_clear();
        println!(
            "downloaded {} ({bytes} bytes) from {}",
            file.display(),
            url.unwrap_or_default()
        );
    }
    Ok(())
}

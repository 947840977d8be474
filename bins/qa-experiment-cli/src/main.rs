//! `qa-experiment`: the whole A/B/C experiment through the stage binaries beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qa_experiment::{Options, run_experiment};

/// Run the A/B/C experiment: prepare, contaminate (B's data), synthesize (C's), train A, B and
/// C, predict (with the zero-shot row), score and report.
///
/// Each stage runs its own binary (qa-prepare, qa-contaminate, qa-synth, qa-train, qa-eval,
/// qa-report) and is skipped when its record in <run_dir>/stages says it is up to date, and
/// continued when it was interrupted. Config paths are relative to the working directory.
/// `cargo xtask run-experiment` builds the binaries and runs this from the repository root.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// YAML config file; repeat to layer several (later files win).
    #[arg(
        long = qa_stage::config::CONFIG_FLAG,
        value_name = "FILE",
        default_value = "configs/experiment.yaml"
    )]
    configs: Vec<PathBuf>,
    /// Run only this stage (prepare, contaminate, synthesize, train, predict, score, report).
    #[arg(long, value_name = "STAGE")]
    only: Option<String>,
    /// Run from this stage on, re-running it and everything after it.
    #[arg(long, value_name = "STAGE")]
    from: Option<String>,
    /// Print what would run and what is up to date, and stop. Each stage that would run gives
    /// its work and estimated wall time on the device it would use (its binary's `--plan`,
    /// from a calibration of a few seconds cached in <run_dir>/plan/), then the total.
    #[arg(long)]
    dry_run: bool,
    /// Directory of the stage binaries [default: the directory of this one].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    qa_stage::cli::run_main("qa-experiment", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("finding this binary's directory (give --bin-dir)")?
            .parent()
            .context("this binary has no directory (give --bin-dir)")?
            .to_path_buf(),
    };
    run_experiment(&Options {
        configs: args.configs,
        only: args.only.as_deref().map(str::parse).transpose()?,
        from: args.from.as_deref().map(str::parse).transpose()?,
        dry_run: args.dry_run,
        bin_dir,
    })?;
    Ok(())
}

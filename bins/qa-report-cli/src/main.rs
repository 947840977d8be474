//! `qa-report`: writes the experiment's report from its run directory.

use qa_stage::cli::StageArgs;
use qa_stage::commands::ReportCommand;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qa_report::{ReportConfig, write_export, write_report};
use serde::Serialize;

/// Write the A/B/C experiment's report.
///
/// Reads results/metrics.json (qa-eval score), the training sets, each model's
/// train_log.jsonl and the synthesis funnel from the run directory, and writes
/// results/metrics_table.csv, results/report.md, results/report.html (one self-contained page)
/// and the plots as SVG and PNG, each atomically. Then it writes export/: the three training
/// sets as Hugging Face datasets and the adapters, each with its card, and the upload commands
/// (export/README.md). Settings come from the `report:` section of each --config file, then
/// QA_REPORT__<KEY> variables, then the flags below.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    command: ReportCommand,
    #[command(flatten)]
    stage: StageArgs<Overrides>,
}

/// Flags that override single `report:` keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct Overrides {
    /// Example records shown from each training set [report.examples, default 3].
    #[arg(long, value_name = "N")]
    examples: Option<usize>,
}

fn main() -> ExitCode {
    qa_stage::cli::run_main("qa-report", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config: ReportConfig = args.stage.load_with(&args.command)?;
    if args.stage.plan.is_some() {
        return Ok(qa_report::plan().print()?);
    }
    let run_dir = &args.command.run_dir;
    let written = write_report(run_dir, &config)
        .with_context(|| format!("writing the report of {}", run_dir.display()))?;
    for sentence in &written.comparisons {
        println!("{sentence}");
    }
    println!("wrote {} files:", written.files.len());
    for file in &written.files {
        println!("  {}", file.display());
    }
    let exported =
        write_export(run_dir, &config, &args.stage.config.configs).with_context(|| {
            format!(
                "exporting the datasets and adapters of {}",
                run_dir.display()
            )
        })?;
    println!(
        "exported {} datasets and {} adapters with their cards ({} files); to publish them, see {}",
        exported.datasets.len(),
        exported.models.len(),
        exported.files.len(),
        exported
            .files
            .last()
            .map_or(String::new(), |f| f.display().to_string())
    );
    Ok(())
}

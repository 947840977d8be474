//! `qa-filter`: runs the quality filters over any JSONL file of QA records.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qa_filters::FilterConfig;
use qa_filters::apply::filter_file;

/// Filter generated question/answer records.
///
/// Writes filtered.jsonl (the kept records), rejected.jsonl (every refused record with the
/// filter, field and reason) and funnel.json (records in, refused per filter in order, records
/// out) into --out-dir, each atomically, and prints the funnel. With --seeds, each record is
/// also compared with the human question it was generated from (provenance.parent_id): not a
/// copy, n-gram overlap, same topic. Thresholds come from the `filters:` section of --config
/// files (a filter set to null is off), then QA_FILTERS__<FILTER>__<KEY> variables.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Records to filter (JSONL).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The human records the input was generated from (JSONL).
    #[arg(long, value_name = "FILE")]
    seeds: Option<PathBuf>,
    /// Directory for the outputs.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    #[command(flatten)]
    config: qa_stage::commands::ConfigArgs,
}

fn main() -> ExitCode {
    qa_stage::cli::run_main("qa-filter", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config: FilterConfig = args.config.load()?;
    let summary = filter_file(&config, &args.input, args.seeds.as_deref(), &args.out_dir)
        .with_context(|| format!("filtering {}", args.input.display()))?;
    print!("{}", summary.funnel.table());
    println!(
        "kept records in {}, rejected ones in {}, funnel in {}",
        summary.kept.display(),
        summary.rejected.display(),
        summary.funnel_file.display()
    );
    Ok(())
}

//! `qa-contaminate`: the contamination stage (model B's data) and the merge of its shards.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qa_synth::contaminate::{ContaminateConfig, ContaminateSummary, contaminate, merge, plan};
use qa_synth_cli::{Command, load_generator, with_progress};

/// Re-answer human records with a generator: same questions and contexts, generated answers.
///
/// Each record of --input is answered by `contaminate.generator` (a local T5, or an
/// OpenAI-compatible endpoint such as GPT-3.5 with `backend: openai`) from the prompt
/// `contaminate.prompt_template`. Writes ledger.jsonl (appended per record; --resume continues
/// after its last line), contaminated.jsonl (source ai_contaminated, with provenance),
/// rejected.jsonl (empty answers) and contamination.json (EM/F1 of the generated answers
/// against the human ones) into --out-dir. Settings: the `contaminate:` section of --config
/// files, then QA_CONTAMINATE__<KEY> variables.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    qa_data::cli::run_main("qa-contaminate", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let summary = match args.command {
        Command::Run(args) => {
            let config: ContaminateConfig = args.section("contaminate")?;
            if let Some((planning, input)) = args.planning()? {
                return Ok(plan(&config, &input, &args.out_dir, &planning)?.print()?);
            }
            let generator = load_generator(&config.generator)?;
            let files = args.files()?;
            with_progress("records", |on_record| {
                contaminate(&config, &files, generator.as_ref(), on_record)
            })?
            .with_context(|| format!("contaminating into {}", files.out_dir.display()))?
        }
        Command::Merge(args) => merge(&args.parts, &args.input, &args.out_dir)
            .with_context(|| format!("merging into {}", args.out_dir.display()))?,
    };
    report(&summary);
    Ok(())
}

fn report(summary: &ContaminateSummary) {
    print!("{}", summary.report.table());
    println!(
        "wrote {} records to {}",
        summary.report.kept,
        summary.output.display()
    );
}

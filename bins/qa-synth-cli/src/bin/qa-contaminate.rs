//! `qa-contaminate`: the contamination stage (model B's data) and the merge of its shards.

use std::process::ExitCode;

use clap::Parser;
use qa_stage::commands::ConfigArgs;
use qa_synth::contaminate::{ContaminateConfig, ContaminateSummary, contaminate, merge, plan};
use qa_synth_cli::{Command, GenerationStage, run_stage};

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
    let stage = GenerationStage {
        unit: "records",
        doing: "contaminating",
        load: ConfigArgs::load::<ContaminateConfig>,
        generator: |config| &config.generator,
        plan,
        run: |config, files, generator, on_record| contaminate(config, files, generator, on_record),
        merge,
        report,
    };
    t5_lora::with_malloc_tunables();
    qa_stage::cli::run_main("qa-contaminate", || run_stage(stage, Args::parse().command))
}

fn report(summary: &ContaminateSummary) {
    print!("{}", summary.report.table());
    println!(
        "wrote {} records to {}",
        summary.report.kept,
        summary.output.display()
    );
}

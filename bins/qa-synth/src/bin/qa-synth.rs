//! `qa-synth`: the synthesis stage (model C's data) and the merge of its shards.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qa_filters::FilterConfig;
use qa_synth::synthesize::{SynthConfig, SynthSummary, merge, plan, synthesize};
use qa_synth_cli::{Command, load_generator, with_progress};

/// Generate synthetic questions from human seed records, keep those that pass the filters.
///
/// For each seed, `synth.candidates` paraphrases are generated (a local T5, or an
/// OpenAI-compatible endpoint with `synth.generator.backend: openai`); the first that passes
/// every filter is kept with the seed's context and answer and its provenance. Writes
/// ledger.jsonl (appended per seed; --resume continues after its last line), synthetic.jsonl,
/// rejected.jsonl (every refused candidate with filter and reason) and funnel.json into
/// --out-dir. Stops with an error, funnel printed, when fewer than synth.min_acceptance of the
/// candidates of the first synth.floor_seeds seeds pass. Settings: the `synth:` and `filters:`
/// sections of --config files, then QA_SYNTH__<KEY> / QA_FILTERS__<KEY> variables.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    qa_data::cli::run_main("qa-synth", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let summary = match args.command {
        Command::Run(args) => {
            let config: SynthConfig = args.section("synth")?;
            if let Some((planning, input)) = args.planning()? {
                return Ok(plan(&config, &input, &args.out_dir, &planning)?.print()?);
            }
            let filters: FilterConfig = args.section("filters")?;
            let generator = load_generator(&config.generator)?;
            let files = args.files()?;
            with_progress("seeds", |on_seed| {
                synthesize(&config, &filters, &files, generator.as_ref(), on_seed)
            })?
            .with_context(|| format!("synthesising into {}", files.out_dir.display()))?
        }
        Command::Merge(args) => merge(&args.parts, &args.input, &args.out_dir)
            .with_context(|| format!("merging into {}", args.out_dir.display()))?,
    };
    report(&summary);
    Ok(())
}

fn report(summary: &SynthSummary) {
    print!("{}", summary.funnel.table());
    if let Some(usage) = &summary.funnel.usage {
        print!("{}", usage.table());
    }
    println!(
        "kept {} records from {} seeds in {}",
        summary.kept,
        summary.seeds,
        summary.output.display()
    );
}

//! `qa-synth`: the synthesis stage (model C's data) and the merge of its shards.

use std::process::ExitCode;

use clap::Parser;
use qa_filters::FilterConfig;
use qa_synth::synthesize::{SynthConfig, SynthSummary, merge, plan, synthesize};
use qa_synth_cli::{Command, GenerationStage, run_stage};

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
    // The synthesis settings, and the filters they apply.
    let stage = GenerationStage {
        unit: "seeds",
        doing: "synthesising",
        load: |config| {
            Ok((
                config.load::<SynthConfig>()?,
                config.load::<FilterConfig>()?,
            ))
        },
        generator: |(config, _)| &config.generator,
        plan: |(config, _), input, out_dir, planning| plan(config, input, out_dir, planning),
        run: |(config, filters), files, generator, on_seed| {
            synthesize(config, filters, files, generator, on_seed)
        },
        merge,
        report,
    };
    t5_lora::with_malloc_tunables();
    qa_stage::cli::run_main("qa-synth", || run_stage(stage, Args::parse().command))
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

//! `qa-synth`: the synthesis stage (model C's data) and the merge of its shards.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use qa_filters::FilterConfig;
use qa_synth::T5Generator;
use qa_synth::synthesize::{RunFiles, Shard, SynthConfig, SynthSummary, merge, synthesize};

/// Generate synthetic questions from human seed records, keep those that pass the filters.
///
/// For each seed, `synth.candidates` paraphrases are sampled; the first that passes every
/// filter is kept with the seed's context and answer and its provenance. Writes ledger.jsonl
/// (appended per seed; --resume continues after its last line), synthetic.jsonl,
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

#[derive(Subcommand)]
enum Command {
    /// Run (or resume) synthesis, or one shard of it.
    Run {
        /// Human seed records (JSONL, e.g. human_train.jsonl).
        #[arg(long, value_name = "FILE")]
        seeds: PathBuf,
        /// Directory for the ledger and outputs.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Continue the run in --out-dir.
        #[arg(long)]
        resume: bool,
        /// Do part i of n (seeds whose index is i modulo n); join the parts with `merge`.
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        /// YAML config file; repeat to layer several (later files win).
        #[arg(long = "config", value_name = "FILE")]
        configs: Vec<PathBuf>,
    },
    /// Join the output directories of sharded runs, checking that no seed is missing.
    Merge {
        /// The seed file the parts were made from.
        #[arg(long, value_name = "FILE")]
        seeds: PathBuf,
        /// The parts' output directories.
        #[arg(long = "part", value_name = "DIR", required = true)]
        parts: Vec<PathBuf>,
        /// Directory for the merged outputs.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    qa_data::cli::run_main("qa-synth", || run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let summary = match args.command {
        Command::Run {
            seeds,
            out_dir,
            resume,
            shard,
            configs,
        } => {
            let config: SynthConfig =
                qa_data::config::load_section("synth", &SynthConfig::default(), &configs, &())?;
            let filters: FilterConfig =
                qa_data::config::load_section("filters", &FilterConfig::default(), &configs, &())?;
            let generator = T5Generator::load(&config.generator)
                .with_context(|| format!("loading {}", config.generator.model))?;
            let files = RunFiles {
                seeds,
                shard: shard.unwrap_or(Shard::WHOLE),
                out_dir,
                resume,
            };
            let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] seed {pos}/{len} {msg} ETA {eta}",
            )?);
            let summary = synthesize(&config, &filters, &files, &generator, |done, all, kept| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
                bar.set_message(format!("{kept} kept"));
            });
            bar.finish_and_clear();
            summary.with_context(|| format!("synthesising into {}", files.out_dir.display()))?
        }
        Command::Merge {
            seeds,
            parts,
            out_dir,
        } => merge(&parts, &seeds, &out_dir)
            .with_context(|| format!("merging into {}", out_dir.display()))?,
    };
    report(&summary);
    Ok(())
}

fn report(summary: &SynthSummary) {
    print!("{}", summary.funnel.table());
    println!(
        "kept {} records from {} seeds in {}",
        summary.kept,
        summary.seeds,
        summary.output.display()
    );
}

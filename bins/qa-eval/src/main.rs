//! `qa-eval`: answers questions with a model, and scores predictions against gold answers.

mod predict;
mod score;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qa_stage::commands::subcommands;
use t5_lora::DeviceChoice;

/// Evaluate question-answering models and predictions.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer every question of a records file with a model (no adapter: the zero-shot row).
    ///
    /// Builds each prompt from the template, generates in batches (prompts of similar length
    /// together) and writes one {"id", "prediction"} line per question, the file `score`
    /// reads. An interrupted run resumes from <out>.partial. Settings come from the
    /// `predict:` section of --config files, then QA_PREDICT__<KEY> variables (nested keys
    /// as QA_PREDICT__GENERATION__NUM_BEAMS), then the flags.
    #[command(name = subcommands::PREDICT)]
    Predict(predict::PredictArgs),
    /// Score one or more systems on the same gold questions.
    ///
    /// Computes SQuAD v1.1 Exact Match and F1 (the official script's semantics) and ROUGE-L, each
    /// with a percentile-bootstrap confidence interval, and for every pair of systems the paired
    /// difference with its interval and two p-values (paired bootstrap, approximate
    /// randomisation). Gold questions without a prediction score 0 and are counted. Systems
    /// named `model@seed` are also aggregated per model (mean ± std over seeds). Writes
    /// metrics.json and per_question.jsonl into --out-dir and prints a table.
    ///
    /// Resampling settings come from the `eval:` section of --config files, then
    /// QA_EVAL__<KEY> variables, then the flags.
    #[command(name = subcommands::SCORE)]
    Score(score::ScoreArgs),
    /// Join the prediction files of a sharded `predict` run, in input order.
    ///
    /// Refuses, naming the part, unless every shard is there once, made from --input with the
    /// same settings, and complete (exactly the questions its shard owns).
    Merge(MergePredictionsArgs),
    /// List the backends this build has, the GPUs they find, and what `--device auto` takes.
    ///
    /// One line per GPU found (`wgpu:0 (llvmpipe …)`); software rasterisers are marked: auto
    /// passes over them, `--device wgpu` uses them.
    Devices,
}

#[derive(clap::Args)]
struct MergePredictionsArgs {
    /// The records file the parts answered.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// A part's predictions file (its .shard.json beside it); repeat for each.
    #[arg(long = "part", value_name = "FILE", required = true)]
    parts: Vec<PathBuf>,
    /// The merged predictions file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

fn merge(args: MergePredictionsArgs) -> anyhow::Result<()> {
    let written = qa_stage::parts::merge_predictions(&args.input, &args.parts, &args.out)?;
    println!("wrote {written} predictions to {}", args.out.display());
    Ok(())
}

fn devices() -> anyhow::Result<()> {
    let compiled: Vec<&str> = DeviceChoice::compiled_in()
        .into_iter()
        .map(DeviceChoice::name)
        .collect();
    println!("compiled in: {}", compiled.join(", "));
    for (found, _) in t5_lora::probe() {
        let note = match found.software {
            true => "  (software rasteriser: only with --device wgpu)",
            false => "",
        };
        println!("{}{note}", found.label());
    }
    println!("auto: {}", DeviceChoice::Auto.resolve()?.name);
    Ok(())
}

fn main() -> ExitCode {
    t5_lora::with_malloc_tunables();
    qa_stage::cli::run_main("qa-eval", || match Args::parse().command {
        Command::Predict(args) => predict::run(args),
        Command::Score(args) => score::run(args),
        Command::Merge(args) => merge(args),
        Command::Devices => devices(),
    })
}

//! `qa-eval score`.

use anyhow::Context;
use qa_metrics::compare::ResamplingConfig;
use qa_stage::cli::StageArgs;
use qa_stage::commands::ScoreCommand;
use serde::Serialize;

#[derive(clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    command: ScoreCommand,
    #[command(flatten)]
    stage: StageArgs<ResamplingOverrides>,
}

/// Flags that override single `eval:` keys; an absent flag overrides nothing.
#[derive(clap::Args, Serialize)]
struct ResamplingOverrides {
    /// Bootstrap resamples [eval.bootstrap_resamples, default 10000].
    #[arg(long, value_name = "N")]
    bootstrap_resamples: Option<usize>,
    /// Approximate-randomisation trials [eval.permutation_trials, default 10000].
    #[arg(long, value_name = "N")]
    permutation_trials: Option<usize>,
    /// Confidence level of the intervals [eval.confidence, default 0.95].
    #[arg(long, value_name = "LEVEL")]
    confidence: Option<f64>,
    /// Seed of the resampling [eval.seed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Significance level of the tests, the Holm adjustment and the detectable effects
    /// [eval.alpha, default 0.05].
    #[arg(long, value_name = "LEVEL")]
    alpha: Option<f64>,
    /// Power at which the minimum detectable effects are stated [eval.power, default 0.8].
    #[arg(long, value_name = "LEVEL")]
    power: Option<f64>,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let config: ResamplingConfig = args.stage.load_with(&args.command)?;
    let command = args.command;
    if let Some(planning) = args.stage.planning()? {
        let gold = planning.input(&command.gold)?;
        let systems = command.predictions.len();
        return Ok(qa_metrics::stage::plan(&gold, systems, &config, &planning)?.print()?);
    }
    let systems: Vec<(String, _)> = command
        .predictions
        .into_iter()
        .map(|system| (system.name, system.file))
        .collect();
    let out_dir = &command.out_dir;
    let report = qa_metrics::stage::score_files(&command.gold, &systems, &config, out_dir)
        .context("scoring")?;
    print!("{}", report.table());
    println!(
        "wrote {} and {}",
        out_dir.join(qa_metrics::stage::METRICS_FILE).display(),
        out_dir.join(qa_metrics::stage::PER_QUESTION_FILE).display()
    );
    Ok(())
}

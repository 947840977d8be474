//! `qa-eval score`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use qa_data::cli::StageArgs;
use qa_data::commands::flags;
use qa_metrics::compare::ResamplingConfig;
use serde::Serialize;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Gold questions: our JSONL (human_test.jsonl) or an original SQuAD JSON file.
    #[arg(long = flags::GOLD, value_name = "FILE")]
    gold: PathBuf,
    /// A system to score, as NAME=FILE (FILE alone uses its file stem as the name). FILE is our
    /// JSONL ({"id", "prediction"} per line) or the official SQuAD .json (id → answer). Repeat
    /// for several systems.
    #[arg(long = flags::PRED, value_name = "NAME=FILE", required = true)]
    predictions: Vec<String>,
    /// Directory for metrics.json and per_question.jsonl.
    #[arg(long = flags::OUT_DIR, value_name = "DIR", default_value = "results")]
    out_dir: PathBuf,
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
    let config: ResamplingConfig = args.stage.load()?;
    if let Some(planning) = args.stage.planning()? {
        let gold = planning.input(&args.gold)?;
        let systems = args.predictions.len();
        return Ok(qa_metrics::evaluate::plan(&gold, systems, &config, &planning)?.print()?);
    }
    let systems = args
        .predictions
        .iter()
        .map(|spec| parse_system(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = qa_metrics::evaluate::score_files(&args.gold, &systems, &config, &args.out_dir)
        .context("scoring")?;
    print!("{}", report.table());
    println!(
        "wrote {} and {}",
        args.out_dir
            .join(qa_metrics::evaluate::METRICS_FILE)
            .display(),
        args.out_dir
            .join(qa_metrics::evaluate::PER_QUESTION_FILE)
            .display()
    );
    Ok(())
}

/// `NAME=FILE`, or `FILE` named after its stem.
fn parse_system(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    if let Some((name, file)) = spec.split_once('=') {
        if name.is_empty() || file.is_empty() {
            bail!("--pred {spec:?}: expected NAME=FILE");
        }
        return Ok((name.to_string(), file.into()));
    }
    let path = PathBuf::from(spec);
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("--pred {spec:?}: cannot name the system after this file"))?
        .to_string();
    Ok((name, path))
}

//! The `qa-eval score` stage on files (feature `stage`): the gold questions and each system's
//! predictions in, `metrics.json` and `per_question.jsonl` out, and its `--plan` estimate.

use std::path::{Path, PathBuf};

use qa_squad::squad::read_gold;
use qa_stage::plan::{PlannedInput, Planning, StagePlan, format_count};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::compare::ResamplingConfig;
use crate::error::Result;
use crate::evaluate::{MetricsReport, ScoredSystem, per_question_rows, report, score_system};
use crate::squad::QuestionScores;

/// Name of the summary file written by [`score_files`].
pub const METRICS_FILE: &str = qa_stage::layout::results_files::METRICS;
/// What scoring `systems` systems on `gold` would do (see [`qa_stage::plan`]): the report's
/// resampling, timed on random per-question scores of the real size at a twentieth and a
/// tenth of the configured resamples and trials and extended linearly to all of them.
pub fn plan(
    gold: &PlannedInput,
    systems: usize,
    config: &ResamplingConfig,
    planning: &Planning,
) -> Result<StagePlan> {
    let questions = gold.records as usize;
    // The report names each system's file with its checksum; any file stands in.
    let stand_in = planning.calibration_dir().join("score-stand-in.jsonl");
    qa_data::files::write_bytes_atomic(&stand_in, b"{}\n")?;
    let mut draws = ChaCha8Rng::seed_from_u64(config.seed);
    let scored: Vec<ScoredSystem> = (0..systems)
        .map(|index| ScoredSystem {
            name: format!("system{index}"),
            path: stand_in.clone(),
            per_question: (0..questions)
                .map(|_| {
                    let f1: f64 = draws.random();
                    QuestionScores {
                        exact_match: f64::from(u8::from(f1 > 0.5)),
                        f1,
                        rouge_l: f1,
                    }
                })
                .collect(),
            missing: 0,
        })
        .collect();
    let timed = |fraction: usize| -> Result<f64> {
        let scaled = ResamplingConfig {
            bootstrap_resamples: config.bootstrap_resamples.div_ceil(fraction),
            permutation_trials: config.permutation_trials.div_ceil(fraction),
            ..*config
        };
        let start = std::time::Instant::now();
        report(&stand_in, &scored, &scaled)?;
        Ok(start.elapsed().as_secs_f64())
    };
    let (twentieth, tenth) = (timed(20)?, timed(10)?);
    let per_tenth = ((tenth - twentieth) * 2.0).max(0.0);
    let seconds = (twentieth - per_tenth / 2.0).max(0.0) + 10.0 * per_tenth;
    Ok(StagePlan {
        work: format!(
            "{systems} systems × {} questions, {} resamples and {} trials per test",
            format_count(gold.records),
            format_count(config.bootstrap_resamples as u64),
            format_count(config.permutation_trials as u64)
        ),
        seconds: Some(seconds),
        ..StagePlan::default()
    })
}

/// Name of the per-question file written by [`score_files`].
pub const PER_QUESTION_FILE: &str = qa_stage::layout::results_files::PER_QUESTION;

/// The whole `qa-eval score` stage: reads the gold file, scores each `(name, predictions)`
/// system, and writes `metrics.json` and `per_question.jsonl` into `out_dir`, atomically.
pub fn score_files(
    gold_path: &Path,
    systems: &[(String, PathBuf)],
    config: &ResamplingConfig,
    out_dir: &Path,
) -> Result<MetricsReport> {
    let gold = read_gold(gold_path)?;
    let scored = systems
        .iter()
        .map(|(name, path)| score_system(name, path, &gold, gold_path))
        .collect::<Result<Vec<_>>>()?;
    let metrics = report(gold_path, &scored, config)?;
    qa_data::files::write_jsonl_atomic(
        out_dir.join(PER_QUESTION_FILE),
        per_question_rows(&gold, &scored),
    )?;
    qa_data::files::write_json_atomic(out_dir.join(METRICS_FILE), &metrics)?;
    Ok(metrics)
}

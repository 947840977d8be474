//! Scoring whole systems: gold and prediction files in, a [`MetricsReport`] out, with
//! confidence intervals per system, paired tests between every two systems, and mean ± standard
//! deviation over training seeds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::sha256_file;
use qa_data::predictions::read_predictions;
use serde::{Deserialize, Serialize};

use crate::compare::{
    Interval, MeanStd, PairedComparison, ResamplingConfig, bootstrap_ci, mean_std, paired_bootstrap,
};
use crate::error::{Error, Result};
use crate::squad::{QuestionScores, score_question};

/// Separates a model name from its training seed in a system name (`model_a@2`).
pub const SEED_SEPARATOR: char = '@';

/// One system's predictions scored question by question, in gold order.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSystem {
    /// The system's name (`model` or `model@seed`).
    pub name: String,
    /// The prediction file.
    pub path: PathBuf,
    /// Scores per gold question, in gold order; a question without prediction scores zero.
    pub per_question: Vec<QuestionScores>,
    /// Gold questions that had no prediction.
    pub missing: usize,
}

/// Scores the predictions in `path` against `gold` (read from `gold_path`).
///
/// Predictions for ids that are not in the gold set are an error (the files do not belong
/// together); gold questions without a prediction score zero and are counted in
/// [`ScoredSystem::missing`], with a warning.
pub fn score_system(
    name: &str,
    path: &Path,
    gold: &[QaRecord],
    gold_path: &Path,
) -> Result<ScoredSystem> {
    let predictions = read_predictions(path)?;
    let gold_ids: HashMap<&str, ()> = gold.iter().map(|r| (r.id.as_str(), ())).collect();
    let unknown: Vec<String> = predictions
        .iter()
        .filter(|p| !gold_ids.contains_key(p.prediction.id.as_str()))
        .map(|p| format!("{}: {}", p.location, p.prediction.id))
        .collect();
    if !unknown.is_empty() {
        let mut examples = unknown
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if unknown.len() > 5 {
            examples.push_str(", …");
        }
        return Err(Error::UnknownIds {
            path: path.to_path_buf(),
            gold: gold_path.to_path_buf(),
            count: unknown.len(),
            examples,
        });
    }
    let by_id: HashMap<&str, &str> = predictions
        .iter()
        .map(|p| (p.prediction.id.as_str(), p.prediction.prediction.as_str()))
        .collect();
    let mut missing = 0;
    let per_question = gold
        .iter()
        .map(|record| match by_id.get(record.id.as_str()) {
            Some(prediction) => score_question(prediction, &record.answers),
            None => {
                missing += 1;
                QuestionScores::MISSING
            }
        })
        .collect();
    if missing > 0 {
        tracing::warn!(
            system = name,
            path = %path.display(),
            missing,
            "gold questions without a prediction score 0"
        );
    }
    Ok(ScoredSystem {
        name: name.to_string(),
        path: path.to_path_buf(),
        per_question,
        missing,
    })
}

/// A file named in the report, with its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// The path as given.
    pub path: String,
    /// SHA-256 of the content.
    pub sha256: String,
}

impl FileRef {
    fn of(path: &Path) -> Result<Self> {
        Ok(FileRef {
            path: path.display().to_string(),
            sha256: sha256_file(path)?,
        })
    }
}

/// The three metrics of one system, in percent, each with its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemMetrics {
    /// The system's name.
    pub name: String,
    /// The model part of the name (before `@`).
    pub model: String,
    /// The seed part of the name (after `@`), if any.
    pub seed: Option<String>,
    /// The prediction file.
    pub predictions: FileRef,
    /// Questions scored (the whole gold set).
    pub questions: usize,
    /// Gold questions without a prediction (scored 0).
    pub missing: usize,
    /// Exact Match, %.
    pub exact_match: Interval,
    /// F1, %.
    pub f1: Interval,
    /// ROUGE-L, %.
    pub rouge_l: Interval,
}

/// The paired comparison of two systems on each metric (differences in percentage points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first system.
    pub a: String,
    /// The second system; differences are `a − b`.
    pub b: String,
    /// Exact Match difference.
    pub exact_match: PairedComparison,
    /// F1 difference.
    pub f1: PairedComparison,
    /// ROUGE-L difference.
    pub rouge_l: PairedComparison,
    /// Holm-adjusted paired-bootstrap p-values, for a comparison in the family (see
    /// [`in_family`]); none for one outside it.
    #[serde(default)]
    pub adjusted: Option<AdjustedP>,
}

/// The Holm–Bonferroni adjusted p-values of one comparison's EM and F1 tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdjustedP {
    /// Exact Match.
    pub exact_match: f64,
    /// F1.
    pub f1: f64,
}

/// Whether the comparison of systems `a` and `b` belongs to the family whose p-values are
/// adjusted together: the pairs trained with the same seed, and each trained system against an
/// unseeded one (the zero-shot row). Comparisons across seeds are computed but not conclusions
/// the report draws, so they stay out; EM and F1 of each pair are both in, ROUGE-L is not.
pub fn in_family(a: &SystemMetrics, b: &SystemMetrics) -> bool {
    a.seed.is_none() || b.seed.is_none() || a.seed == b.seed
}

/// Sets `adjusted` on the comparisons in the family, Holm over all their EM and F1 tests.
fn adjust_family(systems: &[SystemMetrics], comparisons: &mut [Comparison]) {
    let by_name = |name: &str| systems.iter().find(|s| s.name == name);
    let members: Vec<usize> = (0..comparisons.len())
        .filter(|&i| {
            let c = &comparisons[i];
            by_name(&c.a)
                .zip(by_name(&c.b))
                .is_some_and(|(a, b)| in_family(a, b))
        })
        .collect();
    let raw: Vec<f64> = members
        .iter()
        .flat_map(|&i| {
            [
                comparisons[i].exact_match.p_bootstrap,
                comparisons[i].f1.p_bootstrap,
            ]
        })
        .collect();
    let adjusted = crate::compare::holm(&raw);
    for (k, &i) in members.iter().enumerate() {
        comparisons[i].adjusted = Some(AdjustedP {
            exact_match: adjusted[2 * k],
            f1: adjusted[2 * k + 1],
        });
    }
}

/// Mean ± standard deviation across the seeds of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedAggregate {
    /// The model.
    pub model: String,
    /// Exact Match across runs, %.
    pub exact_match: MeanStd,
    /// F1 across runs, %.
    pub f1: MeanStd,
    /// ROUGE-L across runs, %.
    pub rouge_l: MeanStd,
}

/// `metrics.json`: everything `qa-eval score` computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// The gold file.
    pub gold: FileRef,
    /// Number of gold questions.
    pub questions: usize,
    /// Resampling settings used.
    pub resampling: ResamplingConfig,
    /// One entry per system, in the order given.
    pub systems: Vec<SystemMetrics>,
    /// Every pair of systems, in the order given.
    pub comparisons: Vec<Comparison>,
    /// Models with more than one seed.
    pub seed_aggregates: Vec<SeedAggregate>,
}

/// Official totals: `100 * sum / n` in gold order (the script's own arithmetic).
fn percent(values: &[f64]) -> f64 {
    100.0 * values.iter().sum::<f64>() / values.len() as f64
}

/// The mean of per-question scores in 0..=1 as a percentage (the official script's arithmetic),
/// with its bootstrap interval.
pub fn interval_percent(values: &[f64], config: &ResamplingConfig) -> Result<Interval> {
    let ci = bootstrap_ci(values, config)?;
    Ok(Interval {
        value: percent(values),
        low: 100.0 * ci.low,
        high: 100.0 * ci.high,
    })
}

/// The paired comparison of per-question scores in 0..=1, every difference in percentage points.
pub fn comparison_percent(
    a: &[f64],
    b: &[f64],
    config: &ResamplingConfig,
) -> Result<PairedComparison> {
    let mut cmp = paired_bootstrap(a, b, config)?;
    cmp.difference.value = percent(a) - percent(b);
    cmp.difference.low *= 100.0;
    cmp.difference.high *= 100.0;
    cmp.power = cmp.power.scaled(100.0);
    Ok(cmp)
}

/// The per-question values of one metric.
fn column(system: &ScoredSystem, metric: fn(&QuestionScores) -> f64) -> Vec<f64> {
    system.per_question.iter().map(metric).collect()
}

const METRICS: [fn(&QuestionScores) -> f64; 3] = [|s| s.exact_match, |s| s.f1, |s| s.rouge_l];

/// Builds the report for systems scored on the same gold set.
pub fn report(
    gold_path: &Path,
    systems: &[ScoredSystem],
    config: &ResamplingConfig,
) -> Result<MetricsReport> {
    let questions = systems.first().map_or(0, |s| s.per_question.len());
    if questions == 0 {
        return Err(Error::NoQuestions);
    }
    let mut names = HashMap::new();
    for system in systems {
        if names.insert(system.name.as_str(), ()).is_some() {
            return Err(Error::DuplicateSystem(system.name.clone()));
        }
    }

    let mut metrics = Vec::with_capacity(systems.len());
    for system in systems {
        let [em, f1, rouge] = METRICS.map(|metric| column(system, metric));
        let (model, seed) = match system.name.split_once(SEED_SEPARATOR) {
            Some((model, seed)) => (model.to_string(), Some(seed.to_string())),
            None => (system.name.clone(), None),
        };
        metrics.push(SystemMetrics {
            name: system.name.clone(),
            model,
            seed,
            predictions: FileRef::of(&system.path)?,
            questions: system.per_question.len(),
            missing: system.missing,
            exact_match: interval_percent(&em, config)?,
            f1: interval_percent(&f1, config)?,
            rouge_l: interval_percent(&rouge, config)?,
        });
    }

    let mut comparisons = Vec::new();
    for (i, a) in systems.iter().enumerate() {
        for b in &systems[i + 1..] {
            let [em, f1, rouge] = METRICS.map(|metric| (column(a, metric), column(b, metric)));
            comparisons.push(Comparison {
                a: a.name.clone(),
                b: b.name.clone(),
                exact_match: comparison_percent(&em.0, &em.1, config)?,
                f1: comparison_percent(&f1.0, &f1.1, config)?,
                rouge_l: comparison_percent(&rouge.0, &rouge.1, config)?,
                adjusted: None,
            });
        }
    }
    adjust_family(&metrics, &mut comparisons);

    Ok(MetricsReport {
        gold: FileRef::of(gold_path)?,
        questions,
        resampling: *config,
        seed_aggregates: seed_aggregates(&metrics),
        systems: metrics,
        comparisons,
    })
}

/// Mean ± std over the runs of each model that has several, in first-seen order.
fn seed_aggregates(systems: &[SystemMetrics]) -> Vec<SeedAggregate> {
    let mut models: Vec<&str> = Vec::new();
    for s in systems {
        if !models.contains(&s.model.as_str()) {
            models.push(&s.model);
        }
    }
    models
        .into_iter()
        .filter_map(|model| {
            let runs: Vec<&SystemMetrics> = systems.iter().filter(|s| s.model == model).collect();
            let across = |pick: fn(&SystemMetrics) -> f64| {
                mean_std(&runs.iter().map(|s| pick(s)).collect::<Vec<_>>())
            };
            (runs.len() > 1).then(|| SeedAggregate {
                model: model.to_string(),
                exact_match: across(|s| s.exact_match.value).expect("several runs"),
                f1: across(|s| s.f1.value).expect("several runs"),
                rouge_l: across(|s| s.rouge_l.value).expect("several runs"),
            })
        })
        .collect()
}

/// One line of `per_question.jsonl`: a gold question and every system's scores on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRow {
    /// The question id.
    pub id: String,
    /// Scores by system name.
    pub scores: std::collections::BTreeMap<String, QuestionScores>,
}

/// The per-question rows, in gold order.
pub fn per_question_rows<'a>(
    gold: &'a [QaRecord],
    systems: &'a [ScoredSystem],
) -> impl Iterator<Item = QuestionRow> + 'a {
    gold.iter().enumerate().map(move |(i, record)| QuestionRow {
        id: record.id.clone(),
        scores: systems
            .iter()
            .map(|s| (s.name.clone(), s.per_question[i]))
            .collect(),
    })
}

impl MetricsReport {
    /// A plain-text table of the report, for the terminal.
    pub fn table(&self) -> String {
        let level = format!("{:.0}%", self.resampling.confidence * 100.0);
        let width = self
            .systems
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} questions from {}; intervals: {level} percentile bootstrap, {} resamples",
            self.questions, self.gold.path, self.resampling.bootstrap_resamples
        );
        let _ = writeln!(
            out,
            "{:<width$}  {:>22}  {:>22}  {:>22}  {:>7}",
            "system", "EM", "F1", "ROUGE-L", "missing"
        );
        for s in &self.systems {
            let _ = writeln!(
                out,
                "{:<width$}  {:>22}  {:>22}  {:>22}  {:>7}",
                s.name,
                show_interval(&s.exact_match),
                show_interval(&s.f1),
                show_interval(&s.rouge_l),
                s.missing
            );
        }
        if !self.seed_aggregates.is_empty() {
            let _ = writeln!(out, "\nacross seeds (mean ± sample std)");
            for a in &self.seed_aggregates {
                let _ = writeln!(
                    out,
                    "{:<width$}  EM {:.2} ± {:.2}  F1 {:.2} ± {:.2}  ROUGE-L {:.2} ± {:.2}  ({} runs)",
                    a.model,
                    a.exact_match.mean,
                    a.exact_match.std,
                    a.f1.mean,
                    a.f1.std,
                    a.rouge_l.mean,
                    a.rouge_l.std,
                    a.exact_match.runs
                );
            }
        }
        if !self.comparisons.is_empty() {
            let _ = writeln!(
                out,
                "\npaired differences (a − b, points, {level} CI; p: paired bootstrap / approximate randomisation)"
            );
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "{} − {}:  EM {}  F1 {}  ROUGE-L {}",
                    c.a,
                    c.b,
                    show_difference(&c.exact_match),
                    show_difference(&c.f1),
                    show_difference(&c.rouge_l)
                );
                if let Some(adjusted) = &c.adjusted {
                    let _ = writeln!(
                        out,
                        "    Holm-adjusted p: EM {:.4}  F1 {:.4};  detectable at α = {}, power {}: EM ±{:.2}  F1 ±{:.2}",
                        adjusted.exact_match,
                        adjusted.f1,
                        self.resampling.alpha,
                        self.resampling.power,
                        c.exact_match.power.mde,
                        c.f1.power.mde
                    );
                }
            }
        }
        out
    }
}

fn show_interval(i: &Interval) -> String {
    format!("{:.2} [{:.2}, {:.2}]", i.value, i.low, i.high)
}

fn show_difference(c: &PairedComparison) -> String {
    format!(
        "{:+.2} [{:+.2}, {:+.2}] p={:.4}/{:.4}",
        c.difference.value, c.difference.low, c.difference.high, c.p_bootstrap, c.p_permutation
    )
}

//! Reading what the experiment's stages left in the run directory into one [`Gathered`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_data::files::{read_json, read_jsonl, sha256_file};
use qa_data::manifest::Manifest;
use qa_data::predictions::read_predictions;
use qa_data::usage::UsageTotals;
use qa_filters::Funnel;
use qa_metrics::breakdown::QuestionType;
use qa_metrics::evaluate::{MetricsReport, QuestionRow, SystemMetrics};
use qa_metrics::squad::{QuestionScores, score_question};
use qa_stage::layout::{MODELS, Model, RunLayout, Split, ZERO_SHOT, model_files, results_files};
use serde::Deserialize;

use crate::ReportConfig;
use crate::error::{Error, Result};

/// One scored system (a row of the table).
#[derive(Debug, Clone)]
pub struct SystemRow {
    /// Its scores, as `qa-eval score` wrote them.
    pub metrics: SystemMetrics,
    /// The trained model it is (none for the zero-shot row).
    pub model: Option<Model>,
    /// Training examples (none for the zero-shot row).
    pub n_train: Option<usize>,
    /// Its training log, read (none for the zero-shot row).
    pub training: Option<Training>,
    /// Its directory in the run (none for the zero-shot row).
    pub dir: Option<PathBuf>,
}

impl SystemRow {
    /// `A`, `B`, `C` or `zero-shot`, with the seed when there are several.
    pub fn label(&self) -> String {
        let base = match &self.model {
            Some(model) => model.name().to_uppercase(),
            None => "zero-shot".to_string(),
        };
        match &self.metrics.seed {
            Some(seed) => format!("{base} (seed {seed})"),
            None => base,
        }
    }

    /// What it was trained on, in words.
    pub fn training_source(&self) -> &'static str {
        self.model
            .map_or("none (base model)", Model::training_source)
    }
}

/// What a model's `train_log.jsonl` says.
#[derive(Debug, Clone, Default)]
pub struct Training {
    /// `(step, loss)` of every optimiser step.
    pub steps: Vec<(usize, f64)>,
    /// Every evaluation on the validation set.
    pub evaluations: Vec<Evaluation>,
    /// Wall time of the steps, seconds.
    pub seconds: f64,
    /// Target tokens trained on.
    pub target_tokens: usize,
    /// The devices the steps ran on, in the order first seen (a resumed run may have moved).
    pub devices: Vec<String>,
}

impl Training {
    /// Target tokens per second over the whole run.
    pub fn tokens_per_second(&self) -> f64 {
        self.target_tokens as f64 / self.seconds.max(1e-9)
    }

    /// The evaluation whose adapter was kept (the last one marked best).
    pub fn best(&self) -> Option<&Evaluation> {
        self.evaluations.iter().rev().find(|e| e.best)
    }
}

/// One evaluation line of a training log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Evaluation {
    /// Optimiser steps done.
    pub step: usize,
    /// The epoch just finished (0-based).
    pub epoch: usize,
    /// Validation loss.
    pub loss: f64,
    /// Validation exact match, %.
    pub exact_match: f64,
    /// Validation F1, %.
    pub f1: f64,
    /// Whether it was the best so far.
    pub best: bool,
}

/// A line of `train_log.jsonl` as t5-lora writes it (other fields are not needed here).
#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum LogLine {
    Step {
        step: usize,
        loss: f64,
        seconds: f64,
        target_tokens: usize,
        /// Absent in logs written before t5-lora recorded it.
        #[serde(default)]
        device: Option<String>,
    },
    Evaluation(Evaluation),
}

/// How the generated answers of model B's data compare with the human ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Records compared.
    pub records: usize,
    /// Exact match against the human answers, %.
    pub exact_match: f64,
    /// F1 against the human answers, %.
    pub f1: f64,
}

/// One test question with every system's answer to it.
#[derive(Debug, Clone)]
pub struct TestQuestion {
    /// The gold record.
    pub record: QaRecord,
    /// Each system's answer (empty when it gave none) and its scores, in the order of
    /// [`Gathered::rows`].
    pub answers: Vec<(String, QuestionScores)>,
}

/// A training set's first records, for the reader to see what a model learned from.
#[derive(Debug, Clone)]
pub struct Examples {
    /// Which model's data.
    pub model: Model,
    /// Each record, with the human record it came from (B and C).
    pub records: Vec<(QaRecord, Option<QaRecord>)>,
}

/// A generation stage, in words, and what its endpoint used.
pub type StageUsage = (&'static str, UsageTotals);

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// `metrics.json`.
    pub metrics: MetricsReport,
    /// The systems, in the order they were scored.
    pub rows: Vec<SystemRow>,
    /// The synthesis funnel, if synthesis ran here.
    pub funnel: Option<Funnel>,
    /// n-gram overlap of each synthetic question with its seed question.
    pub overlaps: Vec<f64>,
    /// Model B's answers against the human answers.
    pub agreement: Option<Agreement>,
    /// Each record of model B's data that has a human parent: its question's type and its
    /// answer's scores against the human answers.
    pub contaminated: Vec<(QuestionType, QuestionScores)>,
    /// The question type of each record of model C's data.
    pub synthetic_types: Vec<QuestionType>,
    /// The test questions, in gold order, with every system's answers.
    pub questions: Vec<TestQuestion>,
    /// Example records of each training set.
    pub examples: Vec<Examples>,
    /// Every file the figures rest on, with its SHA-256: `(path, sha256)`.
    pub checksums: Vec<(String, String)>,
    /// What each generation stage used of a paid endpoint: `(stage in words, totals)`; empty
    /// when both generated locally.
    pub generation_usage: Vec<StageUsage>,
}

/// The part of `contamination.json` the report reads.
#[derive(Deserialize)]
struct ContaminationUsage {
    #[serde(default)]
    usage: Option<UsageTotals>,
}

fn require(path: PathBuf, hint: &'static str) -> Result<PathBuf> {
    match path.is_file() {
        true => Ok(path),
        false => Err(Error::Missing { path, hint }),
    }
}

fn read_training(path: &Path) -> Result<Training> {
    let mut training = Training::default();
    for line in read_jsonl::<LogLine>(path)? {
        match line {
            LogLine::Step {
                step,
                loss,
                seconds,
                target_tokens,
                device,
            } => {
                training.steps.push((step, loss));
                training.seconds += seconds;
                training.target_tokens += target_tokens;
                if let Some(device) = device.filter(|d| !training.devices.contains(d)) {
                    training.devices.push(device);
                }
            }
            LogLine::Evaluation(evaluation) => training.evaluations.push(evaluation),
        }
    }
    Ok(training)
}

/// Reads the run directory `run`.
pub fn gather(run: &RunLayout, config: &ReportConfig) -> Result<Gathered> {
    let metrics_path = require(
        run.results().join(results_files::METRICS),
        "run the score stage first",
    )?;
    let metrics: MetricsReport = read_json(&metrics_path)?;
    let mut checksums = Checksums::of_sources(run)?;
    let human_train: Vec<QaRecord> = read_jsonl(require(run.human(Split::Train), "run prepare")?)?;
    let data = training_data(run, &mut checksums)?;
    for split in [Split::Val, Split::Test] {
        let path = run.human(split);
        if path.is_file() {
            checksums.note(&path)?;
        }
    }
    checksums.note(&metrics_path)?;
    let per_question = run.results().join(results_files::PER_QUESTION);
    if per_question.is_file() {
        checksums.note(&per_question)?;
    }
    let rows = system_rows(run, &metrics, &metrics_path, &data, &mut checksums)?;
    let (funnel, generation_usage) = generation_records(run)?;
    let parents = Parents::of(&human_train);
    let overlaps = data[&Model::C]
        .iter()
        .filter_map(|r| {
            parents.of_record(r).map(|seed| {
                qa_filters::text::ngram_overlap(&r.question, &seed.question, config.overlap_n)
            })
        })
        .collect();
    let contaminated: Vec<(QuestionType, QuestionScores)> = data[&Model::B]
        .iter()
        .filter_map(|r| {
            let scores = score_question(r.answers.first()?, &parents.of_record(r)?.answers);
            Some((QuestionType::of(&r.question), scores))
        })
        .collect();
    let scores: Vec<QuestionScores> = contaminated.iter().map(|(_, s)| *s).collect();
    let synthetic_types = data[&Model::C]
        .iter()
        .map(|r| QuestionType::of(&r.question))
        .collect();
    Ok(Gathered {
        questions: test_questions(run, &metrics, &metrics_path)?,
        examples: examples(&data, &parents, config.examples),
        metrics,
        rows,
        funnel,
        overlaps,
        agreement: agreement(&scores),
        contaminated,
        synthetic_types,
        checksums: checksums.0,
        generation_usage,
    })
}

/// The files the figures rest on with their SHA-256, in the order the report lists them: the
/// SQuAD files the human splits were drawn from (as prepare recorded them), then each file
/// read.
struct Checksums(Vec<(String, String)>);

impl Checksums {
    fn of_sources(run: &RunLayout) -> Result<Self> {
        let manifest_path = run.processed().join(qa_squad::prepare::MANIFEST_FILE);
        let sources = match manifest_path.is_file() {
            true => Manifest::read(&manifest_path)?.inputs,
            false => Vec::new(),
        };
        Ok(Checksums(
            sources.into_iter().map(|d| (d.path, d.sha256)).collect(),
        ))
    }

    fn note(&mut self, path: &Path) -> Result<()> {
        self.0
            .push((path.display().to_string(), sha256_file(path)?));
        Ok(())
    }
}

/// Each model's training data, checksummed.
fn training_data(
    run: &RunLayout,
    checksums: &mut Checksums,
) -> Result<HashMap<Model, Vec<QaRecord>>> {
    let mut data = HashMap::new();
    for model in MODELS {
        let path = run.training_data(model);
        let records: Vec<QaRecord> = read_jsonl(require(
            path.clone(),
            "run the stage that writes this model's training data",
        )?)?;
        checksums.note(&path)?;
        data.insert(model, records);
    }
    Ok(data)
}

/// Each scored system's row: its scores, and for a trained model its directory, its training
/// log read, and the size of its training data; its predictions, log and adapter checksummed.
fn system_rows(
    run: &RunLayout,
    metrics: &MetricsReport,
    metrics_path: &Path,
    data: &HashMap<Model, Vec<QaRecord>>,
    checksums: &mut Checksums,
) -> Result<Vec<SystemRow>> {
    let several_seeds = metrics.systems.iter().any(|s| s.seed.is_some());
    let mut rows = Vec::new();
    for system in &metrics.systems {
        let model = Model::from_name(&system.model);
        if model.is_none() && system.model != ZERO_SHOT {
            return Err(Error::Inconsistent {
                path: metrics_path.to_path_buf(),
                message: format!(
                    "system {:?} is none of the experiment's (a, b, c, {ZERO_SHOT})",
                    system.name
                ),
            });
        }
        checksums.note(Path::new(&system.predictions.path))?;
        let mut model_dir = None;
        let training = match model {
            Some(model) => {
                let seed = match (several_seeds, &system.seed) {
                    (true, Some(seed)) => {
                        Some(seed.parse::<u64>().map_err(|_| Error::Inconsistent {
                            path: metrics_path.to_path_buf(),
                            message: format!("system {:?}: the seed is not a number", system.name),
                        })?)
                    }
                    _ => None,
                };
                let dir = run.model_dir(model, seed);
                model_dir = Some(dir.clone());
                let log = require(dir.join(model_files::TRAIN_LOG), "run the train stage")?;
                checksums.note(&log)?;
                let adapter = dir
                    .join(model_files::ADAPTER)
                    .join(model_files::ADAPTER_WEIGHTS);
                if adapter.is_file() {
                    checksums.note(&adapter)?;
                }
                Some(read_training(&log)?)
            }
            None => None,
        };
        rows.push(SystemRow {
            metrics: system.clone(),
            n_train: model.map(|m| data[&m].len()),
            model,
            training,
            dir: model_dir,
        });
    }
    Ok(rows)
}

/// The synthesis funnel, and what each generation stage's endpoint used (none for a local
/// model).
fn generation_records(run: &RunLayout) -> Result<(Option<Funnel>, Vec<StageUsage>)> {
    let funnel_path = run.synthesis_funnel();
    let funnel: Option<Funnel> = match funnel_path.is_file() {
        true => Some(read_json(&funnel_path)?),
        false => None,
    };
    let contamination_path = run.contamination_report();
    let contamination_usage = match contamination_path.is_file() {
        true => read_json::<ContaminationUsage>(&contamination_path)?.usage,
        false => None,
    };
    let generation_usage = [
        ("contamination (model B's answers)", contamination_usage),
        (
            "synthesis (model C's questions)",
            funnel.as_ref().and_then(|f| f.usage),
        ),
    ]
    .into_iter()
    .filter_map(|(stage, usage)| Some((stage, usage?)))
    .collect();
    Ok((funnel, generation_usage))
}

/// The human training records by id, to find the record a generated one came from.
struct Parents<'a>(HashMap<&'a str, &'a QaRecord>);

impl<'a> Parents<'a> {
    fn of(human_train: &'a [QaRecord]) -> Self {
        Parents(human_train.iter().map(|r| (r.id.as_str(), r)).collect())
    }

    /// The human record `record` came from: its provenance's parent, or the record of its id.
    fn of_record(&self, record: &QaRecord) -> Option<&'a QaRecord> {
        record
            .provenance
            .as_ref()
            .and_then(|p| self.0.get(p.parent_id.as_str()))
            .or_else(|| self.0.get(record.id.as_str()))
            .copied()
    }
}

/// The first `count` training records of each model, each generated one beside the human
/// record it came from.
fn examples(
    data: &HashMap<Model, Vec<QaRecord>>,
    parents: &Parents<'_>,
    count: usize,
) -> Vec<Examples> {
    MODELS
        .into_iter()
        .map(|model| Examples {
            model,
            records: data[&model]
                .iter()
                .take(count)
                .map(|r| {
                    let seed = (model != Model::A)
                        .then(|| parents.of_record(r).cloned())
                        .flatten();
                    (r.clone(), seed)
                })
                .collect(),
        })
        .collect()
}

/// The scored test questions (`per_question.jsonl`) joined with their gold records and every
/// system's answers.
fn test_questions(
    run: &RunLayout,
    metrics: &MetricsReport,
    metrics_path: &Path,
) -> Result<Vec<TestQuestion>> {
    let per_question_path = require(
        run.results().join(results_files::PER_QUESTION),
        "run the score stage first",
    )?;
    let scored: Vec<QuestionRow> = read_jsonl(&per_question_path)?;
    let gold: Vec<QaRecord> = read_jsonl(require(run.human(Split::Test), "run prepare")?)?;
    let mut gold_by_id: HashMap<String, QaRecord> =
        gold.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut answers_by_system = Vec::new();
    for system in &metrics.systems {
        let answers: HashMap<String, String> = read_predictions(&system.predictions.path)?
            .into_iter()
            .map(|p| (p.prediction.id, p.prediction.prediction))
            .collect();
        answers_by_system.push(answers);
    }
    let inconsistent = |message: String| Error::Inconsistent {
        path: per_question_path.clone(),
        message,
    };
    if scored.len() != metrics.questions {
        return Err(inconsistent(format!(
            "{} questions, but {} says {}",
            scored.len(),
            metrics_path.display(),
            metrics.questions
        )));
    }
    scored
        .into_iter()
        .map(|row| {
            let record = gold_by_id.remove(&row.id).ok_or_else(|| {
                inconsistent(format!(
                    "question {:?} is not in {}",
                    row.id,
                    run.human(Split::Test).display()
                ))
            })?;
            let answers = metrics
                .systems
                .iter()
                .zip(&answers_by_system)
                .map(|(system, answers)| {
                    let scores = row.scores.get(&system.name).copied().ok_or_else(|| {
                        inconsistent(format!(
                            "question {:?} has no scores of {:?}",
                            row.id, system.name
                        ))
                    })?;
                    let answer = answers.get(&row.id).cloned().unwrap_or_default();
                    Ok((answer, scores))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(TestQuestion { record, answers })
        })
        .collect()
}

/// The mean scores of model B's answers against the human answers of the same questions.
fn agreement(scores: &[QuestionScores]) -> Option<Agreement> {
    let n = scores.len();
    let percent =
        |pick: fn(&QuestionScores) -> f64| 100.0 * scores.iter().map(pick).sum::<f64>() / n as f64;
    (n > 0).then(|| Agreement {
        records: n,
        exact_match: percent(|s| s.exact_match),
        f1: percent(|s| s.f1),
    })
}

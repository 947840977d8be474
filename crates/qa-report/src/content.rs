//! What the report says, section by section, as [`Block`]s.

use qa_data::usage::{UsageTotals, format_usd};
use qa_metrics::breakdown::MIN_PRECISE_CELL;
use qa_metrics::compare::Interval;
use qa_stage::layout::Model;
use qa_stage::plan::format_count;

use crate::ReportConfig;
use crate::analysis::{Analysis, Breakdown, SubsetDifference};
use crate::document::Block;
use crate::explorer;
use crate::findings::{Difference, ORIGINAL_STUDY, expected_outcome, p_value, signed};
use crate::gather::{Gathered, SystemRow};
use crate::plots::{Plot, stems};

/// The report's title.
pub const TITLE: &str = "Human vs AI-contaminated vs synthetic training data for extractive QA";

/// `59.4 [57.3, 61.5]`.
pub fn with_interval(i: &Interval) -> String {
    format!("{:.1} [{:.1}, {:.1}]", i.value, i.low, i.high)
}

/// The table's header and one row per system (the table of `metrics_table.csv` too).
pub fn score_table(rows: &[SystemRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "model",
        "training source",
        "n_train",
        "seed",
        "EM",
        "F1",
        "ROUGE-L",
    ]
    .map(String::from)
    .to_vec();
    let body = rows
        .iter()
        .map(|row| {
            let m = &row.metrics;
            vec![
                row.label(),
                row.training_source().to_string(),
                row.n_train.map_or("—".into(), |n| n.to_string()),
                m.seed.clone().unwrap_or_else(|| "—".into()),
                with_interval(&m.exact_match),
                with_interval(&m.f1),
                with_interval(&m.rouge_l),
            ]
        })
        .collect();
    (header, body)
}

fn minutes(seconds: f64) -> String {
    match seconds < 120.0 {
        true => format!("{seconds:.1} s"),
        false => format!("{:.1} min", seconds / 60.0),
    }
}

fn plot(plots: &[Plot], stem: &str) -> Option<Block> {
    plots.iter().position(|p| p.stem == stem).map(Block::Plot)
}

/// A score on `questions` questions: `71.2 [65.0, 77.1]`, or `(71.2)†` for too few to read.
fn group_score(questions: usize, score: Option<&Interval>) -> String {
    match (score, questions >= MIN_PRECISE_CELL) {
        (None, _) => "—".into(),
        (Some(i), true) => with_interval(i),
        (Some(i), false) => format!("({:.1})†", i.value),
    }
}

fn breakdown_table(breakdown: &Breakdown, rows: &[SystemRow]) -> Block {
    let mut header = vec![breakdown.by.to_string(), "questions".into()];
    header.extend(rows.iter().map(|r| format!("{} F1", r.label())));
    Block::Table(
        header,
        breakdown
            .cells
            .iter()
            .map(|cell| {
                let mut line = vec![cell.group.clone(), cell.questions.to_string()];
                line.extend(
                    cell.scores
                        .iter()
                        .map(|s| group_score(cell.questions, s.as_ref())),
                );
                line
            })
            .collect(),
    )
}

fn subset_line(split: &SubsetDifference, systems: &(String, String)) -> String {
    match &split.difference {
        None => format!("{}: no test questions.", split.subset),
        Some(cmp) => {
            let Interval { value, low, high } = cmp.difference;
            format!(
                "{}: {} test questions, {} − {} = {} F1 [{}, {}]{}.",
                split.subset,
                split.questions,
                systems.0,
                systems.1,
                signed(value),
                signed(low),
                signed(high),
                match split.questions < MIN_PRECISE_CELL {
                    true => " (†: too few questions to read)",
                    false => "",
                }
            )
        }
    }
}

/// "What this run could detect": the plain-words sentence for A − B, and every stated
/// difference with its raw and adjusted p-values, minimum detectable effect and power.
fn detection(gathered: &Gathered, differences: &[Difference]) -> Vec<Block> {
    let metrics = &gathered.metrics;
    let resampling = &metrics.resampling;
    let family = metrics
        .comparisons
        .iter()
        .filter(|c| c.adjusted.is_some())
        .count()
        * 2;
    let mut out = vec![Block::Heading(2, "What this run could detect".into())];
    out.push(Block::Paragraph(format!(
        "The verdicts above use the paired-bootstrap p-value adjusted by Holm–Bonferroni over \
         the family of {family} tests that qa-eval score made (EM and F1 of every pair within \
         a seed, and of each model against the zero-shot row), so that the chance of any false \
         \"significant\" among them stays at most {}. The minimum detectable effect (MDE) is \
         the smallest true difference a test of this size finds with {:.0}% power at α = {}, \
         from the standard deviation of the per-question differences (normal approximation; \
         the bootstrap column checks it against the paired bootstrap's standard error).",
        resampling.alpha,
        100.0 * resampling.power,
        resampling.alpha,
    )));
    let sentences: Vec<String> = differences
        .iter()
        .filter(|d| d.models == ("a", "b"))
        .map(|d| d.detectable(metrics.questions, resampling))
        .collect();
    if !sentences.is_empty() {
        out.push(Block::List(sentences));
    }
    out.push(Block::Table(
        [
            "comparison",
            "metric",
            "difference",
            "p",
            "Holm p",
            "MDE ±",
            "MDE ± (bootstrap)",
            "power vs observed",
        ]
        .map(String::from)
        .to_vec(),
        differences
            .iter()
            .map(|d| {
                let c = &d.comparison;
                // No spread (every question scored alike): nothing to size a test by.
                let sized = |figure: String| match c.power.sd_difference == 0.0 {
                    true => "—".to_string(),
                    false => figure,
                };
                vec![
                    format!("{} − {}", d.left, d.right),
                    d.metric.to_string(),
                    format!(
                        "{} [{}, {}]",
                        signed(c.difference.value),
                        signed(c.difference.low),
                        signed(c.difference.high)
                    ),
                    p_value(c.p_bootstrap),
                    p_value(d.p_adjusted),
                    sized(format!("{:.1}", c.power.mde)),
                    sized(format!("{:.1}", c.power.mde_bootstrap)),
                    sized(format!("{:.0}%", 100.0 * c.power.observed_power)),
                ]
            })
            .collect(),
    ));
    out
}

/// F1 by question type, answer length and answer kind.
fn breakdown_blocks(gathered: &Gathered, analysis: &Analysis, plots: &[Plot]) -> Vec<Block> {
    let mut out = vec![
        Block::Heading(2, "Scores by question and answer".into()),
        Block::Paragraph(format!(
            "F1 of each system on groups of the test questions: by the question's wh-word, by \
             the length of its first gold answer in tokens (after SQuAD normalisation), and by \
             whether that answer is a number or a date (a digit, a month or a number word). \
             Each score has its {:.0}% percentile-bootstrap interval; † marks a group of fewer \
             than {} questions, whose interval is too wide for its score to be compared.",
            100.0 * gathered.metrics.resampling.confidence,
            MIN_PRECISE_CELL
        )),
    ];
    for breakdown in &analysis.breakdowns {
        out.push(Block::Heading(3, format!("By {}", breakdown.by)));
        out.push(breakdown_table(breakdown, &gathered.rows));
    }
    out.extend(plot(plots, stems::BREAKDOWN));
    out
}

/// Where B's contamination and C's synthesis land, described.
fn landing_blocks(analysis: &Analysis, overlap_n: usize) -> Vec<Block> {
    let mut out = vec![
        Block::Heading(2, "Where the contamination and the synthesis land".into()),
        Block::Paragraph(
            "These are observations, not causal claims: question types differ in difficulty, \
             in how often a generator gets them wrong and in how well a model learns them, all \
             at once, and nothing here separates those."
                .into(),
        ),
    ];
    if let Some(view) = &analysis.contamination {
        out.push(Block::Paragraph(format!(
            "{:.1}% of model B's training answers differ from every human answer of the same \
             question. By the training question's type:",
            view.average_disagreement
        )));
        out.push(Block::Table(
            [
                "question type",
                "B's records",
                "differ from the human answers",
            ]
            .map(String::from)
            .to_vec(),
            view.by_type
                .iter()
                .map(|(t, n, rate)| vec![t.label().into(), n.to_string(), format!("{rate:.1}%")])
                .collect(),
        ));
        out.push(Block::List(
            view.splits
                .iter()
                .map(|split| subset_line(split, &view.systems))
                .collect(),
        ));
    }
    if let Some(view) = &analysis.synthesis {
        out.push(Block::Paragraph(format!(
            "Model C's kept synthetic questions share on average {} of their {overlap_n}-grams \
             with their seed questions; {} scores {} F1 on the whole test set. On the test \
             questions of the types most and least common among the kept records:",
            view.mean_overlap
                .map_or("—".to_string(), |o| format!("{o:.1}%")),
            view.system,
            with_interval(&view.f1)
        )));
        out.push(Block::Table(
            [
                "question type",
                "share of kept records",
                "test questions",
                &format!("{} F1", view.system),
            ]
            .map(String::from)
            .to_vec(),
            view.extremes
                .iter()
                .map(|(t, share, n, f1)| {
                    vec![
                        t.label().into(),
                        format!("{share:.1}%"),
                        n.to_string(),
                        group_score(*n, Some(f1)),
                    ]
                })
                .collect(),
        ));
    }
    out
}

/// Every block of the report, section by section.
pub fn blocks(
    gathered: &Gathered,
    differences: &[Difference],
    analysis: &Analysis,
    plots: &[Plot],
    config: &ReportConfig,
) -> Vec<Block> {
    let mut out = Vec::new();
    out.extend(introduction(gathered, config));
    out.extend(scores(gathered, plots));
    out.extend(comparisons(gathered, differences));
    out.extend(detection(gathered, differences));
    out.extend(breakdown_blocks(gathered, analysis, plots));
    out.extend(zero_shot(differences));
    out.extend(training_data(gathered, plots));
    out.extend(training_cost(gathered, plots));
    out.extend(example_records(gathered));
    out.extend(landing_blocks(analysis, config.overlap_n));
    out.extend(every_question(gathered));
    out.extend(checksums(gathered));
    out
}

/// The stand-in warning (smoke runs), the title, and what was measured how.
fn introduction(gathered: &Gathered, config: &ReportConfig) -> Vec<Block> {
    let mut out = Vec::new();
    if config.stand_in {
        out.push(Block::Callout(
            "Stand-in run: every model here is a tiny, untrained random T5 (the smoke profile), \
             so these figures test the machinery, not the hypothesis."
                .into(),
        ));
    }
    let metrics = &gathered.metrics;
    let resampling = &metrics.resampling;
    out.push(Block::Heading(1, TITLE.into()));
    out.push(Block::Paragraph(format!(
        "All systems answered the same {} held-out test questions ({}). Scores are SQuAD v1.1 \
         exact match (EM), F1 and ROUGE-L in percent, each with its {:.0}% percentile-bootstrap \
         interval ({} resamples). Differences are paired, per question: their intervals come \
         from the paired bootstrap, their p-values from the paired bootstrap and from \
         approximate randomisation ({} trials).",
        metrics.questions,
        metrics.gold.path,
        100.0 * resampling.confidence,
        resampling.bootstrap_resamples,
        resampling.permutation_trials,
    )));
    out
}

/// Each system's scores, the means over training seeds, and their plot.
fn scores(gathered: &Gathered, plots: &[Plot]) -> Vec<Block> {
    let metrics = &gathered.metrics;
    let mut out = vec![Block::Heading(2, "Scores".into())];
    let (header, rows) = score_table(&gathered.rows);
    out.push(Block::Table(header, rows));
    if !metrics.seed_aggregates.is_empty() {
        out.push(Block::Table(
            ["model", "EM (mean ± std over seeds)", "F1", "ROUGE-L"]
                .map(String::from)
                .to_vec(),
            metrics
                .seed_aggregates
                .iter()
                .map(|a| {
                    let ms =
                        |m: &qa_metrics::compare::MeanStd| format!("{:.1} ± {:.1}", m.mean, m.std);
                    vec![
                        a.model.to_uppercase(),
                        ms(&a.exact_match),
                        ms(&a.f1),
                        ms(&a.rouge_l),
                    ]
                })
                .collect(),
        ));
    }
    out.extend(plot(plots, stems::SCORES));
    out
}

/// The paired comparisons in words, the original study's expected outcome checked, and its
/// reported figures.
fn comparisons(gathered: &Gathered, differences: &[Difference]) -> Vec<Block> {
    let alpha = gathered.metrics.resampling.alpha;
    let mut out = vec![Block::Heading(2, "Comparisons".into())];
    out.push(Block::List(
        differences.iter().map(|d| d.sentence(alpha)).collect(),
    ));
    out.push(Block::Heading(
        2,
        "The original study's expected outcome".into(),
    ));
    let checks = expected_outcome(differences, alpha);
    out.push(Block::List(
        checks
            .iter()
            .map(|(claim, verdict)| format!("{claim}: {verdict}."))
            .collect(),
    ));
    let [(a, a_em, a_f1), (b, b_em, b_f1)] = ORIGINAL_STUDY;
    out.push(Block::Paragraph(format!(
        "For reference, the earlier Python run reported {a} = {a_em:.2} EM / {a_f1:.2} F1 and \
         {b} = {b_em:.2} / {b_f1:.2}; its model C scored 0% EM because broken synthetic data \
         reached training unchecked, which the filters and funnel below exist to prevent."
    )));
    out
}

/// What the untuned base model's row means, and each trained model's F1 gain over it.
fn zero_shot(differences: &[Difference]) -> Vec<Block> {
    let gains: Vec<String> = differences
        .iter()
        .filter(|d| d.models.1 == qa_stage::layout::ZERO_SHOT && d.metric == "F1")
        .map(|d| format!("{} {} F1", d.left, signed(d.comparison.difference.value)))
        .collect();
    vec![
        Block::Heading(2, "The zero-shot row".into()),
        Block::Paragraph(format!(
            "The zero-shot row is the base model with no adapter. FLAN-T5's instruction-tuning \
             mixture already contains SQuAD v1.1 (extractive QA and question generation), so \
             the base model has seen this task, and likely these articles, before any of our \
             training. Only a model's gain over this row can be credited to its fine-tuning \
             data: {}.",
            match gains.is_empty() {
                true => "no trained model was scored".to_string(),
                false => gains.join(", "),
            }
        )),
    ]
}

/// The synthesis funnel, the n-gram overlap plot, and how far model B's answers are from the
/// human ones.
fn training_data(gathered: &Gathered, plots: &[Plot]) -> Vec<Block> {
    let mut out = vec![Block::Heading(2, "Training data".into())];
    if let Some(funnel) = &gathered.funnel {
        out.push(Block::Paragraph(format!(
            "Synthesis (model C's data) kept {} of {} generated candidates ({:.1}%); each \
             filter's refusals, in order:",
            funnel.output,
            funnel.input,
            100.0 * funnel.acceptance_rate()
        )));
        out.push(Block::Pre(funnel.table()));
        out.extend(plot(plots, stems::FUNNEL));
    }
    out.extend(plot(plots, stems::NGRAM_OVERLAP));
    if let Some(agreement) = &gathered.agreement {
        out.push(Block::Paragraph(format!(
            "Model B's answers were generated for the human questions; against the human \
             answers of the same {} questions they score {:.1} EM and {:.1} F1, so {:.1}% of \
             them differ from every human answer.",
            agreement.records,
            agreement.exact_match,
            agreement.f1,
            100.0 - agreement.exact_match
        )));
    }
    out
}

/// Each trained model's steps, device, time, speed and best epoch, the loss curves, and what
/// the generation stages cost.
fn training_cost(gathered: &Gathered, plots: &[Plot]) -> Vec<Block> {
    let mut out = vec![Block::Heading(2, "Training cost".into())];
    out.push(Block::Table(
        [
            "model",
            "optimiser steps",
            "device",
            "wall time",
            "target tokens/s",
            "best epoch",
            "validation EM / F1",
        ]
        .map(String::from)
        .to_vec(),
        gathered
            .rows
            .iter()
            .filter_map(|row| {
                let t = row.training.as_ref()?;
                let best = t.best();
                Some(vec![
                    row.label(),
                    t.steps.len().to_string(),
                    match t.devices.is_empty() {
                        true => "—".into(),
                        false => t.devices.join(", "),
                    },
                    minutes(t.seconds),
                    format!("{:.0}", t.tokens_per_second()),
                    best.map_or("—".into(), |b| (b.epoch + 1).to_string()),
                    best.map_or("—".into(), |b| {
                        format!("{:.1} / {:.1}", b.exact_match, b.f1)
                    }),
                ])
            })
            .collect(),
    ));
    out.extend(plot(plots, stems::LOSS_CURVES));
    out.extend(generation_cost(&gathered.generation_usage));
    out
}

/// A few training records of each model, beside what they were made from.
fn example_records(gathered: &Gathered) -> Vec<Block> {
    let mut out = vec![Block::Heading(2, "Example training records".into())];
    for set in &gathered.examples {
        out.push(Block::Heading(
            3,
            format!(
                "{} ({})",
                set.model.name().to_uppercase(),
                set.model.training_source()
            ),
        ));
        let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match set.model {
            Model::A => (
                vec!["question", "answer"],
                set.records
                    .iter()
                    .map(|(r, _)| vec![r.question.clone(), first_answer(r)])
                    .collect(),
            ),
            Model::B => (
                vec!["question", "generated answer", "human answer"],
                set.records
                    .iter()
                    .map(|(r, seed)| {
                        vec![
                            r.question.clone(),
                            first_answer(r),
                            seed.as_ref().map_or("—".into(), first_answer),
                        ]
                    })
                    .collect(),
            ),
            Model::C => (
                vec!["synthetic question", "seed question", "answer"],
                set.records
                    .iter()
                    .map(|(r, seed)| {
                        vec![
                            r.question.clone(),
                            seed.as_ref().map_or("—".into(), |s| s.question.clone()),
                            first_answer(r),
                        ]
                    })
                    .collect(),
            ),
        };
        out.push(Block::Table(
            header.into_iter().map(String::from).collect(),
            rows,
        ));
    }
    out
}

/// The per-question explorer (HTML) or table (Markdown).
fn every_question(gathered: &Gathered) -> Vec<Block> {
    vec![
        Block::Heading(2, "Every test question".into()),
        Block::PerFormat {
            html: explorer::html(gathered),
            markdown: explorer::markdown(gathered),
        },
    ]
}

/// Every file the figures rest on, with its SHA-256.
fn checksums(gathered: &Gathered) -> Vec<Block> {
    vec![
        Block::Heading(2, "Checksums".into()),
        Block::Paragraph("Every file these figures rest on, with its SHA-256:".into()),
        Block::Table(
            vec!["file".into(), "sha256".into()],
            gathered
                .checksums
                .iter()
                .map(|(path, sha)| vec![path.clone(), sha.clone()])
                .collect(),
        ),
    ]
}

/// The generation stages' endpoint usage and cost, when an endpoint generated.
fn generation_cost(usage: &[(&str, UsageTotals)]) -> Vec<Block> {
    if usage.is_empty() {
        return Vec::new();
    }
    vec![
        Block::Heading(2, "Generation cost".into()),
        Block::Paragraph(
            "Tokens as the endpoint reported them, every completion counted (also those the \
             filters refused), and their cost at openai.price when it was set."
                .into(),
        ),
        Block::Table(
            [
                "stage",
                "completions",
                "retried requests",
                "prompt tokens",
                "completion tokens",
                "cost",
            ]
            .map(String::from)
            .to_vec(),
            usage
                .iter()
                .map(|(stage, u)| {
                    vec![
                        stage.to_string(),
                        format_count(u.completions),
                        format_count(u.retries),
                        format_count(u.prompt_tokens),
                        format_count(u.completion_tokens),
                        u.cost_usd.map_or("— (no price set)".into(), format_usd),
                    ]
                })
                .collect(),
        ),
    ]
}

fn first_answer(record: &qa_data::QaRecord) -> String {
    record.answers.first().cloned().unwrap_or_default()
}

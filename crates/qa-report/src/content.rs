//! What the report says, section by section, as [`Block`]s.

use qa_metrics::compare::Interval;

use crate::ReportConfig;
use crate::document::Block;
use crate::findings::{Difference, expected_outcome, signed};
use crate::gather::{Gathered, SystemRow};
use crate::plots::Plot;

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

/// Every block of the report.
pub fn blocks(
    gathered: &Gathered,
    differences: &[Difference],
    plots: &[Plot],
    config: &ReportConfig,
) -> Vec<Block> {
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

    out.push(Block::Heading(2, "Scores".into()));
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
    if let Some(i) = plots.iter().position(|p| p.stem == "scores") {
        out.push(Block::Plot(i));
    }

    out.push(Block::Heading(2, "Comparisons".into()));
    out.push(Block::List(
        differences
            .iter()
            .map(|d| d.sentence(config.alpha))
            .collect(),
    ));

    out.push(Block::Heading(
        2,
        "The original study's expected outcome".into(),
    ));
    let checks = expected_outcome(differences, config.alpha);
    out.push(Block::List(
        checks
            .iter()
            .map(|(claim, verdict)| format!("{claim}: {verdict}."))
            .collect(),
    ));
    out.push(Block::Paragraph(
        "For reference, the earlier Python run reported A = 59.45 EM / 71.39 F1 and \
         B = 58.80 / 70.57; its model C scored 0% EM because broken synthetic data reached \
         training unchecked, which the filters and funnel below exist to prevent."
            .into(),
    ));

    out.push(Block::Heading(2, "The zero-shot row".into()));
    let gains: Vec<String> = differences
        .iter()
        .filter(|d| d.models.1 == qa_data::layout::ZERO_SHOT && d.metric == "F1")
        .map(|d| format!("{} {} F1", d.left, signed(d.comparison.difference.value)))
        .collect();
    out.push(Block::Paragraph(format!(
        "The zero-shot row is the base model with no adapter. FLAN-T5's instruction-tuning \
         mixture already contains SQuAD v1.1 (extractive QA and question generation), so the \
         base model has seen this task, and likely these articles, before any of our training. \
         Only a model's gain over this row can be credited to its fine-tuning data: {}.",
        match gains.is_empty() {
            true => "no trained model was scored".to_string(),
            false => gains.join(", "),
        }
    )));

    out.push(Block::Heading(2, "Training data".into()));
    if let Some(funnel) = &gathered.funnel {
        out.push(Block::Paragraph(format!(
            "Synthesis (model C's data) kept {} of {} generated candidates ({:.1}%); each \
             filter's refusals, in order:",
            funnel.output,
            funnel.input,
            100.0 * funnel.acceptance_rate()
        )));
        out.push(Block::Pre(funnel.table()));
        if let Some(i) = plots.iter().position(|p| p.stem == "funnel") {
            out.push(Block::Plot(i));
        }
    }
    if let Some(i) = plots.iter().position(|p| p.stem == "ngram_overlap") {
        out.push(Block::Plot(i));
    }
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

    out.push(Block::Heading(2, "Training cost".into()));
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
    if let Some(i) = plots.iter().position(|p| p.stem == "loss_curves") {
        out.push(Block::Plot(i));
    }

    out.push(Block::Heading(2, "Example training records".into()));
    for set in &gathered.examples {
        out.push(Block::Heading(
            3,
            format!(
                "{} ({})",
                set.model.name.to_uppercase(),
                set.model.training_source
            ),
        ));
        let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match set.model.name {
            "a" => (
                vec!["question", "answer"],
                set.records
                    .iter()
                    .map(|(r, _)| vec![r.question.clone(), first_answer(r)])
                    .collect(),
            ),
            "b" => (
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
            _ => (
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

    out.push(Block::Heading(2, "Checksums".into()));
    out.push(Block::Paragraph(
        "Every file these figures rest on, with its SHA-256:".into(),
    ));
    out.push(Block::Table(
        vec!["file".into(), "sha256".into()],
        gathered
            .checksums
            .iter()
            .map(|(path, sha)| vec![path.clone(), sha.clone()])
            .collect(),
    ));
    out
}

fn first_answer(record: &qa_data::QaRecord) -> String {
    record.answers.first().cloned().unwrap_or_default()
}

//! Scoring speed on the real SQuAD dev set: 2,000 predictions, and a 10,000-resample paired
//! bootstrap (plus the 10,000-trial permutation test) on 2,000 questions.
//! Run with `cargo xtask bench metrics`; figures go to docs/performance.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use qa_data::QaRecord;
use qa_metrics::compare::{ResamplingConfig, bootstrap_ci, paired_bootstrap};
use qa_metrics::evaluate::score_system;
use qa_metrics::squad::score_question;
use qa_squad::squad::read_gold;

const QUESTIONS: usize = 2_000;

/// A plausible prediction: the first gold answer with the next few words of context.
fn prediction(record: &QaRecord, i: usize) -> String {
    let answer = record.answer();
    let after = record.context.split(answer).nth(1).unwrap_or("");
    let extra: Vec<&str> = after.split_whitespace().take(i % 4).collect();
    format!("{answer} {}", extra.join(" "))
}

fn benches(c: &mut Criterion) {
    let dev = qa_squad::squad::offline_squad_file("dev-v1.1.json").expect("the SQuAD dev set");
    let gold: Vec<QaRecord> = read_gold(&dev)
        .expect("the SQuAD dev set")
        .into_iter()
        .take(QUESTIONS)
        .collect();
    let predictions: Vec<String> = gold
        .iter()
        .enumerate()
        .map(|(i, r)| prediction(r, i))
        .collect();

    c.bench_function("score 2,000 predictions (in memory)", |b| {
        b.iter(|| {
            gold.iter()
                .zip(&predictions)
                .map(|(r, p)| score_question(black_box(p), &r.answers).f1)
                .sum::<f64>()
        })
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let pred_path = dir.path().join("predictions.jsonl");
    qa_data::files::write_jsonl_atomic(
        &pred_path,
        gold.iter()
            .zip(&predictions)
            .map(|(r, p)| qa_data::predictions::Prediction {
                id: r.id.clone(),
                prediction: p.clone(),
            }),
    )
    .expect("write predictions");
    c.bench_function(
        "score 2,000 predictions against the dev JSON (files read)",
        |b| {
            b.iter(|| {
                let all_gold = read_gold(&dev).expect("gold");
                score_system("bench", &pred_path, &all_gold, &dev).expect("score")
            })
        },
    );

    let a: Vec<f64> = gold
        .iter()
        .zip(&predictions)
        .map(|(r, p)| score_question(p, &r.answers).f1)
        .collect();
    let b_scores: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 7 == 0 { 0.0 } else { *v })
        .collect();
    let config = ResamplingConfig::default();
    let mut group = c.benchmark_group("resampling, 2,000 questions");
    group.sample_size(10);
    group.bench_function("bootstrap CI, 10,000 resamples", |b| {
        b.iter(|| bootstrap_ci(black_box(&a), &config).expect("ci"))
    });
    group.bench_function("paired bootstrap 10,000 + permutation 10,000", |b| {
        b.iter(|| paired_bootstrap(black_box(&a), &b_scores, &config).expect("paired"))
    });
    group.finish();
}

criterion_group!(metrics, benches);
criterion_main!(metrics);

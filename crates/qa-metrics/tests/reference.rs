//! qa-metrics against reference scores computed by Python with the official SQuAD v1.1
//! semantics (`xtask/golden/squad_metrics_reference.py` wrote the fixture), and `evaluate` on
//! small files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qa_data::QaRecord;
use qa_metrics::compare::ResamplingConfig;
use qa_metrics::evaluate::{report, score_system};
use qa_metrics::squad::{normalize_answer, score_question};
use qa_squad::squad::read_gold;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dev_file() -> PathBuf {
    qa_squad::squad::offline_squad_file("dev-v1.1.json").expect("the SQuAD dev set")
}

fn reference() -> Vec<Value> {
    std::fs::read_to_string(repo().join("fixtures/metrics/squad_reference.jsonl"))
        .expect("fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().expect("string")
}

fn number(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

#[test]
fn edge_cases_match_the_official_script() {
    let cases = reference();
    let edges: Vec<&Value> = cases.iter().filter(|c| c["kind"] == "edge").collect();
    assert!(edges.len() >= 20);
    for case in edges {
        let prediction = text(&case["prediction"]);
        let golds: Vec<&str> = case["golds"]
            .as_array()
            .expect("golds")
            .iter()
            .map(text)
            .collect();
        assert_eq!(
            normalize_answer(prediction),
            text(&case["normalized"]),
            "{prediction:?}"
        );
        let scores = score_question(prediction, &golds);
        assert_eq!(
            scores.exact_match,
            number(&case["exact_match"]),
            "{prediction:?}"
        );
        assert_eq!(scores.f1, number(&case["f1"]), "{prediction:?}");
    }
}

#[test]
fn dev_set_predictions_match_the_official_script_to_the_last_decimal() {
    let cases = reference();
    let dev: HashMap<String, QaRecord> = read_gold(dev_file())
        .expect("dev set reads")
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let dev_cases: Vec<&Value> = cases.iter().filter(|c| c["kind"] == "dev").collect();
    assert_eq!(dev_cases.len(), 1500);

    // The gold subset in the reference's order, and the predictions in the official format.
    let dir = tempfile::tempdir().expect("temp dir");
    let gold: Vec<QaRecord> = dev_cases
        .iter()
        .map(|c| dev[text(&c["id"])].clone())
        .collect();
    let gold_path = dir.path().join("gold.jsonl");
    qa_data::files::write_jsonl_atomic(&gold_path, &gold).expect("write gold");
    let pred_path = dir.path().join("predictions.json");
    let official: serde_json::Map<String, Value> = dev_cases
        .iter()
        .map(|c| (text(&c["id"]).to_string(), c["prediction"].clone()))
        .collect();
    std::fs::write(&pred_path, serde_json::to_string(&official).expect("json")).expect("write");

    let system = score_system("reference", &pred_path, &gold, &gold_path).expect("scores");
    assert_eq!(system.missing, 0);
    for (case, scores) in dev_cases.iter().zip(&system.per_question) {
        assert_eq!(scores.exact_match, number(&case["exact_match"]), "{case}");
        assert_eq!(scores.f1, number(&case["f1"]), "{case}");
    }
    let config = ResamplingConfig {
        bootstrap_resamples: 200,
        permutation_trials: 200,
        ..ResamplingConfig::default()
    };
    let metrics = report(&gold_path, &[system], &config).expect("report");
    let totals = cases.last().expect("totals line");
    assert_eq!(totals["kind"], "totals");
    assert_eq!(
        metrics.systems[0].exact_match.value,
        number(&totals["exact_match"])
    );
    assert_eq!(metrics.systems[0].f1.value, number(&totals["f1"]));
}

fn record(id: &str, answers: &[&str]) -> QaRecord {
    QaRecord {
        id: id.into(),
        question: format!("question {id}?"),
        context: answers.join(" "),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        source: qa_data::Source::Human,
        provenance: None,
    }
}

fn write_gold(dir: &Path, gold: &[QaRecord]) -> PathBuf {
    let path = dir.join("gold.jsonl");
    qa_data::files::write_jsonl_atomic(&path, gold).expect("write gold");
    path
}

#[test]
fn missing_predictions_count_as_zero_and_unknown_ids_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gold = vec![
        record("q1", &["Ann"]),
        record("q2", &["Bob", "Robert"]),
        record("q3", &["Cy"]),
    ];
    let gold_path = write_gold(dir.path(), &gold);

    let partial = dir.path().join("partial.jsonl");
    std::fs::write(
        &partial,
        "{\"id\":\"q2\",\"prediction\":\"Robert\"}\n{\"id\":\"q1\",\"prediction\":\"Ann\"}\n",
    )
    .expect("write");
    let system = score_system("partial", &partial, &gold, &gold_path).expect("scores");
    assert_eq!(system.missing, 1);
    let em: Vec<f64> = system.per_question.iter().map(|s| s.exact_match).collect();
    assert_eq!(em, [1.0, 1.0, 0.0]);

    let stray = dir.path().join("stray.jsonl");
    std::fs::write(
        &stray,
        "{\"id\":\"q1\",\"prediction\":\"Ann\"}\n{\"id\":\"q9\",\"prediction\":\"x\"}\n",
    )
    .expect("write");
    let err = score_system("stray", &stray, &gold, &gold_path).expect_err("unknown id");
    let message = err.to_string();
    assert!(
        message.contains("stray.jsonl") && message.contains("line 2: q9"),
        "{message}"
    );
}

#[test]
fn report_compares_every_pair_and_aggregates_seeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gold: Vec<QaRecord> = (0..300)
        .map(|i| record(&format!("q{i}"), &[&format!("answer {i}")]))
        .collect();
    let gold_path = write_gold(dir.path(), &gold);
    // Model "good" is right on 80% (two seeds with different errors), "weak" on 40%.
    let write = |name: &str, right: &dyn Fn(usize) -> bool| {
        let path = dir.path().join(format!("{name}.jsonl"));
        let lines: Vec<String> = (0..300)
            .map(|i| {
                let answer = if right(i) {
                    format!("answer {i}")
                } else {
                    "wrong".into()
                };
                serde_json::json!({"id": format!("q{i}"), "prediction": answer}).to_string()
            })
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    let systems = [
        ("good@1", write("good1", &|i| i % 5 != 0)),
        ("good@2", write("good2", &|i| i % 5 != 1)),
        ("weak", write("weak", &|i| i % 5 < 2)),
    ];
    let scored: Vec<_> = systems
        .iter()
        .map(|(name, path)| score_system(name, path, &gold, &gold_path).expect("scores"))
        .collect();
    let config = ResamplingConfig {
        bootstrap_resamples: 1_000,
        permutation_trials: 1_000,
        ..ResamplingConfig::default()
    };
    let metrics = report(&gold_path, &scored, &config).expect("report");
    assert_eq!(metrics.systems[0].exact_match.value, 80.0);
    assert_eq!(metrics.systems[0].model, "good");
    assert_eq!(metrics.systems[0].seed.as_deref(), Some("1"));
    assert_eq!(metrics.comparisons.len(), 3);
    let good_vs_weak = &metrics.comparisons[1];
    assert_eq!(
        (good_vs_weak.a.as_str(), good_vs_weak.b.as_str()),
        ("good@1", "weak")
    );
    assert!((good_vs_weak.exact_match.difference.value - 40.0).abs() < 1e-9);
    assert!(good_vs_weak.exact_match.p_bootstrap < 0.01);
    assert!(good_vs_weak.exact_match.p_permutation < 0.01);
    assert_eq!(metrics.seed_aggregates.len(), 1);
    assert_eq!(metrics.seed_aggregates[0].exact_match.mean, 80.0);
    assert_eq!(metrics.seed_aggregates[0].exact_match.runs, 2);
    let table = metrics.table();
    assert!(
        table.contains("80.00") && table.contains("good@1 − weak"),
        "{table}"
    );

    let duplicate = [scored[0].clone(), scored[0].clone()];
    assert!(matches!(
        report(&gold_path, &duplicate, &config),
        Err(qa_metrics::Error::DuplicateSystem(_))
    ));
}

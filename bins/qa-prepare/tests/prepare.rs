//! End-to-end tests of `qa-prepare` on the real SQuAD files beside the checkout
//! (`../shared/data/squad/`, or the directory named by `SQUAD_DIR`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn squad_file(name: &str) -> PathBuf {
    qa_squad::squad::offline_squad_file(name).expect("the real SQuAD files")
}

fn run_prepare(out: &Path, train_size: &str, seed: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qa-prepare"))
        .arg("--train-file")
        .arg(squad_file("train-v1.1-first44.json"))
        .arg("--test-file")
        .arg(squad_file("dev-v1.1.json"))
        .arg("--out-dir")
        .arg(out)
        .args([
            "--train-size",
            train_size,
            "--seed",
            seed,
            "--val-size",
            "1000",
            "--test-size",
            "2000",
        ])
        .output()
        .expect("qa-prepare runs")
}

fn read_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("output exists")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

const SPLITS: [&str; 3] = ["human_train.jsonl", "human_val.jsonl", "human_test.jsonl"];

#[test]
fn real_squad_splits_are_exact_disjoint_grounded_and_deterministic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, again, other_seed) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (out, seed) in [(&first, "42"), (&again, "42"), (&other_seed, "7")] {
        let output = run_prepare(out, "10000", seed);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let mut contexts_seen: Vec<HashSet<String>> = Vec::new();
    for (name, expected) in SPLITS.iter().zip([10_000, 1_000, 2_000]) {
        let records = read_records(&first.join(name));
        assert_eq!(records.len(), expected, "{name}");
        let mut contexts = HashSet::new();
        for record in &records {
            let context = record["context"].as_str().expect("context");
            let answers = record["answers"].as_array().expect("answers");
            assert!(!answers.is_empty());
            for answer in answers {
                let answer = answer.as_str().expect("answer text");
                assert!(
                    context.contains(answer),
                    "{name}: {answer:?} not in its context"
                );
            }
            contexts.insert(context.to_string());
        }
        for earlier in &contexts_seen {
            assert!(
                earlier.is_disjoint(&contexts),
                "{name} shares a context with another split"
            );
        }
        contexts_seen.push(contexts);

        let bytes = std::fs::read(first.join(name)).expect("read");
        assert_eq!(
            bytes,
            std::fs::read(again.join(name)).expect("read"),
            "{name} not reproducible"
        );
        assert_ne!(
            bytes,
            std::fs::read(other_seed.join(name)).expect("read"),
            "{name} ignores the seed"
        );
    }
    // The test split keeps every gold answer of the dev set (1 to 6 per question).
    let test = read_records(&first.join("human_test.jsonl"));
    assert!(
        test.iter()
            .any(|r| r["answers"].as_array().is_some_and(|a| a.len() >= 3))
    );

    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(first.join("manifest.json")).expect("manifest"),
    )
    .expect("manifest is JSON");
    assert_eq!(manifest["seed"], 42);
    assert_eq!(manifest["counts"]["train"], 10_000);
    assert_eq!(
        manifest["inputs"][1]["sha256"],
        "7b8355a3ba460c36c48c87d7d3d69a86743b511f88be06ba28d000a9d0c3f343"
    );
    // The manifest names its output directory in the config; everything else is identical.
    let manifest_text = |dir: &Path| {
        std::fs::read_to_string(dir.join("manifest.json"))
            .expect("manifest")
            .replace(&dir.display().to_string(), "<out>")
    };
    assert_eq!(manifest_text(&first), manifest_text(&again));
}

#[test]
fn more_training_examples_than_the_input_holds_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let output = run_prepare(&out, "20000", "42");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("11877")
            && stderr.contains("train-v1.1-first44.json")
            && stderr.contains("21000"),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "nothing is written when the split cannot be made"
    );
}

#[test]
fn unknown_config_key_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("typo.yaml");
    std::fs::write(&config, "prepare:\n  train_sise: 10\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_qa-prepare"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("qa-prepare runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("train_sise") && stderr.contains("typo.yaml"),
        "{stderr}"
    );
}

#[test]
fn a_plan_splits_in_memory_samples_each_split_and_writes_no_split() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let plan_dir = dir.path().join("plan");
    let output = Command::new(env!("CARGO_BIN_EXE_qa-prepare"))
        .arg("--train-file")
        .arg(squad_file("train-v1.1-first44.json"))
        .arg("--test-file")
        .arg(squad_file("dev-v1.1.json"))
        .arg("--out-dir")
        .arg(&out)
        .args([
            "--train-size",
            "5000",
            "--val-size",
            "100",
            "--test-size",
            "2000",
        ])
        .arg("--plan")
        .arg(&plan_dir)
        .output()
        .expect("qa-prepare runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let plan: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON plan");
    assert!(
        plan["work"]
            .as_str()
            .expect("work")
            .starts_with("5,000 / 100 / 2,000 questions from "),
        "{plan}"
    );
    assert!(plan["seconds"].as_f64().expect("measured") > 0.0);
    for (split, count) in SPLITS.iter().zip([5000, 100, 2000]) {
        let planned = &plan["outputs"][out.join(split).to_str().expect("utf-8")];
        assert_eq!(planned["records"], count, "{plan}");
        let sample = read_records(Path::new(planned["sample"].as_str().expect("a sample")));
        assert_eq!(sample.len(), 64);
    }
    assert!(!out.exists(), "a plan wrote the splits");
}

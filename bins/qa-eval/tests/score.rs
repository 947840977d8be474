//! `qa-eval score` end to end on the real SQuAD dev set.

use std::path::PathBuf;
use std::process::Command;

fn dev_file() -> PathBuf {
    qa_squad::squad::offline_squad_file("dev-v1.1.json").expect("the SQuAD dev set")
}

#[test]
fn scores_two_systems_against_the_squad_dev_json() {
    let dev = dev_file();
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dev).expect("read")).expect("JSON");
    // System "first" answers every dev question with its first gold answer (EM 100);
    // system "half" answers only every other question (official format, EM 50-ish).
    let mut first = String::new();
    let mut half = serde_json::Map::new();
    let mut count = 0usize;
    for article in data["data"].as_array().expect("data") {
        for paragraph in article["paragraphs"].as_array().expect("paragraphs") {
            for qa in paragraph["qas"].as_array().expect("qas") {
                let answer = &qa["answers"][0]["text"];
                first.push_str(
                    &serde_json::json!({"id": qa["id"], "prediction": answer}).to_string(),
                );
                first.push('\n');
                if count.is_multiple_of(2) {
                    half.insert(qa["id"].as_str().expect("id").to_string(), answer.clone());
                }
                count += 1;
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let first_path = dir.path().join("first.jsonl");
    let half_path = dir.path().join("half.json");
    std::fs::write(&first_path, first).expect("write");
    std::fs::write(&half_path, serde_json::Value::Object(half).to_string()).expect("write");
    let out = dir.path().join("results");

    let output = Command::new(env!("CARGO_BIN_EXE_qa-eval"))
        .args(["score", "--gold"])
        .arg(&dev)
        .arg("--pred")
        .arg(&first_path)
        .arg("--pred")
        .arg(format!("half={}", half_path.display()))
        .arg("--out-dir")
        .arg(&out)
        .args([
            "--bootstrap-resamples",
            "1000",
            "--permutation-trials",
            "1000",
        ])
        .output()
        .expect("qa-eval runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("first − half"), "{stdout}");
    assert!(
        stderr.contains("missing=5285"),
        "the unanswered half is reported: {stderr}"
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).expect("metrics"))
            .expect("JSON");
    assert_eq!(metrics["questions"], 10_570);
    assert_eq!(metrics["systems"][0]["exact_match"]["value"], 100.0);
    assert_eq!(metrics["systems"][1]["missing"], 5_285);
    assert_eq!(metrics["systems"][1]["exact_match"]["value"], 50.0);
    let cmp = &metrics["comparisons"][0];
    assert_eq!(cmp["exact_match"]["difference"]["value"], 50.0);
    assert!(cmp["f1"]["p_permutation"].as_f64().expect("p") < 0.01);
    let rows = std::fs::read_to_string(out.join("per_question.jsonl")).expect("per question");
    assert_eq!(rows.lines().count(), 10_570);
}

#[test]
fn a_prediction_for_an_unknown_question_fails_naming_file_line_and_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stray.jsonl");
    std::fs::write(&path, "{\"id\":\"not-a-squad-id\",\"prediction\":\"x\"}\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_qa-eval"))
        .args(["score", "--gold"])
        .arg(dev_file())
        .arg("--pred")
        .arg(&path)
        .arg("--out-dir")
        .arg(dir.path().join("results"))
        .output()
        .expect("qa-eval runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stray.jsonl") && stderr.contains("line 1: not-a-squad-id"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("results").exists(),
        "nothing is written on error"
    );
}

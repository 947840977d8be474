//! `qa-filter` end to end: a generated file with the failure modes of the earlier Python run.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

const CONTEXT: &str = "The Denver Broncos beat the Carolina Panthers 24 to 10 in Super Bowl 50.";

fn write_lines(path: &Path, values: &[Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).expect("writes");
}

fn generated(id: &str, question: &str, answer: &str, context: &str, parent: &str) -> Value {
    json!({
        "id": id, "question": question, "context": context, "answers": [answer],
        "source": "synthetic_from_human",
        "provenance": {"parent_id": parent, "generator": "test", "prompt_template": "{question}"},
    })
}

fn qa_filter(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qa-filter"))
        .args([
            "--input",
            dir.join("generated.jsonl").to_str().expect("utf-8"),
        ])
        .args(["--out-dir", dir.join("out").to_str().expect("utf-8")])
        .args(extra)
        .output()
        .expect("qa-filter runs")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("reads")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

#[test]
fn broken_generations_are_refused_with_reasons_and_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let seed_question = "Which team beat the Carolina Panthers in Super Bowl 50?";
    write_lines(
        &dir.join("seeds.jsonl"),
        &[
            json!({"id": "s1", "question": seed_question, "context": CONTEXT,
                  "answers": ["Denver Broncos"], "source": "human"}),
        ],
    );
    let good = "In Super Bowl 50, which team was it that beat the Carolina Panthers?";
    write_lines(
        &dir.join("generated.jsonl"),
        &[
            generated("g1", good, "Denver Broncos", CONTEXT, "s1"),
            generated("g2", good, "Denver Broncos", "", "s1"),
            generated("g3", good, good, CONTEXT, "s1"),
            generated("g4", seed_question, "Denver Broncos", CONTEXT, "s1"),
            generated(
                "g5",
                "Paraphrase: in Super Bowl 50 who beat the Panthers?",
                "Denver Broncos",
                CONTEXT,
                "s1",
            ),
        ],
    );
    let seeds = dir.join("seeds.jsonl");
    let output = qa_filter(dir, &["--seeds", seeds.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("(20.0% kept)"), "{stdout}");

    let out = dir.join("out");
    let kept = lines(&out.join("filtered.jsonl"));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], "g1");
    let rejected = lines(&out.join("rejected.jsonl"));
    let by: Vec<(&str, &str, &str)> = rejected
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                r["rejected_by"].as_str().expect("filter"),
                r["location"].as_str().expect("location"),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("g2", "non_empty_context", "line 2"),
            ("g3", "answer_in_context", "line 3"),
            ("g4", "not_a_copy", "line 4"),
            ("g5", "prompt_leak", "line 5"),
        ]
    );
    assert!(
        rejected
            .iter()
            .all(|r| !r["reason"].as_str().expect("reason").is_empty())
    );
    let funnel: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("funnel.json")).expect("funnel"))
            .expect("JSON");
    assert_eq!(
        (funnel["input"].as_u64(), funnel["output"].as_u64()),
        (Some(5), Some(1))
    );
}

#[test]
fn a_record_whose_seed_is_missing_is_an_error_naming_its_line_and_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_lines(
        &dir.join("seeds.jsonl"),
        &[json!({"id": "s1", "question": "Who won?",
        "context": CONTEXT, "answers": ["Denver Broncos"], "source": "human"})],
    );
    let question = "In Super Bowl 50, which team was it that beat the Carolina Panthers?";
    write_lines(
        &dir.join("generated.jsonl"),
        &[
            generated("g1", question, "Denver Broncos", CONTEXT, "s1"),
            generated("g2", question, "Denver Broncos", CONTEXT, "s9"),
        ],
    );
    let seeds = dir.join("seeds.jsonl");
    let output = qa_filter(dir, &["--seeds", seeds.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2")
            && stderr.contains("provenance.parent_id")
            && stderr.contains("s9"),
        "{stderr}"
    );
    assert!(!dir.join("out").join("filtered.jsonl").exists());
}

#[test]
fn the_shipped_configs_parse_and_a_switched_off_filter_stays_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Six tokens: too short for the default question length, kept when that filter is off.
    let short = "Who beat Carolina in Super Bowl?";
    write_lines(
        &dir.join("generated.jsonl"),
        &[generated("g1", short, "Denver Broncos", CONTEXT, "s1")],
    );
    for config in ["offline-squad.yaml", "experiment.yaml"] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(config);
        let output = qa_filter(dir, &["--config", config.to_str().expect("utf-8")]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(lines(&dir.join("out/filtered.jsonl")).is_empty());
    }
    std::fs::write(dir.join("off.yaml"), "filters:\n  question_length: null\n").expect("writes");
    let output = qa_filter(
        dir,
        &["--config", dir.join("off.yaml").to_str().expect("utf-8")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lines(&dir.join("out/filtered.jsonl")).len(), 1);
}

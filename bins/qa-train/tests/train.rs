//! `qa-train` end to end on the tiny FLAN-T5 fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5")
}

/// The tiny FLAN-T5 fixture (a checkpoint directory as Hugging Face lays it out) and ten
/// records written into `dir`.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let model = fixtures().join("flan-t5-tiny");
    let records = dir.join("train.jsonl");
    let lines: String = (0..10)
        .map(|i| {
            serde_json::json!({
                "id": format!("q{i}"), "question": format!("Which number is {i}?"),
                "context": format!("The number is {i}."), "answers": [i.to_string()],
                "source": "human",
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&records, lines).expect("records");
    (model, records)
}

fn qa_train(model: &Path, records: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qa-train"))
        .args(["--model", model.to_str().expect("utf-8")])
        .args(["--train", records.to_str().expect("utf-8")])
        .args(["--out-dir", out.to_str().expect("utf-8")])
        .args([
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--checkpoint-every",
            "2",
        ])
        .args(extra)
        .output()
        .expect("qa-train runs")
}

#[test]
fn trains_writes_a_peft_adapter_and_a_log_and_refuses_to_clobber_a_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, records) = setup(tmp.path());
    let out = tmp.path().join("run");
    let output = qa_train(&model, &records, &out, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let log: Vec<serde_json::Value> = std::fs::read_to_string(out.join("train_log.jsonl"))
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    // 10 examples in batches of 4: 3 steps per epoch.
    let steps: Vec<u64> = log
        .iter()
        .map(|l| l["step"].as_u64().expect("step"))
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    assert!(
        log.iter()
            .all(|l| l["loss"].as_f64().is_some_and(f64::is_finite))
    );
    assert!(out.join("checkpoint/state.json").is_file());

    let again = qa_train(&model, &records, &out, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    // Resuming a finished run has nothing left to do and keeps the log.
    let resumed = qa_train(&model, &records, &out, &["--resume"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let lines = std::fs::read_to_string(out.join("train_log.jsonl")).expect("log");
    assert_eq!(lines.lines().count(), 6);
}

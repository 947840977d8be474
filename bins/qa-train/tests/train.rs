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
    let validation = ["--validation", records.to_str().expect("utf-8")];
    let output = qa_train(&model, &records, &out, &validation);
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
    let steps_of = |event: &str| -> Vec<u64> {
        log.iter()
            .filter(|l| l["event"] == event)
            .map(|l| l["step"].as_u64().expect("step"))
            .collect()
    };
    // 10 examples in batches of 4: 3 steps per epoch, each epoch validated.
    assert_eq!(steps_of("step"), [1, 2, 3, 4, 5, 6]);
    assert_eq!(steps_of("evaluation"), [3, 6]);
    assert!(log.iter().all(|l| {
        ["loss", "f1", "exact_match"].iter().all(|key| {
            l.get(key)
                .is_none_or(|v| v.as_f64().is_some_and(f64::is_finite))
        })
    }));
    assert!(out.join("checkpoint/state.json").is_file());
    // The adapter handed over is the best epoch's.
    let weights = |dir: &str| std::fs::read(out.join(dir).join("adapter_model.safetensors"));
    assert_eq!(
        weights("adapter").expect("adapter"),
        weights("best_adapter").expect("best adapter")
    );

    let again = qa_train(&model, &records, &out, &validation);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("holds a checkpoint at step 6"), "{stderr}");
    // Resuming a finished run has nothing left to do and keeps the log.
    let resumed = qa_train(
        &model,
        &records,
        &out,
        &[&validation[..], &["--resume"]].concat(),
    );
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let lines = std::fs::read_to_string(out.join("train_log.jsonl")).expect("log");
    assert_eq!(lines.lines().count(), 8);
}

#[test]
fn a_resume_with_other_settings_or_data_is_refused_and_names_what_differs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, records) = setup(tmp.path());
    let out = tmp.path().join("run");
    let started = qa_train(&model, &records, &out, &[]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let refused = |extra: &[&str], train: &Path| {
        let output = qa_train(&model, train, &out, &[&["--resume"], extra].concat());
        assert!(!output.status.success(), "{extra:?} was resumed");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(&["--learning-rate", "0.01"], &records);
    assert!(
        stderr.contains("other settings or data") && stderr.contains("settings.learning_rate"),
        "{stderr}"
    );
    // The same records with one changed: the file's digest tells.
    let edited = tmp.path().join("edited.jsonl");
    let text = std::fs::read_to_string(&records).expect("records");
    std::fs::write(
        &edited,
        text.replace("Which number is 3?", "Which number is three?"),
    )
    .expect("edited");
    let stderr = refused(&[], &edited);
    assert!(stderr.contains("train_file_sha256"), "{stderr}");
    // A validation file the run did not have.
    let validation = ["--validation", records.to_str().expect("utf-8")];
    let stderr = refused(&validation, &records);
    assert!(stderr.contains("validation_file_sha256"), "{stderr}");
    // Where it runs may change: the same settings on the CPU named another way resume.
    let resumed = qa_train(&model, &records, &out, &["--resume", "--device", "cpu"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
}

#[test]
fn the_shipped_configs_parse_and_flags_win_over_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, records) = setup(tmp.path());
    for config in ["offline-squad.yaml", "experiment.yaml"] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(config);
        let out = tmp.path().join(config.file_stem().expect("a name"));
        let flags = [
            "--config",
            config.to_str().expect("utf-8"),
            "--validation",
            records.to_str().expect("utf-8"),
        ];
        let output = qa_train(&model, &records, &out, &flags);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // --epochs 2 and --batch-size 4 won over the configs' 3 and 8.
        let state = std::fs::read_to_string(out.join("checkpoint/state.json")).expect("state");
        let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
        assert_eq!(state["step"], 6);
    }
}

#[test]
fn a_plan_counts_examples_and_positions_from_a_planned_training_set_and_trains_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (model, records) = setup(tmp.path());
    let out = tmp.path().join("run");
    // The training set is not written yet: an earlier stage plans 20,000 records like these.
    let planned = tmp.path().join("later/train.jsonl");
    let plan_dir = tmp.path().join("plan");
    std::fs::create_dir_all(&plan_dir).expect("plan dir");
    let entry = serde_json::json!({
        planned.to_str().expect("utf-8"): {"records": 20000, "sample": records},
    });
    std::fs::write(plan_dir.join("planned.json"), entry.to_string()).expect("planned");
    let output = qa_train(
        &model,
        &planned,
        &out,
        &[
            "--validation",
            records.to_str().expect("utf-8"),
            "--plan",
            plan_dir.to_str().expect("utf-8"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let plan: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON plan");
    let work = plan["work"].as_str().expect("work");
    assert!(
        work.starts_with("40,000 examples (20,000 × 2 epochs): "),
        "{plan}"
    );
    assert!(
        work.contains(" source + ") && work.ends_with(" target positions"),
        "{plan}"
    );
    assert!(plan["seconds"].as_f64().expect("a time") > 0.0, "{plan}");
    assert!(
        plan["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|note| note.as_str().is_some_and(|n| n.contains("early stopping"))),
        "{plan}"
    );
    assert!(!out.exists(), "a plan wrote {}", out.display());
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn runs_with_glibcs_malloc_settings_for_tensor_work_unless_given_others() {
    let tunables_in = |given: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_qa-train"));
        command.arg("--help").env("RUST_LOG", "qa_stage=debug");
        match given {
            Some(tunables) => command.env("GLIBC_TUNABLES", tunables),
            None => command.env_remove("GLIBC_TUNABLES"),
        };
        let output = command.output().expect("qa-train runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // The stage restarts itself with the settings, and says which it runs with.
    let expected = Some(std::ffi::OsString::from(t5_lora::MALLOC_TUNABLES));
    let stderr = tunables_in(None);
    assert!(
        stderr.contains(&format!("GLIBC_TUNABLES: {expected:?}")),
        "{stderr}"
    );
    // A user's own settings stand.
    let stderr = tunables_in(Some("glibc.malloc.check=0"));
    assert!(
        stderr.contains(r#"GLIBC_TUNABLES: Some("glibc.malloc.check=0")"#),
        "{stderr}"
    );
}

//! `qa-eval predict` end to end on the tiny FLAN-T5 fixture: batching, resuming, the Hugging
//! Face cache, and the hand-over to `qa-eval score`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use t5_lora::GenerationConfig;
use t5_stage::{PredictConfig, prediction_work, resume_settings};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5")
}

/// The tiny FLAN-T5 fixture: a checkpoint directory as Hugging Face lays it out.
fn model_dir() -> PathBuf {
    fixtures().join("flan-t5-tiny")
}

const QUESTIONS: [(&str, &str); 7] = [
    (
        "Who won Super Bowl 50?",
        "The Denver Broncos won Super Bowl 50.",
    ),
    ("Where was it played?", "It was played at Levi's Stadium."),
    ("When?", "On February 7, 2016."),
    (
        "Which team lost the game that was played in Santa Clara?",
        "The Carolina Panthers lost to the Denver Broncos in Santa Clara, California.",
    ),
    (
        "What colour was used?",
        "Gold was used throughout the season.",
    ),
    (
        "Who performed at halftime?",
        "Coldplay headlined the halftime show.",
    ),
    (
        "How many viewers?",
        "About 111.9 million viewers watched it.",
    ),
];

fn write_records(path: &Path) {
    let lines: String = QUESTIONS
        .iter()
        .enumerate()
        .map(|(i, (question, context))| {
            let answer = context.split(' ').next().expect("a word");
            serde_json::json!({
                "id": format!("q{i}"), "question": question, "context": context,
                "answers": [answer], "source": "human",
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, lines).expect("write records");
}

/// A temporary directory with the records (`records.jsonl`), and the checkpoint to use.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = model_dir();
    let records = tmp.path().join("records.jsonl");
    write_records(&records);
    (tmp, model, records)
}

fn qa_eval(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qa-eval"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("qa-eval runs")
}

fn predict(model: &str, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        "--model",
        model,
        "--input",
        input.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--max-new-tokens",
        "8",
    ];
    args.extend_from_slice(extra);
    qa_eval(&args, &[])
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn predictions_do_not_depend_on_batch_size_and_score() {
    let (tmp, model, records) = setup();
    let model = model.to_str().expect("utf-8");

    let by_two = tmp.path().join("by_two.jsonl");
    assert_success(&predict(model, &records, &by_two, &["--batch-size", "2"]));
    let all_at_once = tmp.path().join("all.jsonl");
    // The shipped configs parse, and flags win over them.
    for config in ["offline-squad.yaml", "experiment.yaml"] {
        let config = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(config);
        let flags = [
            "--batch-size",
            "7",
            "--config",
            config.to_str().expect("utf-8"),
        ];
        assert_success(&predict(model, &records, &all_at_once, &flags));
    }
    let predictions = lines(&by_two);
    let ids: Vec<&str> = predictions
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        ["q0", "q1", "q2", "q3", "q4", "q5", "q6"],
        "input order"
    );
    assert!(predictions.iter().all(|p| p["prediction"].is_string()));
    assert_eq!(predictions, lines(&all_at_once));
    assert!(!tmp.path().join("by_two.jsonl.partial").exists());

    let scored = qa_eval(
        &[
            "score",
            "--gold",
            records.to_str().expect("utf-8"),
            "--pred",
            &format!("zero_shot={}", by_two.display()),
            "--out-dir",
            tmp.path().join("results").to_str().expect("utf-8"),
            "--bootstrap-resamples",
            "100",
            "--permutation-trials",
            "100",
        ],
        &[],
    );
    assert_success(&scored);
    assert!(String::from_utf8_lossy(&scored.stdout).contains("zero_shot"));
}

#[test]
fn an_interrupted_run_resumes_from_its_partial_file() {
    let (tmp, model, records) = setup();
    let out = tmp.path().join("predictions.jsonl");
    // What a killed run leaves: its settings, two answers and a torn third line.
    let started = PredictConfig {
        model: model.to_str().expect("utf-8").to_string(),
        generation: GenerationConfig {
            max_new_tokens: 8,
            ..GenerationConfig::default()
        },
        ..PredictConfig::default()
    };
    let settings = prediction_work(&out).settings;
    std::fs::write(
        &settings,
        serde_json::to_string(&resume_settings(&started)).expect("JSON"),
    )
    .expect("settings");
    std::fs::write(
        tmp.path().join("predictions.jsonl.partial"),
        "{\"id\":\"q4\",\"prediction\":\"kept\"}\n{\"id\":\"q1\",\"prediction\":\"kept too\"}\n{\"id\":\"q2\",\"pre",
    )
    .expect("partial");
    let output = predict(model.to_str().expect("utf-8"), &records, &out, &[]);
    assert_success(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("5 generated now, 2 from an interrupted run"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let predictions = lines(&out);
    assert_eq!(predictions.len(), 7);
    assert_eq!(predictions[4]["prediction"], "kept");
    assert_eq!(predictions[1]["prediction"], "kept too");
    assert!(!tmp.path().join("predictions.jsonl.partial").exists());
    assert!(!settings.exists());

    // A partial file from other settings is refused, not mixed in.
    std::fs::write(tmp.path().join("predictions.jsonl.partial"), "").expect("partial");
    std::fs::write(
        &settings,
        serde_json::to_string(&resume_settings(&started)).expect("JSON"),
    )
    .expect("settings");
    let other = predict(
        model.to_str().expect("utf-8"),
        &records,
        &out,
        &["--num-beams", "2"],
    );
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("other settings"));
}

#[test]
fn a_kill_while_cleaning_up_leaves_nothing_that_blocks_the_next_run() {
    let (tmp, model, records) = setup();
    let model = model.to_str().expect("utf-8");
    let out = tmp.path().join("predictions.jsonl");
    assert_success(&predict(model, &records, &out, &[]));
    // A finished run removes its partial file, then its settings: a kill between the two
    // leaves the settings of a run whose output is complete.
    let settings = prediction_work(&out).settings;
    let finished = PredictConfig {
        model: model.to_string(),
        ..PredictConfig::default()
    };
    std::fs::write(
        &settings,
        serde_json::to_string(&resume_settings(&finished)).expect("JSON"),
    )
    .expect("settings");
    let other = predict(model, &records, &out, &["--num-beams", "2"]);
    assert_success(&other);
    assert!(!settings.exists());
    assert!(!tmp.path().join("predictions.jsonl.partial").exists());
}

#[test]
fn model_ids_are_found_in_the_hugging_face_cache_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let commit = "abcdef0123456789abcdef0123456789abcdef01";
    let repo = tmp.path().join("hf/hub/models--tiny--flan-t5");
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).expect("mkdir");
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(model_dir().join(file), snapshot.join(file)).expect("copy");
    }
    std::fs::create_dir_all(repo.join("refs")).expect("refs");
    std::fs::write(repo.join("refs/main"), commit).expect("ref");
    let records = tmp.path().join("records.jsonl");
    write_records(&records);
    let out = tmp.path().join("predictions.jsonl");
    let args = [
        "predict",
        "--model",
        "tiny/flan-t5",
        "--input",
        records.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let hf_home = tmp.path().join("hf");
    let offline = Path::new("1");
    let output = qa_eval(&args, &[("HF_HOME", &hf_home), ("HF_HUB_OFFLINE", offline)]);
    assert_success(&output);
    assert_eq!(lines(&out).len(), 7);

    let args = ["predict", "--model", "tiny/not-there", "--input"]
        .into_iter()
        .chain([records.to_str().expect("utf-8"), "--out", "x.jsonl"])
        .collect::<Vec<_>>();
    let output = qa_eval(&args, &[("HF_HOME", &hf_home), ("HF_HUB_OFFLINE", offline)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tiny/not-there") && stderr.contains("HF_HUB_OFFLINE"),
        "{stderr}"
    );
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let (tmp, model, records) = setup();
    let out = tmp.path().join("predictions.jsonl");
    let model = model.to_str().expect("utf-8");
    for (flags, expected) in [
        (&["--prompt-template", "answer: {answer}"][..], "{answer}"),
        (
            &["--num-beams", "2", "--do-sample", "true"][..],
            "beam sampling",
        ),
        (&["--device", "tpu"][..], "tpu"),
    ] {
        let output = predict(model, &records, &out, flags);
        assert!(!output.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn an_adapter_changes_the_answers() {
    let (tmp, model, records) = setup();
    let model = model.to_str().expect("utf-8");
    let plain = tmp.path().join("plain.jsonl");
    assert_success(&predict(model, &records, &plain, &[]));
    let adapted = tmp.path().join("adapted.jsonl");
    let adapter = fixtures().join("flan-t5-tiny-lora");
    let flags = ["--adapter", adapter.to_str().expect("utf-8")];
    assert_success(&predict(model, &records, &adapted, &flags));
    assert_eq!(lines(&adapted).len(), 7);
    assert_ne!(lines(&adapted), lines(&plain));
}

#[test]
fn shards_merged_equal_one_run_even_when_sampling() {
    let (tmp, model, _) = setup();
    let model = model.to_str().expect("utf-8");
    // 150 records, so that every one of 3 shards has some.
    let records = fixtures().join("../records/season.jsonl");
    let sampling = ["--do-sample", "true", "--seed", "5"];
    let whole = tmp.path().join("whole.jsonl");
    assert_success(&predict(model, &records, &whole, &sampling));

    let parts: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("part-{i}.jsonl")))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let shard = format!("{i}/3");
        let mut flags = sampling.to_vec();
        flags.extend(["--shard", &shard]);
        assert_success(&predict(model, &records, part, &flags));
        let count = lines(part).len();
        assert!(count > 20 && count < 80, "shard {i} has {count} records");
    }
    let merged = tmp.path().join("merged.jsonl");
    let merge = |parts: &[PathBuf]| {
        let mut args = vec!["merge", "--input", records.to_str().expect("utf-8")];
        for part in parts {
            args.extend(["--part", part.to_str().expect("utf-8")]);
        }
        args.extend(["--out", merged.to_str().expect("utf-8")]);
        qa_eval(&args, &[])
    };
    assert_success(&merge(&parts));
    assert_eq!(
        std::fs::read(&merged).expect("merged"),
        std::fs::read(&whole).expect("whole")
    );

    std::fs::remove_file(&merged).expect("remove");
    let missing = merge(&parts[1..]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("shard 0/3 is missing"), "{stderr}");
    assert!(!merged.exists());
}

/// The JSON line `--plan` prints.
fn plan_of(output: &Output) -> serde_json::Value {
    assert_success(output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON plan")
}

#[test]
fn a_plan_counts_the_questions_times_them_on_the_device_and_writes_no_answer() {
    let (tmp, model, records) = setup();
    let model = model.to_str().expect("utf-8");
    let out = tmp.path().join("predictions.jsonl");
    let plan_dir = tmp.path().join("plan");
    let plan_arg = plan_dir.to_str().expect("utf-8");
    let plan = plan_of(&predict(model, &records, &out, &["--plan", plan_arg]));
    assert_eq!(plan["work"], "7 questions", "{plan}");
    let seconds = plan["seconds"].as_f64().expect("a time");
    assert!(seconds > 0.0 && seconds < 60.0, "{plan}");
    assert!(
        plan["device"]
            .as_str()
            .expect("a device")
            .starts_with("cpu"),
        "{plan}"
    );
    assert_eq!(plan["on_cpu"], true);
    assert!(!out.exists() && !prediction_work(&out).ledger.exists());
    // The calibration is cached: a second plan measures nothing again.
    let calibrations = || -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut files: Vec<_> = std::fs::read_dir(plan_dir.join("calibration"))
            .expect("a calibration")
            .map(|entry| {
                let path = entry.expect("entry").path();
                let modified = path.metadata().and_then(|m| m.modified()).expect("mtime");
                (path.clone(), std::fs::read(&path).expect("read"), modified)
            })
            .collect();
        files.sort();
        files
    };
    let first = calibrations();
    assert_eq!(first.len(), 1);
    plan_of(&predict(model, &records, &out, &["--plan", plan_arg]));
    assert_eq!(calibrations(), first);
    // Other decoding settings are another calibration.
    plan_of(&predict(
        model,
        &records,
        &out,
        &["--plan", plan_arg, "--num-beams", "3"],
    ));
    assert_eq!(calibrations().len(), 2);
    // An input that neither exists nor is planned is named.
    let missing = tmp.path().join("missing.jsonl");
    let output = predict(model, &missing, &out, &["--plan", plan_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("missing.jsonl") && stderr.contains("planned by an earlier stage"),
        "{stderr}"
    );
}

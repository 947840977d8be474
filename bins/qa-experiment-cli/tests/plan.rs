//! `qa-experiment` on the smoke profile, without running a stage: the dry-run plan, and the
//! errors a user meets first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `qa-experiment --config configs/smoke.yaml <args>` from the repository root (where the
/// config's relative paths point), its run directory moved into `run_dir`.
fn qa_experiment(run_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qa-experiment"))
        .args(["--config", "configs/smoke.yaml"])
        .args(args)
        .current_dir(repository_root())
        .env("QA_EXPERIMENT__RUN_DIR", run_dir)
        .output()
        .expect("qa-experiment starts")
}

/// A directory holding a file for each stage binary: a dry run hashes them but runs none.
fn stand_in_binaries(dir: &Path) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    for name in STAGE_BINARIES {
        std::fs::write(bin_dir.join(name), name).expect("stand-in binary");
    }
    bin_dir
}

const STAGE_BINARIES: [&str; 6] = [
    "qa-prepare",
    "qa-contaminate",
    "qa-synth",
    "qa-train",
    "qa-eval",
    "qa-report",
];

/// Stand-in binaries that answer `--plan` as the real ones do: prepare plans the human splits,
/// synthesis plans its output in its work directory and takes days on the CPU, the report
/// fails, and every other stage takes 90 s.
fn planning_binaries(dir: &Path, run_dir: &Path) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    let processed = run_dir.join("data/processed");
    let plan = |seconds: f64, on_cpu: bool, outputs: &str| {
        format!(
            "echo '{{\"work\":\"some work\",\"seconds\":{seconds},\"device\":\"cpu (stand-in)\",\
             \"on_cpu\":{on_cpu},\"notes\":[\"a note\"],\"outputs\":{{{outputs}}}}}'"
        )
    };
    for name in STAGE_BINARIES {
        let body = match name {
            "qa-prepare" => plan(
                90.0,
                false,
                &["train", "val", "test"]
                    .map(|split| {
                        let path = processed.join(format!("human_{split}.jsonl"));
                        format!("\"{}\":{{\"records\":64,\"sample\":null}}", path.display())
                    })
                    .join(","),
            ),
            "qa-synth" => plan(
                200_000.0,
                true,
                &format!(
                    "\"{}\":{{\"records\":60,\"sample\":null}}",
                    run_dir.join("work/synth/synthetic.jsonl").display()
                ),
            ),
            "qa-report" => "echo 'qa-report: error: boom' >&2; exit 1".to_string(),
            _ => plan(90.0, false, ""),
        };
        let path = bin_dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("stand-in binary");
        let mut permissions = std::fs::metadata(&path).expect("written").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).expect("made executable");
    }
    bin_dir
}

#[test]
fn a_dry_run_plans_every_stage_and_writes_only_its_planning_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_dir = dir.path().join("run");
    let bin_dir = planning_binaries(dir.path(), &run_dir);
    let bin_dir = bin_dir.to_str().expect("UTF-8 temp path");
    let output = qa_experiment(&run_dir, &["--dry-run", "--bin-dir", bin_dir]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let planned: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        planned,
        [
            "prepare",
            "contaminate",
            "synthesize",
            "train-a",
            "train-b",
            "train-c",
            "predict-zero_shot",
            "predict-a",
            "predict-b",
            "predict-c",
            "score",
            "report",
            "total",
        ],
        "{stdout}"
    );
    assert!(stdout.contains("will run (never run)"), "{stdout}");
    assert!(
        stdout.contains("after the stages it reads from"),
        "{stdout}"
    );
    // Each stage's work, time, device and notes under its line.
    assert!(
        stdout.contains("some work  ≈ 1 min 30 s on cpu (stand-in)"),
        "{stdout}"
    );
    assert!(stdout.contains("(a note)"), "{stdout}");
    assert!(
        stdout.contains("no estimate: qa-report: error: boom"),
        "{stdout}"
    );
    // Ten stages of 90 s and synthesis's 200,000 s; the report has none.
    assert!(
        stdout.contains("total                    ≈ 2.3 days (report not estimated)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("On the CPU this run would take 2.3 days"),
        "{stdout}"
    );
    // Later stages plan from what earlier ones would write, at the paths the driver publishes.
    let entries: Vec<_> = std::fs::read_dir(&run_dir)
        .expect("the run directory")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(entries, ["plan"], "a dry run wrote more than its plan");
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("plan/planned.json")).expect("planned"))
            .expect("JSON");
    let records = |path: &str| planned[run_dir.join(path).display().to_string()]["records"].clone();
    assert_eq!(records("data/processed/human_test.jsonl"), 64, "{planned}");
    assert_eq!(
        records("data/synthetic/synthetic_train.jsonl"),
        60,
        "{planned}"
    );
}

#[test]
fn a_stage_binary_that_cannot_start_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin_dir = stand_in_binaries(dir.path());
    let run_dir = dir.path().join("run");
    let bin_dir = bin_dir.to_str().expect("UTF-8 temp path");
    let output = qa_experiment(&run_dir, &["--dry-run", "--bin-dir", bin_dir]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("starting") && stderr.contains("qa-prepare"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_stage_is_refused_with_the_stage_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin_dir = stand_in_binaries(dir.path());
    let bin_dir = bin_dir.to_str().expect("UTF-8 temp path");
    let output = qa_experiment(
        &dir.path().join("run"),
        &["--only", "training", "--bin-dir", bin_dir],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "no stage \"training\"; the stages are prepare, contaminate, synthesize, train, \
             predict, score, report"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_stage_binary_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("empty dir");
    let output = qa_experiment(
        &dir.path().join("run"),
        &[
            "--dry-run",
            "--bin-dir",
            empty.to_str().expect("UTF-8 temp path"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let missing = empty.join("qa-prepare");
    assert!(
        stderr.contains(&format!("{}: no such stage binary", missing.display())),
        "{stderr}"
    );
}

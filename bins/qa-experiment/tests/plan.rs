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
    for name in [
        "qa-prepare",
        "qa-contaminate",
        "qa-synth",
        "qa-train",
        "qa-eval",
        "qa-report",
    ] {
        std::fs::write(bin_dir.join(name), name).expect("stand-in binary");
    }
    bin_dir
}

#[test]
fn a_dry_run_plans_every_stage_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin_dir = stand_in_binaries(dir.path());
    let run_dir = dir.path().join("run");
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
        ],
        "{stdout}"
    );
    assert!(stdout.starts_with("prepare"), "{stdout}");
    assert!(stdout.contains("will run (never run)"), "{stdout}");
    assert!(
        stdout.contains("after the stages it reads from"),
        "{stdout}"
    );
    assert!(!run_dir.exists(), "a dry run created {}", run_dir.display());
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

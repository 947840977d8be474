//! `qa-report` refuses what it cannot report on, saying why (the report itself is tested in the
//! qa-report crate, and end to end by the smoke experiment).

use std::path::Path;
use std::process::Output;

fn qa_report(run_dir: &Path, config: &str) -> Output {
    let config_file = run_dir.join("config.yaml");
    std::fs::write(&config_file, config).expect("config");
    std::process::Command::new(env!("CARGO_BIN_EXE_qa-report"))
        .arg("--run-dir")
        .arg(run_dir)
        .arg("--config")
        .arg(&config_file)
        .output()
        .expect("qa-report runs")
}

fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "qa-report succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_run_without_scores_names_the_file_and_the_stage_to_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let message = refused(&qa_report(dir.path(), "report: {examples: 2}\n"));
    assert!(
        message.contains("results/metrics.json: not found; run the score stage first"),
        "{message}"
    );
}

#[test]
fn bad_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let message = refused(&qa_report(dir.path(), "report: {overlap_n: 0}\n"));
    assert!(
        message.contains("`report.overlap_n` (from config file ")
            && message.contains("config.yaml) must be at least 1, not 0"),
        "{message}"
    );
    let message = refused(&qa_report(dir.path(), "report: {colour: blue}\n"));
    assert!(message.contains("colour"), "{message}");
}

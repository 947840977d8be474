//! `cargo xtask bench estimate`: how close `qa-experiment --dry-run` comes to the pipeline's
//! wall time. The smoke profile is planned in a fresh run directory (its calibrations measured
//! there), then run, and each stage's estimate is printed beside the time its record says it
//! took.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::project_root;

/// The dry run's plans, in the run's planning directory (`qa_stage::plan::ESTIMATES_FILE` under
/// `qa_stage::layout::RunLayout::plan`; xtask does not link qa-stage).
const ESTIMATES: &str = "plan/estimates.json";
/// The driver's stage records (`RunLayout::stages`).
const STAGES: &str = "stages";

/// What this task reads of a stage's plan.
#[derive(Deserialize)]
struct Plan {
    work: String,
    seconds: Option<f64>,
}

/// What this task reads of a stage's record.
#[derive(Deserialize)]
struct Record {
    seconds: f64,
}

/// Runs `driver` with the smoke profile in `run_dir` and `extra` arguments from the repository
/// root, its output into `log`; returns its wall time.
fn timed(driver: &Path, layer: &Path, extra: &[&str], log: &Path) -> anyhow::Result<f64> {
    let start = Instant::now();
    let output = Command::new(driver)
        .args(["--config", "configs/smoke.yaml", "--config"])
        .arg(layer)
        .args(extra)
        .current_dir(project_root())
        .output()
        .with_context(|| format!("starting {}", driver.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let mut text = output.stdout;
    text.extend(output.stderr);
    std::fs::write(log, &text).with_context(|| format!("writing {}", log.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}); its output is in {}",
            driver.display(),
            output.status,
            log.display()
        );
    }
    Ok(seconds)
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `cargo xtask bench estimate` with the built `driver`.
pub fn run(driver: &Path) -> anyhow::Result<()> {
    let dir = project_root().join("target/bench-estimate");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let run_dir = dir.join("run");
    let layer = dir.join("run-dir.yaml");
    std::fs::write(
        &layer,
        format!("experiment:\n  run_dir: {}\n", run_dir.display()),
    )?;
    let planning = timed(driver, &layer, &["--dry-run"], &dir.join("dry-run.log"))?;
    print!("{}", std::fs::read_to_string(dir.join("dry-run.log"))?);
    let pipeline = timed(driver, &layer, &[], &dir.join("run.log"))?;

    let plans: Vec<(String, Plan)> = read(&run_dir.join(ESTIMATES))?;
    println!(
        "\nsmoke profile: the dry run's estimate beside the measured stages (dry run with its \
         calibrations: {planning:.1} s)"
    );
    println!(
        "{:<20} {:>11} {:>11} {:>8}  work",
        "stage", "estimated", "measured", "ratio"
    );
    let (mut estimated, mut measured) = (0.0, 0.0);
    for (name, plan) in &plans {
        let record: Record = read(&run_dir.join(STAGES).join(format!("{name}.json")))?;
        estimated += plan.seconds.unwrap_or(0.0);
        measured += record.seconds;
        println!(
            "{name:<20} {:>11} {:>10.2}s {:>8}  {}",
            plan.seconds.map_or("—".to_string(), |g| format!("{g:.2}s")),
            record.seconds,
            plan.seconds
                .map_or("—".to_string(), |g| format!("{:.2}", g / record.seconds)),
            plan.work
        );
    }
    println!(
        "{:<20} {:>10.2}s {:>10.2}s {:>8.2}  (stages' own times; the whole pipeline took {pipeline:.2} s, \
         estimate / pipeline {:.2})",
        "total",
        estimated,
        measured,
        estimated / measured,
        estimated / pipeline
    );
    Ok(())
}

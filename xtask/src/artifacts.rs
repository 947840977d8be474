//! Finding the test executables that cargo builds, from its JSON messages.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::{cargo_command, project_root};

#[derive(Deserialize)]
struct Artifact {
    reason: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    executable: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// A test executable of a workspace crate: `target` of `kind` (`lib`, or `test` for an
/// integration-test binary) in the crate at `crates/<package>`.
pub struct TestTarget<'a> {
    pub package: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
}

/// Builds the tests (`cargo test --no-run` with `args`, e.g. `--features …`, which must be
/// those of the run that built them before, so that nothing is compiled again) and returns the
/// executable of `wanted`.
pub fn test_executable(args: &[&str], wanted: &TestTarget<'_>) -> anyhow::Result<PathBuf> {
    let output = cargo_command()
        .args([
            "test",
            "--locked",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(args)
        .current_dir(project_root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("building the tests")?;
    if !output.status.success() {
        bail!(
            "building the tests ({}) failed ({})",
            args.join(" "),
            output.status
        );
    }
    let package = format!("/crates/{}#", wanted.package);
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(artifact) = serde_json::from_str::<Artifact>(line) else {
            continue;
        };
        if let (Some(target), Some(executable)) = (artifact.target, artifact.executable)
            && artifact.reason == "compiler-artifact"
            && artifact.package_id.contains(&package)
            && target.kind.iter().any(|kind| kind == wanted.kind)
            && target.name == wanted.target
        {
            return Ok(executable);
        }
    }
    bail!(
        "{} has no {} test executable {}",
        wanted.package,
        wanted.kind,
        wanted.target
    )
}

//! `cargo xtask`: project automation (the cargo-xtask convention). It holds no ML logic and
//! runs everything through `$CARGO`, so that it uses the toolchain that invoked it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;

/// Project automation for provenance-qa.
#[derive(Parser)]
enum Task {
    /// Run what CI runs: `cargo fmt --check`, clippy with warnings denied, and the test suite.
    Ci,
    /// Run benchmarks (optimised builds; figures belong in docs/performance.md).
    Bench {
        /// Which benchmark; all when omitted.
        #[arg(value_enum)]
        which: Option<Bench>,
    },
}

/// The benchmarks `cargo xtask bench` knows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Bench {
    /// SQuAD scoring and the resampling tests (qa-metrics).
    Metrics,
}

fn main() -> std::process::ExitCode {
    let result = match Task::parse() {
        Task::Ci => ci(),
        Task::Bench { which } => bench(which),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The repository root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Runs `cargo <args>` in the repository root and fails if it fails.
fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("starting cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])
}

fn bench(which: Option<Bench>) -> anyhow::Result<()> {
    let all = [Bench::Metrics];
    for bench in which.map_or(all.to_vec(), |one| vec![one]) {
        match bench {
            Bench::Metrics => cargo(&["bench", "-p", "qa-metrics", "--bench", "metrics"])?,
        }
    }
    Ok(())
}

//! `cargo xtask bench`: runs the criterion benchmarks, then the same shapes on the peers that
//! are present (PyTorch + transformers + PEFT from `.venv`, made by `cargo xtask golden`), and
//! prints the figures side by side with their ratios. These machines are noisy, so only ratios
//! measured in the same run count.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::project_root;

/// One criterion result: `(group, function)` → positions or tokens per second.
type Figures = BTreeMap<(String, String), f64>;

#[derive(Deserialize)]
struct BenchmarkInfo {
    group_id: String,
    function_id: Option<String>,
    throughput: Option<BTreeMap<String, u64>>,
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Runs `cargo bench -p <package> --bench <name> [-- <filter>]`, echoing its output; returns the
/// peak resident memory the benchmark printed, if it printed one (bytes).
pub fn cargo_bench(package: &str, name: &str, filter: Option<&str>) -> anyhow::Result<Option<f64>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: cargo bench -p {package} --bench {name} {}",
        filter.unwrap_or_default()
    );
    let mut child = Command::new(cargo)
        .args(["bench", "-p", package, "--bench", name])
        .args(filter.map(|f| ["--", f]).into_iter().flatten())
        .current_dir(project_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo bench")?;
    let mut peak = None;
    let stdout = child.stdout.take().context("cargo bench's output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(gib) = line
            .strip_prefix("peak resident memory: ")
            .and_then(|rest| rest.strip_suffix(" GiB"))
        {
            peak = gib.parse::<f64>().ok().map(|g| g * (1u64 << 30) as f64);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo bench -p {package} --bench {name} failed ({status})");
    }
    Ok(peak)
}

/// Every criterion result under `target/criterion`, as elements per second.
fn criterion_figures() -> anyhow::Result<Figures> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let mut figures = Figures::new();
    let mut pending = vec![target.join("criterion")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let info: BenchmarkInfo = read(&path)?;
                let estimates: Estimates = read(&path.with_file_name("estimates.json"))?;
                let elements = info.throughput.and_then(|t| t.get("Elements").copied());
                if let (Some(function), Some(elements)) = (info.function_id, elements) {
                    let seconds = estimates.median.point_estimate / 1e9;
                    figures.insert((info.group_id, function), elements as f64 / seconds);
                }
            }
        }
    }
    Ok(figures)
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One line of `xtask/peers/torch_t5.py`.
#[derive(Deserialize)]
struct PeerLine {
    bench: Option<String>,
    size: Option<String>,
    tokens_per_second: Option<f64>,
    gflops: Option<f64>,
    peak_rss_bytes: Option<f64>,
}

/// The PyTorch peer's figures for `only` (a benchmark name, or all), or why it was skipped.
fn pytorch(args: &[&str]) -> Result<Vec<PeerLine>, String> {
    let python = project_root().join(".venv/bin/python");
    if !python.is_file() {
        return Err(
            "no .venv (cargo xtask golden creates one with torch, transformers and peft)".into(),
        );
    }
    eprintln!(
        "xtask: PyTorch peer: xtask/peers/torch_t5.py {}",
        args.join(" ")
    );
    let output = Command::new(&python)
        .arg("xtask/peers/torch_t5.py")
        .args(args)
        .current_dir(project_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "xtask/peers/torch_t5.py failed ({})",
            output.status
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// Prints this crate's figures beside PyTorch's, with the ratio.
pub fn compare(t5: bool, train: bool, size: Option<&str>, peak: Option<f64>) -> anyhow::Result<()> {
    let ours = criterion_figures()?;
    let mut args = Vec::new();
    if let Some(size) = size {
        args.extend(["--sizes", size]);
    }
    if !train {
        args.extend(["--skip", "train"]);
    }
    if !t5 {
        args.extend(["--only", "train"]);
    }
    let peer = pytorch(&args);
    if let Err(why) = &peer {
        println!("\nPyTorch peer skipped: {why}");
    }
    let peer = peer.unwrap_or_default();
    let theirs = |bench: &str, size: &str| {
        peer.iter()
            .find(|l| l.bench.as_deref() == Some(bench) && l.size.as_deref() == Some(size))
    };
    println!(
        "\n{:<12} {:<6} {:>16} {:>16} {:>7}",
        "benchmark", "size", "this crate", "PyTorch", "ratio"
    );
    let matmul_ours = ours.get(&("matmul".into(), "f32".into())).map(|f| f / 1e9);
    let matmul_theirs = peer
        .iter()
        .find(|l| l.bench.as_deref() == Some("matmul"))
        .and_then(|l| l.gflops);
    if t5 {
        row("matmul", "2048²", matmul_ours, matmul_theirs, "GFLOP/s");
    }
    let benches = ["t5-forward", "t5-generate", "t5-beam", "train"];
    // Only what ran now: older results of other benchmarks stay in target/criterion.
    for bench in benches
        .into_iter()
        .filter(|b| if *b == "train" { train } else { t5 })
    {
        for size in ["small", "base"]
            .into_iter()
            .filter(|s| size.is_none_or(|only| only == *s))
        {
            let mine = ours.get(&(bench.to_string(), size.to_string())).copied();
            let peer = theirs(bench, size);
            if mine.is_none() && peer.is_none() {
                continue;
            }
            row(
                bench,
                size,
                mine,
                peer.and_then(|p| p.tokens_per_second),
                "tokens/s",
            );
            if bench == "train" {
                let gib = |b: f64| b / (1u64 << 30) as f64;
                row(
                    "peak memory",
                    size,
                    peak.map(gib),
                    peer.and_then(|p| p.peak_rss_bytes).map(gib),
                    "GiB",
                );
            }
        }
    }
    Ok(())
}

fn row(bench: &str, size: &str, ours: Option<f64>, theirs: Option<f64>, unit: &str) {
    let show = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} {unit}"));
    let ratio = match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_string(),
    };
    println!(
        "{bench:<12} {size:<6} {:>16} {:>16} {ratio:>7}",
        show(ours),
        show(theirs)
    );
}

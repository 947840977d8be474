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

use crate::{cargo_command, project_root, target_dir, venv_python};

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

/// The backend the T5 benchmarks run on, by the names of t5-lora's `DeviceChoice` for the CPU
/// (spelled again here: depending on t5-lora would compile Burn into xtask).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    /// burn-flex, the default build.
    Cpu,
    /// burn-flex with the model's projections through Debian's OpenBLAS (libopenblas-dev):
    /// t5-lora's `openblas-matmul` feature.
    CpuOpenblas,
    /// burn-ndarray with Debian's OpenBLAS (libopenblas-dev) for matrix products.
    Ndarray,
    /// libtorch 2.9: `LIBTORCH`, or the torch inside `.venv` when it is that version.
    Tch,
    /// burn-wgpu: Vulkan, Metal on a Mac (its first adapter, whatever it is).
    Wgpu,
    /// Burn's CUDA backend.
    Cuda,
}

impl Backend {
    /// The name the table uses.
    pub fn name(self) -> &'static str {
        match self {
            Backend::CpuOpenblas => "cpu-openblas",
            other => other.device(),
        }
    }

    /// The device `BENCH_DEVICE` names (t5-lora's `DeviceChoice`).
    fn device(self) -> &'static str {
        match self {
            Backend::Cpu | Backend::CpuOpenblas => "cpu",
            Backend::Ndarray => "ndarray",
            Backend::Tch => "tch",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this backend runs on a GPU, where the PyTorch peer runs on CUDA.
    fn is_gpu(self) -> bool {
        matches!(self, Backend::Wgpu | Backend::Cuda)
    }

    /// Adds the cargo feature and the environment this backend needs to a `cargo bench` of
    /// t5-lora.
    fn configure(self, command: &mut Command) -> anyhow::Result<()> {
        command.env("BENCH_DEVICE", self.device());
        match self {
            Backend::Cpu => {}
            Backend::CpuOpenblas => {
                command.args(["--features", crate::OPENBLAS_MATMUL]);
                note_openblas_coretype();
            }
            Backend::Ndarray => {
                command.args(["--features", "t5-lora/openblas"]);
                note_openblas_coretype();
            }
            Backend::Tch => {
                let libtorch = libtorch()?;
                command
                    .args(["--features", "t5-lora/tch"])
                    .env("LIBTORCH", &libtorch)
                    .env("LD_LIBRARY_PATH", libtorch.join("lib"));
            }
            Backend::Wgpu | Backend::Cuda => {
                command.args(["--features", &format!("t5-lora/{}", self.name())]);
            }
        }
        Ok(())
    }
}

/// OpenBLAS picks its kernels by the CPU it recognises, and Debian's 0.3.21 does not know every
/// CPU (measured here: a virtualised Sapphire Rapids got the generic Prescott kernels, 63 GFLOP/s
/// instead of 282 with COOPERLAKE; an AMD EPYC with AVX-512 was taken for a Cooper Lake).
fn note_openblas_coretype() {
    if std::env::var_os("OPENBLAS_CORETYPE").is_none() {
        eprintln!(
            "xtask: note: OpenBLAS falls back to generic kernels on CPUs it does not recognise; \
             OPENBLAS_VERBOSE=2 prints the kernel it picks and OPENBLAS_CORETYPE (e.g. SKYLAKEX, \
             COOPERLAKE) sets it"
        );
    }
}

/// The version of libtorch that tch 0.22 (burn-tch's) is written against.
const LIBTORCH_VERSION: &str = "2.9.";

/// Where libtorch is: `LIBTORCH` when set, else the torch package inside `.venv` when it is the
/// version tch needs (torch's own headers and libraries are a libtorch).
fn libtorch() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        return Ok(dir.into());
    }
    let python = venv_python();
    let probe =
        "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))";
    let output = Command::new(&python)
        .args(["-c", probe])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .context("--device tch needs libtorch: no torch in .venv and LIBTORCH is not set")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (version, dir) = text
        .trim()
        .split_once('\n')
        .context("reading torch's version and directory")?;
    if !version.starts_with(LIBTORCH_VERSION) {
        bail!(
            "--device tch: burn-tch's tch 0.22 compiles only against libtorch {LIBTORCH_VERSION}x, \
             and .venv has torch {version}; install torch==2.9.0 into another virtualenv and set \
             LIBTORCH=<that venv>/lib/python3.11/site-packages/torch"
        );
    }
    Ok(dir.into())
}

/// What a `cargo bench` printed on its standard output, line by line.
pub struct BenchOutput {
    lines: Vec<String>,
}

impl BenchOutput {
    /// The peak resident memory the benchmark printed, if it printed one (bytes).
    pub fn peak_memory(&self) -> Option<f64> {
        self.lines.iter().find_map(|line| {
            let gib = line
                .strip_prefix("peak resident memory: ")?
                .strip_suffix(" GiB")?;
            gib.parse::<f64>().ok().map(|g| g * (1u64 << 30) as f64)
        })
    }

    /// The lines that parse as JSON objects of type `T`.
    fn json<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
        self.lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// Runs `cargo bench -p <package> --bench <name> [-- <filter>]` (on `backend`, for the crates
/// that run T5) with `env` set, echoing its output.
pub fn cargo_bench(
    package: &str,
    name: &str,
    filter: Option<&str>,
    backend: Option<Backend>,
    env: &[(&str, &Path)],
) -> anyhow::Result<BenchOutput> {
    eprintln!(
        "xtask: cargo bench -p {package} --bench {name} {}{}",
        filter.unwrap_or_default(),
        backend.map_or(String::new(), |b| format!(" (BENCH_DEVICE={})", b.name()))
    );
    let mut command = cargo_command();
    command.args(["bench", "-p", package, "--bench", name]);
    if let Some(backend) = backend {
        backend.configure(&mut command)?;
    }
    let mut child = command
        .args(filter.map(|f| ["--", f]).into_iter().flatten())
        .envs(env.iter().copied())
        .current_dir(project_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo bench")?;
    let mut lines = Vec::new();
    let stdout = child.stdout.take().context("cargo bench's output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        lines.push(line);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo bench -p {package} --bench {name} failed ({status})");
    }
    Ok(BenchOutput { lines })
}

/// Every criterion result under `target/criterion`, as elements per second.
fn criterion_figures() -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let mut pending = vec![target_dir().join("criterion")];
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

/// One line of a peer's output (`xtask/peers/torch_t5.py`, `candle-t5-peer`).
#[derive(Deserialize)]
struct PeerLine {
    bench: Option<String>,
    size: Option<String>,
    seconds: Option<f64>,
    tokens_per_second: Option<f64>,
    gflops: Option<f64>,
    peak_rss_bytes: Option<f64>,
    /// On a GPU, the most memory PyTorch allocated there.
    peak_gpu_bytes: Option<f64>,
}

/// A peer's figures, or why it did not run.
struct Peer {
    name: &'static str,
    lines: Result<Vec<PeerLine>, String>,
}

impl Peer {
    fn line(&self, bench: &str, size: &str) -> Option<&PeerLine> {
        self.lines
            .as_ref()
            .ok()?
            .iter()
            .find(|l| l.bench.as_deref() == Some(bench) && l.size.as_deref() == Some(size))
    }

    fn matmul(&self) -> Option<f64> {
        self.lines
            .as_ref()
            .ok()?
            .iter()
            .find(|l| l.bench.as_deref() == Some("matmul"))?
            .gflops
    }
}

/// Runs a peer program and collects the JSON lines it prints.
fn run_peer(mut command: Command, what: &str) -> Result<Vec<PeerLine>, String> {
    eprintln!("xtask: {what}");
    let output = command
        .current_dir(project_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{what} failed ({})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}

/// PyTorch + transformers (+ PEFT) from `.venv`, when there is one.
fn pytorch(args: &[&str]) -> Peer {
    let python = venv_python();
    let lines = if python.is_file() {
        let mut command = Command::new(&python);
        command.arg("xtask/peers/torch_t5.py").args(args);
        run_peer(
            command,
            &format!("PyTorch peer: xtask/peers/torch_t5.py {}", args.join(" ")),
        )
    } else {
        Err("no .venv (cargo xtask golden creates one with torch, transformers and peft)".into())
    };
    Peer {
        name: "PyTorch",
        lines,
    }
}

/// candle-transformers' T5 (`xtask/peers/candle-t5`), built in release on first use.
fn candle(args: &[&str]) -> Peer {
    let mut command = cargo_command();
    command
        .args(["run", "--release", "--quiet", "-p", "candle-t5-peer", "--"])
        .args(args);
    Peer {
        name: "candle",
        lines: run_peer(
            command,
            &format!(
                "candle peer: cargo run -p candle-t5-peer -- {}",
                args.join(" ")
            ),
        ),
    }
}

/// The matrix products of a FLAN-T5 shape, counting 2 floating-point operations per
/// multiply-add; element-wise work is left out.
struct Flops {
    d: f64,
    ff: f64,
    layers: f64,
    inner: f64,
    vocab: f64,
}

impl Flops {
    /// The benchmarks' FLAN-T5 shapes: `(d_model, d_ff, layers per stack, heads)`.
    fn of(size: &str) -> Option<Flops> {
        let (d, ff, layers, heads) = match size {
            "small" => (512.0, 1024.0, 8.0, 6.0),
            "base" => (768.0, 2048.0, 12.0, 12.0),
            _ => return None,
        };
        Some(Flops {
            d,
            ff,
            layers,
            inner: heads * 64.0,
            vocab: 32128.0,
        })
    }

    /// `(projections, attention products)` of one decoder position attending `keys` earlier
    /// positions and `source` encoder positions, over every layer.
    fn decoder_position(&self, keys: f64, source: f64) -> (f64, f64) {
        let Flops {
            d,
            ff,
            layers,
            inner,
            vocab,
        } = *self;
        let projections = 2.0 * (6.0 * d * inner + 3.0 * d * ff) * layers + 2.0 * d * vocab;
        let attention = 4.0 * (keys + source) * inner * layers;
        (projections, attention)
    }

    /// `(projections, attention products)` of the encoder over `rows × source` positions plus
    /// every layer's cross-attention keys and values of its output.
    fn encoder(&self, rows: f64, source: f64) -> (f64, f64) {
        let Flops {
            d,
            ff,
            layers,
            inner,
            ..
        } = *self;
        let projections = rows * source * 2.0 * (6.0 * d * inner + 3.0 * d * ff) * layers;
        let attention = rows * 4.0 * source * source * inner * layers;
        (projections, attention)
    }

    /// Cached decoding of `target` tokens for one row: step t attends t + 1 positions.
    fn cached_decoding(&self, source: f64, target: usize) -> f64 {
        (0..target)
            .map(|t| {
                let (p, a) = self.decoder_position(t as f64 + 1.0, source);
                p + a
            })
            .sum()
    }

    /// One synthesis seed: its prompt of `source` tokens encoded once, and `candidates`
    /// samples of `target` tokens decoded from it.
    fn synthesis_seed(&self, source: f64, candidates: f64, target: usize) -> f64 {
        let (p, a) = self.encoder(1.0, source);
        p + a + candidates * self.cached_decoding(source, target)
    }
}

/// Floating-point operations of one benchmark run per unit of its throughput (per position or
/// per generated token). A training step counts its forward pass, the input gradients of every
/// frozen projection (2× forward in all) and both operand gradients of the attention products
/// (3×).
fn flops_per_unit(bench: &str, size: &str) -> Option<f64> {
    let flops = Flops::of(size)?;
    let (rows, source, target) = match bench {
        "t5-forward" | "train" => (8.0, 384.0, 32.0),
        "t5-generate" | "t5-beam" => (16.0, 384.0, 32.0),
        _ => return None,
    };
    let (enc_proj, enc_attn) = flops.encoder(rows, source);
    match bench {
        "t5-forward" | "train" => {
            let (dec_proj, dec_attn) = flops.decoder_position(target, source);
            let projections = enc_proj + rows * target * dec_proj;
            let attention = enc_attn + rows * target * dec_attn;
            let total = if bench == "train" {
                2.0 * projections + 3.0 * attention
            } else {
                projections + attention
            };
            Some(total / (rows * (source + target)))
        }
        _ => {
            let beams = if bench == "t5-beam" { 4.0 } else { 1.0 };
            let decoding = flops.cached_decoding(source, target as usize);
            Some((enc_proj + enc_attn + rows * beams * decoding) / (rows * target))
        }
    }
}

/// Model FLOP utilisation: achieved FLOP/s over the same backend's 2048² matmul FLOP/s.
fn mfu(
    bench: &str,
    size: &str,
    tokens_per_second: Option<f64>,
    matmul: Option<f64>,
) -> Option<f64> {
    Some(flops_per_unit(bench, size)? * tokens_per_second? / (matmul? * 1e9))
}

/// The model benchmarks that this crate and the peers run under the same names (the PyTorch
/// peer's `--skip` takes them; the matmul always runs, as the utilisation's denominator).
const PEER_MODEL_BENCHES: [&str; 4] = ["t5-forward", "t5-generate", "t5-beam", "train"];

/// Prints this crate's figures beside candle's and PyTorch's, with ratios and each one's model
/// FLOP utilisation.
pub fn compare(
    t5: bool,
    train: bool,
    size: Option<&str>,
    peak: Option<f64>,
    backend: Backend,
) -> anyhow::Result<()> {
    let ours = criterion_figures()?;
    let mut args = Vec::new();
    if let Some(size) = size {
        args.extend(["--sizes", size]);
    }
    let mut torch_args = args.clone();
    if backend.is_gpu() {
        torch_args.extend(["--device", "cuda"]);
    }
    if !train {
        torch_args.extend(["--skip", "train"]);
    }
    if !t5 {
        // The matmul still runs: it is the denominator of the utilisation.
        for skipped in PEER_MODEL_BENCHES.into_iter().filter(|b| *b != "train") {
            torch_args.extend(["--skip", skipped]);
        }
    }
    // candle has no LoRA training, and its peer runs on the CPU: it runs with the T5
    // benchmarks on the CPU only.
    let peers = if t5 && !backend.is_gpu() {
        vec![candle(&args), pytorch(&torch_args)]
    } else {
        vec![pytorch(&torch_args)]
    };
    for peer in &peers {
        if let Err(why) = &peer.lines {
            println!("\n{} peer skipped: {why}", peer.name);
        }
    }
    let ours_name = match backend {
        Backend::Cpu => "this crate".to_string(),
        other => format!("this crate, {}", other.name()),
    };
    print!("\n{:<12} {:<6} {:>18}", "benchmark", "size", ours_name);
    for peer in &peers {
        print!(" {:>18} {:>9}", peer.name, format!("×{}", peer.name));
    }
    println!();
    let matmul_ours = ours.get(&("matmul".into(), "f32".into())).map(|f| f / 1e9);
    let matmuls: Vec<_> = peers.iter().map(Peer::matmul).collect();
    row("matmul", "2048²", matmul_ours, &matmuls, "GFLOP/s");
    // The model's projections: the backend's matmul, or OpenBLAS under `cpu-openblas`.
    let projection = ours.get(&("matmul".into(), "projection".into()));
    if let Some(projection) = projection.filter(|_| t5) {
        row(
            "projection",
            "2048²",
            Some(projection / 1e9),
            &vec![None; matmuls.len()],
            "GFLOP/s",
        );
    }
    let benches = PEER_MODEL_BENCHES;
    let sizes = ["small", "base"];
    let ran = |bench: &&&str| if **bench == "train" { train } else { t5 };
    let sized = |s: &&&str| size.is_none_or(|only| only == **s);
    let mut utilisation = Vec::new();
    // Only what ran now: older results of other benchmarks stay in target/criterion.
    for bench in benches.iter().filter(ran) {
        for size in sizes.iter().filter(sized) {
            let mine = ours.get(&(bench.to_string(), size.to_string())).copied();
            let theirs: Vec<_> = peers.iter().map(|p| p.line(bench, size)).collect();
            if mine.is_none() && theirs.iter().all(Option::is_none) {
                continue;
            }
            let rates: Vec<_> = theirs
                .iter()
                .map(|l| l.and_then(|l| l.tokens_per_second))
                .collect();
            row(bench, size, mine, &rates, "tokens/s");
            if *bench == "train" {
                let gib = |b: f64| b / (1u64 << 30) as f64;
                let peaks: Vec<_> = theirs
                    .iter()
                    .map(|l| {
                        l.and_then(|l| l.peak_rss_bytes.or(l.peak_gpu_bytes))
                            .map(gib)
                    })
                    .collect();
                // Our training benchmark runs the base shapes only. On a GPU it measures the
                // host's memory alone, and PyTorch's figure is the GPU's.
                let (label, ours) = match backend.is_gpu() {
                    true => ("peak on GPU", None),
                    false => ("peak memory", mine.and(peak)),
                };
                row(label, size, ours.map(gib), &peaks, "GiB");
            }
            let mut shares = vec![mfu(bench, size, mine, matmul_ours)];
            for (rate, matmul) in rates.iter().zip(&matmuls) {
                shares.push(mfu(bench, size, *rate, *matmul));
            }
            utilisation.push((*bench, *size, shares));
        }
    }
    if !utilisation.is_empty() {
        print!("\nmodel FLOP utilisation (achieved FLOP/s over the same backend's matmul)\n");
        print!("{:<12} {:<6} {:>12}", "benchmark", "size", ours_name);
        for peer in &peers {
            print!(" {:>12}", peer.name);
        }
        println!();
        for (bench, size, shares) in utilisation {
            print!("{bench:<12} {size:<6}");
            for share in shares {
                print!(
                    " {:>12}",
                    share.map_or("—".into(), |s| format!("{:.0}%", s * 100.0))
                );
            }
            println!();
        }
    }
    Ok(())
}

fn row(bench: &str, size: &str, ours: Option<f64>, theirs: &[Option<f64>], unit: &str) {
    let show = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1} {unit}"));
    print!("{bench:<12} {size:<6} {:>18}", show(ours));
    for other in theirs {
        let ratio = match (ours, other) {
            (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}×", a / b),
            _ => "—".to_string(),
        };
        print!(" {:>18} {ratio:>9}", show(*other));
    }
    println!();
}

/// One variant of qa-synth's `synth` benchmark (`crates/qa-synth/benches/synth.rs`).
#[derive(Deserialize)]
struct SynthLine {
    bench: String,
    variant: Option<String>,
    gflops: Option<f64>,
    seconds: Option<f64>,
    candidates: Option<usize>,
    source_lengths: Option<Vec<usize>>,
    new_tokens: Option<usize>,
    /// What the PyTorch peer reads to generate as the stage did (`--synth-inputs`).
    peer_inputs: Option<PathBuf>,
}

/// `cargo xtask bench synth`: the synthesis stage before and after the shared encoder pass and
/// with length grouping, beside PyTorch + transformers' `generate(num_return_sequences=4)` on
/// the same prompts, with each one's model FLOP utilisation (the useful work: each prompt
/// encoded once).
pub fn synth(backend: Backend) -> anyhow::Result<()> {
    let dir = target_dir().join("bench-synth");
    let output = cargo_bench(
        "qa-synth",
        "synth",
        None,
        Some(backend),
        &[("SYNTH_BENCH_DIR", &dir)],
    )?;
    let lines: Vec<SynthLine> = output.json();
    let matmul = lines
        .iter()
        .find(|l| l.bench == "matmul")
        .and_then(|l| l.gflops);
    let variants: Vec<&SynthLine> = lines.iter().filter(|l| l.bench == "synth").collect();
    let first = variants
        .first()
        .context("the synth benchmark printed no figures")?;
    let (Some(lengths), Some(candidates), Some(target), Some(peer_inputs)) = (
        first.source_lengths.as_ref(),
        first.candidates,
        first.new_tokens,
        first.peer_inputs.as_ref(),
    ) else {
        bail!("the synth benchmark's lines lack their shapes");
    };
    let flops = Flops::of("base").context("the base shape")?;
    let per_seed = candidates as f64 / lengths.len() as f64;
    let useful: f64 = lengths
        .iter()
        .map(|&source| flops.synthesis_seed(source as f64, per_seed, target))
        .sum();

    let peer_inputs = peer_inputs.to_str().context("non-UTF-8 target path")?;
    let mut args = vec!["--sizes", "base", "--synth-inputs", peer_inputs];
    for skipped in PEER_MODEL_BENCHES {
        args.extend(["--skip", skipped]);
    }
    let peer = pytorch(&args);
    let theirs = peer.line("synth", "base").and_then(|l| l.seconds);
    if let Err(why) = &peer.lines {
        println!("\nPyTorch peer skipped: {why}");
    }

    let utilisation = |seconds: f64, matmul: Option<f64>| {
        matmul.map_or("—".to_string(), |gflops| {
            format!("{:.0}%", useful / seconds / (gflops * 1e9) * 100.0)
        })
    };
    let before = variants
        .iter()
        .find(|l| l.variant.as_deref() == Some("encode-per-candidate"))
        .and_then(|l| l.seconds);
    println!(
        "\nsynthesis stage, FLAN-T5-base shapes: {} seeds × {per_seed:.0} candidates, {target} new \
         tokens, prompts of {:.0} tokens on average",
        lengths.len(),
        lengths.iter().sum::<usize>() as f64 / lengths.len() as f64
    );
    println!(
        "{:<28} {:>14} {:>10} {:>10} {:>6}",
        "variant", "candidates/s", "×before", "×PyTorch", "MFU"
    );
    let ratio = |a: f64, b: Option<f64>| b.map_or("—".to_string(), |b| format!("{:.2}×", b / a));
    for line in &variants {
        let Some(seconds) = line.seconds else {
            continue;
        };
        println!(
            "{:<28} {:>14.2} {:>10} {:>10} {:>6}",
            line.variant.as_deref().unwrap_or("?"),
            candidates as f64 / seconds,
            ratio(seconds, before),
            ratio(seconds, theirs),
            utilisation(seconds, matmul)
        );
    }
    if let Some(seconds) = theirs {
        println!(
            "{:<28} {:>14.2} {:>10} {:>10} {:>6}",
            "PyTorch generate(n=4)",
            candidates as f64 / seconds,
            ratio(seconds, before),
            "1.00×",
            utilisation(seconds, peer.matmul())
        );
    }
    Ok(())
}

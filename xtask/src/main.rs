//! `cargo xtask`: project automation (the cargo-xtask convention). It holds no ML logic and
//! runs everything through `$CARGO`, so that it uses the toolchain that invoked it.

mod artifacts;
mod bench;
mod bench_estimate;
mod browser;
mod cpu_paths;
mod gpu;
mod modules;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Parser;

/// Project automation for provenance-qa.
#[derive(Parser)]
enum Task {
    /// Run what CI runs: `cargo fmt --check`, the module-cycle check, clippy with warnings
    /// denied, and the test suite.
    Ci,
    /// Regenerate the reference fixtures with Python: SQuAD metric scores (standard library)
    /// and T5 checkpoints, outputs and a LoRA adapter from Hugging Face transformers and PEFT
    /// (a virtualenv in `.venv` with torch, transformers<5, peft, safetensors is created on
    /// first use); then checks that an adapter saved by t5-lora loads in PEFT with the same
    /// logits.
    Golden,
    /// Run the A/B/C experiment: build the stage binaries (release unless --dev) and run
    /// `qa-experiment` from the repository root with the other arguments: `--config FILE`
    /// (repeat to layer; default configs/experiment.yaml), `--only STAGE`, `--from STAGE`,
    /// `--dry-run` (see `qa-experiment --help`). Stages are skipped when their record in
    /// <run_dir>/stages says they are up to date, and continued when they were interrupted.
    ///
    /// xtask's own flags, anywhere among them: `--dev` uses the stage binaries as the test suite
    /// builds them (quicker to build, nothing to build after the tests; fine for the smoke
    /// profile's tiny models). The GPU backends compiled in follow the machine: CUDA where an
    /// NVIDIA driver is present, wgpu (Metal) on a Mac, the CPU alone elsewhere;
    /// `--features wgpu,cuda` (either or both) or `--cpu-only` choose instead. `device: auto`
    /// then takes the GPU.
    RunExperiment {
        /// Arguments of qa-experiment, and --dev, --features, --cpu-only.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Run the test suite (`cargo test` with the other arguments) with GPU backends compiled in:
    /// `--features wgpu,cuda` as for run-experiment, which then reuses what it built.
    Test {
        /// Arguments of cargo test, and --features, --cpu-only.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Print the cargo `--features` value that compiles the named GPU backends (`wgpu`, `cuda`,
    /// comma-separated) into every stage package, e.g. for `cargo clippy --features "$(…)"`.
    Features {
        /// wgpu, cuda or wgpu,cuda.
        list: String,
        /// Add t5-lora's `openblas-matmul` (the model's projections through OpenBLAS).
        #[arg(long)]
        openblas: bool,
    },
    /// Run the `gpu` group on a wgpu adapter (a real GPU, or Mesa's software lavapipe): the
    /// t5-lora parity, generation, LoRA and training tests on wgpu, and the smoke experiment
    /// with prediction there, whose zero-shot answers must equal the CPU's. With no adapter it
    /// says so and succeeds, unless `--require`.
    GpuTests {
        /// Fail when no wgpu adapter exists (CI, which installs lavapipe).
        #[arg(long)]
        require: bool,
    },
    /// Run t5-lora's kernel tests (our kernels against Burn's composed operations, OpenBLAS's
    /// products against gemm's, each within its rounding bound) on the code paths a user's CPU
    /// can take other than this one's, which `cargo test` runs: under QEMU's user-mode emulator
    /// as a Haswell (AVX2 and FMA) and a Nehalem (no FMA), or with `--openblas` for several
    /// `OPENBLAS_CORETYPE`s instead. Without qemu-x86_64 (Debian: qemu-user) the emulated paths
    /// are left out, unless `--require`.
    CpuPaths {
        /// The GPU backends compiled in, as for `test` (the same build, nothing recompiled).
        #[arg(long, value_name = "LIST", default_value = "")]
        features: String,
        /// The build has t5-lora's `openblas-matmul` feature: force OpenBLAS's core types too.
        #[arg(long)]
        openblas: bool,
        /// Fail when QEMU is missing (CI, which installs it); without `--openblas`.
        #[arg(long, conflicts_with = "openblas")]
        require: bool,
    },
    /// Type-check and lint t5-lora with CUDA (the only crate with CUDA code: its device probe),
    /// without the CUDA toolkit or a GPU: `cargo clippy -p t5-lora --lib --features cuda` with
    /// `DOCS_RS=1`, which makes cubecl's LLVM build scripts skip their download as on docs.rs.
    /// A check build of Burn's whole tree with CUDA, about ten minutes on 2 cores: CI leaves it
    /// out of its budget (docs/ci.md), so run it after touching `device.rs` or Burn's version.
    CudaCheck,
    /// Read each crate's modules and the `crate::`/`super::` paths of their non-test code, and
    /// fail on a cycle among sibling modules (a module may use its children and ancestors) or
    /// on a library crate depending on one after it in the layers of docs/architecture.md.
    ModuleCycles,
    /// Open a run's report.html in headless Chromium and check its per-question explorer: one
    /// row per question of per_question.jsonl, each preset (from the URL hash) showing the rows
    /// the scores say, and nothing logged to the console. Without a browser it says so and
    /// succeeds, unless `--require`.
    BrowserCheck {
        /// The run directory whose results/ holds the report.
        #[arg(long, value_name = "DIR", default_value = "runs/smoke")]
        run_dir: PathBuf,
        /// Fail when no browser is installed (CI, which installs chromium).
        #[arg(long)]
        require: bool,
        /// Also save a screenshot of the explorer (PNG).
        #[arg(long, value_name = "FILE")]
        screenshot: Option<PathBuf>,
    },
    /// Check a run's export/ with the Hugging Face libraries in `.venv` (created as for
    /// `golden`): offline, every dataset loads with `datasets.load_dataset` into its splits with
    /// the run's row counts, every card loads with `huggingface_hub` (`DatasetCard`,
    /// `ModelCard`, `metadata_load`, the model-index's results), and every adapter loads with
    /// `PeftModel.from_pretrained` when its base model is a local directory.
    ExportCheck {
        /// The run directory whose export/ to check.
        #[arg(long, value_name = "DIR", default_value = "runs/smoke")]
        run_dir: PathBuf,
    },
    /// Bring up a real single-node Slurm cluster here (installing Debian's slurm-wlm and munge
    /// if absent; needs root), run synthesis through deploy/slurm/ as a 3-task array plus merge
    /// and check it equals an unsharded run byte for byte, then cancel a task mid-run, resubmit
    /// it alone and check again. Stops the daemons it started and removes its files.
    SlurmCheck,
    /// Run benchmarks (optimised builds; figures belong in docs/performance.md), then the same
    /// shapes on the peers (candle, and PyTorch when `.venv` has it), side by side with ratios.
    Bench {
        /// Which benchmark; all when omitted.
        #[arg(value_enum)]
        which: Option<Bench>,
        /// Only this model shape (small or base) in the T5 benchmarks, here and in the peers.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// The backend of this crate's T5 and training benchmarks (the binaries' `--device`):
        /// cpu is burn-flex, cpu-openblas the same with the model's projections through OpenBLAS
        /// (t5-lora's `openblas-matmul`), ndarray is burn-ndarray with OpenBLAS, tch is libtorch
        /// 2.9 (`LIBTORCH`, or `.venv`'s torch when it is that version), wgpu and cuda the GPU
        /// (there the PyTorch peer runs on CUDA, and candle, on the CPU, is left out).
        #[arg(long, value_enum, default_value = "cpu")]
        device: bench::Backend,
    },
}

/// The benchmarks `cargo xtask bench` knows.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Bench {
    /// SQuAD scoring and the resampling tests (qa-metrics).
    Metrics,
    /// T5 forward pass, greedy and beam generation, the cache's speed-up, and a large matmul
    /// (t5-lora).
    T5,
    /// One LoRA training step on FLAN-T5-base shapes, and peak memory (t5-lora).
    Train,
    /// The synthesis stage end to end on FLAN-T5-base shapes over 64 SQuAD seeds, before and
    /// after the shared encoder pass, beside Hugging Face's `generate(num_return_sequences=4)`
    /// (qa-synth).
    Synth,
    /// The dry run's estimate of the smoke profile beside its measured pipeline, stage by
    /// stage, in a fresh run directory (the stage binaries as `run-experiment` builds them).
    Estimate,
}

fn main() -> std::process::ExitCode {
    let result = match Task::parse() {
        Task::Ci => ci(),
        Task::Bench {
            which,
            size,
            device,
        } => bench(which, size.as_deref(), device),
        Task::Golden => golden(),
        Task::ExportCheck { run_dir } => export_check(&run_dir),
        Task::SlurmCheck => slurm_check(),
        Task::RunExperiment { args } => run_experiment(args),
        Task::Test { args } => test(args),
        Task::GpuTests { require } => gpu::gpu_tests(require),
        Task::CudaCheck => cuda_check(),
        Task::ModuleCycles => modules::module_cycles(),
        Task::CpuPaths {
            features,
            openblas,
            require,
        } => {
            let paths = if openblas {
                cpu_paths::Paths::OpenBlasCores
            } else {
                cpu_paths::Paths::Emulated { require }
            };
            cargo_features(&features, openblas)
                .and_then(|features| cpu_paths::cpu_paths(&features, paths))
        }
        Task::BrowserCheck {
            run_dir,
            require,
            screenshot,
        } => browser::browser_check(&run_dir, require, screenshot),
        Task::Features { list, openblas } => {
            cargo_features(&list, openblas).map(|features| println!("{features}"))
        }
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

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the repository root, where xtask runs
/// cargo), else `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| project_root().join(dir))
        .unwrap_or_else(|| project_root().join("target"))
}

/// The python of the project's virtualenv (`.venv`, made by `cargo xtask golden`).
fn venv_python() -> PathBuf {
    project_root().join(".venv/bin/python")
}

/// A command running the cargo of the toolchain that invoked xtask, without the package
/// variables `cargo run` gave xtask: build scripts that watch them (ring's) would see a changed
/// environment and rebuild everything above them, once for xtask's cargo and again for the
/// user's own.
fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `cargo <args>` (the toolchain that invoked xtask) in the repository root.
fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run(cargo_command(), args)
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    modules::module_cycles()?;
    cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    cargo(&["test"])
}

fn bench(which: Option<Bench>, size: Option<&str>, device: bench::Backend) -> anyhow::Result<()> {
    if size.is_some_and(|s| s != "small" && s != "base") {
        bail!("--size takes small or base");
    }
    let all = [
        Bench::Metrics,
        Bench::T5,
        Bench::Train,
        Bench::Synth,
        Bench::Estimate,
    ];
    let (mut t5, mut train, mut peak) = (false, false, None);
    for bench in which.map_or(all.to_vec(), |one| vec![one]) {
        match bench {
            Bench::Metrics => {
                bench::cargo_bench("qa-metrics", "metrics", None, None, &[])?;
            }
            Bench::T5 => {
                // Criterion filters by regex over "group/shape/input"; the matmul always runs.
                let filter = size.map(|s| format!("matmul|/{s}/"));
                bench::cargo_bench("t5-lora", "t5", filter.as_deref(), Some(device), &[])?;
                t5 = true;
            }
            Bench::Train => {
                if !t5 {
                    // The denominator of the training step's FLOP utilisation.
                    bench::cargo_bench("t5-lora", "t5", Some("matmul"), Some(device), &[])?;
                }
                peak =
                    bench::cargo_bench("t5-lora", "train", None, Some(device), &[])?.peak_memory();
                train = true;
            }
            Bench::Synth => bench::synth(device)?,
            Bench::Estimate => {
                let features = gpu::cargo_features(&gpu::take_features(&mut Vec::new())?);
                bench_estimate::run(&build_stage_binaries(false, &features)?)?
            }
        }
    }
    if t5 || train {
        bench::compare(t5, train, size, peak, device)?;
    }
    Ok(())
}

/// t5-lora's feature routing the model's projections through OpenBLAS.
pub const OPENBLAS_MATMUL: &str = "t5-lora/openblas-matmul";

/// The cargo features of `features` and `cpu-paths`: the GPU backends `list` names on the stage
/// packages, and t5-lora's `openblas-matmul` with `openblas`.
fn cargo_features(list: &str, openblas: bool) -> anyhow::Result<String> {
    let mut features = gpu::cargo_features(&gpu::GpuFeature::parse_list(list)?);
    if openblas {
        if !features.is_empty() {
            features.push(',');
        }
        features.push_str(OPENBLAS_MATMUL);
    }
    Ok(features)
}

/// Removes `flag` from `args`, saying whether it was there.
fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != flag);
    args.len() != before
}

fn test(mut args: Vec<String>) -> anyhow::Result<()> {
    let features = gpu::cargo_features(&gpu::take_features(&mut args)?);
    let mut test = vec!["test"];
    if !features.is_empty() {
        test.extend(["--features", &features]);
    }
    test.extend(args.iter().map(String::as_str));
    cargo(&test)
}

fn run_experiment(mut args: Vec<String>) -> anyhow::Result<()> {
    let dev = take_flag(&mut args, "--dev");
    let features = gpu::cargo_features(&gpu::take_features(&mut args)?);
    let driver = build_stage_binaries(dev, &features)?;
    // Run from the repository root, where the configs' relative paths point.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(Command::new(driver), &args)
}

/// Builds the stage binaries and the driver (release, or as the test suite builds them with
/// `dev`) with the cargo `features`, and returns the driver's path.
fn build_stage_binaries(dev: bool, features: &str) -> anyhow::Result<PathBuf> {
    let mut build = if dev {
        // The binaries exactly as the test suite builds them (each stage package has
        // integration tests, so its binaries are built): `cargo build`, or naming packages,
        // would resolve other features and rebuild nearly every crate again.
        vec!["test", "--no-run"]
    } else {
        let mut build = vec!["build", "--release"];
        for package in gpu::STAGE_PACKAGES {
            build.extend(["-p", package]);
        }
        build
    };
    if !features.is_empty() {
        build.extend(["--features", features]);
    }
    cargo(&build)?;
    let dir = if dev { "debug" } else { "release" };
    Ok(target_dir().join(dir).join("qa-experiment"))
}

fn cuda_check() -> anyhow::Result<()> {
    let mut command = cargo_command();
    command.env("DOCS_RS", "1");
    run(
        command,
        &[
            "clippy",
            "--locked",
            "-p",
            "t5-lora",
            "--lib",
            "--features",
            "cuda,openblas-matmul",
            "--",
            "-D",
            "warnings",
        ],
    )
}

fn slurm_check() -> anyhow::Result<()> {
    // The debug build: the tiny model needs no optimised code of ours, and the test suite has
    // usually built it already.
    cargo(&["build", "-p", "qa-synth-cli", "--bin", "qa-synth"])?;
    let binaries = target_dir().join("debug");
    let binaries = binaries.to_str().context("non-UTF-8 target path")?;
    run(Command::new("bash"), &["xtask/slurm-check.sh", binaries])
}

/// Python packages of the golden scripts; `transformers` 5 rewrites every T5 config to tied
/// embeddings, so an untied FLAN-T5-style head could not be saved with it.
const GOLDEN_PACKAGES: [&str; 6] = [
    "torch",
    "transformers<5",
    "peft",
    "safetensors",
    "tokenizers",
    // Newer `datasets` pulls huggingface_hub 1.x, which transformers<5 refuses.
    "datasets<4",
];

/// Runs `command <args>` in the repository root and fails if it fails.
fn run(mut command: Command, args: &[&str]) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = command
        .args(args)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The python of `.venv`, which is created with [`GOLDEN_PACKAGES`] when absent.
fn ensure_venv() -> anyhow::Result<PathBuf> {
    let python = venv_python();
    if !python.is_file() {
        run(Command::new("python3"), &["-m", "venv", ".venv"])?;
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend(GOLDEN_PACKAGES);
        run(Command::new(&python), &args)?;
    }
    Ok(python)
}

fn export_check(run_dir: &Path) -> anyhow::Result<()> {
    let python = ensure_venv()?;
    let run_dir = run_dir.to_str().context("non-UTF-8 run directory")?;
    run(
        Command::new(python),
        &["xtask/golden/check_export.py", "--run-dir", run_dir],
    )
}

fn golden() -> anyhow::Result<()> {
    let python = ensure_venv()?;
    run(
        Command::new(&python),
        &["xtask/golden/squad_metrics_reference.py"],
    )?;
    run(Command::new(&python), &["xtask/golden/t5_golden.py"])?;
    // The other direction of adapter compatibility: an adapter written by t5-lora must load in
    // PEFT and reproduce t5-lora's logits.
    let export = project_root().join("target/peft-export");
    let export = export.to_str().context("non-UTF-8 target path")?;
    cargo(&[
        "run",
        "--quiet",
        "-p",
        "t5-lora",
        "--example",
        "export_adapter",
        "--",
        export,
    ])?;
    run(
        Command::new(&python),
        &["xtask/golden/t5_golden.py", "--verify-adapter", export],
    )
}

//! t5-lora's kernel tests on each code path a user's CPU can take (`cargo xtask cpu-paths`).
//!
//! gemm (burn-flex's matrix products) and pulp (the vector dispatch of our kernels) choose their
//! code from the CPU at run time, and neither has a setting to choose another: gemm-common's
//! `init_gemm_fn` takes its AVX-512 kernels where CPUID reports `avx512f`, else its FMA ones
//! where it reports `fma`, else its scalar ones, and pulp's `Arch::new` picks V4, V3 or
//! scalar the same way. OpenBLAS also reads CPUID, but takes `OPENBLAS_CORETYPE` instead when
//! it is set. So the kernel tests, which compare our kernels with Burn's composed operations
//! and OpenBLAS's products with gemm's within their rounding bounds, run once per path: the
//! CPU's own in `cargo test` (AVX-512 where this CPU has it), and here under QEMU's user-mode
//! emulator as a Haswell (AVX2 and FMA, on any host) and as a Nehalem (SSE4.2 alone: the
//! baseline kernels), or, on a build with t5-lora's `openblas-matmul`, with OpenBLAS's kernels
//! for several core types. QEMU's emulator has no AVX-512, so that path runs only where the CPU
//! has it.

use std::fmt;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::artifacts::{TestTarget, test_executable};
use crate::run;

/// The test filter: every test of t5-lora's `kernels` module.
const FILTER: &str = "kernels::";

/// QEMU's user-mode emulator for x86-64 (Debian: qemu-user).
const QEMU: &str = "qemu-x86_64";

/// The CPU models QEMU emulates, with the path they make gemm and pulp take.
const EMULATED: [(&str, VectorPath); 2] = [
    ("Haswell", VectorPath::Avx2),
    ("Nehalem", VectorPath::Baseline),
];

/// OpenBLAS's core types to force, each with its own kernels and blocking: AVX2 with FMA
/// (Intel's and AMD's), AVX without FMA, and SSE3. SkylakeX (AVX-512) is added where the CPU
/// can run it.
const CORE_TYPES: [&str; 4] = ["Haswell", "Zen", "Sandybridge", "Prescott"];

/// Whose kernels the runs choose among.
#[derive(Clone, Copy, Debug)]
pub enum Paths {
    /// gemm's and pulp's, as the CPUs QEMU emulates make them choose; with `require`, a missing
    /// QEMU fails the command instead of leaving those paths out.
    Emulated { require: bool },
    /// OpenBLAS's, one run per forced core type (a build with t5-lora's `openblas-matmul`).
    OpenBlasCores,
}

/// The widest of gemm's and pulp's kernels a CPU takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VectorPath {
    Avx512,
    Avx2,
    Baseline,
}

impl VectorPath {
    /// The path this CPU takes.
    fn native() -> Self {
        if has_avx512() {
            Self::Avx512
        } else if has_fma() {
            Self::Avx2
        } else {
            Self::Baseline
        }
    }
}

impl fmt::Display for VectorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2 => "AVX2 and FMA",
            Self::Baseline => "baseline, no FMA",
        })
    }
}

/// One run of the tests: its name, and the command that runs them.
struct PathRun {
    name: String,
    command: Command,
}

/// Runs t5-lora's kernel tests on the `paths` this CPU does not take by itself (its own path is
/// the one `cargo test` runs): `features` are the cargo features of the build, the same as the
/// test run before, so that nothing is compiled again.
pub fn cpu_paths(features: &str, paths: Paths) -> anyhow::Result<()> {
    let mut args = vec!["--lib"];
    if !features.is_empty() {
        args.extend(["--features", features]);
    }
    let binary = test_executable(
        &args,
        &TestTarget {
            package: "t5-lora",
            kind: "lib",
            target: "t5_lora",
        },
    )?;
    let runs = match paths {
        Paths::OpenBlasCores => core_type_runs(&binary),
        Paths::Emulated { require } => emulated_runs(&binary, require)?,
    };
    let mut times = Vec::new();
    for PathRun { name, command } in runs {
        println!("cpu-paths: t5-lora's kernel tests, {name}");
        let start = Instant::now();
        run(command, &[]).with_context(|| format!("the kernel tests, {name}"))?;
        times.push((name, start.elapsed().as_secs_f64()));
    }
    println!("cpu-paths: every path passed");
    for (name, seconds) in times {
        println!("  {name:<60} {seconds:>7.1} s");
    }
    Ok(())
}

/// The runs with OpenBLAS's core types forced.
fn core_type_runs(binary: &std::path::Path) -> Vec<PathRun> {
    let mut cores = CORE_TYPES.to_vec();
    if has_avx512() {
        cores.push("SkylakeX");
    }
    cores
        .into_iter()
        .map(|core| {
            let mut command = Command::new(binary);
            // OpenBLAS then says which core it took, so that a name it ignored shows.
            command
                .arg(FILTER)
                .env("OPENBLAS_CORETYPE", core)
                .env("OPENBLAS_VERBOSE", "2");
            PathRun {
                name: format!("OPENBLAS_CORETYPE={core}"),
                command,
            }
        })
        .collect()
}

/// The runs under QEMU as each CPU of [`EMULATED`] whose path is not this CPU's own.
fn emulated_runs(binary: &std::path::Path, require: bool) -> anyhow::Result<Vec<PathRun>> {
    if !cfg!(target_arch = "x86_64") {
        println!("cpu-paths: not an x86-64 machine, so only the native path (cargo test's) ran");
        return Ok(Vec::new());
    }
    if Command::new(QEMU).arg("-version").output().is_err() {
        let message = format!(
            "cpu-paths: no {QEMU} here (Debian: qemu-user), so the AVX2 and baseline paths did \
             not run"
        );
        if require {
            bail!("{message}");
        }
        println!("{message}");
        return Ok(Vec::new());
    }
    let native = VectorPath::native();
    let mut runs = Vec::new();
    for (cpu, path) in EMULATED {
        if path == native {
            println!("cpu-paths: {cpu} ({path}) is this CPU's own path, which cargo test runs");
            continue;
        }
        let mut command = Command::new(QEMU);
        command.args(["-cpu", cpu]).arg(binary).arg(FILTER);
        runs.push(PathRun {
            name: format!("{QEMU} -cpu {cpu} ({path})"),
            command,
        });
    }
    Ok(runs)
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn has_fma() -> bool {
    false
}

//! t5-lora's kernel tests on each code path a user's CPU can take (`cargo xtask cpu-paths`).
//!
//! gemm (burn-flex's matrix products) and pulp (the vector dispatch of our kernels) choose their
//! code from the CPU at run time, and neither has a setting to choose another: gemm-common's
//! `init_gemm_fn` takes its AVX-512 kernels where CPUID reports `avx512f`, else its FMA ones
//! where it reports `fma`, else its scalar ones, and pulp's `Arch::new` picks V4, V3 or
//! scalar the same way. OpenBLAS also reads CPUID, but takes `OPENBLAS_CORETYPE` instead when
//! it is set. So the kernel tests, which compare our kernels with Burn's composed operations
//! and OpenBLAS's products with gemm's within their rounding bounds, run once per path:
//! natively (AVX-512 where this CPU has it), under QEMU's user-mode emulator as a Haswell
//! (AVX2 and FMA, on any host) and as a Nehalem (SSE4.2 alone: the baseline kernels), and, on a
//! build with t5-lora's `openblas-matmul`, with OpenBLAS's kernels for several core types
//! instead. QEMU's emulator has no AVX-512, so that path runs only where the CPU has it.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::artifacts::{TestTarget, test_executable};
use crate::run;

/// The test filter: every test of t5-lora's `kernels` module.
const FILTER: &str = "kernels::";

/// QEMU's user-mode emulator for x86-64 (Debian: qemu-user).
const QEMU: &str = "qemu-x86_64";

/// The CPU models QEMU emulates, with what they make gemm and pulp choose.
const EMULATED: [(&str, &str); 2] = [("Haswell", AVX2), ("Nehalem", BASELINE)];

/// The widest of gemm's and pulp's paths a CPU takes, by name.
const AVX512: &str = "AVX-512";
const AVX2: &str = "AVX2 and FMA";
const BASELINE: &str = "baseline, no FMA";

/// OpenBLAS's core types to force, each with its own kernels and blocking: AVX2 with FMA
/// (Intel's and AMD's), AVX without FMA, and SSE3. SkylakeX (AVX-512) is added where the CPU
/// can run it.
const CORE_TYPES: [&str; 4] = ["Haswell", "Zen", "Sandybridge", "Prescott"];

/// One run of the tests: its name, and the command that runs them.
struct PathRun {
    name: String,
    command: Command,
}

/// Runs t5-lora's kernel tests natively and then on the other paths: `features` are the cargo
/// features of the build (the same as the test run before, so nothing is compiled again);
/// `openblas`, that build routes the projections through OpenBLAS, whose core types are then
/// the other paths; else gemm's and pulp's under QEMU, which is then required with `require`.
pub fn cpu_paths(features: &str, openblas: bool, require: bool) -> anyhow::Result<()> {
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
    let mut runs = Vec::new();
    let native = |name: String| {
        let mut command = Command::new(&binary);
        command.arg(FILTER);
        PathRun { name, command }
    };
    runs.push(native(format!("native ({})", native_vector_width())));
    if openblas {
        let mut cores = CORE_TYPES.to_vec();
        if has_avx512() {
            cores.push("SkylakeX");
        }
        for core in cores {
            let mut run = native(format!("OPENBLAS_CORETYPE={core}"));
            // OpenBLAS then says which core it took, so that a name it ignored shows.
            run.command
                .env("OPENBLAS_CORETYPE", core)
                .env("OPENBLAS_VERBOSE", "2");
            runs.push(run);
        }
    } else if !cfg!(target_arch = "x86_64") {
        println!("cpu-paths: not an x86-64 machine, so only the native path ran");
    } else if Command::new(QEMU).arg("-version").output().is_ok() {
        for (cpu, what) in EMULATED {
            if what == native_vector_width() {
                println!("cpu-paths: {cpu} ({what}) is this CPU's own path, which ran natively");
                continue;
            }
            let mut command = Command::new(QEMU);
            command.args(["-cpu", cpu]).arg(&binary).arg(FILTER);
            runs.push(PathRun {
                name: format!("{QEMU} -cpu {cpu} ({what})"),
                command,
            });
        }
    } else {
        let message = format!(
            "cpu-paths: no {QEMU} here (Debian: qemu-user), so the AVX2 and baseline paths did \
             not run"
        );
        if require {
            bail!("{message}");
        }
        println!("{message}");
    }
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

/// The widest vector instructions this CPU offers gemm and pulp.
fn native_vector_width() -> &'static str {
    if has_avx512() {
        AVX512
    } else if has_fma() {
        AVX2
    } else {
        BASELINE
    }
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

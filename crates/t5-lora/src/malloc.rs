//! glibc malloc's settings for this crate's tensor work, which a program takes by restarting
//! itself with them at start-up (the model's stage binaries, `qa-train`, `qa-eval`, `qa-synth`
//! and `qa-contaminate`, and the benchmarks do).

/// glibc malloc's settings for tensor work (`GLIBC_TUNABLES`): no block from its own `mmap`
/// (`mmap_max=0`) and no memory handed back (`trim_threshold`, 64 GiB), with the heap grown
/// 256 MiB at a time (`top_pad`). By default every block above 32 MiB (an attention score
/// tensor, a feed-forward activation of a batch) is mapped on allocation and unmapped on free,
/// so the next one is faulted in and zeroed by the kernel page by page; with these a freed
/// activation's pages serve the next. docs/performance.md has the measurement (the LoRA step
/// 10% faster, the same peak memory).
pub const MALLOC_TUNABLES: &str = concat!(
    "glibc.malloc.mmap_max=0:",
    "glibc.malloc.trim_threshold=68719476736:",
    "glibc.malloc.top_pad=268435456",
);

/// On Linux with glibc, runs this program again in its place (`exec`, the same arguments) with
/// [`MALLOC_TUNABLES`] in `GLIBC_TUNABLES`, which glibc reads only at start-up. Returns at once
/// where `GLIBC_TUNABLES` is already set (by that run, or by the user, whose settings stand) and
/// on other systems; if the exec fails, says so and returns, the program running as it is.
pub fn with_malloc_tunables() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(&program);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        let error = command
            .args(args)
            .env("GLIBC_TUNABLES", MALLOC_TUNABLES)
            .exec();
        eprintln!(
            "note: running without glibc's malloc settings for tensor work: could not restart {} \
             with GLIBC_TUNABLES set: {error}",
            program.display()
        );
    }
}

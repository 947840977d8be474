//! What every stage binary does around its work: logging set-up and error reporting.
//! Enabled by the `cli` feature, so that libraries never pull in a log subscriber.

use std::fmt::Display;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Sets up `tracing` logs on stderr (level from `RUST_LOG`, `info` by default; colours only on a
/// terminal), runs `body`, and turns its result into the exit code, printing an error with its
/// whole chain of causes (`{:#}`) as `program: error: …`.
pub fn run_main<E: Display>(program: &str, body: impl FnOnce() -> Result<(), E>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

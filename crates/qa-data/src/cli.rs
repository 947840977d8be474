//! What every stage binary does around its work: the `--config` flag, logging set-up and error
//! reporting. Enabled by the `cli` feature, so that libraries never pull in a log subscriber
//! or an argument parser.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::config::{CONFIG_FLAG, Section};
use crate::error::Result;
use crate::plan::{PLAN_FLAG, PLAN_HELP, Planning};

/// The config files of a stage binary (`--config`, repeated), flattened into its arguments.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigArgs {
    /// YAML config file; repeat to layer several (later files win).
    #[arg(long = CONFIG_FLAG, value_name = "FILE")]
    pub configs: Vec<PathBuf>,
}

/// What a stage binary takes besides its own files: the config files, `--plan`, and `O`, the
/// flags that override single keys of its section (a `Serialize` clap struct whose unset
/// fields override nothing).
#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs<O: clap::Args> {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArgs,
    #[arg(long = PLAN_FLAG, value_name = "DIR", help = PLAN_HELP)]
    #[allow(missing_docs)]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub overrides: O,
}

impl<O: clap::Args + Serialize> StageArgs<O> {
    /// Section `S` from the files, the `QA_` variables and the flags.
    pub fn load<S: Section>(&self) -> Result<S> {
        self.config.load_with(&self.overrides)
    }

    /// With `--plan`: the planning directory, opened.
    pub fn planning(&self) -> Result<Option<Planning>> {
        self.plan.as_deref().map(Planning::open).transpose()
    }
}

impl ConfigArgs {
    /// Section `S` from these files and the `QA_` variables.
    pub fn load<S: Section>(&self) -> Result<S> {
        S::load(&self.configs, &())
    }

    /// Section `S`, with the flags in `overrides` over the files and variables.
    pub fn load_with<S: Section, O: Serialize>(&self, overrides: &O) -> Result<S> {
        S::load(&self.configs, overrides)
    }
}

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

//! What every stage binary does around its work: the `--config` and `--plan` flags, logging
//! set-up and error reporting. Enabled by the `cli` feature, so that
//! libraries never pull in a log subscriber.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use qa_data::settings::Section;

use crate::commands::{ConfigArgs, StageCommand};
use crate::error::Result;
use crate::plan::{PLAN_FLAG, PLAN_HELP, Planning};
use crate::shard::{Shard, ShardSpec};

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

    /// Section `S` as [`load`](Self::load) gives it, with the override flags of the stage's
    /// `command` (the fields it serialises) besides the binary's own.
    pub fn load_with<S: Section>(&self, command: &impl StageCommand) -> Result<S> {
        #[derive(Serialize)]
        struct Flags<'a, C, O> {
            #[serde(flatten)]
            command: &'a C,
            #[serde(flatten)]
            overrides: &'a O,
        }
        self.config.load_with(&Flags {
            command,
            overrides: &self.overrides,
        })
    }

    /// With `--plan`: the planning directory, opened.
    pub fn planning(&self) -> Result<Option<Planning>> {
        self.plan.as_deref().map(Planning::open).transpose()
    }
}

/// Which part of a sharded run this process does, as the binaries that shard take it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ShardArgs {
    /// Do part i of n (the records whose id hashes to i; see qa_stage::shard), or `auto`: the
    /// part a Slurm array task or a Kubernetes Indexed Job pod is given. Join the parts with
    /// `merge`.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<ShardSpec>,
    /// The number of parts for `--shard auto`: needed under Kubernetes and for a Slurm task
    /// resubmitted alone; without it, a Slurm array must be exactly 0-(n-1).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
}

impl ShardArgs {
    /// The part: the whole run without `--shard`, else the one asked for or the scheduler's.
    pub fn resolve(&self) -> std::result::Result<Shard, String> {
        ShardSpec::resolve(self.shard, self.shard_count)
    }
}

/// Sets up `tracing` logs on stderr (level from `RUST_LOG`, `info` by default; colours only on
/// a terminal), runs `body`, and turns its result into the exit code, printing an error with
/// its whole chain of causes (`{:#}`) as `program: error: …`. A binary that does tensor work
/// calls `t5_lora::with_malloc_tunables` before it; the glibc settings it runs with are logged
/// at debug level.
pub fn run_main<E: Display>(program: &str, body: impl FnOnce() -> Result<(), E>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let tunables = std::env::var_os("GLIBC_TUNABLES");
    tracing::debug!("GLIBC_TUNABLES: {tunables:?}");
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use qa_data::settings::section_names;

    use super::*;
    use crate::commands::PrepareCommand;

    /// The prepare stage's section, as far as this test needs it: a key its command sets
    /// (`out_dir`), and one its binary's own flags set (`train_size`).
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct PrepareConfig {
        out_dir: PathBuf,
        train_size: usize,
    }

    impl Default for PrepareConfig {
        fn default() -> Self {
            PrepareConfig {
                out_dir: PathBuf::from("data/processed"),
                train_size: 20_000,
            }
        }
    }

    impl Section for PrepareConfig {
        const NAME: &'static str = section_names::PREPARE;
    }

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        command: PrepareCommand,
        #[command(flatten)]
        stage: StageArgs<Overrides>,
    }

    #[derive(clap::Args, Serialize)]
    struct Overrides {
        #[arg(long)]
        train_size: Option<usize>,
    }

    #[test]
    fn the_command_and_the_binary_override_keys_of_one_section() {
        let args = Args::parse_from(["qa-prepare", "--out-dir", "elsewhere", "--train-size", "5"]);
        let config: PrepareConfig = args.stage.load_with(&args.command).expect("the section");
        assert_eq!(
            (config.out_dir, config.train_size),
            (PathBuf::from("elsewhere"), 5)
        );
        let args = Args::parse_from(["qa-prepare"]);
        let config: PrepareConfig = args.stage.load_with(&args.command).expect("the section");
        assert_eq!(config, PrepareConfig::default());
    }
}

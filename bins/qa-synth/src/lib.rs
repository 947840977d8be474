//! What the two generation binaries, `qa-synth` and `qa-contaminate`, share: their `run` and
//! `merge` arguments, config loading and the progress bar.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use qa_data::plan::{PlannedInput, Planning};
use qa_data::shard::ShardSpec;
use qa_synth::run::{Progress, RunFiles};
use qa_synth::{Generator, GeneratorConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The subcommands of a generation stage.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run (or resume) the stage over the records in --input, or one shard of it.
    Run(RunArgs),
    /// Join the output directories of sharded runs, checking that no input record is missing.
    Merge(MergeArgs),
}

/// The generator `config` chooses: the local model loaded, or the endpoint's client.
pub fn load_generator(config: &GeneratorConfig) -> anyhow::Result<Box<dyn Generator>> {
    config
        .load()
        .with_context(|| format!("loading {}", config.model()))
}

/// Arguments of `run`: one run, or one shard of it.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Human records (JSONL, e.g. human_train.jsonl).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Directory for the ledger and outputs.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Continue the run in --out-dir after its ledger's last complete line.
    #[arg(long)]
    pub resume: bool,
    /// Do part i of n (the records whose id hashes to i; see qa_data::shard), or `auto`: the
    /// part a Slurm array task or a Kubernetes Indexed Job pod is given. Join the parts with
    /// `merge`.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<ShardSpec>,
    /// The number of parts for `--shard auto`: needed under Kubernetes and for a Slurm task
    /// resubmitted alone; without it, a Slurm array must be exactly 0-(n-1).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// YAML config file; repeat to layer several (later files win).
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    #[arg(long = qa_data::plan::PLAN_FLAG, value_name = "DIR", help = qa_data::plan::PLAN_HELP)]
    pub plan: Option<PathBuf>,
}

impl RunArgs {
    /// With `--plan`: the planning directory, and this run's input as it would find it.
    pub fn planning(&self) -> anyhow::Result<Option<(Planning, PlannedInput)>> {
        let Some(dir) = &self.plan else {
            return Ok(None);
        };
        let planning = Planning::open(dir)?;
        let input = planning.input(&self.input)?;
        Ok(Some((planning, input)))
    }

    /// The run's files and part.
    pub fn files(&self) -> anyhow::Result<RunFiles> {
        let shard = ShardSpec::resolve(self.shard, self.shard_count).map_err(anyhow::Error::msg)?;
        Ok(RunFiles {
            input: self.input.clone(),
            shard,
            out_dir: self.out_dir.clone(),
            resume: self.resume,
        })
    }

    /// Config section `section`: the defaults, then the --config files, then `QA_<SECTION>__*`
    /// variables.
    pub fn section<T: Serialize + DeserializeOwned + Default>(
        &self,
        section: &str,
    ) -> anyhow::Result<T> {
        Ok(qa_data::config::load_section(
            section,
            &T::default(),
            &self.configs,
            &(),
        )?)
    }
}

/// Arguments of `merge`: the parts of a sharded run.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The input file the parts were made from.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The parts' output directories.
    #[arg(long = "part", value_name = "DIR", required = true)]
    pub parts: Vec<PathBuf>,
    /// Directory for the merged outputs.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Runs `work` with a progress bar over input records: counts kept and rejected, the rate of
/// records per second, and the ETA.
pub fn with_progress<T>(
    what: &str,
    work: impl FnOnce(&mut dyn FnMut(Progress)) -> T,
) -> anyhow::Result<T> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} {prefix}, {msg}, {per_sec}, ETA {eta}",
        )
        .context("progress bar template")?,
    );
    bar.set_prefix(what.to_string());
    let result = work(&mut |progress: Progress| {
        bar.set_length(progress.total as u64);
        bar.set_position(progress.done as u64);
        bar.set_message(format!(
            "{} kept, {} rejected",
            progress.kept, progress.rejected
        ));
    });
    bar.finish_and_clear();
    Ok(result)
}

//! What the two generation binaries, `qa-synth` and `qa-contaminate`, share: their `run` and
//! `merge` arguments and what they do with them ([`run_stage`]), and the progress bar.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use qa_stage::cli::ShardArgs;
use qa_stage::commands::{ConfigArgs, GenerationCommand, subcommands};
use qa_stage::plan::{PlannedInput, Planning, StagePlan};
use qa_synth::run::{Progress, RunFiles};
use qa_synth::{Generator, GeneratorConfig};

/// A generation stage's run: its settings, files and generator, and what sees its progress.
pub type RunFn<C, S> =
    fn(&C, &RunFiles, &dyn Generator, &mut dyn FnMut(Progress)) -> qa_synth::Result<S>;

/// What a generation binary runs: its stage's settings (`C`), functions and summary (`S`).
pub struct GenerationStage<C, S> {
    /// What the progress bar counts (`records`, `seeds`).
    pub unit: &'static str,
    /// What a run does, for its errors (`contaminating`).
    pub doing: &'static str,
    /// The settings from the config files and the `QA_` variables.
    pub load: fn(&ConfigArgs) -> qa_stage::Result<C>,
    /// The generator the settings choose.
    pub generator: fn(&C) -> &GeneratorConfig,
    /// The work and time of a run over an input into a directory (`--plan`).
    pub plan: fn(&C, &PlannedInput, &Path, &Planning) -> qa_synth::Result<StagePlan>,
    /// Runs (or resumes) the stage on its files with a generator.
    pub run: RunFn<C, S>,
    /// Joins the outputs of a sharded run: the parts, the input, the output directory.
    pub merge: fn(&[PathBuf], &Path, &Path) -> qa_synth::Result<S>,
    /// Prints what a run or merge did.
    pub report: fn(&S),
}

/// Runs `command` of `stage`: a run (or its plan) with a progress bar, or a merge; then its
/// report.
pub fn run_stage<C, S>(stage: GenerationStage<C, S>, command: Command) -> anyhow::Result<()> {
    let summary = match command {
        Command::Run(args) => {
            let config = (stage.load)(&args.config)?;
            if let Some((planning, input)) = args.planning()? {
                let out_dir = &args.command.out_dir;
                return Ok((stage.plan)(&config, &input, out_dir, &planning)?.print()?);
            }
            let generator = load_generator((stage.generator)(&config))?;
            let files = args.files()?;
            with_progress(stage.unit, |on_progress| {
                (stage.run)(&config, &files, generator.as_ref(), on_progress)
            })?
            .with_context(|| format!("{} into {}", stage.doing, files.out_dir.display()))?
        }
        Command::Merge(args) => (stage.merge)(&args.parts, &args.input, &args.out_dir)
            .with_context(|| format!("merging into {}", args.out_dir.display()))?,
    };
    (stage.report)(&summary);
    Ok(())
}

/// The subcommands of a generation stage.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run (or resume) the stage over the records in --input, or one shard of it.
    #[command(name = subcommands::RUN)]
    Run(RunArgs),
    /// Join the output directories of sharded runs, checking that no input record is missing.
    Merge(MergePartsArgs),
}

/// The generator `config` chooses: the local model loaded, or the endpoint's client.
fn load_generator(config: &GeneratorConfig) -> anyhow::Result<Box<dyn Generator>> {
    config
        .load()
        .with_context(|| format!("loading {}", config.model()))
}

/// Arguments of `run`: one run, or one shard of it.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub command: GenerationCommand,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long = qa_stage::plan::PLAN_FLAG, value_name = "DIR", help = qa_stage::plan::PLAN_HELP)]
    pub plan: Option<PathBuf>,
}

impl RunArgs {
    /// With `--plan`: the planning directory, and this run's input as it would find it.
    pub fn planning(&self) -> anyhow::Result<Option<(Planning, PlannedInput)>> {
        let Some(dir) = &self.plan else {
            return Ok(None);
        };
        let planning = Planning::open(dir)?;
        let input = planning.input(&self.command.input)?;
        Ok(Some((planning, input)))
    }

    /// The run's files and part.
    pub fn files(&self) -> anyhow::Result<RunFiles> {
        let shard = self.shard.resolve().map_err(anyhow::Error::msg)?;
        let command = &self.command;
        Ok(RunFiles {
            input: command.input.clone(),
            shard,
            out_dir: command.out_dir.clone(),
            resume: command.resume,
        })
    }
}

/// Arguments of `merge`: the output directories of a sharded run's parts.
#[derive(clap::Args)]
pub struct MergePartsArgs {
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
fn with_progress<T>(
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

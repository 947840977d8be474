#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use qa_data::files::{read_json, sha256_file, write_json_atomic};
use qa_data::settings::{Invalid, Section, check};
use qa_squad::prepare::PrepareConfig;
use qa_stage::commands::{ConfigArgs, PrepareCommand, StageCommand};
use qa_stage::layout::RunLayout;
use serde::{Deserialize, Serialize};

mod dry_run;
mod error;
mod graph;
mod held;
mod run_place;

use dry_run::Estimates;
pub use error::{Error, Result};
pub use graph::Group;
use graph::{Stage, path_arg, stage_graph};

/// The `experiment:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Where everything goes.
    pub run_dir: PathBuf,
    /// Training seeds: each model is trained once per seed.
    pub train_seeds: Vec<u64>,
}

impl Section for ExperimentConfig {
    const NAME: &'static str = qa_data::settings::section_names::EXPERIMENT;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::non_empty("train_seeds", &self.train_seeds)?;
        for (i, seed) in self.train_seeds.iter().enumerate() {
            if self.train_seeds[..i].contains(seed) {
                return Err(Invalid::new(
                    "train_seeds",
                    format!("lists {seed} twice: each seed trains each model once"),
                ));
            }
        }
        Ok(())
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            run_dir: PathBuf::from("runs/experiment"),
            train_seeds: vec![42],
        }
    }
}

/// What `stages/<stage>.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StageRecord {
    key: String,
    outputs: BTreeMap<String, String>,
    /// The stage's config sections as it ran, run-place settings included.
    #[serde(default)]
    settings: BTreeMap<String, serde_json::Value>,
    /// Wall time of its binary's last run, in seconds (beside a dry run's estimate).
    #[serde(default)]
    seconds: f64,
}

/// What to run, and where the stage binaries are.
pub struct Options {
    /// The config files, layered.
    pub configs: Vec<PathBuf>,
    /// Only this group.
    pub only: Option<Group>,
    /// This group and all after it, re-run even if up to date.
    pub from: Option<Group>,
    /// Print the plan, with each stage's work and estimated time, and stop.
    pub dry_run: bool,
    /// Directory of the stage binaries.
    pub bin_dir: PathBuf,
}

/// A config section as the layered files and `QA_` variables resolve it (absent: null).
fn section(name: &str, configs: &[PathBuf]) -> Result<serde_json::Value> {
    Ok(qa_stage::config::load_section(
        name,
        &serde_json::Value::Null,
        configs,
        &(),
    )?)
}

/// The stage's key: its inputs', sections' and binary's digests (`sections`: each config
/// section as resolved; `programs`: each binary's digest).
fn stage_key(
    stage: &Stage,
    sections: &BTreeMap<&str, serde_json::Value>,
    programs: &BTreeMap<&str, String>,
    config_args: &[String],
) -> Result<Option<String>> {
    let mut lines = Vec::new();
    for input in &stage.inputs {
        if !input.is_file() {
            return Ok(None);
        }
        lines.push(format!("input {} {}", input.display(), sha256_file(input)?));
    }
    for name in &stage.sections {
        let deciding = run_place::section_without_run_place(name, &sections[name]);
        lines.push(format!("section {name} {deciding}"));
    }
    let program = programs.get(stage.program).map_or("", String::as_str);
    lines.push(format!("program {} {program}", stage.program));
    // Not the config files' paths: their sections, resolved, are above, so a file layered on
    // top that changes nothing this stage reads leaves it up to date.
    let args = stage.args.strip_suffix(config_args).unwrap_or(&stage.args);
    lines.push(format!("args {}", args.join(" ")));
    let text = lines.join("\n") + "\n";
    Ok(Some(qa_data::files::sha256_bytes(text.as_bytes())))
}

/// Where a stage's record and start marker are.
fn record_paths(run_dir: &Path, stage: &Stage) -> (PathBuf, PathBuf) {
    let dir = RunLayout::new(run_dir).stages();
    (
        dir.join(format!("{}.json", stage.name)),
        dir.join(format!("{}.started.json", stage.name)),
    )
}

/// Whether the outputs recorded in `record` are still there, unchanged.
fn outputs_intact(record: &StageRecord) -> bool {
    record.outputs.iter().all(|(path, sha)| {
        sha256_file(Path::new(path))
            .map(|actual| &actual == sha)
            .unwrap_or(false)
    })
}

/// What a stage will do.
#[derive(Debug, PartialEq)]
enum Verdict {
    UpToDate,
    Run(&'static str),
    Resume,
}

fn verdict(stage: &Stage, key: Option<&str>, run_dir: &Path, forced: bool) -> Result<Verdict> {
    let (record_path, started_path) = record_paths(run_dir, stage);
    let Some(key) = key else {
        return Ok(Verdict::Run("after the stages it reads from"));
    };
    if started_path.is_file() {
        let started: String = read_json(&started_path)?;
        if started == key && !forced {
            return Ok(Verdict::Resume);
        }
    }
    if forced {
        return Ok(Verdict::Run("forced by --from"));
    }
    if !record_path.is_file() {
        return Ok(Verdict::Run("never run"));
    }
    let record: StageRecord = read_json(&record_path)?;
    if record.key != key {
        return Ok(Verdict::Run("its inputs, settings or binary changed"));
    }
    if !outputs_intact(&record) {
        return Ok(Verdict::Run("an output is missing or was changed"));
    }
    Ok(Verdict::UpToDate)
}

/// What a stage's key is made of besides its inputs: each config section as the files and `QA_`
/// variables resolve it, each binary's digest, and the config files' arguments (left out of
/// the key: the sections they resolve to are in it).
struct Digests {
    sections: BTreeMap<&'static str, serde_json::Value>,
    programs: BTreeMap<&'static str, String>,
    config_args: Vec<String>,
}

impl Digests {
    /// Resolves each section and hashes each binary that `stages` name, once each (several
    /// stages run the same binary).
    fn of(stages: &[Stage], configs: &ConfigArgs, bin_dir: &Path) -> Result<Self> {
        let mut sections = BTreeMap::new();
        let mut programs = BTreeMap::new();
        for stage in stages {
            for name in &stage.sections {
                if !sections.contains_key(name) {
                    sections.insert(*name, section(name, &configs.configs)?);
                }
            }
            if !programs.contains_key(stage.program) {
                let program = bin_dir.join(stage.program);
                if !program.is_file() {
                    return Err(Error::MissingBinary { program });
                }
                programs.insert(stage.program, sha256_file(program)?);
            }
        }
        Ok(Digests {
            sections,
            programs,
            config_args: configs.args(),
        })
    }

    /// `stage`'s key, or `None` while an input is missing.
    fn key(&self, stage: &Stage) -> Result<Option<String>> {
        stage_key(stage, &self.sections, &self.programs, &self.config_args)
    }

    /// `stage`'s config sections as it runs, run-place settings included (for its record).
    fn settings(&self, stage: &Stage) -> BTreeMap<String, serde_json::Value> {
        stage
            .sections
            .iter()
            .map(|name| (name.to_string(), self.sections[name].clone()))
            .collect()
    }
}

/// Runs the experiment as `options` say, printing the plan (in a dry run) or each stage's verdict
/// and command on stdout; the stage binaries inherit stdout and stderr: the stages of the
/// groups chosen, their binaries and sections hashed, the SQuAD files fetched where prepare
/// runs, then each stage decided and run (or, in a dry run, estimated).
pub fn run_experiment(options: &Options) -> Result<()> {
    let experiment = qa_stage::config::load::<ExperimentConfig>(&options.configs, &())?;
    let prepare = qa_stage::config::load::<PrepareConfig>(&options.configs, &())?;
    let squad_files = [prepare.train_file, prepare.test_file];
    let configs = ConfigArgs {
        configs: options.configs.clone(),
    };
    let stages = stage_graph(&experiment, &configs, squad_files.clone());
    let digests = Digests::of(&stages, &configs, &options.bin_dir)?;
    let chosen = |group: Group| {
        options.only.is_none_or(|only| only == group)
            && options.from.is_none_or(|from| group >= from)
    };
    if chosen(Group::Prepare) {
        fetch_squad(&squad_files, &configs, options)?;
    }
    let stages: Vec<&Stage> = stages.iter().filter(|stage| chosen(stage.group)).collect();
    let run_dir = &experiment.run_dir;
    if options.dry_run {
        return dry_run(&stages, &digests, run_dir, &options.bin_dir);
    }
    match run_stages(&stages, &digests, options, run_dir)? {
        0 => println!("every stage is up to date"),
        n => println!(
            "ran {n} stage(s); results in {}",
            run_dir.join("results").display()
        ),
    }
    Ok(())
}

/// Fetches the SQuAD files that are not on disk yet (prepare's `--fetch-only`), before anything
/// is hashed that reads them; in a dry run, says it will.
fn fetch_squad(squad_files: &[PathBuf; 2], configs: &ConfigArgs, options: &Options) -> Result<()> {
    let missing: Vec<String> = squad_files
        .iter()
        .filter(|file| !file.is_file())
        .map(|file| file.display().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let prepare = Group::Prepare.name();
    if options.dry_run {
        println!("{prepare:<24} will download {} first", missing.join(", "));
        return Ok(());
    }
    println!("{prepare:<24} fetching {}", missing.join(", "));
    let program = options.bin_dir.join("qa-prepare");
    let fetch = PrepareCommand {
        fetch_only: true,
        out_dir: None,
    };
    let status = Command::new(&program)
        .args(fetch.command_line(configs))
        .status()
        .map_err(|reason| Error::Start {
            program: program.clone(),
            reason,
        })?;
    match status.success() {
        true => Ok(()),
        false => Err(Error::Fetch { status }),
    }
}

/// The dry run: each stage's verdict, and the work and estimated time of each that would run
/// (or would run if a stage before it changes its output), from its binary's `--plan`.
fn dry_run(stages: &[&Stage], digests: &Digests, run_dir: &Path, bin_dir: &Path) -> Result<()> {
    let mut estimates = Estimates::open(run_dir)?;
    // The outputs of stages that will run, and which stage writes each.
    let mut pending: BTreeMap<&Path, &str> = BTreeMap::new();
    for stage in stages {
        let key = digests.key(stage)?;
        let verdict = verdict(stage, key.as_deref(), run_dir, false)?;
        let upstream: Option<&str> = stage
            .inputs
            .iter()
            .find_map(|i| pending.get(i.as_path()).copied());
        if verdict != Verdict::UpToDate || upstream.is_some() {
            pending.extend(
                stage
                    .outputs
                    .iter()
                    .map(|o| (o.as_path(), stage.name.as_str())),
            );
        }
        let conditional = match (&verdict, upstream) {
            (Verdict::UpToDate, Some(upstream)) => {
                println!(
                    "{:<24} will run if {upstream} changes its output",
                    stage.name
                );
                true
            }
            (Verdict::UpToDate, None) => {
                println!("{:<24} up to date", stage.name);
                continue;
            }
            (Verdict::Run(why), _) => {
                println!("{:<24} will run ({why})", stage.name);
                false
            }
            (Verdict::Resume, _) => {
                println!(
                    "{:<24} will resume its interrupted run (estimated as a whole)",
                    stage.name
                );
                false
            }
        };
        estimates.ask(stage, bin_dir, conditional)?;
    }
    estimates.finish()
}

/// Runs each stage that is not up to date (each of `--from`'s and after it, whatever its
/// verdict), in order; returns how many ran.
fn run_stages(
    stages: &[&Stage],
    digests: &Digests,
    options: &Options,
    run_dir: &Path,
) -> Result<usize> {
    let mut ran = 0;
    for stage in stages {
        let key = digests.key(stage)?;
        let forced = options.from.is_some_and(|from| stage.group >= from);
        let verdict = verdict(stage, key.as_deref(), run_dir, forced)?;
        if verdict == Verdict::UpToDate {
            println!("{:<24} up to date", stage.name);
            continue;
        }
        let Some(key) = key else {
            return Err(Error::MissingInput {
                stage: stage.name.clone(),
                missing: stage
                    .inputs
                    .iter()
                    .filter(|i| !i.is_file())
                    .map(|i| i.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let settings = digests.settings(stage);
        run_stage(stage, &key, settings, &verdict, run_dir, &options.bin_dir)?;
        ran += 1;
    }
    Ok(ran)
}

fn run_stage(
    stage: &Stage,
    key: &str,
    settings: BTreeMap<String, serde_json::Value>,
    verdict: &Verdict,
    run_dir: &Path,
    bin_dir: &Path,
) -> Result<()> {
    let (record_path, started_path) = record_paths(run_dir, stage);
    // Killed before it saved anything to continue from: start over.
    let resume = *verdict == Verdict::Resume
        && stage
            .resume
            .as_ref()
            .is_none_or(|resumed| resumed.saved.exists());
    // Starting over: the last finished run's outputs are held aside, not deleted, until this
    // run has at least saved something to continue from (see `held`).
    let held = match resume {
        true => None,
        false => {
            let held = held::Held::set_aside(run_dir, &stage.name, &stage.clear, &started_path)?;
            write_json_atomic(&started_path, &key)?;
            Some(held)
        }
    };
    let args = match &stage.resume {
        Some(resumed) if resume => &resumed.args,
        _ => &stage.args,
    };
    println!(
        "{:<24} {} {}",
        stage.name,
        if resume { "resuming:" } else { "running:" },
        args.join(" ")
    );
    let program = bin_dir.join(stage.program);
    let start = Instant::now();
    let ran = match Command::new(&program).args(args).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(Error::StageFailed {
            stage: stage.name.clone(),
            status,
        }),
        Err(reason) => Err(Error::Start {
            program: program.clone(),
            reason,
        }),
    };
    if let Err(failed) = ran {
        // Failed before saving anything to continue from: the finished outputs come back.
        // With something saved, the next run continues it, as after a kill.
        let saved = stage
            .resume
            .as_ref()
            .is_some_and(|resumed| resumed.saved.exists());
        let Some(held) = held.filter(|_| !saved) else {
            return Err(failed);
        };
        held.restore()?;
        return Err(match failed {
            Error::StageFailed { stage, status } => Error::StageRefused { stage, status },
            other => other,
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    for (from, to) in &stage.publish {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| qa_data::Error::io(dir, e))?;
        }
        let bytes = std::fs::read(from).map_err(|e| qa_data::Error::io(from, e))?;
        qa_data::files::write_bytes_atomic(to, &bytes)?;
    }
    let mut outputs = BTreeMap::new();
    for output in &stage.outputs {
        outputs.insert(path_arg(output), sha256_file(output)?);
    }
    write_json_atomic(
        &record_path,
        &StageRecord {
            key: key.to_string(),
            outputs,
            settings,
            seconds,
        },
    )?;
    std::fs::remove_file(&started_path).map_err(|e| qa_data::Error::io(&started_path, e))?;
    held::discard(run_dir, &stage.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_seeds_must_be_listed_once_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("seeds.yaml");
        for (seeds, refusal) in [
            ("[]", "must list at least one value"),
            ("[1, 2, 1]", "lists 1 twice"),
        ] {
            std::fs::write(&config, format!("experiment: {{train_seeds: {seeds}}}\n"))
                .expect("write");
            let err =
                qa_stage::config::load::<ExperimentConfig>(std::slice::from_ref(&config), &())
                    .expect_err(seeds)
                    .to_string();
            assert!(
                err.contains("`experiment.train_seeds` (from config file ")
                    && err.contains("seeds.yaml) ")
                    && err.contains(refusal),
                "{err}"
            );
        }
    }

    #[test]
    fn a_config_file_layered_on_top_leaves_a_stage_key_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let squad = ["train.json", "dev.json"].map(|name| dir.path().join(name));
        for file in &squad {
            std::fs::write(file, "{}").expect("write");
        }
        let experiment = ExperimentConfig::default();
        let sections = BTreeMap::from([("prepare", serde_json::json!({"train_size": 8}))]);
        let key = |files: &[&str]| {
            let configs = ConfigArgs {
                configs: files.iter().map(PathBuf::from).collect(),
            };
            let stages = stage_graph(&experiment, &configs, squad.clone());
            let prepare = stages
                .iter()
                .find(|s| s.name == "prepare")
                .expect("prepare");
            stage_key(prepare, &sections, &BTreeMap::new(), &configs.args())
                .expect("hashes")
                .expect("inputs exist")
        };
        assert_eq!(key(&["base.yaml"]), key(&["base.yaml", "typo.yaml"]));
        // What the key holds still counts: another section value changes it.
        let before = key(&["base.yaml"]);
        let sections = BTreeMap::from([("prepare", serde_json::json!({"train_size": 9}))]);
        let configs = ConfigArgs {
            configs: vec![PathBuf::from("base.yaml")],
        };
        let stages = stage_graph(&experiment, &configs, squad.clone());
        let after = stage_key(&stages[0], &sections, &BTreeMap::new(), &configs.args())
            .expect("hashes")
            .expect("inputs exist");
        assert_ne!(before, after);
    }
}

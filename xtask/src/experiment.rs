//! `cargo xtask run-experiment`: the stages of the A/B/C experiment in order, each through its
//! own binary, each skipped when its record says it is up to date.
//!
//! A stage is up to date when `<run_dir>/stages/<stage>.json` records the same key (the SHA-256
//! of its inputs, its config sections as resolved from the files and `QA_` variables, and its
//! binary) and its outputs still have the recorded checksums. A stage that was started with
//! the same key but not finished (the run was killed) is continued with the stage's own resume;
//! one started with another key is cleared and run again. Changing an input or a setting
//! therefore re-runs that stage and, through the checksums of its outputs, everything that
//! reads them, and nothing upstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use qa_data::files::{read_json, sha256_file, write_json_atomic};
use qa_data::layout::{MODELS, RunLayout, ZERO_SHOT, model_files, results_files};
use serde::{Deserialize, Serialize};

/// The `experiment:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Where everything goes.
    pub run_dir: PathBuf,
    /// Training seeds: each model is trained once per seed.
    pub train_seeds: Vec<u64>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            run_dir: PathBuf::from("runs/experiment"),
            train_seeds: vec![42],
        }
    }
}

/// The stage groups, in order, as `--only` and `--from` name them.
pub const GROUPS: [&str; 7] = [
    "prepare",
    "contaminate",
    "synthesize",
    "train",
    "predict",
    "score",
    "report",
];

/// One step of the plan.
struct Stage {
    /// `group` or `group-detail` (e.g. `train-a`).
    name: String,
    group: &'static str,
    /// The binary (a file name in the build's directory) and its arguments.
    program: &'static str,
    args: Vec<String>,
    /// The flag that continues an interrupted run, and the file or directory that shows
    /// there is something to continue (without it, the stage starts over).
    resume: Option<(&'static str, PathBuf)>,
    /// Config sections that decide the output.
    sections: Vec<&'static str>,
    /// Files read.
    inputs: Vec<PathBuf>,
    /// Files written (checked and recorded after the run).
    outputs: Vec<PathBuf>,
    /// What the stage leaves behind, removed when it must start over.
    clear: Vec<PathBuf>,
    /// Files copied into the run directory's layout after the run: (from, to).
    publish: Vec<(PathBuf, PathBuf)>,
}

/// What `stages/<stage>.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StageRecord {
    key: String,
    outputs: BTreeMap<String, String>,
}

/// Options of `run-experiment`.
pub struct Options {
    /// The config files, layered.
    pub configs: Vec<PathBuf>,
    /// Only this group.
    pub only: Option<String>,
    /// This group and all after it, re-run even if up to date.
    pub from: Option<String>,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// Directory of the stage binaries.
    pub bin_dir: PathBuf,
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// The plan for `config`: every stage with its command, inputs and outputs.
fn plan(
    experiment: &ExperimentConfig,
    configs: &[PathBuf],
    squad_files: [PathBuf; 2],
) -> Vec<Stage> {
    let run = RunLayout::new(&experiment.run_dir);
    let config_args: Vec<String> = configs
        .iter()
        .flat_map(|c| ["--config".to_string(), path_arg(c)])
        .collect();
    let with_config = |mut args: Vec<String>| {
        args.extend(config_args.iter().cloned());
        args
    };
    let mut stages = vec![Stage {
        name: "prepare".into(),
        group: "prepare",
        program: "qa-prepare",
        args: with_config(vec!["--out-dir".into(), path_arg(&run.processed())]),
        resume: None,
        sections: vec!["prepare"],
        inputs: squad_files.to_vec(),
        outputs: ["train", "val", "test"].map(|s| run.human(s)).to_vec(),
        clear: vec![],
        publish: vec![],
    }];
    for (group, program, section, work, published) in [
        (
            "contaminate",
            "qa-contaminate",
            "contaminate",
            "contaminate",
            ("contaminated.jsonl", run.contaminated_train()),
        ),
        (
            "synthesize",
            "qa-synth",
            "synth",
            "synth",
            ("synthetic.jsonl", run.synthetic_train()),
        ),
    ] {
        let work_dir = run.work(work);
        let mut sections = vec![section];
        if group == "synthesize" {
            sections.push("filters");
        }
        stages.push(Stage {
            name: group.into(),
            group,
            program,
            args: with_config(vec![
                "run".into(),
                "--input".into(),
                path_arg(&run.human("train")),
                "--out-dir".into(),
                path_arg(&work_dir),
            ]),
            resume: Some(("--resume", work_dir.join("ledger.jsonl"))),
            sections,
            inputs: vec![run.human("train")],
            outputs: vec![published.1.clone()],
            publish: vec![(work_dir.join(published.0), published.1)],
            clear: vec![work_dir],
        });
    }
    let several = experiment.train_seeds.len() > 1;
    let mut systems: Vec<(String, PathBuf, Option<PathBuf>)> =
        vec![(ZERO_SHOT.into(), run.zero_shot_dir(), None)];
    let mut train_logs = Vec::new();
    for model in &MODELS {
        let train = run.training_data(model);
        for &seed in &experiment.train_seeds {
            let out = run.model_dir(model, several.then_some(seed));
            let system = match several {
                true => format!("{}@{seed}", model.name),
                false => model.name.to_string(),
            };
            let adapter = out.join(model_files::ADAPTER);
            train_logs.push(out.join(model_files::TRAIN_LOG));
            stages.push(Stage {
                name: format!("train-{}", system.replace('@', "-")),
                group: "train",
                program: "qa-train",
                args: with_config(vec![
                    "--train".into(),
                    path_arg(&train),
                    "--validation".into(),
                    path_arg(&run.human("val")),
                    "--out-dir".into(),
                    path_arg(&out),
                    "--seed".into(),
                    seed.to_string(),
                ]),
                resume: Some(("--resume", out.join(model_files::CHECKPOINT))),
                sections: vec!["train"],
                inputs: vec![train.clone(), run.human("val")],
                outputs: vec![
                    adapter.join("adapter_model.safetensors"),
                    adapter.join("adapter_config.json"),
                    out.join(model_files::TRAIN_LOG),
                ],
                // Not the whole directory: the model's predictions live there too.
                clear: [
                    model_files::ADAPTER,
                    model_files::BEST_ADAPTER,
                    model_files::CHECKPOINT,
                    model_files::TRAIN_LOG,
                ]
                .map(|name| out.join(name))
                .to_vec(),
                publish: vec![],
            });
            systems.push((system, out, Some(adapter)));
        }
    }
    for (system, dir, adapter) in &systems {
        let predictions = dir.join(model_files::PREDICTIONS);
        let mut args = vec![
            "predict".into(),
            "--input".into(),
            path_arg(&run.human("test")),
            "--out".into(),
            path_arg(&predictions),
        ];
        let mut inputs = vec![run.human("test")];
        if let Some(adapter) = adapter {
            args.extend(["--adapter".into(), path_arg(adapter)]);
            inputs.push(adapter.join("adapter_model.safetensors"));
        }
        stages.push(Stage {
            name: format!("predict-{}", system.replace('@', "-")),
            group: "predict",
            program: "qa-eval",
            args: with_config(args),
            // A prediction run continues from its `.partial` file by itself.
            resume: None,
            sections: vec!["predict"],
            inputs,
            outputs: vec![predictions],
            clear: vec![],
            publish: vec![],
        });
    }
    let results = run.results();
    let metrics = results.join(results_files::METRICS);
    let mut args = vec![
        "score".into(),
        "--gold".into(),
        path_arg(&run.human("test")),
    ];
    let mut inputs = vec![run.human("test")];
    for (system, dir, _) in &systems {
        let predictions = dir.join(model_files::PREDICTIONS);
        args.extend([
            "--pred".into(),
            format!("{system}={}", path_arg(&predictions)),
        ]);
        inputs.push(predictions);
    }
    args.extend(["--out-dir".into(), path_arg(&results)]);
    stages.push(Stage {
        name: "score".into(),
        group: "score",
        program: "qa-eval",
        args: with_config(args),
        resume: None,
        sections: vec!["eval"],
        inputs,
        outputs: vec![metrics.clone(), results.join(results_files::PER_QUESTION)],
        clear: vec![],
        publish: vec![],
    });
    // Besides the scores, the report reads the training sets and logs, so it is rebuilt when
    // any of them changes.
    let mut inputs = vec![metrics];
    inputs.extend(MODELS.iter().map(|model| run.training_data(model)));
    inputs.extend(train_logs);
    stages.push(Stage {
        name: "report".into(),
        group: "report",
        program: "qa-report",
        args: with_config(vec!["--run-dir".into(), path_arg(run.root())]),
        resume: None,
        sections: vec!["report"],
        inputs,
        outputs: results_files::REPORT
            .map(|name| results.join(name))
            .to_vec(),
        clear: vec![],
        publish: vec![],
    });
    stages
}

/// A config section as the layered files and `QA_` variables resolve it (absent: null).
fn section(name: &str, configs: &[PathBuf]) -> anyhow::Result<serde_json::Value> {
    Ok(qa_data::config::load_section(
        name,
        &serde_json::Value::Null,
        configs,
        &(),
    )?)
}

/// The stage's key: its inputs', sections' and binary's digests (`programs`: each binary's).
fn stage_key(
    stage: &Stage,
    configs: &[PathBuf],
    programs: &BTreeMap<&str, String>,
) -> anyhow::Result<Option<String>> {
    use std::fmt::Write;
    let mut text = String::new();
    for input in &stage.inputs {
        if !input.is_file() {
            return Ok(None);
        }
        writeln!(text, "input {} {}", input.display(), sha256_file(input)?)?;
    }
    for name in &stage.sections {
        writeln!(text, "section {name} {}", section(name, configs)?)?;
    }
    let program = programs.get(stage.program).map_or("", String::as_str);
    writeln!(text, "program {} {program}", stage.program)?;
    writeln!(text, "args {}", stage.args.join(" "))?;
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

fn verdict(
    stage: &Stage,
    key: Option<&str>,
    run_dir: &Path,
    forced: bool,
) -> anyhow::Result<Verdict> {
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

fn group_index(group: &str) -> anyhow::Result<usize> {
    GROUPS
        .iter()
        .position(|g| *g == group)
        .with_context(|| format!("no stage {group:?}; the stages are {}", GROUPS.join(", ")))
}

/// Runs the experiment as `options` say.
pub fn run_experiment(options: &Options) -> anyhow::Result<()> {
    let experiment: ExperimentConfig = qa_data::config::load_section(
        "experiment",
        &ExperimentConfig::default(),
        &options.configs,
        &(),
    )?;
    let prepare = section("prepare", &options.configs)?;
    // The SQuAD files prepare reads (an unset one shows as missing, and prepare names it).
    let squad_files = ["train_file", "test_file"].map(|key| {
        PathBuf::from(
            prepare
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
        )
    });
    let only = options.only.as_deref().map(group_index).transpose()?;
    let from = options.from.as_deref().map(group_index).transpose()?;
    // SQuAD files not on disk are fetched on first use, by prepare itself.
    let missing: Vec<&PathBuf> = squad_files.iter().filter(|f| !f.is_file()).collect();
    if !missing.is_empty() && only.is_none_or(|i| i == 0) && from.is_none_or(|i| i == 0) {
        let list = missing
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>();
        if options.dry_run {
            println!("{:<24} will download {} first", "prepare", list.join(", "));
        } else {
            println!("{:<24} fetching {}", "prepare", list.join(", "));
            let program = options.bin_dir.join("qa-prepare");
            let mut fetch = Command::new(&program);
            fetch.arg("--fetch-only");
            for config in &options.configs {
                fetch.arg("--config").arg(config);
            }
            let status = fetch
                .status()
                .with_context(|| format!("starting {}", program.display()))?;
            if !status.success() {
                bail!("the SQuAD files could not be had ({status})");
            }
        }
    }
    let stages = plan(&experiment, &options.configs, squad_files);
    // Each binary is hashed once (several stages run the same one).
    let mut programs = BTreeMap::new();
    for stage in &stages {
        if !programs.contains_key(stage.program) {
            let digest = sha256_file(options.bin_dir.join(stage.program))?;
            programs.insert(stage.program, digest);
        }
    }
    let run_dir = &experiment.run_dir;
    let mut ran = 0;
    // In a dry run: the outputs of stages that will run, and which stage writes each.
    let mut pending: BTreeMap<&Path, &str> = BTreeMap::new();
    for stage in &stages {
        let index = group_index(stage.group)?;
        if only.is_some_and(|only| only != index) || from.is_some_and(|from| index < from) {
            continue;
        }
        let key = stage_key(stage, &options.configs, &programs)?;
        let forced = from.is_some_and(|from| index >= from) && !options.dry_run;
        let verdict = verdict(stage, key.as_deref(), run_dir, forced)?;
        let upstream: Option<&str> = stage
            .inputs
            .iter()
            .find_map(|i| pending.get(i.as_path()).copied());
        if options.dry_run && (verdict != Verdict::UpToDate || upstream.is_some()) {
            pending.extend(
                stage
                    .outputs
                    .iter()
                    .map(|o| (o.as_path(), stage.name.as_str())),
            );
        }
        match (&verdict, options.dry_run) {
            (Verdict::UpToDate, true) if upstream.is_some() => {
                let upstream = upstream.unwrap_or_default();
                println!(
                    "{:<24} will run if {upstream} changes its output",
                    stage.name
                );
                continue;
            }
            (Verdict::UpToDate, _) => {
                println!("{:<24} up to date", stage.name);
                continue;
            }
            (Verdict::Run(why), true) => {
                println!("{:<24} will run ({why})", stage.name);
                continue;
            }
            (Verdict::Resume, true) => {
                println!("{:<24} will resume its interrupted run", stage.name);
                continue;
            }
            _ => {}
        }
        let Some(key) = key else {
            bail!(
                "{}: an input is missing ({}); run the earlier stages first",
                stage.name,
                stage
                    .inputs
                    .iter()
                    .filter(|i| !i.is_file())
                    .map(|i| i.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        run_stage(stage, &key, &verdict, run_dir, &options.bin_dir)?;
        ran += 1;
    }
    if !options.dry_run {
        match ran {
            0 => println!("run-experiment: every stage is up to date"),
            n => println!(
                "run-experiment: ran {n} stage(s); results in {}",
                run_dir.join("results").display()
            ),
        }
    }
    Ok(())
}

fn run_stage(
    stage: &Stage,
    key: &str,
    verdict: &Verdict,
    run_dir: &Path,
    bin_dir: &Path,
) -> anyhow::Result<()> {
    let (record_path, started_path) = record_paths(run_dir, stage);
    // Killed before it saved anything to continue from: start over.
    let resume = *verdict == Verdict::Resume
        && stage
            .resume
            .as_ref()
            .is_none_or(|(_, saved)| saved.exists());
    if !resume {
        for path in &stage.clear {
            let removed = match path.is_dir() {
                true => std::fs::remove_dir_all(path),
                false if path.exists() => std::fs::remove_file(path),
                false => Ok(()),
            };
            removed.with_context(|| format!("clearing {}", path.display()))?;
        }
        write_json_atomic(&started_path, &key)?;
    }
    let mut args = stage.args.clone();
    if resume && let Some((flag, _)) = &stage.resume {
        args.push(flag.to_string());
    }
    println!(
        "{:<24} {} {}",
        stage.name,
        if resume { "resuming:" } else { "running:" },
        args.join(" ")
    );
    let program = bin_dir.join(stage.program);
    let status = Command::new(&program)
        .args(&args)
        .status()
        .with_context(|| format!("starting {}", program.display()))?;
    if !status.success() {
        bail!(
            "stage {} failed ({status}); re-run to continue it",
            stage.name
        );
    }
    for (from, to) in &stage.publish {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
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
        },
    )?;
    std::fs::remove_file(&started_path)
        .with_context(|| format!("removing {}", started_path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_stage_reads_only_what_an_earlier_stage_wrote() {
        let experiment = ExperimentConfig {
            run_dir: PathBuf::from("run"),
            train_seeds: vec![1, 2],
        };
        let squad = [PathBuf::from("train.json"), PathBuf::from("dev.json")];
        let stages = plan(&experiment, &[PathBuf::from("c.yaml")], squad.clone());
        let mut written: HashSet<PathBuf> = squad.into_iter().collect();
        let mut names = HashSet::new();
        let mut last_group = 0;
        for stage in &stages {
            assert!(names.insert(&stage.name), "{} twice", stage.name);
            let group = group_index(stage.group).expect("a known group");
            assert!(group >= last_group, "{} out of order", stage.name);
            last_group = group;
            for input in &stage.inputs {
                assert!(
                    written.contains(input),
                    "{} reads {}",
                    stage.name,
                    input.display()
                );
            }
            written.extend(stage.outputs.iter().cloned());
            assert!(stage.args.ends_with(&["--config".into(), "c.yaml".into()]));
        }
        let count = |group: &str| stages.iter().filter(|s| s.group == group).count();
        // Three models × two seeds, and the zero-shot row besides them.
        assert_eq!(
            (
                count("train"),
                count("predict"),
                count("score"),
                count("report")
            ),
            (6, 7, 1, 1)
        );
        let score = stages.iter().find(|s| s.name == "score").expect("score");
        assert!(
            score
                .args
                .contains(&"a@2=run/runs/model_a_human/seed-2/predictions.jsonl".into())
        );
        // The report is rebuilt when any training log changes, each seed's included.
        let report = stages.last().expect("stages");
        assert_eq!(report.name, "report");
        assert!(report.inputs.contains(&PathBuf::from(
            "run/runs/model_c_synthetic/seed-2/train_log.jsonl"
        )));
    }
}

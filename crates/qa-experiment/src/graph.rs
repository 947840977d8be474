//! The stage graph: every stage of the experiment, in order, with its command, the config
//! sections that decide its output, the files it reads and writes, and what it leaves behind.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use qa_data::settings::section_names;
use qa_stage::commands::{
    ConfigArgs, GenerationCommand, PredictCommand, PrepareCommand, ReportCommand, ScoreCommand,
    StageCommand, SystemPredictions, TrainCommand,
};
use qa_stage::layout::{
    EXPORT_CARD, MODELS, RunLayout, Split, ZERO_SHOT, model_files, results_files, work_files,
};

use crate::ExperimentConfig;
use crate::error::Error;

/// The stage groups, in the order they run, as `--only` and `--from` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// The human splits from SQuAD.
    Prepare,
    /// Model B's data: human questions, generated answers.
    Contaminate,
    /// Model C's data: paraphrased questions, filtered.
    Synthesize,
    /// Each model's adapter, once per training seed.
    Train,
    /// Each system's answers to the test questions, the untuned model's included.
    Predict,
    /// The scores, intervals and paired tests.
    Score,
    /// The report and the Hub export.
    Report,
}

impl Group {
    /// Every group, in order.
    pub const ALL: [Group; 7] = [
        Group::Prepare,
        Group::Contaminate,
        Group::Synthesize,
        Group::Train,
        Group::Predict,
        Group::Score,
        Group::Report,
    ];

    /// Its name, as `--only` and `--from` take it and as its stages are named.
    pub fn name(self) -> &'static str {
        match self {
            Group::Prepare => "prepare",
            Group::Contaminate => "contaminate",
            Group::Synthesize => "synthesize",
            Group::Train => "train",
            Group::Predict => "predict",
            Group::Score => "score",
            Group::Report => "report",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Group {
    type Err = Error;

    fn from_str(name: &str) -> Result<Group, Error> {
        Group::ALL
            .into_iter()
            .find(|group| group.name() == name)
            .ok_or_else(|| Error::UnknownStage { name: name.into() })
    }
}

/// One stage of the graph.
pub(crate) struct Stage {
    /// `group` or `group-detail` (e.g. `train-a`).
    pub name: String,
    pub group: Group,
    /// The binary (a file name in the binaries' directory) and its arguments.
    pub program: &'static str,
    pub args: Vec<String>,
    /// How an interrupted run is continued, if the stage can be.
    pub resume: Option<Resumable>,
    /// Config sections that decide the output.
    pub sections: Vec<&'static str>,
    /// Files read.
    pub inputs: Vec<PathBuf>,
    /// Files written (checked and recorded after the run).
    pub outputs: Vec<PathBuf>,
    /// What the stage leaves behind, removed when it must start over.
    pub clear: Vec<PathBuf>,
    /// Files copied into the run directory's layout after the run: (from, to).
    pub publish: Vec<(PathBuf, PathBuf)>,
}

/// How a stage continues an interrupted run.
pub(crate) struct Resumable {
    /// The command line that continues it.
    pub args: Vec<String>,
    /// The file or directory that shows there is something to continue (without it, the
    /// stage starts over).
    pub saved: PathBuf,
}

/// A path as a stage binary's argument.
pub(crate) fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// The stage graph of `config`: every stage with its command, inputs and outputs, in order.
pub(crate) fn stage_graph(
    experiment: &ExperimentConfig,
    configs: &ConfigArgs,
    squad_files: [PathBuf; 2],
) -> Vec<Stage> {
    let run = RunLayout::new(&experiment.run_dir);
    let mut stages = vec![Stage {
        name: Group::Prepare.name().into(),
        group: Group::Prepare,
        program: "qa-prepare",
        args: PrepareCommand {
            fetch_only: false,
            out_dir: Some(run.processed()),
        }
        .command_line(configs),
        resume: None,
        sections: vec![section_names::PREPARE],
        inputs: squad_files.to_vec(),
        outputs: Split::ALL.map(|split| run.human(split)).to_vec(),
        clear: vec![],
        publish: vec![],
    }];
    for (group, program, section, work, published) in [
        (
            Group::Contaminate,
            "qa-contaminate",
            section_names::CONTAMINATE,
            "contaminate",
            (work_files::CONTAMINATED, run.contaminated_train()),
        ),
        (
            Group::Synthesize,
            "qa-synth",
            section_names::SYNTH,
            "synth",
            (work_files::SYNTHETIC, run.synthetic_train()),
        ),
    ] {
        let work_dir = run.work(work);
        let mut sections = vec![section];
        if group == Group::Synthesize {
            sections.push(section_names::FILTERS);
        }
        let command = |resume| GenerationCommand {
            input: run.human(Split::Train),
            out_dir: work_dir.clone(),
            resume,
        };
        stages.push(Stage {
            name: group.name().into(),
            group,
            program,
            args: command(false).command_line(configs),
            resume: Some(Resumable {
                args: command(true).command_line(configs),
                saved: work_dir.join(work_files::LEDGER),
            }),
            sections,
            inputs: vec![run.human(Split::Train)],
            outputs: vec![published.1.clone()],
            publish: vec![(work_dir.join(published.0), published.1)],
            clear: vec![work_dir],
        });
    }
    let several = experiment.train_seeds.len() > 1;
    let mut systems: Vec<(String, PathBuf, Option<PathBuf>)> =
        vec![(ZERO_SHOT.into(), run.zero_shot_dir(), None)];
    let mut train_logs = Vec::new();
    // The report stage's export: each dataset's card and each adapter's.
    let mut exported: Vec<PathBuf> = MODELS
        .into_iter()
        .map(|model| run.export_dataset(model).join(EXPORT_CARD))
        .collect();
    for model in MODELS {
        let train = run.training_data(model);
        for &seed in &experiment.train_seeds {
            let out = run.model_dir(model, several.then_some(seed));
            let system = match several {
                true => format!("{}@{seed}", model.name()),
                false => model.name().to_string(),
            };
            let adapter = out.join(model_files::ADAPTER);
            train_logs.push(out.join(model_files::TRAIN_LOG));
            let command = |resume| TrainCommand {
                train: train.clone(),
                validation: Some(run.human(Split::Val)),
                out_dir: out.clone(),
                seed: Some(seed),
                resume,
            };
            stages.push(Stage {
                name: format!("{}-{}", Group::Train, system.replace('@', "-")),
                group: Group::Train,
                program: "qa-train",
                args: command(false).command_line(configs),
                resume: Some(Resumable {
                    args: command(true).command_line(configs),
                    saved: out.join(model_files::CHECKPOINT),
                }),
                sections: vec![section_names::TRAIN],
                inputs: vec![train.clone(), run.human(Split::Val)],
                outputs: vec![
                    adapter.join(model_files::ADAPTER_WEIGHTS),
                    adapter.join(model_files::ADAPTER_CONFIG),
                    out.join(model_files::TRAIN_LOG),
                ],
                // Not the whole directory: the model's predictions live there too.
                clear: [
                    model_files::ADAPTER,
                    model_files::BEST_ADAPTER,
                    model_files::CHECKPOINT,
                    model_files::TRAINING_SETTINGS,
                    model_files::TRAIN_LOG,
                ]
                .map(|name| out.join(name))
                .to_vec(),
                publish: vec![],
            });
            let seed_name = seed.to_string();
            exported.push(
                run.export_model(model, several.then_some(seed_name.as_str()))
                    .join(EXPORT_CARD),
            );
            systems.push((system, out, Some(adapter)));
        }
    }
    for (system, dir, adapter) in &systems {
        let predictions = dir.join(model_files::PREDICTIONS);
        let mut inputs = vec![run.human(Split::Test)];
        inputs.extend(adapter.iter().map(|a| a.join(model_files::ADAPTER_WEIGHTS)));
        let command = PredictCommand {
            input: run.human(Split::Test),
            out: predictions.clone(),
            adapter: adapter.clone(),
        };
        stages.push(Stage {
            name: format!("{}-{}", Group::Predict, system.replace('@', "-")),
            group: Group::Predict,
            program: "qa-eval",
            args: command.command_line(configs),
            // A prediction run continues from its `.partial` file by itself.
            resume: None,
            sections: vec![section_names::PREDICT],
            inputs,
            outputs: vec![predictions],
            clear: vec![],
            publish: vec![],
        });
    }
    let results = run.results();
    let metrics = results.join(results_files::METRICS);
    let scored: Vec<SystemPredictions> = systems
        .into_iter()
        .map(|(name, dir, _)| SystemPredictions {
            name,
            file: dir.join(model_files::PREDICTIONS),
        })
        .collect();
    let mut inputs = vec![run.human(Split::Test)];
    inputs.extend(scored.iter().map(|system| system.file.clone()));
    let command = ScoreCommand {
        gold: run.human(Split::Test),
        predictions: scored,
        out_dir: results.clone(),
    };
    stages.push(Stage {
        name: Group::Score.name().into(),
        group: Group::Score,
        program: "qa-eval",
        args: command.command_line(configs),
        resume: None,
        sections: vec![section_names::EVAL],
        inputs,
        outputs: vec![metrics.clone(), results.join(results_files::PER_QUESTION)],
        clear: vec![],
        publish: vec![],
    });
    // Besides the scores, the report reads the training sets and logs, so it is rebuilt when
    // any of them changes.
    let mut inputs = vec![metrics];
    inputs.extend(MODELS.map(|model| run.training_data(model)));
    inputs.extend(train_logs);
    stages.push(Stage {
        name: Group::Report.name().into(),
        group: Group::Report,
        program: "qa-report",
        args: ReportCommand {
            run_dir: run.root().to_path_buf(),
        }
        .command_line(configs),
        resume: None,
        sections: vec![section_names::REPORT],
        inputs,
        outputs: results_files::REPORT
            .map(|name| results.join(name))
            .into_iter()
            .chain([run.export().join(EXPORT_CARD)])
            .chain(exported)
            .collect(),
        clear: vec![],
        publish: vec![],
    });
    stages
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
        let configs = ConfigArgs {
            configs: vec![PathBuf::from("c.yaml")],
        };
        let stages = stage_graph(&experiment, &configs, squad.clone());
        let mut written: HashSet<PathBuf> = squad.into_iter().collect();
        let mut names = HashSet::new();
        let mut last_group = Group::Prepare;
        for stage in &stages {
            assert!(names.insert(&stage.name), "{} twice", stage.name);
            assert!(stage.group >= last_group, "{} out of order", stage.name);
            last_group = stage.group;
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
        let count = |group: Group| stages.iter().filter(|s| s.group == group).count();
        // Three models × two seeds, and the zero-shot row besides them.
        assert_eq!(
            (
                count(Group::Train),
                count(Group::Predict),
                count(Group::Score),
                count(Group::Report)
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

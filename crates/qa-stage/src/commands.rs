//! The stage binaries' command lines, one type for both sides: each binary flattens the
//! command type of its stage into its clap arguments, and the driver (`qa-experiment`) builds a
//! value of the same type and writes it out with `StageCommand::command_line`. Removing or
//! retyping an argument breaks the driver's build; a test parses every command line back into
//! the value it was written from. The `commands` feature (clap) enables the types; the names of
//! the subcommands and flags are always here.

/// Subcommands of the stage binaries.
pub mod subcommands {
    /// `qa-synth run`, `qa-contaminate run`.
    pub const RUN: &str = "run";
    /// `qa-eval predict`.
    pub const PREDICT: &str = "predict";
    /// `qa-eval score`.
    pub const SCORE: &str = "score";
}

/// Flags of the stage binaries, without their leading `--`.
pub mod flags {
    /// A YAML config file, repeated to layer several.
    pub const CONFIG: &str = crate::config::CONFIG_FLAG;
    /// Print a stage's work and estimated time instead of running it (`qa_stage::plan`).
    pub const PLAN: &str = "plan";
    /// The directory a stage writes into.
    pub const OUT_DIR: &str = "out-dir";
    /// The records a stage reads.
    pub const INPUT: &str = "input";
    /// The predictions file `qa-eval predict` writes.
    pub const OUT: &str = "out";
    /// Continue an interrupted run.
    pub const RESUME: &str = "resume";
    /// `qa-train`'s training records.
    pub const TRAIN: &str = "train";
    /// `qa-train`'s validation records.
    pub const VALIDATION: &str = "validation";
    /// `qa-train`'s seed.
    pub const SEED: &str = "seed";
    /// The adapter `qa-eval predict` applies.
    pub const ADAPTER: &str = "adapter";
    /// The gold questions `qa-eval score` reads.
    pub const GOLD: &str = "gold";
    /// A system's predictions for `qa-eval score`, as `NAME=FILE`.
    pub const PRED: &str = "pred";
    /// The run directory `qa-report` reads.
    pub const RUN_DIR: &str = "run-dir";
    /// `qa-prepare`: only fetch the SQuAD files.
    pub const FETCH_ONLY: &str = "fetch-only";
}

#[cfg(feature = "commands")]
pub use typed::*;

#[cfg(feature = "commands")]
mod typed {
    use std::path::{Path, PathBuf};

    use serde::Serialize;

    use super::{flags, subcommands};
    use qa_data::settings::Section;

    use crate::config::{self, CONFIG_FLAG};
    use crate::error::Result;

    /// The config files of a stage binary (`--config`, repeated), flattened into its arguments.
    #[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
    pub struct ConfigArgs {
        /// YAML config file; repeat to layer several (later files win).
        #[arg(long = CONFIG_FLAG, value_name = "FILE")]
        pub configs: Vec<PathBuf>,
    }

    impl ConfigArgs {
        /// Section `S` from these files and the `QA_` variables.
        pub fn load<S: Section>(&self) -> Result<S> {
            config::load::<S>(&self.configs, &())
        }

        /// Section `S`, with the flags in `overrides` over the files and variables.
        pub fn load_with<S: Section, O: Serialize>(&self, overrides: &O) -> Result<S> {
            config::load::<S>(&self.configs, overrides)
        }

        /// The files as arguments: `--config FILE` for each.
        pub fn args(&self) -> Vec<String> {
            self.configs
                .iter()
                .flat_map(|file| pair(CONFIG_FLAG, path(file)))
                .collect()
        }
    }

    /// The arguments the driver passes to one stage binary, as the binary parses them.
    ///
    /// Fields that override a key of the stage's config section serialise under that key
    /// (the binary hands the command to `qa_stage::cli::StageArgs::load_with`); the others are
    /// skipped by serde.
    pub trait StageCommand: clap::Args + Serialize {
        /// The subcommand the arguments follow, if the binary has subcommands.
        const SUBCOMMAND: Option<&'static str>;

        /// The arguments after the subcommand, without the config files.
        fn args(&self) -> Vec<String>;

        /// The whole command line: subcommand, arguments, then the config files.
        fn command_line(&self, configs: &ConfigArgs) -> Vec<String> {
            let mut line: Vec<String> = Self::SUBCOMMAND.map(String::from).into_iter().collect();
            line.extend(self.args());
            line.extend(configs.args());
            line
        }
    }

    fn path(path: &Path) -> String {
        path.display().to_string()
    }

    /// `name` as a command-line flag: `--name`.
    fn flag(name: &str) -> String {
        format!("--{name}")
    }

    /// `--name value`.
    fn pair(name: &str, value: impl ToString) -> [String; 2] {
        [flag(name), value.to_string()]
    }

    /// `--name` when `on`.
    fn switch(name: &str, on: bool) -> Option<String> {
        on.then(|| flag(name))
    }

    /// `qa-prepare`.
    #[derive(clap::Args, Serialize, Debug, Clone, Default, PartialEq, Eq)]
    pub struct PrepareCommand {
        /// Only make sure the SQuAD files are there (downloading what is missing), then stop.
        #[arg(long = flags::FETCH_ONLY)]
        #[serde(skip)]
        pub fetch_only: bool,
        /// Directory for the outputs [prepare.out_dir].
        #[arg(long = flags::OUT_DIR, value_name = "DIR")]
        pub out_dir: Option<PathBuf>,
    }

    impl StageCommand for PrepareCommand {
        const SUBCOMMAND: Option<&'static str> = None;

        fn args(&self) -> Vec<String> {
            let mut args: Vec<String> = switch(flags::FETCH_ONLY, self.fetch_only)
                .into_iter()
                .collect();
            if let Some(dir) = &self.out_dir {
                args.extend(pair(flags::OUT_DIR, path(dir)));
            }
            args
        }
    }

    /// `qa-synth run` and `qa-contaminate run`.
    #[derive(clap::Args, Serialize, Debug, Clone, PartialEq, Eq)]
    pub struct GenerationCommand {
        /// Human records (JSONL, e.g. human_train.jsonl).
        #[arg(long = flags::INPUT, value_name = "FILE")]
        #[serde(skip)]
        pub input: PathBuf,
        /// Directory for the ledger and outputs.
        #[arg(long = flags::OUT_DIR, value_name = "DIR")]
        #[serde(skip)]
        pub out_dir: PathBuf,
        /// Continue the run in --out-dir after its ledger's last complete line.
        #[arg(long = flags::RESUME)]
        #[serde(skip)]
        pub resume: bool,
    }

    impl StageCommand for GenerationCommand {
        const SUBCOMMAND: Option<&'static str> = Some(subcommands::RUN);

        fn args(&self) -> Vec<String> {
            let mut args = Vec::from(pair(flags::INPUT, path(&self.input)));
            args.extend(pair(flags::OUT_DIR, path(&self.out_dir)));
            args.extend(switch(flags::RESUME, self.resume));
            args
        }
    }

    /// `qa-train`.
    #[derive(clap::Args, Serialize, Debug, Clone, PartialEq, Eq)]
    pub struct TrainCommand {
        /// Training records (JSONL, e.g. human_train.jsonl).
        #[arg(long = flags::TRAIN, value_name = "FILE")]
        #[serde(skip)]
        pub train: PathBuf,
        /// Validation records (JSONL), scored after each epoch: loss, and EM/F1 of greedy
        /// answers to the first train.validation.generate_examples of them; the best epoch's
        /// adapter is kept, and training stops after train.validation.patience epochs without
        /// improvement.
        #[arg(long = flags::VALIDATION, value_name = "FILE")]
        #[serde(skip)]
        pub validation: Option<PathBuf>,
        /// Directory for the adapter, the log and the checkpoint.
        #[arg(long = flags::OUT_DIR, value_name = "DIR")]
        #[serde(skip)]
        pub out_dir: PathBuf,
        /// Seed of shuffling, adapter initialisation and dropout [train.seed].
        #[arg(long = flags::SEED, value_name = "N")]
        pub seed: Option<u64>,
        /// Continue the run in --out-dir from its checkpoint (from the start without one).
        #[arg(long = flags::RESUME)]
        #[serde(skip)]
        pub resume: bool,
    }

    impl StageCommand for TrainCommand {
        const SUBCOMMAND: Option<&'static str> = None;

        fn args(&self) -> Vec<String> {
            let mut args = Vec::from(pair(flags::TRAIN, path(&self.train)));
            if let Some(validation) = &self.validation {
                args.extend(pair(flags::VALIDATION, path(validation)));
            }
            args.extend(pair(flags::OUT_DIR, path(&self.out_dir)));
            if let Some(seed) = self.seed {
                args.extend(pair(flags::SEED, seed));
            }
            args.extend(switch(flags::RESUME, self.resume));
            args
        }
    }

    /// `qa-eval predict`.
    #[derive(clap::Args, Serialize, Debug, Clone, PartialEq, Eq)]
    pub struct PredictCommand {
        /// Records to answer (JSONL, one QaRecord per line, e.g. human_test.jsonl).
        #[arg(long = flags::INPUT, value_name = "FILE")]
        #[serde(skip)]
        pub input: PathBuf,
        /// Predictions file to write ({"id", "prediction"} per line).
        #[arg(long = flags::OUT, value_name = "FILE")]
        #[serde(skip)]
        pub out: PathBuf,
        /// PEFT LoRA adapter directory applied to the model, merged on load [predict.adapter].
        #[arg(long = flags::ADAPTER, value_name = "DIR")]
        pub adapter: Option<PathBuf>,
    }

    impl StageCommand for PredictCommand {
        const SUBCOMMAND: Option<&'static str> = Some(subcommands::PREDICT);

        fn args(&self) -> Vec<String> {
            let mut args = Vec::from(pair(flags::INPUT, path(&self.input)));
            args.extend(pair(flags::OUT, path(&self.out)));
            if let Some(adapter) = &self.adapter {
                args.extend(pair(flags::ADAPTER, path(adapter)));
            }
            args
        }
    }

    /// `qa-eval score`.
    #[derive(clap::Args, Serialize, Debug, Clone, PartialEq, Eq)]
    pub struct ScoreCommand {
        /// Gold questions: our JSONL (human_test.jsonl) or an original SQuAD JSON file.
        #[arg(long = flags::GOLD, value_name = "FILE")]
        #[serde(skip)]
        pub gold: PathBuf,
        /// A system to score, as NAME=FILE (FILE alone uses its file stem as the name). FILE is
        /// our JSONL ({"id", "prediction"} per line) or the official SQuAD .json (id → answer).
        /// Repeat for several systems.
        #[arg(long = flags::PRED, value_name = "NAME=FILE", required = true)]
        #[serde(skip)]
        pub predictions: Vec<SystemPredictions>,
        /// Directory for metrics.json and per_question.jsonl.
        #[arg(long = flags::OUT_DIR, value_name = "DIR", default_value = "results")]
        #[serde(skip)]
        pub out_dir: PathBuf,
    }

    /// A system and its predictions file, as `--pred` takes them: `NAME=FILE`, or `FILE`
    /// alone, named after its stem.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SystemPredictions {
        /// The system's name in the scores (`a`, `a@7`, `zero-shot`).
        pub name: String,
        /// Its predictions file.
        pub file: PathBuf,
    }

    impl std::str::FromStr for SystemPredictions {
        type Err = String;

        fn from_str(spec: &str) -> std::result::Result<Self, String> {
            if let Some((name, file)) = spec.split_once('=') {
                if name.is_empty() || file.is_empty() {
                    return Err(format!("{spec:?}: expected NAME=FILE"));
                }
                return Ok(Self {
                    name: name.into(),
                    file: file.into(),
                });
            }
            let file = PathBuf::from(spec);
            let name = file
                .file_stem()
                .and_then(|stem| stem.to_str())
                .ok_or_else(|| format!("{spec:?}: cannot name the system after this file"))?;
            Ok(Self {
                name: name.into(),
                file,
            })
        }
    }

    impl std::fmt::Display for SystemPredictions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}={}", self.name, self.file.display())
        }
    }

    impl StageCommand for ScoreCommand {
        const SUBCOMMAND: Option<&'static str> = Some(subcommands::SCORE);

        fn args(&self) -> Vec<String> {
            let mut args = Vec::from(pair(flags::GOLD, path(&self.gold)));
            for system in &self.predictions {
                args.extend(pair(flags::PRED, system));
            }
            args.extend(pair(flags::OUT_DIR, path(&self.out_dir)));
            args
        }
    }

    /// `qa-report`.
    #[derive(clap::Args, Serialize, Debug, Clone, PartialEq, Eq)]
    pub struct ReportCommand {
        /// The experiment's run directory (experiment.run_dir).
        #[arg(long = flags::RUN_DIR, value_name = "DIR")]
        #[serde(skip)]
        pub run_dir: PathBuf,
    }

    impl StageCommand for ReportCommand {
        const SUBCOMMAND: Option<&'static str> = None;

        fn args(&self) -> Vec<String> {
            Vec::from(pair(flags::RUN_DIR, path(&self.run_dir)))
        }
    }

    #[cfg(test)]
    mod tests {
        use std::fmt::Debug;

        use clap::{Parser, Subcommand};

        use super::*;

        /// A binary with `C` flattened in, as the stage binaries have it.
        #[derive(Parser, Debug)]
        struct Flat<C: clap::Args> {
            #[command(flatten)]
            command: C,
            #[command(flatten)]
            config: ConfigArgs,
        }

        /// A binary with `C` as a subcommand.
        #[derive(Parser, Debug)]
        struct WithSubcommand<C: clap::Args> {
            #[command(subcommand)]
            command: Named<C>,
        }

        #[derive(Subcommand, Debug)]
        enum Named<C: clap::Args> {
            #[command(name = subcommands::RUN)]
            Run(C),
            #[command(name = subcommands::PREDICT)]
            Predict(C),
            #[command(name = subcommands::SCORE)]
            Score(C),
        }

        /// Parses `command`'s command line as its binary would, and checks that it gives back
        /// `command` and the config files.
        fn round_trip<C: StageCommand + PartialEq + Debug>(command: C) {
            let configs = ConfigArgs {
                configs: vec!["base.yaml".into(), "my.yaml".into()],
            };
            let line = command.command_line(&configs);
            let argv = std::iter::once("stage".to_string()).chain(line.iter().cloned());
            let (parsed, parsed_configs) = match C::SUBCOMMAND {
                None => {
                    let flat =
                        Flat::<C>::try_parse_from(argv).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                    (flat.command, flat.config)
                }
                Some(name) => {
                    // The subcommand's own flags, config files among them, follow its name.
                    let parsed = WithSubcommand::<Flat<C>>::try_parse_from(argv)
                        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
                    let (used, inner) = match parsed.command {
                        Named::Run(inner) => (subcommands::RUN, inner),
                        Named::Predict(inner) => (subcommands::PREDICT, inner),
                        Named::Score(inner) => (subcommands::SCORE, inner),
                    };
                    assert_eq!(used, name);
                    (inner.command, inner.config)
                }
            };
            assert_eq!(parsed, command, "{line:?}");
            assert_eq!(parsed_configs, configs, "{line:?}");
        }

        #[test]
        fn every_command_line_parses_back_into_its_command() {
            round_trip(PrepareCommand::default());
            round_trip(PrepareCommand {
                fetch_only: true,
                out_dir: Some("processed".into()),
            });
            for resume in [false, true] {
                round_trip(GenerationCommand {
                    input: "human_train.jsonl".into(),
                    out_dir: "work/synth".into(),
                    resume,
                });
                round_trip(TrainCommand {
                    train: "train.jsonl".into(),
                    validation: resume.then(|| "val.jsonl".into()),
                    out_dir: "models/a".into(),
                    seed: resume.then_some(7),
                    resume,
                });
            }
            for adapter in [None, Some("models/a/adapter".into())] {
                round_trip(PredictCommand {
                    input: "human_test.jsonl".into(),
                    out: "predictions with space.jsonl".into(),
                    adapter,
                });
            }
            round_trip(ScoreCommand {
                gold: "human_test.jsonl".into(),
                predictions: vec![
                    SystemPredictions {
                        name: "a@1".into(),
                        file: "models/a/predictions.jsonl".into(),
                    },
                    "zs.jsonl".parse().expect("a system"),
                ],
                out_dir: "results".into(),
            });
            round_trip(ReportCommand {
                run_dir: "runs/smoke".into(),
            });
        }

        #[test]
        fn a_system_is_named_or_named_after_its_file() {
            let named: SystemPredictions = "a@7=models/a=b/p.jsonl".parse().expect("a system");
            assert_eq!(
                (named.name.as_str(), named.file.as_path()),
                ("a@7", Path::new("models/a=b/p.jsonl"))
            );
            let unnamed: SystemPredictions = "runs/zero-shot.jsonl".parse().expect("a system");
            assert_eq!(unnamed.name, "zero-shot");
            for bad in ["=f.jsonl", "a=", ".."] {
                assert!(bad.parse::<SystemPredictions>().is_err(), "{bad}");
            }
        }

        #[test]
        fn only_override_fields_reach_the_config() {
            let train = TrainCommand {
                train: "t".into(),
                validation: None,
                out_dir: "o".into(),
                seed: Some(3),
                resume: true,
            };
            assert_eq!(
                serde_json::to_value(&train).expect("serialisable"),
                serde_json::json!({"seed": 3})
            );
            let score = ScoreCommand {
                gold: "g".into(),
                predictions: vec!["a=f".parse().expect("a system")],
                out_dir: "r".into(),
            };
            assert_eq!(
                serde_json::to_value(&score).expect("serialisable"),
                serde_json::json!({})
            );
        }
    }
}

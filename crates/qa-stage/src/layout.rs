//! Where an experiment's files live inside its run directory. The experiment driver writes this
//! layout and the report reads it, so both take their paths from here. It follows the original
//! Python study, so that its users find things:
//!
//! ```text
//! data/processed/{human_train,human_val,human_test,ai_contaminated_train}.jsonl
//! data/synthetic/synthetic_train.jsonl
//! runs/{zero_shot,model_a_human,model_b_contaminated,model_c_synthetic}/
//!     adapter/, train_log.jsonl, predictions.jsonl   (runs/<model>/seed-<n>/ with several seeds)
//! results/        metrics.json, per_question.jsonl, the report and its plots
//! work/<stage>/   the generation stages' ledgers, funnels and reports
//! export/         the datasets and adapters with their cards, for the Hub
//! stages/         the driver's record of each stage
//! plan/           a dry run's samples and calibrations (the estimates of `--dry-run`)
//! ```
//!
//! ```
//! use std::path::Path;
//! use qa_stage::layout::{MODELS, RunLayout, Split};
//!
//! let run = RunLayout::new("runs/smoke");
//! let test = Path::new("runs/smoke/data/processed/human_test.jsonl");
//! assert_eq!(run.human(Split::Test), test);
//! let model_c = Path::new("runs/smoke/runs/model_c_synthetic");
//! assert_eq!(run.model_dir(MODELS[2], None), model_c);
//! ```

use std::path::{Path, PathBuf};

/// The file names inside a trained model's directory ([`qa_data::model_files`]), and the
/// settings file that the training stage keeps there.
pub mod model_files {
    pub use qa_data::model_files::*;

    /// What the training was started with (its settings but where it runs, and its data's
    /// digests), which a resume must match: the settings file of its work
    /// ([`crate::resume`]), whose ledger is [`TRAIN_LOG`].
    pub const TRAINING_SETTINGS: &str = crate::resume::SETTINGS_FILE;
}

/// One of the three trained models of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// Trained on the human SQuAD pairs.
    A,
    /// Trained on the same questions with generated answers.
    B,
    /// Trained on paraphrased questions from the human seed.
    C,
}

/// Models A, B and C, in the study's order.
pub const MODELS: [Model; 3] = [Model::A, Model::B, Model::C];

impl Model {
    /// Its short name, as systems are named in `metrics.json` (`a`, `b`, `c`).
    pub fn name(self) -> &'static str {
        match self {
            Model::A => "a",
            Model::B => "b",
            Model::C => "c",
        }
    }

    /// The model of a short name.
    pub fn from_name(name: &str) -> Option<Model> {
        MODELS.into_iter().find(|model| model.name() == name)
    }

    /// What it is trained on, in words.
    pub fn training_source(self) -> &'static str {
        match self {
            Model::A => "human",
            Model::B => "AI-contaminated",
            Model::C => "synthetic from human seed",
        }
    }

    /// Its directory under `runs/`, as the original experiment named it.
    pub fn dir(self) -> &'static str {
        match self {
            Model::A => "model_a_human",
            Model::B => "model_b_contaminated",
            Model::C => "model_c_synthetic",
        }
    }

    /// The kind of its training data, as the exported dataset is named.
    fn data_kind(self) -> &'static str {
        match self {
            Model::A => "human",
            Model::B => "ai-contaminated",
            Model::C => "synthetic",
        }
    }
}

/// One of the human splits that `qa-prepare` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// The training records (model A's data, and the seeds of B's and C's).
    Train,
    /// The validation records, scored after every training epoch.
    Val,
    /// The test questions every system answers.
    Test,
}

impl Split {
    /// The three, in the order they are written.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// Its file's name (`human_train.jsonl`, …).
    pub const fn file_name(self) -> &'static str {
        match self {
            Split::Train => "human_train.jsonl",
            Split::Val => "human_val.jsonl",
            Split::Test => "human_test.jsonl",
        }
    }
}

/// The name of the untuned base model's system and directory.
pub const ZERO_SHOT: &str = "zero_shot";

/// The paths of one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    root: PathBuf,
}

impl RunLayout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunLayout { root: root.into() }
    }

    /// The run directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `data/processed`: the human splits and the contaminated set.
    pub fn processed(&self) -> PathBuf {
        self.root.join("data/processed")
    }

    /// A human split.
    pub fn human(&self, split: Split) -> PathBuf {
        self.processed().join(split.file_name())
    }

    /// Model B's training data.
    pub fn contaminated_train(&self) -> PathBuf {
        self.processed().join("ai_contaminated_train.jsonl")
    }

    /// Model C's training data.
    pub fn synthetic_train(&self) -> PathBuf {
        self.root.join("data/synthetic/synthetic_train.jsonl")
    }

    /// The training data of `model`.
    pub fn training_data(&self, model: Model) -> PathBuf {
        match model {
            Model::A => self.human(Split::Train),
            Model::B => self.contaminated_train(),
            Model::C => self.synthetic_train(),
        }
    }

    /// The directory of a trained model (per seed when there are several seeds).
    pub fn model_dir(&self, model: Model, seed: Option<u64>) -> PathBuf {
        let dir = self.root.join("runs").join(model.dir());
        match seed {
            Some(seed) => dir.join(format!("seed-{seed}")),
            None => dir,
        }
    }

    /// The zero-shot row's directory.
    pub fn zero_shot_dir(&self) -> PathBuf {
        self.root.join("runs").join(ZERO_SHOT)
    }

    /// `results/`.
    pub fn results(&self) -> PathBuf {
        self.root.join("results")
    }

    /// A generation stage's working directory (`contaminate`, `synth`).
    pub fn work(&self, stage: &str) -> PathBuf {
        self.root.join("work").join(stage)
    }

    /// The synthesis funnel (`qa-synth`), with its endpoint usage.
    pub fn synthesis_funnel(&self) -> PathBuf {
        self.work("synth").join(work_files::FUNNEL)
    }

    /// What the synthesis run was started with.
    pub fn synthesis_settings(&self) -> PathBuf {
        self.work("synth").join(work_files::SETTINGS)
    }

    /// What the contamination run was started with.
    pub fn contamination_settings(&self) -> PathBuf {
        self.work("contaminate").join(work_files::SETTINGS)
    }

    /// How model B's answers compare with the human ones (`qa-contaminate`), with its
    /// endpoint usage.
    pub fn contamination_report(&self) -> PathBuf {
        self.work("contaminate").join(work_files::CONTAMINATION)
    }

    /// `export/`: the datasets and adapters with their cards, ready for the Hub.
    pub fn export(&self) -> PathBuf {
        self.root.join("export")
    }

    /// The exported training data of `model`: `export/datasets/provenance-qa-<kind>/`.
    pub fn export_dataset(&self, model: Model) -> PathBuf {
        self.export()
            .join("datasets")
            .join(format!("provenance-qa-{}", model.data_kind()))
    }

    /// The exported adapter of `model`: `export/models/provenance-qa-<model dir>[-seed-<n>]/`.
    pub fn export_model(&self, model: Model, seed: Option<&str>) -> PathBuf {
        let base = format!("provenance-qa-{}", model.dir().replace('_', "-"));
        let name = match seed {
            Some(seed) => format!("{base}-seed-{seed}"),
            None => base,
        };
        self.export().join("models").join(name)
    }

    /// The driver's stage records.
    pub fn stages(&self) -> PathBuf {
        self.root.join("stages")
    }

    /// A dry run's planning directory: samples of files not written yet, and the model
    /// stages' cached calibrations ([`crate::plan`]).
    pub fn plan(&self) -> PathBuf {
        self.root.join("plan")
    }
}

/// The card of every exported folder, and of `export/` itself.
pub const EXPORT_CARD: &str = "README.md";

/// The file names of the generation stages and filters, in `work/<stage>/` and wherever
/// `qa-filter` writes.
pub mod work_files {
    /// Records in, refusals per filter, records out (and endpoint usage, for synthesis).
    pub const FUNNEL: &str = "funnel.json";
    /// The contamination stage's comparison of its answers with the human ones.
    pub const CONTAMINATION: &str = "contamination.json";
    /// What a generation run was started with (its generator, prompt and sampling): the
    /// settings file of its work ([`crate::resume`]).
    pub const SETTINGS: &str = crate::resume::SETTINGS_FILE;
    /// A generation run's record of every input done, appended as it goes: its ledger.
    pub const LEDGER: &str = crate::resume::LEDGER_FILE;
    /// The contamination stage's records (model B's training data).
    pub const CONTAMINATED: &str = "contaminated.jsonl";
    /// The synthesis stage's records (model C's training data).
    pub const SYNTHETIC: &str = "synthetic.jsonl";
}

/// The file names inside `results/`.
pub mod results_files {
    /// Every system's scores with intervals, and the paired comparisons (`qa-eval score`).
    pub const METRICS: &str = "metrics.json";
    /// Every question's scores per system (`qa-eval score`).
    pub const PER_QUESTION: &str = "per_question.jsonl";
    /// The report's table (`qa-report`).
    pub const METRICS_TABLE: &str = "metrics_table.csv";
    /// The report in Markdown (`qa-report`).
    pub const REPORT_MD: &str = "report.md";
    /// The report as one self-contained web page (`qa-report`).
    pub const REPORT_HTML: &str = "report.html";
    /// What `qa-report` writes besides its plots.
    pub const REPORT: [&str; 3] = [METRICS_TABLE, REPORT_MD, REPORT_HTML];
}

//! The stage binaries' command lines: the names of the subcommands and flags the driver
//! (`qa-experiment`) passes, in one place for both sides. Each binary names its clap arguments
//! from here (`#[arg(long = flags::OUT_DIR)]`), and the driver writes its command lines with
//! [`flag`], so renaming one renames both.

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
    pub const CONFIG: &str = "config";
    /// Print a stage's work and estimated time instead of running it (`qa_data::plan`).
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

/// `name` as a command-line flag: `--name`.
pub fn flag(name: &str) -> String {
    format!("--{name}")
}

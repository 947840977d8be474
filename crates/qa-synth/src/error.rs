//! The one error type of this crate.

/// What can go wrong while generating data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing records, or a template, failed.
    #[error(transparent)]
    Data(#[from] qa_data::Error),
    /// The filter configuration is unusable.
    #[error(transparent)]
    Filters(#[from] qa_filters::Error),
    /// The local model failed.
    #[error(transparent)]
    Model(#[from] t5_lora::Error),
    /// The local model's prediction or its plan's estimate failed.
    #[error(transparent)]
    T5Stage(#[from] t5_stage::Error),
    /// The run's work files refuse a resume or a new start ([`qa_stage::resume`]), or a part of
    /// a merge cannot be read.
    #[error(transparent)]
    Stage(#[from] qa_stage::Error),
    /// The chat-completions endpoint refused, failed or answered nonsense.
    #[error("{url}: {reason}")]
    Endpoint {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A setting is out of range or the files do not fit together.
    #[error("synthesis: {0}")]
    Config(String),
    /// A setting the stage cannot run with (each section checks its own when it loads).
    #[error("invalid setting {0}")]
    Setting(#[from] qa_data::settings::Invalid),
    /// Fewer candidates passed the filters than the floor demands: the generator produces
    /// garbage, and nothing may train on it.
    #[error(
        "only {accepted} of {checked} candidates ({rate:.1}%) passed the filters over the first \
         {seeds} seeds, below the floor of {floor:.1}%; stopping before bad data reaches \
         training\n{funnel}"
    )]
    BelowFloor {
        /// Candidates kept.
        accepted: usize,
        /// Candidates checked.
        checked: usize,
        /// Their ratio, in percent.
        rate: f64,
        /// Seeds looked at.
        seeds: usize,
        /// The floor, in percent.
        floor: f64,
        /// The funnel as a table.
        funnel: String,
    },
    /// The next batch could take the stage's spend past `openai.max_budget`.
    #[error(
        "stopping before the next batch ({next}), which could take the spend past \
         openai.max_budget ({budget}); spent so far: {spent}. Raise openai.max_budget and run the \
         stage again with --resume: what was paid for is kept and not asked for again"
    )]
    OverBudget {
        /// The budget, in words.
        budget: String,
        /// What the ledger has spent.
        spent: String,
        /// The next batch's largest possible bill.
        next: String,
    },
}

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod apply;
mod error;
pub mod filters;
mod pipeline;
pub mod text;

pub use error::{Error, Result};
pub use pipeline::{FilterConfig, FilterCount, Funnel, Pipeline, Rejected};

use qa_data::QaRecord;

/// A record to check, with the human record it was derived from, when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The generated record.
    pub record: &'a QaRecord,
    /// Its human seed: the filters that compare with the seed question skip candidates
    /// without one.
    pub seed: Option<&'a QaRecord>,
}

impl<'a> Candidate<'a> {
    /// A candidate without a seed.
    pub fn new(record: &'a QaRecord) -> Self {
        Candidate { record, seed: None }
    }

    /// A candidate derived from `seed`.
    pub fn with_seed(record: &'a QaRecord, seed: &'a QaRecord) -> Self {
        Candidate {
            record,
            seed: Some(seed),
        }
    }
}

/// Why a filter refused a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The record field that failed (`question`, `answers`, `context`).
    pub field: &'static str,
    /// Why, in words, with the measured value and the threshold.
    pub reason: String,
}

impl Verdict {
    /// A refusal of `field` for `reason`.
    pub fn reject(field: &'static str, reason: impl Into<String>) -> Self {
        Verdict {
            field,
            reason: reason.into(),
        }
    }
}

/// One quality rule.
pub trait Filter: Send {
    /// The name used in configs, rejection files and the funnel.
    fn name(&self) -> &'static str;

    /// Checks `candidate`; `Err` refuses it.
    fn check(&self, candidate: &Candidate<'_>) -> std::result::Result<(), Verdict>;

    /// Tells a stateful filter (duplicates) that `candidate` passed every filter and is kept.
    fn accept(&mut self, _candidate: &Candidate<'_>) {}
}

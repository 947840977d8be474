//! Quality filters for generated question/answer pairs: each rule a named type behind one
//! [`Filter`] trait, composed into a [`Pipeline`] from [`FilterConfig`]; every rejection carries
//! the filter's name, the field and a reason, and the pipeline counts a [`Funnel`].
//!
//! ```
//! use qa_data::{QaRecord, Source};
//! use qa_filters::{Candidate, FilterConfig, Pipeline};
//!
//! let record = |question: &str| QaRecord {
//!     id: "q1".into(),
//!     question: question.into(),
//!     context: "Denver beat Carolina 24 to 10 in Super Bowl 50 at Santa Clara.".into(),
//!     answers: vec!["Denver".into()],
//!     source: Source::SyntheticFromHuman,
//!     provenance: None,
//! };
//! let seed = record("Which team won Super Bowl 50 at Santa Clara?");
//! let mut pipeline = Pipeline::new(&FilterConfig::default())?;
//!
//! let copy = record("Which team won Super Bowl 50 at Santa Clara?");
//! let rejected = pipeline.run(&Candidate::with_seed(&copy, &seed)).expect_err("refused");
//! assert_eq!(rejected.filter, "not_a_copy");
//!
//! let paraphrase = record("In Super Bowl 50, played at Santa Clara, which team was the winner?");
//! assert!(pipeline.run(&Candidate::with_seed(&paraphrase, &seed)).is_ok());
//! assert_eq!((pipeline.funnel().input, pipeline.funnel().output), (2, 1));
//! # Ok::<(), qa_filters::Error>(())
//! ```

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

//! Scoring for the provenance-qa experiment: SQuAD v1.1 Exact Match and F1 with the official
//! script's semantics, ROUGE-L, per-question scores, percentile-bootstrap confidence intervals,
//! and paired significance tests (bootstrap and approximate randomisation) between systems
//! scored on the same questions.
//!
//! - [`squad`]: normalisation and per-answer metrics (`exact_match`, `f1`, `rouge_l`,
//!   `score_question`).
//! - [`compare`]: `bootstrap_ci`, `paired_bootstrap`, `holm` (multiple comparisons),
//!   `mean_std` over seeds.
//! - [`power`]: what a paired test could detect (minimum detectable effect, power, questions
//!   needed).
//! - [`breakdown`]: question types, answer lengths, numbers and dates, and scores per group.
//! - [`evaluate`]: systems' predictions scored against the gold questions, into a
//!   [`evaluate::MetricsReport`] (`metrics.json`).
//! - `stage` (feature `stage`): the `qa-eval score` stage on files, and its `--plan` estimate.
//!
//! ```
//! use qa_metrics::compare::{ResamplingConfig, paired_bootstrap};
//! use qa_metrics::squad::score_question;
//!
//! let gold = [vec!["Denver Broncos"], vec!["Carolina Panthers", "Panthers"], vec!["2015"]];
//! let system_a = ["Denver Broncos", "the Panthers", "2015 season"];
//! let system_b = ["Broncos", "Carolina", "2016"];
//! let f1 = |preds: &[&str]| -> Vec<f64> {
//!     preds.iter().zip(&gold).map(|(p, g)| score_question(p, g).f1).collect()
//! };
//! let (a, b) = (f1(&system_a), f1(&system_b));
//! assert_eq!(a[1], 1.0); // "the Panthers" matches "Panthers" once articles are removed
//! let cmp = paired_bootstrap(&a, &b, &ResamplingConfig::default())?;
//! assert!(cmp.difference.value > 0.0);
//! # Ok::<(), qa_metrics::Error>(())
//! ```

#![deny(missing_docs)]

pub mod breakdown;
pub mod compare;
mod error;
pub mod evaluate;
pub mod power;
pub mod squad;
#[cfg(feature = "stage")]
pub mod stage;

pub use error::{Error, Result};

//! The filters composed in a fixed order (cheap structural checks first, then the comparisons
//! with the seed, duplicates last), each switched off by setting it to `null` in config, and the
//! funnel they count.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::filters::{
    AnswerInContext, AnswerLength, Duplicates, NgramOverlap, NonEmptyContext, NotACopy, PromptLeak,
    QuestionForm, QuestionLength, QuestionNotAnswer, SameTopic,
};
use crate::{Candidate, Filter, Verdict};
use qa_data::QaRecord;
use qa_data::rejection::Rejection;
use qa_data::settings::{Invalid, Section, check};

/// The `filters:` config section: every filter with its thresholds; `null` switches one off.
/// `not_a_copy` has no switch: a candidate equal to its seed question is always refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// See [`NonEmptyContext`].
    pub non_empty_context: Option<NonEmptyContext>,
    /// See [`AnswerLength`].
    pub answer_length: Option<AnswerLength>,
    /// See [`QuestionLength`].
    pub question_length: Option<QuestionLength>,
    /// See [`QuestionForm`].
    pub question_form: Option<QuestionForm>,
    /// See [`AnswerInContext`].
    pub answer_in_context: Option<AnswerInContext>,
    /// See [`QuestionNotAnswer`].
    pub question_not_answer: Option<QuestionNotAnswer>,
    /// See [`PromptLeak`].
    pub prompt_leak: Option<PromptLeak>,
    /// See [`NgramOverlap`].
    pub ngram_overlap: Option<NgramOverlap>,
    /// See [`SameTopic`].
    pub same_topic: Option<SameTopic>,
    /// Exact duplicates among the kept records (see [`Duplicates`]); `false` switches it off.
    pub duplicates: bool,
}

impl Section for FilterConfig {
    const NAME: &'static str = qa_data::settings::section_names::FILTERS;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        let share = |key: &str, value: f64| match (0.0..=1.0).contains(&value) {
            true => Ok(()),
            false => Err(Invalid::new(key, format!("must be in [0, 1], not {value}"))),
        };
        if let Some(f) = &self.answer_length
            && f.min_tokens > f.max_tokens
        {
            return Err(Invalid::new(
                "answer_length.max_tokens",
                format!(
                    "must be at least answer_length.min_tokens ({}), not {}",
                    f.min_tokens, f.max_tokens
                ),
            ));
        }
        if let Some(f) = &self.ngram_overlap {
            check::at_least_one("ngram_overlap.n", f.n)?;
            share("ngram_overlap.max_overlap", f.max_overlap)?;
        }
        if let Some(f) = &self.same_topic {
            share("same_topic.min_seed_share", f.min_seed_share)?;
            share("same_topic.min_grounded_share", f.min_grounded_share)?;
        }
        Ok(())
    }
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            non_empty_context: Some(NonEmptyContext::default()),
            answer_length: Some(AnswerLength::default()),
            question_length: Some(QuestionLength::default()),
            question_form: Some(QuestionForm::default()),
            answer_in_context: Some(AnswerInContext::default()),
            question_not_answer: Some(QuestionNotAnswer::default()),
            prompt_leak: Some(PromptLeak::default()),
            ngram_overlap: Some(NgramOverlap::default()),
            same_topic: Some(SameTopic::default()),
            duplicates: true,
        }
    }
}

/// A refusal: which filter, which field, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The filter's name.
    pub filter: String,
    /// The field that failed.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl Rejected {
    /// `filter`'s refusal for `verdict`.
    pub fn new(filter: &dyn Filter, verdict: Verdict) -> Self {
        Rejected {
            filter: filter.name().to_string(),
            field: verdict.field.to_string(),
            reason: verdict.reason,
        }
    }

    /// The line of a `rejected.jsonl` for `record`, refused at `location` of `file`.
    pub fn into_rejection(self, record: &QaRecord, file: &str, location: String) -> Rejection {
        Rejection {
            id: Some(record.id.clone()),
            file: file.to_string(),
            location,
            field: self.field,
            rejected_by: self.filter,
            reason: self.reason,
            record: serde_json::to_value(record).unwrap_or_default(),
        }
    }
}

/// How many records entered, how many each filter refused (in pipeline order; a record counts
/// against the first filter that refuses it), and how many came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    /// Records checked.
    pub input: usize,
    /// Refusals per filter, in order.
    pub rejected: Vec<FilterCount>,
    /// Records kept.
    pub output: usize,
    /// What generating the records through a paid endpoint used (synthesis on an
    /// OpenAI-compatible backend), every candidate counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<qa_data::usage::UsageTotals>,
}

/// One filter's line of the funnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterCount {
    /// The filter.
    pub filter: String,
    /// Records it refused.
    pub rejected: usize,
}

impl Funnel {
    /// The share of checked records that were kept (0 when none were checked).
    pub fn acceptance_rate(&self) -> f64 {
        if self.input == 0 {
            0.0
        } else {
            self.output as f64 / self.input as f64
        }
    }

    /// The funnel as an aligned text table, records remaining after each filter included.
    pub fn table(&self) -> String {
        let width = self
            .rejected
            .iter()
            .map(|c| c.filter.len())
            .chain([8])
            .max()
            .unwrap_or(8);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}",
            "step", "rejected", "remaining"
        );
        let _ = writeln!(out, "{:<width$}  {:>9}  {:>9}", "input", "", self.input);
        let mut remaining = self.input;
        for count in &self.rejected {
            remaining -= count.rejected;
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>9}",
                count.filter, count.rejected, remaining
            );
        }
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>9}  ({:.1}% kept)",
            "output",
            "",
            self.output,
            self.acceptance_rate() * 100.0
        );
        out
    }
}

fn boxed(filter: impl Filter + 'static) -> Box<dyn Filter> {
    Box::new(filter)
}

/// The filters of a [`FilterConfig`], run in order on each candidate, counting the funnel.
pub struct Pipeline {
    filters: Vec<Box<dyn Filter>>,
    funnel: Funnel,
}

impl Pipeline {
    /// The pipeline `config` describes.
    pub fn new(config: &FilterConfig) -> Result<Self> {
        config.validate()?;
        let c = config.clone();
        let filters: Vec<Box<dyn Filter>> = [
            c.non_empty_context.map(boxed),
            c.answer_length.map(boxed),
            c.question_length.map(boxed),
            c.question_form.map(boxed),
            c.answer_in_context.map(boxed),
            c.question_not_answer.map(boxed),
            c.prompt_leak.map(boxed),
            Some(boxed(NotACopy::default())),
            c.ngram_overlap.map(boxed),
            c.same_topic.map(boxed),
            c.duplicates.then(|| boxed(Duplicates::default())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let funnel = Funnel {
            input: 0,
            rejected: filters
                .iter()
                .map(|f| FilterCount {
                    filter: f.name().to_string(),
                    rejected: 0,
                })
                .collect(),
            output: 0,
            usage: None,
        };
        Ok(Pipeline { filters, funnel })
    }

    /// Adds `filter` at the end (e.g. a round-trip check that needs a QA model).
    pub fn push(&mut self, filter: Box<dyn Filter>) {
        self.funnel.rejected.push(FilterCount {
            filter: filter.name().to_string(),
            rejected: 0,
        });
        self.filters.push(filter);
    }

    /// The filters' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Runs every filter on `candidate`: the first refusal rejects it; a candidate that passes
    /// them all is kept (and remembered by the duplicate filter).
    pub fn run(&mut self, candidate: &Candidate<'_>) -> std::result::Result<(), Rejected> {
        self.funnel.input += 1;
        for (index, filter) in self.filters.iter().enumerate() {
            if let Err(verdict) = filter.check(candidate) {
                self.funnel.rejected[index].rejected += 1;
                return Err(Rejected::new(filter.as_ref(), verdict));
            }
        }
        self.remember(candidate);
        self.funnel.output += 1;
        Ok(())
    }

    /// Tells the stateful filters about a record kept earlier (by an interrupted run being
    /// resumed) without counting it in the funnel.
    pub fn remember(&mut self, kept: &Candidate<'_>) {
        for filter in &mut self.filters {
            filter.accept(kept);
        }
    }

    /// The counts so far.
    pub fn funnel(&self) -> &Funnel {
        &self.funnel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qa_data::{QaRecord, Source};

    /// Which of 0, -1 and 1.5 each numeric threshold refuses at load, naming the key and the
    /// file: shares lie in [0, 1], `n` is a count, and the longest answer is at least the
    /// shortest (1 by default).
    #[test]
    fn every_numeric_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            qa_stage::config::probe_numeric_settings::<FilterConfig>().expect("probes"),
            "\
answer_length.max_tokens: 0 -1 1.5
answer_length.min_tokens: -1 1.5
ngram_overlap.max_overlap: -1 1.5
ngram_overlap.n: 0 -1 1.5
question_length.min_tokens: -1 1.5
same_topic.min_grounded_share: -1 1.5
same_topic.min_seed_share: -1 1.5
"
        );
    }

    fn record(id: &str, question: &str, answer: &str, context: &str) -> QaRecord {
        QaRecord {
            id: id.to_string(),
            question: question.to_string(),
            context: context.to_string(),
            answers: vec![answer.to_string()],
            source: Source::SyntheticFromHuman,
            provenance: None,
        }
    }

    const CONTEXT: &str = "The Denver Broncos beat the Carolina Panthers in Super Bowl 50.";

    #[test]
    fn the_first_refusing_filter_counts_and_the_funnel_adds_up() {
        let seed = record(
            "s",
            "Which team beat the Carolina Panthers in Super Bowl 50?",
            "Denver Broncos",
            CONTEXT,
        );
        let candidates = [
            // Empty context and a copied question: counted against the first filter only.
            record("a", &seed.question, "Denver Broncos", ""),
            record("b", "Who won?", "Denver Broncos", CONTEXT),
            record("c", &seed.question, "Denver Broncos", CONTEXT),
            record(
                "d",
                "In Super Bowl 50, which team was it that beat the Carolina Panthers?",
                "Denver Broncos",
                CONTEXT,
            ),
            record(
                "e",
                "In Super Bowl 50, which team was it that beat the Carolina Panthers?",
                "Denver Broncos",
                CONTEXT,
            ),
        ];
        let mut pipeline = Pipeline::new(&FilterConfig::default()).expect("valid");
        let filters: Vec<String> = candidates
            .iter()
            .map(|c| match pipeline.run(&Candidate::with_seed(c, &seed)) {
                Ok(()) => "kept".to_string(),
                Err(rejected) => rejected.filter,
            })
            .collect();
        assert_eq!(
            filters,
            [
                "non_empty_context",
                "question_length",
                "not_a_copy",
                "kept",
                "duplicates"
            ]
        );
        let funnel = pipeline.funnel();
        assert_eq!((funnel.input, funnel.output), (5, 1));
        let refused: usize = funnel.rejected.iter().map(|c| c.rejected).sum();
        assert_eq!(refused + funnel.output, funnel.input);
        let table = funnel.table();
        assert!(table.contains("not_a_copy"), "{table}");
        assert!(table.contains("(20.0% kept)"), "{table}");
    }

    #[test]
    fn filters_switch_off_but_not_a_copy_stays() {
        let config: FilterConfig = serde_json::from_value(serde_json::json!({
            "non_empty_context": null, "answer_length": null, "question_length": null,
            "question_form": null, "answer_in_context": null, "question_not_answer": null,
            "prompt_leak": null, "ngram_overlap": null, "same_topic": null,
            "duplicates": false,
        }))
        .expect("parses");
        let pipeline = Pipeline::new(&config).expect("valid");
        assert_eq!(pipeline.names(), ["not_a_copy"]);
        let all = Pipeline::new(&FilterConfig::default()).expect("valid");
        assert_eq!(all.names().len(), 11);
    }

    #[test]
    fn thresholds_out_of_range_are_config_errors_naming_the_filter() {
        let config = FilterConfig {
            ngram_overlap: Some(NgramOverlap {
                n: 8,
                max_overlap: 1.5,
            }),
            ..FilterConfig::default()
        };
        let error = Pipeline::new(&config).err().expect("refused").to_string();
        assert!(error.contains("`ngram_overlap.max_overlap`"), "{error}");
        let config = FilterConfig {
            answer_length: Some(AnswerLength {
                min_tokens: 5,
                max_tokens: 2,
            }),
            ..FilterConfig::default()
        };
        let error = Pipeline::new(&config).err().expect("refused").to_string();
        assert!(error.contains("`answer_length.max_tokens`"), "{error}");
        let unknown = serde_json::from_value::<FilterConfig>(serde_json::json!({"ngram": {}}));
        assert!(unknown.is_err());
    }

    #[test]
    fn remembered_records_count_as_kept_for_duplicates_but_not_in_the_funnel() {
        let question = "Which team beat the Carolina Panthers in Super Bowl 50 then?";
        let kept = record("k", question, "Denver Broncos", CONTEXT);
        let mut pipeline = Pipeline::new(&FilterConfig::default()).expect("valid");
        pipeline.remember(&Candidate::new(&kept));
        let again = record("a", question, "Denver Broncos", CONTEXT);
        let rejected = pipeline.run(&Candidate::new(&again)).expect_err("refused");
        assert_eq!(rejected.filter, "duplicates");
        assert_eq!(pipeline.funnel().input, 1);
    }
}

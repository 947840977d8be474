//! The report's figures beyond the headline table: scores broken down by question and answer,
//! and where the contamination and the synthesis land. All of it is descriptive: it says where
//! the systems differ, not why.

use qa_metrics::breakdown::{AnswerLength, Cell, QuestionType, cells, is_number_or_date};
use qa_metrics::compare::{Interval, PairedComparison, ResamplingConfig};
use qa_metrics::evaluate::{comparison_percent, interval_percent};
use qa_metrics::squad::QuestionScores;
use qa_stage::layout::Model;

use crate::error::Result;
use crate::gather::{Gathered, SystemRow};

/// Every figure of this module for one run.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// F1 by question type, answer length and answer kind.
    pub breakdowns: Vec<Breakdown>,
    /// Where B's contamination lands.
    pub contamination: Option<ContaminationView>,
    /// Where C's synthesis lands.
    pub synthesis: Option<SynthesisView>,
}

impl Analysis {
    /// The figures of `gathered`, resampled as its scores were.
    pub fn of(gathered: &Gathered) -> Result<Self> {
        let config = &gathered.metrics.resampling;
        Ok(Analysis {
            breakdowns: breakdowns(gathered, config)?,
            contamination: contamination(gathered, config)?,
            synthesis: synthesis(gathered, config)?,
        })
    }
}

/// One way of grouping the test questions, with every system's F1 per group.
#[derive(Debug, Clone)]
pub struct Breakdown {
    /// What the groups are, e.g. `question type`.
    pub by: &'static str,
    /// One cell per group, each with the systems in the order of [`Gathered::rows`].
    pub cells: Vec<Cell>,
}

/// The first gold answer of a question (the one its length and kind are read from).
fn first_gold(scored: &crate::gather::TestQuestion) -> &str {
    scored.record.answers.first().map_or("", String::as_str)
}

/// Each system's per-question F1, in gold order, in the order of the rows.
fn f1_columns(gathered: &Gathered) -> Vec<Vec<f64>> {
    (0..gathered.rows.len())
        .map(|s| {
            gathered
                .questions
                .iter()
                .map(|q| q.answers[s].1.f1)
                .collect()
        })
        .collect()
}

/// F1 by question type, by gold-answer length and by whether the answer is a number or a date.
pub fn breakdowns(gathered: &Gathered, config: &ResamplingConfig) -> Result<Vec<Breakdown>> {
    let columns = f1_columns(gathered);
    let systems: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    let questions = &gathered.questions;
    let types: Vec<&str> = QuestionType::ALL.iter().map(|t| t.label()).collect();
    let lengths: Vec<&str> = AnswerLength::ALL.iter().map(|l| l.label()).collect();
    let type_of = |i: usize| {
        let t = QuestionType::of(&questions[i].record.question);
        QuestionType::ALL.iter().position(|&x| x == t).unwrap_or(0)
    };
    let length_of = |i: usize| {
        let l = AnswerLength::of(first_gold(&questions[i]));
        AnswerLength::ALL.iter().position(|&x| x == l).unwrap_or(0)
    };
    let number_of = |i: usize| usize::from(!is_number_or_date(first_gold(&questions[i])));
    Ok(vec![
        Breakdown {
            by: "question type",
            cells: cells(&types, type_of, &systems, config)?,
        },
        Breakdown {
            by: "gold-answer length",
            cells: cells(&lengths, length_of, &systems, config)?,
        },
        Breakdown {
            by: "answer kind",
            cells: cells(&["number or date", "other"], number_of, &systems, config)?,
        },
    ])
}

/// A difference `left − right` on a subset of the test questions.
#[derive(Debug, Clone)]
pub struct SubsetDifference {
    /// What the subset is, in words.
    pub subset: String,
    /// Questions in it.
    pub questions: usize,
    /// The F1 difference in points with its paired-bootstrap interval; none for an empty subset.
    pub difference: Option<PairedComparison>,
}

/// Where model B's contamination lands: its answers' disagreement with the human ones per
/// question type, and A − B on test questions of the types where it disagreed more or less.
#[derive(Debug, Clone)]
pub struct ContaminationView {
    /// The A and B systems compared (their labels).
    pub systems: (String, String),
    /// Share of B's records whose answer differs from every human answer, %.
    pub average_disagreement: f64,
    /// Per question type found in B's data: records and their disagreement, %.
    pub by_type: Vec<(QuestionType, usize, f64)>,
    /// A − B (F1) on the test questions of the more-disagreeing types, then on the rest of the
    /// types found in B's data.
    pub splits: [SubsetDifference; 2],
}

/// Where model C's synthesis lands: how close its questions stay to their seeds, and C's score
/// on the test questions of its most and least common question types.
#[derive(Debug, Clone)]
pub struct SynthesisView {
    /// The C system (its label).
    pub system: String,
    /// Mean n-gram overlap of the kept synthetic questions with their seeds, %.
    pub mean_overlap: Option<f64>,
    /// C's F1 on the whole test set.
    pub f1: Interval,
    /// Per question type: its share of the kept records (%), the test questions of that type and
    /// C's F1 on them. The most common type first, the least common last.
    pub extremes: Vec<(QuestionType, f64, usize, Interval)>,
}

fn first_row(gathered: &Gathered, model: Model) -> Option<(usize, &SystemRow)> {
    gathered
        .rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.model == Some(model))
}

fn paired_on(
    members: &[usize],
    left: &[f64],
    right: &[f64],
    config: &ResamplingConfig,
) -> Result<Option<PairedComparison>> {
    if members.is_empty() {
        return Ok(None);
    }
    let pick = |column: &[f64]| members.iter().map(|&i| column[i]).collect::<Vec<_>>();
    Ok(Some(comparison_percent(&pick(left), &pick(right), config)?))
}

/// The contamination view of the first A and B rows, if both were scored and B's data has
/// records with human parents.
pub fn contamination(
    gathered: &Gathered,
    config: &ResamplingConfig,
) -> Result<Option<ContaminationView>> {
    let (Some((a, a_row)), Some((b, b_row))) =
        (first_row(gathered, Model::A), first_row(gathered, Model::B))
    else {
        return Ok(None);
    };
    if gathered.contaminated.is_empty() {
        return Ok(None);
    }
    let disagreement = |scores: &[&QuestionScores]| {
        100.0 * scores.iter().filter(|s| s.exact_match == 0.0).count() as f64 / scores.len() as f64
    };
    let all: Vec<&QuestionScores> = gathered.contaminated.iter().map(|(_, s)| s).collect();
    let average = disagreement(&all);
    let by_type: Vec<(QuestionType, usize, f64)> = QuestionType::ALL
        .iter()
        .filter_map(|&t| {
            let of_type: Vec<&QuestionScores> = gathered
                .contaminated
                .iter()
                .filter(|(qt, _)| *qt == t)
                .map(|(_, s)| s)
                .collect();
            (!of_type.is_empty()).then(|| (t, of_type.len(), disagreement(&of_type)))
        })
        .collect();
    let columns = f1_columns(gathered);
    let (more, less): (Vec<usize>, Vec<usize>) = gathered
        .questions
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let t = QuestionType::of(&q.record.question);
            let (_, _, rate) = by_type.iter().find(|(bt, _, _)| *bt == t)?;
            Some((i, *rate > average))
        })
        .fold(
            (Vec::new(), Vec::new()),
            |(mut more, mut less), (i, above)| {
                match above {
                    true => more.push(i),
                    false => less.push(i),
                }
                (more, less)
            },
        );
    let split = |members: Vec<usize>, subset: &str| -> Result<SubsetDifference> {
        Ok(SubsetDifference {
            subset: subset.to_string(),
            questions: members.len(),
            difference: paired_on(&members, &columns[a], &columns[b], config)?,
        })
    };
    let named = |above: bool| {
        let names: Vec<&str> = by_type
            .iter()
            .filter(|(_, _, rate)| (*rate > average) == above)
            .map(|(t, _, _)| t.label())
            .collect();
        match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        }
    };
    let splits = [
        split(
            more,
            &format!(
                "types where B's answers disagreed more than average ({})",
                named(true)
            ),
        )?,
        split(
            less,
            &format!(
                "types where they disagreed as much or less ({})",
                named(false)
            ),
        )?,
    ];
    Ok(Some(ContaminationView {
        systems: (a_row.label(), b_row.label()),
        average_disagreement: average,
        by_type,
        splits,
    }))
}

/// The synthesis view of the first C row, if C was scored and its data has records.
pub fn synthesis(gathered: &Gathered, config: &ResamplingConfig) -> Result<Option<SynthesisView>> {
    let Some((c, c_row)) = first_row(gathered, Model::C) else {
        return Ok(None);
    };
    let kept = gathered.synthetic_types.len();
    if kept == 0 {
        return Ok(None);
    }
    let columns = f1_columns(gathered);
    let test_types: Vec<QuestionType> = gathered
        .questions
        .iter()
        .map(|q| QuestionType::of(&q.record.question))
        .collect();
    // The types asked in the test set, by their share of the kept records (ties in the
    // report's order of types).
    let mut shares: Vec<(QuestionType, f64)> = QuestionType::ALL
        .iter()
        .filter(|t| test_types.contains(t))
        .map(|&t| {
            let count = gathered.synthetic_types.iter().filter(|&&s| s == t).count();
            (t, 100.0 * count as f64 / kept as f64)
        })
        .collect();
    shares.sort_by(|x, y| y.1.total_cmp(&x.1));
    let mut extremes = Vec::new();
    let picked: Vec<(QuestionType, f64)> = match shares.as_slice() {
        [] => Vec::new(),
        [only] => vec![*only],
        [first, .., last] => vec![*first, *last],
    };
    for (t, share) in picked {
        let members: Vec<f64> = test_types
            .iter()
            .zip(&columns[c])
            .filter(|(qt, _)| **qt == t)
            .map(|(_, f1)| *f1)
            .collect();
        // Every type here is asked in the test set, so `members` is never empty.
        let ci = interval_percent(&members, config)?;
        extremes.push((t, share, members.len(), ci));
    }
    let overlaps = &gathered.overlaps;
    Ok(Some(SynthesisView {
        system: c_row.label(),
        mean_overlap: (!overlaps.is_empty())
            .then(|| 100.0 * overlaps.iter().sum::<f64>() / overlaps.len() as f64),
        f1: c_row.metrics.f1,
        extremes,
    }))
}

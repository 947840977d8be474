//! Scores broken down by what a question asks and what its answer is: the question's wh-word,
//! the gold answer's length in tokens, and whether the answer is a number or a date. Each cell
//! has its size and a bootstrap interval; a cell under [`MIN_PRECISE_CELL`] questions is marked
//! by [`Cell::precise`] rather than read as precise.
//!
//! ```
//! use qa_metrics::breakdown::{AnswerLength, QuestionType, is_number_or_date};
//!
//! assert_eq!(QuestionType::of("In what year did the war end?"), QuestionType::What);
//! assert_eq!(QuestionType::of("How many people live there?"), QuestionType::HowMany);
//! assert_eq!(QuestionType::of("Name the river."), QuestionType::Other);
//! assert_eq!(AnswerLength::of("the Denver Broncos"), AnswerLength::TwoToThree);
//! assert!(is_number_or_date("14 March") && !is_number_or_date("Denver"));
//! ```

use serde::{Deserialize, Serialize};

use crate::compare::{Interval, ResamplingConfig};
use crate::error::Result;
use crate::evaluate::interval_percent;
use crate::squad::normalize_answer;

/// Cells with fewer questions than this are marked: their intervals are too wide to compare.
pub const MIN_PRECISE_CELL: usize = 30;

/// What a question asks, from its first wh-word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// what
    What,
    /// who, whom, whose
    Who,
    /// when
    When,
    /// where
    Where,
    /// which
    Which,
    /// how many, how much
    HowMany,
    /// why
    Why,
    /// how (not followed by many or much)
    How,
    /// No wh-word ("Name the river.", "The war ended in?").
    Other,
}

impl QuestionType {
    /// Every type, in the order the report lists them.
    pub const ALL: [QuestionType; 9] = [
        QuestionType::What,
        QuestionType::Who,
        QuestionType::When,
        QuestionType::Where,
        QuestionType::Which,
        QuestionType::HowMany,
        QuestionType::Why,
        QuestionType::How,
        QuestionType::Other,
    ];

    /// The type of `question`: its first wh-word, with "how many"/"how much" a type of its own.
    pub fn of(question: &str) -> Self {
        let lowered = question.to_lowercase();
        let mut words = lowered
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .peekable();
        while let Some(word) = words.next() {
            let found = match word {
                "what" => QuestionType::What,
                "who" | "whom" | "whose" => QuestionType::Who,
                "when" => QuestionType::When,
                "where" => QuestionType::Where,
                "which" => QuestionType::Which,
                "why" => QuestionType::Why,
                "how" => match words.peek() {
                    Some(&"many" | &"much") => QuestionType::HowMany,
                    _ => QuestionType::How,
                },
                _ => continue,
            };
            return found;
        }
        QuestionType::Other
    }

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            QuestionType::What => "what",
            QuestionType::Who => "who",
            QuestionType::When => "when",
            QuestionType::Where => "where",
            QuestionType::Which => "which",
            QuestionType::HowMany => "how many/much",
            QuestionType::Why => "why",
            QuestionType::How => "how",
            QuestionType::Other => "other",
        }
    }
}

/// The gold answer's length in tokens, after SQuAD normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerLength {
    /// One token.
    One,
    /// Two or three tokens.
    TwoToThree,
    /// Four or more.
    FourPlus,
}

impl AnswerLength {
    /// Every bucket, shortest first.
    pub const ALL: [AnswerLength; 3] = [
        AnswerLength::One,
        AnswerLength::TwoToThree,
        AnswerLength::FourPlus,
    ];

    /// The bucket of `answer` (an answer that normalises to nothing counts as one token).
    pub fn of(answer: &str) -> Self {
        match normalize_answer(answer).split(' ').count() {
            0 | 1 => AnswerLength::One,
            2 | 3 => AnswerLength::TwoToThree,
            _ => AnswerLength::FourPlus,
        }
    }

    /// Its name in the report.
    pub fn label(self) -> &'static str {
        match self {
            AnswerLength::One => "1 token",
            AnswerLength::TwoToThree => "2–3 tokens",
            AnswerLength::FourPlus => "4+ tokens",
        }
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const NUMBER_WORDS: [&str; 34] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "trillion",
    "dozen",
];

/// Whether `answer` is a number or a date: it holds a digit, a month name or a number word.
pub fn is_number_or_date(answer: &str) -> bool {
    let normalized = normalize_answer(answer);
    normalized.chars().any(|c| c.is_ascii_digit())
        || normalized
            .split(' ')
            .any(|w| MONTHS.contains(&w) || NUMBER_WORDS.contains(&w))
}

/// One group of questions and every system's score on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The group, e.g. `what` or `2–3 tokens`.
    pub group: String,
    /// Questions in it.
    pub questions: usize,
    /// Each system's mean score on them, in percent, with its bootstrap interval (in the order
    /// the systems were given); none for an empty group.
    pub scores: Vec<Option<Interval>>,
}

impl Cell {
    /// Whether the cell has enough questions to be read as a figure.
    pub fn precise(&self) -> bool {
        self.questions >= MIN_PRECISE_CELL
    }
}

/// Groups the questions by `group_of` (question `i` in `groups[group_of(i)]`) and scores each
/// system on each group: `systems[s][i]` is system `s`'s score on question `i`, in 0..=1.
pub fn cells(
    groups: &[&str],
    group_of: impl Fn(usize) -> usize,
    systems: &[&[f64]],
    config: &ResamplingConfig,
) -> Result<Vec<Cell>> {
    let questions = systems.first().map_or(0, |s| s.len());
    let mut members = vec![Vec::new(); groups.len()];
    for i in 0..questions {
        members[group_of(i)].push(i);
    }
    groups
        .iter()
        .zip(members)
        .map(|(group, members)| {
            let scores = systems
                .iter()
                .map(|scores| {
                    if members.is_empty() {
                        return Ok(None);
                    }
                    let values: Vec<f64> = members.iter().map(|&i| scores[i]).collect();
                    Ok(Some(interval_percent(&values, config)?))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Cell {
                group: group.to_string(),
                questions: members.len(),
                scores,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_types_follow_the_first_wh_word() {
        for (question, expected) in [
            ("What is the capital?", QuestionType::What),
            ("Whose army won?", QuestionType::Who),
            ("To whom was it given?", QuestionType::Who),
            ("When did it open?", QuestionType::When),
            ("Where is it?", QuestionType::Where),
            ("Which team won, and when?", QuestionType::Which),
            ("How much did it cost?", QuestionType::HowMany),
            ("HOW MANY seats?", QuestionType::HowMany),
            ("How did it end?", QuestionType::How),
            ("Why was it closed?", QuestionType::Why),
            ("The treaty was signed in which city?", QuestionType::Which),
            ("Somewhat odd, isn't it", QuestionType::Other),
            ("", QuestionType::Other),
        ] {
            assert_eq!(QuestionType::of(question), expected, "{question:?}");
        }
    }

    #[test]
    fn answer_lengths_and_numbers() {
        assert_eq!(AnswerLength::of("Broncos"), AnswerLength::One);
        // "the" is dropped by normalisation.
        assert_eq!(AnswerLength::of("The Broncos"), AnswerLength::One);
        assert_eq!(
            AnswerLength::of("Santa Clara, California"),
            AnswerLength::TwoToThree
        );
        assert_eq!(
            AnswerLength::of("the end of a long war"),
            AnswerLength::FourPlus
        );
        assert_eq!(AnswerLength::of("..."), AnswerLength::One);
        for number in ["1998", "$3.5 million", "two", "May 5", "a dozen eggs"] {
            assert!(is_number_or_date(number), "{number}");
        }
        for word in ["Denver", "Mayor Smith", "someone"] {
            assert!(!is_number_or_date(word), "{word}");
        }
    }

    #[test]
    fn cells_score_each_group_and_mark_small_ones() {
        let config = ResamplingConfig {
            bootstrap_resamples: 200,
            ..ResamplingConfig::default()
        };
        // Questions 0..40 in group 0 (all right), 40..50 in group 1 (half right); group 2 empty.
        let a: Vec<f64> = (0..50)
            .map(|i| f64::from(u8::from(i < 40 || i % 2 == 0)))
            .collect();
        let b = vec![0.0; 50];
        let cells = cells(
            &["big", "small", "empty"],
            |i| usize::from(i >= 40),
            &[&a, &b],
            &config,
        )
        .expect("cells");
        assert_eq!(cells.len(), 3);
        assert_eq!((cells[0].questions, cells[0].precise()), (40, true));
        assert_eq!((cells[1].questions, cells[1].precise()), (10, false));
        let small = cells[1].scores[0].expect("scored");
        assert_eq!(small.value, 50.0);
        assert!(small.low < 50.0 && small.high > 50.0);
        assert_eq!(cells[0].scores[0].map(|i| i.value), Some(100.0));
        assert_eq!(cells[0].scores[1].map(|i| i.value), Some(0.0));
        assert_eq!(cells[2].questions, 0);
        assert_eq!(cells[2].scores, vec![None, None]);
    }
}

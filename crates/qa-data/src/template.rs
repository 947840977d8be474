//! Prompt templates: text with `{question}`, `{context}` and `{answer}` placeholders filled from
//! a [`QaRecord`]; `{{` and `}}` stand for literal braces.

use crate::error::{Error, Result};
use crate::record::QaRecord;

/// A parsed prompt template.
///
/// ```
/// use qa_data::{QaRecord, Source, template::PromptTemplate};
/// let record = QaRecord {
///     id: "q1".into(),
///     question: "Who won?".into(),
///     context: "Denver won.".into(),
///     answers: vec!["Denver".into()],
///     source: Source::Human,
///     provenance: None,
/// };
/// let template = PromptTemplate::parse("question: {question} context: {context}")?;
/// assert_eq!(template.render(&record), "question: Who won? context: Denver won.");
/// assert!(!template.uses_answer());
/// # Ok::<(), qa_data::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Question,
    Context,
    Answer,
}

impl PromptTemplate {
    /// Parses `template`, refusing unknown placeholders and unbalanced braces.
    pub fn parse(template: &str) -> Result<Self> {
        let fail = |message: String| Err(Error::Template(format!("{template:?}: {message}")));
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(position) = rest.find(['{', '}']) {
            text.push_str(&rest[..position]);
            rest = &rest[position..];
            if let Some(after) = rest.strip_prefix("{{").or_else(|| rest.strip_prefix("}}")) {
                text.push_str(&rest[..1]);
                rest = after;
                continue;
            }
            if rest.starts_with('}') {
                return fail("unmatched '}' (write '}}' for a literal brace)".to_string());
            }
            let Some(end) = rest.find('}') else {
                return fail("unclosed '{' (write '{{' for a literal brace)".to_string());
            };
            let piece = match &rest[1..end] {
                "question" => Piece::Question,
                "context" => Piece::Context,
                "answer" => Piece::Answer,
                other => {
                    return fail(format!(
                        "unknown placeholder {{{other}}}: only {{question}}, {{context}} and \
                         {{answer}} exist"
                    ));
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &rest[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(PromptTemplate { pieces })
    }

    /// Parses a template for asking a model to answer: `{answer}` would hand it the answer.
    pub fn parse_question_prompt(template: &str) -> Result<Self> {
        let parsed = Self::parse(template)?;
        if parsed.uses_answer() {
            return Err(Error::Template(format!(
                "{template:?}: a prompt that asks for the answer must not contain {{answer}}"
            )));
        }
        Ok(parsed)
    }

    /// Whether the template contains `{answer}`.
    pub fn uses_answer(&self) -> bool {
        self.pieces.contains(&Piece::Answer)
    }

    /// The template's own text between placeholders, trimmed, without empty pieces: what a
    /// generator echoing its prompt would leak.
    pub fn literal_text(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text(text) => Some(text.trim()),
                _ => None,
            })
            .filter(|text| !text.is_empty())
            .collect()
    }

    /// The prompt for `record` (`{answer}` is its first answer).
    pub fn render(&self, record: &QaRecord) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_str(),
                Piece::Question => record.question.as_str(),
                Piece::Context => record.context.as_str(),
                Piece::Answer => record.answer(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source;

    fn record() -> QaRecord {
        QaRecord {
            id: "q1".to_string(),
            question: "Who won?".to_string(),
            context: "Denver won.".to_string(),
            answers: vec!["Denver".to_string()],
            source: Source::Human,
            provenance: None,
        }
    }

    #[test]
    fn templates_fill_placeholders_and_refuse_unknown_ones() {
        let template =
            PromptTemplate::parse("question: {question} context: {context}").expect("parses");
        assert_eq!(
            template.render(&record()),
            "question: Who won? context: Denver won."
        );
        let braces = PromptTemplate::parse("{{literal}} {context}").expect("parses");
        assert_eq!(braces.render(&record()), "{literal} Denver won.");
        for bad in ["{answers}", "question: {question", "a } b"] {
            assert!(PromptTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_answer_is_a_placeholder_that_question_prompts_refuse() {
        let text = "Rewrite: {question}\nAnswer: {answer}";
        let template = PromptTemplate::parse(text).expect("parses");
        assert_eq!(
            template.render(&record()),
            "Rewrite: Who won?\nAnswer: Denver"
        );
        assert_eq!(template.literal_text(), ["Rewrite:", "Answer:"]);
        let error = PromptTemplate::parse_question_prompt(text).expect_err("refused");
        assert!(error.to_string().contains("{answer}"), "{error}");
    }
}

//! The per-question explorer of `report.html`: every test question with its context, gold
//! answers and each system's answer and F1, coloured by correctness. The table is static HTML,
//! complete with scripts off; an inline script (`explorer.js`) adds search, sorting and the
//! presets below, keeping the view in the URL hash (`#preset=c-right-b-wrong&q=river`).

use std::fmt::Write;

use qa_stage::layout::{Model, ZERO_SHOT};

use crate::document::escape;
use crate::gather::Gathered;

/// A named filter: rows where every system of each `right` model has an exact match and every
/// system of each `wrong` model has none.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Its name in the URL hash.
    pub id: &'static str,
    /// What it shows, in words.
    pub label: &'static str,
    /// Models (`a`, `b`, `c`, `zero_shot`) right on each row shown.
    pub right: &'static [&'static str],
    /// Models wrong on each row shown.
    pub wrong: &'static [&'static str],
}

/// The explorer's presets, in the order offered.
pub const PRESETS: [Preset; 3] = [
    Preset {
        id: "c-right-b-wrong",
        label: "C right, B wrong",
        right: &["c"],
        wrong: &["b"],
    },
    Preset {
        id: "all-wrong",
        label: "all wrong",
        right: &[],
        wrong: &["a", "b", "c", ZERO_SHOT],
    },
    Preset {
        id: "zero-shot-right-a-wrong",
        label: "zero-shot right, A wrong",
        right: &[ZERO_SHOT],
        wrong: &["a"],
    },
];

/// Characters of context kept on each side of the gold answer.
const SNIPPET_SIDE: usize = 70;

/// The context around the first occurrence of `answer` (the start of the context when it does
/// not occur), cut at spaces, with `…` where text was left out.
fn snippet(context: &str, answer: &str) -> String {
    let chars: Vec<char> = context.chars().collect();
    let start = context
        .find(answer)
        .filter(|_| !answer.is_empty())
        .map_or(0, |byte| context[..byte].chars().count());
    let answer_len = answer.chars().count();
    let mut from = start.saturating_sub(SNIPPET_SIDE);
    let mut to = (start + answer_len + SNIPPET_SIDE).min(chars.len());
    while from > 0 && from < start && chars[from - 1] != ' ' {
        from += 1;
    }
    while to < chars.len() && to > start + answer_len && chars[to] != ' ' {
        to -= 1;
    }
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.extend(&chars[from..to]);
    if to < chars.len() {
        out.push('…');
    }
    out
}

/// The explorer's section: controls (shown by the script), the table and the script.
pub fn html(gathered: &Gathered) -> String {
    let mut out = String::from("<section id=\"explorer\">\n");
    out.push_str(
        "<div class=\"controls\" hidden><label>Search <input type=\"search\" \
         id=\"explorer-search\" placeholder=\"question, context, answer\"></label> \
         <label>Show <select id=\"explorer-preset\"><option value=\"\">every question</option>",
    );
    for preset in &PRESETS {
        let _ = write!(
            out,
            "<option value=\"{}\" data-right=\"{}\" data-wrong=\"{}\">{}</option>",
            preset.id,
            preset.right.join(" "),
            preset.wrong.join(" "),
            escape(preset.label)
        );
    }
    let _ = write!(
        out,
        "</select></label> <span id=\"explorer-count\">{n} of {n} questions shown</span></div>\n\
         <noscript><p>Scripts are off: all {n} questions are listed below; search, sorting and \
         the presets need scripts.</p></noscript>\n",
        n = gathered.questions.len()
    );
    out.push_str("<table><thead><tr><th>question</th><th>context</th><th>gold answers</th>");
    for row in &gathered.rows {
        let model = row.model.map_or(ZERO_SHOT, Model::name);
        let _ = write!(
            out,
            "<th data-model=\"{model}\">{}</th>",
            escape(&row.label())
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for question in &gathered.questions {
        let record = &question.record;
        let flags: String = question
            .answers
            .iter()
            .map(|(_, s)| if s.exact_match == 1.0 { '1' } else { '0' })
            .collect();
        let first = record.answers.first().map_or("", String::as_str);
        // SQuAD's annotators often gave the same span: each distinct answer once.
        let mut gold: Vec<&str> = Vec::new();
        for answer in &record.answers {
            if !gold.contains(&answer.as_str()) {
                gold.push(answer);
            }
        }
        let _ = write!(
            out,
            "<tr data-em=\"{flags}\"><td>{}</td><td class=\"ctx\">{}</td><td>{}</td>",
            escape(&record.question),
            escape(&snippet(&record.context, first)),
            escape(&gold.join(" | "))
        );
        for (answer, scores) in &question.answers {
            let class = match (scores.exact_match == 1.0, scores.f1 > 0.0) {
                (true, _) => "r",
                (false, true) => "p",
                (false, false) => "w",
            };
            let f1 = (100.0 * scores.f1).round();
            let answer = match answer.is_empty() {
                true => "<i>(empty)</i>".to_string(),
                false => escape(answer),
            };
            let _ = write!(
                out,
                "<td class=\"{class}\" data-f1=\"{f1}\">{answer}<small>F1 {f1}</small></td>"
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n<script>\n");
    out.push_str(include_str!("explorer.js"));
    out.push_str("</script>\n</section>\n");
    out
}

/// What the Markdown report says in the explorer's place.
pub fn markdown(gathered: &Gathered) -> String {
    format!(
        "Every one of the {} test questions, with each system's answer and F1, is in the \
         per-question explorer of report.html (searchable, sortable, with presets such as \
         \"{}\").",
        gathered.questions.len(),
        PRESETS[0].label
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_centre_on_the_answer_and_cut_at_spaces() {
        let context = "one two three four five six seven eight nine ten eleven twelve thirteen \
                       fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one \
                       twenty-two twenty-three twenty-four twenty-five twenty-six twenty-seven";
        let cut = snippet(context, "fifteen");
        assert!(cut.starts_with('…') && cut.ends_with('…'), "{cut}");
        assert!(cut.contains("fifteen"));
        // Whole words only: no word is cut in the middle.
        for word in cut.trim_matches('…').split(' ') {
            assert!(context.split(' ').any(|w| w == word), "{word:?} in {cut}");
        }
        assert_eq!(snippet("short context", "absent"), "short context");
        assert_eq!(snippet("é à ü", "à"), "é à ü");
    }
}

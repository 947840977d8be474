//! The report as a list of blocks, rendered once as Markdown and once as a self-contained HTML
//! page, so that both say the same thing.

use std::fmt::Write;

use crate::plots::Plot;

/// One block of the report.
#[derive(Debug, Clone)]
pub enum Block {
    /// A warning that must be read first.
    Callout(String),
    /// A heading: level 1 to 3.
    Heading(u8, String),
    /// A paragraph of plain text.
    Paragraph(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// Preformatted text.
    Pre(String),
    /// A plot, by its index in the plots.
    Plot(usize),
    /// A part that each format renders in its own way (the per-question explorer: interactive
    /// in HTML, a pointer to it in Markdown).
    PerFormat {
        /// The HTML, inserted as it is.
        html: String,
        /// The Markdown paragraph.
        markdown: String,
    },
}

/// Markdown, with the plots as PNG images beside the file.
pub fn markdown(blocks: &[Block], plots: &[Plot]) -> String {
    let mut out = String::new();
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    for block in blocks {
        match block {
            Block::Callout(text) => writeln!(out, "> **{}**", cell(text)),
            Block::Heading(level, text) => {
                writeln!(out, "{} {text}", "#".repeat(usize::from(*level)))
            }
            Block::Paragraph(text) => writeln!(out, "{text}"),
            Block::List(items) => items.iter().try_for_each(|i| writeln!(out, "- {i}")),
            Block::Table(header, rows) => {
                let line = |cells: &[String]| {
                    let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
                    format!("| {} |", cells.join(" | "))
                };
                let rule = vec!["---".to_string(); header.len()];
                writeln!(out, "{}\n{}", line(header), line(&rule)).and_then(|()| {
                    rows.iter()
                        .try_for_each(|row| writeln!(out, "{}", line(row)))
                })
            }
            Block::Pre(text) => writeln!(out, "```text\n{}\n```", text.trim_end()),
            Block::Plot(i) => {
                let plot = &plots[*i];
                writeln!(out, "![{}]({}.png)", plot.title, plot.stem)
            }
            Block::PerFormat { markdown, .. } => writeln!(out, "{markdown}"),
        }
        .expect("writing to a String cannot fail");
        out.push('\n');
    }
    out
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;\
padding:0 1em;line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.callout{background:#fff4ce;border-left:6px solid #e0a800;\
padding:.8em 1em;font-weight:bold}pre{background:#f6f6f6;padding:.8em;overflow:auto}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
#explorer table{font-size:.85em}#explorer .ctx{color:#555;min-width:16em;max-width:24em}\
#explorer td{overflow-wrap:anywhere}#explorer td small{display:block;color:#555}#explorer .r{background:#e3f4e1}\
#explorer .p{background:#fff4ce}#explorer .w{background:#fbe3e3}\
#explorer th{cursor:pointer;position:sticky;top:0}#explorer .controls{margin:1em 0}\
#explorer input{width:18em}";

/// One HTML page with everything inline: style, plots as SVG, the explorer's script; no
/// external asset.
pub fn html(title: &str, blocks: &[Block], plots: &[Plot]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for block in blocks {
        match block {
            Block::Callout(text) => writeln!(out, "<p class=\"callout\">{}</p>", escape(text)),
            Block::Heading(level, text) => writeln!(out, "<h{level}>{}</h{level}>", escape(text)),
            Block::Paragraph(text) => writeln!(out, "<p>{}</p>", escape(text)),
            Block::List(items) => {
                out.push_str("<ul>\n");
                items
                    .iter()
                    .try_for_each(|i| writeln!(out, "<li>{}</li>", escape(i)))
                    .and_then(|()| writeln!(out, "</ul>"))
            }
            Block::Table(header, rows) => {
                let row = |tag: &str, cells: &[String]| {
                    let cells: String = cells
                        .iter()
                        .map(|c| format!("<{tag}>{}</{tag}>", escape(c)))
                        .collect();
                    format!("<tr>{cells}</tr>\n")
                };
                out.push_str("<table>\n");
                out.push_str(&row("th", header));
                rows.iter().for_each(|r| out.push_str(&row("td", r)));
                writeln!(out, "</table>")
            }
            Block::Pre(text) => writeln!(out, "<pre>{}</pre>", escape(text.trim_end())),
            Block::Plot(i) => {
                let plot = &plots[*i];
                // The SVG document without its XML declaration, inline.
                let svg = plot.svg.trim_start();
                let svg = match svg.strip_prefix("<?xml") {
                    Some(rest) => rest.split_once("?>").map_or(rest, |(_, s)| s),
                    None => svg,
                };
                writeln!(
                    out,
                    "<figure>{}<figcaption>{}</figcaption></figure>",
                    svg.trim(),
                    escape(plot.title)
                )
            }
            Block::PerFormat { html, .. } => write!(out, "{html}"),
        }
        .expect("writing to a String cannot fail");
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_text_and_markdown_escapes_table_cells() {
        let blocks = [
            Block::Paragraph("a < b & \"c\"".into()),
            Block::Table(vec!["x|y".into()], vec![vec!["1".into()]]),
        ];
        let page = html("t", &blocks, &[]);
        assert!(page.contains("<p>a &lt; b &amp; &quot;c&quot;</p>"));
        assert!(markdown(&blocks, &[]).contains("| x\\|y |\n| --- |\n| 1 |"));
    }
}

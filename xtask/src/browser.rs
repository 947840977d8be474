//! `cargo xtask browser-check`: opens a run's report.html in headless Chromium and checks what a
//! reader sees in the per-question explorer: one row per scored question, each preset of the
//! page (opened from the URL hash, as a shared link would) showing the rows that
//! `per_question.jsonl` says it should, and no console message at all (so no script error).
//!
//! The expected counts come from `per_question.jsonl` and the preset's `data-right` /
//! `data-wrong` models as the page declares them, not from the page's script.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::project_root;

/// The browsers tried, in order.
const BROWSERS: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// A separator of model and seed in system names (`a@42`), as qa-metrics writes them.
const SEED_SEPARATOR: char = '@';

#[derive(Deserialize)]
struct Scores {
    exact_match: f64,
}

#[derive(Deserialize)]
struct QuestionRow {
    scores: BTreeMap<String, Scores>,
}

/// A preset as the page declares it.
#[derive(Debug)]
struct Preset {
    id: String,
    right: Vec<String>,
    wrong: Vec<String>,
}

fn find_browser() -> Option<&'static str> {
    BROWSERS.into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The value of `name="…"` inside one tag's text.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

/// Every opening tag `<name …>` in `html`, as its text.
fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    html.match_indices(&open)
        .filter_map(|(at, _)| html[at..].find('>').map(|end| &html[at..at + end + 1]))
        .collect()
}

fn presets(html: &str) -> Vec<Preset> {
    tags(html, "option")
        .into_iter()
        .filter_map(|tag| {
            let id = attribute(tag, "value")?;
            let words = |name| {
                attribute(tag, name)
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            };
            (!id.is_empty()).then(|| Preset {
                id: id.to_string(),
                right: words("data-right"),
                wrong: words("data-wrong"),
            })
        })
        .collect()
}

/// Whether every system of `model` has exact match `flag` on `row` (false when none was scored).
fn all(row: &QuestionRow, model: &str, flag: f64) -> bool {
    let systems: Vec<&Scores> = row
        .scores
        .iter()
        .filter(|(name, _)| name.split(SEED_SEPARATOR).next() == Some(model))
        .map(|(_, s)| s)
        .collect();
    !systems.is_empty() && systems.iter().all(|s| s.exact_match == flag)
}

fn expected(rows: &[QuestionRow], preset: &Preset) -> usize {
    rows.iter()
        .filter(|row| {
            preset.right.iter().all(|m| all(row, m, 1.0))
                && preset.wrong.iter().all(|m| all(row, m, 0.0))
        })
        .count()
}

/// The page after its scripts ran, and every console line Chromium logged.
fn render(browser: &str, url: &str) -> anyhow::Result<(String, Vec<String>)> {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ])
        .output()
        .with_context(|| format!("running {browser}"))?;
    if !output.status.success() {
        bail!(
            "{browser} failed on {url} ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let console = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    Ok((String::from_utf8(output.stdout)?, console))
}

/// The explorer's rows in a rendered page: `(all, shown)`.
fn rows(dom: &str) -> (usize, usize) {
    let rows = tags(dom, "tr")
        .into_iter()
        .filter(|tag| attribute(tag, "data-em").is_some())
        .collect::<Vec<_>>();
    let shown = rows
        .iter()
        .filter(|tag| attribute(tag, "hidden").is_none())
        .count();
    (rows.len(), shown)
}

fn check_page(
    browser: &str,
    page: &Path,
    hash: &str,
    want: usize,
    total: usize,
) -> anyhow::Result<()> {
    let url = format!("file://{}{hash}", page.display());
    let (dom, console) = render(browser, &url)?;
    if !console.is_empty() {
        bail!(
            "{url}: the page logged to the console:\n{}",
            console.join("\n")
        );
    }
    if !dom.contains("data-ready=\"true\"") {
        bail!("{url}: the explorer's script did not finish (no data-ready)");
    }
    let (all, shown) = rows(&dom);
    if all != total {
        bail!("{url}: {all} explorer rows, but per_question.jsonl has {total} questions");
    }
    if shown != want {
        bail!("{url}: {shown} rows shown, expected {want} from per_question.jsonl");
    }
    let counted = format!("data-shown=\"{want}\"");
    if !dom.contains(&counted) {
        bail!("{url}: the explorer's count does not say {want}");
    }
    println!(
        "browser check: {} shows {shown} of {all} rows, as expected",
        if hash.is_empty() { "the page" } else { hash }
    );
    Ok(())
}

/// Checks `run_dir`'s report in a headless browser; with `screenshot`, also saves an image of
/// the explorer.
pub fn browser_check(
    run_dir: &Path,
    require: bool,
    screenshot: Option<PathBuf>,
) -> anyhow::Result<()> {
    let Some(browser) = find_browser() else {
        let message = format!("no headless browser found (tried {})", BROWSERS.join(", "));
        if require {
            bail!("{message}; Debian: apt-get install chromium");
        }
        println!("browser check: {message}; not run");
        return Ok(());
    };
    let run_dir = project_root().join(run_dir);
    let results = run_dir.join("results");
    let page = results.join("report.html");
    let html = std::fs::read_to_string(&page)
        .with_context(|| format!("{}: run the experiment first", page.display()))?;
    let per_question = results.join("per_question.jsonl");
    let text = std::fs::read_to_string(&per_question)
        .with_context(|| format!("reading {}", per_question.display()))?;
    let scored: Vec<QuestionRow> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}: line {}", per_question.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let presets = presets(&html);
    if presets.is_empty() {
        bail!("{}: the explorer offers no preset", page.display());
    }
    let version = Command::new(browser).arg("--version").output()?;
    println!(
        "browser check: {} on {}",
        String::from_utf8_lossy(&version.stdout).trim(),
        page.display()
    );
    check_page(browser, &page, "", scored.len(), scored.len())?;
    for preset in &presets {
        let want = expected(&scored, preset);
        check_page(
            browser,
            &page,
            &format!("#preset={}", preset.id),
            want,
            scored.len(),
        )?;
    }
    if let Some(image) = screenshot {
        let image = project_root().join(image);
        // The explorer alone, with the page's style, so that it fills the picture.
        let (Some(head_end), Some(start), Some(end)) = (
            html.find("<body>"),
            html.find("<section id=\"explorer\">"),
            html.find("</section>"),
        ) else {
            bail!("{}: no explorer section", page.display());
        };
        let alone = format!(
            "{}<body>\n{}</section>\n</body>\n</html>\n",
            &html[..head_end],
            &html[start..end]
        );
        let page = std::env::temp_dir().join("provenance-qa-explorer.html");
        std::fs::write(&page, alone).with_context(|| format!("writing {}", page.display()))?;
        let shot = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--window-size=1100,760", "--virtual-time-budget=10000"])
            .arg(format!("--screenshot={}", image.display()))
            .arg(format!("file://{}", page.display()))
            .output()?;
        if !shot.status.success() {
            bail!(
                "{browser} could not take the screenshot ({}): {}",
                shot.status,
                String::from_utf8_lossy(&shot.stderr)
            );
        }
        println!("browser check: wrote {}", image.display());
    }
    Ok(())
}

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod analysis;
mod content;
mod document;
mod error;
mod explorer;
pub mod export;
pub mod findings;
pub mod gather;
mod plots;

use std::path::{Path, PathBuf};

use qa_data::files::write_bytes_atomic;
use qa_data::settings::{Invalid, Section, check};
use qa_stage::layout::{RunLayout, results_files};
use qa_stage::plan::StagePlan;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use export::{Exported, write_export};

/// The `report:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportConfig {
    /// The models are untrained stand-ins (the smoke profile): the report says so first.
    pub stand_in: bool,
    /// Example records shown from each training set.
    pub examples: usize,
    /// n of the n-gram overlap histogram (the overlap filter's n by default).
    pub overlap_n: usize,
}

impl Section for ReportConfig {
    const NAME: &'static str = qa_data::settings::section_names::REPORT;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("overlap_n", self.overlap_n)
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            stand_in: false,
            examples: 3,
            overlap_n: 8,
        }
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Every file, the plots included.
    pub files: Vec<PathBuf>,
    /// The plain-words comparisons, for the terminal.
    pub comparisons: Vec<String>,
}

/// Writes the report of the run in `run_dir` into its `results/` directory, each file
/// atomically.
pub fn write_report(run_dir: &Path, config: &ReportConfig) -> Result<Written> {
    config.validate()?;
    let run = RunLayout::new(run_dir);
    let gathered = gather::gather(&run, config)?;
    let results = run.results();
    let differences = findings::differences(&gathered);
    let analysis = analysis::Analysis::of(&gathered)?;
    let (plots, mut files) = plots::draw_all(&gathered, &analysis, config.overlap_n, &results)?;
    let blocks = content::blocks(&gathered, &differences, &analysis, &plots, config);

    let table = results.join(results_files::METRICS_TABLE);
    write_table(&table, &gathered)?;
    let markdown = results.join(results_files::REPORT_MD);
    let html = results.join(results_files::REPORT_HTML);
    for (path, text) in [
        (&markdown, document::markdown(&blocks, &plots)),
        (&html, document::html(content::TITLE, &blocks, &plots)),
    ] {
        write_bytes_atomic(path, text.as_bytes())?;
    }
    files.extend([table, markdown, html]);
    Ok(Written {
        files,
        comparisons: differences
            .iter()
            .map(|d| d.sentence(gathered.metrics.resampling.alpha))
            .collect(),
    })
}

/// What the report stage would do (see [`qa_stage::plan`]). Its time is not estimated: it
/// reads files that earlier stages have not written in a dry run, and draws plots whose cost
/// nothing calibrates here.
pub fn plan() -> StagePlan {
    StagePlan {
        work: "the table, the findings, the plots, the page, and the export (datasets and \
               adapters with their cards)"
            .to_string(),
        notes: vec![
            "not estimated: a small share of a run, measured in docs/performance.md".to_string(),
        ],
        ..StagePlan::default()
    }
}

/// `metrics_table.csv`: one row per system, each metric with its interval in three columns.
fn write_table(path: &Path, gathered: &gather::Gathered) -> Result<()> {
    let csv_error = |reason| Error::Csv {
        path: path.to_path_buf(),
        reason,
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "model",
            "training_source",
            "n_train",
            "seed",
            "em",
            "em_low",
            "em_high",
            "f1",
            "f1_low",
            "f1_high",
            "rouge_l",
            "rouge_l_low",
            "rouge_l_high",
        ])
        .map_err(csv_error)?;
    for row in &gathered.rows {
        let m = &row.metrics;
        let mut record = vec![
            m.name.clone(),
            row.training_source().to_string(),
            row.n_train.map_or(String::new(), |n| n.to_string()),
            m.seed.clone().unwrap_or_default(),
        ];
        for i in [&m.exact_match, &m.f1, &m.rouge_l] {
            record.extend([i.value, i.low, i.high].map(|v| format!("{v:.2}")));
        }
        writer.write_record(&record).map_err(csv_error)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv_error(csv::Error::from(e.into_error())))?;
    Ok(write_bytes_atomic(path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the
    /// file: the overlap's n is a count; a report may show no examples.
    #[test]
    fn every_numeric_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            qa_stage::config::probe_numeric_settings::<ReportConfig>().expect("probes"),
            "\
examples: -1 1.5
overlap_n: 0 -1 1.5
"
        );
    }
}

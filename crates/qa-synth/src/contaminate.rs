//! The contamination stage (model B's data): the human records' questions and contexts, with
//! answers written by a generator instead of people, and a report of how far those answers
//! stray from the human ones (SQuAD EM and F1 against the human answers, through
//! `qa-metrics`).
//!
//! Like synthesis, a run appends one ledger line per record (its generated answer) and derives
//! everything else from the ledger: it resumes after a kill, and shards merge into exactly
//! what one run gives.

use std::path::{Path, PathBuf};

use qa_data::files::{read_keyed_jsonl, write_json_atomic, write_jsonl_atomic};
use qa_data::rejection::Rejection;
use qa_data::settings::{Invalid, Placed, PlacedTable, Section, check};
use qa_data::template::PromptTemplate;
use qa_data::usage::{CompletionUsage, UsageTotals};
use qa_data::{Provenance, QaRecord, Source};
use qa_stage::plan::{PlannedInput, Planning, StagePlan, format_count};
use serde::{Deserialize, Serialize};

use crate::backend::{Decoding, GeneratorConfig};
use crate::error::Result;
use crate::generator::{Generator, Request};
use crate::plan::{Need, generation_plan};
use crate::run::{self, LEDGER_FILE, LedgerLine, Progress, RunFiles, RunSettings, SETTINGS_FILE};
use crate::spending::Spending;

/// The default prompt: answer from the passage, briefly (SQuAD answers are spans).
pub const DEFAULT_ANSWER_PROMPT: &str = "Answer the question using the passage. Reply with \
     the answer only, as short as possible.\n\nPassage: {context}\n\nQuestion: {question}\n\n\
     Answer:";

/// The contaminated records.
pub const OUTPUT_FILE: &str = qa_stage::layout::work_files::CONTAMINATED;
/// Records left out (empty answers), with reasons.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// How the generated answers compare with the human ones.
pub const REPORT_FILE: &str = qa_stage::layout::work_files::CONTAMINATION;

/// The `contaminate:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContaminateConfig {
    /// The generator that answers (GPT-3.5 in the original study; by default a local
    /// FLAN-T5-XL decoding greedily).
    pub generator: GeneratorConfig,
    /// The prompt, with `{question}` and `{context}` placeholders (never `{answer}`).
    pub prompt_template: String,
    /// Records answered together.
    pub records_per_batch: usize,
}

impl Placed for ContaminateConfig {
    const RUN_PLACE: &'static [&'static str] = &["records_per_batch"];
    const DECIDING: &'static [&'static str] = &["generator", "prompt_template"];
    const WITHIN: &'static [PlacedTable] = &[("generator", GeneratorConfig::strip_run_place)];
}

impl Section for ContaminateConfig {
    const NAME: &'static str = qa_data::settings::section_names::CONTAMINATE;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        self.generator
            .validate()
            .map_err(|e| e.within("generator"))?;
        check::at_least_one("records_per_batch", self.records_per_batch)
    }
}

impl Default for ContaminateConfig {
    fn default() -> Self {
        ContaminateConfig {
            // The most likely short answer.
            generator: GeneratorConfig::decoding(Decoding::Greedy, 64),
            prompt_template: DEFAULT_ANSWER_PROMPT.to_string(),
            records_per_batch: 16,
        }
    }
}

impl ContaminateConfig {
    /// The settings that decide a run's output (see [`GeneratorConfig::output_settings`]).
    fn output_settings(&self) -> ContaminateConfig {
        ContaminateConfig {
            generator: self.generator.output_settings(),
            ..self.deciding()
        }
    }
}

/// What contamination of `input` into `out_dir` would do (see [`qa_stage::plan`]): one answer per
/// record, as long as the human ones, on the local model or from an endpoint. The contaminated
/// records look like the human ones.
pub fn plan(
    config: &ContaminateConfig,
    input: &PlannedInput,
    out_dir: &Path,
    planning: &Planning,
) -> Result<StagePlan> {
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let prompts: Vec<String> = input.sample.iter().map(|r| template.render(r)).collect();
    let answers: Vec<String> = input
        .sample
        .iter()
        .map(|r| r.answer().to_string())
        .collect();
    let need = Need {
        requests: input.records,
        completions: 1,
        prompts: &prompts,
        outputs: &answers,
    };
    let work = format!("{} records", format_count(input.records));
    let mut plan = generation_plan(&config.generator, &need, work, planning)?;
    plan.outputs
        .insert(out_dir.join(OUTPUT_FILE), input.derived(input.records));
    Ok(plan)
}

/// One ledger line: the generated answer to one human record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerOutcome {
    /// The record's index in the input file.
    pub index: usize,
    /// The record's id.
    pub id: String,
    /// The generator's answer, trimmed.
    pub answer: String,
    /// What the endpoint billed for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

impl LedgerLine for AnswerOutcome {
    fn index(&self) -> usize {
        self.index
    }
}

/// How the generated answers compare with the human ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContaminationReport {
    /// Human records answered.
    pub records: usize,
    /// Contaminated records written.
    pub kept: usize,
    /// Records left out because the generator's answer was empty.
    pub rejected: usize,
    /// Mean SQuAD Exact Match of the kept answers against the human answers, in percent.
    pub exact_match: f64,
    /// Mean SQuAD F1 of the kept answers against the human answers, in percent.
    pub f1: f64,
    /// Kept answers that match no human answer exactly (after SQuAD normalisation).
    pub differs: usize,
    /// What the answers used of a paid endpoint (absent for a local model), every answer
    /// counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
}

impl ContaminationReport {
    /// The report as a small readable table.
    pub fn table(&self) -> String {
        let share = |count: usize| 100.0 * count as f64 / self.kept.max(1) as f64;
        let usage = self.usage.map_or(String::new(), |usage| usage.table());
        format!(
            "records answered        {:>8}\n\
             kept                    {:>8}\n\
             rejected (empty answer) {:>8}\n\
             differs from human      {:>8}  ({:.1}% of kept)\n\
             EM vs human answers     {:>8.2}\n\
             F1 vs human answers     {:>8.2}\n{usage}",
            self.records,
            self.kept,
            self.rejected,
            self.differs,
            share(self.differs),
            self.exact_match,
            self.f1
        )
    }
}

/// How a run or merge ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ContaminateSummary {
    /// The comparison with the human answers.
    pub report: ContaminationReport,
    /// Where the records are.
    pub output: PathBuf,
}

type Settings = RunSettings<ContaminateConfig>;

/// Builds the outputs from ledger lines in input order.
struct Outputs<'a> {
    settings: &'a Settings,
    spending: Spending<'a>,
    kept: Vec<QaRecord>,
    rejected: Vec<Rejection>,
    exact_match: f64,
    f1: f64,
    differs: usize,
}

impl<'a> Outputs<'a> {
    fn new(settings: &'a Settings, generator: &'a GeneratorConfig) -> Self {
        Outputs {
            settings,
            spending: Spending::new(generator),
            kept: Vec::new(),
            rejected: Vec::new(),
            exact_match: 0.0,
            f1: 0.0,
            differs: 0,
        }
    }

    fn progress(&self, total: usize) -> Progress {
        Progress {
            done: self.kept.len() + self.rejected.len(),
            total,
            kept: self.kept.len(),
            rejected: self.rejected.len(),
        }
    }

    fn add(&mut self, human: &QaRecord, outcome: &AnswerOutcome) {
        let record = QaRecord {
            id: format!("{}-ai", human.id),
            question: human.question.clone(),
            context: human.context.clone(),
            answers: vec![outcome.answer.clone()],
            source: Source::AiContaminated,
            provenance: Some(Provenance {
                parent_id: human.id.clone(),
                generator: self.settings.generator.clone(),
                prompt_template: self.settings.stage.prompt_template.clone(),
                sampling: self.settings.sampling.clone(),
                candidate_index: None,
                usage: outcome.usage,
            }),
        };
        self.spending.add(outcome.usage.as_ref());
        if outcome.answer.is_empty() {
            self.rejected.push(Rejection {
                id: Some(record.id.clone()),
                file: LEDGER_FILE.to_string(),
                location: format!("record {} ({})", outcome.index, human.id),
                field: "answers".to_string(),
                rejected_by: "non_empty_answer".to_string(),
                reason: "the generator's answer is empty".to_string(),
                record: serde_json::to_value(&record).unwrap_or_default(),
            });
            return;
        }
        let scores = qa_metrics::squad::score_question(&outcome.answer, &human.answers);
        self.exact_match += scores.exact_match;
        self.f1 += scores.f1;
        self.differs += usize::from(scores.exact_match == 0.0);
        self.kept.push(record);
    }

    fn write(self, out_dir: &Path) -> Result<ContaminateSummary> {
        let kept = self.kept.len();
        let mean = |sum: f64| 100.0 * sum / kept.max(1) as f64;
        let report = ContaminationReport {
            records: kept + self.rejected.len(),
            kept,
            rejected: self.rejected.len(),
            exact_match: mean(self.exact_match),
            f1: mean(self.f1),
            differs: self.differs,
            usage: self.spending.totals(),
        };
        let output = out_dir.join(OUTPUT_FILE);
        write_jsonl_atomic(&output, &self.kept)?;
        write_jsonl_atomic(out_dir.join(REJECTED_FILE), &self.rejected)?;
        write_json_atomic(out_dir.join(REPORT_FILE), &report)?;
        Ok(ContaminateSummary { report, output })
    }
}

/// Runs (or continues) contamination as `files` says (`files.input` holds the human records);
/// `on_record` reports progress after each record.
pub fn contaminate(
    config: &ContaminateConfig,
    files: &RunFiles,
    generator: &dyn Generator,
    mut on_record: impl FnMut(Progress),
) -> Result<ContaminateSummary> {
    config.validate()?;
    let template = PromptTemplate::parse_question_prompt(&config.prompt_template)?;
    let human: Vec<QaRecord> = read_keyed_jsonl(&files.input)?;
    let settings = RunSettings::new(config.output_settings(), generator, files)?;
    let mut run = run::open::<_, AnswerOutcome>(files, &settings, &human)?;
    let mut outputs = Outputs::new(&settings, &config.generator);
    for outcome in &run.done {
        outputs.add(&human[outcome.index], outcome);
    }
    on_record(outputs.progress(run.part_len));
    for batch in run.pending.chunks(config.records_per_batch) {
        let requests: Vec<Request> = batch
            .iter()
            .map(|&i| Request {
                prompt: template.render(&human[i]),
                n: 1,
                stream: i as u64,
            })
            .collect();
        outputs.spending.check(&requests)?;
        let answers = generator.generate(&requests)?;
        for (&index, mut completions) in batch.iter().zip(answers) {
            let completion = completions.pop();
            let outcome = AnswerOutcome {
                index,
                id: human[index].id.clone(),
                answer: completion
                    .as_ref()
                    .map_or("", |c| c.text.trim())
                    .to_string(),
                usage: completion.and_then(|c| c.usage),
            };
            run.ledger.append(&outcome)?;
            outputs.add(&human[index], &outcome);
            on_record(outputs.progress(run.part_len));
        }
    }
    run.ledger.sync()?;
    outputs.write(&files.out_dir)
}

/// Joins the ledgers of sharded contamination runs into `out_dir`, in input order, checking
/// that every record of `input` was answered.
pub fn merge(parts: &[PathBuf], input: &Path, out_dir: &Path) -> Result<ContaminateSummary> {
    let human: Vec<QaRecord> = read_keyed_jsonl(input)?;
    let (settings, outcomes) = run::gather::<ContaminateConfig, AnswerOutcome>(parts, input)?;
    // The recorded settings hold no price: a merge counts tokens, not dollars.
    let mut outputs = Outputs::new(&settings, &settings.stage.generator);
    for (index, record) in human.iter().enumerate() {
        let outcome = outcomes
            .get(&index)
            .ok_or_else(|| run::missing(index, &record.id))?;
        outputs.add(record, outcome);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| qa_data::Error::io(out_dir, e))?;
    write_json_atomic(out_dir.join(SETTINGS_FILE), &settings)?;
    outputs.write(out_dir)
}

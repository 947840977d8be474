//! The synthesis stage: for each human seed, `candidates` paraphrases of its question from a
//! [`Generator`], checked by the quality filters; the first that passes is kept with the seed's
//! context and answer and full provenance.
//!
//! A run appends one line per seed to `ledger.jsonl` (every candidate with its verdict) as it
//! goes, so a killed run resumes after its last complete line. The kept records, the rejections
//! and the funnel are then *selected* from the ledger in seed order (duplicates and the target
//! count are decided there), the same way for one run and for the merge of sharded runs, so
//! that `--shard 0/3, 1/3, 2/3` plus merge gives exactly what one run gives.

use std::path::{Path, PathBuf};

use qa_data::files::{read_keyed_jsonl, write_json_atomic, write_jsonl_atomic};
use qa_data::rejection::Rejection;
use qa_data::settings::{Invalid, Placed, PlacedTable, Section, check};
use qa_data::template::PromptTemplate;
use qa_data::usage::CompletionUsage;
use qa_data::{Provenance, QaRecord, Source};
use qa_filters::filters::Duplicates;
use qa_filters::{Candidate, Filter, FilterConfig, FilterCount, Funnel, Pipeline, Rejected};
use qa_stage::plan::{PlannedInput, Planning, StagePlan, format_count};
use serde::{Deserialize, Serialize};

use crate::backend::{Decoding, GeneratorConfig};
use crate::error::{Error, Result};
use crate::generator::{Generator, Request};
use crate::plan::{Need, generation_plan};
use crate::round_trip::{RoundTrip, RoundTripConfig};
use crate::run::{self, LEDGER_FILE, LedgerLine, RunFiles, RunSettings, SETTINGS_FILE};
use crate::spending::Spending;

/// The default prompt: a FLAN-style instruction to paraphrase, with the passage for context.
pub const DEFAULT_PROMPT: &str = "Paraphrase the question about the passage below so that it \
     asks for the same answer in different words.\n\nPassage: {context}\n\nQuestion: \
     {question}\n\nParaphrased question:";

/// The `synth:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// The generator (the study's: FLAN-T5-XL sampling locally).
    pub generator: GeneratorConfig,
    /// The prompt, with `{question}`, `{context}` and `{answer}` placeholders.
    pub prompt_template: String,
    /// Candidates generated per seed; the first that passes the filters is kept.
    pub candidates: usize,
    /// Records to keep; the run stops once it has them (a sharded run does all its seeds).
    pub target: usize,
    /// Smallest share of candidates that must pass the filters over the first `floor_seeds`
    /// seeds; below it the run stops with an error.
    pub min_acceptance: f64,
    /// Seeds over which `min_acceptance` is checked.
    pub floor_seeds: usize,
    /// Seeds given to the generator together. The local generator groups their prompts by
    /// length into its batches, so a larger window pads less (64 seeds: 1.24× the candidates/s
    /// of 8 at FLAN-T5-base shapes, docs/performance.md); a killed run redoes at most one
    /// window. The output does not depend on it.
    pub seeds_per_batch: usize,
    /// The round-trip filter, off unless set.
    pub round_trip: Option<RoundTripConfig>,
}

impl Placed for SynthConfig {
    // Records stay in seed order whatever the batch.
    const RUN_PLACE: &'static [&'static str] = &["seeds_per_batch"];
    const DECIDING: &'static [&'static str] = &[
        "generator",
        "prompt_template",
        "candidates",
        "target",
        "min_acceptance",
        "floor_seeds",
        "round_trip",
    ];
    const WITHIN: &'static [PlacedTable] = &[
        ("generator", GeneratorConfig::strip_run_place),
        ("round_trip", RoundTripConfig::strip_run_place),
    ];
}

impl Section for SynthConfig {
    const NAME: &'static str = qa_data::settings::section_names::SYNTH;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        self.generator
            .validate()
            .map_err(|e| e.within("generator"))?;
        check::at_least_one("candidates", self.candidates)?;
        check::at_least_one("target", self.target)?;
        if !(0.0..=1.0).contains(&self.min_acceptance) {
            return Err(Invalid::new(
                "min_acceptance",
                format!("must be in [0, 1], not {}", self.min_acceptance),
            ));
        }
        check::at_least_one("seeds_per_batch", self.seeds_per_batch)?;
        match &self.round_trip {
            Some(round_trip) => round_trip.validate().map_err(|e| e.within("round_trip")),
            None => Ok(()),
        }
    }
}

impl Default for SynthConfig {
    fn default() -> Self {
        let sampling = Decoding::Sample {
            temperature: 0.8,
            top_p: 0.95,
        };
        SynthConfig {
            // The study's sampling for synthesis.
            generator: GeneratorConfig::decoding(sampling, 256),
            prompt_template: DEFAULT_PROMPT.to_string(),
            candidates: 4,
            target: 20_000,
            min_acceptance: 0.2,
            floor_seeds: 200,
            seeds_per_batch: 64,
            round_trip: None,
        }
    }
}

impl SynthConfig {
    /// The settings that decide what a run produces, recorded beside its ledger: batch sizes,
    /// devices and the client's knobs may change between a run and its resume.
    fn output_settings(&self) -> SynthConfig {
        SynthConfig {
            generator: self.generator.output_settings(),
            ..self.deciding()
        }
    }
}

/// What decides a synthesis run's output: the synthesis settings and the filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthStage {
    /// The synthesis settings (those that decide the output).
    pub synth: SynthConfig,
    /// The filters.
    pub filters: FilterConfig,
}

/// One candidate of a seed, with the verdict of the filters (duplicates aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateOutcome {
    /// The generated question.
    pub question: String,
    /// The refusing filter, field and reason; `None` when every filter passed.
    pub rejected: Option<Rejected>,
    /// What the endpoint billed for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

/// One line of the ledger: a seed and its candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedOutcome {
    /// The seed's index in the seed file.
    pub index: usize,
    /// The seed's id.
    pub seed_id: String,
    /// Its candidates, in generation order.
    pub candidates: Vec<CandidateOutcome>,
}

/// The kept records.
pub const OUTPUT_FILE: &str = qa_stage::layout::work_files::SYNTHETIC;
/// Refused candidates, with reasons.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// The funnel.
pub const FUNNEL_FILE: &str = qa_stage::layout::work_files::FUNNEL;

/// What synthesis from `input` into `out_dir` would do (see [`qa_stage::plan`]): every seed's
/// candidates (the run may stop sooner, once it keeps `target` records), their time on the
/// local model or their requests to an endpoint, and the round-trip model's answers to each
/// candidate when that filter is on (as if every candidate reached it). The kept records look
/// like their seeds.
pub fn plan(
    config: &SynthConfig,
    input: &PlannedInput,
    out_dir: &Path,
    planning: &Planning,
) -> Result<StagePlan> {
    let template = PromptTemplate::parse(&config.prompt_template)?;
    let seeds = input.records;
    let candidates = seeds * config.candidates as u64;
    let prompts: Vec<String> = input.sample.iter().map(|r| template.render(r)).collect();
    let questions: Vec<String> = input.sample.iter().map(|r| r.question.clone()).collect();
    let need = Need {
        requests: seeds,
        completions: config.candidates,
        prompts: &prompts,
        outputs: &questions,
    };
    let work = format!(
        "{} candidates ({} seeds × {})",
        format_count(candidates),
        format_count(seeds),
        config.candidates
    );
    let mut plan = generation_plan(&config.generator, &need, work, planning)?;
    if let Some(round_trip) = &config.round_trip {
        let checked = PlannedInput {
            records: candidates,
            ..input.clone()
        };
        let answering = t5_stage::plan_prediction(&round_trip.qa_model, &checked, planning)?;
        plan.seconds = plan.seconds.zip(answering.seconds).map(|(a, b)| a + b);
        plan.notes.push(format!(
            "with the round-trip model answering every candidate ({})",
            answering.device.unwrap_or_default()
        ));
    }
    if (config.target as u64) < seeds {
        plan.notes.push(format!(
            "every seed counted: the run stops once it keeps {} records",
            format_count(config.target as u64)
        ));
    }
    let kept = seeds.min(config.target as u64);
    plan.outputs
        .insert(out_dir.join(OUTPUT_FILE), input.derived(kept));
    Ok(plan)
}

/// How a run or merge ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// The funnel over the selected seeds.
    pub funnel: Funnel,
    /// Records kept.
    pub kept: usize,
    /// Seeds looked at.
    pub seeds: usize,
    /// Where the records are.
    pub output: PathBuf,
}

type Settings = RunSettings<SynthStage>;

impl LedgerLine for SeedOutcome {
    fn index(&self) -> usize {
        self.index
    }
}

/// The filters of a run: the configured ones without duplicates (decided at selection), and
/// the prompt's own text added to what counts as a leak.
fn candidate_pipeline(settings: &Settings, template: &PromptTemplate) -> Result<Pipeline> {
    let mut filters = settings.stage.filters.clone();
    filters.duplicates = false;
    if let Some(leak) = &mut filters.prompt_leak {
        leak.fragments
            .extend(template.literal_text().into_iter().map(str::to_string));
    }
    Ok(Pipeline::new(&filters)?)
}

/// The funnel's filters in order: the pipeline's, the round trip, duplicates.
fn filter_names(settings: &Settings, pipeline: &Pipeline) -> Vec<String> {
    let stage = &settings.stage;
    let mut names: Vec<String> = pipeline.names().into_iter().map(str::to_string).collect();
    if stage.synth.round_trip.is_some() {
        names.push(RoundTrip::NAME.to_string());
    }
    if stage.filters.duplicates {
        names.push(Duplicates::default().name().to_string());
    }
    names
}

/// The record candidate `j` of `seed` would be.
fn candidate_record(
    seed: &QaRecord,
    j: usize,
    candidate: &CandidateOutcome,
    settings: &Settings,
) -> QaRecord {
    QaRecord {
        id: format!("{}-syn{j}", seed.id),
        question: candidate.question.clone(),
        context: seed.context.clone(),
        answers: seed.answers.clone(),
        source: Source::SyntheticFromHuman,
        provenance: Some(Provenance {
            parent_id: seed.id.clone(),
            generator: settings.generator.clone(),
            prompt_template: settings.stage.synth.prompt_template.clone(),
            sampling: settings.sampling.clone(),
            candidate_index: Some(j as u32),
            usage: candidate.usage,
        }),
    }
}

/// Picks the kept records from seed outcomes in seed order: per seed, the first candidate that
/// passed the filters and is no duplicate of one kept before; counts the funnel over the
/// candidates looked at; stops at the target.
struct Selection<'a> {
    settings: &'a Settings,
    spending: Spending<'a>,
    seeds: &'a [QaRecord],
    duplicates: Option<Duplicates>,
    funnel: Funnel,
    kept: Vec<QaRecord>,
    rejected: Vec<Rejection>,
    seeds_seen: usize,
}

impl<'a> Selection<'a> {
    fn new(
        settings: &'a Settings,
        generator: &'a GeneratorConfig,
        seeds: &'a [QaRecord],
        filter_names: Vec<String>,
    ) -> Self {
        Selection {
            settings,
            spending: Spending::new(generator),
            seeds,
            duplicates: settings.stage.filters.duplicates.then(Duplicates::default),
            funnel: Funnel {
                input: 0,
                rejected: filter_names
                    .into_iter()
                    .map(|filter| FilterCount {
                        filter,
                        rejected: 0,
                    })
                    .collect(),
                output: 0,
                usage: None,
            },
            kept: Vec::new(),
            rejected: Vec::new(),
            seeds_seen: 0,
        }
    }

    fn full(&self) -> bool {
        self.kept.len() >= self.settings.stage.synth.target
    }

    fn progress(&self, total: usize) -> run::Progress {
        run::Progress {
            done: self.seeds_seen,
            total,
            kept: self.kept.len(),
            rejected: self.rejected.len(),
        }
    }

    fn count(&mut self, filter: &str) {
        if let Some(count) = self.funnel.rejected.iter_mut().find(|c| c.filter == filter) {
            count.rejected += 1;
        }
    }

    /// Counts what the seed's candidates cost, whether or not the selection looks at them.
    fn pay(&mut self, outcome: &SeedOutcome) {
        for candidate in &outcome.candidates {
            self.spending.add(candidate.usage.as_ref());
        }
    }

    fn add(&mut self, outcome: &SeedOutcome) {
        let seed = &self.seeds[outcome.index];
        self.seeds_seen += 1;
        for (j, candidate) in outcome.candidates.iter().enumerate() {
            let record = candidate_record(seed, j, candidate, self.settings);
            self.funnel.input += 1;
            let refusal = match (&candidate.rejected, &self.duplicates) {
                (Some(rejected), _) => Some(rejected.clone()),
                (None, Some(duplicates)) => duplicates
                    .check(&Candidate::with_seed(&record, seed))
                    .err()
                    .map(|verdict| Rejected::new(duplicates, verdict)),
                (None, None) => None,
            };
            match refusal {
                Some(refusal) => {
                    self.count(&refusal.filter);
                    let location = format!("seed {} ({}), candidate {j}", outcome.index, seed.id);
                    self.rejected
                        .push(refusal.into_rejection(&record, LEDGER_FILE, location));
                }
                None => {
                    if let Some(duplicates) = &mut self.duplicates {
                        duplicates.accept(&Candidate::with_seed(&record, seed));
                    }
                    self.funnel.output += 1;
                    self.kept.push(record);
                    return;
                }
            }
        }
    }

    /// Stops the run when the candidates of the first `floor_seeds` seeds (or of all seeds, if
    /// fewer) pass the filters less often than `min_acceptance`.
    fn check_floor(&self, seeds_in_run: usize) -> Result<()> {
        let synth = &self.settings.stage.synth;
        if self.seeds_seen != synth.floor_seeds.min(seeds_in_run) || self.funnel.input == 0 {
            return Ok(());
        }
        let rate = self.funnel.acceptance_rate();
        if rate < synth.min_acceptance {
            return Err(Error::BelowFloor {
                accepted: self.funnel.output,
                checked: self.funnel.input,
                rate: rate * 100.0,
                seeds: self.seeds_seen,
                floor: synth.min_acceptance * 100.0,
                funnel: self.funnel.table(),
            });
        }
        Ok(())
    }

    fn write(&mut self, out_dir: &Path) -> Result<SynthSummary> {
        self.funnel.usage = self.spending.totals();
        let output = out_dir.join(OUTPUT_FILE);
        write_jsonl_atomic(&output, &self.kept)?;
        write_jsonl_atomic(out_dir.join(REJECTED_FILE), &self.rejected)?;
        write_json_atomic(out_dir.join(FUNNEL_FILE), &self.funnel)?;
        Ok(SynthSummary {
            funnel: self.funnel.clone(),
            kept: self.kept.len(),
            seeds: self.seeds_seen,
            output,
        })
    }
}

/// Generates and checks the candidates of the seeds `batch` (indices into `seeds`).
struct CandidateMaker<'a> {
    settings: &'a Settings,
    template: PromptTemplate,
    pipeline: Pipeline,
    round_trip: Option<RoundTrip>,
    generator: &'a dyn Generator,
}

impl CandidateMaker<'_> {
    fn make(
        &mut self,
        seeds: &[QaRecord],
        batch: &[usize],
        spending: &Spending<'_>,
    ) -> Result<Vec<SeedOutcome>> {
        let n = self.settings.stage.synth.candidates;
        let requests: Vec<Request> = batch
            .iter()
            .map(|&i| Request {
                prompt: self.template.render(&seeds[i]),
                n,
                stream: i as u64,
            })
            .collect();
        spending.check(&requests)?;
        let completions = self.generator.generate(&requests)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        // Candidates passing the per-record filters go to the round trip together.
        let mut passed: Vec<(usize, usize, QaRecord)> = Vec::new();
        for (&index, texts) in batch.iter().zip(completions) {
            let seed = &seeds[index];
            let mut candidates = Vec::with_capacity(texts.len());
            for (j, completion) in texts.into_iter().enumerate() {
                let mut candidate = CandidateOutcome {
                    question: completion.text.trim().to_string(),
                    rejected: None,
                    usage: completion.usage,
                };
                let record = candidate_record(seed, j, &candidate, self.settings);
                candidate.rejected = self
                    .pipeline
                    .run(&Candidate::with_seed(&record, seed))
                    .err();
                if candidate.rejected.is_none() {
                    passed.push((outcomes.len(), j, record));
                }
                candidates.push(candidate);
            }
            outcomes.push(SeedOutcome {
                index,
                seed_id: seed.id.clone(),
                candidates,
            });
        }
        if let Some(round_trip) = &self.round_trip {
            let streams: Vec<u64> = passed
                .iter()
                .map(|(o, j, _)| outcomes[*o].index as u64 * n as u64 + *j as u64)
                .collect();
            let records: Vec<QaRecord> = passed.iter().map(|(_, _, r)| r.clone()).collect();
            let verdicts = round_trip.check(&records, &streams)?;
            for ((o, j, _), verdict) in passed.iter().zip(verdicts) {
                outcomes[*o].candidates[*j].rejected = verdict;
            }
        }
        Ok(outcomes)
    }
}

/// Runs (or continues) synthesis as `files` says (`files.input` holds the human seeds);
/// `on_seed` reports progress after each seed.
pub fn synthesize(
    config: &SynthConfig,
    filters: &FilterConfig,
    files: &RunFiles,
    generator: &dyn Generator,
    mut on_seed: impl FnMut(run::Progress),
) -> Result<SynthSummary> {
    config.validate()?;
    let template = PromptTemplate::parse(&config.prompt_template)?;
    let seeds: Vec<QaRecord> = read_keyed_jsonl(&files.input)?;
    let stage = SynthStage {
        synth: config.output_settings(),
        filters: filters.clone(),
    };
    let settings = RunSettings::new(stage, generator, files)?;
    let pipeline = candidate_pipeline(&settings, &template)?;
    let mut selection = Selection::new(
        &settings,
        &config.generator,
        &seeds,
        filter_names(&settings, &pipeline),
    );
    // Models load before the run directory is touched, so a bad model path leaves nothing.
    let round_trip = config
        .round_trip
        .as_ref()
        .map(RoundTrip::load)
        .transpose()?;
    let mut run = run::open::<_, SeedOutcome>(files, &settings, &seeds)?;
    let mut maker = CandidateMaker {
        settings: &settings,
        template,
        pipeline,
        round_trip,
        generator,
    };
    for outcome in &run.done {
        selection.pay(outcome);
        if !selection.full() {
            selection.add(outcome);
        }
    }
    on_seed(selection.progress(run.part_len));
    let stops_at_target = files.shard.count == 1;
    for batch in run.pending.chunks(config.seeds_per_batch) {
        if stops_at_target && selection.full() {
            break;
        }
        for outcome in maker.make(&seeds, batch, &selection.spending)? {
            run.ledger.append(&outcome)?;
            selection.pay(&outcome);
            if !selection.full() {
                selection.add(&outcome);
            }
            on_seed(selection.progress(run.part_len));
            if let Err(below) = selection.check_floor(run.part_len) {
                selection.write(&files.out_dir)?;
                return Err(below);
            }
        }
    }
    run.ledger.sync()?;
    selection.write(&files.out_dir)
}

/// Joins the ledgers of sharded runs (`parts`, one output directory each, all with the same
/// settings but the shard) into `out_dir`, selecting in seed order exactly as one run would,
/// and checks that no seed is missing before the target is reached.
pub fn merge(parts: &[PathBuf], seeds_file: &Path, out_dir: &Path) -> Result<SynthSummary> {
    let seeds: Vec<QaRecord> = read_keyed_jsonl(seeds_file)?;
    let (settings, outcomes) = run::gather::<SynthStage, SeedOutcome>(parts, seeds_file)?;
    let template = PromptTemplate::parse(&settings.stage.synth.prompt_template)?;
    let pipeline = candidate_pipeline(&settings, &template)?;
    // The recorded settings hold no price: a merge counts tokens, not dollars.
    let mut selection = Selection::new(
        &settings,
        &settings.stage.synth.generator,
        &seeds,
        filter_names(&settings, &pipeline),
    );
    for outcome in outcomes.values() {
        selection.pay(outcome);
    }
    for (index, seed) in seeds.iter().enumerate() {
        if selection.full() {
            break;
        }
        let outcome = outcomes
            .get(&index)
            .ok_or_else(|| run::missing(index, &seed.id))?;
        selection.add(outcome);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| qa_data::Error::io(out_dir, e))?;
    write_json_atomic(out_dir.join(SETTINGS_FILE), &settings)?;
    selection.write(out_dir)
}

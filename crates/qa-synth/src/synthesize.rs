//! The synthesis stage: for each human seed, `candidates` paraphrases of its question from a
//! [`Generator`], checked by the quality filters; the first that passes is kept with the seed's
//! context and answer and full provenance.
//!
//! A run appends one line per seed to `ledger.jsonl` (every candidate with its verdict) as it
//! goes, so a killed run resumes after its last complete line. The kept records, the rejections
//! and the funnel are then *selected* from the ledger in seed order (duplicates and the target
//! count are decided there), the same way for one run and for the merge of sharded runs, so
//! that `--shard 0/3, 1/3, 2/3` plus merge gives exactly what one run gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qa_data::files::{
    JsonlAppender, read_appended, read_json, write_json_atomic, write_jsonl_atomic,
};
use qa_data::rejection::Rejection;
use qa_data::template::PromptTemplate;
use qa_data::{Provenance, QaRecord, Source};
use qa_filters::filters::Duplicates;
use qa_filters::{Candidate, Filter, FilterConfig, FilterCount, Funnel, Pipeline, Rejected};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generator::{Generator, Request, T5GeneratorConfig};

/// The default prompt: a FLAN-style instruction to paraphrase, with the passage for context.
pub const DEFAULT_PROMPT: &str = "Paraphrase the question about the passage below so that it \
     asks for the same answer in different words.\n\nPassage: {context}\n\nQuestion: \
     {question}\n\nParaphrased question:";

/// The `synth:` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// The local generator.
    pub generator: T5GeneratorConfig,
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
    /// Seeds generated together.
    pub seeds_per_batch: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            generator: T5GeneratorConfig::default(),
            prompt_template: DEFAULT_PROMPT.to_string(),
            candidates: 4,
            target: 20_000,
            min_acceptance: 0.2,
            floor_seeds: 200,
            seeds_per_batch: 8,
        }
    }
}

/// Part `index` of `count` of a run: seeds whose index is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part (0-based).
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

impl Shard {
    /// The whole run as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether seed `seed_index` belongs to this part.
    pub fn owns(&self, seed_index: usize) -> bool {
        seed_index % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// Parses `i/n`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: a shard is written i/n, e.g. 0/3"))?;
        let parse = |part: &str| {
            part.trim()
                .parse::<usize>()
                .map_err(|e| format!("{text:?}: {e}"))
        };
        let shard = Shard {
            index: parse(index)?,
            count: parse(count)?,
        };
        if shard.count == 0 || shard.index >= shard.count {
            return Err(format!("{text:?}: need 0 <= i < n"));
        }
        Ok(shard)
    }
}

/// One candidate of a seed, with the verdict of the filters (duplicates aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateOutcome {
    /// The generated question.
    pub question: String,
    /// The refusing filter, field and reason; `None` when every filter passed.
    pub rejected: Option<Rejected>,
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

/// What a run was started with, recorded beside its ledger: a resume or a merge must use the
/// same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The synthesis settings.
    pub synth: SynthConfig,
    /// The filters.
    pub filters: FilterConfig,
    /// The generator's name, for provenance.
    pub generator: String,
    /// Its sampling settings, for provenance.
    pub sampling: BTreeMap<String, serde_json::Value>,
    /// The seed file's SHA-256.
    pub seeds_sha256: String,
    /// Which part of the seeds this run does.
    pub shard: Shard,
}

/// The ledger.
pub const LEDGER_FILE: &str = "ledger.jsonl";
/// The settings of the run.
pub const SETTINGS_FILE: &str = "settings.json";
/// The kept records.
pub const OUTPUT_FILE: &str = "synthetic.jsonl";
/// Refused candidates, with reasons.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// The funnel.
pub const FUNNEL_FILE: &str = "funnel.json";

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

/// The filters of a run: the configured ones without duplicates (decided at selection), and
/// the prompt's own text added to what counts as a leak.
fn candidate_pipeline(settings: &RunSettings, template: &PromptTemplate) -> Result<Pipeline> {
    let mut filters = settings.filters.clone();
    filters.duplicates = false;
    if let Some(leak) = &mut filters.prompt_leak {
        leak.fragments
            .extend(template.literal_text().into_iter().map(str::to_string));
    }
    Ok(Pipeline::new(&filters)?)
}

/// The record candidate `j` of `seed` would be.
fn candidate_record(seed: &QaRecord, j: usize, question: &str, settings: &RunSettings) -> QaRecord {
    QaRecord {
        id: format!("{}-syn{j}", seed.id),
        question: question.to_string(),
        context: seed.context.clone(),
        answers: seed.answers.clone(),
        source: Source::SyntheticFromHuman,
        provenance: Some(Provenance {
            parent_id: seed.id.clone(),
            generator: settings.generator.clone(),
            prompt_template: settings.synth.prompt_template.clone(),
            sampling: settings.sampling.clone(),
            candidate_index: Some(j as u32),
        }),
    }
}

/// Picks the kept records from seed outcomes in seed order: per seed, the first candidate that
/// passed the filters and is no duplicate of one kept before; counts the funnel over the
/// candidates looked at; stops at the target.
struct Selection<'a> {
    settings: &'a RunSettings,
    seeds: &'a [QaRecord],
    duplicates: Option<Duplicates>,
    funnel: Funnel,
    kept: Vec<QaRecord>,
    rejected: Vec<Rejection>,
    seeds_seen: usize,
}

impl<'a> Selection<'a> {
    fn new(settings: &'a RunSettings, seeds: &'a [QaRecord], filter_names: &[&str]) -> Self {
        let duplicates = settings.filters.duplicates.then(Duplicates::default);
        let names = filter_names
            .iter()
            .copied()
            .chain(duplicates.as_ref().map(|d| d.name()));
        Selection {
            settings,
            seeds,
            duplicates,
            funnel: Funnel {
                input: 0,
                rejected: names
                    .map(|filter| FilterCount {
                        filter: filter.to_string(),
                        rejected: 0,
                    })
                    .collect(),
                output: 0,
            },
            kept: Vec::new(),
            rejected: Vec::new(),
            seeds_seen: 0,
        }
    }

    fn full(&self) -> bool {
        self.kept.len() >= self.settings.synth.target
    }

    fn count(&mut self, filter: &str) {
        if let Some(count) = self.funnel.rejected.iter_mut().find(|c| c.filter == filter) {
            count.rejected += 1;
        }
    }

    fn add(&mut self, outcome: &SeedOutcome) {
        let seed = &self.seeds[outcome.index];
        self.seeds_seen += 1;
        for (j, candidate) in outcome.candidates.iter().enumerate() {
            let record = candidate_record(seed, j, &candidate.question, self.settings);
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
        let synth = &self.settings.synth;
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

    fn write(&self, out_dir: &Path) -> Result<SynthSummary> {
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

/// Checks `settings` against those recorded in `out_dir` (resume), or records them (a new run,
/// which must not find a ledger there).
fn check_settings(out_dir: &Path, settings: &RunSettings, resume: bool) -> Result<()> {
    let path = out_dir.join(SETTINGS_FILE);
    let ledger = out_dir.join(LEDGER_FILE);
    match (resume, ledger.exists()) {
        (false, true) => Err(Error::Config(format!(
            "{} exists: resume that run, or remove it",
            ledger.display()
        ))),
        (true, true) => {
            let recorded: RunSettings = read_json(&path)?;
            if &recorded != settings {
                return Err(Error::Config(format!(
                    "{} records other settings than this run's: resume with the same config, \
                     seeds and shard",
                    path.display()
                )));
            }
            Ok(())
        }
        _ => {
            std::fs::create_dir_all(out_dir).map_err(|e| qa_data::Error::io(out_dir, e))?;
            Ok(write_json_atomic(&path, settings)?)
        }
    }
}

/// The files and part of a synthesis run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The human seed records (JSONL).
    pub seeds: PathBuf,
    /// Which part of the seeds to do.
    pub shard: Shard,
    /// Where the ledger and outputs go.
    pub out_dir: PathBuf,
    /// Continue the run whose ledger is in `out_dir` (without it, a ledger there is an error).
    pub resume: bool,
}

/// Runs (or continues) synthesis as `files` says. `on_seed(seeds done, seeds of this part,
/// records kept)` reports progress.
pub fn synthesize(
    config: &SynthConfig,
    filters: &FilterConfig,
    files: &RunFiles,
    generator: &dyn Generator,
    mut on_seed: impl FnMut(usize, usize, usize),
) -> Result<SynthSummary> {
    let (seeds_file, shard, out_dir) = (&files.seeds, files.shard, &files.out_dir);
    if config.candidates == 0 || !(0.0..=1.0).contains(&config.min_acceptance) {
        return Err(Error::Config(
            "candidates must be at least 1 and min_acceptance in [0, 1]".to_string(),
        ));
    }
    let template = PromptTemplate::parse(&config.prompt_template)?;
    let seeds: Vec<QaRecord> = qa_data::files::read_jsonl(seeds_file)?;
    let settings = RunSettings {
        synth: config.clone(),
        filters: filters.clone(),
        generator: generator.name(),
        sampling: generator.sampling(),
        seeds_sha256: qa_data::files::sha256_file(seeds_file)?,
        shard,
    };
    check_settings(out_dir, &settings, files.resume)?;
    let mut pipeline = candidate_pipeline(&settings, &template)?;
    let mut selection = Selection::new(&settings, &seeds, &pipeline.names());
    let ledger_path = out_dir.join(LEDGER_FILE);
    let (mut ledger, _) = JsonlAppender::open(&ledger_path)?;
    let done: Vec<SeedOutcome> = read_appended(&ledger_path)?;
    let mine: Vec<usize> = (0..seeds.len()).filter(|&i| shard.owns(i)).collect();
    for outcome in &done {
        if !selection.full() {
            selection.add(outcome);
        }
    }
    let next = done.last().map_or(0, |last| last.index + 1);
    let pending: Vec<usize> = mine.iter().copied().filter(|&i| i >= next).collect();
    on_seed(done.len(), mine.len(), selection.kept.len());
    let stops_at_target = shard.count == 1;
    for batch in pending.chunks(config.seeds_per_batch.max(1)) {
        if stops_at_target && selection.full() {
            break;
        }
        let requests: Vec<Request> = batch
            .iter()
            .map(|&i| Request {
                prompt: template.render(&seeds[i]),
                n: config.candidates,
                stream: i as u64,
            })
            .collect();
        let completions = generator.generate(&requests)?;
        for (&index, texts) in batch.iter().zip(completions) {
            let seed = &seeds[index];
            let candidates = texts
                .iter()
                .enumerate()
                .map(|(j, text)| {
                    let question = text.trim().to_string();
                    let record = candidate_record(seed, j, &question, &settings);
                    let rejected = pipeline.run(&Candidate::with_seed(&record, seed)).err();
                    CandidateOutcome { question, rejected }
                })
                .collect();
            let outcome = SeedOutcome {
                index,
                seed_id: seed.id.clone(),
                candidates,
            };
            ledger.append(&outcome)?;
            if !selection.full() {
                selection.add(&outcome);
            }
            on_seed(selection.seeds_seen, mine.len(), selection.kept.len());
            if let Err(below) = selection.check_floor(mine.len()) {
                selection.write(out_dir)?;
                return Err(below);
            }
        }
    }
    ledger.sync()?;
    selection.write(out_dir)
}

/// Joins the ledgers of sharded runs (`parts`, one output directory each, all with the same
/// settings but the shard) into `out_dir`, selecting in seed order exactly as one run would,
/// and checks that no seed is missing before the target is reached.
pub fn merge(parts: &[PathBuf], seeds_file: &Path, out_dir: &Path) -> Result<SynthSummary> {
    let seeds: Vec<QaRecord> = qa_data::files::read_jsonl(seeds_file)?;
    let mut settings: Option<RunSettings> = None;
    let mut outcomes: BTreeMap<usize, SeedOutcome> = BTreeMap::new();
    for part in parts {
        let part_settings: RunSettings = read_json(part.join(SETTINGS_FILE))?;
        let whole = RunSettings {
            shard: Shard::WHOLE,
            ..part_settings.clone()
        };
        match &settings {
            None => settings = Some(whole),
            Some(first) if *first != whole => {
                return Err(Error::Config(format!(
                    "{} was made with other settings than {}",
                    part.display(),
                    parts[0].display()
                )));
            }
            Some(_) => {}
        }
        for outcome in read_appended::<SeedOutcome>(&part.join(LEDGER_FILE))? {
            outcomes.insert(outcome.index, outcome);
        }
    }
    let Some(settings) = settings else {
        return Err(Error::Config("nothing to merge".to_string()));
    };
    if settings.seeds_sha256 != qa_data::files::sha256_file(seeds_file)? {
        return Err(Error::Config(format!(
            "{} is not the seed file the parts were made from",
            seeds_file.display()
        )));
    }
    let template = PromptTemplate::parse(&settings.synth.prompt_template)?;
    let names = candidate_pipeline(&settings, &template)?.names();
    let mut selection = Selection::new(&settings, &seeds, &names);
    for (index, seed) in seeds.iter().enumerate() {
        if selection.full() {
            break;
        }
        let outcome = outcomes.get(&index).ok_or_else(|| {
            Error::Config(format!(
                "seed {index} ({}) is in none of the parts: a shard is missing or unfinished",
                seed.id
            ))
        })?;
        selection.add(outcome);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| qa_data::Error::io(out_dir, e))?;
    write_json_atomic(out_dir.join(SETTINGS_FILE), &settings)?;
    selection.write(out_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_the_seeds() {
        let shards: Vec<Shard> = ["0/3", "1/3", "2/3"]
            .iter()
            .map(|s| s.parse().expect("parses"))
            .collect();
        for seed in 0..30 {
            assert_eq!(shards.iter().filter(|s| s.owns(seed)).count(), 1);
        }
        for bad in ["3/3", "1/0", "1", "a/b"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shipped_configs_parse() {
        for name in ["experiment.yaml", "offline-squad.yaml"] {
            let file = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../configs")
                .join(name);
            let config: SynthConfig = qa_data::config::load_section(
                "synth",
                &SynthConfig::default(),
                std::slice::from_ref(&file),
                &(),
            )
            .expect("parses");
            assert_eq!(config, SynthConfig::default(), "{name}");
        }
    }
}

//! The run's shareable artefacts in `<run_dir>/export/`, laid out as the Hugging Face Hub and
//! `datasets` expect them:
//!
//! ```text
//! export/README.md                                   what is here, and the upload commands
//! export/datasets/provenance-qa-{human,ai-contaminated,synthetic}/
//!     README.md                                      the dataset card
//!     train.jsonl (validation.jsonl, test.jsonl)     the splits, in the Hub's `squad` columns
//! export/models/provenance-qa-model-{a-human,b-contaminated,c-synthetic}[-seed-N]/
//!     README.md, adapter_config.json, adapter_model.safetensors   a PEFT adapter and its card
//! ```
//!
//! The split files have the columns of the Hub's `squad` dataset (`id, title, context,
//! question, answers: {text, answer_start}`), so that code written for
//! `load_dataset("squad")` runs on them unchanged, plus `source` and, for generated records,
//! `provenance`. Titles and the human answers' offsets come from the SQuAD files `qa-prepare`
//! read. The toolkit never uploads: the top-level README lists the `huggingface-cli upload`
//! commands.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use qa_data::files::{read_json, read_jsonl, sha256_file, write_bytes_atomic, write_jsonl_atomic};
use qa_data::manifest::Manifest;
use qa_data::usage::{UsageTotals, format_usd};
use qa_data::{Provenance, QaRecord};
use qa_squad::prepare::PrepareConfig;
use qa_squad::squad::{SquadSpans, read_spans};
use qa_stage::layout::{EXPORT_CARD, MODELS, Model, RunLayout, Split, model_files};
use serde::Serialize;

use crate::ReportConfig;
use crate::error::{Error, Result};
use crate::gather::{Gathered, SystemRow};
use qa_metrics::evaluate::SystemMetrics;
/// The adapter files a model directory is exported with.
const ADAPTER_FILES: [&str; 2] = [model_files::ADAPTER_CONFIG, model_files::ADAPTER_WEIGHTS];
/// SQuAD's licence, which every derived set keeps (share-alike).
const LICENSE: &str = "cc-by-sa-4.0";
const SQUAD_BIBTEX: &str = "@inproceedings{rajpurkar-etal-2016-squad,
  title = {{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing},
  year = {2016},
  pages = {2383--2392},
  url = {https://aclanthology.org/D16-1264},
}";
const FLAN_T5_BIBTEX: &str = "@article{chung2022scaling,
  title = {Scaling Instruction-Finetuned Language Models},
  author = {Chung, Hyung Won and Hou, Le and Longpre, Shayne and others},
  journal = {arXiv preprint arXiv:2210.11416},
  year = {2022},
  url = {https://arxiv.org/abs/2210.11416},
}";

/// What [`write_export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The dataset folders.
    pub datasets: Vec<PathBuf>,
    /// The adapter folders.
    pub models: Vec<PathBuf>,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// The last component of `dir`: an exported folder's name, which is its Hub repo's name.
fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
}

/// The Hub name of the dataset `model` trains on.
fn dataset_name(run: &RunLayout, model: Model) -> String {
    folder_name(&run.export_dataset(model))
}

/// One row in the columns of the Hub's `squad` dataset.
#[derive(Serialize)]
struct HubRow<'a> {
    id: &'a str,
    title: &'a str,
    context: &'a str,
    question: &'a str,
    answers: HubAnswers,
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
}

#[derive(Serialize)]
struct HubAnswers {
    text: Vec<String>,
    answer_start: Vec<i64>,
}

/// Where `answer` starts in `context`, in characters: SQuAD's own offset for a human answer,
/// else its first occurrence, else -1 (a generated answer need not be a span).
fn answer_start(answer: &str, context: &str, squad: Option<&SquadSpans>) -> i64 {
    if let Some(&(_, start)) = squad.and_then(|s| s.answers.iter().find(|(text, _)| text == answer))
    {
        return start as i64;
    }
    context
        .find(answer)
        .map_or(-1, |byte| context[..byte].chars().count() as i64)
}

fn hub_row<'a>(record: &'a QaRecord, spans: &'a HashMap<String, SquadSpans>) -> HubRow<'a> {
    let parent = record
        .provenance
        .as_ref()
        .map_or(&record.id, |p| &p.parent_id);
    let squad = spans.get(parent);
    HubRow {
        id: &record.id,
        title: squad.map_or("", |s| s.title.as_str()),
        context: &record.context,
        question: &record.question,
        answers: HubAnswers {
            text: record.answers.clone(),
            answer_start: record
                .answers
                .iter()
                .map(|a| answer_start(a, &record.context, squad))
                .collect(),
        },
        source: record.source.as_str(),
        provenance: record.provenance.as_ref(),
    }
}

/// A file with its SHA-256, as a card lists it.
struct Digest {
    shown: String,
    sha256: String,
}

impl Digest {
    fn of(path: &Path) -> Result<Self> {
        Ok(Digest {
            shown: path.display().to_string(),
            sha256: sha256_file(path)?,
        })
    }
}

/// One split of a dataset, written.
struct ExportedSplit {
    name: &'static str,
    file: String,
    rows: usize,
    sha256: String,
}

/// `size_categories` of the Hub's dataset cards.
fn size_category(rows: usize) -> &'static str {
    match rows {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        _ => "1M<n<10M",
    }
}

/// Writes the card `path`: YAML front matter, then the body.
fn write_card(path: &Path, front_matter: &serde_json::Value, body: &str) -> Result<()> {
    let yaml = serde_yaml::to_string(front_matter).map_err(|e| Error::Inconsistent {
        path: path.to_path_buf(),
        message: format!("the card's metadata does not serialise as YAML: {e}"),
    })?;
    Ok(write_bytes_atomic(
        path,
        format!("---\n{yaml}---\n\n{body}").as_bytes(),
    )?)
}

/// Everything the export reads besides what the report gathered.
struct Sources {
    prepare: Manifest,
    spans: HashMap<String, SquadSpans>,
    configs: Vec<Digest>,
    command: String,
    hub_cache: PathBuf,
    /// The run's models are untrained stand-ins (`report.stand_in`).
    stand_in: bool,
}

impl Sources {
    fn read(run: &RunLayout, configs: &[PathBuf], stand_in: bool) -> Result<Self> {
        let manifest = run.processed().join(qa_squad::prepare::MANIFEST_FILE);
        let prepare = match manifest.is_file() {
            true => Manifest::read(&manifest)?,
            false => {
                return Err(Error::Missing {
                    path: manifest,
                    hint: "run the prepare stage first",
                });
            }
        };
        let prepared: PrepareConfig =
            serde_json::from_value(prepare.config.clone()).map_err(|e| Error::Inconsistent {
                path: manifest.clone(),
                message: format!("its config is not prepare's: {e}"),
            })?;
        let mut spans = HashMap::new();
        for path in [prepared.train_file, prepared.test_file] {
            if !path.is_file() {
                return Err(Error::Missing {
                    path,
                    hint: "the export takes titles and answer offsets from the SQuAD files \
                           prepare read (prepare.train_file, prepare.test_file)",
                });
            }
            spans.extend(read_spans(&path)?);
        }
        let mut command = "cargo xtask run-experiment".to_string();
        for config in configs {
            let _ = write!(command, " --config {}", config.display());
        }
        Ok(Sources {
            prepare,
            spans,
            configs: configs
                .iter()
                .map(|c| Digest::of(c))
                .collect::<Result<_>>()?,
            command,
            hub_cache: qa_data::hub_cache::cache_dir(),
            stand_in,
        })
    }

    /// `model`, with the commit the hub cache has for it when known.
    fn model_with_commit(&self, model: &str) -> String {
        match qa_data::hub_cache::cached_commit(model, &self.hub_cache) {
            Some(commit) => format!("`{model}` (commit `{commit}`)"),
            None => format!("`{model}` (revision not known: not in the Hugging Face cache here)"),
        }
    }
}

/// Writes the export of the run in `run_dir` into `<run_dir>/export/`, each file atomically;
/// `configs` are the config files the run was made with (named, with their SHA-256, in the
/// dataset cards' command that reproduces them).
pub fn write_export(
    run_dir: &Path,
    config: &ReportConfig,
    configs: &[PathBuf],
) -> Result<Exported> {
    let run = RunLayout::new(run_dir);
    let gathered = &crate::gather::gather(&run, config)?;
    let sources = Sources::read(&run, configs, config.stand_in)?;
    let mut exported = Exported {
        datasets: Vec::new(),
        models: Vec::new(),
        files: Vec::new(),
    };
    for model in MODELS {
        let dir = run.export_dataset(model);
        write_dataset(&run, model, &dir, &sources, gathered, &mut exported.files)?;
        exported.datasets.push(dir);
    }
    for row in gathered.rows.iter().filter(|r| r.model.is_some()) {
        let dir = write_model(&run, row, &sources, &mut exported.files)?;
        exported.models.push(dir);
    }
    let readme = run.export().join(EXPORT_CARD);
    write_bytes_atomic(&readme, export_readme(&exported, &run.export()).as_bytes())?;
    exported.files.push(readme);
    Ok(exported)
}

fn write_dataset(
    run: &RunLayout,
    model: Model,
    dir: &Path,
    sources: &Sources,
    gathered: &Gathered,
    files: &mut Vec<PathBuf>,
) -> Result<()> {
    let splits: Vec<(&'static str, PathBuf)> = match model {
        Model::A => vec![
            ("train", run.human(Split::Train)),
            ("validation", run.human(Split::Val)),
            ("test", run.human(Split::Test)),
        ],
        Model::B | Model::C => vec![("train", run.training_data(model))],
    };
    let mut written = Vec::new();
    for (name, path) in &splits {
        let records: Vec<QaRecord> = read_jsonl(path)?;
        let file = format!("{name}.jsonl");
        let out = dir.join(&file);
        write_jsonl_atomic(&out, records.iter().map(|r| hub_row(r, &sources.spans)))?;
        written.push(ExportedSplit {
            name,
            file,
            rows: records.len(),
            sha256: sha256_file(&out)?,
        });
        files.push(out);
    }
    let name = dataset_name(run, model);
    let total: usize = written.iter().map(|s| s.rows).sum();
    let front_matter = serde_json::json!({
        "pretty_name": format!("provenance-qa: {} SQuAD training data", model.training_source()),
        "license": LICENSE,
        "language": ["en"],
        "task_categories": ["question-answering"],
        "task_ids": ["extractive-qa"],
        "source_datasets": ["extended|squad"],
        "size_categories": [size_category(total)],
        "annotations_creators": [match model {
            Model::A => "crowdsourced",
            Model::B | Model::C => "machine-generated",
        }],
        "tags": ["squad", "provenance-qa", "synthetic-data", "data-provenance"],
        "configs": [{
            "config_name": "default",
            "data_files": written
                .iter()
                .map(|s| serde_json::json!({"split": s.name, "path": s.file}))
                .collect::<Vec<_>>(),
        }],
    });
    let body = dataset_body(run, model, &name, &written, sources, gathered)?;
    let path = dir.join(EXPORT_CARD);
    write_card(&path, &front_matter, &body)?;
    files.push(path);
    Ok(())
}

/// A JSON value as indented text for a card's code block.
fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The generator of a generation stage's settings, in words: the model (with its commit) or
/// the endpoint, the prompt and the sampling settings.
fn generator_section(
    out: &mut String,
    settings: &serde_json::Value,
    prompt: &str,
    sources: &Sources,
) {
    let generator = &settings["stage"];
    let config = generator.get("synth").unwrap_or(generator)["generator"].clone();
    let backend = config["backend"].as_str().unwrap_or("t5");
    let model = match backend {
        "openai" => format!(
            "`{}` at `{}` (an OpenAI-compatible endpoint)",
            config["openai"]["model"].as_str().unwrap_or("?"),
            config["openai"]["base_url"].as_str().unwrap_or("?")
        ),
        _ => sources.model_with_commit(config["t5"]["model"].as_str().unwrap_or("?")),
    };
    let _ = writeln!(out, "- Generator: {model}.");
    let _ = writeln!(out, "- Prompt template:\n\n```text\n{prompt}\n```\n");
    let _ = writeln!(
        out,
        "- Sampling settings, exactly as recorded in each record's provenance:\n\n```json\n{}\n```\n",
        pretty(&settings["sampling"])
    );
}

fn usage_lines(out: &mut String, usage: Option<&UsageTotals>) {
    if let Some(u) = usage {
        let _ = writeln!(
            out,
            "- Endpoint usage: {} completions, {} retried requests, {} prompt and {} completion \
             tokens{}.",
            u.completions,
            u.retries,
            u.prompt_tokens,
            u.completion_tokens,
            u.cost_usd
                .map_or(String::new(), |c| format!(", {}", format_usd(c)))
        );
    }
}

fn dataset_body(
    run: &RunLayout,
    model: Model,
    name: &str,
    splits: &[ExportedSplit],
    sources: &Sources,
    gathered: &Gathered,
) -> Result<String> {
    let mut out = String::new();
    dataset_introduction(&mut out, model, name, sources);
    dataset_splits(&mut out, name, splits);
    dataset_columns(&mut out);
    human_splits_made(&mut out, sources);
    match model {
        Model::A => {}
        Model::B => contamination_made(&mut out, run, sources, gathered)?,
        Model::C => synthesis_made(&mut out, run, sources, gathered)?,
    }
    dataset_reproducing(&mut out, run, model, sources);
    input_checksums(&mut out, sources);
    dataset_limitations(&mut out);
    Ok(out)
}

/// The card's title, what the set is in the experiment, and the stand-in warning.
fn dataset_introduction(out: &mut String, model: Model, name: &str, sources: &Sources) {
    let _ = writeln!(out, "# {name}\n");
    let _ = writeln!(
        out,
        "The training data of model {} of the provenance-qa experiment, which asks whether a \
         question-answering model trained on synthetic data derived from human seed data beats \
         one trained on AI-contaminated data. FLAN-T5 with LoRA adapters is fine-tuned on each \
         of three sets of SQuAD v1.1 questions: **human** (the original questions and \
         answers), **AI-contaminated** (the same questions and contexts, answers written by a \
         model) and **synthetic** (questions a larger model paraphrased from the human ones, \
         context and answer kept, quality-filtered). This card describes the {} set.\n",
        model.name().to_uppercase(),
        model.training_source()
    );
    if sources.stand_in {
        let _ = writeln!(
            out,
            "> **Stand-in run.** This export comes from a run whose models are untrained \
             stand-ins (the toolkit's smoke profile): its generated text is noise that tests \
             the machinery, not data to learn from.\n"
        );
    }
}

/// The splits with their rows and checksums, and how to load them.
fn dataset_splits(out: &mut String, name: &str, splits: &[ExportedSplit]) {
    let _ = writeln!(
        out,
        "## Splits\n\n| split | file | rows | SHA-256 |\n|---|---|---:|---|"
    );
    for s in splits {
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` |",
            s.name, s.file, s.rows, s.sha256
        );
    }
    let _ = writeln!(
        out,
        "\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"path/to/{name}\")  \
         # or \"<user>/{name}\" once uploaded\n```\n"
    );
}

/// The columns, as the Hub's `squad` dataset has them.
fn dataset_columns(out: &mut String) {
    let _ = writeln!(out, "## Columns\n");
    let _ = writeln!(
        out,
        "The columns of the Hub's `squad` dataset, so that code written for \
         `load_dataset(\"squad\")` runs unchanged:\n\n\
         - `id`, `title` (the Wikipedia article), `context`, `question`;\n\
         - `answers`: `text` (a list) and `answer_start` (each answer's offset in `context`, in \
         characters: SQuAD's own offset for human answers, else the answer's first occurrence, \
         and -1 when a generated answer does not occur in the context);\n\
         - `source`: `human`, `ai_contaminated` or `synthetic_from_human`;\n\
         - `provenance` (generated records): the human record it came from (`parent_id`), the \
         generator, the prompt template, the sampling settings, the candidate's index and, from \
         a paid endpoint, the completion's token `usage`.\n"
    );
}

/// How the human splits were sampled, with prepare's settings.
fn human_splits_made(out: &mut String, sources: &Sources) {
    let _ = writeln!(out, "## How it was made\n");
    let prepare = &sources.prepare;
    let _ = writeln!(
        out,
        "The human splits were sampled **by article** (no context is in two splits) with seed \
         {}: training and validation from the SQuAD v1.1 train file, test from the dev file \
         (`qa-prepare`, provenance-qa {}). Settings:\n\n```json\n{}\n```\n",
        prepare.seed.map_or("none".to_string(), |s| s.to_string()),
        prepare.code_version,
        pretty(&prepare.config)
    );
}

/// How model B's answers were generated, and how they compare with the human ones.
fn contamination_made(
    out: &mut String,
    run: &RunLayout,
    sources: &Sources,
    gathered: &Gathered,
) -> Result<()> {
    let settings: serde_json::Value = read_json(run.contamination_settings())?;
    let _ = writeln!(
        out,
        "Every record of `provenance-qa-human`'s train split keeps its question and \
         context and gets the generator's answer instead of the human one \
         (`qa-contaminate`).\n"
    );
    generator_section(
        out,
        &settings,
        settings["stage"]["prompt_template"].as_str().unwrap_or(""),
        sources,
    );
    if let Some(agreement) = &gathered.agreement {
        let _ = writeln!(
            out,
            "- Against the human answers of the same questions the generated ones \
             score {:.1} EM and {:.1} F1 over {} records; {:.1}% differ from every \
             human answer.",
            agreement.exact_match,
            agreement.f1,
            agreement.records,
            100.0 - agreement.exact_match
        );
    }
    let usage = gathered
        .generation_usage
        .iter()
        .find(|(stage, _)| stage.starts_with("contamination"))
        .map(|(_, u)| u);
    usage_lines(out, usage);
    let _ = writeln!(
        out,
        "- Input SHA-256: `{}`.\n",
        settings["input_sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// How model C's questions were generated and filtered, and what the funnel kept.
fn synthesis_made(
    out: &mut String,
    run: &RunLayout,
    sources: &Sources,
    gathered: &Gathered,
) -> Result<()> {
    let settings: serde_json::Value = read_json(run.synthesis_settings())?;
    let synth = &settings["stage"]["synth"];
    let _ = writeln!(
        out,
        "For each seed of `provenance-qa-human`'s train split, {} candidate paraphrases \
         of its question were sampled; the first that passed every quality filter was \
         kept with the seed's context and answer (`qa-synth`), until {} records were \
         kept. Candidate j of the seed at index i of the file draws from random stream \
         i × candidates + j under the sampling `seed` below, so the set does not depend \
         on batching, sharding or resuming.\n",
        synth["candidates"], synth["target"]
    );
    generator_section(
        out,
        &settings,
        synth["prompt_template"].as_str().unwrap_or(""),
        sources,
    );
    let _ = writeln!(
        out,
        "- Filters and their thresholds (`filters:`; docs/filters.md defines each \
         measure):\n\n```json\n{}\n```\n",
        pretty(&settings["stage"]["filters"])
    );
    if !synth["round_trip"].is_null() {
        let _ = writeln!(
            out,
            "- Round-trip filter:\n\n```json\n{}\n```\n",
            pretty(&synth["round_trip"])
        );
    }
    if let Some(funnel) = &gathered.funnel {
        let _ = writeln!(
            out,
            "- Acceptance: {} of {} candidates kept ({:.1}%); the funnel (refusals by the \
             first filter that refused):\n\n```text\n{}```\n",
            funnel.output,
            funnel.input,
            100.0 * funnel.acceptance_rate(),
            funnel.table()
        );
        usage_lines(out, funnel.usage.as_ref());
    }
    let _ = writeln!(
        out,
        "- Input SHA-256: `{}`.\n",
        settings["input_sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// The command that makes the set again, and where it lands.
fn dataset_reproducing(out: &mut String, run: &RunLayout, model: Model, sources: &Sources) {
    let prepare = &sources.prepare;
    let _ = writeln!(out, "## Reproducing\n\n```sh\n{}\n```\n", sources.command);
    let _ = writeln!(
        out,
        "with the provenance-qa toolkit at version {}; the set is then `{}` in the run \
         directory. The same config gives byte-identical files.\n",
        prepare.code_version,
        match model {
            Model::A => "data/processed/human_{train,val,test}.jsonl".to_string(),
            Model::B | Model::C => run
                .training_data(model)
                .strip_prefix(run.root())
                .unwrap_or(&run.training_data(model))
                .display()
                .to_string(),
        }
    );
}

/// The SQuAD files' and config files' checksums.
fn input_checksums(out: &mut String, sources: &Sources) {
    let prepare = &sources.prepare;
    let _ = writeln!(
        out,
        "## Checksums of the inputs\n\n| file | SHA-256 |\n|---|---|"
    );
    for input in &prepare.inputs {
        let _ = writeln!(out, "| {} (SQuAD) | `{}` |", input.path, input.sha256);
    }
    for config in &sources.configs {
        let _ = writeln!(out, "| {} (config) | `{}` |", config.shown, config.sha256);
    }
}

/// What the sets cannot show, the licence and the citations.
fn dataset_limitations(out: &mut String) {
    let _ = writeln!(out, "\n## Limitations\n");
    let _ = writeln!(
        out,
        "- FLAN-T5 saw SQuAD during instruction tuning (Chung et al., 2022): a FLAN-T5 \
         generator may echo SQuAD's own answers and questions, and any model's scores on \
         SQuAD questions start high before fine-tuning.\n\
         - The sets are small samples of SQuAD v1.1 (English Wikipedia); the synthetic questions \
         paraphrase human ones and keep their answers, so they add wording, not new facts.\n\
         - Generated answers need not be spans of the context (`answer_start` -1).\n\
         - Automatic filters catch malformed and copied questions, not every wrong one.\n"
    );
    let _ = writeln!(
        out,
        "## Licence\n\nCC BY-SA 4.0, as SQuAD; the generated text is derived from it.\n"
    );
    let _ = writeln!(
        out,
        "## Citation\n\n```bibtex\n{SQUAD_BIBTEX}\n\n{FLAN_T5_BIBTEX}\n```"
    );
}

fn write_model(
    run: &RunLayout,
    row: &SystemRow,
    sources: &Sources,
    files: &mut Vec<PathBuf>,
) -> Result<PathBuf> {
    let (Some(model), Some(model_dir)) = (row.model, &row.dir) else {
        return Err(Error::Inconsistent {
            path: run.results(),
            message: format!("system {:?} is not a trained model", row.metrics.name),
        });
    };
    let seed = row.metrics.seed.as_deref();
    let adapter = model_dir.join(model_files::ADAPTER);
    let dir = run.export_model(model, seed);
    let name = folder_name(&dir);
    for file in ADAPTER_FILES {
        let from = adapter.join(file);
        let bytes = std::fs::read(&from).map_err(|e| qa_data::Error::io(&from, e))?;
        let to = dir.join(file);
        write_bytes_atomic(&to, &bytes)?;
        files.push(to);
    }
    let adapter_config: serde_json::Value = read_json(adapter.join(ADAPTER_FILES[0]))?;
    let base_model = adapter_config["base_model_name_or_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run_settings = model_dir.join(model_files::TRAINING_SETTINGS);
    let settings: Option<serde_json::Value> = match run_settings.is_file() {
        true => read_json::<serde_json::Value>(&run_settings)?
            .get("settings")
            .cloned(),
        false => None,
    };
    let card = ModelCard {
        name: &name,
        model,
        base_model: &base_model,
        dataset: dataset_name(run, model),
        settings: settings.as_ref(),
    };
    let mut body = String::new();
    card.introduction(&mut body, sources);
    model_scores(&mut body, &row.metrics);
    let recorded = match card.settings {
        Some(settings) => Recorded::Settings(settings),
        None => Recorded::Adapter {
            gone: &run_settings,
            adapter_config: &adapter_config,
        },
    };
    model_training(&mut body, row, recorded, sources);
    model_limitations(&mut body);
    let path = dir.join(EXPORT_CARD);
    write_card(&path, &card.front_matter(run, &row.metrics), &body)?;
    files.push(path);
    Ok(dir)
}

/// What a model card says of the model besides its scores and training.
struct ModelCard<'a> {
    name: &'a str,
    model: Model,
    base_model: &'a str,
    dataset: String,
    settings: Option<&'a serde_json::Value>,
}

impl ModelCard<'_> {
    /// The card's metadata: base model, library, licence, dataset, tags, and the test scores
    /// as the Hub's model-index.
    fn front_matter(&self, run: &RunLayout, m: &SystemMetrics) -> serde_json::Value {
        let (name, base_model, dataset) = (self.name, self.base_model, &self.dataset);
        serde_json::json!({
            "base_model": base_model,
            "library_name": "peft",
            "license": LICENSE,
            "language": ["en"],
            "datasets": [dataset],
            "pipeline_tag": "text2text-generation",
            "tags": ["lora", "peft", "t5", "question-answering", "squad", "provenance-qa"],
            "model-index": [{
                "name": name,
                "results": [{
                    "task": {"type": "question-answering", "name": "Extractive question answering"},
                    "dataset": {
                        "type": dataset_name(run, Model::A),
                        "name": "provenance-qa-human (test split: SQuAD v1.1 dev questions)",
                        "split": "test",
                    },
                    "metrics": [
                        {"type": "exact_match", "value": round2(m.exact_match.value), "name": "Exact Match"},
                        {"type": "f1", "value": round2(m.f1.value), "name": "F1"},
                    ],
                }],
            }],
        })
    }

    /// The title, what the adapter is, and how to load it.
    fn introduction(&self, body: &mut String, sources: &Sources) {
        let (name, model, base_model, dataset, settings) = (
            self.name,
            self.model,
            self.base_model,
            &self.dataset,
            self.settings,
        );
        let _ = writeln!(body, "# {name}\n");
        let _ = writeln!(
            body,
            "A LoRA adapter for {} trained on the **{}** training data of the provenance-qa \
         experiment ([`{dataset}`](../../datasets/{dataset}/README.md)). It answers prompts \
         of the form `{}` with a short span of the context.\n",
            sources.model_with_commit(base_model),
            model.training_source(),
            settings
                .as_ref()
                .and_then(|s| s["prompt_template"].as_str())
                .unwrap_or("(the training prompt template, not recorded)")
        );
        let _ = writeln!(
            body,
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForSeq2SeqLM\n\
         base = AutoModelForSeq2SeqLM.from_pretrained(\"{base_model}\")\n\
         model = PeftModel.from_pretrained(base, \"path/to/{name}\")\n```\n"
        );
    }
}

/// The test scores with their intervals.
fn model_scores(body: &mut String, m: &SystemMetrics) {
    let _ = writeln!(
        body,
        "## Test scores\n\nOn the {} held-out questions of `provenance-qa-human`'s test split \
         (SQuAD v1.1 dev), with 95% bootstrap intervals:\n\n| metric | score | 95% interval |\n\
         |---|---:|---|",
        m.questions
    );
    for (metric, interval) in [
        ("Exact Match", &m.exact_match),
        ("F1", &m.f1),
        ("ROUGE-L", &m.rouge_l),
    ] {
        let _ = writeln!(
            body,
            "| {metric} | {:.2} | [{:.2}, {:.2}] |",
            interval.value, interval.low, interval.high
        );
    }
}

/// The training settings as the run recorded them, or the adapter's own when they are gone.
enum Recorded<'a> {
    /// The settings the run recorded when it started (its `settings.json`).
    Settings(&'a serde_json::Value),
    /// The run's settings file is gone; the adapter's config stands in.
    Adapter {
        gone: &'a Path,
        adapter_config: &'a serde_json::Value,
    },
}

/// How the adapter was trained: the settings, the best epoch, the compute, the examples.
fn model_training(body: &mut String, row: &SystemRow, recorded: Recorded<'_>, sources: &Sources) {
    let _ = writeln!(body, "\n## Training\n");
    let _ = writeln!(
        body,
        "LoRA (PEFT's semantics) on the frozen base model, trained by `qa-train`: AdamW, linear \
         warm-up then decay, gradient clipping, batches grouped by length. The adapter is the \
         best validation epoch's. Hyperparameters as the run recorded them when it started:\n"
    );
    match recorded {
        Recorded::Settings(settings) => {
            let _ = writeln!(body, "```json\n{}\n```\n", pretty(settings));
        }
        Recorded::Adapter {
            gone,
            adapter_config,
        } => {
            let _ = writeln!(
                body,
                "(not recorded: {} is gone); the adapter's own settings:\n\n```json\n{}\n```\n",
                gone.display(),
                pretty(adapter_config)
            );
        }
    }
    if let Some(training) = &row.training {
        if let Some(best) = training.best() {
            let _ = writeln!(
                body,
                "- Best epoch: {} (validation loss {:.4}, EM {:.1}, F1 {:.1}).",
                best.epoch + 1,
                best.loss,
                best.exact_match,
                best.f1
            );
        }
        let _ = writeln!(
            body,
            "- Compute: {} optimiser steps in {:.1} minutes on {} ({:.0} target tokens/s).",
            training.steps.len(),
            training.seconds / 60.0,
            match training.devices.is_empty() {
                true => "an unrecorded device".to_string(),
                false => training.devices.join(", "),
            },
            training.tokens_per_second()
        );
    }
    if let Some(n) = row.n_train {
        let _ = writeln!(body, "- Training examples: {n}.");
    }
    let _ = writeln!(
        body,
        "- Framework: provenance-qa {} (Rust, Burn); the adapter loads in PEFT.\n",
        sources.prepare.code_version
    );
}

/// What the scores cannot show, the licence and the citations.
fn model_limitations(body: &mut String) {
    let _ = writeln!(
        body,
        "## Limitations\n\nFLAN-T5 saw SQuAD during instruction tuning, so compare these scores \
         with the untuned base model's (the run's zero-shot row), not with zero. The test \
         questions are SQuAD v1.1 dev questions: English Wikipedia, extractive answers.\n"
    );
    let _ = writeln!(
        body,
        "## Licence\n\nCC BY-SA 4.0, as its training data (SQuAD); the base model's own \
         licence applies to it.\n\n## Citation\n\n```bibtex\n{SQUAD_BIBTEX}\n\n{FLAN_T5_BIBTEX}\n```"
    );
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The export's own README: what is in it, and how to upload each folder.
fn export_readme(exported: &Exported, root: &Path) -> String {
    let relative = |dir: &Path| dir.strip_prefix(root).unwrap_or(dir).display().to_string();
    let mut out = String::from(
        "# provenance-qa export\n\nThe run's training sets and adapters, each with its card, as the \
         Hugging Face Hub expects them. The toolkit never uploads; to publish, log in \
         (`huggingface-cli login`), replace `<user>` with your user or organisation, and run \
         from this directory:\n\n```sh\n",
    );
    let folders = [(&exported.datasets, "dataset"), (&exported.models, "model")];
    for (dirs, kind) in folders {
        for dir in dirs {
            let _ = writeln!(
                out,
                "huggingface-cli upload <user>/{} {} . --repo-type {kind}",
                folder_name(dir),
                relative(dir)
            );
        }
    }
    out.push_str(
        "```\n\n(`hf upload` is the same command in newer `huggingface_hub` releases.) After \
         uploading, change the `datasets:` of each model card to the datasets' repo names.\n",
    );
    out
}

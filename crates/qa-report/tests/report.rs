//! The report of a small run directory laid out as the experiment lays it out: scores from real
//! `qa-eval score` output, training logs, a funnel and the three training sets.

use std::path::{Path, PathBuf};

use qa_data::files::{write_json_atomic, write_jsonl_atomic};
use qa_data::usage::UsageTotals;
use qa_data::{Provenance, QaRecord, Source};
use qa_filters::{FilterCount, Funnel};
use qa_metrics::compare::ResamplingConfig;
use qa_report::{ReportConfig, write_report};
use qa_stage::layout::{MODELS, Model, RunLayout, Split, model_files, results_files};
use serde_json::json;

const QUESTIONS: usize = 40;

fn record(id: String, question: String, answer: String, source: Source) -> QaRecord {
    QaRecord {
        context: format!("Some context that holds {answer} somewhere."),
        provenance: (source != Source::Human).then(|| Provenance {
            parent_id: id.split('-').next().unwrap_or_default().to_string(),
            generator: "tiny".into(),
            prompt_template: "{question}".into(),
            sampling: Default::default(),
            candidate_index: None,
            usage: None,
        }),
        id,
        question,
        answers: vec![answer],
        source,
    }
}

/// Predictions that are right for the first `right` of `questions` test questions.
fn predictions(path: &Path, right: usize, questions: usize) {
    let lines = (0..questions).map(|i| {
        let prediction = match i < right {
            true => format!("answer {i}"),
            false => "something else".to_string(),
        };
        json!({"id": format!("t{i}"), "prediction": prediction})
    });
    write_jsonl_atomic(path, lines).expect("write predictions");
}

/// Lays out a finished run in `root`, trained once per seed of `seeds` (`[None]`: the
/// single-seed layout): A right on 30 questions, B on 20, C on 36 (one more per later seed), the
/// base model on none.
fn finished_run(root: &Path, seeds: &[Option<u64>]) -> RunLayout {
    finished_run_of(root, seeds, QUESTIONS, "")
}

/// [`finished_run`] with `questions` test questions whose contexts start with `filler`.
fn finished_run_of(
    root: &Path,
    seeds: &[Option<u64>],
    questions: usize,
    filler: &str,
) -> RunLayout {
    let run = RunLayout::new(root);
    let test = (0..questions).map(|i| {
        let mut test = record(
            format!("t{i}"),
            format!("test question {i}?"),
            format!("answer {i}"),
            Source::Human,
        );
        test.context = format!("{filler}{}", test.context);
        test
    });
    write_jsonl_atomic(run.human(Split::Test), test).expect("test");
    let human: Vec<QaRecord> = (0..8)
        .map(|i| {
            record(
                format!("h{i}"),
                format!("what is the name of the river number {i} in the old town?"),
                format!("river {i}"),
                Source::Human,
            )
        })
        .collect();
    write_jsonl_atomic(run.human(Split::Train), &human).expect("train");
    let contaminated = human.iter().map(|h| {
        let answer = match h.id.as_str() {
            "h0" | "h1" => h.answers[0].clone(),
            _ => "a generated answer".to_string(),
        };
        record(
            format!("{}-ai", h.id),
            h.question.clone(),
            answer,
            Source::AiContaminated,
        )
    });
    write_jsonl_atomic(run.contaminated_train(), contaminated).expect("contaminated");
    let synthetic = human.iter().map(|h| {
        record(
            format!("{}-syn0", h.id),
            format!("which river is number {} in the old town?", &h.id[1..]),
            h.answers[0].clone(),
            Source::SyntheticFromHuman,
        )
    });
    write_jsonl_atomic(run.synthetic_train(), synthetic).expect("synthetic");
    write_json_atomic(
        run.synthesis_funnel(),
        &Funnel {
            input: 16,
            rejected: vec![
                FilterCount {
                    filter: "question_length".into(),
                    rejected: 5,
                },
                FilterCount {
                    filter: "ngram_overlap".into(),
                    rejected: 3,
                },
            ],
            output: 8,
            usage: Some(UsageTotals {
                completions: 16,
                retries: 1,
                unreported: 0,
                prompt_tokens: 4_000,
                completion_tokens: 320,
                cost_usd: Some(0.0025),
            }),
        },
    )
    .expect("funnel");

    let mut systems = vec![("zero_shot".to_string(), run.zero_shot_dir(), 0)];
    for (model, right) in MODELS.into_iter().zip([30, 20, 36]) {
        for (i, &seed) in seeds.iter().enumerate() {
            let dir = run.model_dir(model, seed);
            let log = (1..=6).map(|step| {
                json!({"event": "step", "step": step, "epoch": (step - 1) / 3,
                       "loss": 3.0 / step as f64, "lr": 1e-3, "grad_norm": 1.0,
                       "target_tokens": 40, "seconds": 0.5, "tokens_per_second": 80.0})
            });
            let mut lines: Vec<_> = log.collect();
            lines.push(
                json!({"event": "evaluation", "step": 6, "epoch": 1, "loss": 0.9,
                              "exact_match": 50.0, "f1": 60.0, "generated": 8, "best": true}),
            );
            write_jsonl_atomic(dir.join(model_files::TRAIN_LOG), lines).expect("log");
            let name = match seed {
                Some(seed) => format!("{}@{seed}", model.name()),
                None => model.name().to_string(),
            };
            systems.push((name, dir, right + i));
        }
    }
    let named: Vec<(String, PathBuf)> = systems
        .iter()
        .map(|(name, dir, right)| {
            let path = dir.join(model_files::PREDICTIONS);
            predictions(&path, *right, questions);
            (name.clone(), path)
        })
        .collect();
    let resampling = ResamplingConfig {
        bootstrap_resamples: 500,
        permutation_trials: 500,
        ..ResamplingConfig::default()
    };
    qa_metrics::stage::score_files(&run.human(Split::Test), &named, &resampling, &run.results())
        .expect("score");
    run
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn report_states_the_comparisons_and_writes_every_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = finished_run(dir.path(), &[None]);
    let config = ReportConfig {
        stand_in: true,
        ..ReportConfig::default()
    };
    let written = write_report(run.root(), &config).expect("report");
    let results = run.results();

    let markdown = read(results.join(results_files::REPORT_MD));
    assert!(
        markdown.starts_with("> **Stand-in run:"),
        "first line: {}",
        markdown.lines().next().unwrap_or_default()
    );
    // C is right on 36 of 40 questions, B on 20: +40 points, far outside chance.
    let c_minus_b = written
        .comparisons
        .iter()
        .find(|s| s.starts_with("C − B = +40.0 F1"))
        .expect("C − B stated");
    assert!(
        c_minus_b.ends_with(": significant at 0.05 after adjustment"),
        "{c_minus_b}"
    );
    assert!(c_minus_b.contains(", Holm-adjusted p"), "{c_minus_b}");
    assert!(markdown.contains(c_minus_b));
    assert!(markdown.contains("C > B (synthetic beats contaminated): holds"));
    // C − A = +15 points (6 of 40 questions): its interval lies above 0; B − base = +50.
    assert!(markdown.contains("C − A = +15.0 F1"));
    assert!(markdown.contains(
        "C ≈ A (synthetic as good as human): does not hold: the interval of C − A lies above 0"
    ));
    assert!(markdown.contains("B +50.0 F1"), "zero-shot gains");
    // Synthesis went through a paid endpoint (the funnel's usage); contamination did not.
    assert!(
        markdown.contains("| synthesis (model C's questions) | 16 | 1 | 4,000 | 320 | $0.0025 |"),
        "{markdown}"
    );
    assert!(!markdown.contains("contamination (model B's answers) |"));
    // B's data: 2 of 8 generated answers agree with the human ones.
    assert!(markdown.contains("score 25.0 EM"), "{markdown}");
    assert!(markdown.contains("which river is number 0 in the old town?"));

    let csv = read(results.join(results_files::METRICS_TABLE));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("model,training_source,n_train,seed,em,em_low,em_high,f1"));
    assert!(
        lines[4].starts_with("c,synthetic from human seed,8,,90.00,"),
        "{csv}"
    );

    // What the run could detect: 40 questions, the A − B spread, the original 0.82-point gap.
    assert!(
        markdown.contains("With 40 questions this run could only detect F1 differences of ±"),
        "{markdown}"
    );
    assert!(markdown.contains("the original study's 0.82-point gap would need about"));
    assert!(markdown.contains("| comparison | metric | difference | p | Holm p | MDE ± |"));
    // The breakdowns: every test question ("test question i?") has no wh-word, and every
    // answer ("answer i") has two tokens and a digit.
    assert!(markdown.contains("| other | 40 |"), "{markdown}");
    assert!(markdown.contains("| what | 0 | — |"), "{markdown}");
    assert!(markdown.contains("| 2–3 tokens | 40 |"), "{markdown}");
    assert!(markdown.contains("| number or date | 40 |"), "{markdown}");
    // B's data: 6 of 8 answers differ from the human ones, all of them "what" questions.
    assert!(markdown.contains("75.0% of model B's training answers differ"));
    assert!(markdown.contains("| what | 8 | 75.0% |"), "{markdown}");
    assert!(markdown.contains("per-question explorer of report.html"));

    let html = read(results.join(results_files::REPORT_HTML));
    assert_eq!(html.matches("<svg").count(), 5, "five inline plots");
    for external in ["<img", "<link", "src=", "href=", "<script src"] {
        assert!(!html.contains(external), "the page refers to {external}");
    }
    assert!(html.contains("Stand-in run:"));
    // The explorer: one row per test question, A right on 30 of them, the base model on none.
    assert_eq!(html.matches("<tr data-em=").count(), QUESTIONS);
    assert_eq!(
        html.matches("<tr data-em=\"01").count(),
        30,
        "zero-shot wrong, A right"
    );
    assert!(html.contains("<option value=\"c-right-b-wrong\" data-right=\"c\" data-wrong=\"b\">"));

    // Each PNG decodes, has the plot's size, and shows the models in their colours.
    for stem in [
        "scores",
        "loss_curves",
        "funnel",
        "ngram_overlap",
        "f1_by_question_type",
    ] {
        assert!(results.join(format!("{stem}.svg")).is_file(), "{stem}.svg");
        let file = std::fs::File::open(results.join(format!("{stem}.png"))).expect("png");
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .expect("png header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut pixels).expect("png data");
        assert_eq!((info.width, info.height), (960, 520), "{stem}");
        let has = |rgb: [u8; 3]| pixels.chunks(3).any(|p| p == rgb);
        let expected: &[[u8; 3]] = match stem {
            "scores" | "loss_curves" | "f1_by_question_type" => {
                &[[31, 119, 180], [214, 39, 40], [44, 160, 44]]
            }
            _ => &[[44, 160, 44]],
        };
        for colour in expected {
            assert!(has(*colour), "{stem}.png lacks {colour:?}");
        }
    }
    assert_eq!(written.files.len(), 10 + 3);
}

#[test]
fn with_several_seeds_each_seed_is_compared_and_summarised() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = finished_run(dir.path(), &[Some(1), Some(2)]);
    let written = write_report(run.root(), &ReportConfig::default()).expect("report");
    let markdown = read(run.results().join(results_files::REPORT_MD));
    assert!(markdown.starts_with("# "), "no stand-in line on a real run");
    // Seed 2's C is right on 37 questions, its B on 21: the same +40 points.
    for seed in [1, 2] {
        let stated = format!("C (seed {seed}) − B (seed {seed}) = +40.0 F1");
        assert!(
            written.comparisons.iter().any(|s| s.starts_with(&stated)),
            "{stated}"
        );
    }
    assert!(
        !markdown.contains("C (seed 1) − B (seed 2)"),
        "seeds are not crossed"
    );
    // Mean ± std over the seeds: C is right on 36 and 37 of 40 (91.25 ± 1.77).
    assert!(markdown.contains("| C | 91.2 ± 1.8 |"), "{markdown}");
    let csv = read(run.results().join(results_files::METRICS_TABLE));
    assert!(
        csv.contains("\nc@2,synthetic from human seed,8,2,92.50,"),
        "{csv}"
    );
}

#[test]
fn the_page_stays_a_few_megabytes_for_the_real_test_set() {
    // 2,000 questions with contexts of SQuAD's typical length (~750 characters).
    let dir = tempfile::tempdir().expect("temp dir");
    let filler =
        "A paragraph of a Wikipedia article about the subject of the question. ".repeat(10);
    let run = finished_run_of(dir.path(), &[None], 2_000, &filler);
    write_report(run.root(), &ReportConfig::default()).expect("report");
    let html = read(run.results().join(results_files::REPORT_HTML));
    assert_eq!(html.matches("<tr data-em=").count(), 2_000);
    let megabytes = html.len() as f64 / 1e6;
    assert!(megabytes < 2.5, "report.html is {megabytes:.2} MB");
}

#[test]
fn a_run_without_scores_names_the_missing_file_and_the_stage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = write_report(dir.path(), &ReportConfig::default()).expect_err("no scores");
    let message = error.to_string();
    assert!(message.contains("results/metrics.json"), "{message}");
    assert!(message.contains("run the score stage first"), "{message}");
}

/// Adds to a finished run what the export reads besides the report's inputs: prepare's
/// manifest, the generation stages' settings and the adapters.
fn exportable(run: &RunLayout) {
    // The SQuAD slices stand in for the files prepare read (their ids are not the run's).
    let squad = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/squad");
    let prepare = qa_squad::prepare::PrepareConfig {
        train_file: squad.join("train-slice.json"),
        test_file: squad.join("dev-slice.json"),
        ..Default::default()
    };
    let manifest = json!({"stage": "prepare", "code_version": "0.1.0", "seed": 42,
        "config": prepare, "inputs": [], "outputs": [], "counts": {}});
    write_json_atomic(run.processed().join("manifest.json"), &manifest).expect("manifest");
    let validation = (0..4).map(|i| {
        record(
            format!("v{i}"),
            format!("validation question {i}?"),
            format!("answer {i}"),
            Source::Human,
        )
    });
    write_jsonl_atomic(run.human(Split::Val), validation).expect("validation");
    let synth = json!({"stage": {
            "synth": {"generator": {"backend": "t5", "t5": {"model": "google/flan-t5-xl"}},
                      "prompt_template": "Paraphrase: {question}", "candidates": 2,
                      "target": 8, "round_trip": null},
            "filters": {"min_question_tokens": 8}},
        "generator": "google/flan-t5-xl", "sampling": {"temperature": 0.8},
        "input_sha256": "ab12", "shard": {"index": 0, "count": 1}});
    write_json_atomic(run.synthesis_settings(), &synth).expect("synth settings");
    let contaminate = json!({"stage": {
            "generator": {"backend": "openai",
                          "openai": {"model": "gpt-3.5-turbo", "base_url": "https://api.openai.com/v1"}},
            "prompt_template": "Answer: {question}"},
        "generator": "gpt-3.5-turbo", "sampling": {"temperature": 0.0},
        "input_sha256": "ab12", "shard": {"index": 0, "count": 1}});
    write_json_atomic(run.contamination_settings(), &contaminate).expect("settings");
    for model in MODELS {
        let adapter = run.model_dir(model, None).join(model_files::ADAPTER);
        let config = json!({"base_model_name_or_path": "google/flan-t5-base", "r": 8,
                            "peft_type": "LORA"});
        write_json_atomic(adapter.join("adapter_config.json"), &config).expect("config");
        std::fs::write(adapter.join("adapter_model.safetensors"), b"weights").expect("weights");
    }
}

/// The YAML front matter of a card, parsed.
fn front_matter(card: &str) -> serde_yaml::Mapping {
    let yaml = card
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map(|(yaml, _)| yaml)
        .unwrap_or_else(|| panic!("no front matter:\n{card}"));
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("front matter is not YAML ({e}):\n{yaml}"))
}

fn has_keys(metadata: &serde_yaml::Mapping, keys: &[&str], card: &str) {
    for key in keys {
        assert!(metadata.contains_key(*key), "no {key} in\n{card}");
    }
}

#[test]
fn the_export_holds_squad_shaped_datasets_and_adapters_with_their_cards() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = finished_run(dir.path(), &[None]);
    exportable(&run);
    let configs = [dir.path().join("config.yaml")];
    std::fs::write(&configs[0], "report: {examples: 2}\n").expect("config");
    let exported =
        qa_report::write_export(run.root(), &ReportConfig::default(), &configs).expect("export");
    assert_eq!((exported.datasets.len(), exported.models.len()), (3, 3));

    for (model, splits) in
        MODELS
            .into_iter()
            .zip([&["train", "validation", "test"][..], &["train"], &["train"]])
    {
        let folder = run.export_dataset(model);
        let card = read(folder.join("README.md"));
        let metadata = front_matter(&card);
        has_keys(
            &metadata,
            &[
                "license",
                "language",
                "task_categories",
                "task_ids",
                "source_datasets",
                "size_categories",
                "pretty_name",
                "configs",
            ],
            &card,
        );
        assert_eq!(metadata["license"], "cc-by-sa-4.0");
        assert_eq!(metadata["task_ids"][0], "extractive-qa");
        let files = &metadata["configs"][0]["data_files"];
        let named: Vec<&str> = files
            .as_sequence()
            .expect("data_files")
            .iter()
            .map(|f| f["split"].as_str().expect("split"))
            .collect();
        assert_eq!(named, splits, "{card}");
        for text in [
            "## How it was made",
            "## Limitations",
            "Rajpurkar",
            "Chung, Hyung Won",
            "cargo xtask run-experiment --config",
            "config.yaml (config)",
        ] {
            assert!(card.contains(text), "{text:?} not in\n{card}");
        }
        let rows: Vec<serde_json::Value> =
            qa_data::files::read_jsonl(folder.join("train.jsonl")).expect("rows");
        assert_eq!(rows.len(), 8);
        let row = &rows[0];
        for column in ["id", "title", "context", "question", "source"] {
            assert!(row.get(column).is_some(), "no {column}: {row}");
        }
        let start = row["answers"]["answer_start"][0]
            .as_i64()
            .expect("answer_start");
        let text = row["answers"]["text"][0].as_str().expect("text");
        let context: Vec<char> = row["context"].as_str().expect("context").chars().collect();
        match start {
            -1 => assert_eq!(model, Model::B, "only a generated answer may be no span"),
            _ => assert_eq!(
                context[start as usize..start as usize + text.chars().count()]
                    .iter()
                    .collect::<String>(),
                text
            ),
        }
        assert_eq!(row.get("provenance").is_some(), model != Model::A);
    }
    let contaminated = read(run.export_dataset(MODELS[1]).join("README.md"));
    assert!(contaminated.contains("`gpt-3.5-turbo` at `https://api.openai.com/v1`"));
    let synthetic = read(run.export_dataset(MODELS[2]).join("README.md"));
    assert!(
        synthetic.contains("Acceptance: 8 of 16 candidates kept (50.0%)"),
        "{synthetic}"
    );
    assert!(
        synthetic.contains("16 completions, 1 retried requests, 4000 prompt"),
        "{synthetic}"
    );
    assert!(synthetic.contains("\"min_question_tokens\": 8"));

    let card = read(run.export_model(MODELS[0], None).join("README.md"));
    let metadata = front_matter(&card);
    has_keys(
        &metadata,
        &[
            "base_model",
            "library_name",
            "license",
            "datasets",
            "pipeline_tag",
            "tags",
            "model-index",
        ],
        &card,
    );
    assert_eq!(metadata["library_name"], "peft");
    assert_eq!(metadata["base_model"], "google/flan-t5-base");
    let metrics = &metadata["model-index"][0]["results"][0]["metrics"];
    // A is right on 30 of the 40 test questions.
    assert_eq!(metrics[0]["type"], "exact_match");
    assert_eq!(metrics[0]["value"].as_f64(), Some(75.0));
    assert!(card.contains("| Exact Match | 75.00 | ["), "{card}");
    assert!(
        card.contains("Best epoch: 2 (validation loss 0.9000, EM 50.0, F1 60.0)"),
        "{card}"
    );
    let adapter = run
        .export_model(MODELS[0], None)
        .join("adapter_model.safetensors");
    assert_eq!(std::fs::read(adapter).expect("adapter"), b"weights");

    let readme = read(run.export().join("README.md"));
    assert!(
        readme.contains(
            "huggingface-cli upload <user>/provenance-qa-human datasets/provenance-qa-human . \
             --repo-type dataset"
        ),
        "{readme}"
    );
    assert!(
        readme.contains("provenance-qa-model-c-synthetic models/provenance-qa-model-c-synthetic .")
    );
}

//! The round-trip filter inside synthesis: a QA model (the tiny random T5, whose answers are
//! noise) must agree with each candidate's answer, or the candidate is refused and counted.

use std::collections::BTreeMap;
use std::path::Path;

use qa_filters::{FilterConfig, Funnel};
use qa_synth::round_trip::{RoundTrip, RoundTripConfig};
use qa_synth::run::{RunFiles, Shard};
use qa_synth::synthesize::{FUNNEL_FILE, REJECTED_FILE, SynthConfig, synthesize};
use qa_synth::{Completion, Generator, Request};

/// Paraphrases that pass every per-record filter.
struct GoodParaphrases;

impl Generator for GoodParaphrases {
    fn name(&self) -> String {
        "paraphraser".to_string()
    }

    fn sampling(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::new()
    }

    fn generate(&self, requests: &[Request]) -> qa_synth::Result<Vec<Vec<Completion>>> {
        Ok(requests
            .iter()
            .map(|request| {
                (0..request.n)
                    .map(|j| {
                        Completion::unbilled(format!(
                            "In game {} of the season, what number of points did the home \
                             side put up (take {j})?",
                            request.stream
                        ))
                    })
                    .collect()
            })
            .collect())
    }
}

fn run(dir: &Path, name: &str, min_f1: f64) -> Funnel {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl");
    let mut round_trip = RoundTripConfig {
        min_f1,
        ..RoundTripConfig::default()
    };
    round_trip.qa_model.model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/t5/flan-t5-tiny")
        .display()
        .to_string();
    round_trip.qa_model.generation.max_new_tokens = 6;
    let config = SynthConfig {
        candidates: 2,
        min_acceptance: 0.0,
        round_trip: Some(round_trip),
        ..SynthConfig::default()
    };
    let out = dir.join(name);
    let files = RunFiles {
        input: seeds,
        shard: Shard::WHOLE,
        out_dir: out.clone(),
        resume: false,
    };
    synthesize(
        &config,
        &FilterConfig::default(),
        &files,
        &GoodParaphrases,
        |_| {},
    )
    .expect("runs");
    qa_data::files::read_json(out.join(FUNNEL_FILE)).expect("funnel")
}

fn refused_by(funnel: &Funnel, filter: &str) -> usize {
    funnel
        .rejected
        .iter()
        .find(|count| count.filter == filter)
        .unwrap_or_else(|| panic!("{filter} is not in the funnel: {funnel:?}"))
        .rejected
}

#[test]
fn a_qa_model_that_disagrees_refuses_every_candidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strict = run(dir.path(), "strict", 1.0);
    assert_eq!(
        (strict.input, strict.output),
        (300, 0),
        "{}",
        strict.table()
    );
    assert_eq!(
        refused_by(&strict, RoundTrip::NAME),
        300,
        "{}",
        strict.table()
    );
    let rejected =
        std::fs::read_to_string(dir.path().join("strict").join(REJECTED_FILE)).expect("rejected");
    assert!(rejected.contains("the QA model answered"), "{rejected}");

    // The same candidates pass when any answer will do: only the round trip refused them.
    let lenient = run(dir.path(), "lenient", 0.0);
    assert_eq!(
        (lenient.input, lenient.output),
        (150, 150),
        "{}",
        lenient.table()
    );
    assert_eq!(refused_by(&lenient, RoundTrip::NAME), 0);
}

#[test]
fn seeds_that_repeat_an_id_are_refused_so_no_synthetic_id_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let season = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl");
    let text = std::fs::read_to_string(season).expect("seeds");
    let lines: Vec<&str> = text.lines().take(3).collect();
    let seeds = dir.path().join("seeds.jsonl");
    std::fs::write(&seeds, format!("{}\n{}\n", lines.join("\n"), lines[0])).expect("write");
    let out = dir.path().join("out");
    let files = RunFiles {
        input: seeds,
        shard: Shard::WHOLE,
        out_dir: out.clone(),
        resume: false,
    };
    let err = synthesize(
        &SynthConfig::default(),
        &FilterConfig::default(),
        &files,
        &GoodParaphrases,
        |_| {},
    )
    .expect_err("s0 twice");
    assert!(
        err.to_string()
            .ends_with("duplicate id `s0` at line 4 (first seen at line 1)"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
}

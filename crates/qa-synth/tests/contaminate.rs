//! The contamination stage with a scripted generator: records, provenance, the comparison
//! with the human answers, resuming after a failure, and shards.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use qa_data::{QaRecord, Source};
use qa_synth::contaminate::{
    AnswerOutcome, ContaminateConfig, ContaminationReport, OUTPUT_FILE, REJECTED_FILE, REPORT_FILE,
    contaminate, merge,
};
use qa_synth::run::{RunFiles, Shard};
use qa_synth::{Completion, Error, Generator, Request};

/// Answers the question about game `g` from a fixed pattern: the human answer for g % 4 == 0, a
/// partly right one for 1, a wrong one for 2, nothing for 3; fails once `fail_after` prompts
/// have been answered, like a run killed midway.
struct Scripted {
    fail_after: Option<usize>,
    answered: Cell<usize>,
}

impl Scripted {
    fn new(fail_after: Option<usize>) -> Self {
        Scripted {
            fail_after,
            answered: Cell::new(0),
        }
    }
}

impl Generator for Scripted {
    fn name(&self) -> String {
        "scripted".to_string()
    }

    fn sampling(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::from([("temperature".to_string(), 0.0.into())])
    }

    fn generate(&self, requests: &[Request]) -> qa_synth::Result<Vec<Vec<Completion>>> {
        requests
            .iter()
            .map(|request| {
                if self.fail_after == Some(self.answered.get()) {
                    return Err(Error::Config("the generator died".to_string()));
                }
                self.answered.set(self.answered.get() + 1);
                let game = game_of(&request.prompt);
                let answer = match game % 4 {
                    0 => format!("{} points", game + 10),
                    1 => format!("about {} points or so", game + 10),
                    2 => "the visitors".to_string(),
                    _ => "  ".to_string(),
                };
                Ok(vec![Completion::unbilled(answer)])
            })
            .collect()
    }
}

/// The game a prompt asks about ("… in game 12 of the season …").
fn game_of(prompt: &str) -> u64 {
    let after = &prompt[prompt.find("game ").expect("a game") + 5..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a number")
}

/// The committed human records: 150 games of a season, answers "{game + 10} points".
fn human() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl")
}

fn files(input: &Path, out_dir: &Path, shard: Shard, resume: bool) -> RunFiles {
    RunFiles {
        input: input.to_path_buf(),
        shard,
        out_dir: out_dir.to_path_buf(),
        resume,
    }
}

fn config() -> ContaminateConfig {
    ContaminateConfig {
        records_per_batch: 3,
        ..ContaminateConfig::default()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn answers_are_generated_kept_with_provenance_and_compared_with_the_human_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = human();
    let out = dir.path().join("out");
    let summary = contaminate(
        &config(),
        &files(&input, &out, Shard::WHOLE, false),
        &Scripted::new(None),
        |_| {},
    )
    .expect("runs");

    let records: Vec<QaRecord> =
        qa_data::files::read_jsonl(out.join(OUTPUT_FILE)).expect("records");
    let human: Vec<QaRecord> = qa_data::files::read_jsonl(&input).expect("human");
    // Games 0..150 by game % 4: 38 right, 38 partly right, 37 wrong, 37 empty.
    assert_eq!(records.len(), 113, "the empty answers are left out");
    for record in &records {
        let parent = &record.provenance.as_ref().expect("provenance").parent_id;
        let original = human.iter().find(|h| &h.id == parent).expect("parent");
        assert_eq!(record.id, format!("{parent}-ai"));
        assert_eq!(
            (&record.question, &record.context),
            (&original.question, &original.context)
        );
        assert_eq!(record.source, Source::AiContaminated);
        let provenance = record.provenance.as_ref().expect("provenance");
        assert_eq!(provenance.generator, "scripted");
        assert_eq!(provenance.prompt_template, config().prompt_template);
    }
    assert_eq!(
        records[1].answers,
        vec!["about 11 points or so".to_string()]
    );

    // Exact for the right ones; F1 2·(2/5·1)/(2/5 + 1) = 4/7 for "about N points or so".
    let report: ContaminationReport =
        qa_data::files::read_json(out.join(REPORT_FILE)).expect("report");
    assert_eq!(summary.report, report);
    assert_eq!(
        (report.records, report.kept, report.rejected, report.differs),
        (150, 113, 37, 75)
    );
    let f1 = 100.0 * (38.0 + 38.0 * 4.0 / 7.0) / 113.0;
    assert!(
        (report.exact_match - 100.0 * 38.0 / 113.0).abs() < 1e-9,
        "{report:?}"
    );
    assert!((report.f1 - f1).abs() < 1e-9, "{report:?}");
    let rejected = read(&out.join(REJECTED_FILE));
    assert_eq!(rejected.lines().count(), 37);
    assert!(
        rejected.contains("the generator's answer is empty"),
        "{rejected}"
    );
}

#[test]
fn a_failed_run_resumes_to_the_same_files_and_shards_merge_to_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = human();
    let whole = dir.path().join("whole");
    contaminate(
        &config(),
        &files(&input, &whole, Shard::WHOLE, false),
        &Scripted::new(None),
        |_| {},
    )
    .expect("runs");

    let broken = dir.path().join("broken");
    let failed = contaminate(
        &config(),
        &files(&input, &broken, Shard::WHOLE, false),
        &Scripted::new(Some(5)),
        |_| {},
    );
    assert!(failed.is_err());
    assert_eq!(
        read(&broken.join("ledger.jsonl")).lines().count(),
        3,
        "one whole batch"
    );
    let again = contaminate(
        &config(),
        &files(&input, &broken, Shard::WHOLE, false),
        &Scripted::new(None),
        |_| {},
    );
    assert!(again.is_err(), "a ledger there without --resume is refused");
    let mut seen = Vec::new();
    contaminate(
        &config(),
        &files(&input, &broken, Shard::WHOLE, true),
        &Scripted::new(None),
        |progress| seen.push(progress.done),
    )
    .expect("resumes");
    assert_eq!(
        seen.first(),
        Some(&3),
        "resumed after the ledger's last line"
    );

    let parts: Vec<_> = (0..3)
        .map(|index| {
            let part = dir.path().join(format!("part{index}"));
            let shard = Shard { index, count: 3 };
            contaminate(
                &config(),
                &files(&input, &part, shard, false),
                &Scripted::new(None),
                |_| {},
            )
            .expect("shard runs");
            part
        })
        .collect();
    let merged = dir.path().join("merged");
    merge(&parts, &input, &merged).expect("merges");
    let missing = merge(&parts[..2], &input, &dir.path().join("gap"));
    assert!(
        missing.is_err_and(|e| e.to_string().contains("in none of the parts")),
        "a missing shard is named"
    );
    let twice = [
        parts[0].clone(),
        parts[1].clone(),
        parts[1].clone(),
        parts[2].clone(),
    ];
    let duplicated = merge(&twice, &input, &dir.path().join("twice"));
    assert!(
        duplicated.is_err_and(|e| e.to_string().contains("is shard 1/3 again")),
        "a duplicated shard is named"
    );
    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).expect("cut");
    std::fs::copy(parts[2].join("settings.json"), cut.join("settings.json")).expect("settings");
    let ledger = read(&parts[2].join("ledger.jsonl"));
    let half: String = ledger
        .lines()
        .take(10)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(cut.join("ledger.jsonl"), half).expect("half a ledger");
    let truncated = merge(
        &[parts[0].clone(), parts[1].clone(), cut],
        &input,
        &dir.path().join("truncated"),
    );
    assert!(
        truncated.is_err_and(|e| e.to_string().contains("in none of the parts")),
        "a truncated shard leaves records missing"
    );

    for file in [OUTPUT_FILE, REJECTED_FILE, REPORT_FILE] {
        let expected = read(&whole.join(file));
        assert_eq!(read(&broken.join(file)), expected, "resumed {file}");
        assert_eq!(read(&merged.join(file)), expected, "merged {file}");
    }
}

#[test]
fn a_shard_takes_the_same_records_whatever_the_other_records_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records: Vec<QaRecord> = qa_data::files::read_jsonl(human()).expect("records");
    let mut others = records.clone();
    others.reverse();
    others.retain(|record| !record.id.ends_with('7'));
    let reordered = dir.path().join("reordered.jsonl");
    qa_data::files::write_jsonl_atomic(&reordered, &others).expect("reordered");
    let shard = Shard { index: 1, count: 3 };
    let ids_done = |input: &Path, name: &str| -> BTreeSet<String> {
        let out = dir.path().join(name);
        contaminate(
            &config(),
            &files(input, &out, shard, false),
            &Scripted::new(None),
            |_| {},
        )
        .expect("runs");
        qa_data::files::read_jsonl::<AnswerOutcome>(out.join("ledger.jsonl"))
            .expect("ledger")
            .into_iter()
            .map(|line| line.id)
            .collect()
    };
    let original = ids_done(&human(), "original");
    let changed = ids_done(&reordered, "reordered");
    assert!(!changed.is_empty());
    let kept: BTreeSet<String> = others.iter().map(|r| r.id.clone()).collect();
    let expected: BTreeSet<String> = original.intersection(&kept).cloned().collect();
    assert_eq!(changed, expected);
}

/// The first `n` human records, then the second again: an id on lines 2 and `n + 1`.
fn with_repeated_id(dir: &Path, n: usize) -> PathBuf {
    let text = read(&human());
    let lines: Vec<&str> = text.lines().take(n).collect();
    let path = dir.join("repeats.jsonl");
    std::fs::write(&path, format!("{}\n{}\n", lines.join("\n"), lines[1])).expect("write");
    path
}

#[test]
fn records_that_repeat_an_id_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = with_repeated_id(dir.path(), 5);
    let out = dir.path().join("out");
    let err = contaminate(
        &config(),
        &files(&input, &out, Shard::WHOLE, false),
        &Scripted::new(None),
        |_| {},
    )
    .expect_err("s1 twice");
    assert!(
        matches!(&err, Error::Data(qa_data::Error::DuplicateId { id, first, second, .. })
            if id == "s1" && first == "line 2" && second == "line 6"),
        "{err:?}"
    );
    assert!(!out.exists(), "nothing is written");
}

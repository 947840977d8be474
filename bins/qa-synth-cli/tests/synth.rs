//! `qa-synth` end to end with the tiny random FLAN-T5 fixture as the generator: its output is
//! noise, which is exactly what the acceptance floor must stop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The committed seed records (150 games of a season) and a config whose generator is the tiny
/// fixture.
fn setup(dir: &Path, min_acceptance: f64) -> (PathBuf, PathBuf) {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/records/season.jsonl");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5/flan-t5-tiny");
    let config = dir.join("synth.yaml");
    std::fs::write(
        &config,
        format!(
            "synth:\n  generator:\n    t5:\n      model: {}\n      batch_size: 4\n      \
             generation:\n        max_new_tokens: 24\n        seed: 7\n  candidates: 2\n  \
             target: 1000\n  \
             min_acceptance: {min_acceptance}\n  floor_seeds: 10\n  seeds_per_batch: 1\n",
            model.display()
        ),
    )
    .expect("config");
    (seeds, config)
}

fn synth(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qa-synth"));
    command.args(args);
    command
}

fn run(seeds: &Path, config: &Path, out: &Path, extra: &[&str]) -> Output {
    synth(&[
        "run",
        "--input",
        path(seeds),
        "--config",
        path(config),
        "--out-dir",
        path(out),
    ])
    .args(extra)
    .output()
    .expect("qa-synth runs")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The encoder runs once per seed for all its candidates, and seeds of similar prompt length
/// share a model batch; neither may change a byte of what a run writes.
/// `fixtures/synth/expected/` is what qa-synth wrote before either change, from the same seeds
/// and config (`fixtures/synth/config.yaml`).
#[test]
fn sharing_the_encoder_pass_changes_no_byte_of_the_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let output = synth(&[
        "run",
        "--input",
        "fixtures/synth/seeds.jsonl",
        "--config",
        "fixtures/synth/config.yaml",
        "--out-dir",
        path(&out),
    ])
    .current_dir(&root)
    .output()
    .expect("qa-synth runs");
    assert_success(&output);
    for name in ["ledger.jsonl", "synthetic.jsonl", "funnel.json"] {
        let expected = root.join("fixtures/synth/expected").join(name);
        assert!(read(&out.join(name)) == read(&expected), "{name} differs");
    }
}

#[test]
fn a_resume_with_other_settings_is_refused_and_names_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seeds, config) = setup(tmp.path(), 0.0);
    let out = tmp.path().join("out");
    assert_success(&run(&seeds, &config, &out, &[]));
    let resumed = synth(&["run", "--input", path(&seeds), "--config", path(&config)])
        .args(["--out-dir", path(&out), "--resume"])
        .env("QA_SYNTH__CANDIDATES", "3")
        .output()
        .expect("qa-synth runs");
    assert!(!resumed.status.success());
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains("other settings") && stderr.contains("stage.synth.candidates: 2 → 3"),
        "{stderr}"
    );
}

#[test]
fn garbage_from_a_random_model_trips_the_acceptance_floor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seeds, config) = setup(tmp.path(), 0.2);
    let out = tmp.path().join("out");
    let output = run(&seeds, &config, &out, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("below the floor of 20.0%") && stderr.contains("first 10 seeds"),
        "{stderr}"
    );
    // The funnel is printed with the error, and the rejected candidates are kept with reasons.
    assert!(stderr.contains("(0.0% kept)"), "{stderr}");
    let rejected = read(&out.join("rejected.jsonl"));
    assert_eq!(rejected.lines().count(), 20);
    assert!(read(&out.join("synthetic.jsonl")).is_empty());
    assert_eq!(read(&out.join("ledger.jsonl")).lines().count(), 10);
}

/// The outputs of a run, as text.
fn outputs(dir: &Path) -> Vec<String> {
    ["synthetic.jsonl", "rejected.jsonl", "funnel.json"]
        .iter()
        .map(|name| read(&dir.join(name)))
        .collect()
}

#[test]
fn a_killed_run_resumes_to_exactly_the_uninterrupted_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Enough seeds that the run cannot finish between the check below and the kill.
    let (seeds, config) = setup(tmp.path(), 0.0);
    let whole = tmp.path().join("whole");
    let done = run(&seeds, &config, &whole, &[]);
    assert_success(&done);

    let killed = tmp.path().join("killed");
    let mut child = synth(&["run", "--input", path(&seeds), "--config", path(&config)])
        .args(["--out-dir", path(&killed)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let ledger = killed.join("ledger.jsonl");
    let started = Instant::now();
    while std::fs::read_to_string(&ledger).map_or(0, |t| t.lines().count()) < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let lines = read(&ledger).lines().count();
    assert!(lines < 150, "the run finished before it was killed");

    let again = run(&seeds, &config, &killed, &[]);
    assert!(
        !again.status.success(),
        "a ledger must not be overwritten without --resume"
    );
    let resumed = run(&seeds, &config, &killed, &["--resume"]);
    assert_success(&resumed);
    assert_eq!(outputs(&killed), outputs(&whole));
    assert_eq!(read(&ledger), read(&whole.join("ledger.jsonl")));
}

#[test]
fn three_shards_merged_equal_one_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seeds, config) = setup(tmp.path(), 0.0);
    let whole = tmp.path().join("whole");
    let done = run(&seeds, &config, &whole, &[]);
    assert_success(&done);
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("part{i}")))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let shard = format!("{i}/3");
        let output = run(&seeds, &config, part, &["--shard", &shard]);
        assert_success(&output);
    }
    let merged = tmp.path().join("merged");
    let merge = |parts: &[PathBuf]| {
        let mut command = synth(&["merge", "--input", path(&seeds), "--out-dir", path(&merged)]);
        for part in parts {
            command.args(["--part", path(part)]);
        }
        command.output().expect("merge runs")
    };
    let output = merge(&parts);
    assert_success(&output);
    assert_eq!(outputs(&merged), outputs(&whole));

    let missing = merge(&parts[..2]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("record 0 (s0) is in none of the parts"),
        "{stderr}"
    );
}

/// The JSON line `--plan` prints.
fn plan_of(output: &Output) -> serde_json::Value {
    assert_success(output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON plan")
}

#[test]
fn a_plan_gives_the_local_models_time_or_an_endpoints_requests_and_generates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seeds, config) = setup(tmp.path(), 0.5);
    let out = tmp.path().join("out");
    let plan_dir = tmp.path().join("plan");
    let plan = plan_of(&run(&seeds, &config, &out, &["--plan", path(&plan_dir)]));
    assert_eq!(plan["work"], "300 candidates (150 seeds × 2)", "{plan}");
    assert!(plan["seconds"].as_f64().expect("a time") > 0.0, "{plan}");
    // The kept records are planned, like their seeds, for the stages after synthesis.
    let output = out.join("synthetic.jsonl");
    assert_eq!(plan["outputs"][path(&output)]["records"], 150, "{plan}");
    assert_eq!(
        plan["outputs"][path(&output)]["sample"],
        path(&seeds),
        "{plan}"
    );
    assert!(!out.exists(), "a plan wrote {}", out.display());

    // An endpoint: requests and tokens, and no time (and no key needed to plan).
    let endpoint = tmp.path().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "synth:\n  generator:\n    backend: openai\n    openai:\n      \
         base_url: http://127.0.0.1:9/v1\n      max_tokens: 40\n      \
         price: {prompt_per_million: 0.0, completion_per_million: 1000.0}\n",
    )
    .expect("config");
    let plan = plan_of(&run(
        &seeds,
        &config,
        &out,
        &["--config", path(&endpoint), "--plan", path(&plan_dir)],
    ));
    assert!(plan["seconds"].is_null(), "{plan}");
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("300 requests") && notes.contains("at most 12,000 completion tokens"),
        "{plan}"
    );
    // With a price, the cost: 12,000 completion tokens at $1,000 a million at most.
    assert!(notes.contains("at openai.price (at most $12.00)"), "{plan}");
}

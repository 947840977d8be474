//! The stages' one resume protocol (`qa_stage::resume`), through each stage kind that survives
//! a kill: prediction, synthesis, contamination and training run the same scenario with one
//! helper ([`kill_and_resume`]). A run is killed at its third report of work done and its
//! ledger torn mid-line; then a new start over it is refused (where continuing must be asked
//! for), a resume with one deciding setting changed is refused naming it, and the resume proper
//! ends exactly where an uninterrupted run does.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use qa_data::QaRecord;
use qa_data::files::{read_jsonl, sha256_file, write_jsonl_atomic};
use qa_data::model_files::{ADAPTER, ADAPTER_WEIGHTS, CHECKPOINT, PREDICTIONS};
use qa_filters::FilterConfig;
use qa_stage::shard::Shard;
use qa_synth::contaminate::{self, ContaminateConfig};
use qa_synth::run::{LEDGER_FILE, RunFiles};
use qa_synth::synthesize::{self, SynthConfig};
use qa_synth::{Completion, Generator, Request};
use t5_lora::{
    DeviceChoice, LoraConfig, T5Tokenizer, TOKENIZER_FILE, TrainConfig, load_pretrained,
};
use t5_stage::{
    PredictConfig, TrainingFiles, TrainingProgress, fine_tune, predict_records, prediction_work,
    training_work,
};

/// How the scenario runs a stage.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Ask to continue the work there.
    resume: bool,
    /// One deciding setting differs from the run that was killed.
    changed: bool,
}

/// Runs a stage into a directory, calling the callback after each unit of work done.
type RunStage<'a> = &'a dyn Fn(&Path, Run, &mut dyn FnMut()) -> Result<(), String>;

/// A stage kind, as the scenario drives it.
struct StageKind<'a> {
    name: &'static str,
    run: RunStage<'a>,
    /// The ledger of a run in a directory.
    ledger: fn(&Path) -> PathBuf,
    /// What a run in a directory produced, as text that must not depend on the kill.
    outputs: fn(&Path) -> String,
    /// The setting a `changed` run names in its refusal.
    changed_setting: &'static str,
    /// Whether continuing must be asked for (a new start over a ledger is refused).
    asked: bool,
}

/// Burn's random generator is one per test binary, shared by its threads: training seeds it and
/// draws its adapter's initial weights from it, and loading a model draws from it too. The tests
/// that do either take turns, so that an uninterrupted run and a resumed one start alike.
static BURN_RANDOM: Mutex<()> = Mutex::new(());

fn burn_random_turn() -> MutexGuard<'static, ()> {
    BURN_RANDOM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the callback unwinds with when the run is "killed".
struct Killed;

/// The one scenario, for every stage kind.
fn kill_and_resume(kind: &StageKind<'_>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));
    let plain = Run {
        resume: false,
        changed: false,
    };
    (kind.run)(&whole, plain, &mut || {}).unwrap_or_else(|e| panic!("{}: {e}", kind.name));

    // Killed at its third report of work done, and in the middle of writing a line.
    let mut units = 0;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        (kind.run)(&killed, plain, &mut || {
            units += 1;
            if units == 3 {
                resume_unwind(Box::new(Killed));
            }
        })
    }));
    let payload = outcome.expect_err("the run is killed");
    assert!(payload.is::<Killed>(), "{}: another panic", kind.name);
    let ledger = (kind.ledger)(&killed);
    let mut text = std::fs::read_to_string(&ledger).expect("a ledger");
    assert!(text.lines().count() >= 1, "{}: nothing done", kind.name);
    text.push_str("{\"torn");
    std::fs::write(&ledger, text).expect("torn");

    if kind.asked {
        let err = (kind.run)(&killed, plain, &mut || {}).expect_err("a new start over work");
        assert!(
            err.contains("resume it, or remove it"),
            "{}: {err}",
            kind.name
        );
    }
    let changed = Run {
        resume: true,
        changed: true,
    };
    let err = (kind.run)(&killed, changed, &mut || {}).expect_err("other settings");
    assert!(
        err.contains("other settings") && err.contains(kind.changed_setting),
        "{}: {err}",
        kind.name
    );
    let resume = Run {
        resume: true,
        changed: false,
    };
    (kind.run)(&killed, resume, &mut || {}).unwrap_or_else(|e| panic!("{}: {e}", kind.name));
    assert_eq!(
        (kind.outputs)(&killed),
        (kind.outputs)(&whole),
        "{}",
        kind.name
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn tiny_model() -> PathBuf {
    fixtures().join("t5/flan-t5-tiny")
}

/// The first twelve games of the committed season, in `dir`.
fn twelve_games(dir: &Path) -> PathBuf {
    let season: Vec<QaRecord> =
        read_jsonl(fixtures().join("records/season.jsonl")).expect("season");
    let path = dir.join("games.jsonl");
    write_jsonl_atomic(&path, &season[..12]).expect("writes");
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generation stages' outputs and ledger.
fn generation_outputs(dir: &Path, files: &[&str]) -> String {
    files.iter().map(|name| read(&dir.join(name))).collect()
}

/// Answers from the question's game: a paraphrase for synthesis, the points for contamination.
struct Scripted;

impl Generator for Scripted {
    fn name(&self) -> String {
        "scripted".to_string()
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
                            "In game {} of the season, what number of points did the home side \
                             put up (take {j})?",
                            request.stream
                        ))
                    })
                    .collect()
            })
            .collect())
    }
}

#[test]
fn prediction_resumes_after_a_kill() {
    let _turn = burn_random_turn();
    let tmp = tempfile::tempdir().expect("tempdir");
    let records: Vec<QaRecord> = read_jsonl(twelve_games(tmp.path())).expect("games");
    let device = DeviceChoice::Cpu.resolve().expect("the CPU").device;
    let model = load_pretrained(&tiny_model(), &device).expect("loads");
    let tokenizer = T5Tokenizer::from_file(&tiny_model().join(TOKENIZER_FILE)).expect("tokenizer");
    let out = |dir: &Path| dir.join(PREDICTIONS);
    let run = |dir: &Path, run: Run, tick: &mut dyn FnMut()| {
        let mut config = PredictConfig {
            batch_size: 2,
            ..PredictConfig::default()
        };
        config.generation.max_new_tokens = 4 + usize::from(run.changed);
        predict_records(
            &model,
            &tokenizer,
            &records,
            Shard::WHOLE,
            &config,
            &out(dir),
            |done, _| {
                if done > 0 {
                    tick();
                }
            },
        )
        .map(drop)
        .map_err(|e| e.to_string())
    };
    kill_and_resume(&StageKind {
        name: "prediction",
        run: &run,
        ledger: |dir| prediction_work(&dir.join(PREDICTIONS)).ledger,
        outputs: |dir| read(&dir.join(PREDICTIONS)),
        changed_setting: "generation.max_new_tokens: 4 → 5",
        asked: false,
    });
}

#[test]
fn synthesis_resumes_after_a_kill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = twelve_games(tmp.path());
    let run = |dir: &Path, run: Run, tick: &mut dyn FnMut()| {
        let config = SynthConfig {
            candidates: 2 + usize::from(run.changed),
            min_acceptance: 0.0,
            seeds_per_batch: 1,
            ..SynthConfig::default()
        };
        let files = RunFiles {
            input: input.clone(),
            shard: Shard::WHOLE,
            out_dir: dir.to_path_buf(),
            resume: run.resume,
        };
        synthesize::synthesize(
            &config,
            &FilterConfig::default(),
            &files,
            &Scripted,
            |progress| {
                if progress.done > 0 {
                    tick();
                }
            },
        )
        .map(drop)
        .map_err(|e| e.to_string())
    };
    kill_and_resume(&StageKind {
        name: "synthesis",
        run: &run,
        ledger: |dir| dir.join(LEDGER_FILE),
        outputs: |dir| {
            generation_outputs(
                dir,
                &[
                    LEDGER_FILE,
                    synthesize::OUTPUT_FILE,
                    synthesize::REJECTED_FILE,
                    synthesize::FUNNEL_FILE,
                ],
            )
        },
        changed_setting: "stage.synth.candidates: 2 → 3",
        asked: true,
    });
}

#[test]
fn contamination_resumes_after_a_kill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = twelve_games(tmp.path());
    let run = |dir: &Path, run: Run, tick: &mut dyn FnMut()| {
        let mut config = ContaminateConfig {
            records_per_batch: 1,
            ..ContaminateConfig::default()
        };
        if run.changed {
            config.prompt_template = format!("Answer briefly.\n{}", config.prompt_template);
        }
        let files = RunFiles {
            input: input.clone(),
            shard: Shard::WHOLE,
            out_dir: dir.to_path_buf(),
            resume: run.resume,
        };
        contaminate::contaminate(&config, &files, &Scripted, |progress| {
            if progress.done > 0 {
                tick();
            }
        })
        .map(drop)
        .map_err(|e| e.to_string())
    };
    kill_and_resume(&StageKind {
        name: "contamination",
        run: &run,
        ledger: |dir| dir.join(LEDGER_FILE),
        outputs: |dir| {
            generation_outputs(
                dir,
                &[
                    LEDGER_FILE,
                    contaminate::OUTPUT_FILE,
                    contaminate::REJECTED_FILE,
                    contaminate::REPORT_FILE,
                ],
            )
        },
        changed_setting: "stage.prompt_template",
        asked: true,
    });
}

/// A training run's adapter, its checkpoint's state without the parameters' ids (new in each
/// process), and its log without the wall-clock fields.
fn training_outputs(dir: &Path) -> String {
    let mut state: serde_json::Value =
        qa_data::files::read_json(dir.join(CHECKPOINT).join(t5_lora::STATE_FILE)).expect("state");
    state
        .as_object_mut()
        .expect("an object")
        .remove("param_ids");
    let log: Vec<serde_json::Value> = read_jsonl(training_work(dir).ledger).expect("the log");
    let steps: Vec<String> = log
        .into_iter()
        .map(|mut line| {
            for timing in ["seconds", "tokens_per_second"] {
                line.as_object_mut().expect("an object").remove(timing);
            }
            line.to_string()
        })
        .collect();
    let weights = dir.join(ADAPTER).join(ADAPTER_WEIGHTS);
    format!(
        "{}\n{}\n{}",
        sha256_file(weights).expect("the adapter"),
        state,
        steps.join("\n")
    )
}

/// Trains the tiny model on `train` into `dir`, calling `tick` after each optimiser step.
fn train(train: &Path, dir: &Path, run: Run, tick: &mut dyn FnMut()) -> Result<(), String> {
    let config = TrainConfig {
        model: tiny_model().display().to_string(),
        batch_size: 2,
        epochs: 2,
        checkpoint_every: 2,
        learning_rate: if run.changed { 2e-3 } else { 1e-3 },
        lora: LoraConfig {
            lora_dropout: 0.0,
            ..LoraConfig::default()
        },
        device: DeviceChoice::Cpu,
        ..TrainConfig::default()
    };
    let files = TrainingFiles {
        train: train.to_path_buf(),
        validation: None,
        out_dir: dir.to_path_buf(),
        resume: run.resume,
    };
    fine_tune(&config, &files, |progress| {
        if let TrainingProgress::Step(..) = progress {
            tick();
        }
    })
    .map(drop)
    .map_err(|e| e.to_string())
}

#[test]
fn training_resumes_after_a_kill() {
    let _turn = burn_random_turn();
    let tmp = tempfile::tempdir().expect("tempdir");
    let games = twelve_games(tmp.path());
    let run = |dir: &Path, run: Run, tick: &mut dyn FnMut()| train(&games, dir, run, tick);
    kill_and_resume(&StageKind {
        name: "training",
        run: &run,
        ledger: |dir| training_work(dir).ledger,
        outputs: training_outputs,
        changed_setting: "settings.learning_rate: 0.001 → 0.002",
        asked: true,
    });
}

/// Training recorded its settings inside each checkpoint (`checkpoint/run.json`) before the
/// stages shared one resume protocol; such a run directory has no settings file beside its log,
/// so its settings cannot be checked and a resume is refused, saying why.
#[test]
fn a_training_run_without_its_settings_file_is_refused() {
    let _turn = burn_random_turn();
    let tmp = tempfile::tempdir().expect("tempdir");
    let games = twelve_games(tmp.path());
    let dir = tmp.path().join("old");
    let plain = Run {
        resume: false,
        changed: false,
    };
    train(&games, &dir, plain, &mut || {}).expect("trains");
    std::fs::remove_file(training_work(&dir).settings).expect("removed");
    let resume = Run {
        resume: true,
        ..plain
    };
    let err = train(&games, &dir, resume, &mut || {}).expect_err("refused");
    assert!(
        err.contains("settings.json, which records the settings it was started with, is missing")
            && err.contains("cannot be checked: remove the ledger to start over"),
        "{err}"
    );
}

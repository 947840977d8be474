//! The one resume protocol of the stages that survive a kill (prediction, synthesis,
//! contamination, training).
//!
//! A run's work lives in two files ([`WorkFiles`]):
//! - a **settings file** that records what the run was started with: the settings that decide
//!   its output and the digests of its inputs, written before any work;
//! - an append-only **ledger**, one JSON line per unit of work done, flushed line by line. A
//!   kill loses at most the line being written; opening the ledger again cuts that torn line
//!   away ([`qa_data::files::JsonlAppender`]).
//!
//! [`WorkFiles::open`] starts or continues the run, as [`Resume`] asks: continuing needs the
//! recorded settings to equal this run's, and a refusal names each setting that changed.
//!
//! ```
//! use qa_stage::resume::{Resume, WorkFiles};
//!
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let work = WorkFiles::in_dir(dir.path());
//! // A run with seed 1 does two units, then is killed.
//! let mut run = work.open::<_, u32>(&serde_json::json!({"seed": 1}), Resume::No)?;
//! run.ledger.append(&10)?;
//! run.ledger.append(&11)?;
//! drop(run);
//! // Seed 2 may not continue it.
//! let refused = work.open::<_, u32>(&serde_json::json!({"seed": 2}), Resume::IfAny);
//! assert!(refused.is_err_and(|e| e.to_string().contains("seed: 1 → 2")));
//! // The same settings continue after the two units done.
//! let resumed = work.open::<_, u32>(&serde_json::json!({"seed": 1}), Resume::IfAny)?;
//! assert_eq!(resumed.done, [10, 11]);
//! # Ok::<(), qa_stage::Error>(())
//! ```

use std::path::{Path, PathBuf};

use qa_data::files::{JsonlAppender, read_appended, read_json, write_json_atomic};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The settings file of a run that owns its directory ([`WorkFiles::in_dir`]).
pub const SETTINGS_FILE: &str = "settings.json";
/// The ledger of a run that owns its directory.
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// What a stage does with the work an earlier run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A new run: a ledger already there is refused rather than overwritten.
    No,
    /// Continue the ledger there, if there is one; otherwise start.
    IfAny,
    /// Continue the ledger there, which must exist.
    Required,
}

impl Resume {
    /// [`Resume::IfAny`] when a stage's `--resume` flag is given, [`Resume::No`] otherwise: the
    /// generation stages' flag, which also starts a run that has nothing to continue (training's
    /// asks for [`Resume::Required`]).
    pub fn if_asked(asked: bool) -> Self {
        match asked {
            true => Resume::IfAny,
            false => Resume::No,
        }
    }
}

/// The two files of a run's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkFiles {
    /// What the run was started with (JSON).
    pub settings: PathBuf,
    /// The units of work done, one JSON line each.
    pub ledger: PathBuf,
}

/// A started or continued run: its ledger open for appending and the lines already in it.
pub struct Work<T> {
    /// The ledger, open for appending after its last complete line.
    pub ledger: JsonlAppender,
    /// The lines an earlier run appended (none for a new run).
    pub done: Vec<T>,
    path: PathBuf,
}

impl WorkFiles {
    /// The work files of a run that owns `dir`: [`SETTINGS_FILE`] and [`LEDGER_FILE`] in it.
    pub fn in_dir(dir: &Path) -> Self {
        WorkFiles {
            settings: dir.join(SETTINGS_FILE),
            ledger: dir.join(LEDGER_FILE),
        }
    }

    /// Starts the run that `settings` describe, or continues the one in these files, as
    /// `resume` asks.
    ///
    /// A new run records `settings` first. A continued one must have been started with
    /// `settings`, compared as JSON after reading the recorded ones as `S` (so, for a typed
    /// `S`, a setting added since with its default is no change); a refusal names each setting
    /// that differs. A torn last ledger line is cut away.
    pub fn open<S, T>(&self, settings: &S, resume: Resume) -> Result<Work<T>>
    where
        S: Serialize + DeserializeOwned,
        T: DeserializeOwned,
    {
        match (resume, self.ledger.exists()) {
            (Resume::No, true) => {
                return Err(Error::Resume(format!(
                    "{} holds the work of an earlier run: resume it, or remove it to start over",
                    self.ledger.display()
                )));
            }
            (Resume::Required, false) => {
                return Err(Error::Resume(format!(
                    "nothing to resume: {} does not exist",
                    self.ledger.display()
                )));
            }
            (_, true) => self.check(settings)?,
            (_, false) => write_json_atomic(&self.settings, settings)?,
        }
        let (ledger, _recovery) = JsonlAppender::open(&self.ledger)?;
        Ok(Work {
            ledger,
            done: read_appended(&self.ledger)?,
            path: self.ledger.clone(),
        })
    }

    /// The settings the run was started with.
    pub fn recorded<S: DeserializeOwned>(&self) -> Result<S> {
        Ok(read_json(&self.settings)?)
    }

    /// Removes both files, once what the run produced is safely elsewhere: the ledger first,
    /// since settings without a ledger are simply rewritten by the next run, while a ledger
    /// without its settings is refused.
    pub fn remove(&self) -> Result<()> {
        for file in [&self.ledger, &self.settings] {
            std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;
        }
        Ok(())
    }

    /// Refuses to continue the work in these files unless it was started with `settings`.
    fn check<S: Serialize + DeserializeOwned>(&self, settings: &S) -> Result<()> {
        if !self.settings.is_file() {
            return Err(Error::Resume(format!(
                "{} holds work, but {}, which records the settings it was started with, is \
                 missing (removed, or never written by the version that made the run), so \
                 resuming it cannot be checked: remove the ledger to start over",
                self.ledger.display(),
                self.settings.display()
            )));
        }
        let as_json = |settings: &S| {
            serde_json::to_value(settings)
                .map_err(|e| Error::Resume(format!("{}: {e}", self.settings.display())))
        };
        let changed = differences(&as_json(&self.recorded()?)?, &as_json(settings)?);
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::Resume(format!(
            "{} was started with other settings or data ({}): resume with the ones it was \
             started with, or remove {} to start over",
            self.settings.display(),
            changed.join("; "),
            self.ledger.display()
        )))
    }
}

impl<T: Serialize> Work<T> {
    /// Keeps only the lines done that `keep` accepts, and rewrites the ledger (atomically) to
    /// hold just those: for a run that continues from a point before its last line, such as
    /// training from its last checkpoint.
    pub fn keep_only(&mut self, keep: impl FnMut(&T) -> bool) -> Result<()> {
        self.ledger.sync()?;
        self.done.retain(keep);
        qa_data::files::write_jsonl_atomic(&self.path, &self.done)?;
        self.ledger = JsonlAppender::open(&self.path)?.0;
        Ok(())
    }
}

/// Where two config values differ, one `path: recorded → current` line per differing setting
/// (dotted paths into nested sections).
fn differences(recorded: &serde_json::Value, current: &serde_json::Value) -> Vec<String> {
    fn walk(
        path: &str,
        recorded: &serde_json::Value,
        current: &serde_json::Value,
        out: &mut Vec<String>,
    ) {
        use serde_json::Value;
        match (recorded, current) {
            (Value::Object(before), Value::Object(now)) => {
                let keys: std::collections::BTreeSet<&String> =
                    before.keys().chain(now.keys()).collect();
                for key in keys {
                    let inner = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    let field = |object: &serde_json::Map<String, Value>| {
                        object.get(key).cloned().unwrap_or(Value::Null)
                    };
                    walk(&inner, &field(before), &field(now), out);
                }
            }
            _ if recorded != current => out.push(format!("{path}: {recorded} → {current}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", recorded, current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_setting_by_its_path() {
        let recorded = serde_json::json!({"lr": 0.001, "lora": {"r": 8, "alpha": 16}, "gone": 1});
        let current = serde_json::json!({"lr": 0.01, "lora": {"r": 8, "alpha": 32}, "new": "x"});
        assert_eq!(
            differences(&recorded, &current),
            [
                "gone: 1 → null",
                "lora.alpha: 16 → 32",
                "lr: 0.001 → 0.01",
                "new: null → \"x\"",
            ]
        );
        assert!(differences(&recorded, &recorded).is_empty());
    }

    #[test]
    fn a_new_run_refuses_a_ledger_left_there_and_a_resume_needs_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = WorkFiles::in_dir(dir.path());
        let settings = serde_json::json!({"seed": 1});
        let err = work
            .open::<_, u32>(&settings, Resume::Required)
            .err()
            .expect("nothing to resume");
        assert!(err.to_string().contains("nothing to resume"), "{err}");
        let mut run = work.open::<_, u32>(&settings, Resume::No).expect("starts");
        run.ledger.append(&7).expect("appends");
        drop(run);
        let err = work
            .open::<_, u32>(&settings, Resume::No)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("resume it, or remove it"), "{err}");
        let run = work
            .open::<_, u32>(&settings, Resume::Required)
            .expect("resumes");
        assert_eq!(run.done, [7]);
    }

    #[test]
    fn a_torn_line_is_cut_and_changed_settings_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = WorkFiles::in_dir(dir.path());
        let settings = serde_json::json!({"stage": {"seed": 1, "top_p": 0.9}, "input": "ab"});
        let mut run = work.open::<_, u32>(&settings, Resume::No).expect("starts");
        run.ledger.append(&1).expect("appends");
        drop(run);
        let mut text = std::fs::read_to_string(&work.ledger).expect("ledger");
        text.push_str("12");
        std::fs::write(&work.ledger, text).expect("torn");

        let changed = serde_json::json!({"stage": {"seed": 2, "top_p": 0.9}, "input": "cd"});
        let err = work
            .open::<_, u32>(&changed, Resume::IfAny)
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(
            message.contains("input: \"ab\" → \"cd\"; stage.seed: 1 → 2"),
            "{message}"
        );
        let mut run = work
            .open::<_, u32>(&settings, Resume::IfAny)
            .expect("resumes");
        assert_eq!(run.done, [1]);
        run.ledger.append(&2).expect("appends");
        drop(run);
        assert_eq!(
            std::fs::read_to_string(&work.ledger).expect("ledger"),
            "1\n2\n"
        );
    }

    #[test]
    fn a_ledger_without_its_settings_is_refused_and_removal_takes_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = WorkFiles::in_dir(dir.path());
        let settings = serde_json::json!({"seed": 1});
        drop(work.open::<_, u32>(&settings, Resume::No).expect("starts"));
        std::fs::remove_file(&work.settings).expect("removed");
        let err = work
            .open::<_, u32>(&settings, Resume::IfAny)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("is missing"), "{err}");

        write_json_atomic(&work.settings, &settings).expect("writes");
        work.remove().expect("removes");
        assert!(!work.ledger.exists() && !work.settings.exists());
    }

    #[test]
    fn keep_only_rewrites_the_ledger_with_the_lines_before_a_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = WorkFiles::in_dir(dir.path());
        let settings = serde_json::json!({});
        let mut run = work.open::<_, u32>(&settings, Resume::No).expect("starts");
        for step in 1..=5 {
            run.ledger.append(&step).expect("appends");
        }
        drop(run);
        let mut run = work
            .open::<_, u32>(&settings, Resume::Required)
            .expect("resumes");
        run.keep_only(|&step| step <= 3).expect("retains");
        run.ledger.append(&4).expect("appends");
        drop(run);
        assert_eq!(
            std::fs::read_to_string(&work.ledger).expect("ledger"),
            "1\n2\n3\n4\n"
        );
    }
}

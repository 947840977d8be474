//! What a stage that starts over would replace, held aside until it succeeds.
//!
//! A stage binary checks its settings and inputs when it starts, after the driver has made room
//! for its outputs. So the driver does not delete the outputs of the stage's last finished run:
//! it moves them into `stages/<stage>.held/` (a rename, within the run directory), and moves
//! them back if the stage fails before saving anything to continue from (a setting it refuses,
//! an input it cannot read). A typo in a config then costs nothing already produced. When the
//! stage succeeds, what was held is deleted; when it is killed, it stays held until the stage
//! finishes or fails at its next start.

use std::path::{Path, PathBuf};

use qa_stage::layout::RunLayout;

use crate::error::Result;

/// The held outputs of one stage, and the file that recorded its start before this run.
pub(crate) struct Held {
    dir: PathBuf,
    /// The paths the stage clears, in order; what stood at the i-th is held as `dir/i`.
    cleared: Vec<PathBuf>,
    /// The stage's start record as it was before this run (`None`: there was none).
    started_before: Option<Vec<u8>>,
    started_path: PathBuf,
}

impl Held {
    /// Holds what stands at `cleared` for stage `name` of the run in `run_dir`, leaving those
    /// paths free. Where something is held already (an earlier attempt was killed after
    /// holding the last finished run's outputs), that stays held and what stands at `cleared`
    /// now, the killed attempt's partial outputs, is deleted.
    pub fn set_aside(
        run_dir: &Path,
        name: &str,
        cleared: &[PathBuf],
        started_path: &Path,
    ) -> Result<Self> {
        let dir = held_dir(run_dir, name);
        let started_before = match started_path.is_file() {
            true => {
                Some(std::fs::read(started_path).map_err(|e| qa_data::Error::io(started_path, e))?)
            }
            false => None,
        };
        let held = Held {
            dir,
            cleared: cleared.to_vec(),
            started_before,
            started_path: started_path.to_path_buf(),
        };
        if held.dir.exists() {
            for path in cleared {
                remove(path)?;
            }
            return Ok(held);
        }
        std::fs::create_dir_all(&held.dir).map_err(|e| qa_data::Error::io(&held.dir, e))?;
        for (i, path) in cleared.iter().enumerate() {
            if path.exists() {
                let to = held.dir.join(i.to_string());
                std::fs::rename(path, &to).map_err(|e| qa_data::Error::io(path, e))?;
            }
        }
        Ok(held)
    }

    /// Puts the held outputs back in place of whatever the failed run left there, and the
    /// stage's start record as it was.
    pub fn restore(self) -> Result<()> {
        for (i, path) in self.cleared.iter().enumerate() {
            remove(path)?;
            let from = self.dir.join(i.to_string());
            if from.exists() {
                std::fs::rename(&from, path).map_err(|e| qa_data::Error::io(path, e))?;
            }
        }
        remove(&self.dir)?;
        match &self.started_before {
            Some(bytes) => qa_data::files::write_bytes_atomic(&self.started_path, bytes)?,
            None => remove(&self.started_path)?,
        }
        Ok(())
    }
}

/// Deletes what stage `name` holds, if anything: its run has finished.
pub(crate) fn discard(run_dir: &Path, name: &str) -> Result<()> {
    remove(&held_dir(run_dir, name))
}

/// Where stage `name` holds the outputs it replaces.
fn held_dir(run_dir: &Path, name: &str) -> PathBuf {
    RunLayout::new(run_dir)
        .stages()
        .join(format!("{name}.held"))
}

/// Removes the file or directory at `path`, if there is one.
fn remove(path: &Path) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(|e| qa_data::Error::io(path, e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read")
    }

    #[test]
    fn a_failed_start_gets_the_finished_outputs_back_and_a_success_drops_them() {
        let run = tempfile::tempdir().expect("temp dir");
        let adapter = run.path().join("runs/a/adapter");
        let log = run.path().join("runs/a/train_log.jsonl");
        let missing = run.path().join("runs/a/checkpoint");
        let started = run.path().join("stages/train-a.started.json");
        write(&adapter.join("weights"), "finished");
        write(&log, "finished log");
        let cleared = [adapter.clone(), log.clone(), missing.clone()];

        // Held: the paths are free; the stage writes something and fails.
        let held = Held::set_aside(run.path(), "train-a", &cleared, &started).expect("holds");
        assert!(!adapter.exists() && !log.exists());
        write(&adapter.join("weights"), "partial");
        write(&missing.join("state"), "partial");
        write(&started, "\"new key\"");
        held.restore().expect("restores");
        assert_eq!(read(&adapter.join("weights")), "finished");
        assert_eq!(read(&log), "finished log");
        assert!(!missing.exists() && !started.exists());
        assert!(!held_dir(run.path(), "train-a").exists());

        // A start record from before is put back as it was.
        write(&started, "\"old key\"");
        let held = Held::set_aside(run.path(), "train-a", &cleared, &started).expect("holds");
        write(&started, "\"new key\"");
        held.restore().expect("restores");
        assert_eq!(read(&started), "\"old key\"");

        // Killed after holding: the next attempt keeps the finished run's outputs held and
        // deletes the killed one's; a success then drops them.
        let _killed = Held::set_aside(run.path(), "train-a", &cleared, &started).expect("holds");
        write(&adapter.join("weights"), "killed");
        let again = Held::set_aside(run.path(), "train-a", &cleared, &started).expect("holds");
        assert!(!adapter.exists());
        drop(again);
        assert_eq!(
            read(&held_dir(run.path(), "train-a").join("0/weights")),
            "finished"
        );
        discard(run.path(), "train-a").expect("discards");
        assert!(!held_dir(run.path(), "train-a").exists());
    }
}

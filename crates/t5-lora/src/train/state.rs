//! Checkpoints of a run: where it stands, written atomically as it goes, and read back to
//! resume exactly or to recover the best evaluation's adapter.

use std::path::{Path, PathBuf};

use burn::module::{Module, ParamId};
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::log::EvalLog;
use crate::adapter::{load_adapter, save_adapter};
use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::model::T5ForConditionalGeneration;

/// Where a run stands after an optimiser step: with the adapter and the optimiser state, all
/// that is needed to continue exactly (shuffling and dropout draw from seeds derived from the
/// run's seed, the epoch and the step, so they need no saved generator state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimiser steps done.
    pub step: usize,
    /// The epoch of the next step.
    pub epoch: usize,
    /// Step groups of that epoch already done (the data position).
    pub groups_done: usize,
    /// Ids of the adapter parameters, in model order, that the optimiser state refers to.
    pub param_ids: Vec<u64>,
    /// The best evaluation so far.
    pub best: Option<EvalLog>,
    /// Evaluations since the best one.
    #[serde(default)]
    pub epochs_since_best: usize,
}

impl TrainingState {
    /// Whether early stopping ends the run: `patience` evaluations in a row brought no
    /// improvement (0: never).
    pub fn out_of_patience(&self, patience: usize) -> bool {
        patience > 0 && self.epochs_since_best >= patience
    }

    /// Counts one more optimiser step, of an epoch of `groups` step groups; says whether it
    /// ended the epoch.
    pub(super) fn advance(&mut self, groups: usize) -> bool {
        self.step += 1;
        self.groups_done += 1;
        let epoch_ended = self.groups_done == groups;
        if epoch_ended {
            self.epoch += 1;
            self.groups_done = 0;
        }
        epoch_ended
    }
}

/// Checkpointing of a run: the directories, and how often (in optimiser steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointing {
    /// `adapter_config.json`, `adapter_model.safetensors`, `optimizer.bin` and `state.json`
    /// live here; each checkpoint replaces the previous one atomically.
    pub dir: PathBuf,
    /// Steps between checkpoints (the last step, the end of an epoch with validation, and a
    /// requested stop always get one).
    pub every: usize,
    /// The adapter of the best evaluation so far (a PEFT adapter directory).
    pub best_dir: PathBuf,
}

/// The file holding the optimiser state (Burn's record bytes).
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
/// The file holding [`TrainingState`].
pub const STATE_FILE: &str = "state.json";

/// The state of the checkpoint in `dir`, if there is one to resume from.
pub fn checkpoint_state(dir: &Path) -> Result<Option<TrainingState>> {
    existing_checkpoint(dir)
        .map(|found| qa_data::files::read_json(found.join(STATE_FILE)).map_err(Error::from))
        .transpose()
}

/// The checkpoint directory to resume from, if any: `dir`, or the previous checkpoint that a
/// crash while replacing it left at `dir.old`.
pub(super) fn existing_checkpoint(dir: &Path) -> Option<PathBuf> {
    let old = sibling(dir, "old");
    [dir.to_path_buf(), old]
        .into_iter()
        .find(|d| d.join(STATE_FILE).is_file())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// Writes a checkpoint, with the run's record, into `<dir>.tmp`, then swaps it in for `dir`
/// (the previous one stays at `<dir>.old` until the new one is in place).
pub(super) fn save_checkpoint(
    model: &T5ForConditionalGeneration,
    optimizer: &ModuleOptimizer,
    state: &TrainingState,
    lora: &LoraConfig,
    checkpointing: &Checkpointing,
) -> Result<()> {
    let dir = &checkpointing.dir;
    let (tmp, old) = (sibling(dir, "tmp"), sibling(dir, "old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    save_adapter(model, lora, "", &tmp)?;
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| Error::Training(format!("saving the optimiser state: {e:?}")))?;
    // Inside the temporary directory plain writes suffice: only a complete directory is ever
    // swapped in.
    let optimizer_path = tmp.join(OPTIMIZER_FILE);
    std::fs::write(&optimizer_path, &*bytes).map_err(|e| Error::io(&optimizer_path, e))?;
    qa_data::files::write_json_atomic(tmp.join(STATE_FILE), state)?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Loads the checkpoint in `dir` into `model` (whose adapters must match it) and `optimizer`.
pub(super) fn resume(
    model: T5ForConditionalGeneration,
    optimizer: ModuleOptimizer,
    dir: &Path,
) -> Result<(T5ForConditionalGeneration, ModuleOptimizer, TrainingState)> {
    let state: TrainingState = qa_data::files::read_json(dir.join(STATE_FILE))?;
    let base = model.strip_lora();
    let (mut model, _) = load_adapter(base, dir)?;
    // The optimiser state is keyed by parameter id: give the reloaded adapters their old ids.
    let mut adapters = model.adapter_params_mut();
    if adapters.len() != state.param_ids.len() {
        return Err(Error::Training(format!(
            "{}: the checkpoint has {} adapter tensors, this model {}",
            dir.display(),
            state.param_ids.len(),
            adapters.len()
        )));
    }
    for (param, &id) in adapters.iter_mut().zip(&state.param_ids) {
        param.id = ParamId::from(id);
    }
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let optimizer = optimizer
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| Error::Training(format!("{}: {e:?}", path.display())))?;
    Ok((model, optimizer, state))
}

/// The model of the best evaluation: the one kept in memory, or, when that evaluation was
/// before a resume, the adapter saved in `best_dir` attached to the base weights of `model`.
pub(super) fn restore_best(
    model: &T5ForConditionalGeneration,
    in_memory: Option<T5ForConditionalGeneration>,
    state: &TrainingState,
    checkpointing: Option<&Checkpointing>,
) -> Result<Option<T5ForConditionalGeneration>> {
    match (in_memory, &state.best, checkpointing) {
        (Some(best), _, _) => Ok(Some(best)),
        (None, Some(_), Some(checkpointing)) => {
            let base = model.valid().strip_lora();
            Ok(Some(load_adapter(base, &checkpointing.best_dir)?.0))
        }
        _ => Ok(None),
    }
}

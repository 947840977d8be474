//! Finding a checkpoint: a local directory, or a Hugging Face model id resolved through
//! `hf-hub` into the standard Hugging Face cache, so that files Python tools already
//! downloaded are reused and new downloads land where Python looks for them; and loading one
//! for inference ([`load_model`]: weights, an optional adapter merged in, the tokenizer).

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::adapter::load_adapter;
use crate::checkpoint::{CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, load_pretrained_as};
use crate::device::DeviceChoice;
use crate::dtype::ModelDtype;
use crate::error::{Error, Result};
use crate::model::T5ForConditionalGeneration;
use crate::tokenizer::{T5Tokenizer, TOKENIZER_FILE};

/// Where the Hugging Face cache is, and whether the network may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The `hub` cache directory (`models--org--name/…` lives inside).
    pub cache_dir: PathBuf,
    /// Only use the cache (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubOptions {
    /// The settings Python's `huggingface_hub` would use: `HF_HUB_CACHE`, else `$HF_HOME/hub`,
    /// else `~/.cache/huggingface/hub`; offline when `HF_HUB_OFFLINE` is `1`, `true`, `yes` or
    /// `on`.
    pub fn from_env() -> Self {
        let cache_dir = qa_data::hub_cache::cache_dir();
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        HubOptions { cache_dir, offline }
    }
}

/// The checkpoint directory for `model`: `model` itself when it is a directory, otherwise a
/// Hugging Face id (`org/name`, optionally `@revision`) whose `config.json`, weights (one file
/// or every shard of the index) and, when the repository has one, `tokenizer.json` are taken
/// from the cache or downloaded into it. The answer is the cache's snapshot directory.
pub fn resolve_model(model: &str, options: &HubOptions) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if looks_like_path(model) {
        return Err(not_found(model, "no such directory".to_string()));
    }
    let fetcher = Fetcher::new(model, repo_of(model), options)?;
    let config = fetcher.get(CONFIG_FILE)?;
    if fetcher.get(WEIGHTS_FILE).is_err() {
        let index = fetcher.get(INDEX_FILE).map_err(|e| {
            not_found(
                model,
                format!("neither {WEIGHTS_FILE} nor {INDEX_FILE} is available ({e})"),
            )
        })?;
        for shard in crate::checkpoint::shard_names(&index)? {
            fetcher.get(&shard)?;
        }
    }
    // Optional: a checkpoint is usable without it, and the tokenizer loader names what is
    // missing when a caller needs it.
    let _ = fetcher.get(TOKENIZER_FILE);
    Ok(config
        .parent()
        .expect("a cached file lives in a snapshot directory")
        .to_path_buf())
}

/// The Hugging Face repository a model id (`org/name`, optionally `@revision`) names.
fn repo_of(model: &str) -> Repo {
    let (id, revision) = model.split_once('@').unwrap_or((model, "main"));
    Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string())
}

/// A file of `model` that is already on this machine: in the checkpoint directory, or in the
/// Hugging Face cache for an id (never downloaded).
pub fn local_file(model: &str, file: &str, options: &HubOptions) -> Option<PathBuf> {
    let dir = Path::new(model);
    if dir.is_dir() {
        return Some(dir.join(file)).filter(|path| path.is_file());
    }
    Cache::new(options.cache_dir.clone())
        .repo(repo_of(model))
        .get(file)
}

/// Paths that cannot be Hugging Face ids (which are `name` or `org/name`).
fn looks_like_path(model: &str) -> bool {
    model.starts_with(['.', '/', '~'])
        || model.contains('\\')
        || model
            .split('@')
            .next()
            .is_some_and(|id| id.matches('/').count() > 1)
}

fn not_found(model: &str, message: String) -> Error {
    Error::ModelNotFound {
        model: model.to_string(),
        message,
    }
}

/// Gets files of one repository from the cache, or, online, from the Hub into the cache.
struct Fetcher<'a> {
    model: &'a str,
    cache: hf_hub::CacheRepo,
    api: Option<hf_hub::api::sync::ApiRepo>,
    cache_dir: PathBuf,
}

impl<'a> Fetcher<'a> {
    fn new(model: &'a str, repo: Repo, options: &HubOptions) -> Result<Self> {
        let cache = Cache::new(options.cache_dir.clone());
        let api = if options.offline {
            None
        } else {
            let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
                .with_progress(true)
                .build()
                .map_err(|e| not_found(model, format!("cannot set up the Hub client: {e}")))?;
            Some(api.repo(repo.clone()))
        };
        Ok(Fetcher {
            model,
            cache: cache.repo(repo),
            api,
            cache_dir: options.cache_dir.clone(),
        })
    }

    fn get(&self, file: &str) -> Result<PathBuf> {
        if let Some(path) = self.cache.get(file) {
            return Ok(path);
        }
        match &self.api {
            None => Err(not_found(
                self.model,
                format!(
                    "{file} is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set",
                    self.cache_dir.display()
                ),
            )),
            Some(api) => api.get(file).map_err(|e| {
                not_found(
                    self.model,
                    format!(
                        "{file} is not in the Hugging Face cache at {} and cannot be downloaded \
                         ({e}); without network, fill that cache on a machine that has it \
                         (`huggingface-cli download {}`) and copy it here",
                        self.cache_dir.display(),
                        self.model
                    ),
                )
            }),
        }
    }
}

/// Loads `model` (a Hugging Face id or a checkpoint directory) and its tokenizer onto
/// `device` for inference in `dtype`, with the PEFT LoRA adapter in `adapter` merged into its
/// weights if one is given.
pub fn load_model(
    model: &str,
    adapter: Option<&Path>,
    device: &DeviceChoice,
    dtype: ModelDtype,
) -> Result<(T5ForConditionalGeneration, T5Tokenizer)> {
    let dir = resolve_model(model, &HubOptions::from_env())?;
    let device = device.resolve()?;
    tracing::info!(model, dir = %dir.display(), device = %device.name, %dtype, "loading");
    let mut loaded = load_pretrained_as(&dir, &device.device, dtype)?;
    if let Some(adapter) = adapter {
        let (adapted, lora) = load_adapter(loaded, adapter)?;
        tracing::info!(adapter = %adapter.display(), r = lora.r, targets = ?lora.target_modules, "merging");
        loaded = adapted.merge_lora();
    }
    let tokenizer = T5Tokenizer::from_file(&dir.join(TOKENIZER_FILE))?;
    Ok((loaded, tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() {
        for id in ["google/flan-t5-base", "t5-small", "google/flan-t5-xl@main"] {
            assert!(!looks_like_path(id), "{id}");
        }
        for path in ["./model", "/abs/model", "runs/a/model", "~/models/t5"] {
            assert!(looks_like_path(path), "{path}");
        }
    }
}

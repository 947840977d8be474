//! Loading Hugging Face T5 checkpoints: `config.json` plus `model.safetensors` or a sharded
//! `model.safetensors.index.json`, in f32, f16 or bf16 (computed in f32).
//!
//! Tensors are read by `burn-store`'s `SafetensorsStore`, with `PyTorchToBurnAdapter`
//! transposing linear weights (PyTorch stores `[out, in]`, Burn `[in, out]`) and the remap table
//! below renaming the few checkpoint segments Rust cannot mirror.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::error::{Error, Result};
use crate::model::{T5Config, T5ForConditionalGeneration};

/// The model settings file of a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// A single-file checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Checkpoint name → module path. One rule per segment Rust cannot mirror: Hugging Face's
/// CamelCase attribute names, and the `layer.N` list of a block's sub-layers, whose position
/// means self-attention (0), cross-attention (1 in the decoder) or feed-forward (last).
const REMAP: [(&str, &str); 7] = [
    (
        r"\.layer\.0\.SelfAttention\.",
        ".layer_self_attention.self_attention.",
    ),
    (
        r"\.layer\.0\.layer_norm\.",
        ".layer_self_attention.layer_norm.",
    ),
    (
        r"^(decoder\.block\.\d+)\.layer\.1\.EncDecAttention\.",
        "$1.layer_cross_attention.enc_dec_attention.",
    ),
    (
        r"^(decoder\.block\.\d+)\.layer\.1\.layer_norm\.",
        "$1.layer_cross_attention.layer_norm.",
    ),
    (r"^(encoder\.block\.\d+)\.layer\.1\.", "$1.layer_ff."),
    (r"^(decoder\.block\.\d+)\.layer\.2\.", "$1.layer_ff."),
    (r"\.DenseReluDense\.", ".dense_relu_dense."),
];

/// Checkpoint tensors (named after remapping) that Hugging Face itself ignores: aliases of
/// `shared.weight`, and a cross-attention bias table some old checkpoints carry but T5 never
/// uses (`_keys_to_ignore_on_load_unexpected`).
const IGNORED: [&str; 3] = [
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "decoder.block.0.layer_cross_attention.enc_dec_attention.relative_attention_bias.weight",
];

fn remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(REMAP.to_vec())
        .expect("the remap table's patterns are valid regexes")
}

/// Reads a checkpoint's `config.json`.
pub fn read_config(dir: &Path) -> Result<T5Config> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path,
        message: e.to_string(),
    })
}

/// The safetensors files of the checkpoint in `dir`: `model.safetensors`, or every shard named
/// by `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(Error::NoWeights {
            dir: dir.to_path_buf(),
        });
    }
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
        path: index.clone(),
        source,
    })?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: index.clone(),
        message: e.to_string(),
    })?;
    let files: BTreeSet<&String> = parsed.weight_map.values().collect();
    files
        .into_iter()
        .map(|name| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::Io {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("shard named in {INDEX_FILE} is missing"),
                    ),
                })
            }
        })
        .collect()
}

/// Loads the checkpoint in `dir` onto `device`.
///
/// Every tensor the model needs must be present, with the right shape, in exactly one shard;
/// tensors the model does not know are an error too, except those Hugging Face ignores.
pub fn load_pretrained(dir: &Path, device: &Device) -> Result<T5ForConditionalGeneration> {
    let config = read_config(dir)?;
    let mut model = config.init(device);
    let mut still_missing: Option<HashSet<String>> = None;
    let mut unexpected = Vec::new();
    for file in weight_files(dir)? {
        let mut store = SafetensorsStore::from_file(&file)
            .with_from_adapter(PyTorchToBurnAdapter)
            .remap(remapper())
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::CorruptWeights {
                path: file.clone(),
                message: e.to_string(),
            })?;
        if let Some(error) = result.errors.first() {
            return Err(Error::BadTensor {
                path: file.clone(),
                name: format!("{error:?}"),
                message: format!("{} tensor(s) could not be applied", result.errors.len()),
            });
        }
        let missing_here: HashSet<String> =
            result.missing.into_iter().map(|(path, _)| path).collect();
        still_missing = Some(match still_missing {
            None => missing_here,
            Some(before) => before.intersection(&missing_here).cloned().collect(),
        });
        unexpected.extend(
            result
                .unused
                .into_iter()
                .filter(|name| !IGNORED.contains(&name.as_str())),
        );
    }
    let mut missing: Vec<String> = still_missing.unwrap_or_default().into_iter().collect();
    missing.sort();
    if !missing.is_empty() {
        return Err(Error::MissingTensors {
            dir: dir.to_path_buf(),
            names: missing,
        });
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(Error::UnexpectedTensors {
            dir: dir.to_path_buf(),
            names: unexpected,
        });
    }
    Ok(model.map(&mut ToF32))
}

/// Loaded parameters keep the checkpoint's dtype; T5 is computed in f32 (it overflows in f16,
/// and mixing dtypes in one operation is an error), so f16 and bf16 weights are widened.
struct ToF32;

impl ModuleMapper for ToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            if tensor.dtype() == burn::tensor::DType::F32 {
                tensor
            } else {
                tensor.cast(burn::tensor::DType::F32)
            }
        })
    }
}

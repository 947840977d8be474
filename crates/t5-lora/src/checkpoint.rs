//! Loading Hugging Face T5 checkpoints: `config.json` plus `model.safetensors` or a sharded
//! `model.safetensors.index.json`, in f32, f16 or bf16 (computed in f32).
//!
//! Tensors are read by `burn-store`'s `SafetensorsStore` (`safetensors_reader`), with
//! `PyTorchToBurnAdapter` transposing linear weights (PyTorch stores `[out, in]`, Burn
//! `[in, out]`), f16 and bf16 widened to f32 on the host, and the remap table below renaming the
//! few checkpoint segments Rust cannot mirror.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use burn::prelude::*;
use burn::store::{
    ApplyError, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};

use crate::error::{Error, Result};
use crate::model::{T5Config, T5ForConditionalGeneration};

/// The model settings file of a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// A single-file checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Checkpoint name → module path. One rule per segment Rust cannot mirror: Hugging Face's
/// CamelCase attribute names, the `layer.N` list of a block's sub-layers, whose position means
/// self-attention (0), cross-attention (1 in the decoder) or feed-forward (last), and the
/// `base` inside each adaptable projection ([`crate::lora::LoraLinear`]).
pub(crate) const REMAP: [(&str, &str); 8] = [
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
    (r"\.(q|k|v|o|wi|wi_0|wi_1|wo)\.weight$", ".$1.base.weight"),
];

/// Checkpoint tensors (named after remapping) that Hugging Face itself ignores: aliases of
/// `shared.weight`, and a cross-attention bias table some old checkpoints carry but T5 never
/// uses (`_keys_to_ignore_on_load_unexpected`).
const IGNORED: [&str; 3] = [
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "decoder.block.0.layer_cross_attention.enc_dec_attention.relative_attention_bias.weight",
];

/// Module path → checkpoint name: [`REMAP`] backwards, so that messages use the names users
/// see in their checkpoint files.
pub(crate) const REMAP_BACK: [(&str, &str); 8] = [
    (
        r"\.layer_self_attention\.self_attention\.",
        ".layer.0.SelfAttention.",
    ),
    (
        r"\.layer_self_attention\.layer_norm\.",
        ".layer.0.layer_norm.",
    ),
    (
        r"\.layer_cross_attention\.enc_dec_attention\.",
        ".layer.1.EncDecAttention.",
    ),
    (
        r"\.layer_cross_attention\.layer_norm\.",
        ".layer.1.layer_norm.",
    ),
    (r"^(encoder\.block\.\d+)\.layer_ff\.", "$1.layer.1."),
    (r"^(decoder\.block\.\d+)\.layer_ff\.", "$1.layer.2."),
    (r"\.dense_relu_dense\.", ".DenseReluDense."),
    (r"\.(q|k|v|o|wi|wi_0|wi_1|wo)\.base\.weight$", ".$1.weight"),
];

fn remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(REMAP.to_vec())
        .expect("the remap table's patterns are valid regexes")
}

/// The checkpoint name of a module path, for messages (the reverse rules are compiled once,
/// when a message first needs them).
fn checkpoint_name(path: &str) -> String {
    static BACK: LazyLock<KeyRemapper> = LazyLock::new(|| {
        KeyRemapper::from_patterns(REMAP_BACK.to_vec())
            .expect("the reverse remap table's patterns are valid regexes")
    });
    rename(&BACK, path)
}

/// `name` after every rule of `remapper`, in order (as burn-store renames tensors).
pub(crate) fn rename(remapper: &KeyRemapper, name: &str) -> String {
    remapper
        .to_regex_pairs()
        .iter()
        .fold(name.to_string(), |name, (pattern, replacement)| {
            pattern
                .replace_all(&name, replacement.as_str())
                .into_owned()
        })
}

/// Reads a checkpoint's `config.json`.
pub fn read_config(dir: &Path) -> Result<T5Config> {
    Ok(qa_data::files::read_json(dir.join(CONFIG_FILE))?)
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
    shard_names(&index)?
        .into_iter()
        .map(|name| {
            let why = format!("shard named in {INDEX_FILE} is missing");
            Ok(qa_data::files::existing_file(dir.join(name), &why)?)
        })
        .collect()
}

/// The shard file names a `model.safetensors.index.json` refers to, each once, sorted.
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let parsed: Index = qa_data::files::read_json(index)?;
    let names: BTreeSet<String> = parsed.weight_map.into_values().collect();
    Ok(names.into_iter().collect())
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
        verify_weights(&file)?;
        // Partial and unvalidated: missing tensors and shape errors come back in the result,
        // to be reported under checkpoint names once every shard has been read.
        let mut store = safetensors_reader(&file)
            .remap(remapper())
            .allow_partial(true)
            .validate(false);
        let result = model
            .load_from(&mut store)
            .map_err(|e| corrupt(&file, e.to_string()))?;
        if let Some(error) = result.errors.first() {
            let message = match error {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => format!(
                    "tensor {} has shape {found:?} but the model expects {expected:?} \
                     (linear weights transposed to Burn's [in, out])",
                    checkpoint_name(path)
                ),
                other => other.to_string(),
            };
            return Err(Error::BadTensor {
                path: file.clone(),
                message: format!(
                    "{message}; {} tensor(s) could not be applied",
                    result.errors.len()
                ),
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
    let mut missing: Vec<String> = still_missing
        .unwrap_or_default()
        .iter()
        .map(|path| checkpoint_name(path))
        .collect();
    let mut unexpected: Vec<String> = unexpected
        .iter()
        .map(|path| checkpoint_name(path))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        missing.sort();
        unexpected.sort();
        return Err(Error::TensorMismatch {
            dir: dir.to_path_buf(),
            missing,
            unexpected,
        });
    }
    Ok(model)
}

/// A reader of a Hugging Face safetensors file (a checkpoint or a PEFT adapter): linear
/// weights transposed to Burn's layout, and float tensors widened to f32 on the host.
///
/// T5 is computed in f32 (it overflows in f16, and mixing dtypes in one operation is an
/// error). Widening on the host, before a tensor reaches the device, is exact and works on
/// every backend: wgpu has no bf16 (WGSL lacks the type; cubecl-wgpu panics on it).
pub(crate) fn safetensors_reader(file: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(file).with_from_adapter(
        PyTorchToBurnAdapter.chain(FloatCastAdapter::to(burn::tensor::DType::F32)),
    )
}

/// Largest safetensors header accepted, as in the `safetensors` crate.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Checks that `path` is a whole safetensors file: a readable header whose tensors end
/// exactly where the file ends. An interrupted download or a truncated copy fails here, with
/// the file to delete, instead of deep inside the loader.
pub fn verify_weights(path: &Path) -> Result<()> {
    let io = |source| Error::io(path, source);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut length = [0u8; 8];
    if file.read_exact(&mut length).is_err() {
        return Err(corrupt(
            path,
            format!("{size} bytes, too short for a header"),
        ));
    }
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > size {
        return Err(corrupt(
            path,
            format!("header length {header_len} does not fit in a file of {size} bytes"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| corrupt(path, format!("invalid header: {e}")))?;
    let expected = 8 + header_len + metadata.data_len() as u64;
    if expected != size {
        return Err(corrupt(
            path,
            format!("its header describes {expected} bytes but the file has {size}"),
        ));
    }
    Ok(())
}

/// The error for a damaged weights file; in a Hugging Face cache the file is a link to a blob,
/// and the blob is what must be deleted.
fn corrupt(path: &Path, message: String) -> Error {
    Error::CorruptWeights {
        path: path.to_path_buf(),
        delete: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        message,
    }
}

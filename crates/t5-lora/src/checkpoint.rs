//! Loading Hugging Face T5 checkpoints: `config.json` plus `model.safetensors` or a sharded
//! `model.safetensors.index.json`, stored in f32, f16 or bf16, and computed in f32 or the
//! [`ModelDtype`] asked for.
//!
//! Tensors are read by `burn-store`'s `SafetensorsStore` (`safetensors_reader`), with
//! `PyTorchToBurnAdapter` transposing linear weights (PyTorch stores `[out, in]`, Burn
//! `[in, out]`), floats converted on the host to the type each parameter is computed in, and
//! `keys.rs` renaming the few checkpoint segments Rust cannot mirror.
//!
//! The published FLAN-T5 shapes ([`published_shape`]) stand in for a `config.json` that is not
//! on the machine (a run planned before its model is downloaded, a benchmark of a size).

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{
    ApplyError, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use crate::dtype::ModelDtype;
use crate::error::{Error, Result};
use crate::keys::Naming;
use crate::model::{FeedForwardProj, T5Config, T5ForConditionalGeneration};

/// The model settings file of a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// A single-file checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Checkpoint tensors (named after remapping) that Hugging Face itself ignores: aliases of
/// `shared.weight`, and a cross-attention bias table some old checkpoints carry but T5 never
/// uses (`_keys_to_ignore_on_load_unexpected`).
pub(crate) const IGNORED: [&str; 3] = [
    "encoder.embed_tokens.weight",
    "decoder.embed_tokens.weight",
    "decoder.block.0.layer_cross_attention.enc_dec_attention.relative_attention_bias.weight",
];

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

/// Loads the checkpoint in `dir` onto `device`, in f32.
///
/// Every tensor the model needs must be present, with the right shape, in exactly one shard;
/// tensors the model does not know are an error too, except those Hugging Face ignores.
pub fn load_pretrained(dir: &Path, device: &Device) -> Result<T5ForConditionalGeneration> {
    load_pretrained_as(dir, device, ModelDtype::F32)
}

/// Loads the checkpoint in `dir` onto `device` for inference in `dtype` (see [`ModelDtype`]):
/// each tensor is converted on the host, so the device only ever holds the smaller copy. An
/// error when the device has no arithmetic in that type (wgpu has no bf16).
pub fn load_pretrained_as(
    dir: &Path,
    device: &Device,
    dtype: ModelDtype,
) -> Result<T5ForConditionalGeneration> {
    if !device.supports_dtype(dtype.burn()) {
        return Err(unsupported(device, dtype));
    }
    let config = read_config(dir)?;
    let mut model = config.init(device);
    let mut still_missing: Option<HashSet<String>> = None;
    let mut unused = Vec::new();
    for file in weight_files(dir)? {
        let applied = apply_file(&mut model, &file, Naming::Checkpoint, dtype)?;
        // Missing from every shard is missing.
        let missing_here: HashSet<String> = applied.missing.into_iter().collect();
        still_missing = Some(match still_missing {
            None => missing_here,
            Some(before) => before.intersection(&missing_here).cloned().collect(),
        });
        unused.extend(applied.unused);
    }
    let unused = unused
        .into_iter()
        .filter(|path| !IGNORED.contains(&path.as_str()));
    refuse_mismatch(
        dir,
        still_missing.unwrap_or_default(),
        unused,
        Naming::Checkpoint,
    )?;
    Ok(model)
}

impl T5ForConditionalGeneration {
    /// This model with each parameter in the type it is computed in for `dtype` (see
    /// [`ModelDtype`]), converted on the host: what [`load_pretrained_as`] gives from a
    /// checkpoint, for a model already in memory (built in code, or random for a benchmark).
    pub fn into_dtype(mut self, dtype: ModelDtype) -> Result<Self> {
        let device = self.device();
        if !device.supports_dtype(dtype.burn()) {
            return Err(unsupported(&device, dtype));
        }
        let tensors = self.collect(None, None, false);
        let result = self.apply(tensors, None, Some(Box::new(dtype.load_adapter())), false);
        match result.errors.first() {
            None => Ok(self),
            Some(error) => Err(Error::Dtype(format!("converting to {dtype}: {error}"))),
        }
    }
}

/// The error for a device without arithmetic in `dtype`, naming the types it has.
fn unsupported(device: &Device, dtype: ModelDtype) -> Error {
    let usable: Vec<&str> = ModelDtype::ALL
        .into_iter()
        .filter(|usable| device.supports_dtype(usable.burn()))
        .map(ModelDtype::name)
        .collect();
    Error::Dtype(format!(
        "this device ({device:?}) has no {dtype} arithmetic (wgpu has no bf16: WGSL lacks the \
         type); set dtype to one it has: {}",
        usable.join(", ")
    ))
}

/// What applying one file to a model left over, as module paths.
pub(crate) struct Applied {
    /// Parameters of the model the file does not hold.
    pub missing: Vec<String>,
    /// Tensors of the file the model does not have.
    pub unused: Vec<String>,
}

/// Applies the tensors of the safetensors `file`, whose names follow `naming`, to `model` in
/// the types `dtype` gives them, after checking that the file is whole. A tensor of the wrong
/// shape is an error naming it as the file does; what is missing or unused is returned for the
/// caller to judge (a sharded checkpoint, or an adapter over base weights, holds part of the
/// model).
pub(crate) fn apply_file(
    model: &mut T5ForConditionalGeneration,
    file: &Path,
    naming: Naming,
    dtype: ModelDtype,
) -> Result<Applied> {
    verify_weights(file)?;
    // Partial and unvalidated: missing tensors and shape errors come back in the result.
    let mut store = safetensors_reader(file, dtype)
        .remap(naming.file_to_module())
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| corrupt(file, e.to_string()))?;
    if let Some(error) = result.errors.first() {
        let message = match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "tensor {} has shape {found:?} but the model expects {expected:?} \
                 (linear weights transposed to Burn's [in, out])",
                naming.name_of(path)
            ),
            other => other.to_string(),
        };
        return Err(Error::BadTensor {
            path: file.to_path_buf(),
            message: format!(
                "{message}; {} tensor(s) could not be applied",
                result.errors.len()
            ),
        });
    }
    Ok(Applied {
        missing: result.missing.into_iter().map(|(path, _)| path).collect(),
        unused: result.unused,
    })
}

/// An error listing, by their names in the files of `dir`, the tensors the model needs that
/// were `missing` and those it does not know (`unused`), when there are any.
pub(crate) fn refuse_mismatch(
    dir: &Path,
    missing: impl IntoIterator<Item = String>,
    unused: impl IntoIterator<Item = String>,
    naming: Naming,
) -> Result<()> {
    let names = |paths: &mut dyn Iterator<Item = String>| {
        let mut names: Vec<String> = paths.map(|path| naming.name_of(&path)).collect();
        names.sort();
        names
    };
    let missing = names(&mut missing.into_iter());
    let unexpected = names(&mut unused.into_iter());
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    Err(Error::TensorMismatch {
        dir: dir.to_path_buf(),
        missing,
        unexpected,
    })
}

/// A reader of a Hugging Face safetensors file (a checkpoint or a PEFT adapter): linear
/// weights transposed to Burn's layout, and float tensors converted on the host to the type
/// `dtype` computes each in.
///
/// Converting on the host, before a tensor reaches the device, means a bf16 checkpoint loads
/// in f32 (exactly) or f16 on every backend: wgpu has no bf16 (WGSL lacks the type;
/// cubecl-wgpu panics on it).
fn safetensors_reader(file: &Path, dtype: ModelDtype) -> SafetensorsStore {
    // The feed-forward enum's variant is no segment of a path (`T5Dense`).
    SafetensorsStore::from_file(file)
        .skip_enum_variants(true)
        .with_from_adapter(PyTorchToBurnAdapter.chain(dtype.load_adapter()))
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

/// The published shapes of the FLAN-T5 checkpoints (their `config.json`), for planning a run
/// whose model is not downloaded yet: (id, d_model, d_ff, layers, heads).
const KNOWN_SHAPES: [(&str, usize, usize, usize, usize); 5] = [
    ("google/flan-t5-small", 512, 1024, 8, 6),
    ("google/flan-t5-base", 768, 2048, 12, 12),
    ("google/flan-t5-large", 1024, 2816, 24, 16),
    ("google/flan-t5-xl", 2048, 5120, 24, 32),
    ("google/flan-t5-xxl", 4096, 10240, 24, 64),
];

/// The published shape of a FLAN-T5 checkpoint (`google/flan-t5-small` … `-xxl`), as its
/// `config.json` has it.
pub fn published_shape(id: &str) -> Option<T5Config> {
    let &(_, d_model, d_ff, layers, heads) =
        KNOWN_SHAPES.iter().find(|(known, ..)| *known == id)?;
    Some(T5Config {
        vocab_size: 32128,
        d_model,
        d_kv: 64,
        d_ff,
        num_layers: layers,
        num_decoder_layers: Some(layers),
        num_heads: heads,
        relative_attention_num_buckets: 32,
        relative_attention_max_distance: 128,
        layer_norm_epsilon: 1e-6,
        feed_forward_proj: FeedForwardProj::parse("gated-gelu").expect("a known activation"),
        tie_word_embeddings: false,
        pad_token_id: 0,
        eos_token_id: 1,
        decoder_start_token_id: 0,
    })
}

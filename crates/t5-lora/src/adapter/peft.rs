//! PEFT's adapter files: `adapter_config.json` and `adapter_model.safetensors`, read and
//! written with PEFT's names and layout.

use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use serde::Deserialize;

use crate::checkpoint;
use crate::dtype::ModelDtype;
use crate::error::{Error, Result};
use crate::keys::{self, Naming};
use crate::lora::LoraConfig;
use crate::model::T5ForConditionalGeneration;

/// PEFT's adapter settings file.
pub const ADAPTER_CONFIG_FILE: &str = qa_data::model_files::ADAPTER_CONFIG;
/// PEFT's adapter weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = qa_data::model_files::ADAPTER_WEIGHTS;

/// `adapter_config.json` as PEFT writes it: the keys this crate needs, and those whose
/// non-default values it cannot honour (every other key is ignored).
#[derive(Debug, Deserialize)]
struct PeftAdapterConfig {
    peft_type: String,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: serde_json::Value,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    modules_to_save: Option<serde_json::Value>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
}

impl PeftAdapterConfig {
    /// This crate's settings, or why the adapter cannot be used.
    fn into_lora_config(self) -> std::result::Result<LoraConfig, String> {
        if self.peft_type != "LORA" {
            return Err(format!("peft_type is {:?}, not \"LORA\"", self.peft_type));
        }
        let unsupported = [
            (self.use_rslora, "use_rslora"),
            (self.use_dora, "use_dora (DoRA)"),
            (self.fan_in_fan_out, "fan_in_fan_out"),
            (self.bias.as_deref().is_some_and(|b| b != "none"), "bias"),
            (!self.rank_pattern.is_empty(), "rank_pattern"),
            (!self.alpha_pattern.is_empty(), "alpha_pattern"),
            (
                self.modules_to_save.as_ref().is_some_and(|m| !m.is_null()),
                "modules_to_save",
            ),
            (
                self.layers_to_transform
                    .as_ref()
                    .is_some_and(|l| !l.is_null()),
                "layers_to_transform",
            ),
        ];
        if let Some((_, name)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(format!("{name} is not supported"));
        }
        let target_modules = match self.target_modules {
            serde_json::Value::Array(names) => names
                .into_iter()
                .map(|name| match name {
                    serde_json::Value::String(name) => Ok(name),
                    other => Err(format!("target_modules holds {other}, not a name")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => {
                return Err(format!(
                    "target_modules must be a list of names (a regex like {other} is not supported)"
                ));
            }
        };
        Ok(LoraConfig {
            r: self.r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules,
        })
    }
}

/// Reads a PEFT adapter's `adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let peft: PeftAdapterConfig = qa_data::files::read_json(&path)?;
    let config = peft.into_lora_config().map_err(|message| Error::Config {
        path: path.clone(),
        message,
    })?;
    config.validate().map_err(|e| Error::Config {
        path,
        message: e.to_string(),
    })?;
    Ok(config)
}

/// Attaches the PEFT adapter in `dir` (`adapter_config.json`, `adapter_model.safetensors`) to
/// `model`. Every adapter tensor the config implies must be in the file, with PEFT's names and
/// shapes, and the file must hold nothing else.
pub fn load_adapter(
    model: T5ForConditionalGeneration,
    dir: &Path,
) -> Result<(T5ForConditionalGeneration, LoraConfig)> {
    let config = read_adapter_config(dir)?;
    let mut model = model.with_lora(&config)?;
    let file = dir.join(ADAPTER_WEIGHTS_FILE);
    // Adapters stay f32 whatever the base's type: training updates them, and merging rounds
    // once (`LoraLinear::merge`).
    let applied = checkpoint::apply_file(&mut model, &file, Naming::Peft, ModelDtype::F32)?;
    // The base weights are not in the file: only missing adapter tensors count.
    let missing = applied
        .missing
        .into_iter()
        .filter(|path| keys::is_adapter_path(path));
    checkpoint::refuse_mismatch(dir, missing, applied.unused, Naming::Peft)?;
    // Loaded values replace the adapters' parameters; keep them trainable, and the base frozen.
    Ok((model, config))
}

/// Writes the adapters of `model` as a PEFT adapter directory that
/// `PeftModel.from_pretrained(base, dir)` loads: `adapter_config.json` (with `base_model`
/// as `base_model_name_or_path`) and `adapter_model.safetensors`, each written atomically.
pub fn save_adapter(
    model: &T5ForConditionalGeneration,
    config: &LoraConfig,
    base_model: &str,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let weights = dir.join(ADAPTER_WEIGHTS_FILE);
    let partial = dir.join(format!("{ADAPTER_WEIGHTS_FILE}.tmp"));
    let mut store = SafetensorsStore::from_file(&partial)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .with_regex(keys::adapter_path_pattern())
        .remap(Naming::Peft.module_to_file().clone())
        .clear_metadata()
        .metadata("format", "pt")
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::Lora(format!("{}: {e}", partial.display())))?;
    std::fs::rename(&partial, &weights).map_err(|e| Error::io(&weights, e))?;
    let adapter_config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "SEQ_2_SEQ_LM",
        "base_model_name_or_path": base_model,
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": config.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    });
    qa_data::files::write_json_atomic(dir.join(ADAPTER_CONFIG_FILE), &adapter_config)?;
    Ok(())
}

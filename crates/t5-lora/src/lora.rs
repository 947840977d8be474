//! LoRA adapters (Hu et al., 2021, <https://arxiv.org/abs/2106.09685>) on T5's projections,
//! with PEFT's semantics: `y = x W + (alpha / r) · B(A(dropout(x)))`, A Kaiming-uniform and B
//! zero at creation (so a new adapter changes nothing), base weights frozen.
//!
//! Burn 0.22's built-in `Module::apply_lora` folds the adapter into the weight
//! (`W + s · A B`) before the matmul, which leaves no place for PEFT's dropout on the adapter's
//! input; the adapter is therefore its own module here ([`LoraLinear`]), and keeps PEFT's
//! structure and tensor layout.

use std::path::Path;
use std::sync::LazyLock;

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::model::T5ForConditionalGeneration;

/// The projections an adapter can target, by PEFT's (and Hugging Face's) module names.
pub const TARGETS: [&str; 8] = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"];

/// Adapter settings, with PEFT's names and defaults of this project (rank 8, alpha 16, dropout
/// 0.05, targets `q` and `v` as PEFT chooses for T5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scale numerator: the update is multiplied by `lora_alpha / r`.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input during training.
    pub lora_dropout: f64,
    /// Projections that get an adapter, in every block where they exist (names from
    /// [`TARGETS`]).
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: vec!["q".to_string(), "v".to_string()],
        }
    }
}

impl LoraConfig {
    /// The factor of the update, `lora_alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    /// Checks the rank, dropout and target names.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(Error::Lora(message));
        if self.r == 0 {
            return fail("r must be at least 1".to_string());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return fail(format!(
                "lora_dropout must be in [0, 1), not {}",
                self.lora_dropout
            ));
        }
        if self.target_modules.is_empty() {
            return fail("target_modules is empty".to_string());
        }
        for target in &self.target_modules {
            if !TARGETS.contains(&target.as_str()) {
                return fail(format!(
                    "unknown target module {target:?}: T5's projections are {}",
                    TARGETS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The trainable part: `A` (`[d_in, r]`, PEFT's `lora_A`) and `B` (`[r, d_out]`, `lora_B`).
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// Down-projection (PEFT `lora_A`).
    pub lora_a: Linear,
    /// Up-projection (PEFT `lora_B`).
    pub lora_b: Linear,
    /// Dropout on the input.
    pub dropout: Dropout,
    #[module(skip)]
    scaling: f64,
}

impl LoraAdapter {
    /// A new adapter: `A` Kaiming-uniform (bound `1/√d_in`, PEFT's `kaiming_uniform_(a=√5)`), `B`
    /// zero.
    fn new(d_input: usize, d_output: usize, config: &LoraConfig, device: &Device) -> Self {
        LoraAdapter {
            lora_a: LinearConfig::new(d_input, config.r)
                .with_bias(false)
                .init(device),
            lora_b: LinearConfig::new(config.r, d_output)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device),
            dropout: DropoutConfig::new(config.lora_dropout).init(),
            scaling: config.scaling(),
        }
    }

    /// The update `(alpha / r) · B(A(dropout(x)))`.
    ///
    /// # Shapes
    /// - input: `[batch, len, d_in]` → `[batch, len, d_out]`
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        let down = self.lora_a.forward(self.dropout.forward(input));
        self.lora_b.forward(down) * self.scaling
    }

    /// The update as a weight, `(alpha / r) · A B`, `[d_in, d_out]`.
    fn delta_weight(&self) -> Tensor<2> {
        self.lora_a.weight.val().matmul(self.lora_b.weight.val()) * self.scaling
    }
}

/// A bias-free projection (every T5 projection is one) that may carry a LoRA adapter, like
/// PEFT's `lora.Linear`. In checkpoints its weight keeps Hugging Face's name (`q.weight`).
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// The pretrained projection, `[d_in, d_out]`.
    pub base: Linear,
    /// The adapter, when one is attached.
    pub lora: Option<LoraAdapter>,
}

impl LoraLinear {
    /// A projection without an adapter.
    pub fn new(d_input: usize, d_output: usize, device: &Device) -> Self {
        LoraLinear {
            base: LinearConfig::new(d_input, d_output)
                .with_bias(false)
                .init(device),
            lora: None,
        }
    }

    /// # Shapes
    /// - input: `[batch, len, d_in]` → `[batch, len, d_out]`
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        match &self.lora {
            None => self.base.forward(input),
            Some(adapter) => self.base.forward(input.clone()) + adapter.forward(input),
        }
    }

    fn attach(&mut self, config: &LoraConfig) {
        let [d_input, d_output] = self.base.weight.val().dims();
        let device = self.base.weight.val().device();
        self.lora = Some(LoraAdapter::new(d_input, d_output, config, &device));
    }

    /// Folds the adapter into the base weight and drops it.
    fn merge(&mut self) {
        if let Some(adapter) = self.lora.take() {
            let delta = adapter.delta_weight();
            // Detached: a merged weight is a new frozen leaf, not part of a training graph.
            let weight = (self.base.weight.val() + delta).detach();
            self.base.weight = Param::from_tensor(weight).set_require_grad(false);
        }
    }
}

impl T5ForConditionalGeneration {
    /// Freezes every pretrained weight and attaches a new adapter to each targeted projection
    /// of every block (self- and cross-attention alike, as PEFT matches names).
    pub fn with_lora(self, config: &LoraConfig) -> Result<Self> {
        config.validate()?;
        let mut model = self.set_require_grad(false);
        let mut attached = 0;
        for (name, layer) in model.projections_mut() {
            if config.target_modules.iter().any(|t| t == name) {
                layer.attach(config);
                attached += 1;
            }
        }
        if attached == 0 {
            return Err(Error::Lora(format!(
                "none of the target modules {:?} exists in this model (a gated feed-forward \
                 has wi_0 and wi_1, a plain one wi)",
                config.target_modules
            )));
        }
        Ok(model)
    }

    /// The model without its adapters (the base weights as loaded).
    pub fn strip_lora(mut self) -> Self {
        for (_, layer) in self.projections_mut() {
            layer.lora = None;
        }
        self
    }

    /// Folds every adapter into its base weight, for inference at the base model's speed.
    pub fn merge_lora(mut self) -> Self {
        for (_, layer) in self.projections_mut() {
            layer.merge();
        }
        self
    }
}

/// PEFT's adapter settings file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's adapter weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Prefix PEFT puts before every tensor name of a `PeftModel` wrapping a whole model.
const PEFT_PREFIX: &str = "base_model.model.";

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

/// Module path ↔ PEFT tensor name: the checkpoint rules, plus PEFT's prefix and its
/// `lora_A`/`lora_B` layers.
fn peft_to_module() -> KeyRemapper {
    let rules = [(r"^base_model\.model\.", "")]
        .into_iter()
        .chain(checkpoint::REMAP)
        .chain([
            (r"\.lora_A\.weight$", ".lora.lora_a.weight"),
            (r"\.lora_B\.weight$", ".lora.lora_b.weight"),
        ]);
    KeyRemapper::from_pattern_iter(rules).expect("the adapter remap patterns are valid regexes")
}

/// [`module_to_peft`], compiled once: used on every save, and for names in load errors.
static TO_PEFT: LazyLock<KeyRemapper> = LazyLock::new(module_to_peft);

fn module_to_peft() -> KeyRemapper {
    let rules = checkpoint::REMAP_BACK.into_iter().chain([
        (r"\.lora\.lora_a\.weight$", ".lora_A.weight"),
        (r"\.lora\.lora_b\.weight$", ".lora_B.weight"),
        (r"^", PEFT_PREFIX),
    ]);
    KeyRemapper::from_pattern_iter(rules).expect("the adapter remap patterns are valid regexes")
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
    checkpoint::verify_weights(&file)?;
    let mut store = checkpoint::safetensors_reader(&file)
        .remap(peft_to_module())
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::Lora(format!("{}: {e}", file.display())))?;
    let peft_name = |path: &String| checkpoint::rename(&TO_PEFT, path);
    if let Some(error) = result.errors.first() {
        return Err(Error::BadTensor {
            path: file,
            message: error.to_string(),
        });
    }
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(path, _)| path)
        .filter(|path| path.contains(".lora."))
        .map(peft_name)
        .collect();
    let unexpected: Vec<String> = result.unused.iter().map(peft_name).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(Error::TensorMismatch {
            dir: dir.to_path_buf(),
            missing,
            unexpected,
        });
    }
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
        .with_to_adapter(BurnToPyTorchAdapter)
        .with_regex(r"\.lora\.lora_[ab]\.weight$")
        .remap(TO_PEFT.clone())
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

//! LoRA adapters (Hu et al., 2021, <https://arxiv.org/abs/2106.09685>) on T5's projections,
//! with PEFT's semantics: `y = x W + (alpha / r) · B(A(dropout(x)))`, A Kaiming-uniform and B
//! zero at creation (so a new adapter changes nothing), base weights frozen.
//!
//! Burn 0.22's built-in `Module::apply_lora` folds the adapter into the weight
//! (`W + s · A B`) before the matmul, which leaves no place for PEFT's dropout on the adapter's
//! input; the adapter is therefore its own module here ([`LoraLinear`]), and keeps PEFT's
//! structure and tensor layout. Attaching adapters to a model, and their files, are
//! [`crate::adapter`]'s.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;
use qa_data::settings::{Invalid, check};
use serde::{Deserialize, Serialize};

use crate::dtype::forward_in_weight_dtype;
use crate::kernels;

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

    /// Checks the rank, dropout and target names, naming the first that is wrong.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("r", self.r)?;
        check::positive("lora_alpha", self.lora_alpha)?;
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Invalid::new(
                "lora_dropout",
                format!("must be in [0, 1), not {}", self.lora_dropout),
            ));
        }
        check::non_empty("target_modules", &self.target_modules)?;
        for target in &self.target_modules {
            if !TARGETS.contains(&target.as_str()) {
                return Err(Invalid::new(
                    "target_modules",
                    format!(
                        "names {target:?}, which is not a projection of T5 ({})",
                        TARGETS.join(", ")
                    ),
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
        let down = forward_in_weight_dtype(&self.lora_a, kernels::dropout(&self.dropout, input));
        forward_in_weight_dtype(&self.lora_b, down) * self.scaling
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
            None => forward_in_weight_dtype(&self.base, input),
            Some(adapter) => {
                let base = forward_in_weight_dtype(&self.base, input.clone());
                let dtype = base.dtype();
                base + adapter.forward(input).cast(dtype)
            }
        }
    }

    /// Gives the projection a new adapter (A random, B zero).
    pub(crate) fn attach(&mut self, config: &LoraConfig) {
        let [d_input, d_output] = self.base.weight.val().dims();
        let device = self.base.weight.val().device();
        self.lora = Some(LoraAdapter::new(d_input, d_output, config, &device));
    }

    /// Folds the adapter into the base weight and drops it.
    pub(crate) fn merge(&mut self) {
        if let Some(adapter) = self.lora.take() {
            let delta = adapter.delta_weight();
            let base = self.base.weight.val();
            let dtype = base.dtype();
            // Summed in f32 and rounded once to the base's type (a no-op in f32). Detached: a
            // merged weight is a new frozen leaf, not part of a training graph.
            let weight = (base.cast(DType::F32) + delta.cast(DType::F32))
                .cast(dtype)
                .detach();
            self.base.weight = Param::from_tensor(weight).set_require_grad(false);
        }
    }
}

//! The float type a model's weights are held and multiplied in for inference (`dtype: f32 |
//! bf16 | f16` in the `predict:` and `t5:` generator sections), and which weights stay f32.
//!
//! FLAN-T5-XL is 11.4 GB in f32 and 6.7 GB in f16 or bf16 (`wo` stays f32). T5's activations
//! overflow in f16, so this follows Hugging Face's loading with `_keep_in_fp32_modules =
//! ["wo"]`: the feed-forward output projection stays f32, and its f32 output keeps the residual
//! stream in f32 (in PyTorch, f16 + f32 is f32). Here the residual stream is f32 from the
//! embedding on, the layer norms compute in f32 (`T5LayerNorm`'s variance is f32 in HF too),
//! and the attention softmax runs in f32 (`softmax(scores.float())` in `T5Attention.forward`);
//! every other projection (q, k, v, o, wi, the embedding and the head) multiplies in the
//! chosen type. The layer norms' scales and the position bias tables are tiny and stay f32.
//!
//! Training stays f32: the optimiser updates f32 adapters over f32 activations.

use std::fmt;
use std::str::FromStr;

use burn::nn::Linear;
use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleContext};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernels;

/// The type of the residual stream, the layer norms, the attention softmax and the logits,
/// whatever the matrices' [`ModelDtype`].
pub(crate) const ACTIVATIONS: DType = DType::F32;

/// `linear` applied to `input` in the type of `linear`'s weight (the input is converted when
/// it differs, which in f32 never happens); the output is in that type too.
///
/// # Shapes
/// - input: `[..., d_in]` → `[..., d_out]`
pub(crate) fn forward_in_weight_dtype<const D: usize>(
    linear: &Linear,
    input: Tensor<D>,
) -> Tensor<D> {
    let weight = linear.weight.val();
    let output = kernels::project(input.cast(weight.dtype()), weight);
    match &linear.bias {
        Some(bias) => output + bias.val().unsqueeze(),
        None => output,
    }
}

/// The float type of a model's matrices during inference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelDtype {
    /// 32-bit floats: the exact path, on every backend.
    #[default]
    F32,
    /// bfloat16: f32's range with 8 bits of mantissa. CUDA and the CPU; wgpu has none (WGSL
    /// lacks the type).
    Bf16,
    /// IEEE half precision: where the device has 16-bit float arithmetic (`shaderFloat16` on
    /// Vulkan, every Apple GPU, CUDA, the CPU).
    F16,
}

/// Module names (path segments, as in the checkpoint) whose weights stay f32 whatever the
/// [`ModelDtype`]: `wo` as `T5PreTrainedModel._keep_in_fp32_modules`, and the small tables
/// that feed f32 arithmetic (the layer norm scales, the relative position bias).
pub const KEPT_IN_F32: [&str; 4] = [
    "wo",
    "layer_norm",
    "final_layer_norm",
    "relative_attention_bias",
];

impl ModelDtype {
    /// Every choice, in the order documentation lists them.
    pub const ALL: [ModelDtype; 3] = [ModelDtype::F32, ModelDtype::Bf16, ModelDtype::F16];

    /// The names of [`Self::ALL`], comma-separated.
    pub fn names() -> String {
        Self::ALL.map(ModelDtype::name).join(", ")
    }

    /// The name in config files and flags.
    pub fn name(self) -> &'static str {
        match self {
            ModelDtype::F32 => "f32",
            ModelDtype::Bf16 => "bf16",
            ModelDtype::F16 => "f16",
        }
    }

    /// Burn's name for the type.
    pub fn burn(self) -> DType {
        match self {
            ModelDtype::F32 => DType::F32,
            ModelDtype::Bf16 => DType::BF16,
            ModelDtype::F16 => DType::F16,
        }
    }

    /// The type of the parameter at `module_path` (a dotted path in the module tree, such as
    /// `encoder.block.0.layer_ff.dense_relu_dense.wo.base.weight`) when the model computes in
    /// this type.
    pub fn of_parameter(self, module_path: &str) -> DType {
        if module_path
            .split('.')
            .any(|segment| KEPT_IN_F32.contains(&segment))
        {
            DType::F32
        } else {
            self.burn()
        }
    }

    /// An adapter that loads each float tensor of a checkpoint in the type
    /// [`Self::of_parameter`] gives it, converting on the host (exact for f32, rounded to
    /// nearest for the 16-bit types).
    pub(crate) fn load_adapter(self) -> ParameterDtypes {
        ParameterDtypes { dtype: self }
    }
}

impl fmt::Display for ModelDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelDtype {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|dtype| dtype.name() == text)
            .ok_or_else(|| {
                Error::Dtype(format!(
                    "unknown dtype {text:?}: expected one of {}",
                    Self::names()
                ))
            })
    }
}

/// The load adapter of [`ModelDtype::load_adapter`].
#[derive(Debug, Clone)]
pub(crate) struct ParameterDtypes {
    dtype: ModelDtype,
}

impl ModuleAdapter for ParameterDtypes {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        // The applier names the tensor by its module path before adapting it.
        let target = self.dtype.of_parameter(&tensor.name);
        FloatCastAdapter::to(target).adapt(tensor, ctx)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wo_norms_and_the_bias_table_stay_f32() {
        let f16 = ModelDtype::F16;
        for kept in [
            "encoder.block.3.layer_ff.dense_relu_dense.wo.base.weight",
            "decoder.block.0.layer_ff.dense_relu_dense.wo.lora.lora_a.weight",
            "encoder.block.0.layer_self_attention.layer_norm.weight",
            "decoder.final_layer_norm.weight",
            "encoder.block.0.layer_self_attention.self_attention.relative_attention_bias.weight",
        ] {
            assert_eq!(f16.of_parameter(kept), DType::F32, "{kept}");
        }
        for cast in [
            "shared.weight",
            "lm_head.weight",
            "encoder.block.0.layer_self_attention.self_attention.q.base.weight",
            "decoder.block.1.layer_ff.dense_relu_dense.wi_0.base.weight",
            "decoder.block.1.layer_cross_attention.enc_dec_attention.o.lora.lora_b.weight",
        ] {
            assert_eq!(f16.of_parameter(cast), DType::F16, "{cast}");
            assert_eq!(ModelDtype::F32.of_parameter(cast), DType::F32, "{cast}");
        }
    }

    #[test]
    fn names_round_trip_through_serde() {
        for dtype in ModelDtype::ALL {
            let text = serde_json::to_string(&dtype).expect("serialises");
            assert_eq!(text, format!("\"{dtype}\""));
            let back: ModelDtype = serde_json::from_str(&text).expect("parses");
            assert_eq!(back, dtype);
            assert_eq!(dtype.name().parse::<ModelDtype>().expect("parses"), dtype);
        }
    }
}

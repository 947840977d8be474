//! The kernels composed of Burn's own operations: what every backend without a kernel of ours
//! runs (the GPU backends, and `Autodiff`, which differentiates through them), and what the CPU
//! kernels fall back to for a tensor they do not take (another dtype, a strided view).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Shape};

/// `2√(2/π)`, the scale inside `gelu_new`'s sigmoid.
pub(super) const TWO_SQRT_2_OVER_PI: f64 =
    2.0 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;

/// The cubic term's coefficient in `gelu_new`, `0.044715`.
pub(super) const GELU_CUBIC: f64 = 0.044715;

/// Hugging Face's `gelu_new`, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, written as
/// `x · sigmoid(2√(2/π) x (1 + 0.044715 x²))` (the same function, since
/// `(1 + tanh u) / 2 = sigmoid(2u)`): Burn's `gelu_approximate` takes `x³` through a scalar
/// `powf` and `tanh` through a scalar `tanhf` per element on burn-flex, about a quarter of a
/// FLAN-T5 forward pass in a profile; here the only transcendental is the `exp` of `sigmoid`.
pub(super) fn gelu_new<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let square = B::float_mul(x.clone(), x.clone());
    let scale = B::float_add_scalar(
        B::float_mul_scalar(square, (GELU_CUBIC * TWO_SQRT_2_OVER_PI).into()),
        TWO_SQRT_2_OVER_PI.into(),
    );
    B::float_mul(B::sigmoid(B::float_mul(x.clone(), scale)), x)
}

/// `gelu_new(gate) ⊙ up`.
pub(super) fn gated_gelu_new<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
) -> FloatTensor<B> {
    B::float_mul(gelu_new::<B>(gate), up)
}

/// T5's RMS norm over the last dimension: `x / √(mean(x²) + epsilon) · weight`.
pub(super) fn rms_norm<B: Backend>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let shape = hidden.shape();
    let last = shape.num_dims() - 1;
    let variance = B::float_mean_dim(B::float_mul(hidden.clone(), hidden.clone()), last);
    let normed = B::float_div(
        hidden,
        B::float_sqrt(B::float_add_scalar(variance, epsilon.into())),
    );
    // The weight `[width]` as `[1, …, 1, width]`, to broadcast over the rows.
    let weight_shape: Shape = (0..=last)
        .map(|d| if d == last { shape.as_slice()[last] } else { 1 })
        .collect();
    B::float_mul(normed, B::float_reshape(weight, weight_shape))
}

/// `softmax(scores + bias)` over the last dimension.
pub(super) fn softmax_with_bias<B: Backend>(
    scores: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    let last = scores.shape().num_dims() - 1;
    B::softmax(B::float_add(scores, bias), last)
}

/// Whether [`attention`] may take Burn's fused operation.
pub(super) enum Fused {
    /// Where nothing tracks a gradient and several queries attend (see [`attention`]).
    WhereItServes,
    /// Always through the score tensor.
    Never,
}

/// `softmax(query keyᵀ + bias) value` with scale 1, taking `softmax_with_bias` for the middle
/// when it goes through the score tensor.
///
/// In f32 the bias and the projections share a type; in f16 or bf16 (see `dtype.rs`) the
/// scores are taken to f32 for the bias and the softmax, as Hugging Face's
/// `softmax(scores.float())`, and the probabilities back for the product with V.
///
/// [`Fused::WhereItServes`]: where nothing tracks a gradient, several queries attend in Burn's
/// fused operation, so the whole score tensor and its bias-add and softmax passes never exist
/// (on a GPU a flash attention kernel). Not in training: Burn would decompose it with extra
/// scaling and masking passes, each a saved activation. Not for a decoding step either: a single
/// query gains nothing from tiling, and the fused kernel would first copy the cached
/// (head-split, strided) encoder keys and values into its own layout at every step.
pub(super) fn attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    bias: FloatTensor<B>,
    fused: Fused,
    softmax_with_bias: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<B> {
    let q_len = query.shape().as_slice()[2];
    let fuse = matches!(fused, Fused::WhereItServes)
        && q_len > 1
        && !B::float_is_require_grad(&query)
        && query.dtype() == bias.dtype();
    if fuse {
        let options = AttentionModuleOptions {
            scale: Some(1.0),
            softcap: None,
            is_causal: false,
        };
        return B::attention(query, key, value, None, Some(bias), options);
    }
    let scores = B::float_matmul(query, B::float_swap_dims(key, 2, 3));
    let scores = cast::<B>(scores, bias.dtype());
    let value_dtype = value.dtype();
    let probabilities = cast::<B>(softmax_with_bias(scores, bias), value_dtype);
    B::float_matmul(probabilities, value)
}

/// `tensor` in `dtype`, untouched when it already is.
fn cast<B: Backend>(tensor: FloatTensor<B>, dtype: DType) -> FloatTensor<B> {
    if tensor.dtype() == dtype {
        tensor
    } else {
        B::float_cast(tensor, dtype.into())
    }
}

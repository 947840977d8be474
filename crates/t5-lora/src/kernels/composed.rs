//! The kernels composed of Burn's own operations: what every backend without a kernel of ours
//! runs (the GPU backends, and `Autodiff`, which differentiates through them), and what the CPU
//! kernels fall back to for a tensor they do not take (another dtype, a strided view).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Distribution, Shape};

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
    B::float_mul(B::sigmoid(gelu_new_argument::<B>(x.clone(), square)), x)
}

/// The sigmoid's argument in [`gelu_new`], `2√(2/π) x (1 + 0.044715 x²)`, given `x²`.
fn gelu_new_argument<B: Backend>(x: FloatTensor<B>, square: FloatTensor<B>) -> FloatTensor<B> {
    let scale = B::float_add_scalar(
        B::float_mul_scalar(square, (GELU_CUBIC * TWO_SQRT_2_OVER_PI).into()),
        TWO_SQRT_2_OVER_PI.into(),
    );
    B::float_mul(x, scale)
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

/// The input gradient of a softmax over the last dimension, from its output `probabilities`
/// and the output's gradient `grad`: `p ⊙ (g − Σ g ⊙ p)`.
pub(super) fn softmax_backward<B: Backend>(
    probabilities: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let last = probabilities.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(grad.clone(), probabilities.clone()), last);
    B::float_mul(probabilities, B::float_sub(grad, dot))
}

/// The gate's gradient in `gelu_new(gate) ⊙ up`, given the product's gradient `grad`:
/// `grad ⊙ up ⊙ gelu_new′(gate)`, where `gelu_new′(x) = s (1 + x (1 − s) u′)` with
/// `s = sigmoid(u)`, `u = 2√(2/π) x (1 + 0.044715 x²)` and `u′ = 2√(2/π) (1 + 3 · 0.044715 x²)`.
pub(super) fn gated_gelu_new_gate_grad<B: Backend>(
    grad: FloatTensor<B>,
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
) -> FloatTensor<B> {
    let c = TWO_SQRT_2_OVER_PI;
    let square = B::float_mul(gate.clone(), gate.clone());
    let s = B::sigmoid(gelu_new_argument::<B>(gate.clone(), square.clone()));
    let slope = B::float_add_scalar(
        B::float_mul_scalar(square, (3.0 * GELU_CUBIC * c).into()),
        c.into(),
    );
    let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0.into());
    let inner = B::float_add_scalar(
        B::float_mul(B::float_mul(gate, one_minus_s), slope),
        1.0.into(),
    );
    B::float_mul(B::float_mul(grad, up), B::float_mul(s, inner))
}

/// `grad` summed over each dimension where `shape` is 1 and `grad` is not: the gradient of a
/// tensor of `shape` that was broadcast to `grad`'s.
pub(super) fn sum_to_shape<B: Backend>(mut grad: FloatTensor<B>, shape: &Shape) -> FloatTensor<B> {
    for (d, &size) in shape.as_slice().iter().enumerate() {
        if size == 1 && grad.shape().as_slice()[d] != 1 {
            grad = B::float_sum_dim(grad, d);
        }
    }
    grad
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

/// A dropout mask shaped like `like`: `1 / keep` with probability `keep`, else 0, from the
/// backend's random generator (one Bernoulli draw per element, as `burn::nn::Dropout` draws
/// them, so the masks are that module's).
pub(super) fn dropout_mask<B: Backend>(like: FloatTensor<B>, keep: f64) -> FloatTensor<B> {
    let device = like.device();
    let mask = B::float_random(
        like.shape(),
        Distribution::Bernoulli(keep),
        &device,
        like.dtype().into(),
    );
    B::float_mul_scalar(mask, (1.0 / keep).into())
}

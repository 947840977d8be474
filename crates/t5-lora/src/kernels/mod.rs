//! T5's non-matmul hot spots as Burn backend extensions: the attention softmax with its bias
//! (and attention around it), the gated GELU and the RMS norm.
//!
//! The model calls one function per operation ([`rms_norm`], [`gated_gelu_new`], [`gelu_new`],
//! [`attention`]) whatever the device. On the CPU backend (burn-flex) each runs as one
//! vectorised, parallel pass of ours over an f32 buffer (`rows.rs`); every other backend runs
//! the trait's default body, composed of Burn's operations (`composed.rs`), which is what the
//! model computed before these kernels existed. So does autodiff when an input takes part in a
//! gradient (it differentiates through the composed body); for the other inputs it calls the
//! backend's own implementation.

mod composed;
mod flex;
mod rows;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// The operations, with their composed default bodies. A backend the model can run on and that
/// is not listed here would panic at the first call, so the list follows the crate's backend
/// features (`wgpu_backend` is build.rs's cfg for wgpu, which a Mac always has).
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(any(wgpu_backend, feature = "cuda")),
    NdArray: cfg(feature = "ndarray"),
    LibTorch: cfg(feature = "tch")
)]
pub trait T5Kernels: Backend {
    /// See [`rms_norm`].
    fn rms_norm(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        composed::rms_norm::<Self>(hidden, weight, epsilon)
    }

    /// See [`gated_gelu_new`].
    fn gated_gelu_new(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::gated_gelu_new::<Self>(gate, up)
    }

    /// See [`gelu_new`].
    fn gelu_new(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::gelu_new::<Self>(x)
    }

    /// Attention probabilities: `softmax(scores + bias)` over the keys, `scores` being
    /// `[batch, heads, q_len, k_len]` and each leading dimension of `bias` the scores' or 1.
    fn softmax_with_bias(scores: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::softmax_with_bias::<Self>(scores, bias)
    }

    /// See [`attention`].
    fn attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let fused = composed::Fused::WhereItServes;
        composed::attention::<Self>(query, key, value, bias, fused, Self::softmax_with_bias)
    }
}

// Autodiff differentiates through the default bodies (no backward of our own yet).
impl<B: Backend + T5Kernels, C: CheckpointStrategy> T5Kernels for Autodiff<B, C> {}
#[cfg(any(wgpu_backend, feature = "cuda"))]
impl T5Kernels for burn::backend::Cube {}
#[cfg(feature = "ndarray")]
impl T5Kernels for burn::backend::NdArray {}
#[cfg(feature = "tch")]
impl T5Kernels for burn::backend::LibTorch {}

/// T5's layer norm (`T5LayerNorm`): each row of `hidden` scaled by its root mean square, with
/// no mean subtraction and no bias, then by `weight`.
///
/// # Shapes
/// - hidden: `[..., width]` → `[..., width]`
/// - weight: `[width]`
pub fn rms_norm<const D: usize>(hidden: Tensor<D>, weight: Tensor<1>, epsilon: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as T5Kernels>::rms_norm(
        hidden.into_dispatch(),
        weight.into_dispatch(),
        epsilon,
    ))
}

/// FLAN-T5's gated feed-forward activation, `gelu_new(gate) ⊙ up` (`T5DenseGatedActDense` with
/// `gelu_new`), where `gate` and `up` are the outputs of `wi_0` and `wi_1`.
///
/// # Shapes
/// - gate, up: `[..., d_ff]` → `[..., d_ff]`
pub fn gated_gelu_new<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as T5Kernels>::gated_gelu_new(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}

/// Hugging Face's `gelu_new`, the tanh approximation of GELU.
pub fn gelu_new<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as T5Kernels>::gelu_new(x.into_dispatch()))
}

/// T5's attention, `softmax(query keyᵀ + bias) value` with scale 1 (T5 folds 1/√d_kv into its
/// initialisation). `bias` holds the position bias plus the masks.
///
/// On the CPU it goes through the score tensor with [`T5Kernels::softmax_with_bias`] in one
/// vectorised pass, which is faster there than Burn's fused attention, whose row loop and `exp`
/// are scalar (measured in docs/performance.md). Elsewhere it is Burn's fused attention wherever
/// that serves (see `composed::attention`).
///
/// # Shapes
/// - query: `[batch, heads, q_len, d_kv]`
/// - key, value: `[batch, heads, k_len, d_kv]`
/// - bias: each leading dimension the scores' or 1, e.g. `[1, heads, q_len, k_len]` for a
///   position bias or `[batch, 1, 1, k_len]` for a padding mask
/// - output: `[batch, heads, q_len, d_kv]`
pub fn attention(query: Tensor<4>, key: Tensor<4>, value: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as T5Kernels>::attention(
        query.into_dispatch(),
        key.into_dispatch(),
        value.into_dispatch(),
        bias.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    //! Each operation on burn-flex (our kernels) against the same call on autodiff over
    //! burn-flex (the composed default body), on shapes that are not multiples of the vector
    //! width, with broadcasting, strided views and a shared buffer.
    use burn::prelude::*;
    use burn::tensor::Tolerance;

    use super::rows::tests::values;
    use super::*;

    /// A tensor of [`values`] in `[-scale, scale]`, different for each `seed`.
    fn random<const D: usize>(
        shape: [usize; D],
        scale: f32,
        seed: u64,
        device: &Device,
    ) -> Tensor<D> {
        let data = TensorData::new(values(shape.iter().product(), seed, scale), shape);
        Tensor::from_data(data, device)
    }

    /// Runs `op` on the CPU kernels and on the composed path with the same inputs. Autodiff
    /// runs the composed bodies only for tensors that require a gradient (for the others it
    /// calls the backend's own kernel), so the inputs are tracked there.
    fn both<const D: usize>(
        inputs: Vec<Tensor<D>>,
        op: impl Fn(Vec<Tensor<D>>) -> Tensor<D>,
    ) -> (TensorData, TensorData) {
        let tracked = inputs
            .iter()
            .map(|t| t.clone().autodiff().require_grad())
            .collect();
        (op(inputs).into_data(), op(tracked).into_data())
    }

    fn assert_agree((kernel, composed): (TensorData, TensorData)) {
        // Rounding: the two sum and multiply in different orders (a few ulp apart).
        kernel.assert_approx_eq::<f32>(&composed, Tolerance::rel_abs(1e-6, 1e-6));
    }

    #[test]
    fn rms_norm_agrees_with_the_composed_operations() {
        let device = Device::flex();
        for [batch, len, width] in [[1, 1, 1], [3, 7, 17], [2, 33, 130]] {
            let weight = random([width], 2.0, 1, &device).reshape([1, 1, width]);
            let hidden = random([batch, len, width], 5.0, 2, &device);
            assert_agree(both(vec![hidden, weight], |t| {
                let weight = t[1].clone().reshape([t[1].dims()[2]]);
                rms_norm(t[0].clone(), weight, 1e-6)
            }));
        }
    }

    #[test]
    fn gelu_new_agrees_with_the_composed_operations() {
        let device = Device::flex();
        for shape in [[1, 1, 1], [3, 5, 37], [2, 64, 257]] {
            let gate = random(shape, 8.0, 3, &device);
            let up = random(shape, 3.0, 4, &device);
            assert_agree(both(vec![gate.clone(), up], |t| {
                gated_gelu_new(t[0].clone(), t[1].clone())
            }));
            // The gate shared with another live tensor: written to a copy, not in place.
            let kept = gate.clone();
            let _ = gelu_new(gate.clone());
            kept.into_data().assert_eq(&gate.clone().into_data(), true);
            // A strided view.
            assert_agree(both(vec![gate.swap_dims(0, 2)], |t| gelu_new(t[0].clone())));
        }
    }

    #[test]
    fn softmax_with_bias_agrees_with_the_composed_operations() {
        let device = Device::flex();
        for (dims, bias_dims) in [
            ([2, 3, 5, 7], [1, 3, 5, 7]),
            ([3, 4, 1, 19], [3, 1, 1, 19]),
            ([2, 8, 40, 40], [2, 8, 40, 40]),
        ] {
            let scores = random(dims, 6.0, 5, &device);
            // A permuted bias, as `compute_bias` makes it.
            let [b, h, q, k] = bias_dims;
            let bias = random([b, q, k, h], 3.0, 6, &device).permute([0, 3, 1, 2]);
            assert_agree(both(vec![scores, bias], |t| {
                Tensor::from_dispatch(<Dispatch as T5Kernels>::softmax_with_bias(
                    t[0].clone().into_dispatch(),
                    t[1].clone().into_dispatch(),
                ))
            }));
        }
    }

    #[test]
    fn attention_agrees_with_the_composed_operations() {
        let device = Device::flex();
        // Encoder self-attention, a decoding step over a cache, cross-attention with a mask.
        for ([batch, heads, q_len, k_len, d_kv], bias_dims) in [
            ([2, 3, 11, 11, 8], [1, 3, 11, 11]),
            ([3, 4, 1, 9, 5], [1, 4, 1, 9]),
            ([2, 2, 7, 13, 16], [2, 1, 1, 13]),
        ] {
            let query = random([batch, heads, q_len, d_kv], 1.0, 9, &device);
            let key = random([batch, heads, k_len, d_kv], 1.0, 10, &device);
            let value = random([batch, heads, k_len, d_kv], 1.0, 11, &device);
            let bias = random(bias_dims, 2.0, 12, &device);
            assert_agree(both(vec![query, key, value, bias], |t| {
                attention(t[0].clone(), t[1].clone(), t[2].clone(), t[3].clone())
            }));
        }
    }

    #[test]
    fn the_composed_path_differentiates() {
        // Autodiff runs the default bodies, so a loss through all three has Burn's gradients:
        // here those of the same expression written with Tensor operations.
        let device = Device::flex().autodiff();
        let hidden = random([2, 3, 9], 2.0, 7, &device).require_grad();
        let weight = random([9], 1.0, 8, &device);
        let through_kernels = gated_gelu_new(
            rms_norm(hidden.clone(), weight.clone(), 1e-6),
            hidden.clone(),
        );
        let grads = through_kernels.sum().backward();
        let kernel_grad = hidden.grad(&grads).expect("a gradient");

        let variance = hidden.clone().square().mean_dim(2);
        let normed = hidden.clone() / (variance + 1e-6).sqrt() * weight.unsqueeze::<3>();
        let c = composed::TWO_SQRT_2_OVER_PI;
        let scale = normed.clone().square() * (0.044715 * c) + c;
        let written =
            burn::tensor::activation::sigmoid(normed.clone() * scale) * normed * hidden.clone();
        let grads = written.sum().backward();
        let written_grad = hidden.grad(&grads).expect("a gradient");
        kernel_grad
            .into_data()
            .assert_approx_eq::<f32>(&written_grad.into_data(), Tolerance::rel_abs(1e-5, 1e-6));
    }
}

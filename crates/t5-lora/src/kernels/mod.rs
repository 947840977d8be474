//! T5's hot spots as Burn backend extensions: the attention softmax with its bias (and attention
//! around it), the gated GELU, the RMS norm, LoRA's dropout masks, and the projections.
//!
//! The model calls one function per operation ([`rms_norm`], [`gated_gelu_new`], [`gelu_new`],
//! [`attention`], [`dropout`], [`project`]) whatever the device. On the CPU backend (burn-flex)
//! each but the projections runs as one vectorised, parallel pass of ours over an f32 buffer
//! (`rows.rs`); every other backend runs the trait's default body, composed of Burn's operations
//! (`composed.rs`), which is what the model computed before these kernels existed. Under autodiff,
//! for inputs that take part in a gradient, the softmax and the gated GELU run the backend's kernel
//! forward and a backward pass of their own (`autodiff.rs`, with its kernels here too); the others
//! differentiate through their composed bodies. For inputs that take part in no gradient autodiff
//! calls the backend's own implementation. The projections are Burn's own `linear` unless the
//! `openblas-matmul` feature routes burn-flex's through OpenBLAS (`blas.rs`); under autodiff they
//! have a backward of their own in any build, so that the gradients' products take the same route.

mod autodiff;
#[cfg(feature = "openblas-matmul")]
mod blas;
mod composed;
mod flex;
#[cfg(test)]
mod rounding;
mod rows;

use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
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

    /// The input gradient of [`T5Kernels::softmax_with_bias`] (with respect to the scores) from
    /// its output `probabilities` and the output's gradient `grad`.
    fn softmax_backward(
        probabilities: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::softmax_backward::<Self>(probabilities, grad)
    }

    /// The gate's gradient in [`gated_gelu_new`], given the output's gradient `grad` (the up
    /// projection's is `gated_gelu_new(gate, grad)`).
    fn gated_gelu_new_gate_grad(
        grad: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::gated_gelu_new_gate_grad::<Self>(grad, gate, up)
    }

    /// A dropout mask shaped like `like` (whose values are not read): each element `1 / keep`
    /// with probability `keep`, else 0, drawn from the backend's random generator.
    fn dropout_mask(like: FloatTensor<Self>, keep: f64) -> FloatTensor<Self> {
        composed::dropout_mask::<Self>(like, keep)
    }

    /// See [`project`]; `weight` is `[d_in, d_out]`.
    fn project(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::linear(input, weight, None)
    }

    /// The weight's gradient in [`project`], `inputᵀ · grad` with every leading dimension of
    /// `input` `[..., d_in]` and `grad` `[..., d_out]` folded into the rows: `[d_in, d_out]`.
    fn project_weight_grad(input: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::linear_weight_backward(input, grad)
    }
}

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

/// A bias-free projection, `input · weight` with `weight` `[d_in, d_out]` (Burn's `Linear`
/// layout): every T5 projection. Burn's `linear`, or with the `openblas-matmul` feature on
/// burn-flex one OpenBLAS product over the rows of `input`.
///
/// # Shapes
/// - input: `[..., d_in]` → `[..., d_out]`
pub fn project<const D: usize>(input: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as T5Kernels>::project(
        input.into_dispatch(),
        weight.into_dispatch(),
    ))
}

/// `dropout`'s training behaviour (`burn::nn::Dropout::forward`): on an autodiff device, with
/// the module's training flag set and a probability above 0, each element of `input` is zeroed
/// with that probability and the others scaled by `1 / (1 - probability)`; otherwise `input`
/// passes unchanged.
///
/// The mask comes from the backend's random generator, so `device.seed` decides it. On the CPU
/// it is one seed drawn from that generator and a counter-based hash of it per element, in one
/// parallel pass (Burn's module steps a sequential generator per element, on the calling
/// thread); on the GPU backends it is Burn's per-element draw, the module's own masks.
pub fn dropout<const D: usize>(module: &burn::nn::Dropout, input: Tensor<D>) -> Tensor<D> {
    if !module.training.is_enabled() || !input.device().is_autodiff() || module.prob == 0.0 {
        return input;
    }
    // Detached, so that autodiff hands it to the backend's own kernel: the mask is a constant.
    let like = input.clone().detach().into_dispatch();
    let mask = <Dispatch as T5Kernels>::dropout_mask(like, 1.0 - module.prob);
    input * Tensor::from_dispatch(mask)
}

#[cfg(test)]
mod tests {
    //! Each operation on burn-flex (our kernels) against the same call on autodiff over
    //! burn-flex (the composed default body), on shapes that are not multiples of the vector
    //! width, with broadcasting, strided views and a shared buffer.
    use burn::prelude::*;

    use super::rounding::{F32_UNIT, assert_within, f32s, product_weights};
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

    /// Asserts that the two sides agree within the rounding `weights` allow (see
    /// [`rounding`]).
    fn assert_agree((kernel, composed): (TensorData, TensorData), weights: &[f64]) {
        assert_within(&kernel, &composed, weights, F32_UNIT);
    }

    /// The f64 values of an f32 tensor.
    fn f64s<const D: usize>(tensor: Tensor<D>) -> Vec<f64> {
        f32s(&tensor.into_data())
            .iter()
            .map(|&v| v as f64)
            .collect()
    }

    /// `n(i) · |result[i]|`: the rounding weights of an element-wise result whose computation
    /// makes `n(i)` relative roundings (each test derives its count).
    fn relative_weights(result: &TensorData, n: impl Fn(usize) -> f64) -> Vec<f64> {
        f32s(result)
            .iter()
            .enumerate()
            .map(|(i, &y)| n(i) * (y as f64).abs())
            .collect()
    }

    /// `gelu_new` at `x` in f64: the sigmoid's argument `z = c x (1 + a x²)`, `σ(z)`, and the
    /// magnitude of its derivative's two terms, `σ + |x| σ (1 − σ) |z'|`.
    struct GeluAt {
        z: f64,
        sigmoid: f64,
        slope: f64,
    }

    fn gelu_at(x: f32) -> GeluAt {
        let (x, c, a) = (x as f64, composed::TWO_SQRT_2_OVER_PI, composed::GELU_CUBIC);
        let z = c * x * (1.0 + a * x * x);
        let sigmoid = 1.0 / (1.0 + (-z).exp());
        let dz = c * (1.0 + 3.0 * a * x * x);
        let slope = sigmoid + x.abs() * sigmoid * (1.0 - sigmoid) * dz;
        GeluAt { z, sigmoid, slope }
    }

    /// The relative roundings of `x σ(z)` (times `up`): `z` takes five (`x²`, the two
    /// constants' products, the sum, the product with `x`), which σ passes on times
    /// `1 − σ ≤ 1`, so `5|z|`, and `|z|` more where σ is computed as `exp(−log(1 + e⁻ᶻ))`;
    /// then the `exp`'s 2 ulp (4), the sum and division forming σ (2), the products by `x`
    /// and `up` (2) and the constants' own rounding (4).
    fn gelu_roundings(z: f64) -> f64 {
        6.0 * z.abs() + 12.0
    }

    /// The relative roundings of each of the derivative's two terms: the forward's, and up to
    /// eight more for `1 − σ`, `z'` and the products joining them.
    fn gelu_slope_roundings(z: f64) -> f64 {
        gelu_roundings(z) + 8.0
    }

    /// The relative roundings of `p = softmax(s)` over the last dimension (each `pᵢ` within
    /// `u·ρᵢ·pᵢ` of its exact value), where each `sᵢ` is within `u·aᵢ` of its own: the shift
    /// `tᵢ = sᵢ − max s` errs by `aᵢ + max a + |tᵢ|` (the max is one of the `s`, and the
    /// subtraction rounds once), which `exp` passes on as a relative error; then each `exp`'s
    /// 2 ulp (4) on both sides of the quotient, the `k − 1` additions of the sum and the
    /// division (`k + 8`), and 2 for an implementation that shifts in two steps.
    fn softmax_roundings(s: Tensor<4>, a: Tensor<4>) -> Tensor<4> {
        let k = s.dims()[3] as f64;
        let t = (s.clone() - s.max_dim(3)).abs();
        let shift = a.clone() + a.max_dim(3) + t;
        shift.clone() + shift.max_dim(3) + (k + 10.0)
    }

    /// `tensor` summed over each dimension where `shape` is 1 and `tensor` is not.
    fn sum_to_shape(mut tensor: Tensor<4>, shape: [usize; 4]) -> Tensor<4> {
        for (d, &size) in shape.iter().enumerate() {
            if size == 1 && tensor.dims()[d] != 1 {
                tensor = tensor.sum_dim(d);
            }
        }
        tensor
    }

    #[test]
    fn rms_norm_agrees_with_the_composed_operations() {
        let device = Device::flex();
        for [batch, len, width] in [[1, 1, 1], [3, 7, 17], [2, 33, 130]] {
            let weight = random([width], 2.0, 1, &device).reshape([1, 1, width]);
            let hidden = random([batch, len, width], 5.0, 2, &device);
            let sides = both(vec![hidden, weight], |t| {
                let weight = t[1].clone().reshape([t[1].dims()[2]]);
                rms_norm(t[0].clone(), weight, 1e-6)
            });
            // The sum of `width` squares (`width` roundings, all of positive terms), the
            // division by the width and the epsilon's addition (2), of which the square root
            // passes on half; then the root (1), the division and the products by `x` and the
            // weight (3), and 2 for an implementation that takes the reciprocal first.
            let roundings = (width + 2) as f64 / 2.0 + 6.0;
            let weights = relative_weights(&sides.1, |_| roundings);
            assert_agree(sides, &weights);
        }
    }

    #[test]
    fn gelu_new_agrees_with_the_composed_operations() {
        let device = Device::flex();
        for shape in [[1, 1, 1], [3, 5, 37], [2, 64, 257]] {
            let gate = random(shape, 8.0, 3, &device);
            let up = random(shape, 3.0, 4, &device);
            let gelu_weights = |x: Tensor<3>, result: &TensorData| {
                // Viewed once: each view checks every element (bytemuck's checked cast).
                let x = x.into_data();
                let x = f32s(&x);
                relative_weights(result, |i| gelu_roundings(gelu_at(x[i]).z))
            };
            let sides = both(vec![gate.clone(), up], |t| {
                gated_gelu_new(t[0].clone(), t[1].clone())
            });
            let weights = gelu_weights(gate.clone(), &sides.1);
            assert_agree(sides, &weights);
            // The gate shared with another live tensor: written to a copy, not in place.
            let kept = gate.clone();
            let _ = gelu_new(gate.clone());
            kept.into_data().assert_eq(&gate.clone().into_data(), true);
            // A strided view.
            let view = gate.swap_dims(0, 2);
            let sides = both(vec![view.clone()], |t| gelu_new(t[0].clone()));
            let weights = gelu_weights(view, &sides.1);
            assert_agree(sides, &weights);
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
            // The scores' sum with the bias rounds once: `aᵢ = |sᵢ|`.
            let s = scores.clone() + bias.clone();
            let p = burn::tensor::activation::softmax(s.clone(), 3);
            let weights = f64s(p * softmax_roundings(s.clone(), s.abs()));
            assert_agree(
                both(vec![scores, bias], |t| {
                    Tensor::from_dispatch(<Dispatch as T5Kernels>::softmax_with_bias(
                        t[0].clone().into_dispatch(),
                        t[1].clone().into_dispatch(),
                    ))
                }),
                &weights,
            );
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
            // Each score is a `d_kv`-term product plus the bias: within
            // `u (d_kv (|q| |k|ᵀ) + |s|)` of its exact value. The probabilities' relative
            // roundings then come from `softmax_roundings`, each output sums `k_len` of their
            // products with `value` (`k_len` more, and 1 for rounding the probability).
            let keys = key.clone().swap_dims(2, 3);
            let s = query.clone().matmul(keys.clone()) + bias.clone();
            let a = query.clone().abs().matmul(keys.abs()) * d_kv as f64 + s.clone().abs();
            let rho = softmax_roundings(s.clone(), a) + (k_len + 1) as f64;
            let p = burn::tensor::activation::softmax(s, 3);
            let weights = f64s((p * rho).matmul(value.clone().abs()));
            assert_agree(
                both(vec![query, key, value, bias], |t| {
                    attention(t[0].clone(), t[1].clone(), t[2].clone(), t[3].clone())
                }),
                &weights,
            );
        }
    }

    #[test]
    fn the_kernels_differentiate_as_the_expressions_they_compute() {
        // Through the norm's composed body and the gated GELU's backward of its own, a loss has
        // Burn's gradients of the same expression written with Tensor operations.
        let device = Device::flex().autodiff();
        let hidden = random([2, 3, 9], 2.0, 7, &device).require_grad();
        let weight = random([9], 1.0, 8, &device);
        let (h, w) = (f64s(hidden.clone().inner()), f64s(weight.clone().inner()));
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
        // The gradient at hᵢ of Σⱼ gelu(nⱼ) hⱼ, nⱼ = hⱼ wⱼ / r, r = √(Σh²/k + ε), has three
        // kinds of terms: gelu(nᵢ), hᵢ gelu'(nᵢ) wᵢ / r, and for every j of the row
        // hⱼ gelu'(nⱼ) wⱼ hⱼ hᵢ / (k r³). Each is computed within a relative rounding count of
        // the norm's (k/2 + 7), the slope's (`gelu_slope_roundings`, which also bounds how an
        // error in nⱼ moves gelu'), the row's k-term sum of the third kind, and 6 for the
        // products and quotients joining them: the weight is that count times the sum of the
        // terms' magnitudes.
        let k = 9;
        let weights: Vec<f64> = h
            .chunks(k)
            .flat_map(|row| {
                let r = (row.iter().map(|x| x * x).sum::<f64>() / k as f64 + 1e-6).sqrt();
                let at: Vec<GeluAt> = row
                    .iter()
                    .zip(&w)
                    .map(|(x, w)| gelu_at((x * w / r) as f32))
                    .collect();
                let largest_z = at.iter().map(|g| g.z.abs()).fold(0.0, f64::max);
                let roundings = 1.5 * k as f64 + 13.0 + gelu_slope_roundings(largest_z);
                let third: f64 = (0..k)
                    .map(|j| (row[j] * row[j] * at[j].slope * w[j]).abs())
                    .sum::<f64>()
                    / (k as f64 * r * r * r);
                (0..k)
                    .map(|i| {
                        let normed = row[i] * w[i] / r;
                        let terms = (normed * at[i].sigmoid).abs()
                            + (row[i] * at[i].slope * w[i]).abs() / r
                            + third * row[i].abs();
                        roundings * terms
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_within(
            &kernel_grad.into_data(),
            &written_grad.into_data(),
            &weights,
            F32_UNIT,
        );
    }

    #[test]
    fn dropout_follows_the_seed_and_differentiates_through_its_mask() {
        let _turn = crate::test_random::seeded();
        let device = Device::flex().autodiff();
        let module = burn::nn::DropoutConfig::new(0.25).init();
        let input = random([4, 33, 65], 3.0, 13, &device).require_grad();
        let run = |seed| {
            device.seed(seed);
            dropout(&module, input.clone())
        };
        let out = run(5);
        out.clone().into_data().assert_eq(&run(5).into_data(), true);
        assert_ne!(out.clone().into_data(), run(6).into_data());
        // Each element dropped or scaled by 1 / 0.75, about a quarter dropped.
        let (x, y) = (input.clone().into_data(), out.clone().into_data());
        let (x, y) = (
            x.as_slice::<f32>().expect("f32 data"),
            y.as_slice::<f32>().expect("f32 data"),
        );
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        assert!((dropped - 0.25).abs() < 0.03, "{dropped}");
        for (&x, &y) in x.iter().zip(y) {
            assert!(y == 0.0 || y == x * (1.0 / 0.75f32), "{x} became {y}");
        }
        // The gradient is the mask itself.
        let grads = out.clone().sum().backward();
        let grad = input.grad(&grads).expect("a gradient").into_data();
        for (&g, &y) in grad.as_slice::<f32>().expect("f32 data").iter().zip(y) {
            assert_eq!(g == 0.0, y == 0.0);
        }
        // Outside training, or off an autodiff device, the input passes unchanged.
        let frozen = burn::nn::Dropout {
            training: burn::module::Param::from_bool(false),
            ..module.clone()
        };
        dropout(&frozen, input.clone())
            .into_data()
            .assert_eq(&input.clone().into_data(), true);
        let plain = input.clone().inner();
        dropout(&module, plain.clone())
            .into_data()
            .assert_eq(&plain.into_data(), true);
    }

    #[test]
    fn the_composed_dropout_mask_is_burns_own() {
        // What the GPU backends run: the masks of `burn::nn::Dropout` for the same seed.
        let _turn = crate::test_random::seeded();
        let device = Device::flex().autodiff();
        let module = burn::nn::DropoutConfig::new(0.1).init();
        let input = random([3, 17, 29], 2.0, 14, &device);
        device.seed(9);
        let burns = module.forward(input.clone());
        device.seed(9);
        let like = input.clone().inner().into_dispatch();
        let mask = Tensor::<3>::from_dispatch(composed::dropout_mask::<Dispatch>(like, 0.9));
        (input.inner() * mask)
            .into_data()
            .assert_eq(&burns.into_data(), true);
    }

    /// The gradients of `loss(inputs)` with respect to each input, on autodiff over burn-flex.
    fn gradients<const D: usize>(
        inputs: &[Tensor<D>],
        loss: impl Fn(&[Tensor<D>]) -> Tensor<D>,
    ) -> Vec<TensorData> {
        let tracked: Vec<Tensor<D>> = inputs
            .iter()
            .map(|t| t.clone().autodiff().require_grad())
            .collect();
        let grads = loss(&tracked).sum().backward();
        tracked
            .iter()
            .map(|t| t.grad(&grads).expect("a gradient").into_data())
            .collect()
    }

    /// Central differences of `loss(inputs).sum()` in each input's first `count` elements (or all).
    /// The sum is taken in f64, so that the only rounding left in a difference is that of the
    /// outputs the nudged element reaches (no f32 sum over the whole loss, whose rounding
    /// depends on the CPU's order and would be divided by `h`).
    fn finite_differences<const D: usize>(
        inputs: &[Tensor<D>],
        loss: impl Fn(&[Tensor<D>]) -> Tensor<D>,
        count: usize,
    ) -> Vec<Vec<f64>> {
        let h = 1e-2;
        let total = |inputs: &[Tensor<D>]| f64s(loss(inputs)).iter().sum::<f64>();
        (0..inputs.len())
            .map(|which| {
                (0..count.min(inputs[which].shape().num_elements()))
                    .map(|i| {
                        let nudged = |by: f32| {
                            let mut copy = inputs.to_vec();
                            let mut data = copy[which].clone().into_data();
                            data.as_mut_slice::<f32>().expect("f32 data")[i] += by;
                            copy[which] = Tensor::from_data(data, &inputs[which].device());
                            total(&copy)
                        };
                        (nudged(h) - nudged(-h)) / (2.0 * h as f64)
                    })
                    .collect()
            })
            .collect()
    }

    /// Our backward against Burn's gradients of the written expression (within the rounding
    /// `weights`, one list per input), and both against central differences in the first
    /// elements.
    ///
    /// A central difference with step `h` errs by `h² |f‴| / 6` (truncation: below 2·10⁻⁴
    /// for these smooth functions, `|f‴| ≤ 12` at the inputs' scales) plus the rounding of
    /// the outputs the step reaches divided by `2h` (at most a row of a few hundred f32 values
    /// of magnitude ≤ 20: below 2·10⁻³): far below the 2·10⁻² allowed, which a wrong
    /// derivative (a missing term, a factor, a sign) exceeds.
    fn assert_gradients<const D: usize>(
        inputs: Vec<Tensor<D>>,
        ours: impl Fn(&[Tensor<D>]) -> Tensor<D>,
        written: impl Fn(&[Tensor<D>]) -> Tensor<D>,
        weights: Vec<Vec<f64>>,
    ) {
        let (got, want) = (gradients(&inputs, &ours), gradients(&inputs, &written));
        for ((got, want), weights) in got.iter().zip(&want).zip(&weights) {
            assert_within(got, want, weights, F32_UNIT);
        }
        let differences = finite_differences(&inputs, &ours, 6);
        for (got, numeric) in got.iter().zip(differences) {
            for (&g, n) in f32s(got).iter().zip(numeric) {
                assert!(
                    (g as f64 - n).abs() < 2e-2 * n.abs().max(1.0),
                    "{g} against {n}"
                );
            }
        }
    }

    /// The rounding weights of the gradients of `Σ softmax(scores + bias) · g` with respect to
    /// the scores and to the (broadcast) bias. The scores' gradient is
    /// `dxᵢ = pᵢ (gᵢ − Σⱼ gⱼ pⱼ)`, of magnitude `mᵢ = pᵢ (|gᵢ| + Σⱼ |gⱼ| pⱼ)`: its relative
    /// roundings are the probabilities' (`softmax_roundings`, at most `ρ`), the dot product's
    /// `k` and 4 for the subtraction and products (Burn's backward of `exp` and the quotient
    /// takes two more than ours). The bias's gradient sums `n` of those over its broadcast
    /// dimensions, which adds `n Σ m`.
    fn softmax_gradient_weights(scores: Tensor<4>, bias: Tensor<4>, g: Tensor<4>) -> Vec<Vec<f64>> {
        let k = scores.dims()[3] as f64;
        let bias_dims = bias.dims();
        let s = scores.clone() + bias;
        let p = burn::tensor::activation::softmax(s.clone(), 3);
        let rho = softmax_roundings(s.clone(), s.abs())
            .max()
            .into_scalar::<f64>();
        let dot = (g.clone().abs() * p.clone()).sum_dim(3);
        let magnitude = p * (g.abs() + dot);
        let for_scores = magnitude.clone() * (rho + k + 4.0);
        let broadcast = scores.shape().num_elements() / bias_dims.iter().product::<usize>();
        let for_bias = sum_to_shape(for_scores.clone(), bias_dims)
            + sum_to_shape(magnitude, bias_dims) * broadcast as f64;
        vec![f64s(for_scores), f64s(for_bias)]
    }

    #[test]
    fn softmax_with_bias_has_the_gradients_of_its_expression() {
        let device = Device::flex();
        // A bias broadcast over batch and heads, one broadcast over the queries, one whole.
        for (dims, bias_dims) in [
            ([2, 3, 5, 7], [1, 1, 5, 7]),
            ([3, 2, 4, 19], [3, 2, 1, 19]),
            ([2, 2, 6, 6], [2, 2, 6, 6]),
        ] {
            let scores = random(dims, 3.0, 15, &device);
            let bias = random(bias_dims, 2.0, 16, &device);
            // Weights, so that the loss is not the constant sum of probabilities.
            let weights = random(dims, 1.0, 17, &device).inner();
            let ours = |t: &[Tensor<4>]| {
                let probabilities =
                    Tensor::<4>::from_dispatch(<Dispatch as T5Kernels>::softmax_with_bias(
                        t[0].clone().into_dispatch(),
                        t[1].clone().into_dispatch(),
                    ));
                probabilities * weights.clone().to_device(&t[0].device())
            };
            let written = |t: &[Tensor<4>]| {
                let probabilities =
                    burn::tensor::activation::softmax(t[0].clone() + t[1].clone(), 3);
                probabilities * weights.clone().to_device(&t[0].device())
            };
            let rounding = softmax_gradient_weights(scores.clone(), bias.clone(), weights.clone());
            assert_gradients(vec![scores, bias], ours, written, rounding);
        }
    }

    #[test]
    fn the_gated_gelu_has_the_gradients_of_its_expression() {
        let device = Device::flex();
        for shape in [[1, 1, 3], [2, 5, 37], [3, 40, 300]] {
            let gate = random(shape, 6.0, 18, &device);
            let up = random(shape, 2.0, 19, &device);
            let ours = |t: &[Tensor<3>]| gated_gelu_new(t[0].clone(), t[1].clone());
            let written = |t: &[Tensor<3>]| {
                let x = t[0].clone();
                let c = composed::TWO_SQRT_2_OVER_PI;
                let scale = x.clone().square() * (composed::GELU_CUBIC * c) + c;
                burn::tensor::activation::sigmoid(x.clone() * scale) * x * t[1].clone()
            };
            // The gate's gradient is `up · gelu'(x)`, the up's `gelu(x)` (the loss is a sum).
            let (x, u) = (f64s(gate.clone()), f64s(up.clone()));
            let at: Vec<GeluAt> = x.iter().map(|&x| gelu_at(x as f32)).collect();
            let rounding = vec![
                at.iter()
                    .zip(&u)
                    .map(|(g, u)| gelu_slope_roundings(g.z) * (u * g.slope).abs())
                    .collect(),
                at.iter()
                    .zip(&x)
                    .map(|(g, x)| gelu_roundings(g.z) * (x * g.sigmoid).abs())
                    .collect(),
            ];
            assert_gradients(vec![gate, up], ours, written, rounding);
        }
    }

    #[test]
    fn the_composed_backward_bodies_agree_with_the_cpu_kernels() {
        // What the GPU backends run for the two backward passes, against ours on burn-flex.
        let device = Device::flex();
        let agree = |ours: Tensor<3>, composed: Tensor<3>, weights: Vec<f64>| {
            assert_within(&ours.into_data(), &composed.into_data(), &weights, F32_UNIT);
        };
        let logits = random([3, 5, 41], 4.0, 20, &device);
        let probabilities = burn::tensor::activation::softmax(logits, 2);
        let grad = random([3, 5, 41], 1.0, 21, &device);
        // `pᵢ (gᵢ − Σⱼ gⱼ pⱼ)`: the dot product's 41 terms (41 roundings), the subtraction and
        // the product (2), of magnitude `pᵢ (|gᵢ| + Σⱼ |gⱼ| pⱼ)`.
        let dot = (grad.clone().abs() * probabilities.clone()).sum_dim(2);
        let weights = f64s(probabilities.clone() * (grad.clone().abs() + dot) * 43.0);
        let (p, g) = (probabilities.into_dispatch(), grad.clone().into_dispatch());
        agree(
            Tensor::from_dispatch(<Dispatch as T5Kernels>::softmax_backward(
                p.clone(),
                g.clone(),
            )),
            Tensor::from_dispatch(composed::softmax_backward::<Dispatch>(p, g.clone())),
            weights,
        );
        let gate = random([3, 5, 41], 6.0, 22, &device);
        let up = random([3, 5, 41], 2.0, 23, &device);
        // `g · up · gelu'(x)`: the slope's roundings and two products.
        let weights = f64s(grad)
            .iter()
            .zip(f64s(gate.clone()))
            .zip(f64s(up.clone()))
            .map(|((g, x), u)| {
                let at = gelu_at(x as f32);
                (gelu_slope_roundings(at.z) + 2.0) * (g * u * at.slope).abs()
            })
            .collect();
        let (gate, up) = (gate.into_dispatch(), up.into_dispatch());
        agree(
            Tensor::from_dispatch(<Dispatch as T5Kernels>::gated_gelu_new_gate_grad(
                g.clone(),
                gate.clone(),
                up.clone(),
            )),
            Tensor::from_dispatch(composed::gated_gelu_new_gate_grad::<Dispatch>(g, gate, up)),
            weights,
        );
    }

    #[test]
    fn project_has_the_gradients_of_a_matrix_product() {
        let device = Device::flex();
        for [batch, len, d_in, d_out] in [[1, 1, 1, 1], [2, 5, 19, 23], [3, 33, 70, 8]] {
            let input = random([batch, len, d_in], 2.0, 24, &device);
            // The weight `[d_in, d_out]` as `[1, d_in, d_out]`, beside the input.
            let weight = random([1, d_in, d_out], 1.0, 25, &device);
            let ours = |t: &[Tensor<3>]| project(t[0].clone(), t[1].clone().reshape([d_in, d_out]));
            let written = |t: &[Tensor<3>]| t[0].clone().matmul(t[1].clone());
            // Both gradients are products (the loss is a sum, so the output's gradient G is
            // ones): the input's `G Wᵀ` sums `d_out` terms, the weight's `Xᵀ G` the
            // `batch · len` rows' (all at once here, per batch there).
            let rows = batch * len;
            let ones = |n| vec![1.0; n];
            let x = input.clone().reshape([rows, d_in]);
            let w = weight.clone().reshape([d_in, d_out]);
            let sums = vec![
                product_weights(
                    &ones(rows * d_out),
                    f32s(&w.transpose().into_data()),
                    [rows, d_out, d_in],
                ),
                product_weights(
                    f32s(&x.transpose().into_data()),
                    &ones(rows * d_out),
                    [d_in, rows, d_out],
                ),
            ];
            assert_gradients(
                vec![input.clone(), weight.clone()],
                ours,
                written,
                sums.clone(),
            );
            // One operand frozen, as the base weights are under LoRA: the other's gradient.
            for frozen in [0, 1] {
                let grad = |loss: &dyn Fn(&[Tensor<3>]) -> Tensor<3>| {
                    let mut t = [input.clone(), weight.clone()].map(|t| t.autodiff());
                    t[1 - frozen] = t[1 - frozen].clone().require_grad();
                    let grads = loss(&t).sum().backward();
                    t[1 - frozen].grad(&grads).expect("a gradient").into_data()
                };
                assert_within(&grad(&ours), &grad(&written), &sums[1 - frozen], F32_UNIT);
            }
        }
    }

    #[cfg(feature = "openblas-matmul")]
    #[test]
    fn openblas_projections_agree_with_burns() {
        use super::rounding::F16_UNIT;
        use burn::backend::ops::ModuleOps;
        let device = Device::flex();
        // Two products of the same operands, OpenBLAS's and gemm's, each summing in the order
        // of the micro-kernel the CPU chose: within their rounding bound of each other.
        let agree =
            |ours: FloatTensor<Dispatch>, burns: FloatTensor<Dispatch>, [a, b]: [&Tensor<2>; 2]| {
                let [m, k] = a.dims();
                let n = b.dims()[1];
                let (a, b) = (a.clone().into_data(), b.clone().into_data());
                assert_within(
                    &Tensor::<2>::from_dispatch(ours).into_data(),
                    &Tensor::<2>::from_dispatch(burns).into_data(),
                    &product_weights(f32s(&a), f32s(&b), [m, k, n]),
                    F32_UNIT,
                );
            };
        for [rows, d_in, d_out] in [[1, 1, 1], [37, 19, 23], [130, 300, 47]] {
            let weight = random([d_in, d_out], 1.0, 26, &device);
            // Contiguous rows, rows that are a transposed view, a transposed weight.
            let inputs = [
                random([rows, d_in], 2.0, 27, &device),
                random([d_in, rows], 2.0, 28, &device).transpose(),
            ];
            let weights = [weight.clone(), weight.transpose().transpose()];
            for (input, weight) in inputs.iter().zip(&weights) {
                let (x, w) = (
                    input.clone().into_dispatch(),
                    weight.clone().into_dispatch(),
                );
                agree(
                    <Dispatch as T5Kernels>::project(x.clone(), w.clone()),
                    <Dispatch as ModuleOps<Dispatch>>::linear(x, w, None),
                    [input, weight],
                );
            }
            let transposed = random([d_out, d_in], 1.0, 29, &device).transpose();
            let (x, w) = (
                inputs[0].clone().into_dispatch(),
                transposed.clone().into_dispatch(),
            );
            agree(
                <Dispatch as T5Kernels>::project(x.clone(), w.clone()),
                <Dispatch as ModuleOps<Dispatch>>::linear(x, w, None),
                [&inputs[0], &transposed],
            );
            let grad = random([rows, d_out], 1.0, 30, &device);
            for input in &inputs {
                let (x, g) = (input.clone().into_dispatch(), grad.clone().into_dispatch());
                agree(
                    <Dispatch as T5Kernels>::project_weight_grad(x.clone(), g.clone()),
                    <Dispatch as ModuleOps<Dispatch>>::linear_weight_backward(x, g),
                    [&input.clone().transpose(), &grad],
                );
            }
        }
        // Leading dimensions folded into the rows.
        let input = random([2, 7, 19], 2.0, 31, &device);
        let weight = random([19, 5], 1.0, 32, &device);
        let rows = input.clone().reshape([14, 19]).into_data();
        assert_within(
            &project(input.clone(), weight.clone()).into_data(),
            &input.clone().matmul(weight.clone().unsqueeze()).into_data(),
            &product_weights(f32s(&rows), f32s(&weight.clone().into_data()), [14, 19, 5]),
            F32_UNIT,
        );
        // An f16 projection, left to burn-flex, against Burn's f16 product of the same f16
        // operands: whether either accumulates in f16 or f32 is not promised, so the bound is
        // f16's, with one more rounding for the result's own (`k + 1` instead of `k`).
        let half = |t: Tensor<3>| t.cast(burn::tensor::DType::F16);
        let (input, weight) = (half(input), half(weight.unsqueeze::<3>()));
        let as_f32 = |t: Tensor<3>| t.cast(burn::tensor::DType::F32).into_data();
        let (a, b) = (as_f32(input.clone()), as_f32(weight.clone()));
        let weights: Vec<f64> = product_weights(f32s(&a), f32s(&b), [14, 19, 5])
            .into_iter()
            .map(|w| w * 20.0 / 19.0)
            .collect();
        assert_within(
            &as_f32(project(input.clone(), weight.clone().squeeze_dim(0))),
            &as_f32(input.matmul(weight)),
            &weights,
            F16_UNIT,
        );
    }
}

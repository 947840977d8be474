//! The CPU kernels over f32 rows, in safe Rust.
//!
//! Each is a plain loop written so that the compiler can vectorise it: no branches (a `select`
//! instead), a polynomial `exp` instead of a libm call, and reductions split over [`LANES`]
//! independent partial results. [`vectorised`] compiles the loop for the widest vector
//! instructions the CPU has (pulp's run-time dispatch: AVX-512, AVX2 with FMA, or the SSE2
//! baseline), and [`for_chunks`] spreads large tensors over rayon's pool. Every result depends
//! only on the code's order of operations, never on the vector width or the split into tasks,
//! so it is the same on every CPU and thread count.

use rayon::prelude::*;

/// Partial sums (or maxima) of a row's reduction: a float sum is never reassociated by the
/// compiler, so it is written as this many independent ones, which fit vector registers.
const LANES: usize = 16;

/// Below this many elements a kernel runs on the calling thread: handing work to the pool costs
/// microseconds, which a decoding step's few thousand elements do not repay.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Elements per task of the element-wise kernels.
const CHUNK_ELEMENTS: usize = 1 << 14;

/// Runs `kernel` compiled for the CPU's widest vector instructions.
#[inline(always)]
fn vectorised<R>(kernel: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(kernel)
}

/// Applies `kernel` to consecutive chunks of `data`, each a whole number of `row` elements, on
/// rayon's pool when `data` is large; `kernel` receives the index of the chunk's first row.
fn for_chunks(data: &mut [f32], row: usize, kernel: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let rows_per_chunk = CHUNK_ELEMENTS.div_ceil(row.max(1)).max(1);
    let chunk = rows_per_chunk * row.max(1);
    if data.len() < PARALLEL_MIN_ELEMENTS {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| vectorised(|| kernel(i * rows_per_chunk, part)));
    } else {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| vectorised(|| kernel(i * rows_per_chunk, part)));
    }
}

/// `eˣ` in f32, within 2 ulp of the correctly rounded value (the test checks it), branch-free so
/// that a loop over it vectorises: `x = n ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-7 polynomial
/// for `eʳ` (the Cephes `expf` coefficients), and `2ⁿ` built in the exponent bits. It is 0 below
/// -86.5 (where `eˣ < 3·10⁻³⁸`, so denormals are flushed) and ∞ above the largest finite result.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOWEST: f32 = -86.5;
    const HIGHEST: f32 = 88.722_83;
    // ln 2 in two parts: LN2_HI has 9 significant bits, so `n · LN2_HI` is exact for the
    // |n| ≤ 128 that occur.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(LOWEST, HIGHEST);
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2ⁿ⁻¹ from its exponent bits (n - 1 + 127 = the bits of `shifted` above ROUND's, plus 126),
    // then doubled: keeps n = 128, just below overflow, representable.
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(126);
    let value = e_r * f32::from_bits(exponent << 23) * 2.0;
    if x < LOWEST {
        0.0
    } else if x > HIGHEST {
        f32::INFINITY
    } else {
        value
    }
}

/// Hugging Face's `gelu_new` as `x · sigmoid(2√(2/π) x (1 + 0.044715 x²))`, the form whose only
/// transcendental is one `exp` (see [`super::composed::gelu_new`] for the identity).
#[inline(always)]
fn gelu_new(x: f32) -> f32 {
    x / (1.0 + exp(-gelu_new_argument(x)))
}

/// The sigmoid's argument in [`gelu_new`], `2√(2/π) x (1 + 0.044715 x²)`.
#[inline(always)]
fn gelu_new_argument(x: f32) -> f32 {
    use super::composed::{GELU_CUBIC, TWO_SQRT_2_OVER_PI};
    TWO_SQRT_2_OVER_PI as f32 * x * (1.0 + GELU_CUBIC as f32 * x * x)
}

/// `row` folded into [`LANES`] partial results by `step`, lane `i` taking elements `i`,
/// `i + LANES`, …: independent chains the compiler can keep in one vector register.
#[inline(always)]
fn fold_lanes(row: &[f32], init: f32, step: impl Fn(f32, f32) -> f32) -> [f32; LANES] {
    let mut partial = [init; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (p, &x) in partial.iter_mut().zip(chunk) {
            *p = step(*p, x);
        }
    }
    for (p, &x) in partial.iter_mut().zip(chunks.remainder()) {
        *p = step(*p, x);
    }
    partial
}

/// The largest element of `row` (`-∞` when empty).
#[inline(always)]
fn max(row: &[f32]) -> f32 {
    fold_lanes(row, f32::NEG_INFINITY, |m, x| if x > m { x } else { m })
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of `f(x)` over `row`.
#[inline(always)]
fn sum_of(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    fold_lanes(row, 0.0, |s, x| s + f(x)).into_iter().sum()
}

/// `softmax(scores + bias)` over the last dimension, in place.
///
/// `scores` is contiguous with dimensions `dims`; `bias` is contiguous with dimensions
/// `bias_dims` of the same rank, each equal to the score's or 1 (broadcast), the last equal.
pub(super) fn softmax_with_bias(
    scores: &mut [f32],
    dims: &[usize],
    bias: &[f32],
    bias_dims: &[usize],
) {
    let (&width, leading) = dims.split_last().expect("scores of rank ≥ 1");
    // The bias row of each score row: strides over the leading dimensions, 0 where broadcast.
    let mut bias_strides = vec![0; leading.len()];
    let mut stride = width;
    for (d, &size) in bias_dims[..leading.len()].iter().enumerate().rev() {
        bias_strides[d] = if size == 1 { 0 } else { stride };
        stride *= size;
    }
    let bias_row = |row: usize| {
        let (mut rest, mut offset) = (row, 0);
        for (d, &size) in leading.iter().enumerate().rev() {
            offset += (rest % size) * bias_strides[d];
            rest /= size;
        }
        &bias[offset..offset + width]
    };
    for_chunks(scores, width, |first, chunk| {
        for (i, row) in chunk.chunks_exact_mut(width.max(1)).enumerate() {
            for (x, &b) in row.iter_mut().zip(bias_row(first + i)) {
                *x += b;
            }
            let top = max(row);
            for x in row.iter_mut() {
                *x = exp(*x - top);
            }
            let scale = 1.0 / sum_of(row, |x| x);
            for x in row.iter_mut() {
                *x *= scale;
            }
        }
    });
}

/// The gradient of a softmax over rows of `width` with respect to its input, in place over
/// `grad` (the gradient of its output): `p ⊙ (g − Σ g ⊙ p)` row by row, `probabilities` being
/// the softmax's output.
pub(super) fn softmax_backward(grad: &mut [f32], probabilities: &[f32], width: usize) {
    for_chunks(grad, width, |first, chunk| {
        let probabilities = &probabilities[first * width..first * width + chunk.len()];
        for (g, p) in chunk
            .chunks_exact_mut(width.max(1))
            .zip(probabilities.chunks_exact(width.max(1)))
        {
            let dot = dot(g, p);
            for (g, &p) in g.iter_mut().zip(p) {
                *g = p * (*g - dot);
            }
        }
    });
}

/// `Σ a ⊙ b`, over [`LANES`] partial sums as [`fold_lanes`] splits a row.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0.0f32; LANES];
    let (mut a_chunks, mut b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((p, &x), &y) in partial.iter_mut().zip(x).zip(y) {
            *p += x * y;
        }
    }
    let tails = a_chunks.remainder().iter().zip(b_chunks.remainder());
    for (p, (&x, &y)) in partial.iter_mut().zip(tails) {
        *p += x * y;
    }
    partial.into_iter().sum()
}

/// The gate's gradient in `gelu_new(gate) ⊙ up`, in place over `grad` (the gradient of the
/// product): `grad ⊙ up ⊙ gelu_new′(gate)`. With `u = 2√(2/π) x (1 + 0.044715 x²)` and
/// `s = sigmoid(u)`, `gelu_new(x) = x s` and `gelu_new′(x) = s + x s (1 − s) u′`,
/// `u′ = 2√(2/π) (1 + 3 · 0.044715 x²)`.
pub(super) fn gated_gelu_new_gate_grad(grad: &mut [f32], gate: &[f32], up: &[f32]) {
    use super::composed::{GELU_CUBIC, TWO_SQRT_2_OVER_PI};
    let (c, a) = (TWO_SQRT_2_OVER_PI as f32, GELU_CUBIC as f32);
    for_chunks(grad, 1, |first, chunk| {
        let stretch = first..first + chunk.len();
        for ((g, &x), &u) in chunk
            .iter_mut()
            .zip(&gate[stretch.clone()])
            .zip(&up[stretch])
        {
            let s = 1.0 / (1.0 + exp(-gelu_new_argument(x)));
            let slope = c * (1.0 + 3.0 * a * x * x);
            *g *= u * (s + x * s * (1.0 - s) * slope);
        }
    });
}

/// T5's RMS norm of each row of `hidden` (width `weight.len()`) into `out`:
/// `weight · x / √(mean(x²) + epsilon)`, Hugging Face's order of operations.
pub(super) fn rms_norm(hidden: &[f32], weight: &[f32], epsilon: f32, out: &mut [f32]) {
    let width = weight.len();
    for_chunks(out, width, |first, chunk| {
        let input = &hidden[first * width..first * width + chunk.len()];
        for (row, x) in chunk
            .chunks_exact_mut(width.max(1))
            .zip(input.chunks_exact(width.max(1)))
        {
            let mean_square = sum_of(x, |v| v * v) / width as f32;
            let scale = 1.0 / (mean_square + epsilon).sqrt();
            for ((o, &v), &w) in row.iter_mut().zip(x).zip(weight) {
                *o = v * scale * w;
            }
        }
    });
}

/// `gelu_new(gate) ⊙ up` into `gate`, or `gelu_new(gate)` without `up`.
pub(super) fn gelu_new_gated(gate: &mut [f32], up: Option<&[f32]>) {
    for_chunks(gate, 1, |first, chunk| match up {
        Some(up) => {
            for (g, &u) in chunk.iter_mut().zip(&up[first..]) {
                *g = gelu_new(*g) * u;
            }
        }
        None => {
            for g in chunk.iter_mut() {
                *g = gelu_new(*g);
            }
        }
    });
}

/// A dropout mask in place: element `i` of `out` is `1 / keep` where the draw for `(seed, i)`
/// falls below `keep`, and 0 elsewhere. The draw is SplitMix64's output function applied to
/// `seed + (i + 1)·γ` (a counter-based generator), so each element depends on the seed and its
/// index alone: the mask is the same whatever the chunking, threads or vector width, and costs
/// a few multiplications per element instead of a step of a sequential generator.
pub(super) fn dropout_mask(out: &mut [f32], seed: u64, keep: f64) {
    // Compared with the draw's top 32 bits: keep with probability `threshold / 2³²`.
    let threshold = (keep * (1u64 << 32) as f64).round() as u64;
    let scale = (1.0 / keep) as f32;
    for_chunks(out, 1, |first, chunk| {
        for (i, o) in chunk.iter_mut().enumerate() {
            let draw = split_mix(seed.wrapping_add(((first + i) as u64 + 1).wrapping_mul(GAMMA)));
            *o = if draw >> 32 < threshold { scale } else { 0.0 };
        }
    });
}

/// SplitMix64's increment, `2⁶⁴ / φ` rounded to odd.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (Steele, Lea and Flood 2014), a bijective 64-bit mix.
#[inline(always)]
fn split_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(super) mod tests {
    //! Each kernel against a scalar reference in f64, on shapes that are not multiples of the
    //! vector width, the lane count or the chunk size.
    use super::*;

    /// A deterministic spread of values in `[-scale, scale]`.
    pub(in crate::kernels) fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Each kernel against its f64 reference, within `tolerance` relative (absolute below 1).
    /// These kernels fix their order of operations (no FMA contraction, the same lanes on
    /// every vector width, see the module's head), so a result is bit for bit the same on every
    /// CPU and thread count: what a test allows here cannot pass on one machine and fail on
    /// another. Each tolerance is stated where it is used, the rounding the kernel shows with
    /// margin, well below what a wrong formula or constant moves (10⁻³ and more).
    fn assert_close(got: &[f32], want: &[f64], tolerance: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tolerance * w.abs().max(1.0),
                "element {i}: {g} against {w}"
            );
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_correctly_rounded_value() {
        let mut x = -86.5f32;
        let mut worst = 0u32;
        while x < 88.7 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(exp(x).to_bits().abs_diff(want.to_bits()));
            x += 0.000_731;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp(-87.0), 0.0);
        assert_eq!(exp(-f32::MAX), 0.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(88.72).is_finite());
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn softmax_with_a_broadcast_bias_matches_the_reference() {
        // [batch, heads, q_len, k_len] with the bias broadcast over batch, and over heads and
        // queries (a padding mask); rows long and short, large enough to run in parallel.
        for (dims, bias_dims) in [
            ([3, 5, 7, 37], [1, 5, 7, 37]),
            ([2, 3, 1, 1], [2, 1, 1, 1]),
            ([4, 6, 33, 129], [4, 1, 1, 129]),
            ([2, 1, 3, 16], [2, 1, 3, 16]),
        ] {
            let n: usize = dims.iter().product();
            let mut scores = values(n, 1, 8.0);
            let mut bias = values(bias_dims.iter().product(), 2, 4.0);
            // A masked key, as T5 writes masks: the lowest finite f32 added to the bias.
            bias[0] = f32::MIN;
            let width = dims[3];
            let reference: Vec<f64> = scores
                .chunks(width)
                .enumerate()
                .flat_map(|(row, s)| {
                    let [h, q] = [dims[1], dims[2]];
                    let (b, hi, qi) = (row / (h * q), row / q % h, row % q);
                    let pick = |i, size: usize| if size == 1 { 0 } else { i };
                    let bias_row = ((pick(b, bias_dims[0]) * bias_dims[1]
                        + pick(hi, bias_dims[1]))
                        * bias_dims[2]
                        + pick(qi, bias_dims[2]))
                        * width;
                    let logits: Vec<f64> = s
                        .iter()
                        .zip(&bias[bias_row..bias_row + width])
                        .map(|(&x, &b)| (x + b) as f64)
                        .collect();
                    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = logits.iter().map(|l| (l - top).exp()).sum();
                    logits
                        .iter()
                        .map(|l| (l - top).exp() / total)
                        .collect::<Vec<_>>()
                })
                .collect();
            softmax_with_bias(&mut scores, &dims, &bias, &bias_dims);
            assert_close(&scores, &reference, 1e-6);
        }
    }

    #[test]
    fn rms_norm_matches_the_reference() {
        for (rows, width) in [(1, 1), (3, 17), (129, 61), (700, 64)] {
            let hidden = values(rows * width, 3, 5.0);
            let weight = values(width, 4, 2.0);
            let epsilon = 1e-6;
            let reference: Vec<f64> = hidden
                .chunks(width)
                .flat_map(|x| {
                    let mean_square =
                        x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / width as f64;
                    let scale = 1.0 / (mean_square + epsilon).sqrt();
                    x.iter()
                        .zip(&weight)
                        .map(move |(&v, &w)| v as f64 * scale * w as f64)
                })
                .collect();
            let mut out = vec![0.0; hidden.len()];
            rms_norm(&hidden, &weight, epsilon as f32, &mut out);
            assert_close(&out, &reference, 1e-6);
        }
    }

    #[test]
    fn gated_gelu_new_matches_the_reference() {
        let gelu_new = |x: f64| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        };
        for n in [1, 15, 1027, 50_001] {
            let gate = values(n, 5, 12.0);
            let up = values(n, 6, 3.0);
            let mut gated = gate.clone();
            gelu_new_gated(&mut gated, Some(&up));
            let want: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| gelu_new(g as f64) * u as f64)
                .collect();
            assert_close(&gated, &want, 1e-6);
            let mut plain = gate.clone();
            gelu_new_gated(&mut plain, None);
            let want: Vec<f64> = gate.iter().map(|&g| gelu_new(g as f64)).collect();
            assert_close(&plain, &want, 1e-6);
        }
    }

    #[test]
    fn dropout_masks_keep_the_asked_share_and_depend_on_seed_and_index_only() {
        let n = 3 * PARALLEL_MIN_ELEMENTS + 17;
        let keep = 0.95;
        let mut mask = vec![f32::NAN; n];
        dropout_mask(&mut mask, 42, keep);
        let scale = (1.0 / keep) as f32;
        assert!(mask.iter().all(|&m| m == 0.0 || m == scale));
        // Kept share within four standard deviations of `keep`.
        let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64;
        let sd = (n as f64 * keep * (1.0 - keep)).sqrt();
        assert!(
            (kept - n as f64 * keep).abs() < 4.0 * sd,
            "{kept} of {n} kept"
        );
        // Element by element as a scalar loop would draw it: nothing depends on the chunks or
        // threads that wrote the parallel mask.
        for (i, &m) in mask.iter().enumerate() {
            let draw = split_mix(42u64.wrapping_add((i as u64 + 1).wrapping_mul(GAMMA)));
            let want = (draw >> 32) as f64 / ((1u64 << 32) as f64) < keep;
            assert_eq!(m != 0.0, want, "element {i}");
        }
        // The same seed gives the same mask; another seed another one, with about the
        // independent share of elements in common.
        let mut again = vec![0.0; n];
        dropout_mask(&mut again, 42, keep);
        assert_eq!(mask, again);
        dropout_mask(&mut again, 43, keep);
        let dropped_in_both = mask
            .iter()
            .zip(&again)
            .filter(|&(&a, &b)| a == 0.0 && b == 0.0)
            .count() as f64;
        let expected = n as f64 * (1.0 - keep) * (1.0 - keep);
        assert!((dropped_in_both - expected).abs() < 4.0 * expected.sqrt() + 4.0);
        // Neighbouring elements are not correlated: the dropped share after a dropped one is
        // the overall share.
        let after_dropped = mask
            .windows(2)
            .filter(|w| w[0] == 0.0)
            .map(|w| (w[1] == 0.0) as usize as f64)
            .collect::<Vec<_>>();
        let share = after_dropped.iter().sum::<f64>() / after_dropped.len() as f64;
        assert!((share - (1.0 - keep)).abs() < 0.02, "{share}");
    }

    #[test]
    fn softmax_backward_matches_the_reference() {
        // Rows short and long, enough of them to run in parallel.
        for (rows, width) in [(1, 1), (7, 37), (300, 129)] {
            let logits = values(rows * width, 7, 6.0);
            let grad = values(rows * width, 8, 2.0);
            // Probabilities in f64, and the f32 copy the kernel reads.
            let probabilities: Vec<f64> = logits
                .chunks(width)
                .flat_map(|row| {
                    let top = row.iter().fold(f32::MIN, |m, &x| m.max(x)) as f64;
                    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - top).exp()).collect();
                    let total: f64 = e.iter().sum();
                    e.into_iter().map(move |v| v / total)
                })
                .collect();
            let p32: Vec<f32> = probabilities.iter().map(|&p| p as f32).collect();
            // The Jacobian written out: ∂p_j/∂x_i = p_j (δ_ij − p_i).
            let want: Vec<f64> = (0..rows)
                .flat_map(|r| {
                    let (p, g) = (&p32[r * width..][..width], &grad[r * width..][..width]);
                    (0..width).map(move |i| {
                        (0..width)
                            .map(|j| {
                                let delta = if i == j { 1.0 } else { 0.0 };
                                g[j] as f64 * p[j] as f64 * (delta - p[i] as f64)
                            })
                            .sum::<f64>()
                    })
                })
                .collect();
            let mut got = grad.clone();
            softmax_backward(&mut got, &p32, width);
            assert_close(&got, &want, 1e-5);
        }
    }

    #[test]
    fn the_gated_gelu_gate_gradient_matches_the_derivative() {
        let gelu_new = |x: f64| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        };
        for n in [1, 15, 1027, 50_001] {
            let gate = values(n, 9, 8.0);
            let up = values(n, 10, 3.0);
            let grad = values(n, 11, 2.0);
            // The derivative of the tanh form by central differences in f64.
            let h = 1e-5;
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    let x = gate[i] as f64;
                    let slope = (gelu_new(x + h) - gelu_new(x - h)) / (2.0 * h);
                    grad[i] as f64 * up[i] as f64 * slope
                })
                .collect();
            let mut got = grad.clone();
            gated_gelu_new_gate_grad(&mut got, &gate, &up);
            assert_close(&got, &want, 1e-5);
        }
    }
}

//! Rounding bounds for the kernel tests.
//!
//! Two computations of the same f32 result in different orders (our kernels against Burn's
//! composed operations, gemm against OpenBLAS) differ by rounding alone, and by how much depends
//! on the order each takes: gemm's AVX2 and AVX-512 micro-kernels, OpenBLAS's core types and
//! the split into threads sum in other orders, chosen at run time by the CPU. A fixed tolerance
//! that holds on one CPU fails on another (issue 53: a 300-long product, 3·10⁻⁵ relative on an
//! AMD EPYC with AVX2). So each comparison here allows what forward error analysis bounds for
//! any order, vector width, thread split and use of FMA: each side within `u·w` of the exact
//! result, so the two within `2·u·w` of each other.
//!
//! `u = 2⁻²⁴` is f32's unit roundoff (one rounding turns `x` into `x(1 + δ)`, `|δ| ≤ u`), and
//! `w`, an output's *rounding weight*, the sum over the roundings its computation makes of the
//! magnitude each rounds, times how much an error there is amplified at the output (the
//! first-order bound; Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3). A sum
//! of `k` products in any order has weight `k·Σ|aᵢbᵢ|` ([`product_weights`]); an element-wise
//! kernel has weight `n·|y|` for a count `n` of relative roundings that its test derives. What
//! the first order leaves out is below 10⁻³ of it for every weight here (`u·w/|y| < 10⁻⁴`).

use burn::tensor::TensorData;

/// f32's unit roundoff, 2⁻²⁴.
pub const F32_UNIT: f64 = f32::EPSILON as f64 / 2.0;

/// f16's unit roundoff, 2⁻¹¹ (for the OpenBLAS build's f16 projection test).
#[cfg(feature = "openblas-matmul")]
pub const F16_UNIT: f64 = 1.0 / 2048.0;

/// Two sides, each within `u·w` of the exact result, and 5% for the second-order terms (which
/// are below 0.1% here).
const SIDES: f64 = 2.1;

/// Results below f32's normal range keep less than its relative precision: the absolute error
/// each rounding there may make.
const UNDERFLOW: f64 = f32::MIN_POSITIVE as f64;

/// How far two computations of one result may differ when each is within `unit · weight` of
/// the exact result: both sides, the second-order terms, and underflow's absolute error.
pub fn allowed(weight: f64, unit: f64) -> f64 {
    SIDES * (unit * weight + UNDERFLOW)
}

/// Asserts that `got` and `want` differ, element by element, by at most
/// [`allowed`]`(weights[i], unit)`, naming the worst element otherwise.
pub fn assert_within(got: &TensorData, want: &TensorData, weights: &[f64], unit: f64) {
    let (got, want) = (f32s(got), f32s(want));
    assert_eq!(got.len(), want.len(), "lengths");
    assert_eq!(got.len(), weights.len(), "one weight per element");
    let mut worst = (0.0, 0);
    for (i, ((&g, &w), &weight)) in got.iter().zip(want).zip(weights).enumerate() {
        let allowed = allowed(weight, unit);
        let share = (g as f64 - w as f64).abs() / allowed;
        // A NaN on either side fails too.
        if share.is_nan() || share > 1.0 {
            panic!(
                "element {i}: {g} against {w}, {:e} apart, more than rounding allows ({allowed:e})",
                (g as f64 - w as f64).abs()
            );
        }
        if share > worst.0 {
            worst = (share, i);
        }
    }
    eprintln!(
        "largest difference: {:.3} of the rounding bound (element {})",
        worst.0, worst.1
    );
}

/// The rounding weights of the entries of `a · b`, `a` of `[m, k]` and `b` of `[k, n]` (row
/// major): `k · (|a| |b|)ᵢⱼ`. Any order of the `k`-term sum, with or without FMA, is within
/// `γₖ (|a| |b|)ᵢⱼ` of the exact entry (Higham, Lemma 3.5 and §3.5), `γₖ = k·u / (1 − k·u)`.
pub fn product_weights(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
    assert_eq!((a.len(), b.len()), (m * k, k * n), "operand shapes");
    let mut weights = vec![0.0; m * n];
    for (row, out) in weights.chunks_mut(n.max(1)).enumerate().take(m) {
        for (p, &x) in a[row * k..][..k].iter().enumerate() {
            for (o, &y) in out.iter_mut().zip(&b[p * n..][..n]) {
                *o += (x as f64 * y as f64).abs();
            }
        }
        for o in out.iter_mut() {
            *o *= k as f64;
        }
    }
    weights
}

/// The f32 values of `data` (an f32 tensor).
pub fn f32s(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>().expect("f32 data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_summed_in_two_orders_stays_within_its_bound_and_an_error_does_not() {
        // Terms of alternating sign and mixed size, summed forwards and backwards: the
        // cancellation that made a fixed relative tolerance fail.
        let k = 300;
        let a: Vec<f32> = (0..k)
            .map(|i| (i as f32 * 0.37).sin() * (1.0 + (i % 7) as f32))
            .collect();
        let b: Vec<f32> = (0..k).map(|i| (i as f32 * 1.3).cos() * 2.0).collect();
        let forwards = a.iter().zip(&b).fold(0.0f32, |s, (x, y)| s + x * y);
        let backwards = a.iter().zip(&b).rev().fold(0.0f32, |s, (x, y)| s + x * y);
        let weights = product_weights(&a, &b, [1, k, 1]);
        let data = |v: f32| TensorData::new(vec![v], [1]);
        assert_within(&data(forwards), &data(backwards), &weights, F32_UNIT);
        // One term dropped is far outside it.
        let dropped = forwards - a[k / 2] * b[k / 2];
        let result = std::panic::catch_unwind(|| {
            assert_within(&data(forwards), &data(dropped), &weights, F32_UNIT)
        });
        assert!(result.is_err(), "a missing term passed as rounding");
    }
}

//! What a paired comparison could have detected: the minimum detectable effect (MDE) at a
//! significance level and power, the power of a test against a given effect, and the number of
//! questions a given effect would need.
//!
//! All of it is the normal approximation of the paired test: the mean of `n` per-question
//! differences with standard deviation `sd` has standard error `se = sd / √n`, and a two-sided
//! test at level `α` detects an effect `δ` with power
//! `Φ(δ/se − z₁₋α/₂) + Φ(−δ/se − z₁₋α/₂)`. Setting that to the target power `1 − β` (dropping
//! the far tail, which is below 1e-6 at 80% power) gives `MDE = (z₁₋α/₂ + z₁₋β) · se`.
//!
//! ```
//! use qa_metrics::power::{minimum_detectable_effect, power_at, questions_needed};
//!
//! // Per-question F1 differences with a standard deviation of 30 points, 2,000 questions.
//! let mde = minimum_detectable_effect(30.0, 2_000, 0.05, 0.8);
//! assert!((mde - 1.879).abs() < 1e-3);
//! assert!((power_at(mde, 30.0, 2_000, 0.05) - 0.8).abs() < 1e-6);
//! // A 0.82-point gap at the same spread needs about 10,500 questions (10,506).
//! assert_eq!(questions_needed(0.82, 30.0, 0.05, 0.8), Some(10_506));
//! ```

use serde::{Deserialize, Serialize};

/// What one paired comparison could detect, in the units of its scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Power {
    /// Sample standard deviation of the per-question differences (n − 1 in the denominator).
    pub sd_difference: f64,
    /// The smallest difference the test detects at the configured level and power (normal
    /// approximation on `sd_difference`).
    pub mde: f64,
    /// The same from the paired bootstrap's standard error of the mean difference: a check on
    /// the normal approximation, which should agree closely.
    pub mde_bootstrap: f64,
    /// The test's power against the observed difference, taken as the true one.
    pub observed_power: f64,
}

impl Power {
    /// The power figures of `n` per-question differences with sample standard deviation
    /// `sd_difference`, bootstrap standard error `bootstrap_se` and observed mean `observed`.
    pub fn of(
        sd_difference: f64,
        bootstrap_se: f64,
        n: usize,
        observed: f64,
        alpha: f64,
        power: f64,
    ) -> Self {
        Power {
            sd_difference,
            mde: minimum_detectable_effect(sd_difference, n, alpha, power),
            mde_bootstrap: (z_two_sided(alpha) + normal_quantile(power)) * bootstrap_se,
            observed_power: power_at(observed, sd_difference, n, alpha),
        }
    }

    /// The figures with every difference multiplied by `factor` (e.g. 100 for percent); the
    /// power is a probability and stays.
    pub fn scaled(self, factor: f64) -> Self {
        Power {
            sd_difference: self.sd_difference * factor,
            mde: self.mde * factor,
            mde_bootstrap: self.mde_bootstrap * factor,
            observed_power: self.observed_power,
        }
    }
}

/// `z₁₋α/₂`, the two-sided critical value.
fn z_two_sided(alpha: f64) -> f64 {
    normal_quantile(1.0 - alpha / 2.0)
}

/// The smallest true mean difference that a two-sided paired test at level `alpha` detects with
/// probability `power`, for `n` differences of standard deviation `sd`.
pub fn minimum_detectable_effect(sd: f64, n: usize, alpha: f64, power: f64) -> f64 {
    (z_two_sided(alpha) + normal_quantile(power)) * sd / (n as f64).sqrt()
}

/// The probability that a two-sided paired test at level `alpha` on `n` differences of standard
/// deviation `sd` rejects "no difference" when the true mean difference is `effect`.
///
/// With `sd = 0` every non-zero effect is certain to be seen, and no effect is seen with the
/// test's size `alpha` (the limit of the formula).
pub fn power_at(effect: f64, sd: f64, n: usize, alpha: f64) -> f64 {
    if sd == 0.0 {
        return if effect == 0.0 { alpha } else { 1.0 };
    }
    let shift = effect.abs() * (n as f64).sqrt() / sd;
    let z = z_two_sided(alpha);
    normal_cdf(shift - z) + normal_cdf(-shift - z)
}

/// The number of questions a paired test at level `alpha` needs to detect a true difference
/// `effect` with probability `power`, at the standard deviation `sd` of the per-question
/// differences; `None` for no effect (no number of questions suffices).
pub fn questions_needed(effect: f64, sd: f64, alpha: f64, power: f64) -> Option<usize> {
    if effect == 0.0 {
        return None;
    }
    let n = ((z_two_sided(alpha) + normal_quantile(power)) * sd / effect.abs()).powi(2);
    Some((n.ceil() as usize).max(1))
}

/// The standard normal distribution function Φ.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function, to a relative error below 1.2e-7 everywhere (the Chebyshev
/// fit of Numerical Recipes' `erfcc`), ample for power figures.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, c| acc * t + c);
    let value = t * (-z * z + poly).exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// The standard normal quantile Φ⁻¹(p) for `0 < p < 1`, to a relative error below 1.2e-9
/// (Acklam's rational approximation); ±∞ at 0 and 1.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let horner = |coefficients: &[f64], x: f64| coefficients.iter().fold(0.0, |acc, c| acc * x + c);
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        let r = (-2.0 * q.ln()).sqrt();
        horner(&C, r) / (horner(&D, r) * r + 1.0)
    };
    if p < LOW {
        tail(p)
    } else if p > 1.0 - LOW {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        horner(&A, r) * q / (horner(&B, r) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_functions_match_tabled_values() {
        // Values from R's qnorm/pnorm.
        for (p, z) in [
            (0.975, 1.959_963_984_540_054),
            (0.8, 0.841_621_233_572_914_3),
            (0.5, 0.0),
            (0.01, -2.326_347_874_040_841),
            (1e-6, -4.753_424_308_822_899),
        ] {
            let got = normal_quantile(p);
            assert!(
                (got - z).abs() <= 1e-8 * z.abs().max(1.0),
                "Φ⁻¹({p}) = {got}"
            );
            let back = normal_cdf(z);
            assert!((back - p).abs() <= 1.2e-7 * p, "Φ({z}) = {back}");
        }
        assert!((normal_cdf(-1.0) - 0.158_655_253_931_457_05).abs() < 1e-8);
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
    }

    #[test]
    fn closed_form_cases() {
        // (1.959964 + 0.841621) / √100 for unit spread.
        let mde = minimum_detectable_effect(1.0, 100, 0.05, 0.8);
        assert!((mde - 0.280_158_5).abs() < 1e-6, "{mde}");
        // The MDE is where the power reaches its target; no effect has the test's size.
        assert!((power_at(mde, 1.0, 100, 0.05) - 0.8).abs() < 1e-6);
        assert!((power_at(0.0, 1.0, 100, 0.05) - 0.05).abs() < 1e-7);
        assert_eq!(
            power_at(-mde, 1.0, 100, 0.05),
            power_at(mde, 1.0, 100, 0.05)
        );
        // Quadrupling the questions halves the MDE.
        let quarter = minimum_detectable_effect(1.0, 400, 0.05, 0.8);
        assert!((quarter - mde / 2.0).abs() < 1e-12);
        // ⌈(2.801585 / 0.28)²⌉ = ⌈100.11⌉.
        assert_eq!(questions_needed(0.28, 1.0, 0.05, 0.8), Some(101));
        assert_eq!(questions_needed(-0.28, 1.0, 0.05, 0.8), Some(101));
        assert_eq!(questions_needed(0.0, 1.0, 0.05, 0.8), None);
        // Identical systems: nothing varies, so any difference would be seen.
        assert_eq!(power_at(0.1, 0.0, 10, 0.05), 1.0);
        assert_eq!(minimum_detectable_effect(0.0, 10, 0.05, 0.8), 0.0);
    }

    /// Rejection rate of a z-test on simulated paired experiments whose per-question difference
    /// is +1 with probability `up`, −1 with probability `down`, 0 otherwise.
    fn rejection_rate(up: f64, down: f64, n: usize, experiments: usize) -> f64 {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let z = normal_quantile(0.975);
        let rejected = (0..experiments)
            .filter(|_| {
                let d: Vec<f64> = (0..n)
                    .map(|_| {
                        let u: f64 = rng.random();
                        if u < up {
                            1.0
                        } else if u < up + down {
                            -1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mean = d.iter().sum::<f64>() / n as f64;
                let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                (mean / (var / n as f64).sqrt()).abs() > z
            })
            .count();
        rejected as f64 / experiments as f64
    }

    #[test]
    fn a_simulated_effect_of_the_mde_is_detected_with_the_target_power() {
        // EM-like differences: the two systems disagree on 30% of the questions; the true
        // effect is set to the MDE of 400 questions at that spread.
        let (n, disagree) = (400, 0.3);
        // With effect δ = up − down and up + down = disagree, sd² = disagree − δ².
        let mut effect: f64 = 0.05;
        for _ in 0..20 {
            effect = minimum_detectable_effect((disagree - effect * effect).sqrt(), n, 0.05, 0.8);
        }
        let up = (disagree + effect) / 2.0;
        let rate = rejection_rate(up, disagree - up, n, 4_000);
        // Binomial standard error at 4,000 experiments: 0.0063.
        assert!((rate - 0.8).abs() < 0.025, "rejected {rate} at the MDE");
        let null = rejection_rate(disagree / 2.0, disagree / 2.0, n, 4_000);
        assert!(
            (null - 0.05).abs() < 0.015,
            "rejected {null} with no effect"
        );
        let predicted = power_at(
            effect / 2.0,
            (disagree - effect * effect / 4.0).sqrt(),
            n,
            0.05,
        );
        let half = rejection_rate(
            (disagree + effect / 2.0) / 2.0,
            (disagree - effect / 2.0) / 2.0,
            n,
            4_000,
        );
        assert!(
            (half - predicted).abs() < 0.03,
            "{half} against {predicted} at half the MDE"
        );
    }
}

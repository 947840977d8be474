//! Uncertainty: percentile-bootstrap confidence intervals for a system's mean score, and paired
//! tests (bootstrap and approximate randomisation) for the difference between two systems scored
//! on the same questions, each with what it could detect ([`crate::power`]), and the
//! Holm–Bonferroni adjustment of a family of such tests.
//!
//! Every resample draws from its own ChaCha8 stream (the seed, stream = resample index), and the
//! resamples are combined in index order, so results are identical for a given seed whatever the
//! number of rayon threads.

use qa_data::settings::{Invalid, Section, check};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::power::Power;

/// Settings of the resampling procedures and of the tests they feed (the `eval:` config
/// section holds them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResamplingConfig {
    /// Bootstrap resamples, for confidence intervals and the paired bootstrap test.
    pub bootstrap_resamples: usize,
    /// Random sign-flip trials of the paired approximate-randomisation test.
    pub permutation_trials: usize,
    /// Confidence level of the intervals, e.g. 0.95.
    pub confidence: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// Significance level of the tests: the verdicts, the Holm adjustment and the minimum
    /// detectable effect.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// The power at which the minimum detectable effect is stated.
    #[serde(default = "default_power")]
    pub power: f64,
}

impl Section for ResamplingConfig {
    const NAME: &'static str = qa_data::settings::section_names::EVAL;

    fn validate(&self) -> std::result::Result<(), Invalid> {
        check::at_least_one("bootstrap_resamples", self.bootstrap_resamples)?;
        check::at_least_one("permutation_trials", self.permutation_trials)?;
        check::probability("confidence", self.confidence)?;
        check::probability("alpha", self.alpha)?;
        check::probability("power", self.power)
    }
}

fn default_alpha() -> f64 {
    0.05
}

fn default_power() -> f64 {
    0.8
}

impl Default for ResamplingConfig {
    fn default() -> Self {
        ResamplingConfig {
            bootstrap_resamples: 10_000,
            permutation_trials: 10_000,
            confidence: 0.95,
            seed: 20_240_607,
            alpha: default_alpha(),
            power: default_power(),
        }
    }
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate on the full sample.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// The difference between two systems scored on the same questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Mean of `a - b` with its paired-bootstrap percentile interval.
    pub difference: Interval,
    /// Two-sided paired-bootstrap p-value for "no difference".
    pub p_bootstrap: f64,
    /// Two-sided p-value of the paired approximate-randomisation (sign-flip) test.
    pub p_permutation: f64,
    /// What this test could detect, at the configured `alpha` and `power`.
    pub power: Power,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn stream(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// The means of `config.bootstrap_resamples` resamples (with replacement) of `values`.
fn bootstrap_means(values: &[f64], config: &ResamplingConfig) -> Vec<f64> {
    let n = values.len();
    (0..config.bootstrap_resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = stream(config.seed, b);
            let total: f64 = (0..n).map(|_| values[rng.random_range(0..n)]).sum();
            total / n as f64
        })
        .collect()
}

/// Linear-interpolation quantile (NumPy's default) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * weight
}

fn percentile_interval(value: f64, mut resampled: Vec<f64>, confidence: f64) -> Interval {
    resampled.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Interval {
        value,
        low: quantile(&resampled, tail),
        high: quantile(&resampled, 1.0 - tail),
    }
}

fn check_values(values: &[f64]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::NoQuestions);
    }
    Ok(())
}

/// Percentile-bootstrap confidence interval of the mean of `values` (per-question scores).
///
/// ```
/// use qa_metrics::compare::{ResamplingConfig, bootstrap_ci};
/// let scores: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 4 != 0))).collect();
/// let ci = bootstrap_ci(&scores, &ResamplingConfig::default())?;
/// assert_eq!(ci.value, 0.75);
/// assert!(ci.low < 0.75 && 0.75 < ci.high);
/// # Ok::<(), qa_metrics::Error>(())
/// ```
pub fn bootstrap_ci(values: &[f64], config: &ResamplingConfig) -> Result<Interval> {
    config.validate()?;
    check_values(values)?;
    Ok(percentile_interval(
        mean(values),
        bootstrap_means(values, config),
        config.confidence,
    ))
}

/// Paired comparison of two systems' per-question scores `a` and `b` (same questions, same
/// order): the mean difference `a - b` with its paired-bootstrap interval, and two p-values.
///
/// The bootstrap p-value is `min(1, 2·(k + 1)/(B + 1))`, where `k` counts the resampled mean
/// differences on the far side of zero (≤ 0 when the observed difference is positive, ≥ 0 when
/// negative). The approximate-randomisation p-value is `(c + 1)/(R + 1)`, where `c` counts the
/// `R` random sign flips of the per-question differences whose absolute mean is at least the
/// observed one.
///
/// ```
/// use qa_metrics::compare::{ResamplingConfig, paired_bootstrap};
/// let a = vec![1.0; 100];
/// let b: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
/// let cmp = paired_bootstrap(&a, &b, &ResamplingConfig::default())?;
/// assert_eq!(cmp.difference.value, 0.5);
/// assert!(cmp.p_bootstrap < 0.01 && cmp.p_permutation < 0.01);
/// # Ok::<(), qa_metrics::Error>(())
/// ```
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    config: &ResamplingConfig,
) -> Result<PairedComparison> {
    config.validate()?;
    if a.len() != b.len() {
        return Err(Error::LengthMismatch {
            a: a.len(),
            b: b.len(),
        });
    }
    check_values(a)?;
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let observed = mean(&differences);
    let resampled = bootstrap_means(&differences, config);

    let far_side = if observed >= 0.0 {
        resampled.iter().filter(|&&d| d <= 0.0).count()
    } else {
        resampled.iter().filter(|&&d| d >= 0.0).count()
    };
    let trials = resampled.len() as f64;
    let p_bootstrap = (2.0 * (far_side as f64 + 1.0) / (trials + 1.0)).min(1.0);
    let power = Power::of(
        sample_std(&differences),
        sample_std(&resampled),
        differences.len(),
        observed,
        config.alpha,
        config.power,
    );

    Ok(PairedComparison {
        difference: percentile_interval(observed, resampled, config.confidence),
        p_bootstrap,
        p_permutation: sign_flip_p_value(&differences, observed, config),
        power,
    })
}

/// Paired approximate randomisation: each trial flips the sign of each per-question difference
/// with probability 1/2 (swapping the two systems' outputs on that question).
fn sign_flip_p_value(differences: &[f64], observed: f64, config: &ResamplingConfig) -> f64 {
    let n = differences.len() as f64;
    // Tolerance for floating-point ties: a permuted sum equal to the observed one counts.
    let threshold = observed.abs() * n - 1e-9;
    // Permutation trials use streams after the bootstrap's, so the two tests draw independently.
    let first_stream = config.bootstrap_resamples;
    let at_least_as_extreme = (0..config.permutation_trials)
        .into_par_iter()
        .filter(|&t| {
            let mut rng = stream(config.seed, first_stream + t);
            let mut total = 0.0;
            for chunk in differences.chunks(64) {
                let signs = rng.next_u64();
                for (bit, d) in chunk.iter().enumerate() {
                    total += if signs >> bit & 1 == 1 { -d } else { *d };
                }
            }
            total.abs() >= threshold
        })
        .count();
    (at_least_as_extreme as f64 + 1.0) / (config.permutation_trials as f64 + 1.0)
}

/// Holm–Bonferroni adjusted p-values of one family of tests, in the order given: the `i`-th
/// smallest of `m` p-values becomes the running maximum of `(m − i + 1)·p`, capped at 1.
/// Rejecting where an adjusted p-value is below `α` keeps the chance of any false rejection in
/// the family at most `α`.
///
/// ```
/// let adjusted = qa_metrics::compare::holm(&[0.01, 0.04, 0.03, 0.2]);
/// assert_eq!(adjusted, vec![0.04, 0.09, 0.09, 0.2]);
/// ```
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Sample standard deviation (n − 1 in the denominator); 0 for fewer than two values.
fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let squares: f64 = values.iter().map(|v| (v - m).powi(2)).sum();
    (squares / (values.len() - 1) as f64).sqrt()
}

/// Mean and sample standard deviation of one figure across runs (e.g. training seeds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean over runs.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for a single run.
    pub std: f64,
    /// Number of runs.
    pub runs: usize,
}

/// Mean ± standard deviation of `values` across runs; `None` for no runs.
///
/// ```
/// let agg = qa_metrics::compare::mean_std(&[70.0, 72.0, 74.0]).unwrap();
/// assert_eq!((agg.mean, agg.std, agg.runs), (72.0, 2.0, 3));
/// ```
pub fn mean_std(values: &[f64]) -> Option<MeanStd> {
    if values.is_empty() {
        return None;
    }
    Some(MeanStd {
        mean: mean(values),
        std: sample_std(values),
        runs: values.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the
    /// file: resamples are counts and the levels lie strictly between 0 and 1.
    #[test]
    fn every_numeric_setting_refuses_what_it_cannot_run_with() {
        assert_eq!(
            qa_stage::config::probe_numeric_settings::<ResamplingConfig>().expect("probes"),
            "\
alpha: 0 -1 1.5
bootstrap_resamples: 0 -1 1.5
confidence: 0 -1 1.5
permutation_trials: 0 -1 1.5
power: 0 -1 1.5
seed: -1 1.5
"
        );
    }

    fn config(seed: u64) -> ResamplingConfig {
        ResamplingConfig {
            bootstrap_resamples: 2_000,
            permutation_trials: 2_000,
            confidence: 0.95,
            seed,
            ..ResamplingConfig::default()
        }
    }

    /// Deterministic pseudo-random 0/1 scores with the given success rate.
    fn scores(n: usize, rate: f64, seed: u64) -> Vec<f64> {
        let mut rng = stream(seed, 0);
        (0..n)
            .map(|_| f64::from(u8::from(rng.random_bool(rate))))
            .collect()
    }

    #[test]
    fn identical_systems_differ_by_zero_with_p_one() {
        let a = scores(2_000, 0.6, 1);
        let cmp = paired_bootstrap(&a, &a, &config(3)).expect("compares");
        assert_eq!(cmp.difference.value, 0.0);
        assert!(cmp.difference.low <= 0.0 && cmp.difference.high >= 0.0);
        assert_eq!(cmp.p_bootstrap, 1.0);
        assert_eq!(cmp.p_permutation, 1.0);
    }

    #[test]
    fn a_system_better_on_a_clear_majority_is_significant() {
        // `a` is right on every question `b` gets right and on 10% more.
        let b = scores(2_000, 0.5, 2);
        let extra = scores(2_000, 0.2, 5);
        let a: Vec<f64> = b.iter().zip(&extra).map(|(x, e)| x.max(*e)).collect();
        let cmp = paired_bootstrap(&a, &b, &config(4)).expect("compares");
        assert!(cmp.difference.value > 0.05);
        assert!(cmp.difference.low > 0.0);
        assert!(cmp.p_bootstrap < 0.01, "{cmp:?}");
        assert!(cmp.p_permutation < 0.01, "{cmp:?}");
        // The same comparison the other way round.
        let flipped = paired_bootstrap(&b, &a, &config(4)).expect("compares");
        assert!(flipped.difference.high < 0.0 && flipped.p_bootstrap < 0.01);
    }

    #[test]
    fn noise_is_not_significant() {
        let a = scores(500, 0.6, 10);
        let b = scores(500, 0.6, 11);
        let cmp = paired_bootstrap(&a, &b, &config(6)).expect("compares");
        assert!(
            cmp.difference.low < 0.0 && cmp.difference.high > 0.0,
            "{cmp:?}"
        );
        assert!(
            cmp.p_bootstrap > 0.05 && cmp.p_permutation > 0.05,
            "{cmp:?}"
        );
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let a = scores(1_000, 0.6, 1);
        let b = scores(1_000, 0.55, 2);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| {
                    (
                        bootstrap_ci(&a, &config(9)).expect("ci"),
                        paired_bootstrap(&a, &b, &config(9)).expect("cmp"),
                    )
                })
        };
        assert_eq!(run(1), run(3));
        assert_ne!(run(1).0, bootstrap_ci(&a, &config(10)).expect("ci"));
    }

    #[test]
    fn interval_covers_the_mean_and_shrinks_with_more_data() {
        let small = bootstrap_ci(&scores(100, 0.6, 1), &config(1)).expect("ci");
        let large = bootstrap_ci(&scores(4_000, 0.6, 1), &config(1)).expect("ci");
        assert!(small.low <= small.value && small.value <= small.high);
        assert!(large.high - large.low < (small.high - small.low) / 3.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            bootstrap_ci(&[], &config(1)),
            Err(Error::NoQuestions)
        ));
        assert!(matches!(
            paired_bootstrap(&[1.0], &[1.0, 0.0], &config(1)),
            Err(Error::LengthMismatch { a: 1, b: 2 })
        ));
        let bad = ResamplingConfig {
            confidence: 1.5,
            ..config(1)
        };
        assert!(matches!(bootstrap_ci(&[1.0], &bad), Err(Error::Setting(_))));
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&sorted, 1.0), 4.0);
        assert!((quantile(&sorted, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&sorted, 0.025) - 1.075).abs() < 1e-12);
    }

    #[test]
    fn holm_adjusts_like_the_textbook_and_holds_the_familywise_error() {
        // Holm (1979)'s procedure by hand: sorted 0.005, 0.011, 0.02, 0.04, 0.13 times 5..1.
        let adjusted = holm(&[0.04, 0.005, 0.13, 0.011, 0.02]);
        let expected = [0.08, 0.025, 0.13, 0.044, 0.06];
        for (got, want) in adjusted.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
        // Ten true null hypotheses per family: raw p < 0.05 somewhere in 1 − 0.95¹⁰ ≈ 40% of
        // the families, Holm-adjusted in at most 5%.
        let mut rng = stream(99, 0);
        let families = 4_000;
        let (mut raw, mut adjusted) = (0, 0);
        for _ in 0..families {
            let p: Vec<f64> = (0..10).map(|_| rng.random::<f64>()).collect();
            raw += usize::from(p.iter().any(|&p| p < 0.05));
            adjusted += usize::from(holm(&p).iter().any(|&p| p < 0.05));
        }
        let (raw, adjusted) = (
            raw as f64 / families as f64,
            adjusted as f64 / families as f64,
        );
        assert!((raw - 0.401).abs() < 0.03, "raw familywise error {raw}");
        assert!(adjusted < 0.06, "adjusted familywise error {adjusted}");
    }

    #[test]
    fn the_bootstrap_check_of_the_mde_agrees_with_the_normal_approximation() {
        let b = scores(2_000, 0.5, 2);
        let a = scores(2_000, 0.55, 3);
        let cmp = paired_bootstrap(&a, &b, &config(5)).expect("compares");
        let power = cmp.power;
        let expected =
            crate::power::minimum_detectable_effect(power.sd_difference, 2_000, 0.05, 0.8);
        assert_eq!(power.mde, expected);
        assert!(
            (power.mde_bootstrap / power.mde - 1.0).abs() < 0.05,
            "{power:?}"
        );
        assert!(power.observed_power > 0.0 && power.observed_power < 1.0);
    }

    #[test]
    fn mean_std_of_runs() {
        assert_eq!(mean_std(&[]), None);
        let single = mean_std(&[5.0]).expect("one run");
        assert_eq!((single.mean, single.std), (5.0, 0.0));
    }
}

//! What the figures say, in plain words: the paired comparisons of the study and the checks of
//! its expected outcome.

use qa_metrics::compare::{Interval, PairedComparison, ResamplingConfig};
use qa_metrics::evaluate::{AdjustedP, Comparison};

use crate::gather::{Gathered, SystemRow};

/// Picks one metric's comparison and its Holm-adjusted p-value out of a [`Comparison`].
type Pick = fn(&Comparison) -> PairedComparison;
type PickAdjusted = fn(&AdjustedP) -> f64;

/// The two metrics the study's conclusions are stated in.
const METRICS: [(&str, Pick, PickAdjusted); 2] = [
    ("F1", |c| c.f1, |p| p.f1),
    ("EM", |c| c.exact_match, |p| p.exact_match),
];

/// The earlier Python run's scores of models A and B, as it reported them: `(model, EM, F1)`.
pub const ORIGINAL_STUDY: [(&str, f64, f64); 2] = [("A", 59.45, 71.39), ("B", 58.80, 70.57)];

/// The earlier run's A − B gap in `metric` (`EM` or `F1`), in points.
pub fn original_gap(metric: &str) -> f64 {
    let [(_, a_em, a_f1), (_, b_em, b_f1)] = ORIGINAL_STUDY;
    match metric {
        "EM" => a_em - b_em,
        _ => a_f1 - b_f1,
    }
}

/// The pairs the report states, by model name: the study's three, then each model against the
/// base model.
const PAIRS: [(&str, &str); 6] = [
    ("c", "b"),
    ("c", "a"),
    ("a", "b"),
    ("a", ZERO),
    ("b", ZERO),
    ("c", ZERO),
];
const ZERO: &str = qa_stage::layout::ZERO_SHOT;

/// One paired difference `left − right`.
#[derive(Debug, Clone)]
pub struct Difference {
    /// The first system's label.
    pub left: String,
    /// The second system's label.
    pub right: String,
    /// The model names (`a`, `b`, `c` or `zero_shot`), the pair compared.
    pub models: (&'static str, &'static str),
    /// `F1` or `EM`.
    pub metric: &'static str,
    /// The difference in percentage points, its interval, p-values and power.
    pub comparison: PairedComparison,
    /// The paired-bootstrap p-value adjusted by Holm over the family of `metrics.json`.
    pub p_adjusted: f64,
}

impl Difference {
    /// Whether the Holm-adjusted paired-bootstrap p-value rejects "no difference" at `alpha`.
    pub fn significant(&self, alpha: f64) -> bool {
        self.p_adjusted < alpha
    }

    /// E.g. "C − B = +1.2 F1 [−0.4, +2.9], p = 0.150, Holm-adjusted p = 0.450 (paired
    /// bootstrap; approximate randomisation p = 0.140): not significant at 0.05 after
    /// adjustment".
    pub fn sentence(&self, alpha: f64) -> String {
        let Interval { value, low, high } = self.comparison.difference;
        format!(
            "{} − {} = {} {} [{}, {}], {}, Holm-adjusted {} (paired bootstrap; approximate randomisation {}): {} at {alpha} after adjustment",
            self.left,
            self.right,
            signed(value),
            self.metric,
            signed(low),
            signed(high),
            p_value(self.comparison.p_bootstrap),
            p_value(self.p_adjusted),
            p_value(self.comparison.p_permutation),
            match self.significant(alpha) {
                true => "significant",
                false => "not significant",
            }
        )
    }

    /// What this test could detect, in plain words: "With 2,000 questions this run could only
    /// detect F1 differences of ±1.9 points or more (…); the original study's 0.82-point gap
    /// would need about 10,506 questions."
    pub fn detectable(&self, questions: usize, config: &ResamplingConfig) -> String {
        let power = &self.comparison.power;
        if power.sd_difference == 0.0 {
            return format!(
                "With {} questions the per-question {} differences of {} − {} are all the same, \
                 so there is no spread to size a test by: no minimum detectable effect or needed \
                 number of questions can be given.",
                thousands(questions),
                self.metric,
                self.left,
                self.right
            );
        }
        let gap = original_gap(self.metric);
        let needed = qa_metrics::power::questions_needed(
            gap,
            power.sd_difference,
            config.alpha,
            config.power,
        );
        format!(
            "With {} questions this run could only detect {} differences of ±{:.1} points or \
             more (α = {}, power {:.0}%, from the spread of {} − {}); the original study's \
             {:.2}-point gap would need about {} questions.",
            thousands(questions),
            self.metric,
            power.mde,
            config.alpha,
            100.0 * config.power,
            self.left,
            self.right,
            gap,
            needed.map_or("infinitely many".to_string(), thousands),
        )
    }
}

/// `10,506`.
fn thousands(n: usize) -> String {
    qa_stage::plan::format_count(n as u64)
}

/// `+1.2`, `−0.4` (a true minus sign), `0.0`.
pub fn signed(value: f64) -> String {
    let text = format!("{:+.1}", value);
    match text.as_str() {
        "+0.0" | "-0.0" => "0.0".to_string(),
        _ => text.replace('-', "−"),
    }
}

/// `p = 0.012`, or `p < 0.001`.
pub fn p_value(p: f64) -> String {
    match p < 0.001 {
        true => "p < 0.001".to_string(),
        false => format!("p = {p:.3}"),
    }
}

/// The comparison of `left` and `right` in `metrics.json`, and whether it is stored the other
/// way round (as `right − left`; flipping it changes the interval's sign, not a p-value).
fn oriented<'a>(
    gathered: &'a Gathered,
    left: &SystemRow,
    right: &SystemRow,
) -> Option<(&'a Comparison, bool)> {
    let (l, r) = (&left.metrics.name, &right.metrics.name);
    gathered.metrics.comparisons.iter().find_map(|c| {
        if (&c.a, &c.b) == (l, r) {
            Some((c, false))
        } else if (&c.a, &c.b) == (r, l) {
            Some((c, true))
        } else {
            None
        }
    })
}

fn flip(mut comparison: PairedComparison) -> PairedComparison {
    let Interval { value, low, high } = comparison.difference;
    comparison.difference = Interval {
        value: -value,
        low: -high,
        high: -low,
    };
    comparison
}

/// The study's differences, for each seed (the zero-shot row pairs with every seed).
pub fn differences(gathered: &Gathered) -> Vec<Difference> {
    let mut seeds: Vec<Option<&String>> = Vec::new();
    for row in &gathered.rows {
        if row.model.is_some() && !seeds.contains(&row.metrics.seed.as_ref()) {
            seeds.push(row.metrics.seed.as_ref());
        }
    }
    let find = |model: &str, seed: Option<&String>| {
        gathered.rows.iter().find(|row| {
            row.metrics.model == model && (model == ZERO || row.metrics.seed.as_ref() == seed)
        })
    };
    let mut out = Vec::new();
    for seed in seeds {
        for (l, r) in PAIRS {
            let (Some(left), Some(right)) = (find(l, seed), find(r, seed)) else {
                continue;
            };
            let Some((comparison, flipped)) = oriented(gathered, left, right) else {
                continue;
            };
            // The pairs stated here are all in the family `qa-eval score` adjusts.
            let Some(adjusted) = &comparison.adjusted else {
                continue;
            };
            for (name, metric, adjusted_metric) in METRICS {
                let picked = metric(comparison);
                out.push(Difference {
                    left: left.label(),
                    right: right.label(),
                    models: (l, r),
                    metric: name,
                    comparison: if flipped { flip(picked) } else { picked },
                    p_adjusted: adjusted_metric(adjusted),
                });
            }
        }
    }
    out
}

/// The original study's expected outcome, checked on F1: C beats B (on the Holm-adjusted
/// paired-bootstrap p-value), and C matches A within the interval (which no p-value decides).
/// Returns `(claim, verdict)` lines, one per seed.
pub fn expected_outcome(differences: &[Difference], alpha: f64) -> Vec<(String, String)> {
    let mut checks = Vec::new();
    for d in differences.iter().filter(|d| d.metric == "F1") {
        let Interval { value, low, high } = d.comparison.difference;
        let (claim, verdict) = match d.models {
            ("c", "b") => (
                format!("{} > {} (synthetic beats contaminated)", d.left, d.right),
                match (value > 0.0, d.significant(alpha)) {
                    (true, true) => format!(
                        "holds: C is better, significantly (Holm-adjusted {})",
                        p_value(d.p_adjusted)
                    ),
                    (true, false) => format!(
                        "not shown: C is ahead, but not significantly (Holm-adjusted {})",
                        p_value(d.p_adjusted)
                    ),
                    (false, true) => "does not hold: C is significantly worse".to_string(),
                    (false, false) => "does not hold: C is not ahead".to_string(),
                },
            ),
            ("c", "a") => (
                format!("{} ≈ {} (synthetic as good as human)", d.left, d.right),
                match low <= 0.0 && 0.0 <= high {
                    true => "holds: the interval of C − A contains 0 (no p-value used)".to_string(),
                    false => format!(
                        "does not hold: the interval of C − A lies {} 0 (no p-value used)",
                        if high < 0.0 { "below" } else { "above" }
                    ),
                },
            ),
            _ => continue,
        };
        checks.push((claim, verdict));
    }
    checks
}

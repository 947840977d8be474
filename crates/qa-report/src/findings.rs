//! What the figures say, in plain words: the paired comparisons of the study and the checks of
//! its expected outcome.

use qa_metrics::compare::{Interval, PairedComparison};
use qa_metrics::evaluate::Comparison;

use crate::gather::{Gathered, SystemRow};

/// Picks one metric's comparison out of a [`Comparison`].
type Pick = fn(&Comparison) -> PairedComparison;

/// The two metrics the study's conclusions are stated in.
const METRICS: [(&str, Pick); 2] = [("F1", |c| c.f1), ("EM", |c| c.exact_match)];

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
const ZERO: &str = qa_data::layout::ZERO_SHOT;

/// One paired difference `left − right`.
#[derive(Debug, Clone)]
pub struct Difference {
    /// The first system's label.
    pub left: String,
    /// The second system's label.
    pub right: String,
    /// The model names, as in [`PAIRS`].
    pub models: (&'static str, &'static str),
    /// `F1` or `EM`.
    pub metric: &'static str,
    /// The difference in percentage points, its interval and p-values.
    pub comparison: PairedComparison,
}

impl Difference {
    /// Whether the paired bootstrap rejects "no difference" at `alpha`.
    pub fn significant(&self, alpha: f64) -> bool {
        self.comparison.p_bootstrap < alpha
    }

    /// E.g. "C − B = +1.2 F1 [−0.4, +2.9], p = 0.150 (paired bootstrap; approximate
    /// randomisation p = 0.140): not significant at 0.05".
    pub fn sentence(&self, alpha: f64) -> String {
        let Interval { value, low, high } = self.comparison.difference;
        format!(
            "{} − {} = {} {} [{}, {}], {} (paired bootstrap; approximate randomisation {}): {} at {alpha}",
            self.left,
            self.right,
            signed(value),
            self.metric,
            signed(low),
            signed(high),
            p_value(self.comparison.p_bootstrap),
            p_value(self.comparison.p_permutation),
            match self.significant(alpha) {
                true => "significant",
                false => "not significant",
            }
        )
    }
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

/// The comparison of `left` and `right` as `left − right`, from either order in `metrics.json`.
fn oriented(
    gathered: &Gathered,
    left: &SystemRow,
    right: &SystemRow,
    metric: Pick,
) -> Option<PairedComparison> {
    let (l, r) = (&left.metrics.name, &right.metrics.name);
    gathered.metrics.comparisons.iter().find_map(|c| {
        if (&c.a, &c.b) == (l, r) {
            Some(metric(c))
        } else if (&c.a, &c.b) == (r, l) {
            let mut flipped = metric(c);
            let Interval { value, low, high } = flipped.difference;
            flipped.difference = Interval {
                value: -value,
                low: -high,
                high: -low,
            };
            Some(flipped)
        } else {
            None
        }
    })
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
            for (name, metric) in METRICS {
                if let Some(comparison) = oriented(gathered, left, right, metric) {
                    out.push(Difference {
                        left: left.label(),
                        right: right.label(),
                        models: (l, r),
                        metric: name,
                        comparison,
                    });
                }
            }
        }
    }
    out
}

/// The original study's expected outcome, checked on F1: C beats B, and C matches A within the
/// interval. Returns `(claim, verdict)` lines, one per seed.
pub fn expected_outcome(differences: &[Difference], alpha: f64) -> Vec<(String, String)> {
    let mut checks = Vec::new();
    for d in differences.iter().filter(|d| d.metric == "F1") {
        let Interval { value, low, high } = d.comparison.difference;
        let (claim, verdict) = match d.models {
            ("c", "b") => (
                format!("{} > {} (synthetic beats contaminated)", d.left, d.right),
                match (value > 0.0, d.significant(alpha)) {
                    (true, true) => "holds: C is better, significantly".to_string(),
                    (true, false) => "not shown: C is ahead, but not significantly".to_string(),
                    (false, true) => "does not hold: C is significantly worse".to_string(),
                    (false, false) => "does not hold: C is not ahead".to_string(),
                },
            ),
            ("c", "a") => (
                format!("{} ≈ {} (synthetic as good as human)", d.left, d.right),
                match low <= 0.0 && 0.0 <= high {
                    true => "holds: the interval of C − A contains 0".to_string(),
                    false => format!(
                        "does not hold: the interval of C − A lies {} 0",
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

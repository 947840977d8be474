//! What generating through a paid endpoint used: each completion's tokens as the endpoint's
//! `usage` reported them ([`CompletionUsage`], kept in the record's provenance and in the
//! stage's ledger), their sum over a stage ([`UsageTotals`], in `contamination.json`, the
//! synthesis funnel and the report's cost table), and the price that turns tokens into money.
//!
//! ```
//! use qa_data::usage::{CompletionUsage, Price, UsageTotals, format_usd};
//!
//! let price = Price { prompt_per_million: 0.5, completion_per_million: 1.5 };
//! let mut totals = UsageTotals::default();
//! totals.add(Some(&CompletionUsage { prompt_tokens: 1_000_000, completion_tokens: 0, retries: 2 }));
//! totals.add(Some(&CompletionUsage { prompt_tokens: 0, completion_tokens: 1_000_000, retries: 0 }));
//! assert_eq!((totals.completions, totals.retries), (2, 2));
//! assert_eq!(totals.cost(Some(&price)), Some(2.0));
//! assert_eq!((format_usd(2.0), format_usd(0.00042)), ("$2.00".to_string(), "$0.0004".to_string()));
//! ```

use serde::{Deserialize, Serialize};

/// Dollars as a reader wants them: cents from a dollar up, four decimals below (`$0.0042`).
pub fn format_usd(dollars: f64) -> String {
    match dollars.abs() >= 1.0 {
        true => format!("${dollars:.2}"),
        false => format!("${dollars:.4}"),
    }
}

/// One completion's bill: its tokens, and the attempts retried before it succeeded (each of
/// which was a request too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionUsage {
    /// Tokens of the prompt (and system message), as the endpoint counted them.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Failed attempts retried before this completion came back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(retries: &u32) -> bool {
    *retries == 0
}

/// Dollars per million tokens (`openai.price`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub prompt_per_million: f64,
    /// Per million completion tokens.
    pub completion_per_million: f64,
}

impl Price {
    /// The price of `prompt` and `completion` tokens, in dollars.
    pub fn of(&self, prompt: u64, completion: u64) -> f64 {
        (prompt as f64 * self.prompt_per_million + completion as f64 * self.completion_per_million)
            / 1e6
    }
}

/// A stage's endpoint usage, summed over its ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageTotals {
    /// Completions received (one request each).
    pub completions: u64,
    /// Requests retried on the way (rate limits, server errors, dropped connections).
    pub retries: u64,
    /// Completions whose answer carried no `usage`; their tokens are not in the sums.
    pub unreported: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// The tokens' price in dollars, when `openai.price` was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl UsageTotals {
    /// Counts one completion; `None` when the endpoint reported no usage.
    pub fn add(&mut self, usage: Option<&CompletionUsage>) {
        self.completions += 1;
        match usage {
            Some(usage) => {
                self.retries += u64::from(usage.retries);
                self.prompt_tokens += usage.prompt_tokens;
                self.completion_tokens += usage.completion_tokens;
            }
            None => self.unreported += 1,
        }
    }

    /// All tokens, prompt and completion.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Their price at `price`.
    pub fn cost(&self, price: Option<&Price>) -> Option<f64> {
        price.map(|price| price.of(self.prompt_tokens, self.completion_tokens))
    }

    /// The totals as lines of a stage's printed table.
    pub fn table(&self) -> String {
        let mut table = format!(
            "completions             {:>8}\n\
             retried requests        {:>8}\n\
             prompt tokens           {:>8}\n\
             completion tokens       {:>8}\n",
            self.completions, self.retries, self.prompt_tokens, self.completion_tokens
        );
        if self.unreported > 0 {
            table += &format!("without usage           {:>8}\n", self.unreported);
        }
        if let Some(cost) = self.cost_usd {
            table += &format!("cost                    {:>8}\n", format_usd(cost));
        }
        table
    }

    /// These totals with their cost at `price` filled in.
    pub fn priced(mut self, price: Option<&Price>) -> Self {
        self.cost_usd = self.cost(price);
        self
    }
}

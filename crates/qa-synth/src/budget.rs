//! What a generation stage spends on an OpenAI-compatible endpoint, and the cap on it
//! (`openai.max_budget`).
//!
//! The spend is summed from the stage's ledger, which holds every completion's `usage`: a
//! resumed run counts what it paid for before, and a raised budget lets it go on without
//! asking for anything twice. Before each batch the stage checks that even the batch's largest
//! possible bill (its prompts at one token per four characters, every completion at
//! `max_tokens`) stays within the budget; if not, it stops with the spend so far.

use qa_data::plan::format_count;
use qa_data::usage::{CompletionUsage, Price, UsageTotals, format_usd};
use serde::{Deserialize, Serialize};
use t5_lora::estimate::approximate_tokens;

use crate::error::{Error, Result};
use crate::generator::{GeneratorConfig, Request};
use crate::openai::OpenAiConfig;

/// The most a stage may spend on its endpoint: `{tokens: N}` (prompt and completion tokens
/// together) or `{usd: X}` (at `openai.price`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Budget {
    /// Prompt and completion tokens together.
    Tokens(u64),
    /// Dollars, at `openai.price`.
    Usd(f64),
}

impl Budget {
    /// Refuses a budget that cannot be kept: a non-positive one, or dollars without a price.
    pub(crate) fn validate(&self, price: Option<&Price>) -> Result<()> {
        match self {
            Budget::Tokens(0) => Err(Error::Config(
                "openai.max_budget.tokens must be at least 1".to_string(),
            )),
            Budget::Usd(usd) if !(usd.is_finite() && *usd > 0.0) => Err(Error::Config(format!(
                "openai.max_budget.usd must be a positive number of dollars, not {usd}"
            ))),
            Budget::Usd(_) if price.is_none() => Err(Error::Config(
                "openai.max_budget.usd needs openai.price to turn tokens into dollars".to_string(),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Budget::Tokens(tokens) => format!("{} tokens", format_count(*tokens)),
            Budget::Usd(usd) => format_usd(*usd),
        }
    }
}

/// A stage's spend so far, and the budget it must keep.
pub(crate) struct Spending<'a> {
    /// The endpoint's settings; `None` when the local model generates (nothing is billed).
    billing: Option<&'a OpenAiConfig>,
    totals: UsageTotals,
}

impl<'a> Spending<'a> {
    /// Nothing spent yet, on `generator`.
    pub fn new(generator: &'a GeneratorConfig) -> Self {
        Spending {
            billing: generator.billing(),
            totals: UsageTotals::default(),
        }
    }

    /// Counts one completion of the ledger.
    pub fn add(&mut self, usage: Option<&CompletionUsage>) {
        if self.billing.is_some() {
            self.totals.add(usage);
        }
    }

    /// The totals with their price, or `None` for a local model.
    pub fn totals(&self) -> Option<UsageTotals> {
        self.billing
            .map(|openai| self.totals.priced(openai.price.as_ref()))
    }

    /// Fails when sending `requests` could take the spend past the budget.
    pub fn check(&self, requests: &[Request]) -> Result<()> {
        let Some(openai) = self.billing else {
            return Ok(());
        };
        let Some(budget) = openai.max_budget else {
            return Ok(());
        };
        if self.totals.unreported > 0 {
            return Err(Error::Config(format!(
                "openai.max_budget is set, but {} of the {} completions so far came without \
                 `usage`: this endpoint does not say what it bills, so the budget cannot be kept",
                self.totals.unreported, self.totals.completions
            )));
        }
        let system = openai
            .system_prompt
            .as_deref()
            .map_or(0, approximate_tokens);
        let (mut prompt, mut completion) = (0u64, 0u64);
        for request in requests {
            let n = request.n as u64;
            prompt += n * (approximate_tokens(&request.prompt) + system) as u64;
            completion += n * openai.max_tokens as u64;
        }
        let price = openai.price.as_ref();
        let spent = self.totals.tokens();
        let over = match budget {
            Budget::Tokens(tokens) => spent + prompt + completion > tokens,
            Budget::Usd(usd) => {
                let cost = |p, c| price.map_or(0.0, |price| price.of(p, c));
                cost(self.totals.prompt_tokens, self.totals.completion_tokens)
                    + cost(prompt, completion)
                    > usd
            }
        };
        if !over {
            return Ok(());
        }
        let dollars = |p, c| {
            price.map_or(String::new(), |price| {
                format!(", {}", format_usd(price.of(p, c)))
            })
        };
        Err(Error::OverBudget {
            budget: budget.describe(),
            spent: format!(
                "{} prompt + {} completion tokens{} in {} completions ({} retried requests)",
                format_count(self.totals.prompt_tokens),
                format_count(self.totals.completion_tokens),
                dollars(self.totals.prompt_tokens, self.totals.completion_tokens),
                format_count(self.totals.completions),
                format_count(self.totals.retries),
            ),
            next: format!(
                "at most {} tokens{}",
                format_count(prompt + completion),
                dollars(prompt, completion)
            ),
        })
    }
}

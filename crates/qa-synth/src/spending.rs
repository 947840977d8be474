//! What a generation stage spends on an OpenAI-compatible endpoint, kept within
//! `openai.max_budget`.
//!
//! The spend is summed from the stage's ledger, which holds every completion's `usage`: a
//! resumed run counts what it paid for before, and a raised budget lets it go on without
//! asking for anything twice. Before each batch the stage checks that even the batch's largest
//! possible bill (its prompts at one token per four characters, every completion at
//! `max_tokens`) stays within the budget; if not, it stops with the spend so far.

use qa_data::usage::{CompletionUsage, UsageTotals, format_usd};
use qa_stage::plan::format_count;
use t5_stage::planning::approximate_tokens;

use crate::backend::GeneratorConfig;
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::generator::Request;
use crate::openai::OpenAiConfig;

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

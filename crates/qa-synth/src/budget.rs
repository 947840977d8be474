//! The cap on what a generation stage may spend on an OpenAI-compatible endpoint
//! (`openai.max_budget`); `spending.rs` keeps a stage within it.

use qa_data::plan::format_count;
use qa_data::usage::{Price, format_usd};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

    /// The budget in words, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Budget::Tokens(tokens) => format!("{} tokens", format_count(*tokens)),
            Budget::Usd(usd) => format_usd(*usd),
        }
    }
}

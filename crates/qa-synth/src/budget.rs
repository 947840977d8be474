//! The cap on what a generation stage may spend on an OpenAI-compatible endpoint
//! (`openai.max_budget`); `spending.rs` keeps a stage within it.

use qa_data::settings::{Invalid, check};
use qa_data::usage::{Price, format_usd};
use qa_stage::plan::format_count;
use serde::{Deserialize, Serialize};

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
    pub(crate) fn validate(&self, price: Option<&Price>) -> std::result::Result<(), Invalid> {
        match self {
            Budget::Tokens(0) => Err(Invalid::new("tokens", "must be at least 1, not 0")),
            Budget::Tokens(_) => Ok(()),
            Budget::Usd(usd) => {
                check::positive("usd", *usd)?;
                match price {
                    Some(_) => Ok(()),
                    None => Err(Invalid::new(
                        "usd",
                        "needs openai.price to turn tokens into dollars",
                    )),
                }
            }
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

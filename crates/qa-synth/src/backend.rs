//! The config that picks a stage's generator, and loads it.

use qa_data::settings::{Invalid, Placed, PlacedTable};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generator::Generator;
use crate::openai::{OpenAiConfig, OpenAiGenerator};
use crate::t5::{T5Generator, T5GeneratorConfig};

/// Which backend a stage generates with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A local T5 checkpoint (the `t5:` settings).
    #[default]
    T5,
    /// An OpenAI-compatible chat-completions endpoint (the `openai:` settings).
    Openai,
}

/// A stage's generator: the backend, and the settings of each (only the chosen one is used;
/// both are kept so that config files can layer a switch of backend over the defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The backend used.
    pub backend: Backend,
    /// Settings of the local T5 backend.
    pub t5: T5GeneratorConfig,
    /// Settings of the chat-completions backend.
    pub openai: OpenAiConfig,
}

impl Placed for GeneratorConfig {
    const RUN_PLACE: &'static [&'static str] = &[];
    const DECIDING: &'static [&'static str] = &["backend", "t5", "openai"];
    const WITHIN: &'static [PlacedTable] = &[
        ("t5", T5GeneratorConfig::strip_run_place),
        ("openai", OpenAiConfig::strip_run_place),
    ];
}

/// How a stage decodes, the same on either backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely text (a T5 decodes greedily; an endpoint gets temperature 0).
    Greedy,
    /// Sampling at this temperature, from the smallest set of tokens whose probabilities
    /// reach `top_p`.
    Sample {
        /// The softmax temperature.
        temperature: f32,
        /// The nucleus.
        top_p: f32,
    },
}

impl GeneratorConfig {
    /// Checks the settings of both backends (the one not chosen too: a value out of range
    /// there is a typo all the same), naming the first that is wrong.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        self.t5.validate().map_err(|e| e.within("t5"))?;
        self.openai.validate().map_err(|e| e.within("openai"))
    }

    /// The default generator of each backend, set to `decoding` with at most `max_tokens` new
    /// tokens: a stage's default.
    pub fn decoding(decoding: Decoding, max_tokens: usize) -> Self {
        let mut generator = GeneratorConfig::default();
        let (t5, openai) = (&mut generator.t5.generation, &mut generator.openai);
        (t5.max_new_tokens, openai.max_tokens) = (max_tokens, max_tokens);
        match decoding {
            Decoding::Greedy => (openai.temperature, openai.top_p) = (0.0, 1.0),
            Decoding::Sample { temperature, top_p } => {
                (t5.do_sample, t5.temperature, t5.top_p) = (true, temperature, top_p);
                (openai.temperature, openai.top_p) = (temperature, top_p);
            }
        }
        generator
    }

    /// The chosen backend's generator: the T5 model loaded, or the endpoint's client (with its
    /// API key from the environment).
    pub fn load(&self) -> Result<Box<dyn Generator>> {
        Ok(match self.backend {
            Backend::T5 => Box::new(T5Generator::load(&self.t5)?),
            Backend::Openai => Box::new(OpenAiGenerator::from_env(&self.openai)?),
        })
    }

    /// The settings that decide what is generated, which a resumed run must share; where and
    /// how fast (the run-place fields: device, batch size, concurrency, timeouts, retries)
    /// may change in between, and the backend not chosen does not matter.
    pub fn output_settings(&self) -> GeneratorConfig {
        let mut kept = self.deciding();
        match self.backend {
            Backend::T5 => kept.openai = OpenAiConfig::default(),
            Backend::Openai => kept.t5 = T5GeneratorConfig::default(),
        }
        kept
    }

    /// What the chosen backend bills by: the endpoint's settings (its price and budget), or
    /// `None` for the local model.
    pub fn billing(&self) -> Option<&OpenAiConfig> {
        (self.backend == Backend::Openai).then_some(&self.openai)
    }

    /// The chosen backend's model, for messages.
    pub fn model(&self) -> &str {
        match self.backend {
            Backend::T5 => &self.t5.model,
            Backend::Openai => &self.openai.model,
        }
    }
}

#[cfg(test)]
mod tests {
    use qa_data::settings::undeclared_fields;

    use super::GeneratorConfig;
    use crate::contaminate::ContaminateConfig;
    use crate::openai::OpenAiConfig;
    use crate::round_trip::RoundTripConfig;
    use crate::synthesize::SynthConfig;
    use crate::t5::T5GeneratorConfig;

    #[test]
    fn every_setting_is_declared_run_place_or_deciding() {
        for problems in [
            undeclared_fields::<T5GeneratorConfig>(),
            undeclared_fields::<OpenAiConfig>(),
            undeclared_fields::<SynthConfig>(),
            undeclared_fields::<ContaminateConfig>(),
            undeclared_fields::<GeneratorConfig>(),
            undeclared_fields::<RoundTripConfig>(),
        ] {
            assert_eq!(problems, Vec::<String>::new());
        }
    }
}

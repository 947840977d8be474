//! Typed settings: the config sections of the stages ([`Section`]) with their range checks
//! ([`Invalid`], [`check`]), and which fields decide an output as opposed to where and how fast
//! it is made ([`Placed`]).
//!
//! Where and how fast a stage runs (the device, batch sizes of inference, an endpoint client's
//! concurrency, timeouts and retries) is kept out of the pipeline's stage keys and out of every
//! resume check, so that a finished run directory moved from a GPU box to a laptop stays up to
//! date, and an interrupted stage may resume on another device or batch size. Each settings
//! type declares those fields beside its own ([`Placed::RUN_PLACE`]), and the tables within it
//! that hold more ([`Placed::WITHIN`]). A training batch size is not among them: it is the
//! optimiser's batch and decides the adapter.
//!
//! Loading a section from config files, variables and flags is the stage framework's
//! (`qa-stage`); this module is what a settings type needs to be one, so that a library can
//! declare its settings without depending on the framework.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The name of each section, as config files and `QA_<SECTION>__` variables spell it.
pub mod section_names {
    /// `qa-prepare`'s splits.
    pub const PREPARE: &str = "prepare";
    /// `qa-eval score`'s intervals and tests.
    pub const EVAL: &str = "eval";
    /// `qa-eval predict`'s model and decoding.
    pub const PREDICT: &str = "predict";
    /// `qa-train`'s training.
    pub const TRAIN: &str = "train";
    /// The quality filters of synthesis.
    pub const FILTERS: &str = "filters";
    /// `qa-synth`'s paraphrasing.
    pub const SYNTH: &str = "synth";
    /// `qa-contaminate`'s answers.
    pub const CONTAMINATE: &str = "contaminate";
    /// The driver's run directory and seeds.
    pub const EXPERIMENT: &str = "experiment";
    /// `qa-report`'s report.
    pub const REPORT: &str = "report";
}

/// The sections a config file may contain, one per stage.
pub const SECTIONS: &[&str] = &[
    section_names::PREPARE,
    section_names::EVAL,
    section_names::PREDICT,
    section_names::TRAIN,
    section_names::FILTERS,
    section_names::SYNTH,
    section_names::CONTAMINATE,
    section_names::EXPERIMENT,
    section_names::REPORT,
];

/// A config section: the settings type a stage reads from its own key of the config files.
pub trait Section: Serialize + DeserializeOwned + Default {
    /// Its key (one of [`section_names`]).
    const NAME: &'static str;

    /// Checks that every setting is one the stage can run with (counts of at least 1, rates
    /// above 0, shares within their bounds), naming the first that is not. It sits beside the
    /// fields, and the stage framework's loader (`qa_stage::config::load`) runs it, so every
    /// binary refuses a bad setting before it reads or writes anything.
    fn validate(&self) -> std::result::Result<(), Invalid> {
        Ok(())
    }
}

/// A setting its stage cannot run with: its key inside the section (dotted, as
/// `generator.t5.generation.top_p`) and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key, relative to the section.
    pub key: String,
    /// What the value must be, and what it is.
    pub message: String,
}

impl Invalid {
    /// `key` must be as `message` says.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same setting seen from the table that holds it under `parent`: `top_p` within
    /// `generation` is `generation.top_p`.
    pub fn within(self, parent: &str) -> Self {
        Invalid {
            key: format!("{parent}.{}", self.key),
            ..self
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` {}", self.key, self.message)
    }
}

impl std::error::Error for Invalid {}

/// The range checks that [`Section::validate`] implementations share, each naming the key.
pub mod check {
    use super::Invalid;

    type Checked = std::result::Result<(), Invalid>;

    /// A count of at least 1 (a batch size, epochs, resamples).
    pub fn at_least_one(key: &str, value: usize) -> Checked {
        match value {
            0 => Err(Invalid::new(key, "must be at least 1, not 0")),
            _ => Ok(()),
        }
    }

    /// A finite number above 0 (a learning rate).
    pub fn positive(key: &str, value: f64) -> Checked {
        match value > 0.0 && value.is_finite() {
            true => Ok(()),
            false => Err(Invalid::new(key, format!("must be above 0, not {value}"))),
        }
    }

    /// A finite number of at least 0 (a temperature, a weight decay).
    pub fn non_negative(key: &str, value: f64) -> Checked {
        match value >= 0.0 && value.is_finite() {
            true => Ok(()),
            false => Err(Invalid::new(key, format!("must be 0 or more, not {value}"))),
        }
    }

    /// A share in (0, 1] (`top_p`, an acceptance rate).
    pub fn share(key: &str, value: f64) -> Checked {
        match value > 0.0 && value <= 1.0 {
            true => Ok(()),
            false => Err(Invalid::new(key, format!("must be in (0, 1], not {value}"))),
        }
    }

    /// A probability strictly between 0 and 1 (a confidence level, a test's alpha).
    pub fn probability(key: &str, value: f64) -> Checked {
        match value > 0.0 && value < 1.0 {
            true => Ok(()),
            false => Err(Invalid::new(
                key,
                format!("must lie strictly between 0 and 1, not {value}"),
            )),
        }
    }

    /// A list that must hold something (the training seeds).
    pub fn non_empty<T>(key: &str, list: &[T]) -> Checked {
        match list.is_empty() {
            true => Err(Invalid::new(key, "must list at least one value")),
            false => Ok(()),
        }
    }
}

/// A stage's settings type, each of whose fields is declared once, beside the type: where and
/// how fast the stage runs, or what decides its output. The type's test calls
/// [`undeclared_fields`], so that a new field declared in neither list fails it.
pub trait Placed: Serialize + DeserializeOwned + Default {
    /// The fields that say where and how fast the stage runs.
    const RUN_PLACE: &'static [&'static str];
    /// The fields that decide what the stage writes.
    const DECIDING: &'static [&'static str];
    /// The tables among these fields whose types hold run-place fields of their own.
    const WITHIN: &'static [PlacedTable] = &[];

    /// These settings with every run-place field back at its default, their own and those of
    /// the tables [`WITHIN`](Self::WITHIN) them at any depth ([`Placed::strip_run_place`]; the
    /// type fills absent fields from its defaults, as every config section does): what a resume
    /// must share.
    ///
    /// # Panics
    /// When the type does not read back what it serialises, a bug in the settings type.
    fn deciding(&self) -> Self {
        let mut value = serde_json::to_value(self).expect("settings serialise");
        Self::strip_run_place(&mut value);
        serde_json::from_value(value)
            .expect("settings read back with defaults for what was removed")
    }

    /// Removes every run-place field from `value`, these settings as resolved (JSON): its own,
    /// and those of the tables [`WITHIN`](Self::WITHIN) it at any depth. Anything else, an
    /// absent or null table included, is left alone.
    fn strip_run_place(value: &mut Value) {
        strip(value, Self::RUN_PLACE);
        for (field, strip_within) in Self::WITHIN {
            if let Some(table) = value.get_mut(*field) {
                strip_within(table);
            }
        }
    }
}

/// A table within a [`Placed`] type whose own type has run-place fields: the field's name, and
/// that type's [`Placed::strip_run_place`].
pub type PlacedTable = (&'static str, fn(&mut Value));

/// What is wrong with `T`'s two lists: a field `T` has that neither declares, one both declare,
/// or a declared name that is no field of `T` (which its `deny_unknown_fields` refuses). Empty
/// when every field is declared once.
pub fn undeclared_fields<T: Placed>() -> Vec<String> {
    let mut problems = Vec::new();
    let declared: Vec<&str> = T::RUN_PLACE.iter().chain(T::DECIDING).copied().collect();
    let fields = match serde_json::to_value(T::default()) {
        Ok(Value::Object(fields)) => fields,
        _ => return vec!["the settings do not serialise to an object".to_string()],
    };
    for field in fields.keys() {
        match declared.iter().filter(|d| *d == field).count() {
            0 => problems.push(format!(
                "{field} is declared neither run-place nor deciding"
            )),
            1 => {}
            _ => problems.push(format!("{field} is declared twice")),
        }
    }
    for name in declared {
        // A field absent from the serialised defaults (skipped when unset) must still be one
        // the type reads.
        let known = fields.contains_key(name)
            || serde_json::from_value::<T>(serde_json::json!({ name: null })).is_ok();
        if !known {
            problems.push(format!("{name} is declared but is no field"));
        }
    }
    problems
}

/// Removes `fields` from the object `value` (anything else is left alone).
fn strip(value: &mut Value, fields: &[&str]) {
    if let Value::Object(map) = value {
        for field in fields {
            map.remove(*field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settings type whose lists the checks below get wrong in every way.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        device: String,
        model: String,
        seed: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<f64>,
    }

    impl Placed for Settings {
        const RUN_PLACE: &'static [&'static str] = &["device", "price", "seed"];
        const DECIDING: &'static [&'static str] = &["seed", "temperature"];
    }

    #[test]
    fn an_undeclared_doubly_declared_or_unknown_field_is_named() {
        assert_eq!(
            undeclared_fields::<Settings>(),
            [
                "model is declared neither run-place nor deciding",
                "seed is declared twice",
                "temperature is declared but is no field",
            ]
        );
    }

    /// An endpoint's settings: where it runs (`concurrency`) and what it asks (`temperature`).
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    struct Endpoint {
        concurrency: usize,
        temperature: f64,
    }

    impl Default for Endpoint {
        fn default() -> Self {
            Endpoint {
                concurrency: 4,
                temperature: 0.0,
            }
        }
    }

    impl Placed for Endpoint {
        const RUN_PLACE: &'static [&'static str] = &["concurrency"];
        const DECIDING: &'static [&'static str] = &["temperature"];
    }

    /// A stage's settings with a batch size of its own and an endpoint within.
    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(default)]
    struct Stage {
        batch_size: usize,
        prompt: String,
        endpoint: Endpoint,
    }

    impl Placed for Stage {
        const RUN_PLACE: &'static [&'static str] = &["batch_size"];
        const DECIDING: &'static [&'static str] = &["prompt", "endpoint"];
        const WITHIN: &'static [PlacedTable] = &[("endpoint", Endpoint::strip_run_place)];
    }

    #[test]
    fn deciding_resets_run_place_fields_within_tables_too() {
        let stage = Stage {
            batch_size: 64,
            prompt: "Answer.".to_string(),
            endpoint: Endpoint {
                concurrency: 32,
                temperature: 0.7,
            },
        };
        assert_eq!(
            stage.deciding(),
            Stage {
                batch_size: 0,
                prompt: "Answer.".to_string(),
                endpoint: Endpoint {
                    concurrency: 4,
                    temperature: 0.7,
                },
            }
        );
    }
}

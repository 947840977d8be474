//! Where and how fast a stage runs, as opposed to what it writes: the device, batch sizes of
//! inference, an endpoint client's concurrency, timeouts and retries.
//!
//! These settings are kept out of `qa-experiment`'s stage keys and out of every resume check,
//! so that a finished run directory moved from a GPU box to a laptop stays up to date, and an
//! interrupted stage may resume on another device or batch size. This module is the one list
//! of them: the typed configs of the stages strip their fields through [`without`], and the
//! driver strips whole config sections through [`section_without_run_place`].
//!
//! A training batch size is not among them: it is the optimiser's batch and decides the
//! adapter.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Of a prediction config (`predict:`, and a round-trip filter's `qa_model:`).
pub const PREDICT: &[&str] = &["device", "batch_size"];
/// Of a training config (`train:`).
pub const TRAIN: &[&str] = &["device"];
/// Of the local T5 generator (`generator.t5:`).
pub const T5_GENERATOR: &[&str] = &["device", "batch_size"];
/// Of the chat-completions client (`generator.openai:`): which variable holds the key, how
/// hard and how fast it asks, and what it may spend.
pub const OPENAI_GENERATOR: &[&str] = &[
    "api_key_env",
    "concurrency",
    "connect_timeout_s",
    "request_timeout_s",
    "max_retries",
    "max_total_retries",
    "initial_backoff_s",
    "max_backoff_s",
    "max_retry_after_s",
    // What a run costs and may cost: a raised budget or a new price resumes the same run.
    "price",
    "max_budget",
];
/// Of a synthesis config (`synth:`; records stay in seed order whatever the batch).
pub const SYNTH: &[&str] = &["seeds_per_batch"];
/// Of a contamination config (`contaminate:`).
pub const CONTAMINATE: &[&str] = &["records_per_batch"];

/// Where each list applies: a config section, or a dotted path below one.
pub const PLACES: &[(&str, &[&str])] = &[
    ("predict", PREDICT),
    ("train", TRAIN),
    ("synth", SYNTH),
    ("synth.generator.t5", T5_GENERATOR),
    ("synth.generator.openai", OPENAI_GENERATOR),
    ("synth.round_trip.qa_model", PREDICT),
    ("contaminate", CONTAMINATE),
    ("contaminate.generator.t5", T5_GENERATOR),
    ("contaminate.generator.openai", OPENAI_GENERATOR),
];

/// A stage's settings type, each of whose fields is declared once, beside the type: where and
/// how fast the stage runs, or what decides its output. The type's test calls
/// [`undeclared_fields`], so that a new field declared in neither list fails it.
pub trait Placed: Serialize + DeserializeOwned + Default {
    /// The fields that say where and how fast the stage runs (one of this module's lists).
    const RUN_PLACE: &'static [&'static str];
    /// The fields that decide what the stage writes.
    const DECIDING: &'static [&'static str];

    /// These settings with the run-place fields at their defaults: what a resume must share.
    fn deciding(&self) -> Self {
        without(self, Self::RUN_PLACE)
    }
}

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

/// The config section `name`, as resolved (a JSON value), without its run-place settings.
pub fn section_without_run_place(name: &str, section: &Value) -> Value {
    let mut section = section.clone();
    for (place, fields) in PLACES {
        let mut path = place.split('.');
        if path.next() != Some(name) {
            continue;
        }
        let mut target = Some(&mut section);
        for segment in path {
            target = target.and_then(|value| value.get_mut(segment));
        }
        if let Some(target) = target {
            strip(target, fields);
        }
    }
    section
}

/// `config` with `fields` set back to their defaults, for comparing the settings that decide
/// an output (`T` fills absent fields from its defaults, as every config section does).
///
/// # Panics
/// When `T` does not read back what it serialises, a bug in the config type.
pub fn without<T: Serialize + DeserializeOwned>(config: &T, fields: &[&str]) -> T {
    let mut value = serde_json::to_value(config).expect("a config serialises");
    strip(&mut value, fields);
    serde_json::from_value(value).expect("a config reads back with defaults for what was removed")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_place_is_stripped_and_nothing_else() {
        let synth = json!({
            "candidates": 4,
            "seeds_per_batch": 8,
            "generator": {
                "backend": "t5",
                "t5": {"model": "m", "device": "wgpu", "batch_size": 8, "max_source_len": 512},
                "openai": {"model": "gpt", "concurrency": 4, "request_timeout_s": 9.0, "seed": 1},
            },
            "round_trip": {"qa_model": {"model": "q", "device": "cuda", "batch_size": 2}, "min_f1": 0.5},
        });
        assert_eq!(
            section_without_run_place("synth", &synth),
            json!({
                "candidates": 4,
                "generator": {
                    "backend": "t5",
                    "t5": {"model": "m", "max_source_len": 512},
                    "openai": {"model": "gpt", "seed": 1},
                },
                "round_trip": {"qa_model": {"model": "q"}, "min_f1": 0.5},
            })
        );
        // The training batch decides the adapter; only the device goes.
        let train = json!({"device": "cpu", "batch_size": 8, "learning_rate": 0.001});
        assert_eq!(
            section_without_run_place("train", &train),
            json!({"batch_size": 8, "learning_rate": 0.001})
        );
        // Absent or null sub-sections, and sections with nothing of the kind, pass through.
        let bare = json!({"round_trip": null});
        assert_eq!(section_without_run_place("synth", &bare), bare);
        assert_eq!(section_without_run_place("eval", &train), train);
        assert_eq!(
            section_without_run_place("synth", &Value::Null),
            Value::Null
        );
    }

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

    #[test]
    fn every_place_names_a_known_section() {
        for (place, fields) in PLACES {
            let section = place.split('.').next().expect("a section");
            assert!(crate::config::SECTIONS.contains(&section), "{place}");
            assert!(!fields.is_empty(), "{place}");
        }
    }
}

//! Layered configuration: built-in defaults, then YAML files, then `QA_` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! A config file holds one section per stage (`prepare:`, `eval:`, …); each binary reads its own
//! section. Unknown sections and unknown keys inside a section are errors, never ignored, so a
//! typo cannot silently fall back to a default. Environment variables address a key as
//! `QA_<SECTION>__<KEY>`, e.g. `QA_PREPARE__SEED=7`.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Yaml};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

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

    /// The section as its defaults, `files` (later ones win), `QA_<NAME>__*` variables and
    /// `overrides` resolve it ([`load_section`]; `&()` when there are no flags).
    fn load<O: Serialize>(files: &[PathBuf], overrides: &O) -> Result<Self> {
        load_section(Self::NAME, &Self::default(), files, overrides)
    }
}

/// The stage binaries' flag that names a config file (`--config FILE`, repeated).
pub const CONFIG_FLAG: &str = crate::commands::flags::CONFIG;

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "QA_";

/// Where two config values differ, one `path: recorded → current` line per differing setting
/// (dotted paths into nested sections), for errors that refuse to resume a run with other
/// settings than it was started with.
pub fn differences(recorded: &serde_json::Value, current: &serde_json::Value) -> Vec<String> {
    fn walk(
        path: &str,
        recorded: &serde_json::Value,
        current: &serde_json::Value,
        out: &mut Vec<String>,
    ) {
        use serde_json::Value;
        match (recorded, current) {
            (Value::Object(before), Value::Object(now)) => {
                let keys: std::collections::BTreeSet<&String> =
                    before.keys().chain(now.keys()).collect();
                for key in keys {
                    let inner = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    let field = |object: &serde_json::Map<String, Value>| {
                        object.get(key).cloned().unwrap_or(Value::Null)
                    };
                    walk(&inner, &field(before), &field(now), out);
                }
            }
            _ if recorded != current => out.push(format!("{path}: {recorded} → {current}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", recorded, current, &mut out);
    out
}

/// `overrides` as a JSON object without its null (unset) fields, at any depth; `()` (no
/// overrides at all) is the empty object.
fn set_fields<O: Serialize>(overrides: &O) -> Result<serde_json::Value> {
    fn prune(value: &mut serde_json::Value) {
        if let serde_json::Value::Object(fields) = value {
            fields.retain(|_, field| !field.is_null());
            fields.values_mut().for_each(prune);
        }
    }
    let mut value = serde_json::to_value(overrides)
        .map_err(|e| Error::Config(format!("command-line overrides: {e}")))?;
    if value.is_null() {
        value = serde_json::Value::Object(serde_json::Map::new());
    }
    prune(&mut value);
    Ok(value)
}

/// Loads `section` of the layered configuration into `T`.
///
/// `defaults` gives every key a value; `files` are read in order (later ones win); then come
/// `QA_` variables, then `overrides`, whose `None` fields (absent flags) override nothing; a
/// stage without flags passes `&()`.
pub fn load_section<T, O>(
    section: &str,
    defaults: &T,
    files: &[PathBuf],
    overrides: &O,
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    O: Serialize,
{
    let mut figment = Figment::from(Serialized::default(section, defaults));
    for file in files {
        if !file.is_file() {
            return Err(Error::Config(format!(
                "config file {} does not exist",
                file.display()
            )));
        }
        figment = figment.merge(Yaml::file_exact(file));
    }
    figment = figment
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
        .merge(Serialized::default(section, set_fields(overrides)?));

    let top: figment::value::Dict = figment.extract().map_err(config_error)?;
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let origin = figment
                .find_metadata(key)
                .map(|m| match &m.source {
                    Some(source) => format!("{} {source}", m.name),
                    None => m.name.to_string(),
                })
                .unwrap_or_else(|| "unknown source".into());
            return Err(Error::Config(format!(
                "unknown section `{key}` (from {origin}); known sections: {}",
                SECTIONS.join(", ")
            )));
        }
    }
    figment.focus(section).extract().map_err(config_error)
}

fn config_error(err: figment::Error) -> Error {
    let all: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
    Error::Config(all.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn differences_name_each_changed_setting_by_its_path() {
        let recorded = serde_json::json!({"lr": 0.001, "lora": {"r": 8, "alpha": 16}, "gone": 1});
        let current = serde_json::json!({"lr": 0.01, "lora": {"r": 8, "alpha": 32}, "new": "x"});
        assert_eq!(
            differences(&recorded, &current),
            [
                "gone: 1 → null",
                "lora.alpha: 16 → 32",
                "lr: 0.001 → 0.01",
                "new: null → \"x\"",
            ]
        );
        assert!(differences(&recorded, &recorded).is_empty());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        size: usize,
        name: String,
    }

    /// Unset flags serialise as nulls, which must override nothing.
    #[derive(Serialize, Default)]
    struct DemoFlags {
        size: Option<usize>,
    }

    fn defaults() -> Demo {
        Demo {
            size: 1,
            name: "default".into(),
        }
    }

    /// Runs `body` in a figment `Jail`: a temporary working directory and an environment that
    /// no other test sees, so that `QA_` variables set by one test cannot leak into another.
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail fixes the error type"
    )]
    fn jailed(body: impl FnOnce(&mut figment::Jail) -> std::result::Result<(), String>) {
        figment::Jail::expect_with(|jail| body(jail).map_err(figment::Error::from));
    }

    fn load(files: &[&str], flags: &DemoFlags) -> Result<Demo> {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        load_section("prepare", &defaults(), &files, flags)
    }

    #[test]
    fn files_then_environment_then_flags() {
        jailed(|jail| {
            jail.create_file("a.yaml", "prepare:\n  size: 5\n  name: from-a\n")
                .map_err(|e| e.to_string())?;
            jail.create_file("b.yaml", "prepare:\n  size: 6\n")
                .map_err(|e| e.to_string())?;
            let none = DemoFlags::default();
            assert_eq!(load(&[], &none).map_err(|e| e.to_string())?, defaults());
            let loaded = load(&["a.yaml", "b.yaml"], &none).map_err(|e| e.to_string())?;
            assert_eq!(
                loaded,
                Demo {
                    size: 6,
                    name: "from-a".into()
                }
            );

            jail.set_env("QA_PREPARE__SIZE", "11");
            let loaded = load(&["a.yaml", "b.yaml"], &none).map_err(|e| e.to_string())?;
            assert_eq!(loaded.size, 11);

            let loaded =
                load(&["a.yaml"], &DemoFlags { size: Some(9) }).map_err(|e| e.to_string())?;
            assert_eq!(
                loaded,
                Demo {
                    size: 9,
                    name: "from-a".into()
                }
            );
            Ok(())
        });
    }

    #[test]
    fn a_stage_without_flags_passes_unit() {
        jailed(|jail| {
            jail.create_file("a.yaml", "prepare:\n  size: 5\n")
                .map_err(|e| e.to_string())?;
            let files = [PathBuf::from("a.yaml")];
            let loaded: Demo =
                load_section("prepare", &defaults(), &files, &()).map_err(|e| e.to_string())?;
            assert_eq!(loaded.size, 5);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_sections_and_files_are_errors_naming_them() {
        jailed(|jail| {
            let none = DemoFlags::default();
            jail.create_file("typo-key.yaml", "prepare:\n  sise: 5\n")
                .map_err(|e| e.to_string())?;
            let text = load(&["typo-key.yaml"], &none)
                .expect_err("unknown key")
                .to_string();
            assert!(
                text.contains("sise") && text.contains("typo-key.yaml"),
                "{text}"
            );

            jail.create_file("typo-section.yaml", "prepar:\n  size: 5\n")
                .map_err(|e| e.to_string())?;
            let text = load(&["typo-section.yaml"], &none)
                .expect_err("unknown section")
                .to_string();
            assert!(
                text.contains("prepar") && text.contains("typo-section.yaml"),
                "{text}"
            );

            let text = load(&["missing.yaml"], &none)
                .expect_err("missing file")
                .to_string();
            assert!(text.contains("missing.yaml"), "{text}");

            jail.set_env("QA_PREPARE__SIZE", "many");
            let text = load(&[], &none).expect_err("bad type").to_string();
            assert!(text.contains("SIZE") && text.contains("QA_"), "{text}");
            Ok(())
        });
    }
}

//! Layered configuration: built-in defaults, then YAML files, then `QA_` environment variables,
//! then command-line flags, each overriding the one before.
//!
//! A config file holds one section per stage (`prepare:`, `eval:`, …); each binary reads its own
//! section. Unknown sections and unknown keys inside a section are errors, never ignored, so a
//! typo cannot silently fall back to a default. Environment variables address a key as
//! `QA_<SECTION>__<KEY>`, e.g. `QA_PREPARE__SEED=7`.

use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::{Figment, Metadata};
use serde::Serialize;
use serde::de::DeserializeOwned;

use qa_data::settings::{SECTIONS, Section};

use crate::error::{Error, Result};

/// Section `S` as its defaults, `files` (later ones win), `QA_<NAME>__*` variables and
/// `overrides` resolve it ([`load_section`]; `&()` when there are no flags), validated
/// ([`Section::validate`]): an invalid setting is an error naming its key in the section and
/// where its value came from (a config file, a variable or a flag).
pub fn load<S: Section>(files: &[PathBuf], overrides: &impl Serialize) -> Result<S> {
    let figment = layered(S::NAME, &S::default(), files, overrides)?;
    let section: S = figment
        .focus(S::NAME)
        .extract()
        .map_err(|e| config_error(e, Some(S::NAME)))?;
    section.validate().map_err(|invalid| {
        let key = format!("{}.{}", S::NAME, invalid.key);
        let origin = figment
            .find_metadata(&key)
            .map_or_else(|| "the defaults".to_string(), |meta| origin(meta, &key));
        Error::InvalidSetting {
            key,
            origin,
            message: invalid.message,
        }
    })?;
    Ok(section)
}

/// The values [`probe_numeric_settings`] writes into each numeric setting: zero, a negative
/// number, and 1.5 (past every share and probability, and not an integer).
pub const PROBES: [f64; 3] = [0.0, -1.0, 1.5];

/// Which of [`PROBES`] each numeric setting of section `S` refuses, one line per setting in key
/// order: `key: 0 -1 1.5` (the refused values, in that order; `none` when it takes all three),
/// keys dotted from the section down, over nested tables and the options set in the defaults.
/// Each value is written alone into a config file and loaded as a stage loads it, and each
/// refusal must name the key and that file, or this fails. A section's test compares the table
/// with the ranges its settings document, so a numeric setting added without its check, or a
/// check that names the wrong key, shows there.
pub fn probe_numeric_settings<S: Section>() -> Result<String> {
    fn numeric_keys(prefix: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
        match value {
            serde_json::Value::Number(_) => keys.push(prefix.to_string()),
            serde_json::Value::Object(fields) => {
                for (name, field) in fields {
                    let key = match prefix {
                        "" => name.clone(),
                        _ => format!("{prefix}.{name}"),
                    };
                    numeric_keys(&key, field, keys);
                }
            }
            _ => {}
        }
    }
    let defaults = serde_json::to_value(S::default())
        .map_err(|e| Error::Config(format!("{}'s defaults: {e}", S::NAME)))?;
    let mut keys = Vec::new();
    numeric_keys("", &defaults, &mut keys);
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let file = dir.path().join("probe.yaml");
    keys.sort();
    let mut table = String::new();
    for key in keys {
        let mut refused = Vec::new();
        for probe in PROBES {
            // YAML reads JSON: `{"train": {"lora": {"r": 0}}}`.
            let value = match probe.fract() {
                0.0 => serde_json::json!(probe as i64),
                _ => serde_json::json!(probe),
            };
            let nested =
                format!("{}.{key}", S::NAME)
                    .rsplit('.')
                    .fold(value.clone(), |inner, name| {
                        serde_json::Value::Object(serde_json::Map::from_iter([(
                            name.to_string(),
                            inner,
                        )]))
                    });
            std::fs::write(&file, nested.to_string()).map_err(|e| Error::io(&file, e))?;
            let Err(err) = load::<S>(std::slice::from_ref(&file), &()) else {
                continue;
            };
            let text = err.to_string();
            if !(text.contains(&format!("{}.{key}`", S::NAME)) && text.contains("probe.yaml")) {
                return Err(Error::Config(format!(
                    "{probe} at `{}.{key}` was refused without naming the key and the file: \
                     {text}",
                    S::NAME
                )));
            }
            refused.push(value.to_string());
        }
        let refused = match refused.is_empty() {
            true => "none".to_string(),
            false => refused.join(" "),
        };
        table.push_str(&format!("{key}: {refused}\n"));
    }
    Ok(table)
}

/// The stage binaries' flag that names a config file (`--config FILE`, repeated).
pub const CONFIG_FLAG: &str = "config";

/// Prefix of the environment variables that override config keys.
pub const ENV_PREFIX: &str = "QA_";

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
    let figment = layered(section, defaults, files, overrides)?;
    figment
        .focus(section)
        .extract()
        .map_err(|e| config_error(e, Some(section)))
}

/// The layers of [`load_section`], with every top-level key checked to be a known section.
fn layered<T: Serialize, O: Serialize>(
    section: &str,
    defaults: &T,
    files: &[PathBuf],
    overrides: &O,
) -> Result<Figment> {
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

    let top: figment::value::Dict = figment.extract().map_err(|e| config_error(e, None))?;
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let origin = figment
                .find_metadata(key)
                .map_or_else(|| "unknown source".into(), |meta| origin(meta, key));
            return Err(Error::Config(format!(
                "unknown section `{key}` (from {origin}); known sections: {}",
                SECTIONS.join(", ")
            )));
        }
    }
    Ok(figment)
}

/// Where the value of `key` (dotted, from the top) came from: a config file by its path, the
/// `QA_` variable by its name, a flag (the flags' layer is the JSON object of
/// [`set_fields`]), or the defaults.
fn origin(meta: &Metadata, key: &str) -> String {
    match &meta.source {
        Some(source @ figment::Source::File(_)) => format!("config file {source}"),
        _ if meta.name.contains("environment") => {
            format!(
                "variable {ENV_PREFIX}{}",
                key.to_uppercase().replace('.', "__")
            )
        }
        _ if meta.name == std::any::type_name::<serde_json::Value>() => {
            "a command-line flag".to_string()
        }
        _ => "the defaults".to_string(),
    }
}

/// Figment's errors, each naming the key from its section down (figment's own message puts its
/// profile first, as in `default.train.batch_size`) and where the value came from; `section`,
/// the section the errors' keys are relative to (none: they start at the top).
fn config_error(err: figment::Error, section: Option<&str>) -> Error {
    let all: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = section
                .into_iter()
                .map(str::to_string)
                .chain(e.path.iter().cloned())
                .collect::<Vec<_>>()
                .join(".");
            let mut text = e.kind.to_string();
            if !e.path.is_empty() {
                text.push_str(&format!(" for key `{key}`"));
            }
            if let Some(meta) = &e.metadata {
                text.push_str(&format!(" (from {})", origin(meta, &key)));
            }
            text
        })
        .collect();
    Error::Config(all.join("; "))
}

#[cfg(test)]
mod tests {
    use qa_data::settings::{Invalid, check};
    use serde::Deserialize;

    use super::*;

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

    fn load_demo(files: &[&str], flags: &DemoFlags) -> Result<Demo> {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        load_section("prepare", &defaults(), &files, flags)
    }

    impl Default for Demo {
        fn default() -> Self {
            defaults()
        }
    }

    impl Section for Demo {
        const NAME: &'static str = "prepare";

        fn validate(&self) -> std::result::Result<(), Invalid> {
            check::at_least_one("size", self.size)
        }
    }

    #[test]
    fn an_invalid_setting_names_its_key_and_where_it_came_from() {
        jailed(|jail| {
            let none = DemoFlags::default();
            let load = |files: &[&str], flags: &DemoFlags| {
                let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
                load::<Demo>(&files, flags).map_err(|e| e.to_string())
            };
            jail.create_file("zero.yaml", "prepare:\n  size: 0\n")
                .map_err(|e| e.to_string())?;
            let file = load(&["zero.yaml"], &none).expect_err("size 0 from a file");
            assert_eq!(
                file,
                "configuration: `prepare.size` (from config file zero.yaml) must be at least 1, \
                 not 0"
            );
            let flag = load(&[], &DemoFlags { size: Some(0) }).expect_err("size 0 from a flag");
            assert!(flag.contains("(from a command-line flag)"), "{flag}");
            jail.set_env("QA_PREPARE__SIZE", "0");
            let variable = load(&[], &none).expect_err("size 0 from a variable");
            assert!(
                variable.contains("(from variable QA_PREPARE__SIZE)"),
                "{variable}"
            );
            // A key of the wrong type names the key without figment's profile (`default.`).
            jail.set_env("QA_PREPARE__SIZE", "-3");
            let wrong = load(&[], &none).expect_err("a negative count");
            assert!(
                wrong.contains("for key `prepare.size`") && !wrong.contains("default."),
                "{wrong}"
            );
            jail.set_env("QA_PREPARE__SIZE", "4");
            assert_eq!(load(&[], &none)?.size, 4);
            Ok(())
        });
    }

    #[test]
    fn files_then_environment_then_flags() {
        jailed(|jail| {
            jail.create_file("a.yaml", "prepare:\n  size: 5\n  name: from-a\n")
                .map_err(|e| e.to_string())?;
            jail.create_file("b.yaml", "prepare:\n  size: 6\n")
                .map_err(|e| e.to_string())?;
            let none = DemoFlags::default();
            assert_eq!(
                load_demo(&[], &none).map_err(|e| e.to_string())?,
                defaults()
            );
            let loaded = load_demo(&["a.yaml", "b.yaml"], &none).map_err(|e| e.to_string())?;
            assert_eq!(
                loaded,
                Demo {
                    size: 6,
                    name: "from-a".into()
                }
            );

            jail.set_env("QA_PREPARE__SIZE", "11");
            let loaded = load_demo(&["a.yaml", "b.yaml"], &none).map_err(|e| e.to_string())?;
            assert_eq!(loaded.size, 11);

            let loaded =
                load_demo(&["a.yaml"], &DemoFlags { size: Some(9) }).map_err(|e| e.to_string())?;
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
            let text = load_demo(&["typo-key.yaml"], &none)
                .expect_err("unknown key")
                .to_string();
            assert!(
                text.contains("sise") && text.contains("typo-key.yaml"),
                "{text}"
            );

            jail.create_file("typo-section.yaml", "prepar:\n  size: 5\n")
                .map_err(|e| e.to_string())?;
            let text = load_demo(&["typo-section.yaml"], &none)
                .expect_err("unknown section")
                .to_string();
            assert!(
                text.contains("prepar") && text.contains("typo-section.yaml"),
                "{text}"
            );

            let text = load_demo(&["missing.yaml"], &none)
                .expect_err("missing file")
                .to_string();
            assert!(text.contains("missing.yaml"), "{text}");

            jail.set_env("QA_PREPARE__SIZE", "many");
            let text = load_demo(&[], &none).expect_err("bad type").to_string();
            assert!(text.contains("SIZE") && text.contains("QA_"), "{text}");
            Ok(())
        });
    }
}

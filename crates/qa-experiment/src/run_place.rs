//! Which settings of each stage's section say where and how fast it runs, as opposed to what
//! it writes: those are left out of the stage keys, so that a finished run directory moved from
//! a GPU box to a laptop stays up to date. Each section's settings type declares them beside
//! its fields ([`Placed`]); this is the list of those types.

use qa_data::settings::{Placed, PlacedTable, Section};
use qa_synth::contaminate::ContaminateConfig;
use qa_synth::synthesize::SynthConfig;
use serde_json::Value;
use t5_lora::TrainConfig;
use t5_stage::PredictConfig;

/// The sections with run-place settings, by name, and how their types strip them.
const PLACED_SECTIONS: [PlacedTable; 4] = [
    (PredictConfig::NAME, PredictConfig::strip_run_place),
    (TrainConfig::NAME, TrainConfig::strip_run_place),
    (SynthConfig::NAME, SynthConfig::strip_run_place),
    (ContaminateConfig::NAME, ContaminateConfig::strip_run_place),
];

/// The config section `name`, as resolved (a JSON value), without its run-place settings.
pub(crate) fn section_without_run_place(name: &str, section: &Value) -> Value {
    let mut section = section.clone();
    for (placed, strip) in PLACED_SECTIONS {
        if placed == name {
            strip(&mut section);
        }
    }
    section
}

#[cfg(test)]
mod tests {
    use qa_data::settings::SECTIONS;
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

    #[test]
    fn every_place_names_a_known_section() {
        for (name, _) in PLACED_SECTIONS {
            assert!(SECTIONS.contains(&name), "{name}");
        }
    }
}

//! The shipped configs' `synth:` and `contaminate:` sections parse, and say what the defaults
//! say (the files document the defaults; a drift between the two is a bug in one of them); each
//! numeric setting refuses what its stage cannot run with.

use std::path::Path;

use qa_data::settings::Section;
use qa_stage::config::probe_numeric_settings;
use qa_synth::contaminate::ContaminateConfig;
use qa_synth::synthesize::SynthConfig;

/// Section `T` of the shipped config `file`, loaded and validated as a stage loads it.
fn section<T: Section>(file: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(file);
    qa_stage::config::load::<T>(std::slice::from_ref(&path), &())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_shipped_configs_state_the_defaults() {
    for file in ["experiment.yaml", "offline-squad.yaml"] {
        assert_eq!(
            section::<SynthConfig>(file),
            SynthConfig::default(),
            "{file}"
        );
        assert_eq!(
            section::<ContaminateConfig>(file),
            ContaminateConfig::default(),
            "{file}"
        );
    }
}

/// The generator's rows of [`every_numeric_setting_refuses_what_it_cannot_run_with`], the same
/// in both stages' sections: both backends' settings are checked, the one not chosen too.
const GENERATOR_REFUSALS: &str = "\
generator.openai.concurrency: 0 -1 1.5
generator.openai.connect_timeout_s: 0 -1
generator.openai.initial_backoff_s: 0 -1
generator.openai.max_backoff_s: 0 -1
generator.openai.max_retries: -1 1.5
generator.openai.max_retry_after_s: 0 -1
generator.openai.max_tokens: 0 -1 1.5
generator.openai.max_total_retries: -1 1.5
generator.openai.request_timeout_s: 0 -1
generator.openai.seed: -1 1.5
generator.openai.temperature: -1
generator.openai.top_p: 0 -1 1.5
generator.t5.batch_size: 0 -1 1.5
generator.t5.generation.length_penalty: none
generator.t5.generation.max_new_tokens: 0 -1 1.5
generator.t5.generation.num_beams: 0 -1 1.5
generator.t5.generation.seed: -1 1.5
generator.t5.generation.temperature: 0 -1
generator.t5.generation.top_k: -1 1.5
generator.t5.generation.top_p: 0 -1 1.5
generator.t5.max_source_len: 0 -1 1.5
";

/// Which of 0, -1 and 1.5 each numeric setting refuses at load, naming the key and the file
/// (`probe_numeric_settings`): counts take neither 0 nor fractions, times and rates are above 0,
/// shares lie within their bounds, and the rest (seeds, retries, `floor_seeds`) take what their
/// type does.
#[test]
fn every_numeric_setting_refuses_what_it_cannot_run_with() {
    assert_eq!(
        probe_numeric_settings::<SynthConfig>().expect("probes"),
        format!(
            "\
candidates: 0 -1 1.5
floor_seeds: -1 1.5
{GENERATOR_REFUSALS}min_acceptance: -1 1.5
seeds_per_batch: 0 -1 1.5
target: 0 -1 1.5
"
        )
    );
    assert_eq!(
        probe_numeric_settings::<ContaminateConfig>().expect("probes"),
        format!("{GENERATOR_REFUSALS}records_per_batch: 0 -1 1.5\n")
    );
}

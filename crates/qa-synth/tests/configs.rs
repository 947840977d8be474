//! The shipped configs' `synth:` and `contaminate:` sections parse, and say what the defaults
//! say (the files document the defaults; a drift between the two is a bug in one of them).

use std::path::Path;

use qa_synth::contaminate::ContaminateConfig;
use qa_synth::synthesize::SynthConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn section<T>(file: &str, name: &str) -> T
where
    T: Serialize + DeserializeOwned + Default,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(file);
    qa_data::config::load_section(name, &T::default(), std::slice::from_ref(&path), &())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_shipped_configs_state_the_defaults() {
    for file in ["experiment.yaml", "offline-squad.yaml"] {
        assert_eq!(
            section::<SynthConfig>(file, "synth"),
            SynthConfig::default(),
            "{file}"
        );
        assert_eq!(
            section::<ContaminateConfig>(file, "contaminate"),
            ContaminateConfig::default(),
            "{file}"
        );
    }
}

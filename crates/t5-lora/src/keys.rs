//! Tensor names in files ↔ module paths. The module tree mirrors Hugging Face's checkpoint
//! tree (`model.rs`) except for a few segments Rust cannot mirror; [`SEGMENTS`] lists each of
//! them once, and the remappers of both directions, for checkpoints and for PEFT adapters, are
//! built from it.

use std::sync::LazyLock;

use burn::store::KeyRemapper;

use crate::lora::TARGETS;

/// Where in a name a segment is renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Between dots, anywhere.
    Anywhere,
    /// Right after `encoder.block.N.`.
    EncoderBlock,
    /// Right after `decoder.block.N.`.
    DecoderBlock,
    /// At the end, after one of the adaptable projections ([`TARGETS`]).
    Projection,
    /// At the end, after any module.
    End,
    /// At the start.
    Start,
}

/// One renamed segment: where, its name in files, its name in the module tree.
type Segment = (Scope, &'static str, &'static str);

/// The segments of a Hugging Face checkpoint that the module tree names differently: the
/// CamelCase attribute names, the `layer.N` list of a block's sub-layers (whose position means
/// self-attention (0), cross-attention (1 in the decoder) or feed-forward (last)), and the
/// `base` inside each adaptable projection ([`crate::lora::LoraLinear`]).
const SEGMENTS: [Segment; 8] = [
    (
        Scope::Anywhere,
        "layer.0.SelfAttention",
        "layer_self_attention.self_attention",
    ),
    (
        Scope::Anywhere,
        "layer.0.layer_norm",
        "layer_self_attention.layer_norm",
    ),
    (
        Scope::DecoderBlock,
        "layer.1.EncDecAttention",
        "layer_cross_attention.enc_dec_attention",
    ),
    (
        Scope::DecoderBlock,
        "layer.1.layer_norm",
        "layer_cross_attention.layer_norm",
    ),
    (Scope::EncoderBlock, "layer.1", "layer_ff"),
    (Scope::DecoderBlock, "layer.2", "layer_ff"),
    (Scope::Anywhere, "DenseReluDense", "dense_relu_dense"),
    (Scope::Projection, "weight", "base.weight"),
];

/// What a PEFT adapter file adds: the prefix of a `PeftModel` wrapping a whole model, and its
/// `lora_A`/`lora_B` layers ([`crate::lora::LoraAdapter`]).
const PEFT_SEGMENTS: [Segment; 3] = [
    (Scope::Start, "base_model.model.", ""),
    (Scope::End, "lora_A.weight", "lora.lora_a.weight"),
    (Scope::End, "lora_B.weight", "lora.lora_b.weight"),
];

/// The naming of a kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// A Hugging Face checkpoint (`model.safetensors` and its shards).
    Checkpoint,
    /// A PEFT adapter (`adapter_model.safetensors`).
    Peft,
}

impl Naming {
    /// The segments, in the order names in files are renamed.
    fn segments(self) -> Vec<Segment> {
        match self {
            Naming::Checkpoint => SEGMENTS.to_vec(),
            Naming::Peft => [PEFT_SEGMENTS[0]]
                .into_iter()
                .chain(SEGMENTS)
                .chain(PEFT_SEGMENTS[1..].iter().copied())
                .collect(),
        }
    }

    /// Renames tensor names of this kind of file to module paths.
    pub(crate) fn file_to_module(self) -> KeyRemapper {
        remapper(
            self.segments()
                .into_iter()
                .map(|(scope, file, module)| (pattern(scope, file), replacement(scope, module))),
        )
    }

    /// Renames module paths to tensor names of this kind of file (compiled once).
    pub(crate) fn module_to_file(self) -> &'static KeyRemapper {
        static CHECKPOINT: LazyLock<KeyRemapper> =
            LazyLock::new(|| Naming::Checkpoint.build_module_to_file());
        static PEFT: LazyLock<KeyRemapper> = LazyLock::new(|| Naming::Peft.build_module_to_file());
        match self {
            Naming::Checkpoint => &CHECKPOINT,
            Naming::Peft => &PEFT,
        }
    }

    fn build_module_to_file(self) -> KeyRemapper {
        remapper(
            self.segments()
                .into_iter()
                .rev()
                .map(|(scope, file, module)| (pattern(scope, module), replacement(scope, file))),
        )
    }

    /// The name in this kind of file of the tensor at `module_path`, for messages and saving.
    pub(crate) fn name_of(self, module_path: &str) -> String {
        rename(self.module_to_file(), module_path)
    }
}

/// Whether `module_path` is a parameter of an adapter (`….lora.lora_a.weight`).
pub(crate) fn is_adapter_path(module_path: &str) -> bool {
    PEFT_SEGMENTS
        .iter()
        .filter(|(scope, ..)| *scope == Scope::End)
        .any(|(_, _, module)| module_path.ends_with(&format!(".{module}")))
}

/// A regex matching the module paths of adapter parameters (for `SafetensorsStore::with_regex`).
pub(crate) fn adapter_path_pattern() -> String {
    let modules: Vec<String> = PEFT_SEGMENTS
        .iter()
        .filter(|(scope, ..)| *scope == Scope::End)
        .map(|(_, _, module)| escape(module))
        .collect();
    format!(r"\.({})$", modules.join("|"))
}

/// `segment` as a literal inside a regex (segments hold letters, digits, `_` and `.`).
fn escape(segment: &str) -> String {
    segment.replace('.', r"\.")
}

fn pattern(scope: Scope, segment: &str) -> String {
    let segment = escape(segment);
    match scope {
        Scope::Anywhere => format!(r"\.{segment}\."),
        Scope::EncoderBlock => format!(r"^(encoder\.block\.\d+)\.{segment}\."),
        Scope::DecoderBlock => format!(r"^(decoder\.block\.\d+)\.{segment}\."),
        Scope::Projection => format!(r"\.({})\.{segment}$", TARGETS.join("|")),
        Scope::End => format!(r"\.{segment}$"),
        Scope::Start => format!("^{segment}"),
    }
}

fn replacement(scope: Scope, segment: &str) -> String {
    match scope {
        Scope::Anywhere => format!(".{segment}."),
        Scope::EncoderBlock | Scope::DecoderBlock => format!("$1.{segment}."),
        Scope::Projection => format!(".$1.{segment}"),
        Scope::End => format!(".{segment}"),
        Scope::Start => segment.to_string(),
    }
}

fn remapper(rules: impl Iterator<Item = (String, String)>) -> KeyRemapper {
    KeyRemapper::from_pattern_iter(rules).expect("the key table's patterns are valid regexes")
}

/// `name` after every rule of `remapper`, in order (as burn-store renames tensors).
fn rename(remapper: &KeyRemapper, name: &str) -> String {
    remapper
        .to_regex_pairs()
        .iter()
        .fold(name.to_string(), |name, (pattern, replacement)| {
            pattern
                .replace_all(&name, replacement.as_str())
                .into_owned()
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use burn::prelude::Device;
    use burn::store::ModuleSnapshot;

    use super::*;
    use crate::checkpoint::{read_config, weight_files};
    use crate::lora::LoraConfig;
    use crate::model::T5ForConditionalGeneration;

    fn cpu() -> Device {
        crate::device::DeviceChoice::Cpu
            .resolve()
            .expect("the CPU")
            .device
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5")
    }

    fn tensor_names(file: &Path) -> Vec<String> {
        let bytes = std::fs::read(file).expect("the fixture is readable");
        let tensors =
            safetensors::SafeTensors::deserialize(&bytes).expect("the fixture is safetensors");
        tensors.names().into_iter().map(str::to_string).collect()
    }

    fn module_paths(model: &T5ForConditionalGeneration) -> BTreeSet<String> {
        model
            .collect(None, None, true)
            .into_iter()
            .map(|tensor| tensor.name)
            .collect()
    }

    /// Every tensor of every checkpoint fixture maps to a parameter of the model it configures
    /// (or to one Hugging Face ignores) and back to its own name.
    #[test]
    fn every_checkpoint_key_maps_to_a_parameter_and_back() {
        let _turn = crate::test_random::drawing();
        let device = cpu();
        let mut checked = 0;
        for entry in std::fs::read_dir(fixtures()).expect("the fixtures directory") {
            let dir = entry.expect("an entry").path();
            let Ok(files) = weight_files(&dir) else {
                continue;
            };
            let parameters = module_paths(&read_config(&dir).expect("a config").init(&device));
            let (forward, mut mapped) = (Naming::Checkpoint.file_to_module(), BTreeSet::new());
            for name in files.iter().flat_map(|file| tensor_names(file)) {
                let module = rename(&forward, &name);
                assert_eq!(
                    Naming::Checkpoint.name_of(&module),
                    name,
                    "{}",
                    dir.display()
                );
                mapped.insert(module);
                checked += 1;
            }
            let ignored = crate::checkpoint::IGNORED;
            mapped.retain(|path| !ignored.contains(&path.as_str()));
            assert_eq!(mapped, parameters, "{}", dir.display());
        }
        // flan-t5-tiny, its bf16, f16 and sharded copies, and T5 v1.0.
        assert!(checked > 5 * 30, "only {checked} tensor names were checked");
    }

    #[test]
    fn every_peft_adapter_key_maps_to_an_adapter_parameter_and_back() {
        let _turn = crate::test_random::drawing();
        let device = cpu();
        let dir = fixtures().join("flan-t5-tiny-lora");
        let config: LoraConfig =
            crate::adapter::read_adapter_config(&dir).expect("the adapter config");
        let model = read_config(&fixtures().join("flan-t5-tiny"))
            .expect("a config")
            .init(&device)
            .with_lora(&config)
            .expect("attaches");
        let adapters: BTreeSet<String> = module_paths(&model)
            .into_iter()
            .filter(|path| is_adapter_path(path))
            .collect();
        let forward = Naming::Peft.file_to_module();
        let mut mapped = BTreeSet::new();
        for name in tensor_names(&dir.join(crate::adapter::ADAPTER_WEIGHTS_FILE)) {
            let module = rename(&forward, &name);
            assert_eq!(Naming::Peft.name_of(&module), name);
            assert!(is_adapter_path(&module), "{name} → {module}");
            mapped.insert(module);
        }
        assert!(!adapters.is_empty());
        assert_eq!(mapped, adapters);
    }

    #[test]
    fn segments_are_plain_names() {
        for (_, file, module) in SEGMENTS.iter().chain(&PEFT_SEGMENTS) {
            for segment in [file, module] {
                assert!(
                    segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
                    "{segment}"
                );
            }
        }
    }
}

//! LoRA adapters against PEFT: an adapter saved by PEFT loads here and reproduces HF's logits
//! and generations; a new adapter changes nothing; merging changes nothing; saving and loading
//! round-trips bit for bit, in PEFT's file layout.

use crate::common;

use std::path::Path;

use burn::tensor::DType;
use common::{Reference, fixtures, hf_sequences, largest_difference, largest_magnitude, to_vec};
use safetensors::SafeTensors;
use t5_lora::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraConfig, load_adapter, save_adapter};
use t5_lora::{GenerationConfig, T5ForConditionalGeneration, generate};
use t5_lora::{ModelDtype, load_pretrained, load_pretrained_as};

fn base() -> T5ForConditionalGeneration {
    load_pretrained(&fixtures().join("flan-t5-tiny"), &common::device()).expect("base loads")
}

fn logits(model: &T5ForConditionalGeneration, reference: &Reference) -> Vec<f32> {
    let device = common::device();
    to_vec(model.forward(
        reference.int_tensor("input_ids", &device),
        reference.int_tensor("attention_mask", &device),
        reference.int_tensor("decoder_input_ids", &device),
    ))
}

/// Logits at the positions that are not padding in the reference's decoder inputs.
fn unpadded(values: &[f32], reference: &Reference) -> Vec<f32> {
    let shape = reference.shape("logits");
    let (len, vocab) = (shape[1], shape[2]);
    let lengths = reference.i64s("decoder_lengths");
    values
        .chunks_exact(len * vocab)
        .zip(&lengths)
        .flat_map(|(row, &n)| row[..n as usize * vocab].to_vec())
        .collect()
}

#[test]
fn a_new_adapter_leaves_the_model_unchanged() {
    let _turn = common::drawing();
    let reference = Reference::open(&fixtures().join("flan-t5-tiny"));
    let before = logits(&base(), &reference);
    let config = LoraConfig {
        target_modules: ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]
            .map(String::from)
            .to_vec(),
        ..LoraConfig::default()
    };
    let adapted = base().with_lora(&config).expect("attaches");
    // lora_B starts at zero, so the adapters add exactly nothing: bit for bit on the CPU.
    let diff = largest_difference(&logits(&adapted, &reference), &before);
    let tolerance = common::tolerance(0.0);
    assert!(
        diff <= tolerance,
        "a new adapter changed the logits by {diff} (> {tolerance})"
    );
}

#[test]
fn a_peft_adapter_reproduces_hugging_face_with_and_without_merging() {
    let _turn = common::drawing();
    let dir = fixtures().join("flan-t5-tiny-lora");
    let reference = Reference::open(&dir);
    let (adapted, config) = load_adapter(base(), &dir).expect("adapter loads");
    assert_eq!((config.r, config.lora_alpha), (4, 8.0));
    let expected = unpadded(&reference.f32s("logits"), &reference);
    let ours = logits(&adapted, &reference);
    let diff = largest_difference(&unpadded(&ours, &reference), &expected);
    // PEFT's stored logits: parity's bound (tests/parity.rs) for the same tiny model, to which
    // the adapter adds two rank-4 products per projection. The adapter itself moves the logits
    // by more than 10⁻² (below).
    assert!(diff < 1e-4, "adapter logits differ from PEFT's by {diff}");
    // The adapter matters: the base model's logits are far from these.
    let base_diff = largest_difference(
        &unpadded(&logits(&base(), &reference), &reference),
        &expected,
    );
    assert!(
        base_diff > 1e-2,
        "the fixture adapter changes little ({base_diff})"
    );

    let device = common::device();
    let greedy = generate(
        &adapted,
        reference.int_tensor("input_ids", &device),
        reference.int_tensor("attention_mask", &device),
        &GenerationConfig {
            max_new_tokens: 24,
            ..GenerationConfig::default()
        },
        0,
    )
    .expect("generates");
    assert_eq!(greedy, hf_sequences(&reference, "greedy", 1));

    let merged = adapted.merge_lora();
    let diff = largest_difference(&logits(&merged, &reference), &ours);
    // W + (α/r) B A summed into one matrix rounds each weight once more, and the products then
    // sum in another grouping: a reordered forward pass.
    let len = reference.shape("input_ids")[1].max(reference.shape("decoder_input_ids")[1]);
    let tolerance = common::reordered_tolerance(merged.config(), len, largest_magnitude(&ours));
    assert!(
        diff <= tolerance,
        "merging changed the logits by {diff} (> {tolerance})"
    );
}

/// Tensor name → (shape, bytes) of a safetensors file.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read");
    let file = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut all: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    all.sort();
    all
}

#[test]
fn saving_writes_peft_files_that_load_back_bit_for_bit() {
    let _turn = common::drawing();
    let source = fixtures().join("flan-t5-tiny-lora");
    let (adapted, config) = load_adapter(base(), &source).expect("adapter loads");
    let out = tempfile::tempdir().expect("tempdir");
    save_adapter(&adapted, &config, "tiny/flan-t5", out.path()).expect("saves");

    // Same names (PEFT's), shapes (PEFT's layout) and bytes as the file PEFT wrote.
    assert_eq!(
        tensors(&out.path().join(ADAPTER_WEIGHTS_FILE)),
        tensors(&source.join(ADAPTER_WEIGHTS_FILE))
    );
    let (reloaded, reread) = load_adapter(base(), out.path()).expect("reloads");
    assert_eq!(reread, config);
    let reference = Reference::open(&source);
    assert_eq!(logits(&reloaded, &reference), logits(&adapted, &reference));
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join(ADAPTER_CONFIG_FILE)).expect("config"),
    )
    .expect("JSON");
    assert_eq!(written["base_model_name_or_path"], "tiny/flan-t5");
    assert_eq!(written["peft_type"], "LORA");
}

#[test]
fn unusable_adapters_are_refused_with_reasons() {
    let _turn = common::drawing();
    let source = fixtures().join("flan-t5-tiny-lora");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(source.join(ADAPTER_CONFIG_FILE)).expect("config"),
    )
    .expect("JSON");
    let cases = [
        ("use_dora", serde_json::json!(true), "use_dora"),
        ("target_modules", serde_json::json!(".*q"), "regex"),
        ("target_modules", serde_json::json!(["q", "query"]), "query"),
        (
            "target_modules",
            serde_json::json!(["q", "v"]),
            "unexpected",
        ),
    ];
    for (key, value, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut edited = config.clone();
        edited[key] = value;
        std::fs::write(dir.path().join(ADAPTER_CONFIG_FILE), edited.to_string()).expect("write");
        std::fs::copy(
            source.join(ADAPTER_WEIGHTS_FILE),
            dir.path().join(ADAPTER_WEIGHTS_FILE),
        )
        .expect("copy");
        let error = load_adapter(base(), dir.path())
            .expect_err("refused")
            .to_string();
        assert!(error.contains(expected), "{key}: {error}");
    }
    let unknown = LoraConfig {
        target_modules: vec!["lm_head".to_string()],
        ..LoraConfig::default()
    };
    assert!(base().with_lora(&unknown).is_err());
}

/// PEFT's adapter on a base loaded in f16 (`dtype: f16`): the adapters stay f32 and are added
/// in the base's type, and merging folds them into f16 weights, rounded once. Unmerged and
/// merged, the logits are near PEFT's (computed on the f32 base): within four times what
/// rounding the base's weights to f16 changes in HF's own logits (0.13; 0.20 unmerged and 0.16
/// merged here on burn-flex), while the adapter itself moves them by 9.4.
#[test]
fn a_peft_adapter_on_an_f16_base_applies_and_merges_in_f16() {
    let _turn = common::drawing();
    let device = common::device();
    let dir = fixtures().join("flan-t5-tiny-lora");
    let reference = Reference::open(&dir);
    let expected = unpadded(&reference.f32s("logits"), &reference);
    let rounding = {
        let rounded = Reference::open(&fixtures().join("flan-t5-tiny-f16"));
        let full = Reference::open(&fixtures().join("flan-t5-tiny"));
        largest_difference(
            &unpadded(&rounded.f32s("logits"), &rounded),
            &unpadded(&full.f32s("logits"), &full),
        )
    };
    let near_peft = |model: &T5ForConditionalGeneration| {
        largest_difference(&unpadded(&logits(model, &reference), &reference), &expected)
    };
    let base = load_pretrained_as(
        &fixtures().join("flan-t5-tiny-f16"),
        &device,
        ModelDtype::F16,
    )
    .expect("base loads");
    let base_diff = near_peft(&base);
    let (adapted, _) = load_adapter(base, &dir).expect("adapter loads");
    let unmerged = near_peft(&adapted);
    let merged = adapted.merge_lora();
    let q = &merged.encoder.block[0]
        .layer_self_attention
        .self_attention
        .q;
    assert!(q.lora.is_none());
    assert_eq!(q.base.weight.val().dtype(), DType::F16);
    let merged_diff = near_peft(&merged);
    for (what, diff) in [("unmerged", unmerged), ("merged", merged_diff)] {
        assert!(
            diff <= 4.0 * rounding,
            "{what}: logits differ from PEFT's by {diff}, over 4 × {rounding}"
        );
    }
    assert!(
        base_diff > 10.0 * rounding,
        "the fixture adapter changes little ({base_diff})"
    );
}

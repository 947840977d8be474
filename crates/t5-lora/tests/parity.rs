//! Numerical parity with Hugging Face transformers, on the random-initialised checkpoints and
//! reference outputs that `xtask/golden/t5_golden.py` saved under `fixtures/t5/`.

use crate::common;

use burn::prelude::*;
use burn::store::ModuleSnapshot;
use burn::tensor::DType;
use common::{Reference, fixtures, i64s, largest_difference, largest_magnitude, to_vec};
use safetensors::SafeTensors;
use t5_lora::relative_position_bucket;
use t5_lora::{
    DeviceChoice, Error, KEPT_IN_F32, ModelDtype, T5ForConditionalGeneration, load_pretrained,
    load_pretrained_as,
};

/// Largest |a - b| over the positions where `keep(batch, position)` holds.
fn max_abs_diff(
    ours: &[f32],
    theirs: &[f32],
    shape: &[usize],
    keep: impl Fn(usize, usize) -> bool,
) -> f32 {
    let (batch, len, width) = (shape[0], shape[1], shape[2]);
    assert_eq!(ours.len(), batch * len * width);
    let mut worst = 0.0f32;
    for b in 0..batch {
        for t in 0..len {
            if !keep(b, t) {
                continue;
            }
            let start = (b * len + t) * width;
            for i in start..start + width {
                worst = worst.max((ours[i] - theirs[i]).abs());
            }
        }
    }
    worst
}

/// How far the encoder output and the teacher-forced logits of `model` on the reference batch
/// are from HF's (`reference`), at the non-padded positions.
fn outputs_against(model: &T5ForConditionalGeneration, reference: &Reference) -> [f32; 2] {
    let device = common::device();
    let input_ids = reference.int_tensor("input_ids", &device);
    let attention_mask = reference.int_tensor("attention_mask", &device);
    let decoder_input_ids = reference.int_tensor("decoder_input_ids", &device);
    let encoder_hidden = model.encode(input_ids, attention_mask.clone());
    let encoder = to_vec(encoder_hidden.clone());
    let logits = to_vec(model.decode(decoder_input_ids, encoder_hidden, attention_mask));
    [
        differences(reference, "encoder_hidden_states", &encoder),
        differences(reference, "logits", &logits),
    ]
}

/// The largest |ours - reference| of the reference tensor `name` (`encoder_hidden_states` or
/// `logits`) at its non-padded positions.
fn differences(reference: &Reference, name: &str, ours: &[f32]) -> f32 {
    let shape = reference.shape(name);
    let theirs = reference.f32s(name);
    if name == "logits" {
        let decoder_lengths = reference.i64s("decoder_lengths");
        max_abs_diff(ours, &theirs, &shape, |b, t| {
            (t as i64) < decoder_lengths[b]
        })
    } else {
        let mask = reference.i64s("attention_mask");
        let src_len = reference.shape("attention_mask")[1];
        max_abs_diff(ours, &theirs, &shape, |b, t| mask[b * src_len + t] == 1)
    }
}

/// Loads `model_dir`, runs the reference batch, and compares the encoder output and the
/// teacher-forced logits with Hugging Face's at every non-padded position.
fn check_parity(model_dir: &str, reference_dir: &str) {
    let model =
        load_pretrained(&fixtures().join(model_dir), &common::device()).expect("checkpoint loads");
    let reference = Reference::open(&fixtures().join(reference_dir));
    let [encoder, logits] = outputs_against(&model, &reference);
    // Against a stored reference, PyTorch's order of operations on the machine that made it:
    // the tiny models' sums are at most 96 terms long (d_ff) and their activations O(1) (logits
    // up to about 5), so f32 rounding in either order leaves each operation a few 10⁻⁷ from
    // exact and the whole forward pass (2 to 3 layers of them) a few 10⁻⁶ absolute. 10⁻⁴ is
    // that with a margin of ten or more, and a hundred times below what a wrong mask, bias
    // bucket or weight layout moves (10⁻² and more).
    assert!(
        encoder < 1e-4,
        "{model_dir}: encoder output differs from HF by {encoder}"
    );
    assert!(
        logits < 1e-4,
        "{model_dir}: logits differ from HF by {logits}"
    );
}

/// Inference with the matrices in `dtype` (16 bits; `wo`, the norms and the softmax in f32),
/// on the fixture whose weights HF rounded to that type, against HF's output for those weights
/// computed in f32: what the 16-bit arithmetic alone changes.
///
/// The bound is four times the change that rounding the weights alone makes in HF's own
/// output (its reference for the rounded checkpoint against the f32 one): 16-bit arithmetic
/// may cost about what 16-bit storage costs, which a user accepts in choosing the type. This
/// random tiny model is sensitive to rounding: on burn-flex the arithmetic adds 0.041 (f16)
/// and 0.16 (bf16) to the encoder output, 0.12 and 0.82 to the logits (largest values 3.5 and
/// 4.9), where rounding the weights makes 0.016 and 0.16, 0.13 and 0.85. Wrong arithmetic is
/// of the order of the values themselves (3.45 in the bf16 failure on wgpu this replaces).
///
/// On a device without arithmetic in `dtype` (bf16 on wgpu), loading must refuse, naming it.
fn check_reduced_precision(dtype: ModelDtype) {
    let device = common::device();
    let dir = format!("flan-t5-tiny-{dtype}");
    let loaded = load_pretrained_as(&fixtures().join(&dir), &device, dtype);
    if !device.supports_dtype(dtype.burn()) {
        let error = loaded.expect_err("loading in an unsupported type is refused");
        assert!(
            matches!(error, Error::Dtype(_)) && error.to_string().contains(dtype.name()),
            "{error}"
        );
        eprintln!("{dtype}: refused on this device: {error}");
        return;
    }
    let model = loaded.expect("checkpoint loads");
    let rounded = Reference::open(&fixtures().join(&dir));
    let full = Reference::open(&fixtures().join("flan-t5-tiny"));
    let ours = outputs_against(&model, &rounded);
    for (i, name) in ["encoder_hidden_states", "logits"].into_iter().enumerate() {
        let rounding = differences(&full, name, &rounded.f32s(name));
        eprintln!(
            "{dtype}: {name} differs from HF by {} (rounding the weights: {rounding})",
            ours[i]
        );
        assert!(
            rounding > 0.0 && ours[i] <= 4.0 * rounding,
            "{dtype}: {name} differs from HF's by {}, over 4 × {rounding} (what rounding \
             the weights to {dtype} changes)",
            ours[i]
        );
    }
}

#[test]
fn t5_v1_0_matches_hugging_face() {
    let _turn = common::drawing();
    check_parity("t5-v1_0-tiny", "t5-v1_0-tiny");
}

#[test]
fn flan_t5_matches_hugging_face() {
    let _turn = common::drawing();
    check_parity("flan-t5-tiny", "flan-t5-tiny");
}

#[test]
fn sharded_checkpoint_loads_the_same_model() {
    let _turn = common::drawing();
    check_parity("flan-t5-tiny-sharded", "flan-t5-tiny");
}

#[test]
fn bf16_checkpoint_matches_hugging_face_on_the_same_rounded_weights() {
    let _turn = common::drawing();
    check_parity("flan-t5-tiny-bf16", "flan-t5-tiny-bf16");
}

#[test]
fn f16_checkpoint_matches_hugging_face_on_the_same_rounded_weights() {
    let _turn = common::drawing();
    check_parity("flan-t5-tiny-f16", "flan-t5-tiny-f16");
}

#[test]
fn f16_arithmetic_costs_no_more_than_f16_weights() {
    let _turn = common::drawing();
    check_reduced_precision(ModelDtype::F16);
}

#[test]
fn bf16_arithmetic_costs_no_more_than_bf16_weights() {
    let _turn = common::drawing();
    check_reduced_precision(ModelDtype::Bf16);
}

#[test]
fn in_reduced_precision_wo_norms_and_bias_tables_stay_f32() {
    let _turn = common::drawing();
    let model = load_pretrained_as(
        &fixtures().join("t5-v1_0-tiny"),
        &DeviceChoice::Cpu.resolve().expect("cpu").device,
        ModelDtype::F16,
    )
    .expect("loads");
    let parameters = model.collect(None, None, false);
    let in_f32: Vec<&str> = parameters
        .iter()
        .filter(|p| p.dtype == DType::F32)
        .map(|p| p.name.as_str())
        .collect();
    for parameter in &parameters {
        let kept = parameter.name.split('.').any(|s| KEPT_IN_F32.contains(&s));
        let expected = if kept { DType::F32 } else { DType::F16 };
        assert_eq!(parameter.dtype, expected, "{}", parameter.name);
    }
    // Each kept name is a module of the model (a renamed field would silently keep nothing).
    for kept in KEPT_IN_F32 {
        assert!(
            in_f32.iter().any(|name| name.split('.').any(|s| s == kept)),
            "no parameter of module {kept} in {in_f32:?}"
        );
    }
    // The residual stream and the logits are f32 whatever the matrices are.
    let device = model.device();
    let ids = Tensor::<2, Int>::from_data([[5, 6, 1]], &device);
    let logits = model.forward(ids.clone(), ids.ones_like(), ids.clone());
    assert_eq!(logits.dtype(), DType::F32);
    // Converting a model in memory gives what loading in that type gives, bit for bit.
    let converted = load_pretrained(&fixtures().join("t5-v1_0-tiny"), &device)
        .expect("loads")
        .into_dtype(ModelDtype::F16)
        .expect("converts");
    let again = converted.forward(ids.clone(), ids.ones_like(), ids);
    assert_eq!(to_vec(again), to_vec(logits));
}

#[test]
fn relative_position_buckets_match_hugging_face() {
    let _turn = common::drawing();
    let bytes = std::fs::read(fixtures().join("relative_buckets.safetensors")).expect("fixture");
    let tensors = SafeTensors::deserialize(&bytes).expect("safetensors");
    let read = |name: &str| i64s(&tensors, name);
    let positions = read("relative_positions");
    for (name, bidirectional) in [("buckets_bidirectional", true), ("buckets_causal", false)] {
        let expected = read(name);
        for (position, bucket) in positions.iter().zip(expected) {
            assert_eq!(
                relative_position_bucket(*position, bidirectional, 32, 128) as i64,
                bucket,
                "{name} at {position}"
            );
        }
    }
}

#[test]
fn logits_of_a_row_do_not_depend_on_padding_in_the_batch() {
    let _turn = common::drawing();
    let device = common::device();
    let model = load_pretrained(&fixtures().join("flan-t5-tiny"), &device).expect("loads");
    let reference = Reference::open(&fixtures().join("flan-t5-tiny"));
    let input_ids = reference.int_tensor("input_ids", &device);
    let attention_mask = reference.int_tensor("attention_mask", &device);
    let decoder_input_ids = reference.int_tensor("decoder_input_ids", &device);
    let batched = to_vec(model.forward(
        input_ids.clone(),
        attention_mask.clone(),
        decoder_input_ids.clone(),
    ));

    // Row 2 is the shortest input: run it alone, without any padding.
    let src_len = reference.i64s("attention_mask")[2 * reference.shape("attention_mask")[1]..]
        .iter()
        .filter(|&&m| m == 1)
        .count();
    let tgt_len = reference.shape("decoder_input_ids")[1];
    let alone = to_vec(model.forward(
        input_ids.slice([2..3, 0..src_len]),
        attention_mask.slice([2..3, 0..src_len]),
        decoder_input_ids.clone().slice([2..3, 0..tgt_len]),
    ));
    let vocab = model.config().vocab_size;
    let row = &batched[2 * tgt_len * vocab..3 * tgt_len * vocab];
    let diff = largest_difference(row, &alone);
    // Alone, the row's products have another shape, which gemm and OpenBLAS may sum in
    // another order.
    let len = reference.shape("attention_mask")[1].max(tgt_len);
    let tolerance = common::reordered_tolerance(model.config(), len, largest_magnitude(&alone));
    assert!(
        diff <= tolerance,
        "padding changed the logits by {diff} (> {tolerance})"
    );
}

//! Numerical parity with Hugging Face transformers, on the random-initialised checkpoints and
//! reference outputs that `xtask/golden/t5_golden.py` saved under `fixtures/t5/`.

use crate::common;

use common::{Reference, fixtures, i64s, largest_difference, to_vec};
use safetensors::SafeTensors;
use t5_lora::load_pretrained;
use t5_lora::relative_position_bucket;

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

/// Loads `model_dir`, runs the reference batch, and compares the encoder output and the
/// teacher-forced logits with Hugging Face's at every non-padded position.
fn check_parity(model_dir: &str, reference_dir: &str) {
    let device = common::device();
    let model = load_pretrained(&fixtures().join(model_dir), &device).expect("checkpoint loads");
    let reference = Reference::open(&fixtures().join(reference_dir));
    let input_ids = reference.int_tensor("input_ids", &device);
    let attention_mask = reference.int_tensor("attention_mask", &device);
    let decoder_input_ids = reference.int_tensor("decoder_input_ids", &device);
    let mask = reference.i64s("attention_mask");
    let src_len = reference.shape("attention_mask")[1];
    let decoder_lengths = reference.i64s("decoder_lengths");

    let encoder_hidden = model.encode(input_ids, attention_mask.clone());
    let diff = max_abs_diff(
        &to_vec(encoder_hidden.clone()),
        &reference.f32s("encoder_hidden_states"),
        &reference.shape("encoder_hidden_states"),
        |b, t| mask[b * src_len + t] == 1,
    );
    assert!(
        diff < 1e-4,
        "{model_dir}: encoder output differs from HF by {diff}"
    );

    let logits = model.decode(decoder_input_ids, encoder_hidden, attention_mask);
    let diff = max_abs_diff(
        &to_vec(logits),
        &reference.f32s("logits"),
        &reference.shape("logits"),
        |b, t| (t as i64) < decoder_lengths[b],
    );
    assert!(diff < 1e-4, "{model_dir}: logits differ from HF by {diff}");
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
    let tolerance = common::tolerance(1e-5);
    assert!(
        diff <= tolerance,
        "padding changed the logits by {diff} (> {tolerance})"
    );
}

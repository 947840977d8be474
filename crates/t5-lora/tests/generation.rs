//! Generation against Hugging Face's `generate` on the fixture checkpoints (token for token),
//! KV-cache equivalence, and reproducible sampling.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixtures, hf_sequences, largest_difference, largest_magnitude, to_vec};
use t5_lora::load_pretrained;
use t5_lora::{GenerationConfig, T5ForConditionalGeneration, generate};

const MAX_NEW_TOKENS: usize = 24;

fn setup(dir: &str) -> (T5ForConditionalGeneration, Reference, Device) {
    let device = common::device();
    let model = load_pretrained(&fixtures().join(dir), &device).expect("checkpoint loads");
    (model, Reference::open(&fixtures().join(dir)), device)
}

fn run(
    model: &T5ForConditionalGeneration,
    reference: &Reference,
    device: &Device,
    config: &GenerationConfig,
) -> Vec<Vec<u32>> {
    generate(
        model,
        reference.int_tensor("input_ids", device),
        reference.int_tensor("attention_mask", device),
        config,
        0,
    )
    .expect("generates")
}

/// Greedy search, beam search with early stopping, and beam search without it (length penalty
/// 1 and 2), cached and uncached, each against the sequences `generate` produced.
fn check_generations(dir: &str) {
    let (model, reference, device) = setup(dir);
    let eos = i64::from(model.config().eos_token_id);
    let greedy = GenerationConfig {
        max_new_tokens: MAX_NEW_TOKENS,
        ..GenerationConfig::default()
    };
    let beam = GenerationConfig {
        num_beams: 4,
        early_stopping: true,
        ..greedy.clone()
    };
    let beam_no_early_stop = GenerationConfig {
        num_beams: 2,
        ..greedy.clone()
    };
    let beam_length_penalty = GenerationConfig {
        num_beams: 3,
        length_penalty: 2.0,
        ..greedy.clone()
    };
    for (name, config) in [
        ("greedy", greedy),
        ("beam", beam),
        ("beam_no_early_stop", beam_no_early_stop),
        ("beam_length_penalty", beam_length_penalty),
    ] {
        let expected = hf_sequences(&reference, name, eos);
        for use_cache in [true, false] {
            let config = GenerationConfig {
                use_cache,
                ..config.clone()
            };
            assert_eq!(
                run(&model, &reference, &device, &config),
                expected,
                "{dir}: {name} (use_cache = {use_cache})"
            );
        }
    }
}

#[test]
fn t5_v1_0_generates_what_hugging_face_generates() {
    let _turn = common::drawing();
    check_generations("t5-v1_0-tiny");
}

#[test]
fn flan_t5_generates_what_hugging_face_generates() {
    let _turn = common::drawing();
    check_generations("flan-t5-tiny");
}

#[test]
fn bf16_flan_t5_generates_what_hugging_face_generates() {
    let _turn = common::drawing();
    check_generations("flan-t5-tiny-bf16");
}

#[test]
fn f16_flan_t5_generates_what_hugging_face_generates() {
    let _turn = common::drawing();
    check_generations("flan-t5-tiny-f16");
}

#[test]
fn the_fixtures_exercise_early_and_late_stops() {
    let _turn = common::drawing();
    // Guards the fixtures themselves: some rows must stop at </s> before the limit, and some
    // must run to it, or the stopping logic would go untested.
    let reference = Reference::open(&fixtures().join("t5-v1_0-tiny"));
    let greedy = hf_sequences(&reference, "greedy", 1);
    assert!(greedy.iter().any(|row| row.len() < MAX_NEW_TOKENS));
    assert!(greedy.iter().any(|row| row.len() == MAX_NEW_TOKENS));
    let beam = hf_sequences(&reference, "beam", 1);
    assert!(beam.iter().any(|row| row.last() == Some(&1)));
}

#[test]
fn cached_decoding_gives_the_logits_of_full_recomputation() {
    let _turn = common::drawing();
    let (model, reference, device) = setup("flan-t5-tiny");
    let input_ids = reference.int_tensor("input_ids", &device);
    let attention_mask = reference.int_tensor("attention_mask", &device);
    let decoder_input_ids = reference.int_tensor("decoder_input_ids", &device);
    let [batch, tgt_len] = decoder_input_ids.dims();
    let encoder_hidden = model.encode(input_ids, attention_mask.clone());
    let full = to_vec(model.decode(
        decoder_input_ids.clone(),
        encoder_hidden.clone(),
        attention_mask.clone(),
    ));

    // One position at a time, then the rest in a chunk of three and singles again.
    let mut cache = model.start_decoding(encoder_hidden, attention_mask);
    let mut steps = Vec::new();
    let mut position = 0;
    for width in [1, 1, 3].into_iter().chain(std::iter::repeat(1)) {
        if position == tgt_len {
            break;
        }
        let end = (position + width).min(tgt_len);
        let chunk = decoder_input_ids.clone().slice([0..batch, position..end]);
        steps.push(model.decode_step(chunk, &mut cache));
        position = end;
    }
    assert_eq!(cache.len(), tgt_len);
    let cached = to_vec(Tensor::cat(steps, 1));
    let diff = largest_difference(&full, &cached);
    // A step's products cover fewer positions than the full pass's: another shape and order.
    let len = reference.shape("input_ids")[1].max(tgt_len);
    let tolerance = common::reordered_tolerance(model.config(), len, largest_magnitude(&full));
    assert!(
        diff <= tolerance,
        "cached logits differ by {diff} (> {tolerance})"
    );
}

#[test]
fn sampling_is_reproducible_and_independent_of_batching() {
    let _turn = common::drawing();
    let (model, reference, device) = setup("flan-t5-tiny");
    let sample = GenerationConfig {
        max_new_tokens: MAX_NEW_TOKENS,
        do_sample: true,
        temperature: 1.5,
        top_k: 20,
        top_p: 0.9,
        seed: 11,
        ..GenerationConfig::default()
    };
    let first = run(&model, &reference, &device, &sample);
    assert_eq!(first, run(&model, &reference, &device, &sample));
    let reseeded = GenerationConfig {
        seed: 12,
        ..sample.clone()
    };
    assert_ne!(first, run(&model, &reference, &device, &reseeded));

    // Row 1 generated alone, as stream 1, draws the same tokens as inside the batch.
    let input_ids = reference.int_tensor("input_ids", &device);
    let attention_mask = reference.int_tensor("attention_mask", &device);
    let width = input_ids.dims()[1];
    let alone = generate(
        &model,
        input_ids.slice([1..2, 0..width]),
        attention_mask.slice([1..2, 0..width]),
        &sample,
        1,
    )
    .expect("generates");
    assert_eq!(alone[0], first[1]);

    // top_k = 1 leaves one candidate: sampling becomes greedy search.
    let greedy_by_sampling = GenerationConfig { top_k: 1, ..sample };
    let greedy = hf_sequences(&reference, "greedy", 1);
    assert_eq!(
        run(&model, &reference, &device, &greedy_by_sampling),
        greedy
    );
}

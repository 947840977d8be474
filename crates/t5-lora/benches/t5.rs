//! T5 speed on FLAN-T5-small- and base-shaped random weights (burn-flex on the CPU): a
//! teacher-forced forward pass, and greedy generation of 32 new tokens with and without the
//! key/value cache. Run with `cargo xtask bench t5`; figures go to docs/performance.md.

use std::hint::black_box;

use burn::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use t5_lora::model::FeedForwardProj;
use t5_lora::{GenerationConfig, T5Config, generate};

const BATCH: usize = 4;
const SOURCE_LEN: usize = 128;
const TARGET_LEN: usize = 16;
const NEW_TOKENS: usize = 32;

/// Hugging Face's `google/flan-t5-small` and `google/flan-t5-base` shapes. `</s>` is set
/// outside the vocabulary so that every generation runs the full 32 tokens.
fn flan_t5(size: &str) -> T5Config {
    let (d_model, d_ff, layers, heads) = match size {
        "small" => (512, 1024, 8, 6),
        "base" => (768, 2048, 12, 12),
        other => unreachable!("no FLAN-T5 {other} preset"),
    };
    T5Config {
        vocab_size: 32128,
        d_model,
        d_kv: 64,
        d_ff,
        num_layers: layers,
        num_decoder_layers: Some(layers),
        num_heads: heads,
        relative_attention_num_buckets: 32,
        relative_attention_max_distance: 128,
        layer_norm_epsilon: 1e-6,
        feed_forward_proj: FeedForwardProj::parse("gated-gelu").expect("known"),
        tie_word_embeddings: false,
        pad_token_id: 0,
        eos_token_id: 32128,
        decoder_start_token_id: 0,
    }
}

/// Token ids `[rows, len]` cycling through the vocabulary, all unmasked.
fn tokens(rows: usize, len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let ids: Vec<i64> = (0..rows * len)
        .map(|i| (i * 7919 % 32000) as i64 + 3)
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [rows, len]), device),
        Tensor::ones([rows, len], device),
    )
}

fn bench_t5(c: &mut Criterion) {
    let device = Device::default();
    for size in ["small", "base"] {
        let model = flan_t5(size).init(&device);
        let (input_ids, attention_mask) = tokens(BATCH, SOURCE_LEN, &device);
        let (decoder_input_ids, _) = tokens(BATCH, TARGET_LEN, &device);

        let mut forward = c.benchmark_group(format!("t5_forward_{size}"));
        forward.sample_size(10);
        forward.throughput(Throughput::Elements(
            (BATCH * (SOURCE_LEN + TARGET_LEN)) as u64,
        ));
        forward.bench_function(
            BenchmarkId::new(
                "teacher_forced",
                format!("{BATCH}x{SOURCE_LEN}+{TARGET_LEN}"),
            ),
            |b| {
                b.iter(|| {
                    let logits = model.forward(
                        input_ids.clone(),
                        attention_mask.clone(),
                        decoder_input_ids.clone(),
                    );
                    black_box(logits.into_data())
                })
            },
        );
        forward.finish();

        let mut generation = c.benchmark_group(format!("t5_generate_{size}"));
        generation.sample_size(10);
        generation.throughput(Throughput::Elements((BATCH * NEW_TOKENS) as u64));
        for use_cache in [true, false] {
            let config = GenerationConfig {
                max_new_tokens: NEW_TOKENS,
                use_cache,
                ..GenerationConfig::default()
            };
            let name = if use_cache { "cached" } else { "uncached" };
            generation.bench_function(
                BenchmarkId::new(name, format!("{BATCH}x{SOURCE_LEN}, {NEW_TOKENS} new")),
                |b| {
                    b.iter(|| {
                        let out = generate(
                            &model,
                            input_ids.clone(),
                            attention_mask.clone(),
                            &config,
                            0,
                        )
                        .expect("generates");
                        assert!(out.iter().all(|row| row.len() == NEW_TOKENS));
                        black_box(out)
                    })
                },
            );
        }
        generation.finish();
    }
}

criterion_group!(benches, bench_t5);
criterion_main!(benches);

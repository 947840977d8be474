//! T5 speed on FLAN-T5-small- and base-shaped random weights (burn-flex on the CPU): a
//! teacher-forced forward pass, and greedy generation of 32 new tokens with and without the
//! key/value cache. Run with `cargo xtask bench t5`; figures go to docs/performance.md.

use std::hint::black_box;

mod common;

use burn::prelude::*;
use common::{flan_t5, tokens};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use t5_lora::{GenerationConfig, generate};

const BATCH: usize = 4;
const SOURCE_LEN: usize = 128;
const TARGET_LEN: usize = 16;
const NEW_TOKENS: usize = 32;

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

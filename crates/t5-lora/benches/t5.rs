//! T5 speed on FLAN-T5-small- and base-shaped random weights (burn-flex on the CPU unless
//! `BENCH_DEVICE` says otherwise), on the shapes `cargo xtask bench` compares with its peers:
//!
//! - `t5-forward/<size>`: teacher-forced encoder + decoder forward, batch 8, source 384, target 32;
//! - `t5-generate/<size>`: cached greedy generation of 32 new tokens, batch 16, source 384;
//! - `t5-beam/<size>`: the same with 4 beams;
//! - `t5-cache/<size>`: greedy generation with and without the key/value cache (batch 4,
//!   source 128), the cache's speed-up;
//! - `matmul`: a 2048 x 2048 f32 matmul, the backend's own ceiling (`f32`), and the same product
//!   as a projection of the model (`projection`: OpenBLAS with the `openblas-matmul` feature).
//!
//! Run with `cargo xtask bench t5`; figures go to docs/performance.md.

use std::hint::black_box;

mod common;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{bench_device, flan_t5, tokens};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use t5_lora::{GenerationConfig, generate};
use t5_lora::{LoraLinear, T5ForConditionalGeneration};

const NEW_TOKENS: usize = 32;

/// Generates exactly [`NEW_TOKENS`] per row (`</s>` is outside the vocabulary).
fn generate_all(
    model: &T5ForConditionalGeneration,
    (ids, mask): &(Tensor<2, Int>, Tensor<2, Int>),
    config: &GenerationConfig,
) -> Vec<Vec<u32>> {
    let out = generate(model, ids.clone(), mask.clone(), config, 0).expect("generates");
    assert!(out.iter().all(|row| row.len() == NEW_TOKENS));
    out
}

fn bench_matmul(c: &mut Criterion, device: &Device) {
    let n: usize = 2048;
    let a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, device);
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.throughput(Throughput::Elements((2 * n * n * n) as u64));
    group.bench_function(BenchmarkId::new("f32", format!("{n}x{n}")), |bench| {
        bench.iter(|| black_box(a.clone().matmul(b.clone()).into_data()))
    });
    // The same product as the model's projections run it: the backend's matmul, or OpenBLAS
    // with the `openblas-matmul` feature.
    let mut projection = LoraLinear::new(n, n, device);
    projection.base.weight = Param::from_tensor(b.clone());
    let rows = a.clone().unsqueeze::<3>();
    group.bench_function(
        BenchmarkId::new("projection", format!("{n}x{n}")),
        |bench| bench.iter(|| black_box(projection.forward(rows.clone()).into_data())),
    );
    group.finish();
}

fn bench_t5(c: &mut Criterion) {
    let device = bench_device();
    bench_matmul(c, &device);
    for size in ["small", "base"] {
        let model = flan_t5(size).init(&device);

        let (batch, source, target) = (8, 384, 32);
        let (input_ids, attention_mask) = tokens(batch, source, &device);
        let (decoder_input_ids, _) = tokens(batch, target, &device);
        let mut group = c.benchmark_group("t5-forward");
        group.sample_size(10);
        group.throughput(Throughput::Elements((batch * (source + target)) as u64));
        group.bench_function(
            BenchmarkId::new(size, format!("{batch}x{source}+{target}")),
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
        group.finish();

        let (batch, source) = (16, 384);
        let inputs = tokens(batch, source, &device);
        for (name, num_beams) in [("t5-generate", 1), ("t5-beam", 4)] {
            let config = GenerationConfig {
                max_new_tokens: NEW_TOKENS,
                num_beams,
                ..GenerationConfig::default()
            };
            let mut group = c.benchmark_group(name);
            group.sample_size(10);
            group.throughput(Throughput::Elements((batch * NEW_TOKENS) as u64));
            group.bench_function(
                BenchmarkId::new(size, format!("{batch}x{source}, {NEW_TOKENS} new")),
                |b| b.iter(|| black_box(generate_all(&model, &inputs, &config))),
            );
            group.finish();
        }

        let (batch, source) = (4, 128);
        let inputs = tokens(batch, source, &device);
        let mut group = c.benchmark_group(format!("t5-cache/{size}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements((batch * NEW_TOKENS) as u64));
        for use_cache in [true, false] {
            let config = GenerationConfig {
                max_new_tokens: NEW_TOKENS,
                use_cache,
                ..GenerationConfig::default()
            };
            let name = if use_cache { "cached" } else { "uncached" };
            group.bench_function(
                BenchmarkId::new(name, format!("{batch}x{source}, {NEW_TOKENS} new")),
                |b| b.iter(|| black_box(generate_all(&model, &inputs, &config))),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_t5);

fn main() {
    t5_lora::with_malloc_tunables();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

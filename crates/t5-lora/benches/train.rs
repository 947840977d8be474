//! LoRA training on FLAN-T5-base-shaped random weights (burn-flex on the CPU unless
//! `BENCH_DEVICE` says otherwise, autodiff): one optimiser step on a batch of 8 prompts of 384
//! tokens with 32-token answers, LoRA r = 8 on q and v (the study's settings), and the peak
//! resident memory of the process afterwards.
//! Run with `cargo xtask bench train`; figures go to docs/performance.md.

mod common;

use std::ops::ControlFlow;

use common::{bench_device, flan_t5, peak_rss_bytes};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use t5_lora::{Example, TrainConfig, train};

const BATCH: usize = 8;
const SOURCE_LEN: usize = 384;
const TARGET_LEN: usize = 32;

/// `rows` examples of synthetic ids, `</s>` (id 1) last, as the tokenizer would end them.
fn examples(rows: usize) -> Vec<Example> {
    let ids = |row: usize, len: usize, salt: usize| -> Vec<u32> {
        (0..len - 1)
            .map(|i| ((row * 131 + i * 7919 + salt) % 32000) as u32 + 3)
            .chain(std::iter::once(1))
            .collect()
    };
    (0..rows)
        .map(|row| Example {
            source: ids(row, SOURCE_LEN, 0),
            target: ids(row, TARGET_LEN, 17),
        })
        .collect()
}

fn bench_train(c: &mut Criterion) {
    let device = bench_device().autodiff();
    device.seed(42);
    let config = TrainConfig {
        batch_size: BATCH,
        max_source_len: SOURCE_LEN,
        max_target_len: TARGET_LEN,
        epochs: 1,
        ..TrainConfig::default()
    };
    let model = flan_t5("base")
        .init(&device)
        .with_lora(&config.lora)
        .expect("attaches");
    let batch = examples(BATCH);

    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (BATCH * (SOURCE_LEN + TARGET_LEN)) as u64,
    ));
    group.bench_function(
        BenchmarkId::new("base", format!("{BATCH}x{SOURCE_LEN}+{TARGET_LEN}")),
        |b| {
            b.iter_batched(
                // Clones share the weights: each iteration is one step from the same start.
                || model.clone(),
                |model| {
                    train(model, &batch, None, &config, None, |_| {
                        ControlFlow::Continue(())
                    })
                    .expect("trains")
                    .state
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

fn main() {
    t5_lora::with_malloc_tunables();
    let mut criterion = Criterion::default().configure_from_args();
    bench_train(&mut criterion);
    criterion.final_summary();
    match peak_rss_bytes() {
        Some(bytes) => println!(
            "peak resident memory: {:.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        ),
        None => println!("peak resident memory: not available on this system"),
    }
}

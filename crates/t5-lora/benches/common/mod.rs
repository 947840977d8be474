//! What the benchmarks share: FLAN-T5-shaped random models and synthetic token ids.
#![allow(dead_code)] // each benchmark uses its own subset

use burn::prelude::*;
use t5_lora::T5Config;
use t5_lora::device::DeviceChoice;
use t5_lora::model::FeedForwardProj;

/// The backend to measure: `BENCH_DEVICE` (a `--device` name; `cargo xtask bench --device`
/// sets it and the matching cargo feature), burn-flex on the CPU by default.
pub fn bench_device() -> Device {
    let choice: DeviceChoice = std::env::var("BENCH_DEVICE")
        .map_or(Ok(DeviceChoice::Cpu), |name| name.parse())
        .expect("BENCH_DEVICE names a device");
    let device = choice
        .device()
        .expect("BENCH_DEVICE's backend is compiled in");
    eprintln!("benchmarking on {choice} ({device:?})");
    device
}

/// Hugging Face's `google/flan-t5-small` and `google/flan-t5-base` shapes. `</s>` is set
/// outside the vocabulary so that every generation runs the full 32 tokens.
pub fn flan_t5(size: &str) -> T5Config {
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
pub fn tokens(rows: usize, len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let ids: Vec<i64> = (0..rows * len)
        .map(|i| (i * 7919 % 32000) as i64 + 3)
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [rows, len]), device),
        Tensor::ones([rows, len], device),
    )
}

/// Peak resident memory of this process so far, in bytes (Linux's `VmHWM`; `None` elsewhere).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

//! What the benchmarks share: FLAN-T5-shaped random models and synthetic token ids.
#![allow(dead_code)] // each benchmark uses its own subset

use burn::prelude::*;
use t5_lora::DeviceChoice;
use t5_lora::T5Config;
use t5_lora::published_shape;

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
    let shape = published_shape(&format!("google/flan-t5-{size}"))
        .unwrap_or_else(|| unreachable!("no FLAN-T5 {size} shape"));
    T5Config {
        eos_token_id: shape.vocab_size as u32,
        ..shape
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

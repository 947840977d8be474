//! Device memory of inference in each `dtype` (f32, bf16, f16): a FLAN-T5-shaped model with
//! random weights, converted on the CPU to the dtype, moved to the device, then one batch of
//! greedy generation (4 prompts of 128 tokens, 16 new tokens each). Prints what the device's
//! allocator holds after loading and after generating, and its peak; run one process per
//! dtype, so that each starts from an empty pool.
//!
//! ```text
//! cargo run --release -p t5-lora --features wgpu --example dtype_memory -- base wgpu f16
//! ```
//!
//! Figures go to docs/performance.md.

use std::error::Error;

use burn::prelude::*;
use t5_lora::{DeviceChoice, GenerationConfig, ModelDtype, generate, published_shape};

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// What the device's allocator holds, and the most its pools ever held (bytes).
fn usage(device: &Device) -> Result<(u64, u64), Box<dyn Error>> {
    device.sync()?;
    let usage = device
        .memory_pool_usage()
        .ok_or("this backend does not report its memory")?;
    let peak = device
        .memory_pool_report()
        .unwrap_or_default()
        .iter()
        .map(|pool| pool.pages_peak * pool.page_size)
        .sum();
    Ok((usage.bytes_reserved, peak))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [size, device, dtype] = args.as_slice() else {
        return Err("usage: dtype_memory small|base|large DEVICE f32|bf16|f16".into());
    };
    let config = published_shape(&format!("google/flan-t5-{size}"))
        .ok_or_else(|| format!("no FLAN-T5 shape {size:?}"))?;
    let dtype: ModelDtype = dtype.parse()?;
    let device = device.parse::<DeviceChoice>()?.resolve()?;
    let model = config
        .init(&DeviceChoice::Cpu.device()?)
        .into_dtype(dtype)?
        .to_device(&device.device);
    let (loaded, _) = usage(&device.device)?;

    let (rows, source) = (4, 128);
    let ids: Vec<i64> = (0..rows * source)
        .map(|i| (i * 7919 % 32000) as i64 + 3)
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, source]), &device.device);
    let greedy = GenerationConfig {
        max_new_tokens: 16,
        ..GenerationConfig::default()
    };
    let start = std::time::Instant::now();
    let answers = generate(&model, ids.clone(), ids.ones_like(), &greedy, 0)?;
    let (after, peak) = usage(&device.device)?;
    println!(
        "flan-t5-{size} {dtype} on {}: {:.3} GiB after loading, {:.3} GiB after generating \
         {} rows in {:.1} s, pool peak {:.3} GiB",
        device.name,
        gib(loaded),
        gib(after),
        answers.len(),
        start.elapsed().as_secs_f64(),
        gib(peak)
    );
    Ok(())
}

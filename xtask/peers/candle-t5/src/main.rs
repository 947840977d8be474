//! candle-transformers' T5 on the shapes of `cargo xtask bench`: the Rust peer.
//!
//! Random FLAN-T5-small- and base-shaped weights (gated-GELU, untied head), f32 on the CPU, the
//! same token ids as the other benchmarks. Prints one JSON object per line, in the format of
//! `xtask/peers/torch_t5.py`:
//!
//! ```text
//! {"bench": "t5-forward", "size": "small", "seconds": ..., "tokens_per_second": ...}
//! ```
//!
//! - `matmul`: a 2048 x 2048 f32 matmul, GFLOP/s;
//! - `t5-forward`: encoder + decoder over batch 8, source 384, target 32 (positions/s). candle's
//!   `decode` projects only the last target position onto the vocabulary, so this peer does a
//!   little less work than the others (which compute logits for all 32);
//! - `t5-generate`: greedy generation of 32 new tokens with candle's key/value cache, batch 16,
//!   source 384 (new tokens/s). candle's T5 takes no attention mask; every input is unpadded.
//!
//! Each figure is the median of `--repeats` runs after one warm-up run.
//!
//! Usage: `candle-t5-peer [--sizes small,base] [--only BENCH] [--repeats N]`

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::t5::{Config, T5ForConditionalGeneration};
use clap::Parser;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const VOCAB: usize = 32128;
const NEW_TOKENS: usize = 32;

/// `(d_model, d_ff, layers, heads)` of FLAN-T5-small and -base.
fn shape(size: &str) -> Result<(usize, usize, usize, usize)> {
    match size {
        "small" => Ok((512, 1024, 8, 6)),
        "base" => Ok((768, 2048, 12, 12)),
        other => Err(format!("unknown size {other:?} (small or base)").into()),
    }
}

fn model(size: &str, use_cache: bool, device: &Device) -> Result<T5ForConditionalGeneration> {
    let (d_model, d_ff, layers, heads) = shape(size)?;
    let config: Config = serde_json::from_value(json!({
        "vocab_size": VOCAB, "d_model": d_model, "d_kv": 64, "d_ff": d_ff,
        "num_layers": layers, "num_decoder_layers": layers, "num_heads": heads,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
        "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
        "is_encoder_decoder": true, "use_cache": use_cache,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    }))?;
    // A VarMap creates every weight it is asked for, initialised by the layer's own hint.
    let weights = VarMap::new();
    let vb = VarBuilder::from_varmap(&weights, DType::F32, device);
    Ok(T5ForConditionalGeneration::load(vb, &config)?)
}

/// The benchmarks' token ids: `(i * 7919) % 32000 + 3` over `rows * length` positions.
fn tokens(rows: usize, length: usize, device: &Device) -> Result<Tensor> {
    let ids: Vec<u32> = (0..rows * length)
        .map(|i| (i * 7919 % 32000 + 3) as u32)
        .collect();
    Ok(Tensor::from_vec(ids, (rows, length), device)?)
}

/// The median of `repeats` timed runs of `run` after one warm-up run, in seconds.
fn timed(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    run()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn report(bench: &str, size: &str, seconds: f64, work: usize) {
    let line = json!({
        "bench": bench, "size": size, "seconds": seconds,
        "tokens_per_second": work as f64 / seconds,
    });
    println!("{line}");
}

fn matmul(repeats: usize, device: &Device) -> Result<()> {
    let n = 2048;
    let a = Tensor::randn(0f32, 1.0, (n, n), device)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), device)?;
    let seconds = timed(repeats, || {
        a.matmul(&b)?;
        Ok(())
    })?;
    let gflops = 2.0 * (n * n * n) as f64 / seconds / 1e9;
    println!("{}", json!({"bench": "matmul", "gflops": gflops}));
    Ok(())
}

fn forward(size: &str, repeats: usize, device: &Device) -> Result<()> {
    let (batch, source, target) = (8, 384, 32);
    let mut model = model(size, false, device)?;
    let input_ids = tokens(batch, source, device)?;
    let decoder_input_ids = tokens(batch, target, device)?;
    let seconds = timed(repeats, || {
        model.clear_kv_cache();
        model.forward(&input_ids, &decoder_input_ids)?;
        Ok(())
    })?;
    report("t5-forward", size, seconds, batch * (source + target));
    Ok(())
}

fn generate(size: &str, repeats: usize, device: &Device) -> Result<()> {
    let (batch, source) = (16, 384);
    let mut model = model(size, true, device)?;
    let input_ids = tokens(batch, source, device)?;
    let seconds = timed(repeats, || {
        model.clear_kv_cache();
        let encoder_output = model.encode(&input_ids)?;
        let mut next = Tensor::zeros((batch, 1), DType::U32, device)?;
        for _ in 0..NEW_TOKENS {
            let logits = model.decode(&next, &encoder_output)?; // [batch, vocab]
            next = logits.argmax_keepdim(D::Minus1)?;
        }
        Ok(())
    })?;
    report("t5-generate", size, seconds, batch * NEW_TOKENS);
    Ok(())
}

/// candle-transformers' T5 on the benchmarks' shapes.
#[derive(Parser)]
struct Args {
    /// Model shapes to run, comma-separated.
    #[arg(long, default_value = "small,base")]
    sizes: String,
    /// Run only this benchmark (matmul, t5-forward, t5-generate).
    #[arg(long)]
    only: Option<String>,
    /// Timed runs per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> Result<()> {
    let Args {
        sizes,
        only,
        repeats,
    } = Args::parse();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let device = Device::Cpu;
    println!(
        "{}",
        json!({"peer": "candle", "candle": "0.11.1", "threads": candle_core::utils::get_num_threads()})
    );
    if wanted("matmul") {
        matmul(repeats, &device)?;
    }
    for size in sizes.split(',') {
        if wanted("t5-forward") {
            forward(size, repeats, &device)?;
        }
        if wanted("t5-generate") {
            generate(size, repeats, &device)?;
        }
    }
    Ok(())
}

//! Writes an adapter made by this crate, and this crate's logits with it, for PEFT to check:
//! `cargo xtask golden` runs this and then `t5_golden.py --verify-adapter DIR`, which loads
//! the adapter with `PeftModel.from_pretrained` and compares logits.
//!
//! Usage: cargo run -p t5-lora --example export_adapter -- DIR

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use t5_lora::load_pretrained;
use t5_lora::{LoraConfig, save_adapter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: export_adapter DIR")?);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5");
    let device = Device::default();
    device.seed(17);
    let config = LoraConfig {
        r: 3,
        lora_alpha: 6.0,
        lora_dropout: 0.0,
        // Different targets from the PEFT-made fixture, including a projection T5 keeps in f32.
        target_modules: ["k", "o", "wi_1", "wo"].map(String::from).to_vec(),
    };
    let mut model = load_pretrained(&fixtures.join("flan-t5-tiny"), &device)?.with_lora(&config)?;
    // A new adapter's B is zero; a random one makes every adapter tensor count.
    for (_, projection) in model.projections_mut() {
        if let Some(adapter) = &mut projection.lora {
            let shape = adapter.lora_b.weight.val().dims();
            let random = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.1), &device);
            adapter.lora_b.weight = Param::from_tensor(random);
        }
    }
    save_adapter(&model, &config, "fixtures/t5/flan-t5-tiny", &out)?;

    let bytes = std::fs::read(fixtures.join("flan-t5-tiny/reference.safetensors"))?;
    let reference = safetensors::SafeTensors::deserialize(&bytes)?;
    let int = |name: &str| -> Result<Tensor<2, Int>, Box<dyn std::error::Error>> {
        let view = reference.tensor(name)?;
        let values: Vec<i64> = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let shape = [view.shape()[0], view.shape()[1]];
        Ok(Tensor::from_data(TensorData::new(values, shape), &device))
    };
    let logits = model.forward(
        int("input_ids")?,
        int("attention_mask")?,
        int("decoder_input_ids")?,
    );
    let shape = logits.dims().to_vec();
    let values = logits
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape, &bytes)?;
    safetensors::serialize_to_file(
        [("logits", view)],
        None,
        &out.join("rust_logits.safetensors"),
    )?;
    println!("wrote an adapter and its logits to {}", out.display());
    Ok(())
}

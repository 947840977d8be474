//! Helpers shared by the test files: the fixture directory and the reference tensors that
//! `xtask/golden/t5_golden.py` saved.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::SafeTensors;
use t5_lora::DeviceChoice;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/t5")
}

/// The variable naming the backend the tests run on (a `--device` name; the CPU when unset).
/// One test build with wgpu compiled in serves both the CPU suite and CI's `gpu` group, which
/// `cargo xtask gpu-tests` runs with it set to `wgpu` (xtask spells the name too).
pub const TEST_DEVICE_VARIABLE: &str = "T5_LORA_TEST_DEVICE";

/// The backend the tests run on.
pub fn test_backend() -> DeviceChoice {
    match std::env::var(TEST_DEVICE_VARIABLE) {
        Ok(name) => name
            .parse()
            .unwrap_or_else(|e| panic!("{TEST_DEVICE_VARIABLE}: {e}")),
        Err(_) => DeviceChoice::Cpu,
    }
}

/// Burn's device for [`test_backend`].
pub fn device() -> Device {
    let resolved = test_backend()
        .resolve()
        .unwrap_or_else(|e| panic!("the test device ({TEST_DEVICE_VARIABLE}): {e}"));
    eprintln!("test device: {}", resolved.name);
    resolved.device
}

/// How far two of our own computations that should agree may differ: `cpu` on the CPU
/// backends, and at least [`GPU_RERUN_TOLERANCE`] on a GPU. On the CPU the two compute the same
/// entries in orders that differ at most by gemm's choice of kernel for a shape (one row or
/// several, a longer or shorter key sequence), each sum at most 96 terms of O(1) values: a few
/// 10⁻⁷ per operation and about 10⁻⁶ over the tiny models, which the callers' `cpu` (10⁻⁵, of
/// logits up to about 5) covers ten times.
pub fn tolerance(cpu: f32) -> f32 {
    match test_backend() {
        DeviceChoice::Cpu | DeviceChoice::Ndarray | DeviceChoice::Tch => cpu,
        _ => cpu.max(GPU_RERUN_TOLERANCE),
    }
}

/// On a GPU, cubecl autotunes its matrix and reduction kernels per shape and launch, so the
/// same logits computed twice (or at another batch shape) are summed in another order: f32
/// rounding over sums of a few hundred terms, about 1e-6 relative per operation. The bound is
/// the one the HF parity tests hold (PyTorch's order against ours), well below any change a
/// bug would make (the LoRA and padding tests' failures are 1e-2 and larger).
pub const GPU_RERUN_TOLERANCE: f32 = 1e-4;

/// The little-endian i64 values of tensor `name`.
pub fn i64s(tensors: &SafeTensors<'_>, name: &str) -> Vec<i64> {
    tensors
        .tensor(name)
        .expect(name)
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// The reference tensors of one fixture directory.
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    pub fn open(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference file");
        Reference { bytes }
    }

    pub fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.tensors().tensor(name).expect(name).shape().to_vec()
    }

    pub fn i64s(&self, name: &str) -> Vec<i64> {
        i64s(&self.tensors(), name)
    }

    pub fn f32s(&self, name: &str) -> Vec<f32> {
        let tensors = self.tensors();
        let view = tensors.tensor(name).expect(name);
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()
    }

    pub fn int_tensor(&self, name: &str, device: &Device) -> Tensor<2, Int> {
        let shape = self.shape(name);
        Tensor::from_data(
            TensorData::new(self.i64s(name), [shape[0], shape[1]]),
            device,
        )
    }
}

/// A rank-3 tensor's values.
pub fn to_vec(tensor: Tensor<3>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().expect("f32 data")
}

/// Largest |a - b| over two equally long slices.
pub fn largest_difference(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Hugging Face's rows (`[start, tokens…, </s>, padding…]`) as generated tokens: without the
/// start token, up to and including the first `</s>`.
pub fn hf_sequences(reference: &Reference, name: &str, eos: i64) -> Vec<Vec<u32>> {
    let width = reference.shape(name)[1];
    reference
        .i64s(name)
        .chunks_exact(width)
        .map(|row| {
            let generated = &row[1..];
            let end = generated
                .iter()
                .position(|&t| t == eos)
                .map_or(generated.len(), |p| p + 1);
            generated[..end].iter().map(|&t| t as u32).collect()
        })
        .collect()
}

// The lock the unit tests hold too (one file for both test binaries): seeded tests (adapter
// initialisation, dropout) take `seeded`, tests that only draw take `drawing`.
#[path = "../../src/test_random.rs"]
mod test_random;
pub use test_random::{drawing, seeded};

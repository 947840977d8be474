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
/// backends (0 where burn-flex runs the same kernels in the same order), and at least
/// [`GPU_RERUN_TOLERANCE`] on a GPU. Computations in other orders take
/// [`reordered_tolerance`] instead.
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

/// How far two runs of a model of `config` over sequences of up to `len` tokens may differ in
/// an output when they sum in other orders: another batch shape or sequence length (gemm's
/// kernel for one row or several, OpenBLAS's blocking, which follows the shape), a GPU's
/// autotuned kernels, or a LoRA adapter merged into the weights (one more rounding per weight).
/// `largest` is the largest magnitude among the outputs compared.
///
/// First order, as the kernel tests' bounds ([`rounding`], which this file includes): a product
/// summing `k` terms moves its result by at most `k·u` of the magnitudes it carries. On the way
/// to a logit an encoder layer sums `3·d_model` (q, k, v), `d_kv` (the scores), `len`
/// (probabilities times values), `heads·d_kv` (o), `2·d_model` (the gated GELU's two) and `d_ff`
/// (wo) terms, a decoder layer the same and its cross-attention's again, and the head `d_model`.
/// The RMS norms keep every activation O(1) and the probabilities sum to 1, so the bound takes
/// the outputs' largest magnitude for all of them, and [`rounding::allowed`] adds the two sides
/// and the second-order terms. For the tiny fixtures (d_model 48, d_ff 96, 2 + 3 layers) and 16
/// tokens, about 3,000 roundings: 3.7·10⁻⁴ of the largest logit. What a bug moves (a mask, a
/// bias bucket, an adapter's scale) is 10⁻² and more.
pub fn reordered_tolerance(config: &t5_lora::T5Config, len: usize, largest: f32) -> f32 {
    let attention = 3 * config.d_model + config.d_kv + len + config.num_heads * config.d_kv;
    let feed_forward = 2 * config.d_model + config.d_ff;
    let encoder = config.num_layers * (attention + feed_forward);
    let decoder_layers = config.num_decoder_layers.unwrap_or(config.num_layers);
    let decoder = decoder_layers * (2 * attention + feed_forward);
    let terms = encoder + decoder + config.d_model;
    rounding::allowed(terms as f64 * largest as f64, rounding::F32_UNIT) as f32
}

/// The largest magnitude in `values`.
pub fn largest_magnitude(values: &[f32]) -> f32 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

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

// The kernel tests' rounding bounds, for [`reordered_tolerance`].
#[path = "../../src/kernels/rounding.rs"]
mod rounding;
pub use test_random::{drawing, seeded};

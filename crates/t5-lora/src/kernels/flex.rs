//! The kernels on burn-flex, the CPU backend: f32 tensors are handed to `rows.rs` as slices of
//! their buffers (written in place where the tensor owns its buffer); any other tensor takes
//! the composed path.

use burn::backend::ops::IntTensorOps;
#[cfg(feature = "openblas-matmul")]
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::{DType, Distribution, IntDType, TensorData};
use burn_flex::FlexTensor;

use super::composed::{self, Fused};
use super::{T5Kernels, rows};

impl T5Kernels for Flex {
    fn rms_norm(hidden: FlexTensor, weight: FlexTensor, epsilon: f64) -> FlexTensor {
        let shape = hidden.shape();
        let width = shape.as_slice().last().copied().unwrap_or(0);
        if let (Some(x), Some(w)) = (hidden.as_slice::<f32>(), weight.as_slice::<f32>())
            && w.len() == width
        {
            let mut out = vec![0.0; x.len()];
            rows::rms_norm(x, w, epsilon as f32, &mut out);
            return FlexTensor::from_data(TensorData::new(out, shape));
        }
        composed::rms_norm::<Self>(hidden, weight, epsilon)
    }

    fn gated_gelu_new(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        if is_f32(&gate) && gate.shape() == up.shape() && up.as_slice::<f32>().is_some() {
            let mut gate = contiguous(gate);
            rows::gelu_new_gated(values_mut(&mut gate), up.as_slice::<f32>());
            return gate;
        }
        composed::gated_gelu_new::<Self>(gate, up)
    }

    fn gelu_new(x: FlexTensor) -> FlexTensor {
        if !is_f32(&x) {
            return composed::gelu_new::<Self>(x);
        }
        let mut x = contiguous(x);
        rows::gelu_new_gated(values_mut(&mut x), None);
        x
    }

    fn softmax_with_bias(scores: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let dims = scores.shape().to_vec();
        let bias_dims = bias.shape().to_vec();
        let broadcasts = dims.len() == bias_dims.len()
            && dims.last() == bias_dims.last()
            && dims.iter().zip(&bias_dims).all(|(&s, &b)| b == s || b == 1);
        if !(broadcasts && is_f32(&scores) && is_f32(&bias)) {
            return composed::softmax_with_bias::<Self>(scores, bias);
        }
        // The model's biases arrive contiguous (the position bias plus a mask); a strided one,
        // such as `compute_bias`'s permuted table alone, is copied once here.
        let bias = contiguous(bias);
        let mut scores = contiguous(scores);
        let bias_values = bias.as_slice::<f32>().expect("a contiguous f32 tensor");
        rows::softmax_with_bias(values_mut(&mut scores), &dims, bias_values, &bias_dims);
        scores
    }

    fn attention(
        query: FlexTensor,
        key: FlexTensor,
        value: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        // Always through the scores: our softmax pass beats the fused kernel's scalar row loop.
        let softmax_with_bias = <Self as T5Kernels>::softmax_with_bias;
        composed::attention::<Self>(query, key, value, bias, Fused::Never, softmax_with_bias)
    }

    fn softmax_backward(probabilities: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let width = grad.shape().as_slice().last().copied().unwrap_or(0);
        if is_f32(&grad) && is_f32(&probabilities) && probabilities.shape() == grad.shape() {
            let probabilities = contiguous(probabilities);
            let mut grad = contiguous(grad);
            let p = probabilities
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor");
            rows::softmax_backward(values_mut(&mut grad), p, width);
            return grad;
        }
        composed::softmax_backward::<Self>(probabilities, grad)
    }

    fn gated_gelu_new_gate_grad(grad: FlexTensor, gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        let same_shapes = grad.shape() == gate.shape() && grad.shape() == up.shape();
        if same_shapes && [&grad, &gate, &up].into_iter().all(is_f32) {
            let (gate, up) = (contiguous(gate), contiguous(up));
            let mut grad = contiguous(grad);
            let (gate_values, up_values) = (
                gate.as_slice::<f32>().expect("a contiguous f32 tensor"),
                up.as_slice::<f32>().expect("a contiguous f32 tensor"),
            );
            rows::gated_gelu_new_gate_grad(values_mut(&mut grad), gate_values, up_values);
            return grad;
        }
        composed::gated_gelu_new_gate_grad::<Self>(grad, gate, up)
    }

    fn dropout_mask(like: FlexTensor, keep: f64) -> FlexTensor {
        if !is_f32(&like) {
            return composed::dropout_mask::<Self>(like, keep);
        }
        // One draw from Flex's generator (what `device.seed` sets) seeds the whole mask.
        let seed = Self::int_random(
            [1].into(),
            Distribution::Default,
            &Default::default(),
            IntDType::U64,
        );
        let seed = seed.as_slice::<u64>().expect("one u64")[0];
        let shape = like.shape();
        let mut mask = vec![0.0; shape.num_elements()];
        rows::dropout_mask(&mut mask, seed, keep);
        FlexTensor::from_data(TensorData::new(mask, shape))
    }

    #[cfg(feature = "openblas-matmul")]
    fn project(input: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let shape = input.shape();
        let d_in = shape.as_slice().last().copied().unwrap_or(0);
        let rows = shape.num_elements() / d_in.max(1);
        let flat = Self::float_reshape(input.clone(), [rows, d_in].into());
        match super::blas::matmul(&flat, &weight) {
            Some(output) => {
                let d_out = output.shape().as_slice()[1];
                let mut dims = shape.to_vec();
                *dims.last_mut().expect("at least one dimension") = d_out;
                Self::float_reshape(output, dims.into())
            }
            None => <Self as ModuleOps<Self>>::linear(input, weight, None),
        }
    }

    #[cfg(feature = "openblas-matmul")]
    fn project_weight_grad(input: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let rows_of = |tensor: &FlexTensor| {
            let shape = tensor.shape();
            let width = shape.as_slice().last().copied().unwrap_or(0);
            Self::float_reshape(
                tensor.clone(),
                [shape.num_elements() / width.max(1), width].into(),
            )
        };
        // `[d_in, rows]` as a transposed view: OpenBLAS reads it in place.
        let input_t = Self::float_swap_dims(rows_of(&input), 0, 1);
        super::blas::matmul(&input_t, &rows_of(&grad))
            .unwrap_or_else(|| <Self as ModuleOps<Self>>::linear_weight_backward(input, grad))
    }
}

fn is_f32(tensor: &FlexTensor) -> bool {
    tensor.dtype() == DType::F32
}

/// `tensor` itself when contiguous, otherwise a contiguous copy.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.is_contiguous() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The elements of a contiguous tensor, to write in place: its buffer is copied first only if
/// another tensor shares it.
fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("a contiguous tensor");
    &mut tensor.storage_mut::<f32>()[start..end]
}

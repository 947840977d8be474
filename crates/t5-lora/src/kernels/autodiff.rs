//! The kernels under autodiff. The softmax with its bias and the gated GELU run forward on the
//! inner backend's kernel and have a backward pass of their own, one or two passes over each
//! tensor (on the CPU, `rows.rs`'s). Differentiating through their composed bodies instead
//! would record every intermediate (the shifted scores, their `exp` and row sums; the GELU's
//! square, sigmoid and products) and take each one's gradient in a pass of its own. The
//! projections' backward is Burn's `linear` backward written with the extension's own products,
//! so that with the `openblas-matmul` feature the gradients' products run where the forward's
//! do. The other operations differentiate through their composed bodies.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata};
use burn::tensor::Shape;

use super::T5Kernels;
use super::composed::sum_to_shape;

impl<B: Backend + T5Kernels, C: CheckpointStrategy> T5Kernels for Autodiff<B, C> {
    fn softmax_with_bias(scores: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let bias_shape = bias.primitive().shape();
        let prepared = SoftmaxWithBias
            .prepare::<C>([scores.node(), bias.node()])
            .compute_bound()
            .stateful();
        let forward = B::softmax_with_bias(scores.into_primitive(), bias.into_primitive());
        match prepared {
            OpsKind::Tracked(prep) => prep.finish((forward.clone(), bias_shape), forward),
            OpsKind::UnTracked(prep) => prep.finish(forward),
        }
    }

    fn gated_gelu_new(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let prepared = GatedGeluNew
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful();
        let (gate, up) = (gate.into_primitive(), up.into_primitive());
        match prepared {
            // The inputs are kept for the backward pass, so the forward writes a new buffer.
            OpsKind::Tracked(prep) => {
                let state = (gate.clone(), up.clone());
                prep.finish(state, B::gated_gelu_new(gate, up))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gated_gelu_new(gate, up)),
        }
    }

    fn project(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (input_tracked, weight_tracked) = (input.is_tracked(), weight.is_tracked());
        let prepared = Project
            .prepare::<C>([input.node(), weight.node()])
            .compute_bound()
            .stateful();
        let (input, weight) = (input.into_primitive(), weight.into_primitive());
        match prepared {
            // Each operand is kept only for the other's gradient: a frozen base weight keeps no
            // activations alive.
            OpsKind::Tracked(prep) => {
                let state = (
                    weight_tracked.then(|| input.clone()),
                    input_tracked.then(|| weight.clone()),
                );
                prep.finish(state, B::project(input, weight))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::project(input, weight)),
        }
    }
}

/// The backward step of `softmax(scores + bias)`.
#[derive(Debug)]
struct SoftmaxWithBias;

impl<B: Backend + T5Kernels> Backward<B, 2> for SoftmaxWithBias {
    /// The probabilities, and the bias's shape (its gradient is summed where it broadcast).
    type State = (FloatTensor<B>, Shape);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (probabilities, bias_shape) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let scores_grad = B::softmax_backward(probabilities, grad);
        let [scores, bias] = ops.parents;
        if let Some(bias) = bias {
            grads.register::<B>(bias.id, sum_to_shape::<B>(scores_grad.clone(), &bias_shape));
        }
        if let Some(scores) = scores {
            grads.register::<B>(scores.id, scores_grad);
        }
    }
}

/// The backward step of `gelu_new(gate) ⊙ up`.
#[derive(Debug)]
struct GatedGeluNew;

impl<B: Backend + T5Kernels> Backward<B, 2> for GatedGeluNew {
    /// The gate and the up projection.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [gate_node, up_node] = ops.parents;
        if let Some(up_node) = up_node {
            grads.register::<B>(up_node.id, B::gated_gelu_new(gate.clone(), grad.clone()));
        }
        if let Some(gate_node) = gate_node {
            grads.register::<B>(gate_node.id, B::gated_gelu_new_gate_grad(grad, gate, up));
        }
    }
}

/// The backward step of `input · weight`.
#[derive(Debug)]
struct Project;

impl<B: Backend + T5Kernels> Backward<B, 2> for Project {
    /// The input when the weight takes a gradient, the weight when the input does.
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (input, weight) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let [input_node, weight_node] = ops.parents;
        if let Some(node) = weight_node {
            let input = input.expect("the input is kept when the weight is tracked");
            grads.register::<B>(node.id, B::project_weight_grad(input, grad.clone()));
        }
        if let Some(node) = input_node {
            let weight = weight.expect("the weight is kept when the input is tracked");
            // `grad · weightᵀ`: a projection by the transposed weight, a strided view.
            grads.register::<B>(node.id, B::project(grad, B::float_swap_dims(weight, 0, 1)));
        }
    }
}

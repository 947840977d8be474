//! burn-flex's f32 matrix products through OpenBLAS (the `openblas-matmul` feature): ndarray's
//! safe `general_mat_mul` over zero-copy views of the tensors' buffers, which calls
//! `cblas_sgemm` with the views' strides (a transposed operand is passed as transposed, not
//! copied). build.rs links the system's OpenBLAS.

use burn::tensor::{DType, TensorData};
use burn_flex::FlexTensor;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, linalg::general_mat_mul};

/// `lhs · rhs` for f32 matrices `[m, k]` and `[k, n]` with non-negative strides; `None` for any
/// other pair, which the caller hands to burn-flex.
pub(super) fn matmul(lhs: &FlexTensor, rhs: &FlexTensor) -> Option<FlexTensor> {
    let (a, b) = (matrix(lhs)?, matrix(rhs)?);
    let ((m, k), (k_rhs, n)) = (a.dim(), b.dim());
    if k != k_rhs {
        return None;
    }
    let mut out = vec![0.0; m * n];
    let mut c = ArrayViewMut2::from_shape((m, n), &mut out).expect("m × n elements");
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    Some(FlexTensor::from_data(TensorData::new(out, [m, n])))
}

/// A view of a two-dimensional f32 tensor's elements where they lie in its buffer.
fn matrix(tensor: &FlexTensor) -> Option<ArrayView2<'_, f32>> {
    let layout = tensor.layout();
    let (&[rows, cols], &[row_stride, col_stride]) = (layout.shape().as_slice(), layout.strides())
    else {
        return None;
    };
    if tensor.dtype() != DType::F32 {
        return None;
    }
    let strides = (
        usize::try_from(row_stride).ok()?,
        usize::try_from(col_stride).ok()?,
    );
    let values = &tensor.storage::<f32>()[layout.start_offset()..];
    ArrayView2::from_shape((rows, cols).strides(strides), values).ok()
}

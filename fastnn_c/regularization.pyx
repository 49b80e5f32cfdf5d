"""Regularization kernels: L2/L1 penalties and the max-norm constraint.

Design: the penalty value and its gradient are one fused pass over a parameter
(`regularization_backward` adds λ₂w + λ₁ sign(w) to the gradient in place and returns the
penalty it differentiates); `regularization_penalty` is the read-only pass for the loss
value. Sums are accumulated in double. `max_norm_constraint` rescales the columns of
W (in, out), i.e. each unit's incoming weights, in two row-major passes: squared column
norms into a double scratch row, then the scaling.
sign(0) = 0 (the subgradient PyTorch and Keras use) and sign(NaN) = NaN, so NaN propagates.
Contract: inputs are validated, C-contiguous (parameters flattened), one dtype; sizes are
checked here.
"""
from cython cimport floating
from libc.math cimport fabs, sqrt
from libc.stdlib cimport free, malloc


cdef inline floating _sign(floating w) noexcept nogil:
    if w > 0:
        return 1
    if w < 0:
        return -1
    return w  # 0 stays 0, NaN stays NaN


def _check_coefficients(name, double l2, double l1):
    if not (l2 >= 0 and l1 >= 0):
        raise ValueError(f"{name}: l2 and l1 must be >= 0, got {l2} and {l1}")


def regularization_penalty(const floating[::1] w,   # IN  parameter (flattened)
                           double l2, double l1):
    """Returns (λ₂/2) Σ w² + λ₁ Σ |w|."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef double sq = 0, ab = 0
    _check_coefficients("regularization_penalty", l2, l1)
    with nogil:
        for i in range(n):
            sq += <double>w[i] * w[i]
            ab += fabs(w[i])
    return 0.5 * l2 * sq + l1 * ab


def regularization_backward(const floating[::1] w,   # IN  parameter (flattened)
                            floating[::1] grad,      # IN/OUT its gradient
                            double l2, double l1):
    """grad += λ₂ w + λ₁ sign(w); returns (λ₂/2) Σ w² + λ₁ Σ |w|."""
    cdef Py_ssize_t n = w.shape[0], i
    cdef double sq = 0, ab = 0
    cdef floating a = <floating>l2, b = <floating>l1
    _check_coefficients("regularization_backward", l2, l1)
    if grad.shape[0] != n:
        raise ValueError(f"regularization_backward: w has {n} elements, grad has {grad.shape[0]}")
    with nogil:
        for i in range(n):
            sq += <double>w[i] * w[i]
            ab += fabs(w[i])
            grad[i] += a * w[i] + b * _sign(w[i])
    return 0.5 * l2 * sq + l1 * ab


def max_norm_constraint(floating[:, ::1] W,   # IN/OUT (in, out): column j = unit j's weights
                        double max_norm):
    """W[:, j] *= c / ‖W[:, j]‖₂ for every column whose norm exceeds c (Srivastava et al. 2014)."""
    cdef Py_ssize_t n_in = W.shape[0], n_out = W.shape[1], i, j
    cdef double* norms
    cdef double c = max_norm
    if not max_norm > 0:
        raise ValueError(f"max_norm_constraint: max_norm must be > 0, got {max_norm}")
    norms = <double*>malloc((n_out if n_out > 0 else 1) * sizeof(double))
    if norms == NULL:
        raise MemoryError()
    try:
        with nogil:
            for j in range(n_out):
                norms[j] = 0
            for i in range(n_in):
                for j in range(n_out):
                    norms[j] += <double>W[i, j] * W[i, j]
            for j in range(n_out):
                norms[j] = sqrt(norms[j])
                norms[j] = c / norms[j] if norms[j] > c else 1.0
            for i in range(n_in):
                for j in range(n_out):
                    W[i, j] = <floating>(W[i, j] * norms[j])
    finally:
        free(norms)

"""Regularization kernels: L2/L1 penalties and the max-norm constraint.

Design: the penalty value and its gradient come from one kernel call per parameter
(`regularization_backward` adds λ₂w + λ₁ sign(w) to the gradient in place and returns the
penalty it differentiates); `regularization_penalty` is the read-only pass for the loss
value. Sums are accumulated in double, in four interleaved partial sums. `max_norm_constraint` rescales the columns of
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


cdef void _sums(const floating* w, floating* grad, Py_ssize_t n, floating a, floating b,
                double* sums) noexcept nogil:
    """sums := (Σ w², Σ |w|) and, if grad is not NULL, grad += a w + b sign(w).

    Four independent partial sums per reduction: in strict IEEE order one running sum is a
    chain of dependent additions; four break the chain (and let the compiler pack them).
    The update is a second loop over the same, cache-resident, block: measured 3-10x faster
    in float32 than updating inside the reduction loop (784×100 weights, noisy machine).
    """
    cdef double sq[4]
    cdef double ab[4]
    cdef Py_ssize_t i, k, m = n - n % 4
    for k in range(4):
        sq[k] = 0
        ab[k] = 0
    for i in range(0, m, 4):
        for k in range(4):
            sq[k] += <double>w[i + k] * w[i + k]
            ab[k] += fabs(w[i + k])
    for i in range(m, n):
        sq[0] += <double>w[i] * w[i]
        ab[0] += fabs(w[i])
    sums[0] = (sq[0] + sq[1]) + (sq[2] + sq[3])
    sums[1] = (ab[0] + ab[1]) + (ab[2] + ab[3])
    if grad != NULL:
        for i in range(n):
            grad[i] += a * w[i] + b * _sign(w[i])


def _check_coefficients(name, double l2, double l1):
    if not (l2 >= 0 and l1 >= 0):
        raise ValueError(f"{name}: l2 and l1 must be >= 0, got {l2} and {l1}")


def regularization_penalty(const floating[::1] w,   # IN  parameter (flattened)
                           double l2, double l1):
    """Returns (λ₂/2) Σ w² + λ₁ Σ |w|."""
    cdef double sums[2]
    _check_coefficients("regularization_penalty", l2, l1)
    with nogil:
        _sums(&w[0] if w.shape[0] > 0 else NULL, <floating*>NULL, w.shape[0], 0, 0, sums)
    return 0.5 * l2 * sums[0] + l1 * sums[1]


def regularization_backward(const floating[::1] w,   # IN  parameter (flattened)
                            floating[::1] grad,      # IN/OUT its gradient
                            double l2, double l1):
    """grad += λ₂ w + λ₁ sign(w); returns (λ₂/2) Σ w² + λ₁ Σ |w|."""
    cdef Py_ssize_t n = w.shape[0]
    cdef double sums[2]
    _check_coefficients("regularization_backward", l2, l1)
    if grad.shape[0] != n:
        raise ValueError(f"regularization_backward: w has {n} elements, grad has {grad.shape[0]}")
    with nogil:
        _sums(&w[0] if n > 0 else NULL, &grad[0] if n > 0 else NULL, n, <floating>l2,
              <floating>l1, sums)
    return 0.5 * l2 * sums[0] + l1 * sums[1]


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

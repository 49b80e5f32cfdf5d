"""Regularization kernels: L2/L1 penalties and the max-norm constraint.

Design: the penalty value and its gradient come from one kernel call per parameter
(`regularization_backward` adds λ₂w + λ₁ sign(w) to the gradient in place and returns the
penalty it differentiates); `regularization_penalty` is the read-only pass for the loss
value. The sums are `_math.pxd`'s `sum_squares_run` (Σ w², and Σ |w| in the same pass
when λ₁ > 0); the gradient update is a second loop over the same, cache-resident, values,
since a reduction loop that also stores runs slower.
`max_norm_constraint` rescales the columns of W (in, out), i.e. each unit's incoming
weights, in two row-major passes: squared column norms into a double scratch row, then the
scaling.
sign(0) = 0 (the subgradient PyTorch and Keras use) and sign(NaN) = NaN, so NaN propagates.
Parameters of any shape are read as one run of values.
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

from fastnn_c._arrays cimport array_data, dim, flat_data, float_type
from fastnn_c._math cimport sum_squares_run

cnp.import_array()


cdef inline floating _sign(floating w) noexcept nogil:
    if w > 0:
        return 1
    if w < 0:
        return -1
    return w  # 0 stays 0, NaN stays NaN


cdef double _penalty(floating zero, const void* w_, void* grad_, Py_ssize_t n, double l2,
                     double l1) noexcept nogil:
    """(λ₂/2) Σ w² + λ₁ Σ |w|, and grad += λ₂ w + λ₁ sign(w) unless grad is NULL."""
    cdef const floating* w = <const floating*>w_
    cdef floating* grad = <floating*>grad_
    cdef floating a = <floating>l2, b = <floating>l1
    cdef double squares, absolutes = 0
    cdef Py_ssize_t i
    if l1 != 0:
        squares = sum_squares_run(w, <floating*>NULL, <floating*>NULL, &absolutes, n)
    else:
        squares = sum_squares_run(w, <floating*>NULL, <floating*>NULL, NULL, n)
    if grad != NULL:
        for i in range(n):
            grad[i] += a * w[i] + b * _sign(w[i])
    return 0.5 * l2 * squares + l1 * absolutes


cdef void _max_norm(floating zero, void* W_, Py_ssize_t n_in, Py_ssize_t n_out, double c,
                    double* norms) noexcept nogil:
    """Scale each column of W whose norm exceeds c onto the ball; ``norms`` is n_out doubles."""
    cdef floating* W = <floating*>W_
    cdef Py_ssize_t i, j
    for j in range(n_out):
        norms[j] = 0
    for i in range(n_in):
        for j in range(n_out):
            norms[j] += <double>W[i * n_out + j] * W[i * n_out + j]
    for j in range(n_out):
        norms[j] = sqrt(norms[j])
        norms[j] = c / norms[j] if norms[j] > c else 1.0
    for i in range(n_in):
        for j in range(n_out):
            W[i * n_out + j] = <floating>(W[i * n_out + j] * norms[j])


cdef int _check_coefficients(str kernel, double l2, double l1) except -1:
    if not (l2 >= 0 and l1 >= 0):
        raise ValueError(f"{kernel}: l2 and l1 must be >= 0, got {l2} and {l1}")
    return 0


def regularization_penalty(w, double l2, double l1):
    """Returns (λ₂/2) Σ w² + λ₁ Σ |w|.  ``w`` a parameter, any shape."""
    cdef str kernel = "regularization_penalty"
    cdef int t = float_type(w, kernel, "w")
    cdef Py_ssize_t n
    cdef void* data = flat_data(w, kernel, "w", t, None, &n)
    cdef double value
    _check_coefficients(kernel, l2, l1)
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _penalty(<float>0, data, NULL, n, l2, l1)
        else:
            value = _penalty(<double>0, data, NULL, n, l2, l1)
    return value


def regularization_backward(w, grad, double l2, double l1):
    """grad += λ₂ w + λ₁ sign(w); returns (λ₂/2) Σ w² + λ₁ Σ |w|.

    ``w`` a parameter, any shape; ``grad`` (its gradient, updated in place) the same shape.
    """
    cdef str kernel = "regularization_backward"
    cdef int t = float_type(w, kernel, "w")
    cdef Py_ssize_t n
    cdef void* data = flat_data(w, kernel, "w", t, None, &n)
    cdef void* g = flat_data(grad, kernel, "grad", t, w, &n, writable=True)
    cdef double value
    _check_coefficients(kernel, l2, l1)
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _penalty(<float>0, data, g, n, l2, l1)
        else:
            value = _penalty(<double>0, data, g, n, l2, l1)
    return value


def max_norm_constraint(W, double max_norm):
    """W[:, j] *= c / ‖W[:, j]‖₂ for every column whose norm exceeds c (Srivastava et al. 2014).

    ``W`` (in, out), updated in place: column j holds unit j's incoming weights.
    """
    cdef str kernel = "max_norm_constraint"
    cdef int t = float_type(W, kernel, "W")
    cdef void* w = array_data(W, kernel, "W", t, 2, writable=True)
    cdef Py_ssize_t n_in = dim(W, 0), n_out = dim(W, 1)
    cdef double* norms
    if not max_norm > 0:
        raise ValueError(f"{kernel}: max_norm must be > 0, got {max_norm}")
    norms = <double*>malloc((n_out if n_out > 0 else 1) * sizeof(double))
    if norms == NULL:
        raise MemoryError()
    with nogil:
        if t == cnp.NPY_FLOAT:
            _max_norm(<float>0, w, n_in, n_out, max_norm, norms)
        else:
            _max_norm(<double>0, w, n_in, n_out, max_norm, norms)
    free(norms)

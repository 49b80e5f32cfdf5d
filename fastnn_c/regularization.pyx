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
Convention (fastnn_c/_kernel.pyx): each kernel takes typed memoryviews and is published as a
``Kernel``; the gradient and max-norm loops index them (``grad[i]``, ``W[i, j]``), so a
``FASTNN_DEBUG_CYTHON=1`` build bounds-checks them, and ``sum_squares_run`` is handed the run
as ``&w[0]``.
"""
from cython cimport floating
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

from fastnn_c._arrays cimport check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport sum_squares_run


cdef inline floating _sign(floating w) noexcept nogil:
    if w > 0:
        return 1
    if w < 0:
        return -1
    return w  # 0 stays 0, NaN stays NaN


cdef double _penalty_sums(const floating[::1] w, double l1, double* absolutes) noexcept nogil:
    """Σ w², and absolutes[0] := Σ |w| when λ₁ > 0 (``sum_squares_run``; +0 for no values)."""
    cdef Py_ssize_t n = w.shape[0]
    if n == 0:
        return 0.0  # what sum_squares_run gives: its partial sums start at +0
    if l1 != 0:
        return sum_squares_run(&w[0], <floating*>NULL, <floating*>NULL, absolutes, n)
    return sum_squares_run(&w[0], <floating*>NULL, <floating*>NULL, NULL, n)


cdef int _check_coefficients(str kernel, double l2, double l1) except -1:
    if not (l2 >= 0 and l1 >= 0):
        raise ValueError(f"{kernel}: l2 and l1 must be >= 0, got {l2} and {l1}")
    return 0


def _regularization_penalty(const floating[::1] w,  # IN, a parameter of any shape, as one run
                            double l2, double l1):
    """Returns (λ₂/2) Σ w² + λ₁ Σ |w|.  ``w`` a parameter, any shape."""
    cdef double squares, absolutes = 0
    _check_coefficients("regularization_penalty", l2, l1)
    with nogil:
        squares = _penalty_sums(w, l1, &absolutes)
    return 0.5 * l2 * squares + l1 * absolutes


def _regularization_backward(const floating[::1] w,  # IN, a parameter of any shape, as one run
                             floating[::1] grad,     # IN/OUT like w, updated in place
                             double l2, double l1):
    """grad += λ₂ w + λ₁ sign(w); returns (λ₂/2) Σ w² + λ₁ Σ |w|.

    ``w`` a parameter, any shape; ``grad`` (its gradient, updated in place) the same shape.
    """
    cdef Py_ssize_t i, n = w.shape[0]
    cdef floating a = <floating>l2, b = <floating>l1
    cdef double squares, absolutes = 0
    check_vector("regularization_backward", "grad", grad.shape[0], n)
    _check_coefficients("regularization_backward", l2, l1)
    with nogil:
        squares = _penalty_sums(w, l1, &absolutes)
        for i in range(n):
            grad[i] += a * w[i] + b * _sign(w[i])
    return 0.5 * l2 * squares + l1 * absolutes


def _max_norm_constraint(floating[:, ::1] W,  # IN/OUT (in, out), updated in place
                         double max_norm):
    """W[:, j] *= c / ‖W[:, j]‖₂ for every column whose norm exceeds c (Srivastava et al. 2014).

    ``W`` (in, out), updated in place: column j holds unit j's incoming weights.
    """
    cdef Py_ssize_t i, j, n_in = W.shape[0], n_out = W.shape[1]
    cdef double c = max_norm
    cdef double* norms
    if not max_norm > 0:
        raise ValueError(f"max_norm_constraint: max_norm must be > 0, got {max_norm}")
    norms = <double*>malloc((n_out if n_out > 0 else 1) * sizeof(double))
    if norms == NULL:
        raise MemoryError()
    with nogil:
        # Squared column norms into a double scratch row, then the scaling: each column whose
        # norm exceeds c onto the ball.
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
    free(norms)


regularization_penalty = Kernel(_regularization_penalty, "regularization_penalty", "w:*")
regularization_backward = Kernel(_regularization_backward, "regularization_backward", "w:*",
                                 "grad:*!")
max_norm_constraint = Kernel(_max_norm_constraint, "max_norm_constraint", "W:2!")

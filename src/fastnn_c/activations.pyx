"""Activation kernels, forward and backward, one fused pass over memory each.

Design: the per-activation loops live in _activation.pxd (`activation_forward_run`,
`activation_backward_run`; the switch sits outside each loop so it vectorises), shared with
the fused dense+activation kernels; these functions split the values into chunks run by
`prange` when `n_threads > 1`.
Every derivative is computed from the *output* A, so the pre-activation need not be
kept and the forward may run in place (A aliasing Z, dZ aliasing dA).
Arrays of any shape are read as one run of values; all of a call's arrays have one shape.
NaN propagates (ReLU/hardtanh compare so that NaN falls through).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange

from fastnn_c._activation cimport (ELU, HARDTANH, IDENTITY, LEAKY_RELU, RELU, SELU, SIGMOID, SOFTPLUS,
                                   SOFTSIGN, TANH, activation_backward_run, activation_forward_run)
from fastnn_c._arrays cimport flat_data, float_type

cnp.import_array()

KINDS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "hardtanh": HARDTANH,
         "softsign": SOFTSIGN, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
         "selu": SELU, "softplus": SOFTPLUS}

cdef enum:
    CHUNK = 16384  # values per prange task


cdef void _forward(floating zero, int kind, const void* Z_, void* A_, Py_ssize_t n,
                   double alpha, int n_threads) noexcept nogil:
    cdef const floating* Z = <const floating*>Z_
    cdef floating* A = <floating*>A_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        activation_forward_run(kind, Z, A, n, <floating>alpha)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        activation_forward_run(kind, Z + start, A + start, min(CHUNK, n - start), <floating>alpha)


cdef void _backward(floating zero, int kind, const void* A_, const void* dA_, void* dZ_,
                    Py_ssize_t n, double alpha, int n_threads) noexcept nogil:
    cdef const floating* A = <const floating*>A_
    cdef const floating* dA = <const floating*>dA_
    cdef floating* dZ = <floating*>dZ_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        activation_backward_run(kind, A, dA, dZ, n, <floating>alpha)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        activation_backward_run(kind, A + start, dA + start, dZ + start, min(CHUNK, n - start),
                                <floating>alpha)


cdef int _check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    return 0


def activation_forward(int kind, Z, A, double alpha=0.0, int n_threads=1):
    """A := f(Z) elementwise; `alpha` is the slope (leaky ReLU) or the scale (ELU).

    ``Z`` any shape; ``A`` the same shape (may be Z itself).
    """
    cdef str kernel = "activation_forward"
    cdef int t = float_type(Z, kernel, "Z")
    cdef Py_ssize_t n
    cdef void* z = flat_data(Z, kernel, "Z", t, None, &n)
    cdef void* a = flat_data(A, kernel, "A", t, Z, &n, writable=True)
    _check_kind(kind, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward(<float>0, kind, z, a, n, alpha, n_threads)
        else:
            _forward(<double>0, kind, z, a, n, alpha, n_threads)


def activation_backward(int kind, A, dA, dZ, double alpha=0.0, int n_threads=1):
    """dZ := dA * f'(Z), with f' written in terms of A = f(Z).

    ``A`` (the forward output) any shape; ``dA`` and ``dZ`` the same shape (dZ may be dA).
    """
    cdef str kernel = "activation_backward"
    cdef int t = float_type(A, kernel, "A")
    cdef Py_ssize_t n
    cdef void* a = flat_data(A, kernel, "A", t, None, &n)
    cdef void* da = flat_data(dA, kernel, "dA", t, A, &n)
    cdef void* dz = flat_data(dZ, kernel, "dZ", t, A, &n, writable=True)
    _check_kind(kind, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _backward(<float>0, kind, a, da, dz, n, alpha, n_threads)
        else:
            _backward(<double>0, kind, a, da, dz, n, alpha, n_threads)

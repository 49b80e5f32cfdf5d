"""Activation kernels, forward and backward, one fused pass over memory each.

Design: a serial per-activation loop over a contiguous chunk (`_forward_chunk`,
`_backward_chunk`, the switch sits outside the loop so each loop vectorises); the public
functions split the flat array into chunks run by `prange` when `n_threads > 1`.
Every derivative is computed from the *output* A, so the pre-activation need not be
kept and the forward may run in place (A aliasing Z).
Contract: inputs are validated, C-contiguous (flattened), one dtype; sizes are checked here.
NaN propagates (ReLU/hardtanh compare so that NaN falls through).
"""
from cython cimport floating
from cython.parallel cimport prange

from fastnn_c._math cimport fabs_, fexp, fexpm1, ftanh, sigmoid, softplus

cdef enum Kind:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    HARDTANH = 3
    SOFTSIGN = 4
    RELU = 5
    LEAKY_RELU = 6
    ELU = 7
    SELU = 8
    SOFTPLUS = 9

KINDS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "hardtanh": HARDTANH,
         "softsign": SOFTSIGN, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
         "selu": SELU, "softplus": SOFTPLUS}

# Klambauer et al. 2017, eq. 14.
cdef double SELU_LAMBDA = 1.0507009873554804934193349852946
cdef double SELU_ALPHA = 1.6732632423543772848170429916717
cdef Py_ssize_t CHUNK = 16384


cdef void _forward_chunk(int kind, const floating* z, floating* a, Py_ssize_t n,
                         floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lam = <floating>SELU_LAMBDA, lam_alpha = <floating>(SELU_LAMBDA * SELU_ALPHA)
    if kind == IDENTITY:
        for i in range(n):
            a[i] = z[i]
    elif kind == SIGMOID:
        for i in range(n):
            a[i] = sigmoid(z[i])
    elif kind == TANH:
        for i in range(n):
            a[i] = ftanh(z[i])
    elif kind == HARDTANH:
        for i in range(n):
            a[i] = -1 if z[i] < -1 else (1 if z[i] > 1 else z[i])
    elif kind == SOFTSIGN:
        for i in range(n):
            a[i] = z[i] / (1 + fabs_(z[i]))
    elif kind == RELU:
        for i in range(n):
            a[i] = 0 if z[i] < 0 else z[i]
    elif kind == LEAKY_RELU:
        for i in range(n):
            a[i] = alpha * z[i] if z[i] < 0 else z[i]
    elif kind == ELU:
        for i in range(n):
            a[i] = alpha * fexpm1(z[i]) if z[i] < 0 else z[i]
    elif kind == SELU:
        for i in range(n):
            a[i] = lam_alpha * fexpm1(z[i]) if z[i] < 0 else lam * z[i]
    elif kind == SOFTPLUS:
        for i in range(n):
            a[i] = softplus(z[i])


cdef void _backward_chunk(int kind, const floating* a, const floating* da, floating* dz,
                          Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lam = <floating>SELU_LAMBDA, lam_alpha = <floating>(SELU_LAMBDA * SELU_ALPHA)
    if kind == IDENTITY:
        for i in range(n):
            dz[i] = da[i]
    elif kind == SIGMOID:
        for i in range(n):
            dz[i] = da[i] * a[i] * (1 - a[i])
    elif kind == TANH:
        for i in range(n):
            dz[i] = da[i] * (1 - a[i] * a[i])
    elif kind == HARDTANH:
        for i in range(n):
            dz[i] = da[i] if -1 < a[i] < 1 else 0
    elif kind == SOFTSIGN:
        for i in range(n):
            dz[i] = da[i] * (1 - fabs_(a[i])) * (1 - fabs_(a[i]))
    elif kind == RELU:
        for i in range(n):
            dz[i] = da[i] if a[i] > 0 else 0
    elif kind == LEAKY_RELU:
        for i in range(n):
            dz[i] = da[i] if a[i] > 0 else alpha * da[i]
    elif kind == ELU:
        for i in range(n):
            dz[i] = da[i] if a[i] > 0 else da[i] * (a[i] + alpha)
    elif kind == SELU:
        for i in range(n):
            dz[i] = lam * da[i] if a[i] > 0 else da[i] * (a[i] + lam_alpha)
    elif kind == SOFTPLUS:
        for i in range(n):
            dz[i] = -da[i] * fexpm1(-a[i])


def activation_forward(int kind,
                       const floating[::1] Z,   # IN  pre-activation (flattened)
                       floating[::1] A,         # OUT may be Z itself
                       double alpha=0.0, int n_threads=1):
    """A := f(Z) elementwise; `alpha` is the slope (leaky ReLU) or the scale (ELU)."""
    cdef Py_ssize_t n = Z.shape[0], c, n_chunks, start
    if A.shape[0] != n:
        raise ValueError(f"activation_forward: Z has {n} elements, A has {A.shape[0]}")
    if not 0 <= kind <= SOFTPLUS:
        raise ValueError(f"activation_forward: unknown activation code {kind}")
    if n == 0:
        return
    if n_threads <= 1 or n <= CHUNK:
        with nogil:
            _forward_chunk(kind, &Z[0], &A[0], n, <floating>alpha)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _forward_chunk(kind, &Z[start], &A[start], min(CHUNK, n - start), <floating>alpha)


def activation_backward(int kind,
                        const floating[::1] A,    # IN  forward output (flattened)
                        const floating[::1] dA,   # IN  upstream gradient
                        floating[::1] dZ,         # OUT may be dA itself
                        double alpha=0.0, int n_threads=1):
    """dZ := dA * f'(Z), with f' written in terms of A = f(Z)."""
    cdef Py_ssize_t n = A.shape[0], c, n_chunks, start
    if dA.shape[0] != n or dZ.shape[0] != n:
        raise ValueError(f"activation_backward: A, dA and dZ have {n}, {dA.shape[0]} and "
                         f"{dZ.shape[0]} elements")
    if not 0 <= kind <= SOFTPLUS:
        raise ValueError(f"activation_backward: unknown activation code {kind}")
    if n == 0:
        return
    if n_threads <= 1 or n <= CHUNK:
        with nogil:
            _backward_chunk(kind, &A[0], &dA[0], &dZ[0], n, <floating>alpha)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _backward_chunk(kind, &A[start], &dA[start], &dZ[start], min(CHUNK, n - start),
                        <floating>alpha)

"""Activation kernels, forward and backward, one fused pass over memory each.

Design: the per-activation loops live in _activation.pxd (`activation_forward_run`,
`activation_backward_run`; the switch sits outside each loop so it vectorises), shared with
the fused dense+activation kernels; these functions split the flat array into chunks run
by `prange` when `n_threads > 1`.
Every derivative is computed from the *output* A, so the pre-activation need not be
kept and the forward may run in place (A aliasing Z).
Contract: inputs are validated, C-contiguous (flattened), one dtype; sizes are checked here.
NaN propagates (ReLU/hardtanh compare so that NaN falls through).
"""
from cython cimport floating
from cython.parallel cimport prange

from fastnn_c._activation cimport (ELU, HARDTANH, IDENTITY, LEAKY_RELU, RELU, SELU, SIGMOID, SOFTPLUS,
                                   SOFTSIGN, TANH, activation_backward_run, activation_forward_run)

KINDS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "hardtanh": HARDTANH,
         "softsign": SOFTSIGN, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
         "selu": SELU, "softplus": SOFTPLUS}

cdef Py_ssize_t CHUNK = 16384


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
            activation_forward_run(kind, &Z[0], &A[0], n, <floating>alpha)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        activation_forward_run(kind, &Z[start], &A[start], min(CHUNK, n - start), <floating>alpha)


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
            activation_backward_run(kind, &A[0], &dA[0], &dZ[0], n, <floating>alpha)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        activation_backward_run(kind, &A[start], &dA[start], &dZ[start], min(CHUNK, n - start),
                        <floating>alpha)

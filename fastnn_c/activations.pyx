"""Activation kernels, forward and backward, one fused pass over memory each.

Design: the per-activation loops live in _activation.pxd (`activation_forward_run`,
`activation_backward_run`; the switch sits outside each loop so it vectorises), shared with
the fused dense+activation kernels; these functions split the values into chunks run by
`prange` when `n_threads > 1`.
Every derivative is computed from the *output* A, so the pre-activation need not be
kept and the forward may run in place (A aliasing Z, dZ aliasing dA).
Arrays of any shape are read as one run of values; all of a call's arrays have one shape.
NaN propagates (ReLU/hardtanh compare so that NaN falls through).

PReLU (He et al. 2015) has a learned slope, so its backward reads the input Z and also
returns dα, a reduction over the batch (over every value when the slope is shared).
RReLU (Xu et al. 2015) draws its training-mode slopes from the counter-based stream that
dropout uses (_math.pxd): element i of call `counter` gets r_i = lower + (upper − lower) u_i
with u_i from mix64(stream_base(seed, counter) + (i + 1) φ), so backward draws the same
slopes again instead of storing them, and a frozen stream is just a repeated counter.
Its evaluation mode is leaky ReLU with slope (lower + upper)/2 (`activation_forward`).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

from fastnn_c._activation cimport (ELU, HARDTANH, IDENTITY, LEAKY_RELU, RELU, SELU, SIGMOID, SOFTPLUS,
                                   SOFTSIGN, TANH, activation_backward_run, activation_forward_run,
                                   prelu_backward_row, prelu_backward_run, prelu_forward_row,
                                   prelu_forward_run, rrelu_backward_run, rrelu_forward_run)
from fastnn_c._arrays cimport check_matrix, check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport stream_base

KINDS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "hardtanh": HARDTANH,
         "softsign": SOFTSIGN, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
         "selu": SELU, "softplus": SOFTPLUS}

cdef enum:
    CHUNK = 16384  # values per prange task


cdef int check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    return 0


def _activation_forward(int kind,
                        const floating[::1] Z,  # IN
                        floating[::1] A,        # OUT, may be Z
                        double alpha=0.0, int n_threads=1):
    """A := f(Z) elementwise; `alpha` is the slope (leaky ReLU) or the scale (ELU)."""
    cdef Py_ssize_t c, start, n = Z.shape[0]
    check_vector("activation_forward", "A", A.shape[0], n)
    check_kind(kind, "activation_forward")
    if n == 0:
        return
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            activation_forward_run(kind, &Z[0], &A[0], n, <floating>alpha)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                activation_forward_run(kind, &Z[start], &A[start], min(CHUNK, n - start),
                                       <floating>alpha)


def _activation_backward(int kind,
                         const floating[::1] A,   # IN, the forward output
                         const floating[::1] dA,  # IN
                         floating[::1] dZ,        # OUT, may be dA
                         double alpha=0.0, int n_threads=1):
    """dZ := dA * f'(Z), with f' written in terms of A = f(Z)."""
    cdef Py_ssize_t c, start, n = A.shape[0]
    check_vector("activation_backward", "dA", dA.shape[0], n)
    check_vector("activation_backward", "dZ", dZ.shape[0], n)
    check_kind(kind, "activation_backward")
    if n == 0:
        return
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            activation_backward_run(kind, &A[0], &dA[0], &dZ[0], n, <floating>alpha)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                activation_backward_run(kind, &A[start], &dA[start], &dZ[start],
                                        min(CHUNK, n - start), <floating>alpha)


activation_forward = Kernel(_activation_forward, "activation_forward", "kind", "Z:*", "A:*!")
activation_backward = Kernel(_activation_backward, "activation_backward", "kind", "A:*", "dA:*",
                             "dZ:*!")


# -- PReLU --------------------------------------------------------------------------------

cdef int check_slopes(str kernel, Py_ssize_t k, Py_ssize_t m) except -1:
    """alpha holds one shared slope or one per unit."""
    if k != 1 and k != m:
        raise ValueError(f"{kernel}: alpha has shape {(k,)}, expected (1,) or ({m},)")
    return 0


def _prelu_forward(const floating[:, ::1] Z,    # IN (batch, units)
                   const floating[::1] alpha,   # IN (1,) shared, or (units,)
                   floating[:, ::1] A):         # OUT like Z, may be Z
    """A := Z where Z > 0, else α Z (α broadcast over the rows)."""
    cdef Py_ssize_t i, n = Z.shape[0], m = Z.shape[1]
    check_slopes("prelu_forward", alpha.shape[0], m)
    check_matrix("prelu_forward", "A", A.shape[0], A.shape[1], n, m)
    if n == 0 or m == 0:
        return
    with nogil:
        if alpha.shape[0] == 1:
            prelu_forward_run(&Z[0, 0], &A[0, 0], n * m, alpha[0])
        else:
            for i in range(n):
                prelu_forward_row(&Z[i, 0], &A[i, 0], m, &alpha[0])


def _prelu_backward(const floating[:, ::1] Z,   # IN (batch, units), the forward's input
                    const floating[::1] alpha,  # IN (1,) or (units,)
                    const floating[:, ::1] dA,  # IN like Z
                    floating[:, ::1] dZ,        # OUT like Z, may be dA
                    floating[::1] dalpha):      # OUT like alpha (overwritten)
    """dZ := dA where Z > 0, else α dA;  dα := Σ dA Z [Z <= 0] over the rows (and over the
    units when α is shared), accumulated in double."""
    cdef str kernel = "prelu_backward"
    cdef Py_ssize_t i, j, n = Z.shape[0], m = Z.shape[1], k = alpha.shape[0]
    check_slopes(kernel, k, m)
    check_matrix(kernel, "dA", dA.shape[0], dA.shape[1], n, m)
    check_matrix(kernel, "dZ", dZ.shape[0], dZ.shape[1], n, m)
    check_vector(kernel, "dalpha", dalpha.shape[0], k)
    if n == 0 or m == 0:
        for j in range(k):
            dalpha[j] = 0
        return
    if k == 1:
        with nogil:
            dalpha[0] = <floating>prelu_backward_run(&Z[0, 0], &dA[0, 0], &dZ[0, 0], n * m,
                                                     alpha[0])
        return
    cdef double* sums = <double*>calloc(m, sizeof(double))
    if sums == NULL:
        raise MemoryError(f"{kernel}: no memory for {m} partial sums")
    with nogil:
        for i in range(n):
            prelu_backward_row(&Z[i, 0], &dA[i, 0], &dZ[i, 0], m, &alpha[0], sums)
        for j in range(m):
            dalpha[j] = <floating>sums[j]
    free(sums)


prelu_forward = Kernel(_prelu_forward, "prelu_forward", "Z:2", "alpha:1", "A:2!")
prelu_backward = Kernel(_prelu_backward, "prelu_backward", "Z:2", "alpha:1", "dA:2", "dZ:2!",
                        "dalpha:1!")


# -- RReLU --------------------------------------------------------------------------------

cdef int check_bounds(str kernel, double lower, double upper) except -1:
    if not (isfinite(lower) and isfinite(upper) and 0 <= lower <= upper):
        raise ValueError(f"{kernel}: needs 0 <= lower <= upper (finite), got lower={lower}, "
                         f"upper={upper}")
    return 0


def _rrelu_forward(const floating[::1] Z,  # IN
                   floating[::1] A,        # OUT, may be Z
                   double lower, double upper, uint64_t seed, uint64_t counter,
                   int n_threads=1):
    """A := Z where Z > 0, else r Z with r_i = lower + (upper − lower) u_i, u_i = U(seed,
    counter, i) ∈ [0, 1): RReLU's training-mode forward."""
    cdef Py_ssize_t c, start, n = Z.shape[0]
    check_vector("rrelu_forward", "A", A.shape[0], n)
    check_bounds("rrelu_forward", lower, upper)
    cdef uint64_t base = stream_base(seed, counter)
    cdef floating low = <floating>lower, width = <floating>(upper - lower)
    if n == 0:
        return
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            rrelu_forward_run(&Z[0], &A[0], 0, n, base, low, width)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                rrelu_forward_run(&Z[start], &A[start], start, min(CHUNK, n - start), base, low,
                                  width)


def _rrelu_backward(const floating[::1] A,   # IN, the forward output
                    const floating[::1] dA,  # IN
                    floating[::1] dZ,        # OUT, may be dA
                    double lower, double upper, uint64_t seed, uint64_t counter,
                    int n_threads=1):
    """dZ := dA where A > 0, else r dA, with the r of ``rrelu_forward(.., seed, counter)``."""
    cdef Py_ssize_t c, start, n = A.shape[0]
    check_vector("rrelu_backward", "dA", dA.shape[0], n)
    check_vector("rrelu_backward", "dZ", dZ.shape[0], n)
    check_bounds("rrelu_backward", lower, upper)
    cdef uint64_t base = stream_base(seed, counter)
    cdef floating low = <floating>lower, width = <floating>(upper - lower)
    if n == 0:
        return
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            rrelu_backward_run(&A[0], &dA[0], &dZ[0], 0, n, base, low, width)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                rrelu_backward_run(&A[start], &dA[start], &dZ[start], start,
                                   min(CHUNK, n - start), base, low, width)


rrelu_forward = Kernel(_rrelu_forward, "rrelu_forward", "Z:*", "A:*!")
rrelu_backward = Kernel(_rrelu_backward, "rrelu_backward", "A:*", "dA:*", "dZ:*!")

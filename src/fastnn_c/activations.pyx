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
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

from fastnn_c._activation cimport (ELU, HARDTANH, IDENTITY, LEAKY_RELU, RELU, SELU, SIGMOID, SOFTPLUS,
                                   SOFTSIGN, TANH, activation_backward_run, activation_forward_run,
                                   prelu_backward_row, prelu_backward_run, prelu_forward_row,
                                   prelu_forward_run, rrelu_backward_run, rrelu_forward_run)
from fastnn_c._arrays cimport array_data, dim, flat_data, float_type, matrix_data, vector_data
from fastnn_c._math cimport stream_base

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


# -- PReLU --------------------------------------------------------------------------------

cdef void _prelu_forward(floating zero, const void* Z_, const void* alpha_, void* A_,
                         Py_ssize_t n, Py_ssize_t m, bint shared) noexcept nogil:
    cdef const floating* Z = <const floating*>Z_
    cdef const floating* alpha = <const floating*>alpha_
    cdef floating* A = <floating*>A_
    cdef Py_ssize_t i
    if shared:
        prelu_forward_run(Z, A, n * m, alpha[0])
        return
    for i in range(n):
        prelu_forward_row(Z + i * m, A + i * m, m, alpha)


cdef void _prelu_backward(floating zero, const void* Z_, const void* alpha_, const void* dA_,
                          void* dZ_, void* dalpha_, double* scratch, Py_ssize_t n, Py_ssize_t m,
                          bint shared) noexcept nogil:
    cdef const floating* Z = <const floating*>Z_
    cdef const floating* alpha = <const floating*>alpha_
    cdef const floating* dA = <const floating*>dA_
    cdef floating* dZ = <floating*>dZ_
    cdef floating* dalpha = <floating*>dalpha_
    cdef Py_ssize_t i, j
    if shared:
        dalpha[0] = <floating>prelu_backward_run(Z, dA, dZ, n * m, alpha[0])
        return
    for i in range(n):
        prelu_backward_row(Z + i * m, dA + i * m, dZ + i * m, m, alpha, scratch)
    for j in range(m):
        dalpha[j] = <floating>scratch[j]


cdef void* _prelu_slopes(object alpha, str kernel, int t, Py_ssize_t m,
                         Py_ssize_t* k) except NULL:
    """``array_data`` for ``alpha`` of shape (1,) (one shared slope) or (m,) (one per unit);
    k[0] := its length."""
    cdef void* data = array_data(alpha, kernel, "alpha", t, 1)
    k[0] = dim(alpha, 0)
    if k[0] != 1 and k[0] != m:
        raise ValueError(f"{kernel}: alpha has shape {alpha.shape}, expected (1,) or ({m},)")
    return data


def prelu_forward(Z, alpha, A):
    """A := Z where Z > 0, else α Z (α broadcast over the rows).

    ``Z`` (batch, units); ``alpha`` (1,) (one shared slope) or (units,); ``A`` like Z (may be Z).
    """
    cdef str kernel = "prelu_forward"
    cdef int t = float_type(Z, kernel, "Z")
    cdef void* z = array_data(Z, kernel, "Z", t, 2)
    cdef Py_ssize_t n = dim(Z, 0), m = dim(Z, 1), k
    cdef void* al = _prelu_slopes(alpha, kernel, t, m, &k)
    cdef void* a = matrix_data(A, kernel, "A", t, n, m, writable=True)
    cdef bint shared = k == 1
    with nogil:
        if t == cnp.NPY_FLOAT:
            _prelu_forward(<float>0, z, al, a, n, m, shared)
        else:
            _prelu_forward(<double>0, z, al, a, n, m, shared)


def prelu_backward(Z, alpha, dA, dZ, dalpha):
    """dZ := dA where Z > 0, else α dA;  dα := Σ dA Z [Z <= 0] over the rows (and over the
    units when α is shared), accumulated in double.

    ``Z`` (batch, units), the forward's input; ``alpha`` (1,) or (units,); ``dA`` and ``dZ``
    like Z (dZ may be dA); ``dalpha`` like alpha (overwritten).
    """
    cdef str kernel = "prelu_backward"
    cdef int t = float_type(Z, kernel, "Z")
    cdef void* z = array_data(Z, kernel, "Z", t, 2)
    cdef Py_ssize_t n = dim(Z, 0), m = dim(Z, 1), k
    cdef void* al = _prelu_slopes(alpha, kernel, t, m, &k)
    cdef void* da = matrix_data(dA, kernel, "dA", t, n, m)
    cdef void* dz = matrix_data(dZ, kernel, "dZ", t, n, m, writable=True)
    cdef void* dal = vector_data(dalpha, kernel, "dalpha", t, k, writable=True)
    cdef bint shared = k == 1
    cdef double* scratch = NULL
    if not shared:
        scratch = <double*>calloc(m + 1, sizeof(double))  # + 1: calloc(0) may return NULL
        if scratch == NULL:
            raise MemoryError(f"{kernel}: no memory for {m} partial sums")
    try:
        with nogil:
            if t == cnp.NPY_FLOAT:
                _prelu_backward(<float>0, z, al, da, dz, dal, scratch, n, m, shared)
            else:
                _prelu_backward(<double>0, z, al, da, dz, dal, scratch, n, m, shared)
    finally:
        free(scratch)


# -- RReLU --------------------------------------------------------------------------------

cdef void _rrelu_forward(floating zero, const void* Z_, void* A_, Py_ssize_t n, uint64_t base,
                         double lower, double width, int n_threads) noexcept nogil:
    cdef const floating* Z = <const floating*>Z_
    cdef floating* A = <floating*>A_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        rrelu_forward_run(Z, A, 0, n, base, <floating>lower, <floating>width)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        rrelu_forward_run(Z + start, A + start, start, min(CHUNK, n - start), base,
                          <floating>lower, <floating>width)


cdef void _rrelu_backward(floating zero, const void* A_, const void* dA_, void* dZ_, Py_ssize_t n,
                          uint64_t base, double lower, double width, int n_threads) noexcept nogil:
    cdef const floating* A = <const floating*>A_
    cdef const floating* dA = <const floating*>dA_
    cdef floating* dZ = <floating*>dZ_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        rrelu_backward_run(A, dA, dZ, 0, n, base, <floating>lower, <floating>width)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        rrelu_backward_run(A + start, dA + start, dZ + start, start, min(CHUNK, n - start), base,
                           <floating>lower, <floating>width)


cdef int _check_bounds(str kernel, double lower, double upper) except -1:
    if not (isfinite(lower) and isfinite(upper) and 0 <= lower <= upper):
        raise ValueError(f"{kernel}: needs 0 <= lower <= upper (finite), got lower={lower}, "
                         f"upper={upper}")
    return 0


def rrelu_forward(Z, A, double lower, double upper, uint64_t seed, uint64_t counter,
                  int n_threads=1):
    """A := Z where Z > 0, else r Z with r_i = lower + (upper − lower) u_i, u_i = U(seed,
    counter, i) ∈ [0, 1): RReLU's training-mode forward.

    ``Z`` any shape; ``A`` the same shape (may be Z).
    """
    cdef str kernel = "rrelu_forward"
    cdef int t = float_type(Z, kernel, "Z")
    cdef Py_ssize_t n
    cdef void* z = flat_data(Z, kernel, "Z", t, None, &n)
    cdef void* a = flat_data(A, kernel, "A", t, Z, &n, writable=True)
    _check_bounds(kernel, lower, upper)
    cdef uint64_t base = stream_base(seed, counter)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _rrelu_forward(<float>0, z, a, n, base, lower, upper - lower, n_threads)
        else:
            _rrelu_forward(<double>0, z, a, n, base, lower, upper - lower, n_threads)


def rrelu_backward(A, dA, dZ, double lower, double upper, uint64_t seed, uint64_t counter,
                   int n_threads=1):
    """dZ := dA where A > 0, else r dA, with the r of ``rrelu_forward(.., seed, counter)``.

    ``A`` (the forward output) any shape; ``dA`` and ``dZ`` the same shape (dZ may be dA).
    """
    cdef str kernel = "rrelu_backward"
    cdef int t = float_type(A, kernel, "A")
    cdef Py_ssize_t n
    cdef void* a = flat_data(A, kernel, "A", t, None, &n)
    cdef void* da = flat_data(dA, kernel, "dA", t, A, &n)
    cdef void* dz = flat_data(dZ, kernel, "dZ", t, A, &n, writable=True)
    _check_bounds(kernel, lower, upper)
    cdef uint64_t base = stream_base(seed, counter)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _rrelu_backward(<float>0, a, da, dz, n, base, lower, upper - lower, n_threads)
        else:
            _rrelu_backward(<double>0, a, da, dz, n, base, lower, upper - lower, n_threads)

"""Inverted-dropout kernels with a counter-based random generator inside the loop.

Design: element i of call number `counter` keeps its unit when the 64-bit hash
    z_i = mix64(base + (i + 1) φ),   base = mix64(mix64(seed + φ) + counter φ)
has its top 53 bits ≥ ⌈p 2⁵³⌉, so P(keep) = 1 − p to within 2⁻⁵³. mix64 is SplitMix64's
output function (Steele, Lea & Flood 2014; Vigna's splitmix64.c) and φ = 0x9E3779B97F4A7C15,
so the z_i of one call are exactly a SplitMix64 stream started at `base`. Each element's
draw depends only on (seed, counter, i): the mask is reproducible, needs no generator state
beyond two integers, and chunks can run on several threads with identical results.
The forward pass draws the mask, stores it (uint8, one byte per element) and applies it in
one pass; backward and "frozen" forward passes reuse it through `dropout_apply`.
Multiplying by the mask value (0 or 1/(1 − p)) rather than selecting keeps IEEE semantics:
a NaN input gives NaN even where the unit is dropped, as in PyTorch.
Arrays of any shape are read as one run of values; all of a call's arrays have one shape.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint8_t, uint64_t

from fastnn_c._arrays cimport flat_data, float_type
from fastnn_c._math cimport golden_gamma, mix64, stream_base

cnp.import_array()

cdef uint64_t PHI = golden_gamma()

cdef enum:
    CHUNK = 16384  # values per prange task


cdef void _forward_chunk(const floating* x, floating* y, uint8_t* mask, Py_ssize_t start,
                         Py_ssize_t n, uint64_t base, uint64_t threshold,
                         floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint8_t keep
    cdef floating zero = 0  # typed: a literal 0 would make the product a double one
    for i in range(n):
        keep = (mix64(base + <uint64_t>(start + i + 1) * PHI) >> 11) >= threshold
        mask[i] = keep
        y[i] = x[i] * (scale if keep else zero)


cdef void _apply_chunk(const floating* x, const uint8_t* mask, floating* y, Py_ssize_t n,
                       floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating zero = 0
    for i in range(n):
        y[i] = x[i] * (scale if mask[i] else zero)


cdef void _forward(floating zero, const void* X_, void* Y_, uint8_t* mask, Py_ssize_t n,
                   uint64_t base, uint64_t threshold, double scale, int n_threads) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef floating* Y = <floating*>Y_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        _forward_chunk(X, Y, mask, 0, n, base, threshold, <floating>scale)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _forward_chunk(X + start, Y + start, mask + start, start, min(CHUNK, n - start), base,
                       threshold, <floating>scale)


cdef void _apply(floating zero, const void* X_, const uint8_t* mask, void* Y_, Py_ssize_t n,
                 double scale, int n_threads) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef floating* Y = <floating*>Y_
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n <= CHUNK:
        _apply_chunk(X, mask, Y, n, <floating>scale)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _apply_chunk(X + start, mask + start, Y + start, min(CHUNK, n - start), <floating>scale)


cdef uint64_t _threshold(str kernel, double p) except? 0:
    """⌈p 2⁵³⌉, the threshold of the top 53 bits of a draw (ValueError unless 0 <= p < 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"{kernel}: p must be in [0, 1), got {p}")
    return <uint64_t>ceil(p * 9007199254740992.0)  # exact: a power-of-two scaling


def dropout_forward(X, Y, mask, double p, uint64_t seed, uint64_t counter, int n_threads=1):
    """mask_i := [u_i ≥ p] with u_i = U(seed, counter, i) ∈ [0, 1);  Y := X mask / (1 − p).

    ``X`` any shape; ``Y`` and ``mask`` (uint8: 1 = kept, 0 = dropped) the same shape.
    """
    cdef str kernel = "dropout_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef Py_ssize_t n
    cdef void* x = flat_data(X, kernel, "X", t, None, &n)
    cdef void* y = flat_data(Y, kernel, "Y", t, X, &n, writable=True)
    cdef uint8_t* m = <uint8_t*>flat_data(mask, kernel, "mask", cnp.NPY_UINT8, X, &n, writable=True)
    cdef uint64_t threshold = _threshold(kernel, p)
    cdef uint64_t base = stream_base(seed, counter)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward(<float>0, x, y, m, n, base, threshold, 1.0 / (1.0 - p), n_threads)
        else:
            _forward(<double>0, x, y, m, n, base, threshold, 1.0 / (1.0 - p), n_threads)


def dropout_apply(X, mask, Y, double p, int n_threads=1):
    """Y := X mask / (1 − p): the forward pass with a stored mask, and the backward pass.

    ``X`` (the input, or dY for backward) any shape; ``mask`` (uint8, from dropout_forward)
    and ``Y`` (the output, or dX) the same shape.
    """
    cdef str kernel = "dropout_apply"
    cdef int t = float_type(X, kernel, "X")
    cdef Py_ssize_t n
    cdef void* x = flat_data(X, kernel, "X", t, None, &n)
    cdef const uint8_t* m = <const uint8_t*>flat_data(mask, kernel, "mask", cnp.NPY_UINT8, X, &n)
    cdef void* y = flat_data(Y, kernel, "Y", t, X, &n, writable=True)
    _threshold(kernel, p)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _apply(<float>0, x, m, y, n, 1.0 / (1.0 - p), n_threads)
        else:
            _apply(<double>0, x, m, y, n, 1.0 / (1.0 - p), n_threads)

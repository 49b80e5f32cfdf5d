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
Convention (fastnn_c/_kernel.pyx): each kernel takes typed memoryviews (``[::1]``, the arrays
flattened by its ``Kernel``) and its chunk loops index them, so a ``FASTNN_DEBUG_CYTHON=1``
build bounds-checks every access.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint8_t, uint64_t

from fastnn_c._arrays cimport check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport golden_gamma, mix64, stream_base

cdef uint64_t PHI = golden_gamma()

cdef enum:
    CHUNK = 16384  # values per prange task


cdef void _forward_chunk(const floating[::1] X, floating[::1] Y, uint8_t[::1] mask,
                        Py_ssize_t start, Py_ssize_t n, uint64_t base, uint64_t threshold,
                        floating scale) noexcept nogil:
    """Values [start, start + n) of ``dropout_forward``."""
    cdef Py_ssize_t i
    cdef uint8_t keep
    cdef floating zero = 0  # typed: a literal 0 would make the product a double one
    for i in range(start, start + n):
        keep = (mix64(base + <uint64_t>(i + 1) * PHI) >> 11) >= threshold
        mask[i] = keep
        Y[i] = X[i] * (scale if keep else zero)


cdef void _apply_chunk(const floating[::1] X, const uint8_t[::1] mask, floating[::1] Y,
                      Py_ssize_t start, Py_ssize_t n, floating scale) noexcept nogil:
    """Values [start, start + n) of ``dropout_apply``."""
    cdef Py_ssize_t i
    cdef floating zero = 0
    for i in range(start, start + n):
        Y[i] = X[i] * (scale if mask[i] else zero)


cdef uint64_t _threshold(str kernel, double p) except? 0:
    """⌈p 2⁵³⌉, the threshold of the top 53 bits of a draw (ValueError unless 0 <= p < 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"{kernel}: p must be in [0, 1), got {p}")
    return <uint64_t>ceil(p * 9007199254740992.0)  # exact: a power-of-two scaling


def _dropout_forward(const floating[::1] X,  # IN, any shape read as one run
                     floating[::1] Y,        # OUT like X, may be X
                     uint8_t[::1] mask,      # OUT like X: 1 = kept, 0 = dropped
                     double p, uint64_t seed, uint64_t counter, int n_threads=1):
    """mask_i := [u_i ≥ p] with u_i = U(seed, counter, i) ∈ [0, 1);  Y := X mask / (1 − p).

    ``X`` any shape; ``Y`` and ``mask`` (uint8: 1 = kept, 0 = dropped) the same shape.
    """
    cdef str kernel = "dropout_forward"
    cdef Py_ssize_t c, start, n = X.shape[0]
    check_vector(kernel, "Y", Y.shape[0], n)
    check_vector(kernel, "mask", mask.shape[0], n)
    cdef uint64_t threshold = _threshold(kernel, p)
    cdef uint64_t base = stream_base(seed, counter)
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            _forward_chunk(X, Y, mask, 0, n, base, threshold, scale)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                _forward_chunk(X, Y, mask, start, min(CHUNK, n - start), base, threshold, scale)


def _dropout_apply(const floating[::1] X,     # IN (the input, or dY), any shape read as one run
                   const uint8_t[::1] mask,   # IN like X, from dropout_forward
                   floating[::1] Y,           # OUT like X (the output, or dX), may be X
                   double p, int n_threads=1):
    """Y := X mask / (1 − p): the forward pass with a stored mask, and the backward pass.

    ``X`` (the input, or dY for backward) any shape; ``mask`` (uint8, from dropout_forward)
    and ``Y`` (the output, or dX) the same shape.
    """
    cdef str kernel = "dropout_apply"
    cdef Py_ssize_t c, start, n = X.shape[0]
    check_vector(kernel, "mask", mask.shape[0], n)
    check_vector(kernel, "Y", Y.shape[0], n)
    _threshold(kernel, p)
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    with nogil:
        if n_threads <= 1 or n <= CHUNK:
            _apply_chunk(X, mask, Y, 0, n, scale)
        else:
            for c in prange((n + CHUNK - 1) // CHUNK, num_threads=n_threads, schedule="static"):
                start = c * CHUNK
                _apply_chunk(X, mask, Y, start, min(CHUNK, n - start), scale)


dropout_forward = Kernel(_dropout_forward, "dropout_forward", "X:*", "Y:*!", "mask:*:uint8!")
dropout_apply = Kernel(_dropout_apply, "dropout_apply", "X:*", "mask:*:uint8", "Y:*!")

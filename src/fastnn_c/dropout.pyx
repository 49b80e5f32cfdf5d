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
Contract: inputs are validated, C-contiguous (flattened), one dtype; sizes are checked here.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint8_t, uint64_t

cdef uint64_t PHI = 0x9E3779B97F4A7C15ULL
cdef Py_ssize_t CHUNK = 16384


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finalizer: a bijective avalanche of the 64 bits."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t _stream_base(uint64_t seed, uint64_t counter) noexcept nogil:
    return mix64(mix64(seed + PHI) + counter * PHI)


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


def _threshold(double p):
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    return <uint64_t>ceil(p * 9007199254740992.0)  # p 2^53, exact (a power-of-two scaling)


def dropout_forward(const floating[::1] X,    # IN  (flattened)
                    floating[::1] Y,          # OUT (flattened)
                    uint8_t[::1] mask,        # OUT 1 = kept, 0 = dropped
                    double p, uint64_t seed, uint64_t counter, int n_threads=1):
    """mask_i := [u_i ≥ p] with u_i = U(seed, counter, i) ∈ [0, 1);  Y := X mask / (1 − p)."""
    cdef Py_ssize_t n = X.shape[0], c, n_chunks, start
    cdef uint64_t threshold = _threshold(p)
    cdef uint64_t base = _stream_base(seed, counter)
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    if Y.shape[0] != n or mask.shape[0] != n:
        raise ValueError(f"dropout_forward: X, Y and mask have {n}, {Y.shape[0]} and "
                         f"{mask.shape[0]} elements")
    if n == 0:
        return
    if n_threads <= 1 or n <= CHUNK:
        with nogil:
            _forward_chunk(&X[0], &Y[0], &mask[0], 0, n, base, threshold, scale)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _forward_chunk(&X[start], &Y[start], &mask[start], start, min(CHUNK, n - start), base,
                       threshold, scale)


def dropout_apply(const floating[::1] X,      # IN  (flattened): the input, or dY for backward
                  const uint8_t[::1] mask,    # IN  from dropout_forward
                  floating[::1] Y,            # OUT (flattened): the output, or dX
                  double p, int n_threads=1):
    """Y := X mask / (1 − p): the forward pass with a stored mask, and the backward pass."""
    cdef Py_ssize_t n = X.shape[0], c, n_chunks, start
    cdef floating scale
    _threshold(p)
    scale = <floating>(1.0 / (1.0 - p))
    if Y.shape[0] != n or mask.shape[0] != n:
        raise ValueError(f"dropout_apply: X, mask and Y have {n}, {mask.shape[0]} and "
                         f"{Y.shape[0]} elements")
    if n == 0:
        return
    if n_threads <= 1 or n <= CHUNK:
        with nogil:
            _apply_chunk(&X[0], &mask[0], &Y[0], n, scale)
        return
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static"):
        start = c * CHUNK
        _apply_chunk(&X[start], &mask[start], &Y[start], min(CHUNK, n - start), scale)

# Float-type-generic libm calls: each resolves at compile time to the f/double variant.
# The transcendental ones come through _vecmath.h, so loops calling them vectorise: float32
# exp/expm1 (and softplus's log1p) are fastnn's inline versions, float32 tanh over an array is
# fastnn's (tanh_run), the rest are glibc's libmvec. Then the one sum-of-squares loop,
# sum_squares_run, and the counter-based random numbers of dropout and RReLU.
from cython cimport floating
from libc.float cimport DBL_MIN, FLT_MIN
from libc.math cimport fabs, fabsf, sqrt, sqrtf
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    # Independent partial results kept by every reduction loop (sums, maxima): the compiler
    # vectorises them without reassociating floating-point adds (no -ffast-math), and 32
    # lanes, 2-4 vector registers, keep each add from waiting on the previous one
    # (benchmarks/README.md, "Softmax cross-entropy").
    REDUCTION_LANES = 32


cdef extern from "_vecmath.h" nogil:
    float logf(float)
    float log1pf(float)
    float tanhf(float)
    double exp(double)
    double expm1(double)
    double log(double)
    double log1p(double)
    double tanh(double)
    float fnn_expf(float)
    float fnn_expm1f(float)
    void fnn_tanhf_run(const float* z, float* a, Py_ssize_t n)
    float fnn_log1pf_unit(float)


cdef inline floating fexp(floating x) noexcept nogil:
    if floating is float:
        return fnn_expf(x)
    else:
        return exp(x)


cdef inline floating fexpm1_nonpositive(floating x) noexcept nogil:
    """e^x − 1 for x ≤ 0 (or NaN); float32 x above 88 give meaningless values."""
    if floating is float:
        return fnn_expm1f(x)
    else:
        return expm1(x)


cdef inline floating flog(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating flog1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline void tanh_run(const floating* z, floating* a, Py_ssize_t n) noexcept nogil:
    """a[i] = tanh(z[i]) over a run; z and a may be the same array."""
    cdef Py_ssize_t i
    if floating is float:
        fnn_tanhf_run(z, a, n)
    else:
        for i in range(n):
            a[i] = tanh(z[i])


cdef inline floating fabs_(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating flush_subnormal(floating x) noexcept nogil:
    """0 where |x| is below the smallest normal number, else x (NaN passes).

    For optimizer state that decays geometrically (momentum, Adam's moments, RMSProp's
    average) where the gradient is 0, as for a dead ReLU unit: left alone it sinks into
    the subnormals, where arithmetic is several times slower (benchmarks/README.md,
    "Subnormals").
    """
    cdef floating smallest = FLT_MIN if floating is float else DBL_MIN
    return 0 if fabs_(x) < smallest else x


cdef inline floating fsqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + e^-z). Where e^-z overflows (float32: z < -88.7) the result is 0, where the
    exact value is below the smallest normal float (1.2e-38): flushed, never inf or NaN."""
    cdef floating one = 1  # typed, so float32 stays float32 (no double division)
    return one / (one + fexp(-z))


cdef inline floating softplus(floating z) noexcept nogil:
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), exact and overflow-free for any z."""
    cdef floating zero = 0
    if floating is float:
        return (z if z > zero else zero) + fnn_log1pf_unit(fexp(-fabs_(z)))
    else:
        return (z if z > zero else zero) + flog1p(fexp(-fabs_(z)))


cdef inline double sum_squares_run(const floating* x, const floating* y, floating* copy,
                                   double* abs_sum, Py_ssize_t n) noexcept nogil:
    """Σ (xᵢ − yᵢ)², or Σ xᵢ² when y is NULL, in double over REDUCTION_LANES partial sums.

    In the same pass, where they are not NULL: copy := x, and abs_sum[0] := Σ |xᵢ|. Every
    caller passes constant NULLs, so each inlined copy keeps only the work it asks for.
    """
    cdef double sq[REDUCTION_LANES]
    cdef double ab[REDUCTION_LANES]
    cdef double d, total = 0, abs_total = 0
    cdef Py_ssize_t i, b, k
    for k in range(REDUCTION_LANES):
        sq[k] = 0
        ab[k] = 0
    for b in range(n // REDUCTION_LANES):
        i = b * REDUCTION_LANES
        for k in range(REDUCTION_LANES):
            d = <double>x[i + k] if y == NULL else <double>x[i + k] - <double>y[i + k]
            sq[k] += d * d
            if abs_sum != NULL:
                ab[k] += fabs(x[i + k])
            if copy != NULL:
                copy[i + k] = x[i + k]
    for i in range(n - n % REDUCTION_LANES, n):
        d = <double>x[i] if y == NULL else <double>x[i] - <double>y[i]
        sq[0] += d * d
        if abs_sum != NULL:
            ab[0] += fabs(x[i])
        if copy != NULL:
            copy[i] = x[i]
    for k in range(REDUCTION_LANES):
        total += sq[k]
        abs_total += ab[k]
    if abs_sum != NULL:
        abs_sum[0] = abs_total
    return total


# -- counter-based random numbers (dropout, RReLU) -----------------------------------------
# Element i of draw number `counter` of a stream `seed` is mix64(base + (i + 1) φ) with
# base = stream_base(seed, counter): exactly a SplitMix64 stream started at `base`, so each
# element depends only on (seed, counter, i) and chunks can run on any thread.
cdef inline uint64_t golden_gamma() noexcept nogil:
    """φ = 0x9E3779B97F4A7C15, SplitMix64's increment (2⁶⁴ / golden ratio, odd)."""
    return 0x9E3779B97F4A7C15ULL


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    """SplitMix64's finalizer: a bijective avalanche of the 64 bits (Steele, Lea & Flood
    2014; Vigna's splitmix64.c)."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t stream_base(uint64_t seed, uint64_t counter) noexcept nogil:
    return mix64(mix64(seed + golden_gamma()) + counter * golden_gamma())


cdef inline floating unit_uniform(floating zero, uint64_t h) noexcept nogil:
    """A value in [0, 1) from the top bits of the hash ``h`` (23 for float32, 52 for float64):
    those bits as the mantissa of a number in [1, 2), minus 1. No integer-to-float
    conversion, which AVX2 lacks for 64-bit integers, so loops calling it vectorise."""
    cdef uint32_t bits32
    cdef uint64_t bits64
    cdef float f
    cdef double d
    if floating is float:
        bits32 = <uint32_t>(h >> 41) | 0x3F800000U
        memcpy(&f, &bits32, 4)
        return f - <float>1
    else:
        bits64 = (h >> 12) | 0x3FF0000000000000ULL
        memcpy(&d, &bits64, 8)
        return d - 1.0

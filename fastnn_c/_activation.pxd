# Per-activation loops over one contiguous run of values, shared by the activation kernels
# and the fused dense+activation kernels. Each loop has the switch outside, so it vectorises;
# derivatives are written in terms of the output A = f(Z).
from cython cimport floating
from libc.stdint cimport uint64_t

from fastnn_c._math cimport (REDUCTION_LANES, fabs_, fexpm1_nonpositive, golden_gamma, mix64,
                             sigmoid, softplus, tanh_run, unit_uniform)

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



cdef inline void activation_forward_run(int kind, const floating* z, floating* a, Py_ssize_t n,
                         floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    # SELU's λ and λα (Klambauer et al. 2017, eq. 14: λ = 1.0507009873554805, α = 1.6732632423543772)
    cdef floating lam = <floating>1.0507009873554804934193349852946
    cdef floating lam_alpha = <floating>(1.0507009873554804934193349852946 * 1.6732632423543772848170429916717)
    # typed constants: Cython writes a literal 1 as the double 1.0, which would turn every
    # float32 operation below into a double one
    cdef floating one = 1, zero = 0
    if kind == IDENTITY:
        for i in range(n):
            a[i] = z[i]
    elif kind == SIGMOID:
        for i in range(n):
            a[i] = sigmoid(z[i])
    elif kind == TANH:
        tanh_run(z, a, n)
    elif kind == HARDTANH:
        for i in range(n):
            a[i] = -one if z[i] < -one else (one if z[i] > one else z[i])
    elif kind == SOFTSIGN:
        for i in range(n):
            a[i] = z[i] / (one + fabs_(z[i]))
    elif kind == RELU:
        for i in range(n):
            a[i] = zero if z[i] < zero else z[i]
    elif kind == LEAKY_RELU:
        for i in range(n):
            a[i] = alpha * z[i] if z[i] < zero else z[i]
    elif kind == ELU:
        for i in range(n):
            a[i] = alpha * fexpm1_nonpositive(z[i]) if z[i] < zero else z[i]
    elif kind == SELU:
        for i in range(n):
            a[i] = lam_alpha * fexpm1_nonpositive(z[i]) if z[i] < zero else lam * z[i]
    elif kind == SOFTPLUS:
        for i in range(n):
            a[i] = softplus(z[i])


cdef inline void activation_backward_run(int kind, const floating* a, const floating* da, floating* dz,
                          Py_ssize_t n, floating alpha) noexcept nogil:
    # ReLU and hardtanh read da[i] into `g` unconditionally: written as `da[i] if ... else 0`
    # the load is conditional, and GCC's AVX-512 code for that (a merge-masked load) chains
    # every iteration to the previous one (benchmarks/README.md, "SIMD builds").
    cdef Py_ssize_t i
    cdef floating g
    # SELU's λ and λα (Klambauer et al. 2017, eq. 14: λ = 1.0507009873554805, α = 1.6732632423543772)
    cdef floating lam = <floating>1.0507009873554804934193349852946
    cdef floating lam_alpha = <floating>(1.0507009873554804934193349852946 * 1.6732632423543772848170429916717)
    # typed constants: Cython writes a literal 1 as the double 1.0, which would turn every
    # float32 operation below into a double one
    cdef floating one = 1, zero = 0
    if kind == IDENTITY:
        for i in range(n):
            dz[i] = da[i]
    elif kind == SIGMOID:
        for i in range(n):
            dz[i] = da[i] * a[i] * (one - a[i])
    elif kind == TANH:
        for i in range(n):
            dz[i] = da[i] * (one - a[i] * a[i])
    elif kind == HARDTANH:
        for i in range(n):
            g = da[i]
            dz[i] = g if -one < a[i] < one else zero
    elif kind == SOFTSIGN:
        for i in range(n):
            dz[i] = da[i] * (one - fabs_(a[i])) * (one - fabs_(a[i]))
    elif kind == RELU:
        for i in range(n):
            g = da[i]
            dz[i] = g if a[i] > zero else zero
    elif kind == LEAKY_RELU:
        for i in range(n):
            dz[i] = da[i] if a[i] > zero else alpha * da[i]
    elif kind == ELU:
        for i in range(n):
            dz[i] = da[i] if a[i] > zero else da[i] * (a[i] + alpha)
    elif kind == SELU:
        for i in range(n):
            dz[i] = lam * da[i] if a[i] > zero else da[i] * (a[i] + lam_alpha)
    elif kind == SOFTPLUS:
        for i in range(n):
            dz[i] = -da[i] * fexpm1_nonpositive(-a[i])  # a = softplus(z) >= 0


# -- PReLU and RReLU ----------------------------------------------------------------------
# Both compare z > 0 as PyTorch does (the slope applies where z <= 0, and to NaN), and
# multiply by the slope or by 1 rather than select, so the loops read every value
# unconditionally and vectorise.

cdef inline void prelu_forward_run(const floating* z, floating* a, Py_ssize_t n,
                                   floating alpha) noexcept nogil:
    """a = z if z > 0 else alpha z over a run with one slope."""
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0
    for i in range(n):
        a[i] = z[i] * (one if z[i] > zero else alpha)


cdef inline void prelu_forward_row(const floating* z, floating* a, Py_ssize_t m,
                                   const floating* alpha) noexcept nogil:
    """a_j = z_j if z_j > 0 else alpha_j z_j over one row of m units."""
    cdef Py_ssize_t j
    cdef floating one = 1, zero = 0, slope
    for j in range(m):
        slope = alpha[j]  # read unconditionally: a conditional load chains the AVX-512 loop
        a[j] = z[j] * (one if z[j] > zero else slope)


cdef inline double prelu_backward_run(const floating* z, const floating* da, floating* dz,
                                      Py_ssize_t n, floating alpha) noexcept nogil:
    """dz = da if z > 0 else alpha da over a run with one slope; returns Σ da·z·[z <= 0]
    in double over REDUCTION_LANES partial sums (each product rounded to the input type
    first: one conversion per value instead of two)."""
    cdef double acc[REDUCTION_LANES]
    cdef double total = 0
    cdef Py_ssize_t i, b, k
    cdef floating one = 1, zero = 0
    for k in range(REDUCTION_LANES):
        acc[k] = 0
    for b in range(n // REDUCTION_LANES):
        i = b * REDUCTION_LANES
        for k in range(REDUCTION_LANES):
            acc[k] += <double>(da[i + k] * (zero if z[i + k] > zero else z[i + k]))
            dz[i + k] = da[i + k] * (one if z[i + k] > zero else alpha)
    for i in range(n - n % REDUCTION_LANES, n):
        acc[0] += <double>(da[i] * (zero if z[i] > zero else z[i]))
        dz[i] = da[i] * (one if z[i] > zero else alpha)
    for k in range(REDUCTION_LANES):
        total += acc[k]
    return total


cdef inline void prelu_backward_row(const floating* z, const floating* da, floating* dz,
                                    Py_ssize_t m, const floating* alpha,
                                    double* dalpha) noexcept nogil:
    """One row of m units: dz_j = da_j if z_j > 0 else alpha_j da_j;
    dalpha_j += da_j z_j [z_j <= 0]. The m columns are the independent partial sums (no
    reassociation)."""
    cdef Py_ssize_t j
    cdef floating one = 1, zero = 0, slope
    for j in range(m):
        slope = alpha[j]  # read unconditionally, as in prelu_forward_row
        dalpha[j] += <double>(da[j] * (zero if z[j] > zero else z[j]))
        dz[j] = da[j] * (one if z[j] > zero else slope)


cdef inline void rrelu_forward_run(const floating* z, floating* a, Py_ssize_t start, Py_ssize_t n,
                                   uint64_t base, floating lower, floating width) noexcept nogil:
    """a_i = z_i if z_i > 0 else r_i z_i, r_i = lower + width u_i, u_i ∈ [0, 1) the hash of
    element start + i of the stream at ``base`` (every element draws, so the loop vectorises)."""
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0, r
    cdef uint64_t phi = golden_gamma()
    for i in range(n):
        r = lower + width * unit_uniform(zero, mix64(base + <uint64_t>(start + i + 1) * phi))
        a[i] = z[i] * (one if z[i] > zero else r)


cdef inline void rrelu_backward_run(const floating* a, const floating* da, floating* dz,
                                    Py_ssize_t start, Py_ssize_t n, uint64_t base, floating lower,
                                    floating width) noexcept nogil:
    """dz_i = da_i if a_i > 0 else r_i da_i with the forward's r_i, drawn again: with slopes
    >= 0, a_i > 0 exactly where z_i > 0."""
    cdef Py_ssize_t i
    cdef floating one = 1, zero = 0, r
    cdef uint64_t phi = golden_gamma()
    for i in range(n):
        r = lower + width * unit_uniform(zero, mix64(base + <uint64_t>(start + i + 1) * phi))
        dz[i] = da[i] * (one if a[i] > zero else r)

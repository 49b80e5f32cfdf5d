# Per-activation loops over one contiguous run of values, shared by the activation kernels
# and the fused dense+activation kernels. Each loop has the switch outside, so it vectorises;
# derivatives are written in terms of the output A = f(Z).
from cython cimport floating

from fastnn_c._math cimport fabs_, fexpm1_nonpositive, sigmoid, softplus, tanh_run

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

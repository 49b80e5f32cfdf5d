"""Training-diagnostics kernels: per-unit statistics of an activation array in one pass.

Design: one row-major pass over A (batch, units) accumulating, per column, the sum and the
sum of squares of A[i, j] − A[0, j] (shifting by the first row keeps the one-pass variance
accurate when a unit's mean is large compared with its spread), the number of values <= 0
(a ReLU unit is dead on the batch when every row is zero; a PReLU/RReLU unit is on its
negative side when every row is <= 0) and, over the whole array, the
number of saturated entries (a <= lower or a >= upper). Accumulation is in double for
both dtypes. For the relative update ‖W_after − W_before‖/‖W_before‖, `copy_sum_squares`
saves the weights and their squared norm in one pass and `diff_sum_squares` reads both
arrays once without writing a difference array (both are `_math.pxd`'s `sum_squares_run`).
Called by ``fastnn.diagnostics.Monitor`` only on recorded steps.
NaN entries make their column's mean and variance NaN and are neither <= 0 nor saturated
(IEEE comparisons).
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY

from fastnn_c._arrays cimport array_data, dim, flat_data, float_type, matrix_data, vector_data
from fastnn_c._math cimport sum_squares_run

cnp.import_array()


cdef Py_ssize_t _activation_stats(floating zero, const void* A_, Py_ssize_t n, Py_ssize_t m,
                                  double lower, double upper, double* col_mean, double* col_var,
                                  Py_ssize_t* col_nonpositive) noexcept nogil:
    cdef const floating* A = <const floating*>A_
    cdef const floating* first = A
    cdef const floating* row
    cdef bint count_saturated = not (lower == -INFINITY and upper == INFINITY)
    cdef Py_ssize_t i, j, saturated = 0
    cdef double d, s1, s2
    for j in range(m):
        col_mean[j] = 0
        col_var[j] = 0
        if col_nonpositive != NULL:
            col_nonpositive[j] = 0
    # One loop per statistic over each row (in cache), so that each loop vectorises.
    for i in range(n):
        row = A + i * m
        for j in range(m):
            d = <double>row[j] - <double>first[j]
            col_mean[j] += d
            col_var[j] += d * d
        if col_nonpositive != NULL:
            for j in range(m):
                col_nonpositive[j] += row[j] <= 0
        if count_saturated:
            for j in range(m):
                saturated += (row[j] <= lower) | (row[j] >= upper)
    for j in range(m):
        s1 = col_mean[j] / n
        s2 = col_var[j] / n - s1 * s1
        col_mean[j] = <double>first[j] + s1
        col_var[j] = s2 if s2 > 0 else (0 if s2 == s2 else s2)
    return saturated


cdef double _copy_sum_squares(floating zero, const void* src, void* dst,
                              Py_ssize_t n) noexcept nogil:
    return sum_squares_run(<const floating*>src, <floating*>NULL, <floating*>dst, NULL, n)


cdef double _diff_sum_squares(floating zero, const void* a, const void* b,
                              Py_ssize_t n) noexcept nogil:
    return sum_squares_run(<const floating*>a, <const floating*>b, <floating*>NULL, NULL, n)


def activation_stats(A, double lower, double upper, col_mean, col_var, col_nonpositive):
    """col_mean_j := (1/n) Σ_i A_ij;  col_var_j := (1/n) Σ_i (A_ij − col_mean_j)²;
    col_nonpositive_j := #{i : A_ij <= 0};  returns #{(i, j) : A_ij <= lower or A_ij >= upper}.

    ``A`` (batch, units), batch > 0; ``col_mean``, ``col_var`` (units,) float64;
    ``col_nonpositive`` (units,) intp, or None not to count. Saturation is not counted
    (returns 0) when lower = −inf and upper = +inf.
    """
    cdef str kernel = "activation_stats"
    cdef int t = float_type(A, kernel, "A")
    cdef void* a = array_data(A, kernel, "A", t, 2)
    cdef Py_ssize_t n = dim(A, 0), m = dim(A, 1), saturated
    cdef double* mean = <double*>vector_data(col_mean, kernel, "col_mean", cnp.NPY_DOUBLE, m,
                                             writable=True)
    cdef double* var = <double*>vector_data(col_var, kernel, "col_var", cnp.NPY_DOUBLE, m,
                                            writable=True)
    cdef Py_ssize_t* nonpositive = NULL
    if col_nonpositive is not None:
        nonpositive = <Py_ssize_t*>vector_data(col_nonpositive, kernel, "col_nonpositive",
                                               cnp.NPY_INTP, m, writable=True)
    if n == 0:
        raise ValueError(f"{kernel}: A has no rows")
    if m == 0:
        return 0
    with nogil:
        if t == cnp.NPY_FLOAT:
            saturated = _activation_stats(<float>0, a, n, m, lower, upper, mean, var, nonpositive)
        else:
            saturated = _activation_stats(<double>0, a, n, m, lower, upper, mean, var, nonpositive)
    return saturated


def copy_sum_squares(src, dst):
    """dst := src;  returns Σ srcᵢ² (accumulated in double).  ``src`` any shape, ``dst`` the same."""
    cdef str kernel = "copy_sum_squares"
    cdef int t = float_type(src, kernel, "src")
    cdef Py_ssize_t n
    cdef void* s = flat_data(src, kernel, "src", t, None, &n)
    cdef void* d = flat_data(dst, kernel, "dst", t, src, &n, writable=True)
    cdef double total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = _copy_sum_squares(<float>0, s, d, n)
        else:
            total = _copy_sum_squares(<double>0, s, d, n)
    return total


def diff_sum_squares(a, b):
    """Σ (aᵢ − bᵢ)², the differences and the sum in double.  ``a`` any shape, ``b`` the same."""
    cdef str kernel = "diff_sum_squares"
    cdef int t = float_type(a, kernel, "a")
    cdef Py_ssize_t n
    cdef void* x = flat_data(a, kernel, "a", t, None, &n)
    cdef void* y = flat_data(b, kernel, "b", t, a, &n)
    cdef double total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = _diff_sum_squares(<float>0, x, y, n)
        else:
            total = _diff_sum_squares(<double>0, x, y, n)
    return total

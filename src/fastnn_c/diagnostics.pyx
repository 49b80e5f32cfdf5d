"""Training-diagnostics kernels: per-unit statistics of an activation array in one pass.

Design: one row-major pass over A (batch, units) accumulating, per column, the sum and the
sum of squares of A[i, j] − A[0, j] (shifting by the first row keeps the one-pass variance
accurate when a unit's mean is large compared with its spread), the number of exact zeros
(a ReLU unit is dead on the batch when every row is zero) and, over the whole array, the
number of saturated entries (a <= lower or a >= upper). Accumulation is in double for
both dtypes. For the relative update ‖W_after − W_before‖/‖W_before‖, `copy_sum_squares`
saves the weights and their squared norm in one pass and `diff_sum_squares` reads both
arrays once without writing a difference array. Called by ``fastnn.diagnostics.Monitor``
only on recorded steps.
Contract: inputs are validated, C-contiguous, one dtype; shapes are checked here so that a
wrong call raises instead of reading out of bounds. NaN entries make their column's mean
and variance NaN and are neither zero nor saturated (IEEE comparisons).
"""
from cython cimport floating
from libc.math cimport INFINITY

from fastnn_c._math cimport REDUCTION_LANES as LANES


def activation_stats(const floating[:, ::1] A,      # IN  (batch, units)
                     double lower, double upper,    # IN  saturation thresholds
                     double[::1] col_mean,          # OUT (units,) mean over the batch
                     double[::1] col_var,           # OUT (units,) biased variance over the batch
                     Py_ssize_t[::1] col_zeros):    # OUT (units,) rows with A[i, j] == 0, or None
    """col_mean_j := (1/n) Σ_i A_ij;  col_var_j := (1/n) Σ_i (A_ij − col_mean_j)²;
    col_zeros_j := #{i : A_ij = 0};  returns #{(i, j) : A_ij <= lower or A_ij >= upper}.

    Zeros are not counted when col_zeros is None; saturation is not counted (returns 0)
    when lower = −inf and upper = +inf.
    """
    cdef Py_ssize_t n = A.shape[0], m = A.shape[1], i, j, saturated = 0
    cdef bint count_zeros = col_zeros is not None
    cdef bint count_saturated = not (lower == -INFINITY and upper == INFINITY)
    cdef const floating* row
    cdef const floating* first
    cdef double d, s1, s2
    if col_mean.shape[0] != m or col_var.shape[0] != m or (count_zeros and col_zeros.shape[0] != m):
        raise ValueError(f"activation_stats: A has {m} columns, col_mean/col_var/col_zeros have "
                         f"{col_mean.shape[0]}/{col_var.shape[0]}/"
                         f"{col_zeros.shape[0] if count_zeros else None} entries")
    if n == 0:
        raise ValueError("activation_stats: A has no rows")
    if m == 0:
        return 0
    with nogil:
        first = &A[0, 0]
        for j in range(m):
            col_mean[j] = 0
            col_var[j] = 0
            if count_zeros:
                col_zeros[j] = 0
        # One loop per statistic over each row (in cache), so that each loop vectorises.
        for i in range(n):
            row = &A[i, 0]
            for j in range(m):
                d = <double>row[j] - <double>first[j]
                col_mean[j] += d
                col_var[j] += d * d
            if count_zeros:
                for j in range(m):
                    col_zeros[j] += row[j] == 0
            if count_saturated:
                for j in range(m):
                    saturated += (row[j] <= lower) | (row[j] >= upper)
        for j in range(m):
            s1 = col_mean[j] / n
            s2 = col_var[j] / n - s1 * s1
            col_mean[j] = <double>first[j] + s1
            col_var[j] = s2 if s2 > 0 else (0 if s2 == s2 else s2)
    return saturated


def copy_sum_squares(const floating[::1] src,   # IN
                     floating[::1] dst):        # OUT
    """dst := src;  returns Σ srcᵢ² (accumulated in double)."""
    cdef Py_ssize_t n = src.shape[0], i, b, k
    cdef double acc[LANES]
    cdef double total = 0
    if dst.shape[0] != n:
        raise ValueError(f"copy_sum_squares: src has {n} elements, dst has {dst.shape[0]}")
    with nogil:
        for k in range(LANES):
            acc[k] = 0
        for b in range(n // LANES):
            i = b * LANES
            for k in range(LANES):
                dst[i + k] = src[i + k]
                acc[k] += <double>src[i + k] * src[i + k]
        for i in range(n - n % LANES, n):
            dst[i] = src[i]
            acc[0] += <double>src[i] * src[i]
        for k in range(LANES):
            total += acc[k]
    return total


def diff_sum_squares(const floating[::1] a,   # IN
                     const floating[::1] b):  # IN
    """Σ (aᵢ − bᵢ)², the differences and the sum in double."""
    cdef Py_ssize_t n = a.shape[0], i, blk, k
    cdef double acc[LANES]
    cdef double total = 0, d
    if b.shape[0] != n:
        raise ValueError(f"diff_sum_squares: a has {n} elements, b has {b.shape[0]}")
    with nogil:
        for k in range(LANES):
            acc[k] = 0
        for blk in range(n // LANES):
            i = blk * LANES
            for k in range(LANES):
                d = <double>a[i + k] - <double>b[i + k]
                acc[k] += d * d
        for i in range(n - n % LANES, n):
            d = <double>a[i] - <double>b[i]
            acc[0] += d * d
        for k in range(LANES):
            total += acc[k]
    return total

"""Training-diagnostics kernels: per-unit statistics of an activation array in one pass.

Design: one row-major pass over A (batch, units) accumulating, per column, the sum and the
sum of squares of A[i, j] − A[0, j] (shifting by the first row keeps the one-pass variance
accurate when a unit's mean is large compared with its spread), the number of exact zeros
(a ReLU unit is dead on the batch when every row is zero) and, over the whole array, the
number of saturated entries (a <= lower or a >= upper). Accumulation is in double for
both dtypes. Called by ``fastnn.diagnostics.Monitor`` only on recorded steps.
Contract: inputs are validated, C-contiguous, one dtype; shapes are checked here so that a
wrong call raises instead of reading out of bounds. NaN entries make their column's mean
and variance NaN and are neither zero nor saturated (IEEE comparisons).
"""
from cython cimport floating


def activation_stats(const floating[:, ::1] A,      # IN  (batch, units)
                     double lower, double upper,    # IN  saturation thresholds
                     double[::1] col_mean,          # OUT (units,) mean over the batch
                     double[::1] col_var,           # OUT (units,) biased variance over the batch
                     Py_ssize_t[::1] col_zeros):    # OUT (units,) rows with A[i, j] == 0
    """col_mean_j := (1/n) Σ_i A_ij;  col_var_j := (1/n) Σ_i (A_ij − col_mean_j)²;
    col_zeros_j := #{i : A_ij = 0};  returns #{(i, j) : A_ij <= lower or A_ij >= upper}."""
    cdef Py_ssize_t n = A.shape[0], m = A.shape[1], i, j, saturated = 0
    cdef double d, s1, s2, shift
    if col_mean.shape[0] != m or col_var.shape[0] != m or col_zeros.shape[0] != m:
        raise ValueError(f"activation_stats: A has {m} columns, col_mean/col_var/col_zeros have "
                         f"{col_mean.shape[0]}/{col_var.shape[0]}/{col_zeros.shape[0]} entries")
    if n == 0:
        raise ValueError("activation_stats: A has no rows")
    with nogil:
        for j in range(m):
            col_mean[j] = 0
            col_var[j] = 0
            col_zeros[j] = 0
        for i in range(n):
            for j in range(m):
                d = <double>A[i, j] - <double>A[0, j]
                col_mean[j] += d
                col_var[j] += d * d
                if A[i, j] == 0:
                    col_zeros[j] += 1
                if A[i, j] <= lower or A[i, j] >= upper:
                    saturated += 1
        for j in range(m):
            shift = A[0, j]
            s1 = col_mean[j] / n
            s2 = col_var[j] / n - s1 * s1
            col_mean[j] = shift + s1
            col_var[j] = s2 if s2 > 0 else (0 if s2 == s2 else s2)
    return saturated

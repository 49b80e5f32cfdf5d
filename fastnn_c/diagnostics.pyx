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
Convention (fastnn_c/_kernel.pyx): each kernel takes typed memoryviews and is published as a
``Kernel``; the statistics loop indexes them (``A[i, j]``), so a ``FASTNN_DEBUG_CYTHON=1``
build bounds-checks it, and ``sum_squares_run`` is handed the runs as ``&src[0]``.
"""
from cython cimport floating
from libc.math cimport INFINITY

from fastnn_c._arrays cimport check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport sum_squares_run


def _activation_stats(const floating[:, ::1] A,        # IN (batch, units), batch > 0
                      double lower, double upper,
                      double[::1] col_mean,            # OUT (units,) float64
                      double[::1] col_var,             # OUT (units,) float64
                      Py_ssize_t[::1] col_nonpositive):  # OUT (units,) intp, or None
    """col_mean_j := (1/n) Σ_i A_ij;  col_var_j := (1/n) Σ_i (A_ij − col_mean_j)²;
    col_nonpositive_j := #{i : A_ij <= 0};  returns #{(i, j) : A_ij <= lower or A_ij >= upper}.

    ``A`` (batch, units), batch > 0; ``col_mean``, ``col_var`` (units,) float64;
    ``col_nonpositive`` (units,) intp, or None not to count. Saturation is not counted
    (returns 0) when lower = −inf and upper = +inf.
    """
    cdef str kernel = "activation_stats"
    cdef Py_ssize_t i, j, n = A.shape[0], m = A.shape[1], saturated = 0
    cdef bint count_nonpositive = col_nonpositive is not None
    cdef bint count_saturated = not (lower == -INFINITY and upper == INFINITY)
    cdef double d, s1, s2
    check_vector(kernel, "col_mean", col_mean.shape[0], m)
    check_vector(kernel, "col_var", col_var.shape[0], m)
    if count_nonpositive:
        check_vector(kernel, "col_nonpositive", col_nonpositive.shape[0], m)
    if n == 0:
        raise ValueError(f"{kernel}: A has no rows")
    if m == 0:
        return 0
    with nogil:
        for j in range(m):
            col_mean[j] = 0
            col_var[j] = 0
            if count_nonpositive:
                col_nonpositive[j] = 0
        # One loop per statistic over each row (in cache), so that each loop vectorises.
        for i in range(n):
            for j in range(m):
                d = <double>A[i, j] - <double>A[0, j]
                col_mean[j] += d
                col_var[j] += d * d
            if count_nonpositive:
                for j in range(m):
                    col_nonpositive[j] += A[i, j] <= 0
            if count_saturated:
                for j in range(m):
                    saturated += (A[i, j] <= lower) | (A[i, j] >= upper)
        for j in range(m):
            s1 = col_mean[j] / n
            s2 = col_var[j] / n - s1 * s1
            col_mean[j] = <double>A[0, j] + s1
            col_var[j] = s2 if s2 > 0 else (0 if s2 == s2 else s2)
    return saturated


def _copy_sum_squares(const floating[::1] src,  # IN, any shape read as one run
                      floating[::1] dst):       # OUT like src
    """dst := src;  returns Σ srcᵢ² (accumulated in double).  ``src`` any shape, ``dst`` the same."""
    cdef Py_ssize_t n = src.shape[0]
    cdef double total
    check_vector("copy_sum_squares", "dst", dst.shape[0], n)
    if n == 0:
        return 0.0  # what sum_squares_run gives: its partial sums start at +0
    with nogil:
        total = sum_squares_run(&src[0], <floating*>NULL, &dst[0], NULL, n)
    return total


def _diff_sum_squares(const floating[::1] a,  # IN, any shape read as one run
                      const floating[::1] b):  # IN like a
    """Σ (aᵢ − bᵢ)², the differences and the sum in double.  ``a`` any shape, ``b`` the same."""
    cdef Py_ssize_t n = a.shape[0]
    cdef double total
    check_vector("diff_sum_squares", "b", b.shape[0], n)
    if n == 0:
        return 0.0
    with nogil:
        total = sum_squares_run(&a[0], &b[0], <floating*>NULL, NULL, n)
    return total


activation_stats = Kernel(_activation_stats, "activation_stats", "A:2", "lower", "upper",
                          "col_mean:1:float64!", "col_var:1:float64!",
                          "col_nonpositive:1:intp?!")
copy_sum_squares = Kernel(_copy_sum_squares, "copy_sum_squares", "src:*", "dst:*!")
diff_sum_squares = Kernel(_diff_sum_squares, "diff_sum_squares", "a:*", "b:*")

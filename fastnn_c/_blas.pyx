"""BLAS thread control, the CPU feature test, and a test entry point for the row-major GEMM wrapper."""
from cython cimport floating

from fastnn_c._blas cimport gemm, scipy_openblas_get_num_threads, scipy_openblas_set_num_threads


cdef extern from "_cpu_features.h" nogil:
    int FNN_CPU_N_FEATURES
    const char* fnn_cpu_feature_names[]
    int fnn_cpu_features()


#: Every CPU feature that ``cpu_features()`` can report (the names fastnn_c/_manifest.py uses).
CPU_FEATURES = tuple(fnn_cpu_feature_names[i].decode() for i in range(FNN_CPU_N_FEATURES))


def cpu_features():
    """The SIMD features this CPU has and its OS enables, as a frozenset of CPU_FEATURES names."""
    cdef int bits = fnn_cpu_features()
    return frozenset(name for i, name in enumerate(CPU_FEATURES) if bits >> i & 1)


def blas_set_num_threads(int n_threads):
    """Set the number of OpenBLAS threads (process-wide)."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    scipy_openblas_set_num_threads(n_threads)


def blas_get_num_threads():
    """Number of threads OpenBLAS uses for GEMM."""
    return scipy_openblas_get_num_threads()


def gemm_memview(bint trans_a, bint trans_b, double alpha,
                 const floating[:, ::1] a, const floating[:, ::1] b,
                 double beta, floating[:, ::1] c):
    """C := alpha * op(A) op(B) + beta * C (for tests and benchmarks)."""
    cdef int m = a.shape[1] if trans_a else a.shape[0]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int kb = b.shape[1] if trans_b else b.shape[0]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    if kb != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"gemm shapes do not agree: op(A) is ({m}, {k}), op(B) is ({kb}, {n}), "
                         f"C is ({c.shape[0]}, {c.shape[1]})")
    cdef Py_ssize_t i, j
    if m == 0 or n == 0:
        return
    if k == 0:
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j]
        return
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], <floating>beta, &c[0, 0], n)

"""BLAS thread control and a test entry point for the row-major GEMM wrapper."""
from cython cimport floating

from fastnn_c._blas cimport gemm, scipy_openblas_get_num_threads, scipy_openblas_set_num_threads


cdef extern from *:
    """
    static int fastnn_cpu_simd_level(void) {
    #if defined(__GNUC__) && defined(__x86_64__)
        __builtin_cpu_init();
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            return 0;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
            return 2;
        return 1;
    #else
        return 0;
    #endif
    }
    """
    int fastnn_cpu_simd_level() nogil


def cpu_simd_level():
    """The widest kernel build this CPU runs: "avx512", "avx2" (with FMA) or "generic"."""
    return ("generic", "avx2", "avx512")[fastnn_cpu_simd_level()]


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


cdef struct GemmCall:
    bint trans_a, trans_b
    int m, n, k, lda, ldb, ldc
    size_t a, b, c


def gemm_sequence_seconds(list calls, int repeats=50, bint warm_up=True):
    """Best seconds for one pass over ``calls`` = [(trans_a, trans_b, A, B, C), ...] run back to back.

    All arrays C-contiguous and of one dtype (float32 or float64). Used by the benchmarks as
    the "GEMM floor" of a training step: the same products with nothing around them.
    """
    from time import perf_counter
    import numpy as np

    cdef Py_ssize_t n_calls = len(calls), i, r
    cdef GemmCall[64] plan
    cdef bint single
    if not 0 < n_calls <= 64:
        raise ValueError(f"calls must hold 1 to 64 products, got {n_calls}")
    dtype = np.asarray(calls[0][2]).dtype
    single = dtype == np.float32
    for i, (ta, tb, A, B, C) in enumerate(calls):
        for arr in (A, B, C):
            if arr.dtype != dtype or not arr.flags.c_contiguous or arr.ndim != 2:
                raise ValueError("gemm_sequence_seconds needs 2-D C-contiguous arrays of one dtype")
        plan[i].trans_a, plan[i].trans_b = ta, tb
        plan[i].m = A.shape[1] if ta else A.shape[0]
        plan[i].k = A.shape[0] if ta else A.shape[1]
        plan[i].n = B.shape[0] if tb else B.shape[1]
        if (B.shape[1] if tb else B.shape[0]) != plan[i].k or C.shape != (plan[i].m, plan[i].n):
            raise ValueError(f"calls[{i}]: shapes do not agree")
        plan[i].lda, plan[i].ldb, plan[i].ldc = A.shape[1], B.shape[1], C.shape[1]
        plan[i].a = A.ctypes.data
        plan[i].b = B.ctypes.data
        plan[i].c = C.ctypes.data
    best = float("inf")
    for r in range(0 if warm_up else 1, repeats + 1):
        start = perf_counter()
        with nogil:
            for i in range(n_calls):
                if single:
                    gemm(plan[i].trans_a, plan[i].trans_b, plan[i].m, plan[i].n, plan[i].k,
                         <float>1.0, <float*>plan[i].a, plan[i].lda, <float*>plan[i].b, plan[i].ldb,
                         <float>0.0, <float*>plan[i].c, plan[i].ldc)
                else:
                    gemm(plan[i].trans_a, plan[i].trans_b, plan[i].m, plan[i].n, plan[i].k,
                         <double>1.0, <double*>plan[i].a, plan[i].lda, <double*>plan[i].b, plan[i].ldb,
                         <double>0.0, <double*>plan[i].c, plan[i].ldc)
        if r:  # pass 0 warms caches and threads
            best = min(best, perf_counter() - start)
    return best

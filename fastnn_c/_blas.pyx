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


cdef struct GemmCall:
    bint trans_a, trans_b
    int m, n, k, lda, ldb, ldc
    size_t a, b, c


cdef class GemmSequence:
    """Products [(trans_a, trans_b, A, B, C), ...], C = op(A) op(B), that ``run()`` does back to back.

    The benchmarks' "GEMM floor": a training step's products with nothing around them, one
    Python call per pass. Arrays: 2-D, C-contiguous, all float32 or all float64 (kept alive
    here; at most 64 products).
    """
    cdef GemmCall plan[64]
    cdef Py_ssize_t n_calls
    cdef bint single
    cdef list arrays

    def __init__(self, list calls):
        import numpy as np

        cdef Py_ssize_t i
        self.n_calls = len(calls)
        if not 0 < self.n_calls <= 64:
            raise ValueError(f"calls must hold 1 to 64 products, got {self.n_calls}")
        dtype = np.asarray(calls[0][2]).dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"GemmSequence needs float32 or float64 arrays, got {dtype}")
        self.single = dtype == np.float32
        self.arrays = []
        for i, (ta, tb, A, B, C) in enumerate(calls):
            for arr in (A, B, C):
                if arr.dtype != dtype or not arr.flags.c_contiguous or arr.ndim != 2:
                    raise ValueError(f"calls[{i}]: GemmSequence needs 2-D C-contiguous {dtype} arrays")
            self.plan[i].trans_a, self.plan[i].trans_b = ta, tb
            self.plan[i].m = A.shape[1] if ta else A.shape[0]
            self.plan[i].k = A.shape[0] if ta else A.shape[1]
            self.plan[i].n = B.shape[0] if tb else B.shape[1]
            if ((B.shape[1] if tb else B.shape[0]) != self.plan[i].k
                    or C.shape != (self.plan[i].m, self.plan[i].n)):
                raise ValueError(f"calls[{i}]: shapes do not agree")
            self.plan[i].lda, self.plan[i].ldb, self.plan[i].ldc = A.shape[1], B.shape[1], C.shape[1]
            self.plan[i].a, self.plan[i].b, self.plan[i].c = A.ctypes.data, B.ctypes.data, C.ctypes.data
            self.arrays += [A, B, C]

    def run(self):
        """Do every product once."""
        cdef Py_ssize_t i
        cdef GemmCall* call
        with nogil:
            for i in range(self.n_calls):
                call = &self.plan[i]
                if self.single:
                    gemm(call.trans_a, call.trans_b, call.m, call.n, call.k, <float>1.0,
                         <float*>call.a, call.lda, <float*>call.b, call.ldb,
                         <float>0.0, <float*>call.c, call.ldc)
                else:
                    gemm(call.trans_a, call.trans_b, call.m, call.n, call.k, <double>1.0,
                         <double*>call.a, call.lda, <double*>call.b, call.ldb,
                         <double>0.0, <double*>call.c, call.ldc)

"""Thread settings shared by every kernel call.

One multi-threaded pool at a time: GEMM runs on OpenBLAS's threads; fastnn's own OpenMP
loops are threaded only for arrays of at least ``PARALLEL_MIN_ELEMENTS`` elements, below
which two threads cost more than they save (see benchmarks/README.md).
"""
import os

from fastnn_c import _blas

PARALLEL_MIN_ELEMENTS = 65536

_n_threads = min(os.cpu_count() or 1, _blas.blas_get_num_threads())


def set_num_threads(n_threads):
    """Use ``n_threads`` threads for GEMM (OpenBLAS) and for large elementwise kernels."""
    global _n_threads
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads!r}")
    _blas.blas_set_num_threads(n_threads)
    _n_threads = n_threads


def get_num_threads():
    """Number of threads fastnn's kernels use."""
    return _n_threads


def elementwise_threads(n_elements):
    """Threads to use for an elementwise kernel over ``n_elements`` values."""
    return _n_threads if n_elements >= PARALLEL_MIN_ELEMENTS else 1

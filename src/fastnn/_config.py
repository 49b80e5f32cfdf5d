"""Thread settings shared by every kernel call.

One multi-threaded pool at a time: GEMM runs on OpenBLAS's threads (about 1.9x faster on two
cores at the MLP shapes); fastnn's own OpenMP loops are threaded only where it pays,
measured on 512x1024 float32 with two cores: waking the sleeping second thread costs
40-80 us, so memory-bound passes (ReLU, the backward passes, applying a mask) stay on one
thread (ReLU forward 39 -> 81 us on two), and compute-bound ones (exp, tanh, log1p, random
numbers) of at least ``PARALLEL_MIN_ELEMENTS`` values are threaded where they gain: the
dropout mask (385 -> 258 us) and, per SIMD build, the activations listed in
``fastnn.layers.THREADED_FORWARD`` / ``THREADED_BACKWARD``.
"""
import os

from fastnn_c import _blas

PARALLEL_MIN_ELEMENTS = 65536
#: Batch norm's passes (float arithmetic since this session) are lighter still: forward +
#: backward on two threads lost up to 1M values (512x1024: 270 -> 351 us; 1024x1024: 490 ->
#: 531 us) and won from 2M (2048x1024: 1872 -> 1543 us; 2048x2048: 5180 -> 3132 us).
BATCHNORM_PARALLEL_MIN_ELEMENTS = 2**21

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


def elementwise_threads(n_elements, compute_bound, minimum=PARALLEL_MIN_ELEMENTS):
    """Threads for an elementwise pass over ``n_elements`` values (see the module docstring)."""
    return _n_threads if compute_bound and n_elements >= minimum else 1

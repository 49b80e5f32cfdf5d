"""Thread settings shared by every kernel call.

fastnn has one thread count: that of its OpenBLAS (``set_num_threads``, or any tool that
sets OpenBLAS's, such as threadpoolctl's ``threadpool_limits``). GEMM runs on OpenBLAS's
threads. fastnn's own OpenMP loops use them too, but only where idle OpenMP workers sleep
(``OMP_WAIT_POLICY=PASSIVE`` in the environment, a setting for the whole process that fastnn
leaves to you) and where a pass is large and compute-bound enough to pay for waking them;
otherwise they run on the calling thread. Measurements: benchmarks/README.md, "OpenMP wait
policy" and "Threads for elementwise loops".
"""
import os
import sys

from fastnn_c import SIMD as _SIMD
from fastnn_c import _blas

#: Compute-bound passes (exp, tanh, log1p, random numbers) below this many values lose more
#: to waking a second thread than they gain from it.
PARALLEL_MIN_ELEMENTS = 65536
#: Batch norm's passes are lighter: two threads start to win from about 2M values.
BATCHNORM_PARALLEL_MIN_ELEMENTS = 2**21

#: Spinning OpenMP workers (the runtime's default) starve OpenBLAS's threads, so fastnn's
#: loops stay on one thread unless the user made idle workers sleep.
_OPENMP_WORKERS_SLEEP = os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def set_num_threads(n_threads):
    """Use ``n_threads`` threads for GEMM (OpenBLAS) and for large elementwise kernels."""
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads!r}")
    _blas.blas_set_num_threads(n_threads)


def get_num_threads():
    """Number of threads fastnn's kernels use (its OpenBLAS's thread count)."""
    return _blas.blas_get_num_threads()


def elementwise_threads(n_elements, compute_bound, minimum=PARALLEL_MIN_ELEMENTS):
    """Threads for an elementwise pass over ``n_elements`` values: one, unless idle OpenMP
    workers sleep and the pass is compute-bound and at least ``minimum`` long."""
    if _OPENMP_WORKERS_SLEEP and compute_bound and n_elements >= minimum:
        return _blas.blas_get_num_threads()
    return 1


#: A row count here replaces ``small_batch_rows``'s rule.
_SMALL_BATCH_ROWS_ENV = "FASTNN_SMALL_BATCH_ROWS"
#: OpenBLAS's kernels that use AVX-512 (the names ``blas_core_name`` returns, lower-cased).
_AVX512_BLAS_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
#: Above this many rows, two or more OpenBLAS threads beat the micro-kernel on one
#: (measured on a 2-core AMD EPYC VM; benchmarks/README.md, "Small-batch dense kernels").
THREADED_BLAS_ROWS = 32


def small_batch_rows(dtype):
    """The most rows for which a training-mode dense forward product runs on fastnn's
    micro-kernel (``fastnn_c.dense.dense_small_forward``, W read where it is, on the calling
    thread) rather than through OpenBLAS's GEMM.

    A rule, not a timing, so that a seeded training gives the same weights in every process
    on a machine: the micro-kernel is used only where its SIMD level is wider than OpenBLAS's
    kernels (fastnn's AVX-512 build against OpenBLAS's AVX2 ones, as on AMD CPUs or under
    ``OPENBLAS_CORETYPE=Haswell``; there it measured 2x OpenBLAS per core): for every batch
    with one thread, up to ``THREADED_BLAS_ROWS`` rows with more. Otherwise 0 (always GEMM).
    ``FASTNN_SMALL_BATCH_ROWS`` in the environment replaces the rule with its value.
    """
    override = os.environ.get(_SMALL_BATCH_ROWS_ENV, "").strip()
    if override:
        if not override.isdigit():
            raise ValueError(f"{_SMALL_BATCH_ROWS_ENV} must be a row count >= 0, got {override!r}")
        return int(override)
    if _SIMD != "avx512" or _blas.blas_core_name().lower() in _AVX512_BLAS_CORES:
        return 0
    return sys.maxsize if _blas.blas_get_num_threads() == 1 else THREADED_BLAS_ROWS

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


#: "1" or "0" here replaces ``micro_kernel_threads``'s rule: fastnn's kernel always or never.
_MICRO_KERNEL_ENV = "FASTNN_MICRO_KERNEL"
#: OpenBLAS's kernels that use AVX-512 (the names ``blas_core_name`` returns, lower-cased).
_AVX512_BLAS_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


def micro_kernel_threads():
    """Threads for the training-mode dense products on fastnn's micro-kernel
    (``fastnn_c.dense.dense_small_forward`` and the ``micro`` argument of the backward
    kernels), or 0 where they run through OpenBLAS's GEMM.

    A rule, not a timing, so that a seeded training gives the same weights in every process
    on a machine: the micro-kernel where its SIMD level is wider than OpenBLAS's kernels
    (fastnn's AVX-512 build against OpenBLAS's AVX2 ones, as on AMD CPUs or under
    ``OPENBLAS_CORETYPE=Haswell``, where it measured 2x OpenBLAS per core), on fastnn's
    thread count; then no OpenBLAS thread runs in a training step, so fastnn's OpenMP
    threads have the cores to themselves. ``FASTNN_MICRO_KERNEL=1`` or ``0`` in the
    environment replaces the rule.
    """
    override = os.environ.get(_MICRO_KERNEL_ENV, "").strip()
    if override not in ("", "0", "1"):
        raise ValueError(f"{_MICRO_KERNEL_ENV} must be 0 or 1, got {override!r}")
    if override == "0" or (not override and (
            _SIMD != "avx512" or _blas.blas_core_name().lower() in _AVX512_BLAS_CORES)):
        return 0
    return _blas.blas_get_num_threads()

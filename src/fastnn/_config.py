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
import time

import numpy as np

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


#: Set to a row count to skip the calibration below (e.g. to keep one measured earlier).
_SMALL_BATCH_ROWS_ENV = "FASTNN_SMALL_BATCH_ROWS"
_small_batch_rows = {}  # (dtype name, BLAS threads) -> rows


def small_batch_rows(dtype):
    """The most rows for which a training-mode dense forward product runs on fastnn's
    micro-kernel (``fastnn_c.dense.dense_small_forward``, reading W where it is, on the
    calling thread) rather than through the BLAS's GEMM (threaded).

    Where they cross depends on the machine: on the BLAS's kernels for this CPU, the caches,
    the thread count. So it is measured here, once per process, dtype and BLAS thread count,
    on a 512x512 layer: the micro-kernel and GEMM are timed (best of 5, interleaved) at 16,
    32, 64, ... rows until GEMM wins, 10-50 ms in all. ``FASTNN_SMALL_BATCH_ROWS`` in the
    environment replaces the measurement with its value (0: always GEMM).
    """
    dtype = np.dtype(dtype)
    key = (dtype.name, _blas.blas_get_num_threads())
    rows = _small_batch_rows.get(key)
    if rows is None:
        override = os.environ.get(_SMALL_BATCH_ROWS_ENV, "").strip()
        if override:
            if not override.isdigit():
                raise ValueError(f"{_SMALL_BATCH_ROWS_ENV} must be a row count >= 0, got {override!r}")
            rows = int(override)
        else:
            rows = _calibrate(dtype)
        _small_batch_rows[key] = rows
    return rows


def _calibrate(dtype, width=512, start=16, stop=1024):
    from fastnn_c import dense  # the kernels are timed, not the Python around them

    rng = np.random.default_rng(0)
    W = rng.standard_normal((width, width)).astype(dtype)
    b = np.zeros(width, dtype)

    rows = start
    while rows <= stop:
        X = rng.standard_normal((rows, width)).astype(dtype)
        Y = np.empty((rows, width), dtype)
        mine = blas = np.inf
        for _ in range(5):  # interleaved, so that a noisy spell hits both alike
            t = time.perf_counter()
            dense.dense_small_forward(X, W, b, Y, 0)
            mine = min(mine, time.perf_counter() - t)
            t = time.perf_counter()
            dense.dense_activation_forward(X, W, b, Y, 0)
            blas = min(blas, time.perf_counter() - t)
        if mine > blas:
            return rows // 2
        rows *= 2
    return stop

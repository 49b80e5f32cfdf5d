"""Thread settings shared by every kernel call.

fastnn has one thread count: that of its OpenBLAS (``set_num_threads``, or any tool that
sets OpenBLAS's, such as threadpoolctl's ``threadpool_limits``). GEMM runs on OpenBLAS's
threads; fastnn's own OpenMP loops run on that many threads only where a pass is large and
compute-bound enough to pay for waking them, and on one thread otherwise, so that one pool
works at a time. Measurements: benchmarks/README.md, "Threads for elementwise loops".

fastnn never sets ``OMP_WAIT_POLICY``, which would change every OpenMP library in the
process; see "OpenMP wait policy" there for what setting it yourself gains.
"""
from fastnn_c import _blas

#: Compute-bound passes (exp, tanh, log1p, random numbers) below this many values lose more
#: to waking a second thread than they gain from it.
PARALLEL_MIN_ELEMENTS = 65536
#: Batch norm's passes are lighter: two threads start to win from about 2M values.
BATCHNORM_PARALLEL_MIN_ELEMENTS = 2**21


def set_num_threads(n_threads):
    """Use ``n_threads`` threads for GEMM (OpenBLAS) and for large elementwise kernels."""
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads!r}")
    _blas.blas_set_num_threads(n_threads)


def get_num_threads():
    """Number of threads fastnn's kernels use (its OpenBLAS's thread count)."""
    return _blas.blas_get_num_threads()


def elementwise_threads(n_elements, compute_bound, minimum=PARALLEL_MIN_ELEMENTS):
    """Threads for an elementwise pass over ``n_elements`` values: one unless the pass is
    compute-bound and at least ``minimum`` long."""
    if compute_bound and n_elements >= minimum:
        return _blas.blas_get_num_threads()
    return 1

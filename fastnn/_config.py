"""Thread settings shared by every kernel call.

fastnn has one thread count: that of its OpenBLAS (``set_num_threads``, or any tool that
sets OpenBLAS's, such as threadpoolctl's ``threadpool_limits``). Two pools can use it:
OpenBLAS's threads (its GEMM) and OpenMP's (fastnn's own loops), and they must not both be
busy at once: each pool's idle workers spin and starve the other's. So a training step
uses one of them. Wherever fastnn's build is AVX-512 (``micro_kernel_threads``) the step's
products run on its micro-kernel over OpenMP, and the elementwise passes thread too.
Elsewhere the products run through OpenBLAS and fastnn's loops stay on the calling thread,
unless idle OpenMP workers sleep (``OMP_WAIT_POLICY=PASSIVE`` in the environment, a setting
for the whole process that fastnn leaves to you). Prediction's compiled pass never calls
OpenBLAS and threads over OpenMP. Measurements: benchmarks/README.md, "OpenMP wait
policy", "Threads for elementwise loops", "Small-batch dense kernels" and "Which kernel
trains".
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
    """Use ``n_threads`` threads for GEMM (OpenBLAS) and for large elementwise kernels.

    This also fixes the count for training: without it (and without ``OMP_NUM_THREADS`` or
    ``OPENBLAS_NUM_THREADS`` in the environment), ``fit`` may train on one thread while one
    measures faster (``StepThreads``).
    """
    if not isinstance(n_threads, int) or isinstance(n_threads, bool) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive int, got {n_threads!r}")
    _blas.blas_set_num_threads(n_threads)
    _pinned.append(n_threads)


def get_num_threads():
    """Number of threads fastnn's kernels use (its OpenBLAS's thread count)."""
    return _blas.blas_get_num_threads()


def elementwise_threads(n_elements, compute_bound, minimum=PARALLEL_MIN_ELEMENTS):
    """Threads for an elementwise pass over ``n_elements`` values.

    Where idle OpenMP workers sleep (``OMP_WAIT_POLICY=PASSIVE``): all of fastnn's threads
    for a compute-bound pass of at least ``minimum`` values, else one. Where the training
    products run on fastnn's micro-kernel over several threads (``micro_kernel_threads``), no
    OpenBLAS thread competes with OpenMP's spinning workers, which wake at once: all threads
    for a compute-bound pass of at least ``SPINNING_MIN_ELEMENTS`` values, or a
    memory-bound one whose data (input and output) spans more than one core's L2 cache.
    Otherwise one.
    """
    threads = _blas.blas_get_num_threads()
    if threads == 1:
        return 1
    if _OPENMP_WORKERS_SLEEP:
        return threads if compute_bound and n_elements >= minimum else 1
    if micro_kernel_threads() > 1:
        if compute_bound:
            return threads if n_elements >= SPINNING_MIN_ELEMENTS else 1
        return threads if 8 * n_elements > l2_cache_bytes() else 1
    return 1


#: With spinning workers, a compute-bound pass (exp, tanh) over this many float32 values
#: already gains from a second thread (sigmoid forward on 128x256: 5.6 -> 3.7 µs on 2 cores).
SPINNING_MIN_ELEMENTS = 32768
_l2_bytes = []


def l2_cache_bytes():
    """One core's L2 cache in bytes (Linux's sysfs; 1 MiB where it cannot be read)."""
    if not _l2_bytes:
        try:
            with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
                text = f.read().strip().upper()
            size = int(text.rstrip("KM")) * {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        except (OSError, ValueError):
            size = 1 << 20
        _l2_bytes.append(size)
    return _l2_bytes[0]


#: "1" or "0" here replaces ``micro_kernel_threads``'s rule: fastnn's kernel always or never.
_MICRO_KERNEL_ENV = "FASTNN_MICRO_KERNEL"


def micro_kernel_threads():
    """Threads for the training-mode dense products on fastnn's micro-kernel (the ``micro``
    argument of ``fastnn_c.dense``'s forward and backward kernels), or 0 where they run
    through OpenBLAS's GEMM.

    A rule, not a timing, so that a seeded training gives the same weights in every process
    on a machine: the micro-kernel wherever fastnn's build runs AVX-512, on fastnn's thread
    count. There its 12 x 32 tiles keep level with OpenBLAS's AVX-512 kernels per core and
    measured 2x its AVX2 ones (benchmarks/README.md, "Which kernel trains"), and no OpenBLAS
    thread then runs in a training step, so fastnn's OpenMP threads have the cores to
    themselves and the elementwise passes can thread too. Below AVX-512, OpenBLAS's GEMM
    measured faster than the micro-kernel's 6-row tiles. ``FASTNN_MICRO_KERNEL=1`` or ``0``
    in the environment replaces the rule.
    """
    mode = _micro_kernel_mode
    if mode == "1" or (not mode and _SIMD == "avx512"):
        return _blas.blas_get_num_threads()
    if mode not in ("", "0"):
        raise ValueError(f"{_MICRO_KERNEL_ENV} must be 0 or 1, got {mode!r}")
    return 0


def dense_backend():
    """``(threads, blas)`` for the training kernels of ``fastnn_c.dense``: the micro-kernel
    over ``micro_kernel_threads()`` threads, or the BLAS (its own threads) where that is 0."""
    threads = micro_kernel_threads()
    return (threads, False) if threads else (1, True)


#: Read once, at import, as OMP_WAIT_POLICY is: every dense product and elementwise pass asks.
_micro_kernel_mode = os.environ.get(_MICRO_KERNEL_ENV, "").strip()
#: Counts given to ``set_num_threads`` (any entry fixes the count), or the environment's.
_pinned = [name for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if os.environ.get(name)]


class StepThreads:
    """The thread count of a training run, chosen between fastnn's count and one by timing
    the steps, where a step's result does not depend on it.

    A parallel region ends when its last thread does. With another process busy on one of
    two cores, a worker waits for that core at every region: two threads trained 2.5x slower
    than one (``fastnn train``, 5-8x under heavier load; benchmarks/README.md, "Threads
    under load"). So, as
    a context manager around the steps, this times ``PROBE_STEPS`` steps on one thread and
    as many on all (each after one untimed step: libgomp starts its workers again when the
    team grows), trains on the faster, and probes again after ``REPROBE_SECONDS`` or
    ``PROBE_SHARE`` times the probe's own cost, whichever is longer, or at once when
    ``PROBE_STEPS`` steps in a row take twice what the probe measured. It changes nothing
    where the count is fixed (``set_num_threads``, ``OMP_NUM_THREADS`` or
    ``OPENBLAS_NUM_THREADS``), is one, or where the products run on OpenBLAS, whose results
    depend on its thread count: a seeded training gives the same weights whatever the
    machine's load. The count is restored on exit.
    """

    PROBE_STEPS = 3
    REPROBE_SECONDS = 2.0
    PROBE_SHARE = 30

    def __init__(self):
        self.full = _blas.blas_get_num_threads()
        self.enabled = not _pinned and self.full > 1 and not dense_backend()[1]
        self.chosen = self.full
        self._probe()

    def __enter__(self):
        if self.enabled:
            _blas.blas_set_num_threads(self.plan[0][0])
        return self

    def __exit__(self, *exc_info):
        if self.enabled:
            _blas.blas_set_num_threads(self.full)
        return False

    def _probe(self):
        """Plan the next steps: (threads, timed) for one untimed and PROBE_STEPS timed
        steps on each count."""
        self.plan = [(n, i > 0) for n in (1, self.full) for i in range(self.PROBE_STEPS + 1)]
        self.trials = {}
        self.probe_cost = self.run_time = 0.0
        self.slow_steps = 0

    def step_done(self, seconds):
        """Record the last step's time and set the count for the next."""
        if not self.enabled:
            return
        if self.plan:
            threads, timed = self.plan.pop(0)
            self.probe_cost += seconds
            if timed:
                self.trials.setdefault(threads, []).append(seconds)
            if not self.plan:
                medians = {n: sorted(t)[len(t) // 2] for n, t in self.trials.items()}
                self.chosen = min(medians, key=lambda n: (medians[n], -n))
                self.expected = medians[self.chosen]
        else:
            self.run_time += seconds
            self.slow_steps = self.slow_steps + 1 if seconds > 2 * self.expected else 0
            if (self.run_time > max(self.REPROBE_SECONDS, self.PROBE_SHARE * self.probe_cost)
                    or self.slow_steps >= self.PROBE_STEPS):
                self._probe()
        _blas.blas_set_num_threads(self.plan[0][0] if self.plan else self.chosen)

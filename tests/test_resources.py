"""Resources and concurrency: no leaks, the GIL is released safely, seeded runs are bit-identical."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _train(seed, steps, X, y, threads_barrier=None):
    net = fastnn.mlp([X.shape[1], 32, 16, 4], activation="tanh", rng=seed)
    opt = fastnn.SGD(net.parameters(), lr=0.05)
    if threads_barrier is not None:
        threads_barrier.wait()
    for step in range(steps):
        rows = slice((step * 16) % len(X), (step * 16) % len(X) + 16)
        net.train_step(X[rows], y[rows], opt)
    return net.state_dict()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 40)).astype(np.float32)
    return X, (X[:, :4].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 4] > 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.slow
def test_resident_memory_stays_flat_over_20000_steps(data):
    X, y = data
    net = fastnn.mlp([40, 64, 32, 4], rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.01)
    for _ in range(2000):  # warm-up: buffers, caches and the allocator settle
        net.train_step(X[:32], y[:32], opt)
    before = _rss_bytes()
    for step in range(20000):
        rows = slice((step * 32) % 480, (step * 32) % 480 + 32)
        net.train_step(X[rows], y[rows], opt)
        if step % 1000 == 0:
            net.evaluate(X, y)
    growth = _rss_bytes() - before
    assert growth < 2 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"


def test_two_networks_in_two_threads_match_sequential_training(data):
    X, y = data
    sequential = [_train(seed, 300, X, y) for seed in (1, 2)]
    results = [None, None]
    barrier = threading.Barrier(2)

    def work(i, seed):
        results[i] = _train(seed, 300, X, y, barrier)

    threads = [threading.Thread(target=work, args=(i, seed)) for i, seed in enumerate((1, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for expected, got in zip(sequential, results, strict=True):
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_same_seed_same_thread_count_gives_bit_identical_weights(data):
    X, y = data
    first, second = _train(7, 200, X, y), _train(7, 200, X, y)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def _ticks_during(call):
    """How often a Python thread that sleeps 1 ms between ticks (the GIL free while it
    sleeps) woke and ticked while ``call()`` (one kernel call) ran in this thread, and the
    call's seconds. Each tick needs the GIL: a call that keeps it for its whole run lets
    the ticker through only around the call's start and end (a tick or two), one that
    releases it about once per millisecond."""
    ticks = []
    started, done = threading.Event(), threading.Event()

    def count():
        started.set()
        while not done.is_set():
            time.sleep(0.001)
            ticks.append(1)

    counter = threading.Thread(target=count)
    counter.start()
    started.wait()
    try:
        before = len(ticks)
        t = time.perf_counter()
        call()
        seconds = time.perf_counter() - t
        during = len(ticks) - before
    finally:
        done.set()
        counter.join()
    return during, seconds


def _gil_kernels():
    """(name, one call of a real kernel lasting tens of ms): the dense forward and backward
    (GEMM and micro-kernel paths), an activation, batch norm's training forward and backward,
    and the compiled prediction pass (``DenseStack``)."""
    from fastnn import inference
    from fastnn_c import activations, batchnorm, dense

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2048, 1024)).astype(np.float32)
    W = rng.standard_normal((1024, 1024)).astype(np.float32)
    b = np.zeros(1024, np.float32)
    Y, dX, dW, db = np.empty((2048, 1024), np.float32), np.empty_like(X), np.empty_like(W), np.empty_like(b)
    Z = rng.standard_normal((4096, 8192)).astype(np.float32)
    A = np.empty_like(Z)
    big = rng.standard_normal((16384, 1024)).astype(np.float32)
    out, dbig = np.empty_like(big), np.empty_like(big)
    n = big.shape[1]
    gamma, beta = np.ones(n, np.float32), np.zeros(n, np.float32)
    rm, rv = np.zeros(n, np.float32), np.ones(n, np.float32)
    mean, inv_std, dg, dbeta = np.empty(n), np.empty(n), np.empty(n, np.float32), np.empty(n, np.float32)
    net = fastnn.mlp([1024, 1024, 1024, 10], rng=0)
    stack = inference.compile_forward(net.layers, net.dtype, "softmax")
    tanh = activations.KINDS["tanh"]
    return [
        ("dense_forward (BLAS)", lambda: dense.dense_forward(X, W, b, Y, blas=True)),
        ("dense_forward (micro-kernel)", lambda: dense.dense_forward(X, W, b, Y, threads=1)),
        ("dense_backward", lambda: dense.dense_backward(X, W, Y, dW, db, dX, threads=1)),
        ("activation_forward", lambda: activations.activation_forward(tanh, Z, A, 0.0, 1)),
        ("batchnorm_forward_train", lambda: batchnorm.batchnorm_forward_train(
            big, gamma, beta, rm, rv, 0.1, 1e-5, out, mean, inv_std, 1)),
        ("batchnorm_backward", lambda: batchnorm.batchnorm_backward(
            big, mean, inv_std, gamma, out, dg, dbeta, dbig, True, 1)),
        ("DenseStack (compiled predict)", lambda: stack(big)),
    ]


@pytest.mark.parametrize("index", range(7))
def test_kernels_release_the_gil(index):
    """A Python thread keeps running while the main thread is inside one real kernel call
    (a control that keeps the GIL, ``sum`` over a list, lets it advance a handful of times:
    ``test_the_gil_check_catches_a_holder``)."""
    name, call = _gil_kernels()[index]
    call()  # warm: thread pools, first-touch pages
    during, seconds = _ticks_during(call)
    assert during >= max(3, 0.1 * seconds / 0.001), (
        f"{name}: the ticking thread woke only {during} times in {seconds * 1e3:.0f} ms: "
        "the kernel holds the GIL")


def test_the_gil_check_catches_a_holder():
    values = list(range(10**7))
    sum(values)
    during, seconds = _ticks_during(lambda: sum(values))  # C code that keeps the GIL
    assert seconds > 0.02 and during < max(3, 0.1 * seconds / 0.001), (during, seconds)


def test_importing_fastnn_leaves_the_environment_alone():
    """No process-wide settings at import (OMP_WAIT_POLICY would change every OpenMP library)."""
    script = ("import json, os; before = dict(os.environ); import fastnn, fastnn_c; "
              "print(json.dumps(dict(os.environ) == before and 'OMP_WAIT_POLICY' not in os.environ))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "true"


def test_threadpoolctl_limits_fastnn(monkeypatch):
    """fastnn's thread count is its OpenBLAS's, so threadpoolctl's BLAS limit covers GEMM and
    the threaded elementwise passes alike."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy_openblas32

    from fastnn import _config

    monkeypatch.setattr(_config, "_OPENMP_WORKERS_SLEEP", True)
    ours = [pool for pool in threadpoolctl.threadpool_info()
            if os.path.dirname(pool["filepath"]) == os.path.realpath(scipy_openblas32.get_lib_dir())]
    assert len(ours) == 1 and ours[0]["internal_api"] == "openblas"
    large = _config.PARALLEL_MIN_ELEMENTS
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(2)
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert fastnn.get_num_threads() == 1
            assert _config.elementwise_threads(large, compute_bound=True) == 1
        assert fastnn.get_num_threads() == 2
        assert _config.elementwise_threads(large, compute_bound=True) == 2
        assert _config.elementwise_threads(large - 1, compute_bound=True) == 1
        assert _config.elementwise_threads(10 * large, compute_bound=False) == 1
    finally:
        fastnn.set_num_threads(before)


def test_elementwise_passes_stay_on_one_thread_while_openmp_workers_spin(monkeypatch):
    """...unless no OpenBLAS thread runs beside them (the products on the micro-kernel)."""
    from fastnn import _config

    monkeypatch.setattr(_config, "_OPENMP_WORKERS_SLEEP", False)
    before = fastnn.get_num_threads()
    large = 10 * _config.PARALLEL_MIN_ELEMENTS
    try:
        fastnn.set_num_threads(2)
        monkeypatch.setattr(_config, "_micro_kernel_mode", "0")
        assert _config.elementwise_threads(large, compute_bound=True) == 1
        monkeypatch.setattr(_config, "_micro_kernel_mode", "1")
        assert _config.elementwise_threads(large, compute_bound=True) == 2
        assert _config.elementwise_threads(_config.SPINNING_MIN_ELEMENTS - 1, True) == 1
        l2_values = _config.l2_cache_bytes() // 8
        assert _config.elementwise_threads(l2_values + 1, compute_bound=False) == 2
        assert _config.elementwise_threads(l2_values, compute_bound=False) == 1
    finally:
        fastnn.set_num_threads(before)


def test_l2_cache_size_is_read_or_defaults():
    from fastnn import _config

    size = _config.l2_cache_bytes()
    assert isinstance(size, int) and 64 * 1024 <= size <= 1 << 30


def test_parallel_regions_keep_one_team():
    """Every kernel's parallel region has fastnn's whole thread count as its team: GCC's
    OpenMP ends the threads a smaller team leaves out and starts new ones for the next larger
    team. Products of 2 and of 4 parts, a training step and predictions at batch 1 and 40
    alternate at 4 threads; no thread of the process may be new afterwards."""
    script = """
import os
import numpy as np
import fastnn
from fastnn_c import dense
fastnn.set_num_threads(4)
rng = np.random.default_rng(0)
products = []
for m, k, n in ((32, 256, 32), (64, 512, 256)):  # 2 parts, then 4
    X = rng.standard_normal((m, k)).astype(np.float32)
    products.append((X, rng.standard_normal((k, n)).astype(np.float32), np.empty((m, n), np.float32)))
net = fastnn.mlp([512, 256, 10], rng=0, batch_norm=True)
opt = fastnn.SGD(net.parameters(), lr=0.01)
X = rng.standard_normal((64, 512)).astype(np.float32)
y = rng.integers(0, 10, 64)
def run():
    for A, W, Y in products:
        dense.dense_forward(A, W, None, Y, threads=4)
    net.train_step(X, y, opt)
    net.predict(X[:1])
    net.predict(X[:40])
run()
run()
before = set(os.listdir("/proc/self/task"))
for _ in range(10):
    run()
print(len(set(os.listdir("/proc/self/task")) - before))
"""
    env = {**os.environ, "FASTNN_MICRO_KERNEL": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "0", result.stdout


@pytest.fixture
def adaptive_threads(monkeypatch):
    """Two threads that ``fit`` may change: the count not fixed, the products on the
    micro-kernel (whose results do not depend on the count)."""
    from fastnn import _config
    from fastnn_c import _blas

    monkeypatch.setattr(_config, "_pinned", [])
    monkeypatch.setattr(_config, "_micro_kernel_mode", "1")
    before = _blas.blas_get_num_threads()
    _blas.blas_set_num_threads(2)
    yield _config
    _blas.blas_set_num_threads(before)


def _run_steps(threads, step_seconds, steps):
    """Feed ``threads`` steps whose time depends on the count they ran on; the counts."""
    counts = []
    for _ in range(steps):
        counts.append(fastnn.get_num_threads())
        threads.step_done(step_seconds[counts[-1]])
    return counts


def test_step_threads_trains_on_the_faster_count_and_probes_again(adaptive_threads, monkeypatch):
    StepThreads = adaptive_threads.StepThreads
    probe = 2 * (StepThreads.PROBE_STEPS + 1)
    with StepThreads() as threads:
        assert threads.enabled
        loaded = {1: 0.001, 2: 0.005}  # the second core busy: two threads lose
        counts = _run_steps(threads, loaded, probe + 50)
        assert set(counts[:probe]) == {1, 2} and set(counts[probe:]) == {1}
        # The load goes away: the next probe, due after REPROBE_SECONDS, finds two faster.
        monkeypatch.setattr(StepThreads, "REPROBE_SECONDS", 0.01)
        monkeypatch.setattr(StepThreads, "PROBE_SHARE", 0)
        idle = {1: 0.001, 2: 0.0006}
        counts = _run_steps(threads, idle, 1 + probe + 10)
        assert counts[1:1 + probe] == [1] * (probe // 2) + [2] * (probe // 2)
        assert counts[-10:] == [2] * 10
        # Steps turning twice as slow as probed start a probe at once.
        monkeypatch.setattr(StepThreads, "REPROBE_SECONDS", 100.0)
        counts = _run_steps(threads, {1: 0.001, 2: 0.005}, StepThreads.PROBE_STEPS + probe + 5)
        assert counts[-5:] == [1] * 5
    assert fastnn.get_num_threads() == 2


def test_step_threads_leave_a_fixed_count_or_openblas_alone(adaptive_threads, monkeypatch):
    monkeypatch.setattr(adaptive_threads, "_pinned", [2])
    assert not adaptive_threads.StepThreads().enabled
    monkeypatch.setattr(adaptive_threads, "_pinned", [])
    monkeypatch.setattr(adaptive_threads, "_micro_kernel_mode", "0")
    assert not adaptive_threads.StepThreads().enabled


def test_fit_changing_thread_counts_gives_the_weights_of_one_thread(adaptive_threads, monkeypatch, data):
    """A probe at every step alternates one and two threads; the weights are those of a
    training on one thread, bit for bit."""
    from fastnn_c import _blas

    X, y = data
    X = np.tile(X, (1, 8))  # 320 features: products big enough to split over threads

    def train():
        net = fastnn.mlp([X.shape[1], 256, 64, 4], rng=3)
        fastnn.fit(net, X, y, optimizer=fastnn.SGD(net.parameters(), lr=0.05), epochs=2,
                   batch_size=64, rng=5, verbose=0)
        return net.state_dict()

    monkeypatch.setattr(adaptive_threads.StepThreads, "REPROBE_SECONDS", 0.0)
    monkeypatch.setattr(adaptive_threads.StepThreads, "PROBE_SHARE", 0)
    seen = []
    step_done = adaptive_threads.StepThreads.step_done
    monkeypatch.setattr(adaptive_threads.StepThreads, "step_done",
                        lambda self, s: (seen.append(fastnn.get_num_threads()), step_done(self, s)))
    changing = train()
    assert set(seen) == {1, 2}
    monkeypatch.setattr(adaptive_threads, "_pinned", [1])
    _blas.blas_set_num_threads(1)
    one = train()
    for key in one:
        np.testing.assert_array_equal(changing[key], one[key], err_msg=key)

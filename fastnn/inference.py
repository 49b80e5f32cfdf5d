"""A network's evaluation-mode forward pass as one compiled call (``fastnn_c.stack.DenseStack``).

In evaluation mode a stack of Dense, activation, batch-norm and dropout layers is a chain of
affine maps and elementwise functions, so it folds into Dense stages with one activation
each:

* batch norm in evaluation mode is y = s x + t per feature, s = γ/√(σ²_run + ε) and
  t = β − μ_run s (Ioffe & Szegedy 2015, §3.1); after a Dense layer and before its
  activation it folds into that layer, W ← W diag(s), b ← s b + t; after an activation it
  folds into the next Dense layer, W ← diag(s) W, b ← b + t W;
* dropout is the identity; RReLU is a leaky ReLU with its mean slope; PReLU's per-unit
  slopes are applied after the stage's product.

``compile_forward`` builds the stack, or returns None for a network that does not fold
(another layer kind, an activation not preceded by a Dense layer, a batch norm after the last
Dense layer); the caller then runs the layers one by one. The weights are folded in float64
and packed for fastnn's dense micro-kernel; ``fastnn.layers.write_count`` (one comparison
while nothing was written) and then ``parameter_versions`` tell the caller when to build
again. ``CompiledForward`` runs it, on as many threads as pay on this machine.
"""
import math
import time

import numpy as np

from fastnn._config import get_num_threads
from fastnn.layers import Activation, BatchNorm, Dense, Dropout, PReLU, RReLU
from fastnn_c import activations as _activations
from fastnn_c import packed as _packed
from fastnn_c import stack as _stack

#: Most rows per block: a block's activations (rows x widest layer, twice) stay in a core's L2.
MAX_BLOCK_ROWS = 256
#: Fewest rows per thread when the rows are split over the threads.
MIN_ROWS_PER_THREAD = 8
#: Batches up to this many rows run as one block whose layers' columns are split over at
#: most ``COLUMN_SPLIT_THREADS`` threads instead: each core then reads only its share of the
#: weights. More threads lost there on a 16-core VM, measured while a region's team still
#: had the size of its work (a team smaller than the last one ended threads that the next
#: larger one created again: tens of µs); the limit is to be measured again with whole teams
#: (benchmarks/README.md, "Small-batch dense kernels").
COLUMN_SPLIT_ROWS = 8
COLUMN_SPLIT_THREADS = 2

#: Batch sizes whose schedule a compiled pass keeps.
_SCHEDULES_KEPT = 256

_IDENTITY = _activations.KINDS["identity"]
_LEAKY_RELU = _activations.KINDS["leaky_relu"]
_machine = {}  # (threads, dtype name) -> _MachineCosts


class _MachineCosts:
    """What threading costs and what one thread does here, measured once per process, thread
    count and dtype (a few milliseconds): an empty parallel region of all the threads, the
    micro-kernel's multiply-adds per second on one thread (a 32x512x512 product) and the
    rate at which one thread reads packed weights (1 MB)."""

    def __init__(self, threads, dtype):
        self.overhead = 0.0
        if threads > 1:
            for _ in range(20):  # start the pool
                _packed.parallel_region(threads)
            times = []
            for _ in range(50):
                t = time.perf_counter()
                _packed.parallel_region(threads)
                times.append(time.perf_counter() - t)
            self.overhead = float(np.median(times))
        rng = np.random.default_rng(0)
        W = rng.standard_normal((512, 512)).astype(dtype)
        packed = np.empty(_packed.packed_size(512, 512, dtype), dtype)
        _packed.dense_pack(W, packed)
        X = rng.standard_normal((32, 512)).astype(dtype)
        A = np.empty((32, 512), dtype)
        self.rate = 32 * 512 * 512 / _best(lambda: _packed.dense_packed_forward(X, packed, None, A))
        self.bandwidth = packed.nbytes / _best(lambda: _packed.read_sum(packed))


def _best(call, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def machine_costs(threads, dtype):
    """The ``_MachineCosts`` of this machine for ``threads`` threads and ``dtype``."""
    key = (threads, np.dtype(dtype).name)
    costs = _machine.get(key)
    if costs is None:
        costs = _machine[key] = _MachineCosts(threads, dtype)
    return costs


class CompiledForward:
    """A network's evaluation-mode pass: a ``DenseStack`` and how to spread a batch over
    fastnn's threads.

    A layer's time on one thread is estimated as the larger of its multiply-adds at the
    measured rate and its packed weights at the measured read rate; a part of the work gets
    another thread only when it is at least the cost of a parallel region (``machine_costs``):
    a batch of up to ``COLUMN_SPLIT_ROWS`` rows runs as one block with each layer's columns
    over as many threads as its time pays for, at most ``COLUMN_SPLIT_THREADS``; a larger
    one in blocks of rows, one per thread, as many as the whole pass's time pays for, each
    of at least ``MIN_ROWS_PER_THREAD`` and at most ``MAX_BLOCK_ROWS`` rows. Either way a row's result is the
    same bit for bit.
    """

    def __init__(self, stack, shapes, packed_bytes):
        self.stack = stack
        self._work = [(n_in * n_out, nbytes) for (n_in, n_out), nbytes in zip(shapes, packed_bytes)]
        self._schedules = {}  # (rows, threads) -> arguments of the stack's call

    def __call__(self, X):
        """The head's output for X (C-contiguous, the stack's dtype, ``stack.n_in`` columns)
        as a new array: (n,) int64 labels for "argmax", else (n, n_out)."""
        n, threads = X.shape[0], get_num_threads()
        schedule = self._schedules.get((n, threads))
        if schedule is None:
            if len(self._schedules) >= _SCHEDULES_KEPT:  # a server seeing every batch size
                self._schedules.clear()
            schedule = self._schedules[(n, threads)] = self._schedule(n, threads)
        return self.stack(X, None, *schedule)

    def _schedule(self, n, threads):
        """(block rows, team, threads per layer for a single block). Blocks of rows go one
        per thread, as many as pay; the parallel region has all ``threads`` either way (or
        none opens), the threads beyond the work idle (fastnn_c/_arrays.pxd, "Teams")."""
        if threads == 1:
            return max(n, 1), 1, None
        costs = machine_costs(threads, self.stack.dtype)
        seconds = [max(max(n, 1) * fma / costs.rate, nbytes / costs.bandwidth)
                   for fma, nbytes in self._work]

        def paid(t):  # threads whose share of t is at least a parallel region's cost
            return max(1, min(threads, int(t / costs.overhead))) if costs.overhead > 0 else threads

        if n <= COLUMN_SPLIT_ROWS:
            stages = tuple(min(paid(t), COLUMN_SPLIT_THREADS) for t in seconds)
            return max(n, 1), threads if max(stages) > 1 else 1, stages
        useful = paid(sum(seconds))
        block = min(MAX_BLOCK_ROWS, max(MIN_ROWS_PER_THREAD, math.ceil(n / useful)))
        return block, threads if useful > 1 else 1, None


def parameter_versions(parameters, layers):
    """What a compiled forward pass depends on: the parameters' versions and the layers'
    state versions (batch-norm running statistics). Equal keys, same weights."""
    return (tuple([p.version for p in parameters]),
            tuple([layer.state_version for layer in layers]))


class _Stage:
    """One Dense layer with what folds into it, in float64 until packed."""

    def __init__(self, layer, pending):
        self.W = layer.weight.data.astype(np.float64)
        self.b = (np.zeros(layer.out_features) if layer.bias is None
                  else layer.bias.data.astype(np.float64))
        if pending is not None:  # an affine map s x + t on this layer's input
            s, t = pending
            self.b = self.b + t @ self.W
            self.W = s[:, None] * self.W
        self.kind, self.alpha, self.slopes = _IDENTITY, 0.0, None
        self.activated = False

    def fold_output_affine(self, s, t):
        self.W = self.W * s
        self.b = self.b * s + t


def compile_forward(layers, dtype, head):
    """A ``CompiledForward`` running ``layers`` in evaluation mode and then ``head``
    ("logits", "argmax" or "softmax"), or None where the layers do not fold into Dense
    stages (or fold into more than ``fastnn_c.stack.MAX_STAGES``)."""
    stages, pending = [], None
    for layer in layers:
        last = stages[-1] if stages else None
        if isinstance(layer, Dense):
            stages.append(_Stage(layer, pending))
            pending = None
        elif isinstance(layer, BatchNorm):
            s, t = layer.evaluation_affine()
            if last is not None and pending is None and not last.activated:
                last.fold_output_affine(s, t)
            else:
                pending = (s, t) if pending is None else (pending[0] * s, pending[1] * s + t)
        elif isinstance(layer, Dropout):
            continue
        elif isinstance(layer, (Activation, PReLU, RReLU)):
            if last is None or pending is not None or last.activated:
                return None
            if isinstance(layer, Activation):
                last.kind, last.alpha = layer.kind, layer.alpha
            elif isinstance(layer, RReLU):
                last.kind, last.alpha = _LEAKY_RELU, layer.slope
            else:
                last.slopes = np.broadcast_to(layer.weight.data, (last.W.shape[1],))
            last.activated = True
        else:
            return None
    if not stages or pending is not None or len(stages) > _stack.MAX_STAGES:
        return None
    packed = []
    for stage in stages:
        packed.append(np.empty(_packed.packed_size(*stage.W.shape, dtype), dtype))
        _packed.dense_pack(np.ascontiguousarray(stage.W, dtype=dtype), packed[-1])
    shapes = [stage.W.shape for stage in stages]
    stack = _stack.DenseStack(
        shapes, packed, [np.ascontiguousarray(stage.b, dtype=dtype) for stage in stages],
        [None if stage.slopes is None else np.ascontiguousarray(stage.slopes, dtype=dtype)
         for stage in stages],
        [stage.kind for stage in stages], [stage.alpha for stage in stages], head)
    return CompiledForward(stack, shapes, [p.nbytes for p in packed])


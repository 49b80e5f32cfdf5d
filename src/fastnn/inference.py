"""A network's evaluation-mode forward pass as one compiled call (``fastnn_c.dense.DenseStack``).

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
and packed for fastnn's dense micro-kernel; ``parameter_versions`` tells the caller when to
build again, and ``run`` runs a stack on the rows of a batch split over the threads.
"""
import numpy as np

from fastnn._config import get_num_threads
from fastnn.layers import Activation, BatchNorm, Dense, Dropout, PReLU, RReLU
from fastnn_c import activations as _activations
from fastnn_c import dense as _dense

#: Most rows per block: a block's activations (rows x widest layer, twice) stay in a core's L2.
BLOCK_ROWS = 256
#: Fewest rows per thread when the rows are split over the threads.
MIN_ROWS_PER_THREAD = 16
#: Batches up to this many rows run as one block whose layers' columns are split over the
#: threads instead: each core then reads only its share of the weights (measured on 2 cores,
#: benchmarks/README.md, "Small-batch dense kernels").
COLUMN_SPLIT_ROWS = 32

_IDENTITY = _activations.KINDS["identity"]
_LEAKY_RELU = _activations.KINDS["leaky_relu"]


def parameter_versions(layers):
    """What a compiled forward pass depends on: each parameter's array and version and each
    layer's state version (batch-norm running statistics). Equal keys, same weights."""
    return (tuple((id(p.data), p.version) for layer in layers for p in layer.parameters())
            + tuple(layer.state_version for layer in layers))


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


def _batch_norm_affine(layer):
    s = layer.gamma.data / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
    return s, layer.beta.data - layer.running_mean * s


def compile_forward(layers, dtype, head):
    """A ``DenseStack`` running ``layers`` in evaluation mode and then ``head`` ("logits",
    "argmax" or "softmax"), or None where the layers do not fold into Dense stages."""
    stages, pending = [], None
    for layer in layers:
        last = stages[-1] if stages else None
        if isinstance(layer, Dense):
            stages.append(_Stage(layer, pending))
            pending = None
        elif isinstance(layer, BatchNorm):
            s, t = _batch_norm_affine(layer)
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
    if not stages or pending is not None:
        return None
    packed = []
    for stage in stages:
        packed.append(np.empty(_dense.packed_size(*stage.W.shape, dtype), dtype))
        _dense.dense_pack(np.ascontiguousarray(stage.W, dtype=dtype), packed[-1])
    return _dense.DenseStack(
        [stage.W.shape for stage in stages], packed,
        [np.ascontiguousarray(stage.b, dtype=dtype) for stage in stages],
        [None if stage.slopes is None else np.ascontiguousarray(stage.slopes, dtype=dtype)
         for stage in stages],
        [stage.kind for stage in stages], [stage.alpha for stage in stages], head)


def run(stack, X, out):
    """out := stack(X) on fastnn's threads: up to ``COLUMN_SPLIT_ROWS`` rows as one block
    with each layer's columns split over the threads, more in blocks of rows, one per
    thread, each of at least ``MIN_ROWS_PER_THREAD`` and at most ``BLOCK_ROWS`` rows."""
    n = X.shape[0]
    threads = get_num_threads()
    if n <= COLUMN_SPLIT_ROWS:
        block = max(n, 1)
    else:
        block = min(BLOCK_ROWS, max(MIN_ROWS_PER_THREAD, -(-n // threads)))
    stack(X, out, block, threads)

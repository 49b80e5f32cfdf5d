"""Watch training in TensorBoard: the ``TensorBoard`` callback writes standard event files.

What it writes (TensorBoard's dashboard in brackets):

* [Scalars] ``epoch/<metric>`` at step = epoch: ``loss``, ``accuracy``, ``val_loss``,
  ``val_accuracy`` and ``lr`` of each epoch of ``fit``; ``batch/loss`` at each step the
  monitor records; and from the ``Monitor``'s record, at its steps, ``<column>/<layer>``
  for the columns of ``SCALAR_COLUMNS`` (Nielsen's speed of learning ``delta_norm`` = ‖δˡ‖,
  ``update_ratio`` = ‖ΔW‖/‖W‖, the saturated and dead fractions, the activations' mean
  and standard deviation), each exactly the record's value.
* [Histograms, Distributions] per hidden layer, every ``histogram_freq``-th step the
  monitor records: ``activations/<layer>`` (the outputs A of the batch's forward pass,
  Glorot & Bengio 2010, fig. 2-6), ``preactivations/<layer>`` (Z = X W + b of that pass,
  the activation's input), ``gradients/<dense layer>`` (∂C/∂W of the step) and
  ``weights/<dense layer>`` (W as the forward pass used it). Each histogram has
  ``HISTOGRAM_BUCKETS`` equal buckets from the array's minimum to its maximum (TensorFlow 2's
  ``tf.summary.histogram`` default) and its exact count, sum and sum of squares, so its
  mean and standard deviation are the monitor's ``act_mean`` and ``act_std`` and the norm
  √(Σx²) of ``weights``/``gradients`` is its ``weight_norm``/``grad_norm_weight``.
* [Text] ``config``: the network's configuration, the optimizer and schedule, as JSON.

The event files are written by the ``tensorboard`` package's own event-file writer and
protocol buffers (``pip install "fastnn[tensorboard]"``), the package that views them. The
training thread only copies the arrays of a histogram step; a worker thread computes the
histograms, builds the records and hands them to the writer's own thread (cost:
benchmarks/README.md). Nothing of this module loads with ``import fastnn`` or ``import
fastnn.callbacks``, and the writer loads when a run starts.
"""
import json
import os
import queue
import threading
import time

import numpy as np

from fastnn._validation import check_positive_int
from fastnn.callbacks import Callback
from fastnn.layers import Dense

#: Monitor columns written as scalars ``<column>/<layer name>`` (where the layer has them).
SCALAR_COLUMNS = ("delta_norm", "update_ratio", "grad_norm_weight", "act_mean", "act_std",
                  "saturated_frac", "dead_frac", "negative_frac")
#: Equal-width buckets per histogram.
HISTOGRAM_BUCKETS = 30
#: Histogram snapshots (copies of arrays) waiting for the worker thread before the training
#: thread waits for it; scalars never wait.
_PENDING_HISTOGRAMS = 2


def require_tensorboard():
    """Import and return TensorBoard's ``EventFileWriter`` class, or raise ImportError saying
    how to install it."""
    try:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as error:
        raise ImportError('the TensorBoard callback needs the tensorboard package: pip install '
                          '"fastnn[tensorboard]"') from error
    return EventFileWriter


def histogram(values, buckets=HISTOGRAM_BUCKETS):
    """The TensorBoard histogram of ``values``: a dict of ``HistogramProto``'s fields.

    ``buckets`` equal-width buckets from min to max (``numpy.histogram(values, buckets)``,
    the last bucket closed); ``bucket_limit`` holds their right edges. ``num``, ``sum`` and
    ``sum_squares`` are over the finite values (in double), which alone are counted; None
    when no value is finite.
    """
    values = np.asarray(values).reshape(-1)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, buckets, range=(low, high) if high > low else None)
    as_double = values.astype(np.float64, copy=False)
    return {"min": low, "max": high, "num": int(values.size), "sum": float(as_double.sum()),
            "sum_squares": float(np.dot(as_double, as_double)),
            "bucket_limit": edges[1:].tolist(), "bucket": counts.astype(np.float64).tolist()}


class TensorBoard(Callback):
    """Write the run's curves, the monitor's record and per-layer histograms for TensorBoard.

    Keras's ``keras.callbacks.TensorBoard`` and PyTorch's ``SummaryWriter`` in one callback
    of ``fastnn.fit``; the module docstring lists the tags. View with
    ``tensorboard --logdir LOG_DIR``; runs in subfolders of one folder are overlaid.

    Parameters
    ----------
    log_dir : str or path-like
        Folder of this run's event file (created if missing).
    diagnostics : fastnn.diagnostics.Monitor, optional
        The monitor passed to ``fit(diagnostics=...)`` for the same network: its record is
        written as scalars, and histograms are taken at its steps. Without one only the
        epoch metrics and the configuration are written.
    histogram_freq : int, default 50
        Histograms at every ``histogram_freq``-th step the monitor records (steps that are
        multiples of ``monitor.interval * histogram_freq``); 0 for none. With the monitor's
        default interval 10, every 500 steps: about once per Fashion-MNIST epoch of
        ``fastnn train`` (422 steps), like Keras's ``histogram_freq=1``, for 1-2.5% of the
        epoch's CPU time (benchmarks/README.md). Lower it for more histograms.
    flush_secs : float, default 10
        Longest time between writes of the event file to disk.

    Examples
    --------
    >>> monitor = fastnn.Monitor(net, interval=10)
    >>> fastnn.fit(net, X, y, diagnostics=monitor,
    ...            callbacks=[fastnn.callbacks.TensorBoard("runs/relu", diagnostics=monitor)])

    Outside ``fit`` (a loop of your own), call ``on_train_begin(trainer)``, then
    ``on_batch_end(trainer, step, loss)`` after each step's ``monitor.after_update(step)``,
    and ``on_train_end(trainer)``, with ``trainer = fastnn.callbacks.Trainer(net,
    optimizer, None, fastnn.History(), epochs)``.
    """

    def __init__(self, log_dir, diagnostics=None, histogram_freq=50, flush_secs=10):
        self.log_dir = os.fspath(log_dir)
        if diagnostics is not None and not (hasattr(diagnostics, "record")
                                            and hasattr(diagnostics, "is_recorded")):
            raise TypeError("diagnostics must be a fastnn.diagnostics.Monitor, got "
                            f"{type(diagnostics).__name__}")
        self.diagnostics = diagnostics
        self.histogram_freq = check_positive_int(histogram_freq, "histogram_freq", minimum=0)
        if not (isinstance(flush_secs, (int, float)) and flush_secs > 0):
            raise ValueError(f"flush_secs must be a number > 0, got {flush_secs!r}")
        self.flush_secs = float(flush_secs)
        self._worker = None

    # -- callback hooks ----------------------------------------------------------------
    def on_train_begin(self, trainer):
        if self.diagnostics is not None and self.diagnostics.net is not trainer.net:
            raise ValueError("the TensorBoard callback's diagnostics watch another network than "
                             "the one being trained; pass the Monitor given to fit(diagnostics=)")
        EventFileWriter = require_tensorboard()
        os.makedirs(self.log_dir, exist_ok=True)
        self._worker = _Worker(EventFileWriter(self.log_dir, flush_secs=self.flush_secs))
        self._rows_written = len(self.diagnostics.rows) if self.diagnostics is not None else 0
        self._hidden = None
        self._updates = 0          # on_batch_end calls: each follows an applied update
        self._weights = None       # (updates when copied, {dense index: (W, b)})
        self._worker.put(_config_summary, 0, _configuration(trainer))
        if self._histogram_every():
            self._weights = (0, self._copy_weights(trainer.net))

    def on_batch_end(self, trainer, step, loss):
        self._worker.check()
        every = self._histogram_every()
        if self.diagnostics is not None and self.diagnostics.is_recorded(step):
            rows = self.diagnostics.rows[self._rows_written:]
            self._rows_written = len(self.diagnostics.rows)
            scalars = [("batch/loss", float(loss))]
            for row in rows:
                if row["step"] == step:
                    scalars += [(f"{column}/{row['name']}", float(row[column]))
                                for column in SCALAR_COLUMNS if row[column] is not None]
            self._worker.put(_scalar_summary, step, scalars)
            if every and step % every == 0:
                self._snapshot(trainer.net, step)
        self._updates += 1
        if every and (step + 1) % every == 0:
            # The weights the next step's forward pass uses: its pre-activations need them.
            self._weights = (self._updates, self._copy_weights(trainer.net))

    def on_epoch_end(self, trainer, epoch, metrics):
        self._worker.check()
        scalars = [(f"epoch/{key}", float(value)) for key, value in metrics.items()
                   if key not in ("epoch", "time") and isinstance(value, (int, float))]
        self._worker.put(_scalar_summary, epoch, scalars)

    def on_train_end(self, trainer):
        if self._worker is not None:
            worker, self._worker = self._worker, None
            worker.close()

    # -- histograms --------------------------------------------------------------------
    def _histogram_every(self):
        return self.diagnostics.interval * self.histogram_freq if self.diagnostics is not None else 0

    def _hidden_layers(self, net):
        """(dense, activation) index pairs of the hidden layers, and the monitor's layer names."""
        if self._hidden is None:
            layers = self.diagnostics.record.layers()
            names = {index: name for index, name, _ in layers}
            pairs, dense = [], None
            for index, _, kind in layers:  # dense [batchnorm] activation, in network order
                if kind == "dense":
                    dense = index
                elif kind == "activation" and dense is not None:
                    pairs.append((dense, index))
                    dense = None
            self._hidden = (pairs, names)
        return self._hidden

    @staticmethod
    def _copy_weights(net):
        return {i: (layer.weight.values.copy(), None if layer.bias is None else layer.bias.values.copy())
                for i, layer in enumerate(net.layers) if isinstance(layer, Dense)}

    def _snapshot(self, net, step):
        """Copy what the histograms of ``step`` need (buffers the next step overwrites)."""
        pairs, names = self._hidden_layers(net)
        forward = self._weights[1] if self._weights and self._weights[0] == self._updates else None
        arrays = []
        for dense, act in pairs:
            dense_layer, act_layer = net.layers[dense], net.layers[act]
            arrays.append((f"activations/{names[act]}", act_layer.output.copy()))
            before = net.layers[act - 1]  # the Dense layer, or a batch norm after it
            if before.output is not None:
                arrays.append((f"preactivations/{names[act]}", before.output.copy()))
            elif forward is not None:  # fused: Z = X W + b, computed on the worker thread
                W, b = forward[dense]
                arrays.append((f"preactivations/{names[act]}", (dense_layer.input.copy(), W, b)))
            arrays.append((f"gradients/{names[dense]}", dense_layer.weight.grad.copy()))
            if forward is not None:
                arrays.append((f"weights/{names[dense]}", forward[dense][0]))
        self._worker.put(_histogram_summary, step, arrays)


def _configuration(trainer):
    """The run's configuration as a dict (network, optimizer, schedule)."""
    net = trainer.net
    config = {"network": net.get_config() if hasattr(net, "get_config") else repr(net),
              "optimizer": repr(trainer.optimizer), "schedule": repr(trainer.schedule),
              "epochs": trainer.epochs}
    return config


# -- worker thread: histograms and records off the training thread -----------------------

def _scalar_summary(summary_pb2, scalars):
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                      for tag, value in scalars])


def _histogram_summary(summary_pb2, arrays):
    values = []
    for tag, array in arrays:
        if isinstance(array, tuple):
            X, W, b = array
            array = X @ W if b is None else X @ W + b
        fields = histogram(array)
        if fields is not None:
            values.append(summary_pb2.Summary.Value(tag=tag, histo=summary_pb2.HistogramProto(**fields)))
    return summary_pb2.Summary(value=values)


def _config_summary(summary_pb2, config):
    from tensorboard.plugins.text.summary_v2 import text_pb

    return text_pb("config", "```json\n" + json.dumps(config, indent=2, default=str) + "\n```")


class _Worker:
    """One thread that builds summaries from (function, step, payload) and writes them."""

    _STOP = object()

    def __init__(self, writer):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self._writer = writer
        self._queue = queue.SimpleQueue()
        self._histogram_slots = threading.Semaphore(_PENDING_HISTOGRAMS)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="fastnn-tensorboard", daemon=True)
        self._thread.start()

    def put(self, build, step, payload):
        if build is _histogram_summary:  # bounds the memory the copies hold
            self._histogram_slots.acquire()
        self._queue.put((build, step, payload))

    def check(self):
        """Raise what failed on the worker thread, on the training thread."""
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing the TensorBoard log failed: {error!r}") from error

    def close(self):
        self._queue.put(self._STOP)
        self._thread.join()
        self._writer.close()
        self.check()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            build, step, payload = item
            try:
                if self._error is None:  # after an error, drain: it is reported once
                    with np.errstate(all="ignore"):
                        summary = build(self._summary_pb2, payload)
                    if summary.value:
                        self._writer.add_event(self._event_pb2.Event(
                            wall_time=time.time(), step=step, summary=summary))
            except Exception as error:  # noqa: BLE001 - reported on the training thread
                self._error = error
            finally:
                if build is _histogram_summary:
                    self._histogram_slots.release()

"""fastnn.callbacks.TensorBoard: event files read back with TensorBoard's own reader and server.

The files are read with ``EventAccumulator`` (what TensorBoard's loader uses) and compared
with the Monitor's record, the History and the arrays of the steps; one test starts the
``tensorboard`` server on them and asks its HTTP API for the runs, tags and histograms.
"""
import json
import math
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import fastnn
from conftest import MNIST_SMALL
from fastnn import experiments
from fastnn.callbacks import Callback
from fastnn.cli import main
from fastnn.tensorboard import HISTOGRAM_BUCKETS, SCALAR_COLUMNS, TensorBoard, histogram

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator").EventAccumulator


def read(log_dir):
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                           "tensors": 0})
    events.Reload()
    return events


class Capture(Callback):
    """Copies, at the steps given, each activation layer's output and the Dense weights the
    step's forward pass used (those after the previous step)."""

    def __init__(self, steps):
        self.steps = set(steps)
        self.outputs, self.weights = {}, {}

    def on_train_begin(self, trainer):
        self._weights = self._copy(trainer.net)

    @staticmethod
    def _copy(net):
        return {i: layer.weight.values.copy() for i, layer in enumerate(net.layers)
                if isinstance(layer, fastnn.Dense)}

    def on_batch_end(self, trainer, step, loss):
        if step in self.steps:
            self.outputs[step] = {i: layer.output.copy() for i, layer in enumerate(trainer.net.layers)
                                  if isinstance(layer, fastnn.Activation)}
            self.weights[step] = self._weights
        self._weights = self._copy(trainer.net)


ACTIVATION = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}


@pytest.mark.parametrize("activation,batch_norm", [("tanh", False), ("relu", True)],
                         ids=["tanh", "relu-batchnorm"])
def test_event_file_equals_the_monitor_record(tmp_path, activation, batch_norm):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 12)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    net = fastnn.mlp([12, 16, 8, 3], activation=activation, batch_norm=batch_norm, rng=1)
    monitor = fastnn.Monitor(net, interval=2)
    hist_steps = [0, 4, 8]  # every histogram_freq=2-th recorded step of 12 (3 epochs of 4)
    capture = Capture(hist_steps)
    board = TensorBoard(tmp_path, diagnostics=monitor, histogram_freq=2)
    history = fastnn.fit(net, X, y, optimizer=fastnn.SGD(net.parameters(), lr=0.5), epochs=3,
                         batch_size=64, validation_split=0.2, diagnostics=monitor,
                         callbacks=[capture, board], verbose=0, rng=0)
    events = read(tmp_path)
    tags = events.Tags()

    # Scalars: every applicable monitor column of every layer at each recorded step, exactly
    # (as float32, the type of a TensorBoard scalar).
    expected = {}
    for row in monitor.rows:
        for column in SCALAR_COLUMNS:
            if row[column] is not None:
                expected.setdefault(f"{column}/{row['name']}", []).append((row["step"], row[column]))
    assert "delta_norm/dense1" in expected and "update_ratio/dense2" in expected
    assert ("dead_frac/relu1" if activation == "relu" else "saturated_frac/tanh1") in expected
    epoch_tags = {f"epoch/{key}" for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")}
    assert set(tags["scalars"]) == set(expected) | epoch_tags | {"batch/loss"}
    for tag, pairs in expected.items():
        read_back = [(e.step, e.value) for e in events.Scalars(tag)]
        assert read_back == [(step, float(np.float32(value))) for step, value in pairs], tag
    for key in ("loss", "val_accuracy", "lr"):
        assert [(e.step, e.value) for e in events.Scalars(f"epoch/{key}")] == [
            (epoch, float(np.float32(value))) for epoch, value in enumerate(history[key], 1)]
    assert [e.step for e in events.Scalars("batch/loss")] == list(range(0, 12, 2))

    # Histograms at every other recorded step, for both hidden layers.
    hidden = [("dense1", f"{activation}1"), ("dense2", f"{activation}2")]
    assert set(tags["histograms"]) == {f"{kind}/{name}" for dense, act in hidden
                                       for kind, name in (("activations", act), ("preactivations", act),
                                                          ("gradients", dense), ("weights", dense))}
    rows = {(row["step"], row["name"]): row for row in monitor.rows}
    act_index = {f"{activation}{k + 1}": i for k, i in enumerate(
        i for i, layer in enumerate(net.layers) if isinstance(layer, fastnn.Activation))}
    dense_index = {"dense1": 0, "dense2": 3 if batch_norm else 2}
    f = ACTIVATION[activation]
    for dense, act in hidden:
        for kind in ("activations", "preactivations", "gradients", "weights"):
            assert [e.step for e in events.Histograms(f"{kind}/{act if 'act' in kind else dense}")] \
                == hist_steps
        for a, z, g, w in zip(*(events.Histograms(f"{kind}/{name}") for kind, name in (
                ("activations", act), ("preactivations", act), ("gradients", dense),
                ("weights", dense)))):
            step, a, z, g, w = a.step, a.histogram_value, z.histogram_value, g.histogram_value, \
                w.histogram_value
            row, dense_row = rows[step, act], rows[step, dense]
            output = capture.outputs[step][act_index[act]]
            counts, edges = np.histogram(output, HISTOGRAM_BUCKETS)
            assert a.bucket == counts.tolist() and a.bucket_limit == pytest.approx(edges[1:], abs=1e-6)
            assert a.num == output.size == 64 * row["units"]  # first batches of epochs
            assert a.min == output.min() and a.max == output.max()
            mean = a.sum / a.num
            assert mean == pytest.approx(row["act_mean"], rel=1e-6, abs=1e-9)
            assert math.sqrt(a.sum_squares / a.num - mean ** 2) == pytest.approx(row["act_std"],
                                                                                 rel=1e-5)
            # Z of the same forward pass: the activation is monotone, so it maps Z's extremes
            # onto A's.
            assert z.num == a.num and sum(z.bucket) == z.num
            assert f(np.float32(z.min)) == pytest.approx(a.min, abs=1e-6)
            assert f(np.float32(z.max)) == pytest.approx(a.max, abs=1e-6)
            # The weights of that forward pass and the step's gradient, by their norms.
            W = capture.weights[step][dense_index[dense]]
            assert w.num == W.size and w.bucket == np.histogram(W, HISTOGRAM_BUCKETS)[0].tolist()
            assert math.sqrt(w.sum_squares) == pytest.approx(dense_row["weight_norm"], rel=1e-9)
            assert math.sqrt(g.sum_squares) == pytest.approx(dense_row["grad_norm_weight"], rel=1e-9)

    config = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert '"class": "Dense"' in config and activation in config and "SGD" in config


def test_histogram_fields():
    values = np.array([0.0, 1.0, 1.0, 4.0, np.nan, np.inf], dtype=np.float32)
    h = histogram(values, buckets=4)
    assert (h["min"], h["max"], h["num"], h["sum"], h["sum_squares"]) == (0.0, 4.0, 4, 6.0, 18.0)
    assert h["bucket_limit"] == [1.0, 2.0, 3.0, 4.0] and h["bucket"] == [1.0, 2.0, 0.0, 1.0]
    assert histogram(np.full(3, 2.5))["bucket"][0] == 0 and sum(histogram(np.full(3, 2.5))["bucket"]) == 3
    assert histogram(np.array([np.nan])) is None


def test_without_monitor_writes_epochs_and_config(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100, 5)).astype(np.float32), rng.integers(0, 2, 100)
    net = fastnn.mlp([5, 4, 2], rng=0)
    fastnn.fit(net, X, y, epochs=2, callbacks=[TensorBoard(tmp_path)], verbose=0)
    tags = read(tmp_path).Tags()
    assert set(tags["scalars"]) == {"epoch/loss", "epoch/accuracy", "epoch/lr"}
    assert tags["histograms"] == [] and tags["tensors"] == ["config"]


def test_bad_arguments(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="histogram_freq must be an int >= 0"):
        TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(TypeError, match="diagnostics must be a fastnn.diagnostics.Monitor"):
        TensorBoard(tmp_path, diagnostics="val_loss")
    with pytest.raises(ValueError, match="flush_secs"):
        TensorBoard(tmp_path, flush_secs=0)
    net, other = fastnn.mlp([3, 2], rng=0), fastnn.mlp([3, 2], rng=0)
    X, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    board = TensorBoard(tmp_path, diagnostics=fastnn.Monitor(other))
    with pytest.raises(ValueError, match="watch another network"):
        fastnn.fit(net, X, y, epochs=1, callbacks=[board], verbose=0)
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(ImportError, match=re.escape('pip install "fastnn[tensorboard]"')):
        fastnn.fit(net, X, y, epochs=1, callbacks=[TensorBoard(tmp_path)], verbose=0)


def test_experiment_writes_one_run_per_setting(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.random((200, 16), dtype=np.float32), rng.integers(0, 3, 200),
            rng.random((50, 16), dtype=np.float32), rng.integers(0, 3, 50))
    arms = (("tanh", "glorot_standard"), ("sigmoid", "glorot_uniform"))
    result = experiments.activations(data, hidden=(8, 8), epochs=2, interval=5, arms=arms,
                                     quiet=True, logdir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sigmoid-glorot_uniform",
                                                          "tanh-glorot_standard"]
    for run in result.runs:
        events = read(tmp_path / f"{run['activation']}-{run['init']}")
        name = f"{run['activation']}2"
        means = [e.value for e in events.Scalars(f"act_mean/{name}")]
        assert means == [float(np.float32(v)) for v in run["mean"][1]]
        assert [e.step for e in events.Scalars("epoch/test_accuracy")] == [1, 2]
        assert [e.step for e in events.Histograms(f"activations/{name}")] == [0]  # steps 0-39


def test_cli_train_diagnose_and_experiment_logdir(tmp_path, capsys):
    if not (MNIST_SMALL / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"mnist-small not found at {MNIST_SMALL} (set FASTNN_TEST_DATA)")
    common = ["--data-dir", str(MNIST_SMALL), "--threads", "1", "-q"]
    assert main(["diagnose", *common, "--epochs", "1", "--hidden", "16,16", "--batch-size", "64",
                 "--interval", "5", "--logdir", str(tmp_path / "diagnose")]) == 0
    tags = read(tmp_path / "diagnose").Tags()
    assert {"delta_norm/dense1", "delta_norm/dense3", "dead_frac/relu2", "epoch/val_loss"} <= set(
        tags["scalars"])
    assert "activations/relu2" in tags["histograms"] and "weights/dense1" in tags["histograms"]
    # train adds a monitor (interval 10) for the per-layer curves.
    assert main(["train", *common, "--epochs", "1", "--hidden", "16", "--patience", "0",
                 "--logdir", str(tmp_path / "train")]) == 0
    tags = read(tmp_path / "train").Tags()
    assert {"delta_norm/dense1", "dead_frac/relu1", "epoch/val_accuracy"} <= set(tags["scalars"])
    assert [e.step for e in read(tmp_path / "train").Scalars("batch/loss")][:2] == [0, 10]
    assert main(["experiment", "init-histograms", *common, "--logdir", str(tmp_path / "x")]) == 1
    assert "--logdir does not apply" in capsys.readouterr().err


def test_tensorboard_server_shows_the_runs(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 6)).astype(np.float32), rng.integers(0, 2, 200)
    for activation in ("tanh", "relu"):
        net = fastnn.mlp([6, 5, 2], activation=activation, rng=0)
        monitor = fastnn.Monitor(net, interval=1)
        fastnn.fit(net, X, y, epochs=2, batch_size=50, diagnostics=monitor, verbose=0,
                   callbacks=[TensorBoard(tmp_path / activation, diagnostics=monitor,
                                          histogram_freq=1)])
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path),
                               "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, lines, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = match and match.group(1)
        assert url, "".join(lines)

        def get(path):
            with urllib.request.urlopen(url + path, timeout=30) as response:
                return json.load(response)

        deadline = time.monotonic() + 60
        while sorted(get("data/runs")) != ["relu", "tanh"] and time.monotonic() < deadline:
            time.sleep(0.5)  # the server loads the files in the background
        assert sorted(get("data/runs")) == ["relu", "tanh"]
        scalars = get("data/plugin/scalars/tags")
        assert "delta_norm/dense1" in scalars["tanh"] and "dead_frac/relu1" in scalars["relu"]
        histograms = get("data/plugin/histograms/histograms?run=tanh&tag=activations%2Ftanh1")
        assert [step for _, step, _ in histograms] == list(range(8))
        assert all(-1 <= left <= right <= 1 for _, _, buckets in histograms
                   for left, right, _ in buckets)
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()


def test_a_failure_on_the_writer_thread_is_raised_on_the_training_thread(tmp_path, monkeypatch):
    import fastnn.tensorboard

    def broken(values, buckets=HISTOGRAM_BUCKETS):
        raise ValueError("no histogram today")

    monkeypatch.setattr(fastnn.tensorboard, "histogram", broken)
    net = fastnn.mlp([3, 4, 2], rng=0)
    monitor = fastnn.Monitor(net, interval=1)
    X, y = np.ones((8, 3), np.float32), np.array([0, 1] * 4)
    with pytest.raises(RuntimeError, match="writing the TensorBoard log failed.*no histogram today"):
        fastnn.fit(net, X, y, epochs=2, batch_size=4, diagnostics=monitor, verbose=0,
                   callbacks=[TensorBoard(tmp_path, diagnostics=monitor, histogram_freq=1)])

"""The fastnn command line, end to end on mnist-small, and its error handling."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import MNIST_SMALL
from fastnn import datasets, io
from fastnn.cli import main


def _accuracy(text):
    match = re.search(r"test accuracy (\d+\.\d+)%", text)
    assert match, text
    return float(match.group(1)) / 100


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No data anywhere and no reachable mirror: lookups and downloads fail fast."""
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in datasets.DATASETS:
        monkeypatch.setitem(datasets.DATASETS, name,
                            dict(datasets.DATASETS[name], mirrors=[], system_dirs=[]))
    return tmp_path


@pytest.mark.slow
def test_train_evaluate_predict_end_to_end(mnist_small, tmp_path, capsys):
    model, log = tmp_path / "mnist.npz", tmp_path / "log.jsonl"
    args = ["train", "--data-dir", str(MNIST_SMALL), "--epochs", "10", "--save", str(model),
            "--log", str(log)]
    if importlib.util.find_spec("matplotlib") is not None:  # the plot is optional
        args += ["--plot", str(tmp_path / "curves.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    accuracy = _accuracy(out)
    assert accuracy >= 0.95
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == len(epoch_lines) >= 1
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(records[0])
    if "--plot" in args:
        assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = io.load(model)
    assert saved.metadata["dataset"] == "mnist"
    assert saved.metadata["test_accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert saved.preprocessing["method"] == "scale"
    assert saved.optimizer_config["class"] == "Adam"
    X_test, y_test = mnist_small[2], mnist_small[3]
    assert saved.net.evaluate(X_test, y_test)["accuracy"] == pytest.approx(accuracy, abs=5e-5)

    assert main(["evaluate", str(model), "--data-dir", str(MNIST_SMALL)]) == 0
    out = capsys.readouterr().out
    assert f"accuracy {100 * accuracy:.2f}%" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s+\d\s", line)]
    confusion = np.array([[int(v) for v in row[1:]] for row in rows])
    assert confusion.shape == (10, 10)
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(y_test, minlength=10))
    assert np.trace(confusion) == round(accuracy * len(y_test))

    images = MNIST_SMALL / "t10k-images-idx3-ubyte.gz"
    expected = saved.net.predict(X_test)
    assert main(["predict", str(model), str(images)]) == 0
    printed = np.array([int(v) for v in capsys.readouterr().out.split()])
    np.testing.assert_array_equal(printed, expected)
    assert main(["predict", str(model), str(images), "--out", str(tmp_path / "pred.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), expected)
    np.save(tmp_path / "raw.npy", datasets.read_idx(images)[:5])  # uint8 (n, 28, 28)
    assert main(["predict", str(model), str(tmp_path / "raw.npy"), "--out",
                 str(tmp_path / "pred.txt")]) == 0
    assert (tmp_path / "pred.txt").read_text().split() == [str(v) for v in expected[:5]]
    np.save(tmp_path / "one.npy", X_test[3])  # one float image, already scaled
    assert main(["predict", str(model), str(tmp_path / "one.npy"), "--proba"]) == 0
    proba = np.array([float(v) for v in capsys.readouterr().out.strip().split(",")])
    assert proba.shape == (10,) and proba.sum() == pytest.approx(1, abs=1e-4)
    assert proba.argmax() == expected[3]


def test_python_m_fastnn_subprocess(mnist_small, tmp_path):
    env = dict(os.environ, FASTNN_DATA_DIR=str(MNIST_SMALL))
    model = tmp_path / "m.npz"
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "train", "--hidden", "64", "--epochs", "2", "--seed", "1",
         "--save", str(model), "-q"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _accuracy(result.stdout) >= 0.85
    assert result.stdout.strip().count("\n") == 0  # -q: only the result line
    assert "epoch" not in result.stderr  # no progress bar on a pipe
    assert io.load(model).net.in_features == 784
    result = subprocess.run([sys.executable, "-m", "fastnn", "evaluate", str(tmp_path / "nope.npz")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"fastnn evaluate: error: model file not found: {tmp_path / 'nope.npz'}"


def test_train_options_reach_the_network(mnist_small, tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--layers", "784,40,30,10",
                 "--activation", "tanh", "--batch-norm", "--dropout", "0.1", "--optimizer", "momentum",
                 "--lr", "0.05", "--momentum", "0.8", "--schedule", "step", "--step-size", "1",
                 "--gamma", "0.5", "--epochs", "2", "--patience", "0", "--preprocess", "standardize",
                 "--batch-size", "100", "--save", str(model), "-v"]) == 0
    captured = capsys.readouterr()
    assert "784-40-30-10" in captured.err and "momentum=0.8" in captured.err
    saved = io.load(model)
    classes = [spec["class"] for spec in saved.net.get_config()["layers"]]
    assert "BatchNorm" in classes and "Dropout" in classes
    assert saved.schedule_config["class"] == "StepDecay"
    assert saved.optimizer_state["lr"] == pytest.approx(0.05 * 0.5 ** 2)
    assert saved.preprocessing["method"] == "standardize" and saved.preprocessing["std"].shape == (784,)
    lrs = [float(m) for m in re.findall(r"lr (\S+)", captured.out)]
    assert lrs == pytest.approx([0.05, 0.025])
    # evaluate applies the saved standardization: same accuracy as reported by train
    assert main(["evaluate", str(model), "--data-dir", str(MNIST_SMALL)]) == 0
    assert f"accuracy {100 * _accuracy(captured.out):.2f}%" in capsys.readouterr().out


def test_early_stopping_message(mnist_small, capsys):
    # lr 0.5 trains (validation loss stops improving after a few epochs); pinned, not "0 or 1"
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--hidden", "32", "--epochs", "30",
                 "--optimizer", "sgd", "--lr", "0.5", "--patience", "1", "--batch-size", "500"]) == 0
    out, err = capsys.readouterr()
    stopped = re.search(r"early stopping after epoch (\d+); restored the weights of epoch (\d+)", out)
    assert stopped and int(stopped[2]) < int(stopped[1]) < 30
    assert "error" not in err


def test_divergence_message(mnist_small, capsys):
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--hidden", "32", "--epochs", "30",
                 "--optimizer", "sgd", "--lr", "1e6", "--patience", "1", "--batch-size", "500"]) == 1
    out, err = capsys.readouterr()
    assert "early stopping" not in out
    line = err.strip().splitlines()[-1]
    assert line.startswith("fastnn train: error: ") and "at epoch 1, step " in line
    assert "the training loss is nan" in line or "the training loss is inf" in line


def test_missing_data_is_two_lines(offline, capsys):
    assert main(["train"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    # the error, then what to do in the command line's words (issue 30)
    assert err.count("\n") == 2 and err.startswith("fastnn train: error: mnist not found")
    assert err.splitlines()[1].startswith("  give --data-dir FOLDER holding ")
    for stem in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert stem in err
    assert main(["experiment", "activations", "--dataset", "fashion-mnist", "--no-download"]) == 1
    assert "fashion-mnist not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--dropout", "1.5"], "--dropout: expected a number in [0.0, 1.0)"),
    (["train", "--hidden", "256,x"], "comma-separated integers"),
    (["train", "--epochs", "0"], "expected an integer >= 1"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["train", "--hidden", "10", "--layers", "784,10"], "not allowed with argument"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--layers", "784,10,9"], "--layers must start with 784 (input pixels) and end with 10"),
    (["--optimizer", "adam", "--momentum", "0.9"], "does not take momentum"),
    (["--schedule", "step"], "--schedule step needs --step-size"),
    (["--schedule", "cosine", "--gamma", "0.5"], "--gamma does not apply to --schedule cosine"),
])
def test_bad_combinations_are_one_line(mnist_small, argv, message, capsys):
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--epochs", "1", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04broken"])
def test_unreadable_model_file(tmp_path, content, capsys):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    for command in (["evaluate", str(path)], ["predict", str(path), str(path)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_predict_input_errors(tmp_path, capsys):
    net_model = tmp_path / "m.npz"
    from fastnn.network import mlp
    io.save(net_model, mlp([784, 10], rng=0))
    np.save(tmp_path / "wrong.npy", np.zeros((3, 100)))
    assert main(["predict", str(net_model), str(tmp_path / "wrong.npy")]) == 1
    assert "does not hold images of 784 pixels" in capsys.readouterr().err
    assert main(["predict", str(net_model), str(tmp_path / "absent.idx")]) == 1
    assert "input file not found" in capsys.readouterr().err


def test_plot_without_matplotlib(mnist_small, monkeypatch, tmp_path, capsys):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--plot", str(tmp_path / "c.png")]) == 1
    out, err = capsys.readouterr()
    assert err == 'fastnn train: error: plotting needs matplotlib: pip install "fastnn[plot]"\n'
    assert out == ""  # failed before training


def test_plot_history(tmp_path):
    pytest.importorskip("matplotlib")
    from fastnn.plotting import plot_history

    records = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4},
               {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.7}]
    plot_history(records, tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        plot_history([], tmp_path / "d.png")
    import inspect

    from fastnn import plotting
    assert "pyplot" not in inspect.getsource(plotting).replace("no pyplot", "")  # object API only


@pytest.mark.parametrize("command, expected", [
    ("train", ["--hidden", "--layers", "--activation", "--init", "--batch-norm", "--dropout",
               "--optimizer", "--lr", "--momentum", "--beta1", "--beta2", "--weight-decay",
               "--schedule", "--l2", "--l1", "--clip-norm", "--clip-value", "--epochs",
               "--batch-size", "--val-split", "--patience", "--restore-best", "--seed",
               "--threads", "--save", "--plot", "--log", "--preprocess", "--quiet", "--verbose",
               "--data-dir", "--dataset"]),
    ("evaluate", ["MODEL", "--split", "--data-dir", "--dataset"]),
    ("predict", ["MODEL", "INPUT", "--out", "--proba"]),
    ("diagnose", ["--interval", "--out", "--plot", "--hidden", "--optimizer"]),
    ("experiment", ["NAME", "--dataset", "--seed", "--plot", "--out"]),
])
def test_help(command, expected, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for option in expected:
        assert option in out, option
    assert main(["--help"]) == 0
    assert command in capsys.readouterr().out


@pytest.mark.parametrize("activation", ["prelu", "rrelu"])
def test_prelu_and_rrelu_from_the_command_line(activation, mnist_small, tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["train", "--data-dir", str(MNIST_SMALL), "--hidden", "32", "--activation",
                 activation, "--epochs", "1", "--dropout", "0", "--no-batch-norm", "--save", str(model),
                 "-q"]) == 0
    assert _accuracy(capsys.readouterr().out) > 0.8
    layer = io.load(model).net.layers[1]
    assert layer.name == activation
    out_csv = tmp_path / "diag.csv"
    assert main(["diagnose", "--data-dir", str(MNIST_SMALL), "--hidden", "30,30", "--activation",
                 activation, "--epochs", "1", "--interval", "40", "--out", str(out_csv), "-q"]) == 0
    assert "negative" in capsys.readouterr().out
    from fastnn.diagnostics import DiagnosticsRecord

    rows = [r for r in DiagnosticsRecord.read_csv(out_csv).rows if r["name"] == f"{activation}1"]
    assert rows and all(0 <= r["negative_frac"] <= 1 for r in rows)


def test_diagnose(mnist_small, tmp_path, capsys):
    out_csv = tmp_path / "diag.csv"
    assert main(["diagnose", "--data-dir", str(MNIST_SMALL), "--hidden", "30,30",
                 "--epochs", "1", "--interval", "20", "--out", str(out_csv), "-q"]) == 0
    out = capsys.readouterr().out
    assert _accuracy(out) > 0.5  # one short epoch: well above chance
    assert "speed ||delta||" in out and "||grad W||" in out  # the table, not just any word
    from fastnn.diagnostics import DiagnosticsRecord

    record = DiagnosticsRecord.read_csv(out_csv)
    steps = sorted({row["step"] for row in record.rows})
    assert steps == list(range(0, -(-7200 // 128), 20))  # one epoch of batches of 128
    assert main(["diagnose", "--data-dir", str(MNIST_SMALL), "--out", str(tmp_path / "x.txt")]) == 1
    assert "--out must end in .json or .csv" in capsys.readouterr().err


def test_experiment_wiring(mnist_small, tmp_path, monkeypatch, capsys):
    from fastnn import experiments

    calls = []

    class Result:
        def table(self):
            return "TABLE"

        def to_json(self, path):
            Path(path).write_text("{}")

        def plot(self, path):
            Path(path).write_bytes(b"png")

    def fake(data, *, rng=0, quiet=False):
        calls.append((tuple(a.shape for a in data), data[0].dtype, float(data[0].max()), rng, quiet))
        return Result()

    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", fake)
    args = ["experiment", "fake", "--data-dir", str(MNIST_SMALL), "--seed", "3", "--out",
            str(tmp_path / "r.json"), "-q"]
    assert main(args) == 0
    assert capsys.readouterr().out == "TABLE\n"
    assert calls == [(((8000, 784), (8000,), (2000, 784), (2000,)), np.float32, 1.0, 3, True)]
    assert (tmp_path / "r.json").read_text() == "{}"
    assert main(["experiment", "nonsense", "--data-dir", str(MNIST_SMALL)]) == 1
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err


@pytest.mark.parametrize("method, components", [("pca-whiten", 50), ("zca-whiten", None)])
def test_whitening_from_the_command_line(mnist_small, tmp_path, method, components):
    """`--preprocess pca-whiten|zca-whiten` trains, saves the transform, and predict applies it."""
    model = tmp_path / "m.npz"
    args = ["train", "--data-dir", str(MNIST_SMALL), "--hidden", "64", "--epochs", "5",
            "--preprocess", method, "--save", str(model), "-q"]
    if components:
        args += ["--components", str(components)]
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _accuracy(result.stdout) >= 0.8  # whitening trains slower than raw pixels (README)
    saved = io.load(model)
    pre = datasets.Preprocessor.from_state(saved.preprocessing)
    assert pre.method == method and pre.whitening.shape == (784, components or 784)
    assert saved.net.in_features == (components or 784)
    X_test = mnist_small[2][:20]
    np.save(tmp_path / "x.npy", X_test)
    result = subprocess.run([sys.executable, "-m", "fastnn", "predict", str(model),
                             str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    labels = [int(v) for v in result.stdout.split()]
    assert labels == saved.net.predict(pre.transform(X_test)).tolist()

"""Ctrl-C and exceptions during training leave whole steps (issue 29).

``fit`` finishes the step a SIGINT arrives in, then raises ``TrainingInterrupted``; an
exception from a callback leaves weights, optimizer state and schedule of the last whole
step. Each case compares with a loop of ``train_step(fused=False)`` calls over the same
batches (which gives fit's weights bit for bit), stopped after the same number of steps.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import io
from fastnn.callbacks import Callback, EarlyStopping
from fastnn.training import TrainingInterrupted, fit


def batches(n_batches=12, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((16, 10)).astype(np.float32), rng.integers(0, 3, 16))
            for _ in range(n_batches)]


def setup():
    net = fastnn.mlp([10, 12, 3], rng=0)
    return net, fastnn.Adam(net.parameters(), lr=0.01)


def reference(steps, data):
    """Network and optimizer after ``steps`` whole steps over ``data`` (epochs repeated)."""
    net, opt = setup()
    net.train()
    for i in range(steps):
        X, y = data[i % len(data)]
        net.train_step(X, y, opt, fused=False)
    return net, opt


def assert_same_state(net, opt, ref_net, ref_opt):
    for key, value in ref_net.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[key], value, err_msg=key)
    state, ref_state = opt.state_dict(), ref_opt.state_dict()
    assert state.keys() == ref_state.keys()
    assert state["step_count"] == ref_state["step_count"]
    for key in state:
        if key.startswith("state."):
            np.testing.assert_array_equal(state[key], ref_state[key], err_msg=key)


class RaiseAt(Callback):
    def __init__(self, step, error):
        self.at, self.error = step, error

    def on_batch_end(self, trainer, step, loss):
        if step == self.at:
            raise self.error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("callback failed"),
                                   ValueError("bad")], ids=["ctrl-c", "runtime", "value"])
@pytest.mark.parametrize("at", [0, 5, 15])  # 15: in the second epoch
def test_exception_in_a_callback_leaves_a_whole_step(error, at):
    data = batches()
    net, opt = setup()
    expected = TrainingInterrupted if isinstance(error, KeyboardInterrupt) else type(error)
    with pytest.raises(expected) as info:
        fit(net, data, None, optimizer=opt, epochs=3, callbacks=[RaiseAt(at, error)])
    assert_same_state(net, opt, *reference(at + 1, data))  # step `at` was whole
    if expected is TrainingInterrupted:
        assert isinstance(info.value, KeyboardInterrupt)
        assert info.value.global_steps == info.value.steps_done == at + 1
        assert info.value.epoch == at // len(data) + 1
        assert f"after {at + 1} training steps" in str(info.value)


class SigintInsideUpdate(fastnn.Adam):
    """Adam that receives SIGINT after updating the first parameter of step ``at``: without
    the deferral the KeyboardInterrupt would leave the other parameters un-updated."""

    def __init__(self, params, at, **kwargs):
        super().__init__(params, **kwargs)
        self.at, self.sent = at, False

    def _update(self, *args):
        super()._update(*args)
        if self.step_count == self.at + 1 and not self.sent:
            self.sent = True
            signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("at", [0, 7])
def test_sigint_inside_an_update_finishes_the_step(at):
    data = batches()
    net = fastnn.mlp([10, 12, 3], rng=0)
    opt = SigintInsideUpdate(net.parameters(), at, lr=0.01)
    with pytest.raises(TrainingInterrupted) as info:
        fit(net, data, None, optimizer=opt, epochs=3)
    assert opt.sent
    assert info.value.steps_done == at + 1
    assert_same_state(net, opt, *reference(at + 1, data))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_sigint_inside_a_fused_step_finishes_it():
    data = batches()
    net = fastnn.mlp([10, 12, 3], rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.1)
    plan_sgd = net._plan.sgd_backward
    calls = []

    def interrupted_sgd_backward(dY, lr):  # SIGINT while the fused update runs
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)
        return plan_sgd(dY, lr)

    net._plan.sgd_backward = interrupted_sgd_backward
    with pytest.raises(TrainingInterrupted) as info:
        fit(net, data, None, optimizer=opt, epochs=2, on_nonfinite="ignore")
    assert info.value.steps_done == 4 and opt.step_count == 4
    ref = fastnn.mlp([10, 12, 3], rng=0)
    ref_opt = fastnn.SGD(ref.parameters(), lr=0.1)
    for X, y in data[:4]:
        ref.train_step(X, y, ref_opt)
    for key, value in ref.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[key], value, err_msg=key)


def test_interrupt_does_not_restore_early_stopping_weights():
    data = batches()
    net, opt = setup()
    stopper = EarlyStopping("loss", patience=5, restore_best_weights=True)
    with pytest.raises(TrainingInterrupted):
        fit(net, data, None, optimizer=opt, epochs=3,
            callbacks=[stopper, RaiseAt(len(data) + 3, KeyboardInterrupt())])
    assert stopper.best_state is not None  # epoch 1 was recorded, and is not restored
    assert_same_state(net, opt, *reference(len(data) + 4, data))


def test_early_stopping_restores_the_optimizer_with_the_weights():
    data = batches()
    net, opt = setup()
    losses = iter([1.0, 0.5, 0.9, 0.8])

    class FakeLoss(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            metrics_loss = next(losses)
            stopper.on_epoch_end(trainer, epoch, {"loss": metrics_loss})

    stopper = EarlyStopping("loss", patience=2, restore_best_weights=True)
    fit(net, data, None, optimizer=opt, epochs=4, callbacks=[FakeLoss(), stopper])
    # stopper's own on_epoch_end also ran with the real metrics; the fake calls set best at
    # whichever epoch it saw as best; weights and optimizer come from the same epoch
    best_steps = stopper.best_epoch * len(data)
    assert_same_state(net, opt, *reference(best_steps, data))


def _start_training(tmp_path, *extra):
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=root)  # this checkout's fastnn
    from conftest import MNIST_SMALL
    if not (MNIST_SMALL / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("mnist-small not available")
    argv = [sys.executable, "-m", "fastnn", "train", "--data-dir", str(MNIST_SMALL),
            "--hidden", "64", "--epochs", "1000", "--batch-size", "32", "--patience", "0",
            "--threads", "1", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)


def _interrupt(proc, log):
    deadline = time.monotonic() + 120
    while not log.exists() or log.read_text().count("\n") < 1:  # one whole epoch done
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never finished an epoch"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.parametrize("save_on_interrupt", [False, True])
def test_cli_ctrl_c(tmp_path, save_on_interrupt):
    model = tmp_path / "m.npz"
    previous = fastnn.mlp([784, 64, 10], rng=5)
    io.save(model, previous, metadata={"previous": True})
    log = tmp_path / "log.jsonl"
    extra = ["--save", str(model), "--log", str(log)]
    if save_on_interrupt:
        extra.append("--save-on-interrupt")
    code, out, err = _interrupt(_start_training(tmp_path, *extra), log)
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line saying where training stopped
    assert lines[0].startswith("fastnn train: interrupted in epoch ")
    assert " training steps (" in lines[0]
    assert "test accuracy" not in out
    leftovers = set(os.listdir(tmp_path)) - {"m.npz", "log.jsonl"}
    assert leftovers == set()
    saved = io.load(model)  # never a partial file
    if save_on_interrupt:
        assert "saved the model at that step to" in lines[0]
        steps = int(lines[0].split(" after ")[1].split()[0])
        assert saved.metadata["training_steps"] == steps
        assert saved.optimizer_state["step_count"] == steps  # whole steps only
    else:
        assert "; model not saved; " in lines[0]
        assert saved.metadata == {"previous": True}
    # the log: whole JSON lines, as many as the message says
    logged_part = lines[0].rsplit("; ", 1)[1]
    epochs = int(logged_part.split()[0])
    assert logged_part == f"{epochs} epoch{'s' if epochs != 1 else ''} of metrics in {log}"
    logged = log.read_text()
    assert logged.endswith("\n")
    assert [json.loads(line)["epoch"] for line in logged.splitlines()] == list(range(1, epochs + 1))


def test_cli_ctrl_c_before_an_epoch_ends_writes_no_log(tmp_path):
    log = tmp_path / "log.jsonl"
    proc = _start_training(tmp_path, "--log", str(log), "--batch-size", "2", "-v")
    for line in proc.stderr:  # -v describes the data once it is loaded, then training starts
        if "training and" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].endswith(f"; model not saved; no epoch finished, {log} not written")
    assert not log.exists()


def test_save_on_interrupt_needs_save(capsys):
    from fastnn.cli import main
    assert main(["train", "--save-on-interrupt", "--epochs", "1"]) == 1
    assert "--save-on-interrupt needs --save PATH" in capsys.readouterr().err

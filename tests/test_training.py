"""The training loop (fastnn.training.fit), callbacks and History (fastnn.callbacks)."""
import json

import numpy as np
import pytest

import fastnn
from fastnn import io
from fastnn.callbacks import Callback, EarlyStopping, History, MetricsLogger, ModelCheckpoint, Trainer
from fastnn.network import mlp
from fastnn.optimizers import get as get_optimizer
from fastnn.training import TrainingDivergedError, fit


@pytest.fixture
def toy():
    """A separable 3-class problem: the label is the argmax of the first three features."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(240, 6)).astype(np.float32)
    return X, X[:, :3].argmax(axis=1)


def test_fit_learns_mnist_small(mnist_small):
    Xtr, ytr, Xte, yte = mnist_small
    net = mlp([784, 128, 10], rng=0)
    history = fit(net, Xtr, ytr, optimizer="adam", epochs=4, batch_size=64,
                  validation_split=0.1, rng=0)
    assert len(history) == 4
    assert history["loss"][-1] < history["loss"][0]
    assert net.evaluate(Xte, yte)["accuracy"] >= 0.93
    assert not net.training


def test_history_records_and_json(toy):
    X, y = toy
    net = mlp([6, 16, 3], rng=0)
    history = fit(net, X, y, optimizer="adam", epochs=3, batch_size=32, validation_split=0.25, rng=1)
    assert isinstance(history, History) and len(history) == 3
    for i, record in enumerate(history.epochs):
        assert record["epoch"] == i + 1
        assert set(record) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
        assert 0 <= record["accuracy"] <= 1 and record["lr"] == pytest.approx(1e-3)
    assert json.loads(json.dumps(history.to_dict()))["epochs"] == history.epochs
    assert history.history["val_loss"] == history["val_loss"]
    assert history.optimizer.name == "adam"


def test_training_metrics_are_running_averages(toy):
    X, y = toy
    net = mlp([6, 3], rng=0)
    opt = get_optimizer("sgd", net.parameters(), lr=1e-9)  # the weights barely move
    before = net.evaluate(X, y)
    history = fit(net, X, y, optimizer=opt, epochs=1, batch_size=50, rng=0)
    assert history["loss"][0] == pytest.approx(before["loss"], rel=1e-5)
    assert history["accuracy"][0] == pytest.approx(before["accuracy"])


def test_validation_split_and_data(toy):
    X, y = toy
    net = mlp([6, 8, 3], rng=0)
    seen = []

    class CountRows(Callback):
        def on_batch_end(self, trainer, step, loss):
            seen.append(step)

    fit(net, X, y, optimizer="sgd", epochs=1, batch_size=20, validation_split=0.25,
        callbacks=[CountRows()], rng=0)
    assert len(seen) == 180 // 20  # 60 of 240 rows held out
    history = fit(net, X[:200], y[:200], optimizer="sgd", epochs=1, validation_data=(X[200:], y[200:]))
    assert history["val_loss"][0] == pytest.approx(net.evaluate(X[200:], y[200:])["loss"])
    with pytest.raises(ValueError, match="not both"):
        fit(net, X, y, validation_split=0.1, validation_data=(X, y))
    with pytest.raises(ValueError, match="validation_split"):
        fit(net, X, y, validation_split=1.5)


def test_argument_validation(toy):
    X, y = toy
    net = mlp([6, 3], rng=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit(net, X, y, batch_size=0)
    with pytest.raises(ValueError, match="features per row"):
        fit(net, X[:, :4], y)
    with pytest.raises(ValueError, match="outside"):
        fit(net, X, y + 5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(net, X, y, optimizer="lbfgs")
    other = mlp([6, 3], rng=1)
    with pytest.raises(ValueError, match="other parameters"):
        fit(net, X, y, optimizer=get_optimizer("adam", other.parameters()))
    with pytest.raises(ValueError, match="verbose"):
        fit(net, X, y, verbose=5)


def test_seed_determines_the_run(toy):
    X, y = toy

    def run(seed):
        net = mlp([6, 8, 3], rng=0)
        fit(net, X, y, optimizer="sgd", epochs=2, batch_size=16, validation_split=0.2, rng=seed)
        return net.state_dict()["0.weight"]

    np.testing.assert_array_equal(run(4), run(4))
    assert not np.array_equal(run(4), run(5))
    generator = np.random.default_rng(4)
    net = mlp([6, 8, 3], rng=0)
    fit(net, X, y, epochs=1, rng=generator)  # a Generator is accepted (and advanced)
    with pytest.raises(TypeError, match="rng"):
        fit(net, X, y, rng="seed")


def test_diagnostics_hooks_wrap_the_optimizer_step(toy):
    X, y = toy
    net = mlp([6, 5, 3], rng=0)
    weight = net.parameters()[0]

    class Recorder:
        def __init__(self):
            self.calls = []

        def after_backward(self, step):
            self.before = weight.data.copy()
            assert np.any(weight.grad != 0)
            self.calls.append(("backward", step))

        def after_update(self, step):
            assert not np.array_equal(weight.data, self.before)  # the update happened in between
            self.calls.append(("update", step))

    monitor = Recorder()
    fit(net, X, y, optimizer="sgd", epochs=2, batch_size=100, diagnostics=monitor)
    steps = [0, 1, 2, 3, 4, 5]  # ceil(240 / 100) = 3 steps per epoch
    assert monitor.calls == [(kind, s) for s in steps for kind in ("backward", "update")]


def test_schedule_hooks(toy):
    X, y = toy
    net = mlp([6, 3], rng=0)
    opt = get_optimizer("sgd", net.parameters(), lr=0.1)

    class HalvingSchedule:
        interval = "epoch"

        def __init__(self):
            self.batches, self.epochs = 0, []

        def on_batch_end(self):
            self.batches += 1

        def on_epoch_end(self, metrics):
            self.epochs.append(metrics)
            opt.lr /= 2

    schedule = HalvingSchedule()
    history = fit(net, X, y, optimizer=opt, epochs=3, batch_size=60, validation_split=0.25,
                  schedule=schedule)
    assert schedule.batches == 3 * 3
    assert [m["epoch"] for m in schedule.epochs] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(schedule.epochs[0])
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_non_finite_loss_stops_with_epoch_and_step(toy):
    X, y = toy
    net = mlp([6, 8, 3], rng=0)
    X_bad = X.copy()
    X_bad[100] = np.nan
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step \d+ \(batch \d+\)"):
        fit(net, X_bad, y, optimizer="sgd", epochs=1, batch_size=32, rng=0)
    assert not net.training


def _trainer(net):
    return Trainer(net, None, None, History(), epochs=10)


def test_early_stopping_stops_and_restores_best():
    net = mlp([4, 3], rng=0)
    stopper = EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    trainer = _trainer(net)
    stopper.on_train_begin(trainer)
    best_weights = None
    for epoch, val_loss in enumerate([1.0, 0.5, 0.6, 0.4, 0.45, 0.41], start=1):
        with net.parameters()[0].edit() as w:
            w += 1.0  # "training" changes the weights every epoch
        if val_loss == 0.4:
            best_weights = net.parameters()[0].data.copy()
        stopper.on_epoch_end(trainer, epoch, {"val_loss": val_loss})
        if trainer.stop_training:
            break
    assert trainer.history.stopped_epoch == 6 and epoch == 6
    stopper.on_train_end(trainer)
    np.testing.assert_array_equal(net.parameters()[0].data, best_weights)
    assert trainer.history.best_epoch == 4


def test_early_stopping_modes_and_errors():
    net = mlp([4, 3], rng=0)
    stopper = EarlyStopping("val_accuracy", patience=1, min_delta=0.01)
    assert stopper.mode == "max"
    trainer = _trainer(net)
    stopper.on_train_begin(trainer)
    stopper.on_epoch_end(trainer, 1, {"val_accuracy": 0.90})
    stopper.on_epoch_end(trainer, 2, {"val_accuracy": 0.905})  # below min_delta: no improvement
    assert trainer.stop_training
    with pytest.raises(ValueError, match="monitors 'val_loss'"):
        EarlyStopping().on_epoch_end(trainer, 1, {"loss": 1.0})
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_in_fit(toy):
    X, y = toy
    net = mlp([6, 32, 3], rng=0)
    # plain noise labels: validation loss stops improving quickly
    y_noise = np.random.default_rng(0).integers(0, 3, len(y))
    history = fit(net, X, y_noise, optimizer=get_optimizer("adam", net.parameters(), lr=0.05),
                  epochs=60, batch_size=16, validation_split=0.3, rng=0,
                  callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])
    assert history.stopped_epoch is not None and len(history) < 60
    best = int(np.argmin(history["val_loss"]))
    assert history.best_epoch == best + 1
    assert history.stopped_epoch == best + 1 + 3


def test_model_checkpoint_and_metrics_logger(toy, tmp_path):
    X, y = toy
    net = mlp([6, 8, 3], rng=0)
    ckpt = tmp_path / "ckpt.npz"
    log = tmp_path / "log.jsonl"
    history = fit(net, X, y, optimizer="adam", epochs=3, validation_split=0.25, rng=0,
                  callbacks=[ModelCheckpoint(ckpt, metadata={"run": "a"}), MetricsLogger(log)])
    model = io.load(ckpt)
    assert model.metadata["epoch"] == 3 and model.metadata["run"] == "a"
    assert model.metadata["history"]["epochs"] == json.loads(json.dumps(history.epochs))
    assert model.optimizer_state["step_count"] == history.optimizer.step_count
    np.testing.assert_array_equal(model.net.forward(X), net.forward(X))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == json.loads(json.dumps(history.epochs))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz", "log.jsonl"]


def test_model_checkpoint_save_best_only(toy, tmp_path):
    net = mlp([6, 3], rng=0)
    trainer = _trainer(net)
    ckpt = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    ckpt.on_train_begin(trainer)
    ckpt.on_epoch_end(trainer, 1, {"val_loss": 0.5})
    ckpt.on_epoch_end(trainer, 2, {"val_loss": 0.7})
    assert io.load(tmp_path / "best.npz").metadata["epoch"] == 1
    ckpt.on_epoch_end(trainer, 3, {"val_loss": 0.3})
    assert io.load(tmp_path / "best.npz").metadata["epoch"] == 3


def test_verbose_lines(toy):
    X, y = toy
    lines = []
    fit(mlp([6, 3], rng=0), X, y, epochs=2, validation_split=0.25, verbose=2, log=lines.append)
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2  loss ")
    assert "val_acc" in lines[1] and "lr 0.001" in lines[1]
    silent = []
    fit(mlp([6, 3], rng=0), X, y, epochs=1, verbose=0, log=silent.append)
    assert silent == []


def test_initial_epoch_numbers_epochs(toy):
    X, y = toy
    history = fit(mlp([6, 3], rng=0), X, y, epochs=5, initial_epoch=3)
    assert history["epoch"] == [4, 5]


def test_max_norm_constraint_applies_after_each_update(toy):
    X, y = toy
    net = mlp([6, 16, 3], rng=0, max_norm=0.5)
    weights = [p for p in net.parameters() if p.name == "weight"]

    class CheckNorms:
        def after_backward(self, step):
            """Nothing to check before the update."""

        def after_update(self, step):
            for w in weights:  # each unit's incoming weight vector (a column of W)
                assert np.linalg.norm(w.data, axis=0).max() <= 0.5 * (1 + 1e-5)

    fit(net, X, y, optimizer=get_optimizer("sgd", net.parameters(), lr=1.0), epochs=2,
        batch_size=32, diagnostics=CheckNorms())


def _train_step_loop(net, opt, X, y, seed, epochs, batch_size, fused):
    """What fit does per batch, written out with net.train_step over fit's batches."""
    from fastnn import _seeding
    from fastnn.datasets import iterate_minibatches

    for epoch in range(1, epochs + 1):
        net.train()
        rng = _seeding.stream(seed, _seeding.SHUFFLE, epoch)
        for X_b, y_b in iterate_minibatches(X, y, batch_size, rng):
            net.train_step(X_b, y_b, opt, fused=fused)
    net.eval()


@pytest.mark.parametrize("on_nonfinite", ["ignore", "raise", "skip"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("layers", ["plain", "batchnorm-dropout"])
def test_fit_steps_are_train_steps_bit_for_bit(toy, on_nonfinite, optimizer, layers):
    """fit runs net.train_step's step: fused with "ignore" (nothing reads the gradients),
    unfused with the checks; the weights match a train_step loop exactly."""
    X, y = toy
    extra = {"batch_norm": True, "dropout": 0.2} if layers != "plain" else {}
    a, b = mlp([6, 16, 8, 3], rng=0, **extra), mlp([6, 16, 8, 3], rng=0, **extra)
    opt_a = get_optimizer(optimizer, a.parameters(), lr=0.05)
    opt_b = get_optimizer(optimizer, b.parameters(), lr=0.05)
    fit(a, X, y, optimizer=opt_a, epochs=2, batch_size=32, rng=3, on_nonfinite=on_nonfinite)
    _train_step_loop(b, opt_b, X, y.astype(np.int64), seed=3, epochs=2, batch_size=32,
                     fused=on_nonfinite == "ignore")
    for key, value in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[key], value, err_msg=key)
    assert opt_a.step_count == opt_b.step_count == 2 * 8
    # plain SGD took the fused step exactly when nothing checked the gradients
    fused = optimizer == "sgd" and on_nonfinite == "ignore"
    assert (opt_a.last_grad_norm is None) == fused


def test_fit_takes_diagnostics_not_monitor(toy):
    """fit(diagnostics=) is the Monitor; monitor= is only the callbacks' metric name."""
    X, y = toy
    net = mlp([6, 5, 3], rng=0)
    with pytest.raises(TypeError, match="monitor"):
        fit(net, X, y, epochs=1, monitor=object())
    from fastnn.diagnostics import Monitor

    monitor = Monitor(net, interval=2)
    history = fit(net, X, y, optimizer="sgd", epochs=1, batch_size=60, diagnostics=monitor,
                  validation_split=0.25, callbacks=[EarlyStopping(monitor="val_accuracy")])
    assert sorted({r["step"] for r in monitor.rows}) == [0, 2]
    assert len(history) == 1


def test_fit_refuses_an_object_that_is_not_an_optimizer(toy):
    X, y = toy
    with pytest.raises(TypeError, match="optimizer must be"):
        fit(mlp([6, 3], rng=0), X, y, optimizer=object())


def test_callbacks_and_factories_moved_but_stay_importable_with_a_warning():
    from fastnn import callbacks, io, optimizers, schedules, training

    for name in ("Callback", "EarlyStopping", "History", "MetricsLogger", "ModelCheckpoint",
                 "Trainer"):
        with pytest.warns(DeprecationWarning, match=f"fastnn.training.{name} .* 0.3.0"):
            assert getattr(training, name) is getattr(callbacks, name)
    with pytest.warns(DeprecationWarning, match="use fastnn.optimizers.make_optimizer"):
        assert training.make_optimizer is optimizers.make_optimizer
    with pytest.warns(DeprecationWarning, match="use fastnn.schedules.get"):
        assert training.make_schedule is schedules.get
    with pytest.warns(DeprecationWarning, match="use fastnn.io.restore"):
        assert training.restore is io.restore
    with pytest.raises(AttributeError):
        training.no_such_name  # noqa: B018


# -- out of core --------------------------------------------------------------------------

def _memmap(path, array):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    mm[...] = array
    mm.flush()
    return np.load(path, mmap_mode="r")


def test_memmap_unshuffled_matches_in_memory_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 12)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    runs = []
    for data in (X, _memmap(tmp_path / "X.npy", X)):
        net = fastnn.mlp([12, 16, 2], rng=0)
        fastnn.fit(net, data, y, epochs=2, batch_size=64, shuffle=False, rng=0)
        runs.append(net.state_dict())
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key], err_msg=key)


def test_memmap_streams_blocks_in_a_new_order_each_epoch(tmp_path, monkeypatch):
    from fastnn import training

    monkeypatch.setattr(training, "STREAM_BLOCK_ROWS", 100)
    X = np.arange(1000, dtype=np.float32).reshape(-1, 1).repeat(3, axis=1)
    y = np.zeros(1000, dtype=np.int64)
    seen = []

    class Record(fastnn.Callback):
        def on_epoch_begin(self, trainer, epoch):
            seen.append([])

    net = fastnn.mlp([3, 2], rng=0)
    original = net.train_step

    def spy(X_b, y_b, optimizer, **kwargs):
        seen[-1].append(X_b[:, 0].copy())
        return original(X_b, y_b, optimizer, **kwargs)

    monkeypatch.setattr(net, "train_step", spy)
    fastnn.fit(net, _memmap(tmp_path / "X.npy", X), y, epochs=2, batch_size=32, rng=1,
               callbacks=[Record()], on_nonfinite="ignore")
    first, second = (np.concatenate(epoch) for epoch in seen)
    assert sorted(first) == sorted(second) == list(range(1000))  # every row once per epoch
    assert not np.array_equal(first, second)  # a new order
    assert [len(b) for b in seen[0]] == [32] * 31 + [8]  # batches span block boundaries
    # rows of one block stay together: the first 100 rows come from one block of 100
    assert len({int(v) // 100 for v in first[:96]}) == 1


def test_memmap_fit_memory_stays_far_below_the_data(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(2)
    n, d = 40_000, 400  # 64 MB of float32
    path = tmp_path / "X.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    w = rng.normal(size=d).astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, 5000):
        block = rng.normal(size=(5000, d)).astype(np.float32)
        mm[start:start + 5000] = block
        y[start:start + 5000] = block @ w > 0
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    net = fastnn.mlp([d, 32, 2], rng=0)
    tracemalloc.start()
    history = fastnn.fit(net, X, y, epochs=1, batch_size=128, validation_split=0.05, rng=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.nbytes / 8, f"peak {peak / 1e6:.1f} MB for {X.nbytes / 1e6:.0f} MB of data"
    assert history.epochs[-1]["val_accuracy"] > 0.8


def test_iterable_of_batches(rng):
    X = rng.normal(size=(640, 5)).astype(np.float32)
    y = (X.sum(axis=1) > 0).astype(np.int64)
    batches = [(X[i:i + 64], y[i:i + 64]) for i in range(0, 640, 64)]
    net = fastnn.mlp([5, 8, 2], rng=0)
    history = fastnn.fit(net, batches, None, optimizer=fastnn.Adam(net.parameters(), lr=0.02),
                         epochs=3, validation_data=(X, y), rng=0)
    assert len(history) == 3 and history.epochs[-1]["val_accuracy"] > 0.9
    with pytest.raises(ValueError, match="validation_split needs X as an array"):
        fastnn.fit(net, batches, None, validation_split=0.1)
    with pytest.raises(ValueError, match="features per row"):
        fastnn.fit(net, [(X[:, :4], y)], None)

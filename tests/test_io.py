"""Model files (fastnn.io): round trips, atomic writes, refusal of bad files, exact resume."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import io
from fastnn.datasets import Preprocessor
from fastnn.io import restore
from fastnn.network import mlp
from fastnn.optimizers import get as get_optimizer
from fastnn.schedules import get as get_schedule
from fastnn.training import fit


def _trained_net(dtype=np.float32, **kwargs):
    rng = np.random.default_rng(3)
    X = rng.random((96, 12)).astype(dtype)
    y = rng.integers(0, 4, 96)
    net = mlp([12, 9, 7, 4], rng=1, dtype=dtype, **kwargs)
    opt = get_optimizer("adam", net.parameters(), lr=1e-2)
    fit(net, X, y, optimizer=opt, epochs=2, batch_size=16, rng=0)
    return net, opt, X, y


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": True, "dropout": 0.3}],
                         ids=["plain", "batchnorm-dropout"])
def test_round_trip_restores_everything(tmp_path, dtype, kwargs):
    net, opt, X, y = _trained_net(dtype, **kwargs)
    pre = Preprocessor("standardize").fit(X)
    path = tmp_path / "model.npz"
    io.save(path, net, optimizer=opt, preprocessing=pre.state_dict(),
            metadata={"dataset": "toy", "scores": [0.5, 0.25]})
    model = io.load(path)
    assert model.net.get_config() == net.get_config()
    state, loaded = net.state_dict(), model.net.state_dict()
    assert state.keys() == loaded.keys()
    for key in state:
        assert loaded[key].dtype == state[key].dtype
        np.testing.assert_array_equal(loaded[key], state[key])
    np.testing.assert_array_equal(model.net.forward(X), net.eval().forward(X))
    assert not model.net.training
    opt_state = opt.state_dict()
    assert model.optimizer_state.keys() == opt_state.keys()
    for key, value in opt_state.items():
        np.testing.assert_array_equal(model.optimizer_state[key], value)
    assert model.optimizer_config == {"class": "Adam", "config": json.loads(json.dumps(opt.get_config()))}
    restored = Preprocessor.from_state(model.preprocessing)
    np.testing.assert_array_equal(restored.transform(X), pre.transform(X))
    assert model.metadata == {"dataset": "toy", "scores": [0.5, 0.25]}
    assert model.schedule_state is None and model.schedule_config is None
    assert model.format_version == io.FORMAT_VERSION
    assert model.fastnn_version == fastnn.__version__


def test_scalar_state_values_keep_their_types(tmp_path):
    net, _, _, _ = _trained_net()

    class Stateful:
        def state_dict(self):
            return {"a": 3, "b": 0.1, "c": "text", "d": True, "e": None,
                    "f": np.float32(0.5), "g": np.arange(3)}

    io.save(tmp_path / "m.npz", net, schedule=Stateful())
    state = io.load(tmp_path / "m.npz").schedule_state
    assert state["a"] == 3 and type(state["a"]) is int
    assert state["b"] == 0.1 and state["c"] == "text" and state["d"] is True and state["e"] is None
    assert state["f"].dtype == np.float32 and state["f"] == np.float32(0.5)
    np.testing.assert_array_equal(state["g"], np.arange(3))


def test_save_refuses_non_serialisable_state(tmp_path):
    net, _, _, _ = _trained_net()
    with pytest.raises(TypeError, match="preprocessing state\\['bad'\\]"):
        io.save(tmp_path / "m.npz", net, preprocessing={"bad": [1, 2]})
    with pytest.raises(TypeError, match="Sequential"):
        io.save(tmp_path / "m.npz", object())
    assert not (tmp_path / "m.npz").exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    net, _, X, _ = _trained_net()
    path = tmp_path / "model.npz"
    io.save(path, net)
    before = path.read_bytes()
    other = mlp([12, 9, 7, 4], rng=99)

    def failing_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        io.save(path, other)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    monkeypatch.undo()
    io.save(path, other)  # replacing an existing file
    np.testing.assert_array_equal(io.load(path).net.forward(X), other.eval().forward(X))
    assert os.listdir(tmp_path) == ["model.npz"]


def _bad_file(tmp_path, kind):
    net, _, _, _ = _trained_net()
    good = tmp_path / "good.npz"
    io.save(good, net)
    data = good.read_bytes()
    path = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupted":
        blob = bytearray(data)
        blob[len(blob) // 3] ^= 0xFF  # inside the weight data
        path.write_bytes(bytes(blob))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, not a model\n")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.arange(4))
    elif kind == "foreign-npz":
        with open(path, "wb") as f:
            np.savez(f, weights=np.ones(3))
    elif kind == "encrypted":  # the "encrypted" flag bit set in every local and central header
        blob = bytearray(data)
        for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            start = blob.find(signature)
            while start >= 0:
                blob[start + flag_offset] |= 1
                start = blob.find(signature, start + 4)
        path.write_bytes(bytes(blob))
    elif kind == "object-array":
        arrays = dict(np.load(good))
        arrays["net/0.weight"] = np.array([{"evil": 1}], dtype=object)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    elif kind in ("future-version", "foreign-format", "unknown-layer", "bad-json", "missing-weight",
                  "extra-entry"):
        arrays = dict(np.load(good))
        header = json.loads(arrays["__header__"].tobytes())
        if kind == "future-version":
            header["format_version"] = io.FORMAT_VERSION + 1
        elif kind == "foreign-format":
            header["format"] = "something-else"
        elif kind == "unknown-layer":
            header["config"]["layers"][1] = {"class": "os.system", "config": {}}
        elif kind == "missing-weight":
            del arrays["net/0.weight"]
        elif kind == "extra-entry":
            arrays["code/run"] = np.zeros(1)
        raw = b"{not json" if kind == "bad-json" else json.dumps(header).encode()
        arrays["__header__"] = np.frombuffer(raw, dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("kind, message", [
    ("truncated", "truncated or corrupted"),
    ("corrupted", "corrupted"),
    ("empty", "not a fastnn model file"),
    ("text", "not a fastnn model file"),
    ("pickle", "pickle"),
    ("npy", "single .npy array"),
    ("foreign-npz", "no __header__"),
    ("encrypted", "encrypted entry"),
    ("object-array", "pickle"),
    ("future-version", "newer than this fastnn"),
    ("foreign-format", "not a fastnn model file"),
    ("unknown-layer", "unknown layer class 'os.system'"),
    ("bad-json", "malformed header"),
    ("missing-weight", "missing"),
    ("extra-entry", "unexpected entry 'code/run'"),
])
def test_load_refuses_bad_files(tmp_path, kind, message):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(io.ModelFileError, match=message) as info:
        io.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "absent.npz")


def test_file_holds_only_numeric_arrays(tmp_path):
    net, opt, _, _ = _trained_net(batch_norm=True, dropout=0.2)
    path = tmp_path / "m.npz"
    io.save(path, net, optimizer=opt, metadata={"note": "x"})
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert "__header__.npy" in names
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            assert archive[key].dtype.kind in "biuf", key


def _resume_case(optimizer_name, options, kwargs, tmp_path, schedule=None):
    """Train 4 epochs in one go, and 2 + save/load + 2: the weights must be identical."""
    rng = np.random.default_rng(0)
    X = rng.random((200, 16)).astype(np.float32)
    y = rng.integers(0, 5, 200)

    def start():
        net = mlp([16, 20, 5], rng=7, **kwargs)
        opt = get_optimizer(optimizer_name, net.parameters(), **options)
        return net, opt, schedule and get_schedule(schedule[0], opt, **schedule[1])

    straight, opt, sched = start()
    h_straight = fit(straight, X, y, optimizer=opt, epochs=4, batch_size=32,
                     validation_split=0.2, schedule=sched, rng=11)

    first, opt1, sched1 = start()
    fit(first, X, y, optimizer=opt1, epochs=2, batch_size=32, validation_split=0.2,
        schedule=sched1, rng=11)
    io.save(tmp_path / "half.npz", first, optimizer=opt1, schedule=sched1, metadata={"epoch": 2})
    model = io.load(tmp_path / "half.npz")
    opt2, sched2 = restore(model)
    assert type(opt2) is type(opt1) and opt2.step_count == opt1.step_count
    assert (sched2 is None) == (schedule is None)
    h_resumed = fit(model.net, X, y, optimizer=opt2, epochs=4, batch_size=32,
                    validation_split=0.2, schedule=sched2, rng=11,
                    initial_epoch=model.metadata["epoch"])

    for key, value in straight.state_dict().items():
        np.testing.assert_array_equal(model.net.state_dict()[key], value, err_msg=key)
    assert h_resumed["epoch"] == [3, 4]
    assert h_resumed["loss"] == h_straight["loss"][2:]
    assert h_resumed["val_loss"] == h_straight["val_loss"][2:]
    assert h_resumed["lr"] == h_straight["lr"][2:]


@pytest.fixture
def single_thread():
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(before)


@pytest.mark.parametrize("optimizer_name, options", [
    ("sgd", {"lr": 0.1}), ("momentum", {"lr": 0.05, "momentum": 0.9}), ("adam", {"lr": 1e-2})])
def test_resume_is_identical(tmp_path, single_thread, optimizer_name, options):
    _resume_case(optimizer_name, options, {}, tmp_path)


def test_resume_is_identical_with_batchnorm_and_dropout(tmp_path, single_thread):
    _resume_case("adam", {"lr": 1e-2}, {"batch_norm": True, "dropout": 0.25}, tmp_path)


@pytest.mark.parametrize("schedule", [("step", {"step_size": 1, "gamma": 0.5}),
                                      ("cosine", {"t_max": 20}),
                                      ("plateau", {"patience": 0, "factor": 0.5})],
                         ids=["step", "cosine", "plateau"])
def test_resume_is_identical_with_a_schedule(tmp_path, single_thread, schedule):
    _resume_case("momentum", {"lr": 0.05, "momentum": 0.9}, {}, tmp_path, schedule)


def test_restore_after_a_schedule_reached_zero(tmp_path):
    """Cosine annealing ends at min_lr=0 by default; that optimizer state restores."""
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 8)).astype(np.float32), rng.integers(0, 3, 64)
    net = mlp([8, 6, 3], rng=0)
    opt = get_optimizer("sgd", net.parameters(), lr=0.1)
    sched = get_schedule("cosine", opt, t_max=2)
    fit(net, X, y, optimizer=opt, epochs=2, batch_size=32, schedule=sched, rng=0)
    assert opt.lr == 0
    io.save(tmp_path / "end.npz", net, optimizer=opt, schedule=sched)
    opt2, sched2 = restore(io.load(tmp_path / "end.npz"))
    assert opt2.lr == 0 and type(sched2) is type(sched)


def test_restore_without_training_state(tmp_path):
    net, _, _, _ = _trained_net()
    io.save(tmp_path / "m.npz", net)
    assert restore(io.load(tmp_path / "m.npz")) == (None, None)

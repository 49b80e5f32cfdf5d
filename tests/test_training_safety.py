"""Training safety: non-finite losses and gradients, last good weights, atomic checkpoints."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn
from fastnn import io
from fastnn.callbacks import ModelCheckpoint
from fastnn.training import TrainingDivergedError, fit


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 8)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def test_nan_input_stops_before_any_update_and_names_the_input(data):
    X, y = data
    X = X.copy()
    X[50, 3] = np.nan
    net = fastnn.mlp([8, 6, 2], rng=0)
    message = r"epoch 1, step 3 \(batch 3\), in the input batch"
    with pytest.raises(TrainingDivergedError, match=message) as info:
        fit(net, X, y, optimizer="sgd", epochs=1, batch_size=16, shuffle=False)
    assert info.value.step == 3 and info.value.layer is None


def test_non_finite_gradient_names_the_first_layer_and_keeps_the_last_good_weights(data, tmp_path):
    X, y = data
    net = fastnn.mlp([8, 6, 5, 2], rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.1)
    good = {}

    class Poison(fastnn.callbacks.Callback):
        """After step 2, make the last layer's weights huge so the next gradient overflows."""

        def on_batch_end(self, trainer, step, loss):
            if step == 2:
                good.update(trainer.net.state_dict())
                net.layers[4].weight.copy_(3e38)

    checkpoint = tmp_path / "last-good.npz"
    with pytest.raises(TrainingDivergedError, match=r"step 3 .*first in layer") as info:
        fit(net, X, y, optimizer=opt, epochs=1, batch_size=16, shuffle=False,
            callbacks=[Poison(), ModelCheckpoint(checkpoint)])
    assert info.value.step == 3
    saved = io.load(checkpoint)
    assert "diverged" in saved.metadata and "step 3" in saved.metadata["diverged"]
    # nothing of step 3 was applied: the weights are those left by step 2 (and the poison)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(saved.net.state_dict()[key], value)
    for key in ("0.weight", "0.bias", "2.weight"):
        np.testing.assert_array_equal(net.state_dict()[key], good[key])


def test_skip_mode_leaves_the_bad_steps_out(data):
    X, y = data
    X = X.copy()
    X[20, 0] = np.inf  # in batch 1 of each epoch (no shuffling)
    net = fastnn.mlp([8, 6, 2], rng=0)
    history = fit(net, X, y, optimizer="adam", epochs=2, batch_size=16, shuffle=False,
                  on_nonfinite="skip")
    assert [s["step"] for s in history.skipped_steps] == [1, 7]
    assert all(np.all(np.isfinite(v)) for v in net.state_dict().values())
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("with_monitor", [False, True], ids=["plain", "monitor"])
def test_ignore_mode_checks_nothing(data, with_monitor):
    """on_nonfinite="ignore" trains through a NaN batch, with or without a Monitor."""
    X, y = data
    X = X.copy()
    X[20, 0] = np.nan
    net = fastnn.mlp([8, 6, 2], rng=0)
    monitor = fastnn.Monitor(net, interval=1) if with_monitor else None
    history = fit(net, X, y, optimizer="sgd", epochs=1, batch_size=16, shuffle=False,
                  on_nonfinite="ignore", diagnostics=monitor)
    assert history.skipped_steps == [] and np.isnan(history["loss"][0])


def test_on_nonfinite_is_validated(data):
    X, y = data
    with pytest.raises(ValueError, match="on_nonfinite must be"):
        fit(fastnn.mlp([8, 2]), X, y, on_nonfinite="warn")


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import fastnn
    net = fastnn.mlp([64, 128, 10], rng=0)
    opt = fastnn.Adam(net.parameters())
    i = 0
    print("ready", flush=True)
    while True:
        for layer in net.layers:
            for p in layer.parameters():
                p.copy_(i)  # every array of version i holds the value i
        fastnn.save(sys.argv[1], net, optimizer=opt, metadata={"version": i})
        i += 1
""")


def _same_fastnn():
    """An environment whose Python imports the fastnn under test (this checkout's)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


@pytest.mark.slow
def test_checkpoints_survive_being_killed_mid_write(tmp_path):
    """Kill a process that rewrites a checkpoint in a loop, 20 times: the file always loads whole."""
    path = tmp_path / "ckpt.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = np.random.default_rng(0)
    versions = []
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                env=_same_fastnn())
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # A kill may leave one file besides the checkpoint: the named temporary file that
        # the next save truncates and renames away (fastnn.io._temporary), never another.
        assert set(os.listdir(tmp_path)) - {"writer.py", "ckpt.npz"} <= {".ckpt.npz.tmp"}
        if not path.exists():
            continue
        model = io.load(path)  # never a broken file
        version = model.metadata["version"]
        for value in model.net.state_dict().values():
            assert np.all(value == version)
        versions.append(version)
    assert versions, "the writer never completed a checkpoint"
    fastnn.save(path, fastnn.mlp([64, 128, 10], rng=0))  # the next save cleans up
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz", "writer.py"]


# -- hostile model files ----------------------------------------------------------------

import io as _bytes_io  # noqa: E402
import struct  # noqa: E402
import zipfile  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    net = fastnn.mlp([6, 5, 3], batch_norm=True, rng=0)
    fastnn.save(path, net, optimizer=fastnn.Adam(net.parameters()))
    return path.read_bytes(), net.state_dict()


def _load_or_reject(tmp_path, payload, original_state):
    path = tmp_path / "candidate.npz"
    path.write_bytes(payload)
    try:
        model = io.load(path)
    except io.ModelFileError:
        return "rejected"
    for key, value in original_state.items():  # loading succeeded only if nothing changed
        np.testing.assert_array_equal(model.net.state_dict()[key], value)
    return "loaded"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), max_size=3))
def test_truncated_and_bit_flipped_model_files(tmp_path, model_bytes, cut, flips):
    """Every corruption either raises ModelFileError or loads exactly the saved weights."""
    payload, state = model_bytes
    data = bytearray(payload[: max(1, int(len(payload) * (1 - cut * cut)))])
    for where, bit in flips:
        data[int(where * (len(data) - 1))] ^= 1 << bit
    _load_or_reject(tmp_path, bytes(data), state)


def _npz_with_member(name, npy_bytes):
    buffer = _bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, npy_bytes)
    return buffer.getvalue()


def test_absurd_dimensions_never_allocate(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 1000), }"
    header = header.ljust(118) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    path = tmp_path / "huge.npz"
    path.write_bytes(_npz_with_member("__header__.npy", npy))
    with pytest.raises(io.ModelFileError, match="declares shape"):
        io.load(path)


def test_a_planted_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = _bytes_io.BytesIO()
    np.save(buffer, np.array([Exploit()], dtype=object), allow_pickle=True)
    path = tmp_path / "evil.npz"
    path.write_bytes(_npz_with_member("net/0.weight.npy", buffer.getvalue()))
    with pytest.raises(io.ModelFileError, match="pickle"):
        io.load(path)
    import pickle
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(io.ModelFileError, match="pickle"):
        io.load(raw)
    assert not marker.exists()

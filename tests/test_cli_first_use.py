"""What a new user of the command line trips over (issue 18), each through a real subprocess."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import fastnn as _package
from conftest import MNIST_SMALL
from fastnn import datasets, io

#: Where the fastnn under test comes from (this checkout, built in place, or an installed wheel): the
#: subprocesses import the same one.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(_package.__file__)))


def fastnn(*argv, env=None, umask=None, timeout=300):
    """Run ``python -m fastnn argv`` with no data folder configured and no cache to fall back on."""
    base = {k: v for k, v in os.environ.items() if k != datasets.DATA_DIR_ENV}
    base["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, base.get("PYTHONPATH", "")])
    base.update(env or {})
    old = os.umask(umask) if umask is not None else None
    try:
        return subprocess.run([sys.executable, "-m", "fastnn", *map(str, argv)],
                              capture_output=True, text=True, env=base, timeout=timeout)
    finally:
        if old is not None:
            os.umask(old)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty XDG cache: a lookup that falls back to it finds nothing there."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def model(mnist_small, tmp_path_factory, cache):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--hidden", "32", "--epochs", "2",
                    "--threads", "1", "--save", path, "-q", env=cache)
    assert result.returncode == 0, result.stderr
    return path


def _link_dataset(folder, stems=None):
    folder.mkdir(parents=True)
    for name in os.listdir(MNIST_SMALL):
        if stems is None or any(name.startswith(s) for s in stems):
            os.symlink(MNIST_SMALL / name, folder / name)


# 1. output paths -----------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--save", "--log"])
def test_output_paths_are_checked_before_training(mnist_small, tmp_path, option):
    path = tmp_path / "nonexistent" / "out.file"
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--epochs", "1", option, path)
    assert result.returncode == 1
    assert result.stderr == (f"fastnn train: error: {option} {path}: the folder "
                             f"{path.parent} does not exist\n")
    assert result.stdout == ""  # nothing trained


def test_output_path_that_is_a_folder(mnist_small, tmp_path):
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--epochs", "1", "--save", tmp_path)
    assert result.returncode == 1 and "is a folder" in result.stderr and result.stdout == ""


def test_save_error_names_the_users_path(tmp_path):
    from fastnn.network import mlp
    path = tmp_path / "gone" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        io.save(path, mlp([4, 2], rng=0))
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)


# 2. --data-dir is used or refused --------------------------------------------------------

def test_missing_data_dir_fails_at_once(mnist_small, tmp_path):
    # a configured fallback that today's lookup would silently use instead
    result = fastnn("train", "--data-dir", tmp_path / "typo", "--epochs", "1",
                    env={datasets.DATA_DIR_ENV: str(MNIST_SMALL)})
    assert result.returncode == 1
    assert result.stderr == f"fastnn train: error: {tmp_path / 'typo'} does not exist\n"


def test_data_dir_points_to_subfolders_with_idx_files(mnist_small, tmp_path, cache):
    _link_dataset(tmp_path / "data" / "mnist-small")
    result = fastnn("train", "--data-dir", tmp_path / "data", "--epochs", "1", env=cache)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines == [f"fastnn train: error: {tmp_path / 'data'} holds no MNIST-layout IDX files",
                     f"  sub-folders that hold them: {tmp_path / 'data' / 'mnist-small'}"]


def test_data_dir_names_the_missing_files(mnist_small, tmp_path, cache):
    _link_dataset(tmp_path / "partial", stems=["train-"])
    result = fastnn("train", "--data-dir", tmp_path / "partial", "--epochs", "1", env=cache)
    assert result.returncode == 1
    assert result.stderr == (f"fastnn train: error: {tmp_path / 'partial'} lacks "
                             "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]\n")


# 3. evaluate remembers the dataset -------------------------------------------------------

def test_evaluate_uses_the_training_folder(model, cache):
    saved = io.load(model)
    assert os.path.realpath(saved.metadata["data_dir"]) == os.path.realpath(MNIST_SMALL)
    result = fastnn("evaluate", model, env=cache)
    assert result.returncode == 0, result.stderr
    assert f"mnist test split, 2000 images: accuracy {100 * saved.metadata['test_accuracy']:.2f}%" \
        in result.stdout


def test_evaluate_detects_a_dataset_mismatch(model, cache):
    result = fastnn("evaluate", model, "--dataset", "fashion-mnist", "--data-dir", MNIST_SMALL,
                    env=cache)
    assert result.returncode == 1
    assert f"holds the mnist data {model} was trained on, not fashion-mnist" in result.stderr


def test_evaluate_warns_when_the_files_differ(model, tmp_path, cache):
    folder = tmp_path / "other"
    _link_dataset(folder, stems=["train-"])
    X, y = datasets.load_mnist(MNIST_SMALL, "test")
    _write_idx(folder / "t10k-images-idx3-ubyte", X[:100])
    _write_idx(folder / "t10k-labels-idx1-ubyte", y[:100].astype(np.uint8))
    result = fastnn("evaluate", model, "--data-dir", folder, env=cache)
    assert result.returncode == 0, result.stderr
    assert f"warning: the mnist files in {folder} differ from those {model} was trained on" \
        in result.stderr


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# 4. predict refuses what it cannot read consistently ------------------------------------

def test_predict_refuses_non_finite_rows(model, tmp_path):
    X = np.full((5, 784), 0.5, dtype=np.float32)
    X[3, 17] = np.nan
    X[4, 0] = np.inf
    np.save(tmp_path / "x.npy", X)
    result = fastnn("predict", model, tmp_path / "x.npy")
    assert result.returncode == 1 and result.stdout == ""
    assert "image 3 (0-based) holds NaN or infinity; 2 of 5 images are not finite" in result.stderr


@pytest.mark.parametrize("value", [-5.0, 300.0])
def test_predict_refuses_values_outside_pixel_range(model, tmp_path, value):
    X = np.zeros((4, 784), dtype=np.float32)
    X[2, 5] = value
    np.save(tmp_path / "x.npy", X)
    result = fastnn("predict", model, tmp_path / "x.npy")
    assert result.returncode == 1 and "image 2 (0-based) has values outside 0-255" in result.stderr


def test_predict_rescales_0_255_floats_like_training(model, tmp_path):
    raw = datasets.load_mnist(MNIST_SMALL, "test")[0][:20]
    np.save(tmp_path / "u8.npy", raw)
    np.save(tmp_path / "f.npy", raw.astype(np.float32))
    as_pixels = fastnn("predict", model, tmp_path / "u8.npy")
    as_floats = fastnn("predict", model, tmp_path / "f.npy")
    assert as_floats.returncode == 0 and as_floats.stdout == as_pixels.stdout
    assert "read as raw pixels 0-255 and divided by 255" in as_floats.stderr


# 5. usage errors -------------------------------------------------------------------------

def test_usage_error_is_the_error_and_a_pointer_to_help():
    result = fastnn("train", "--epochs", "x")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "fastnn train: error: argument --epochs: expected an integer, got 'x'",
        "Run 'fastnn train --help' for the options."]


# 6. "1 epoch" and file modes ------------------------------------------------------------

def test_one_epoch_and_files_follow_the_umask(mnist_small, tmp_path):
    saved, log = tmp_path / "m.npz", tmp_path / "log.jsonl"
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--hidden", "16", "--epochs", "1",
                    "--threads", "1", "--save", saved, "--log", log, umask=0o022)
    assert result.returncode == 0, result.stderr
    assert "; 1 epoch in " in result.stdout
    assert stat.S_IMODE(os.stat(saved).st_mode) == stat.S_IMODE(os.stat(log).st_mode) == 0o644
    epoch_line = next(line for line in result.stdout.splitlines() if line.startswith("epoch 1/1"))
    assert "s/epoch" in epoch_line and "samples/s" in epoch_line


# 7. values a user can mistype -------------------------------------------------------------

def test_hidden_too_large_is_one_line_before_allocating(mnist_small):
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--hidden", "100000000", timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("fastnn train: error: --hidden 100000000: 79,500,000,010 "
                                    "parameters need 1.2 TiB to train (float32, adam)")
    assert result.stderr.count("\n") == 1


def test_threads_above_the_cores_are_capped_with_a_warning(mnist_small):
    cores = len(os.sched_getaffinity(0))
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--hidden", "16", "--epochs", "1",
                    "--threads", cores + 62)
    assert result.returncode == 0, result.stderr
    assert f"warning: --threads {cores + 62} is more than the {cores} cores here; using {cores}" \
        in result.stderr


# the API pieces behind them ---------------------------------------------------------------

def test_hflip_mirrors_a_random_half():
    X = np.arange(6 * 784, dtype=np.float32).reshape(6, 784)
    out = datasets.hflip(X, rng=0, p=0.5)
    mirrored = X.reshape(6, 28, 28)[:, :, ::-1].reshape(6, 784)
    flipped = [bool(np.array_equal(out[i], mirrored[i])) for i in range(6)]
    kept = [bool(np.array_equal(out[i], X[i])) for i in range(6)]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    assert np.array_equal(datasets.hflip(X, rng=0, p=1.0), mirrored)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 784\)"):
        datasets.hflip(X[:, :100])


def _translated(image, dy, dx):
    """``image`` (rows x cols) moved down dy and right dx, zeros moved in: the reference."""
    rows, cols = image.shape
    out = np.zeros_like(image)
    for r in range(rows):
        for c in range(cols):
            if 0 <= r - dy < rows and 0 <= c - dx < cols:
                out[r, c] = image[r - dy, c - dx]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_shift", [0, 1, 2])
def test_shift_translates_each_image_within_max_shift(dtype, max_shift):
    rng = np.random.default_rng(5)
    X = rng.random((40, 7 * 5)).astype(dtype)[:, ::-1]        # non-contiguous input
    X.flags.writeable = False
    before = X.copy()
    out = datasets.shift(X, rng=1, max_shift=max_shift, image_shape=(7, 5))
    assert out.dtype == dtype and out.shape == X.shape and np.array_equal(X, before)
    moves = set()
    for image, moved in zip(X.reshape(40, 7, 5), out.reshape(40, 7, 5)):
        match = [(dy, dx) for dy in range(-max_shift, max_shift + 1)
                 for dx in range(-max_shift, max_shift + 1)
                 if np.array_equal(moved, _translated(image, dy, dx))]
        assert len(match) == 1
        moves.add(match[0])
    assert len(moves) == 1 if max_shift == 0 else len(moves) >= 5
    assert np.array_equal(datasets.shift(X, rng=1, max_shift=max_shift, image_shape=(7, 5)), out)


def test_shift_checks_its_arguments():
    X = np.zeros((3, 784), dtype=np.float32)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 784\)"):
        datasets.shift(X[:, :100])
    with pytest.raises(ValueError, match="max_shift must be a non-negative integer, got -1"):
        datasets.shift(X, max_shift=-1)


def test_train_with_hflip_and_shift(mnist_small, tmp_path):
    log = tmp_path / "log.jsonl"
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--augment", "hflip+shift", "--max-shift",
                    "1", "--epochs", "2", "--threads", "1", "--log", log)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and len(log.read_text().splitlines()) == 2


def test_augment_needs_images(mnist_small):
    result = fastnn("train", "--data-dir", MNIST_SMALL, "--augment", "hflip", "--preprocess",
                    "standardize", "--epochs", "1")
    assert result.returncode == 1
    assert "--augment hflip needs --preprocess scale" in result.stderr and result.stdout == ""

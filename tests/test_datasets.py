"""Named datasets (lookup order, offline download from a local server, md5, atomicity),
preprocessing, validation split and mini-batches."""
import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import (
    DatasetNotFoundError,
    Preprocessor,
    cache_dir,
    candidate_dirs,
    iterate_minibatches,
    load_dataset,
    locate,
    train_val_split,
)

FILES = [stem + ".gz" for split in ("train", "test") for stem in datasets.MNIST_FILES[split]]


def _idx_bytes(array):
    codes = {np.dtype("u1"): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def _write_dataset(folder, n_train=30, n_test=10, seed=0):
    """Four tiny gzip IDX files in ``folder``; returns {file name: md5}."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8)}
    md5 = {}
    for name, array in arrays.items():
        data = gzip.compress(_idx_bytes(array), mtime=0)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        md5[name] = hashlib.md5(data).hexdigest()
    return md5


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No FASTNN_DATA_DIR, a private cache folder, and mirrors that point nowhere."""
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in datasets.DATASETS:
        spec = dict(datasets.DATASETS[name], mirrors=[], system_dirs=[])
        monkeypatch.setitem(datasets.DATASETS, name, spec)
    return tmp_path


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/"mirror"; yields (base URL, md5s)."""
    root = tmp_path / "mirror"
    md5 = _write_dataset(root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda self, *args: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", md5, root
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


def test_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("mnist") == os.path.join(str(tmp_path), "fastnn", "mnist")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("fashion-mnist") == os.path.join(str(tmp_path / "home"), ".cache", "fastnn",
                                                      "fashion-mnist")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        cache_dir("cifar")


def test_lookup_order(isolated, monkeypatch):
    tmp = isolated
    explicit, env, system = tmp / "explicit", tmp / "env", tmp / "system"
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist",
                        dict(datasets.DATASETS["fashion-mnist"], system_dirs=[str(system)]))
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(env))
    assert candidate_dirs("fashion-mnist", explicit) == [
        str(explicit), str(env), cache_dir("fashion-mnist"), str(system)]
    _write_dataset(system)
    assert locate("fashion-mnist", download_missing=False) == str(system)
    _write_dataset(cache_dir("fashion-mnist"))
    assert locate("fashion-mnist", download_missing=False) == cache_dir("fashion-mnist")
    _write_dataset(env)
    assert locate("fashion-mnist", download_missing=False) == str(env)
    # a folder the caller names is used or refused, never replaced by another
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        locate("fashion-mnist", explicit, download_missing=False)
    _write_dataset(explicit)
    notes = []
    assert locate("fashion-mnist", explicit, download_missing=False, log=notes.append) == str(explicit)
    assert notes == []
    os.remove(explicit / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetNotFoundError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]$"):
        locate("fashion-mnist", explicit, download_missing=False)


def test_download_from_local_mirror(isolated, server, monkeypatch):
    url, md5, _ = server
    monkeypatch.setitem(datasets.DATASETS, "mnist",
                        {"mirrors": [_closed_port_url(), url], "md5": md5, "system_dirs": []})
    notes = []
    folder = locate("mnist", log=notes.append, progress=False)
    assert folder == cache_dir("mnist")
    assert sorted(os.listdir(folder)) == sorted(FILES)  # no temporary files left
    for name, digest in md5.items():
        with open(os.path.join(folder, name), "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == digest
    assert sum("downloading" in n for n in notes) == 8  # each file: the dead mirror, then ours
    Xtr, ytr, Xte, yte = load_dataset("mnist", progress=False)
    assert Xtr.shape == (30, 784) and Xte.shape == (10, 784) and Xtr.dtype == np.float32
    assert 0.0 <= Xtr.min() and Xtr.max() <= 1.0 and ytr.dtype == np.int64
    # a second call finds the cache and downloads nothing
    notes.clear()
    assert locate("mnist", log=notes.append) == folder and notes == []


def test_download_keeps_present_files_and_fetches_missing(isolated, server, monkeypatch):
    url, md5, root = server
    monkeypatch.setitem(datasets.DATASETS, "mnist", {"mirrors": [url], "md5": md5, "system_dirs": []})
    target = isolated / "target"
    _write_dataset(target, seed=1)
    os.remove(target / "train-labels-idx1-ubyte.gz")
    kept = (target / "train-images-idx3-ubyte.gz").read_bytes()
    assert datasets.download("mnist", target, progress=False) == str(target)
    assert (target / "train-images-idx3-ubyte.gz").read_bytes() == kept
    assert (target / "train-labels-idx1-ubyte.gz").read_bytes() == \
        (root / "train-labels-idx1-ubyte.gz").read_bytes()


def test_download_rejects_md5_mismatch(isolated, server, monkeypatch):
    url, md5, _ = server
    wrong = dict(md5, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(datasets.DATASETS, "mnist", {"mirrors": [url], "md5": wrong, "system_dirs": []})
    with pytest.raises(DatasetNotFoundError, match="md5 mismatch") as info:
        locate("mnist", progress=False)
    folder = cache_dir("mnist")
    assert "t10k-images-idx3-ubyte.gz" not in os.listdir(folder)
    assert not [n for n in os.listdir(folder) if n.endswith(".part")]
    assert "t10k-images-idx3-ubyte[.gz]" in str(info.value)


def test_offline_message_lists_files_and_ways(isolated, monkeypatch):
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist",
                        dict(datasets.DATASETS["fashion-mnist"], mirrors=[_closed_port_url()]))
    with pytest.raises(DatasetNotFoundError) as info:
        locate("fashion-mnist", progress=False)
    message = str(info.value)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        assert stem in message
    for way in ("--data-dir", datasets.DATA_DIR_ENV, cache_dir("fashion-mnist"),
                "apt-get install dataset-fashion-mnist", "Download failed"):
        assert way in message
    assert "\n" not in message
    with pytest.raises(DatasetNotFoundError, match="mnist not found"):
        locate("mnist", download_missing=False)


def test_load_dataset_mnist_small(mnist_small):
    from conftest import MNIST_SMALL

    Xtr, ytr, Xte, yte = load_dataset("mnist", MNIST_SMALL)
    np.testing.assert_array_equal(Xtr, mnist_small[0])
    np.testing.assert_array_equal(yte, mnist_small[3])
    assert Xtr.shape == (8000, 784) and Xte.shape == (2000, 784)


# -- preprocessing ----------------------------------------------------------------------

def test_preprocessor_statistics_from_training_data_only(rng):
    X_train = rng.random((50, 6)).astype(np.float32)
    X_train[:, 2] = 0.0  # a constant feature (like MNIST's border pixels)
    X_test = rng.random((20, 6)).astype(np.float32) + 3.0
    pre = Preprocessor("standardize").fit(X_train)
    Z = pre.transform(X_train)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(np.delete(Z.std(axis=0), 2), 1, rtol=1e-5)
    np.testing.assert_array_equal(Z[:, 2], 0)
    expected = (X_test - X_train.mean(axis=0)) / np.where(X_train.std(axis=0) < 1e-8, 1,
                                                            X_train.std(axis=0))
    np.testing.assert_allclose(pre.transform(X_test), expected, rtol=1e-5, atol=1e-6)
    centered = Preprocessor("center").fit(X_train)
    np.testing.assert_allclose(centered.transform(X_test), X_test - X_train.mean(axis=0), atol=1e-6)
    scale = Preprocessor("scale").fit(X_train)
    np.testing.assert_array_equal(scale.transform(X_test), X_test)
    assert pre.transform(X_test) is not X_test and X_test.min() >= 3.0  # input left untouched


def test_preprocessor_state_round_trip(rng):
    X = rng.random((30, 4))
    for method in Preprocessor.METHODS:
        pre = Preprocessor(method).fit(X)
        state = pre.state_dict()
        assert state["method"] == method
        again = Preprocessor.from_state(state)
        np.testing.assert_array_equal(again.transform(X), pre.transform(X))
    assert Preprocessor.from_state(None).method == "scale"
    with pytest.raises(ValueError, match="lacks \\['std'\\]"):
        Preprocessor.from_state({"method": "standardize", "mean": np.zeros(4)})
    with pytest.raises(ValueError, match="unknown preprocessing 'whiten'"):
        Preprocessor("whiten")
    with pytest.raises(ValueError, match="fitted"):
        Preprocessor("center").transform(X)
    with pytest.raises(ValueError, match="expected \\(n, 4\\)"):
        Preprocessor("center").fit(X).transform(X[:, :3])


def correlated_data(rng, n=4000, d=8):
    """Gaussian data with a random, well-conditioned covariance (eigenvalues 0.5 to 4)."""
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    cov = Q @ np.diag(np.linspace(0.5, 4.0, d)) @ Q.T
    return rng.multivariate_normal(rng.normal(size=d), cov, size=n)


@pytest.mark.parametrize("method", ["pca-whiten", "zca-whiten"])
def test_whitened_training_data_has_identity_covariance(rng, method):
    X = correlated_data(rng)
    pre = Preprocessor(method, eps=1e-9).fit(X)
    Z = pre.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(8), atol=1e-8)
    # the transform is (x − μ) W with W from the covariance's eigenvectors, √λ = s/√(n−1)
    centered = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(centered, full_matrices=False)
    pca = centered @ Vt.T / (s / np.sqrt(len(X) - 1))
    expected = pca @ Vt if method == "zca-whiten" else pca
    if method == "pca-whiten":  # each eigenvector is defined up to its sign
        np.testing.assert_allclose(np.abs(Z), np.abs(expected), atol=1e-8)
    else:
        np.testing.assert_allclose(Z, expected, atol=1e-8)
        np.testing.assert_allclose(pre.whitening, pre.whitening.T, atol=1e-12)  # symmetric


def test_whitening_eps_and_components(rng):
    X = correlated_data(rng)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    pre = Preprocessor("pca-whiten", n_components=3, eps=0.5).fit(X)
    Z = pre.transform(X)
    assert Z.shape == (len(X), 3) and pre.whitening.shape == (8, 3)
    # each kept direction has variance λ/(λ + ε): identity up to ε
    np.testing.assert_allclose(np.cov(Z, rowvar=False),
                               np.diag(eigenvalues[:3] / (eigenvalues[:3] + 0.5)), atol=1e-8)
    zca = Preprocessor("zca-whiten", n_components=3).fit(X)
    assert zca.transform(X).shape == X.shape
    with pytest.raises(ValueError, match="k <= min"):
        Preprocessor("pca-whiten", n_components=9).fit(X)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        Preprocessor("zca-whiten", eps=-1)


def test_whitening_applies_the_training_transform_to_new_data(rng):
    X_train, X_new = correlated_data(rng), correlated_data(rng, n=10)
    pre = Preprocessor("zca-whiten").fit(X_train)
    again = Preprocessor.from_state(pre.state_dict())
    assert (again.method, again.eps, again.n_components) == ("zca-whiten", pre.eps, None)
    expected = (X_new - X_train.mean(axis=0)) @ pre.whitening
    np.testing.assert_allclose(again.transform(X_new), expected, rtol=1e-12)
    assert again.n_features_in == 8


# -- split and batches ------------------------------------------------------------------

def test_train_val_split(rng):
    X = np.arange(100 * 2).reshape(100, 2)
    y = np.arange(100)
    Xtr, ytr, Xval, yval = train_val_split(X, y, 0.2, rng=7)
    assert len(ytr) == 80 and len(yval) == 20
    assert sorted(np.concatenate([ytr, yval])) == list(range(100))
    np.testing.assert_array_equal(Xtr[:, 0] // 2, ytr)  # rows stay with their labels
    again = train_val_split(X, y, 0.2, rng=7)
    np.testing.assert_array_equal(again[3], yval)
    assert not np.array_equal(train_val_split(X, y, 0.2, rng=8)[3], yval)
    with pytest.raises(ValueError, match="validation_split"):
        train_val_split(X, y, 0.0)
    with pytest.raises(ValueError, match="leaves"):
        train_val_split(X[:2], y[:2], 0.1)


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (5, 8), (1, 1)])
def test_iterate_minibatches(n, batch_size):
    X = np.arange(n * 3).reshape(n, 3)
    y = np.arange(n)
    batches = list(iterate_minibatches(X, y, batch_size, rng=0))
    assert [len(b[1]) for b in batches] == [min(batch_size, n - i) for i in range(0, n, batch_size)]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen) == list(range(n))
    for Xb, yb in batches:
        np.testing.assert_array_equal(Xb[:, 0] // 3, yb)
    again = np.concatenate([b[1] for b in iterate_minibatches(X, y, batch_size, rng=0)])
    np.testing.assert_array_equal(again, seen)
    ordered = np.concatenate([b[1] for b in iterate_minibatches(X, y, batch_size, shuffle=False)])
    np.testing.assert_array_equal(ordered, y)
    if n >= 10:
        other = np.concatenate([b[1] for b in iterate_minibatches(X, y, batch_size, rng=1)])
        assert not np.array_equal(other, seen)

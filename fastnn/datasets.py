"""MNIST-layout datasets: IDX files, named datasets (lookup and download), preprocessing, batches.

IDX format (LeCun et al.): two zero bytes, a type code (0x08 unsigned byte, 0x09 signed
byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then
one big-endian uint32 per dimension, then the data in C order, big-endian.
"""
import gzip
import hashlib
import os
import struct
import sys
import tempfile

import numpy as np

from fastnn._validation import check_number, check_positive_int

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

#: File stems of an MNIST-layout folder (Fashion-MNIST uses the same names).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class IDXError(ValueError):
    """An IDX file is malformed: bad magic number, truncated, or sizes that disagree."""


def _open(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path):
    """Read one IDX file (gzip or raw) into a native-endian array.

    Raises ``IDXError`` naming the file when the magic number is wrong, the header is
    truncated, or the data is shorter or longer than the header's dimensions say. The
    declared size is checked against the data actually present before anything large is
    allocated.
    """
    path = os.fspath(path)
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4:
                raise IDXError(f"{path}: truncated header ({len(header)} bytes)")
            zero1, zero2, type_code, ndim = header
            if zero1 or zero2 or type_code not in IDX_TYPES or not 1 <= ndim <= 8:
                raise IDXError(f"{path}: not an IDX file (magic bytes {header.hex()}; "
                               "expected 0000 then a type code 08/09/0b/0c/0d/0e and 1-8 dimensions)")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise IDXError(f"{path}: truncated header (dimensions)")
            shape = struct.unpack(f">{ndim}I", dims_raw)
            dtype = IDX_TYPES[type_code]
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            data = f.read(expected + 1) if expected < 2**34 else b""
            if len(data) != expected:
                raise IDXError(f"{path}: header declares shape {shape} ({expected} bytes of data), "
                               f"but the file holds {'more' if len(data) > expected else len(data)} bytes")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IDXError(f"{path}: cannot read ({exc})") from None
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError:  # an empty shape whose other dimensions multiply past NumPy's limit
        raise IDXError(f"{path}: header declares shape {shape}, which NumPy cannot represent") from None
    return array.astype(dtype.newbyteorder("="))


def find_idx_file(folder, stem):
    """Path of ``stem`` in ``folder`` as ``stem.gz`` or ``stem`` (or the ``x.idx3-ubyte``
    spelling), else None."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def load_mnist(folder, split="train"):
    """Images and labels of one split of an MNIST-layout folder.

    Parameters
    ----------
    folder : path
        Folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.
    split : "train" or "test"

    Returns
    -------
    images : uint8 array of shape (n, rows, cols)
    labels : int64 array of shape (n,)
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = []
    for stem in MNIST_FILES[split]:
        path = find_idx_file(folder, stem)
        if path is None:
            raise FileNotFoundError(f"{stem}[.gz] not found in {os.fspath(folder)}")
        paths.append(path)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise IDXError(f"{paths[0]} must be 3-D images and {paths[1]} 1-D labels, got shapes "
                       f"{images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    return images, labels.astype(np.int64)


def flatten_and_scale(images, dtype=np.float32):
    """(n, rows, cols) uint8 images → (n, rows·cols) floats in [0, 1]."""
    images = np.asarray(images)
    return (images.reshape(len(images), -1).astype(dtype)) / dtype(255)


# -- named datasets: lookup, download ---------------------------------------------------

#: Named MNIST-layout datasets: public mirrors (tried in order), the md5 of each published
#: ``.gz`` file (MNIST: LeCun et al.; Fashion-MNIST: zalandoresearch/fashion-mnist), the
#: system folders searched, and the class names in label order.
DATASETS = {
    "mnist": {
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                    "http://yann.lecun.com/exdb/mnist/"],
        "md5": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        "system_dirs": [],
        "classes": [str(digit) for digit in range(10)],
    },
    "fashion-mnist": {
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"],
        "md5": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        # Debian/Ubuntu: apt-get install dataset-fashion-mnist
        "system_dirs": ["/usr/share/datasets/fashion-mnist"],
        # the labels' names, in label order (zalandoresearch/fashion-mnist, README)
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"],
    },
}

#: Environment variable naming a folder that holds the four files of the dataset.
DATA_DIR_ENV = "FASTNN_DATA_DIR"

#: Seconds to wait for a mirror to answer before trying the next one.
DOWNLOAD_TIMEOUT = 30


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are nowhere on disk and could not be downloaded.

    ``hint``, when not None, is one short line on what to do (e.g. sub-folders that do hold
    IDX files); the command line prints it under the error.
    """

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def cache_dir(name):
    """The user cache folder of dataset ``name``: ``$XDG_CACHE_HOME/fastnn/<name>`` (default ``~/.cache``)."""
    _check_name(name)
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "fastnn", name)


def _all_stems():
    return [stem for split in ("train", "test") for stem in MNIST_FILES[split]]


def has_files(folder):
    """Whether ``folder`` holds all four MNIST-layout files (gzip or raw)."""
    return folder is not None and all(find_idx_file(folder, stem) for stem in _all_stems())


def candidate_dirs(name, data_dir=None):
    """Folders searched for dataset ``name``, in order: ``data_dir``, ``$FASTNN_DATA_DIR``,
    the user cache folder, then the system folders (Debian's for Fashion-MNIST)."""
    _check_name(name)
    dirs = [data_dir, os.environ.get(DATA_DIR_ENV) or None, cache_dir(name),
            *DATASETS[name]["system_dirs"]]
    return [os.fspath(d) for d in dirs if d is not None]


def _idx_subfolders(folder, depth=2, limit=3):
    """Up to ``limit`` folders below ``folder`` (``depth`` levels) that hold all four files."""
    found = []
    level = [folder]
    for _ in range(depth):
        below = []
        for parent in level:
            try:
                names = sorted(os.listdir(parent))
            except OSError:
                continue
            below += [os.path.join(parent, n) for n in names
                      if not n.startswith(".") and os.path.isdir(os.path.join(parent, n))]
        found += [d for d in below if has_files(d)]
        level = below
    return found[:limit]


def check_folder(folder):
    """Return ``folder`` if it holds the four MNIST-layout files, else raise ``DatasetNotFoundError``
    saying that it does not exist or which files are missing, with sub-folders that hold them."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(f"{folder} " + ("is not a folder" if os.path.exists(folder)
                                                   else "does not exist"))
    missing = [stem for stem in _all_stems() if find_idx_file(folder, stem) is None]
    if not missing:
        return folder
    below = _idx_subfolders(folder)
    if len(missing) == len(_all_stems()):
        message = f"{folder} holds no MNIST-layout IDX files"
    else:
        message = f"{folder} lacks {', '.join(stem + '[.gz]' for stem in missing)}"
    hint = f"sub-folders that hold them: {', '.join(below)}" if below else None
    raise DatasetNotFoundError(message, hint)


def fingerprint(y_train, X_test, y_test):
    """A short hash identifying a dataset as loaded: both label arrays and the test images."""
    digest = hashlib.sha256()
    for a in (y_train, X_test, y_test):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    return digest.hexdigest()[:16]


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_file(url, dest, md5, progress):
    """Fetch ``url`` into ``dest`` atomically (temp file in the same folder, md5 check, rename)."""
    # Imported here, not at the top: ``import fastnn`` and every command that finds its data
    # on disk load neither the HTTP stack nor tqdm (benchmarks/import_time.py).
    import urllib.request

    from tqdm import tqdm

    folder = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(dest) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=os.path.basename(dest), disable=None if progress else True,
                      file=sys.stderr, leave=False) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        got = _md5(tmp)
        if got != md5:
            raise ValueError(f"md5 mismatch for {url}: got {got}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(name, folder=None, progress=True, log=None):
    """Download dataset ``name`` into ``folder`` (default: its cache folder) and return the folder.

    Each file is tried on every mirror of ``DATASETS[name]`` in turn, verified against its
    published md5 and moved into place atomically; files already present are kept.
    Raises ``DatasetNotFoundError`` if some file could not be fetched from any mirror.
    """
    _check_name(name)
    folder = os.fspath(folder) if folder is not None else cache_dir(name)
    errors = _download_missing(name, folder, progress, log)
    if errors:
        raise DatasetNotFoundError(_not_found_message(name, folder, errors))
    return folder


def _download_missing(name, folder, progress, log):
    """Fetch the files missing from ``folder``; returns the errors of a file no mirror served.

    Folders it created are removed again when nothing could be fetched into them.
    """
    created, parent = [], os.path.abspath(folder)
    while not os.path.exists(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return [f"cannot create {folder}: {exc}"]
    errors = _fetch_each(name, folder, progress, log)
    if errors:
        for path in created:  # innermost first; a folder that gained files stays
            try:
                os.rmdir(path)
            except OSError:
                break
    return errors


def _fetch_each(name, folder, progress, log):
    spec = DATASETS[name]
    for filename, md5 in spec["md5"].items():
        if find_idx_file(folder, filename[:-3]):
            continue
        errors = []
        for mirror in spec["mirrors"]:
            url = mirror + filename
            if log:
                log(f"downloading {url}")
            try:
                _download_file(url, os.path.join(folder, filename), md5, progress)
                break
            except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
                errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        else:
            return errors or [f"no download mirror is configured for {name}"]
    return []


def _not_found_message(name, data_dir, errors=()):
    files = ", ".join(stem + "[.gz]" for stem in _all_stems())
    looked = "; ".join(candidate_dirs(name, data_dir))
    ways = ["pass --data-dir FOLDER (data_dir=...)", f"set {DATA_DIR_ENV}=FOLDER",
            f"put them in {cache_dir(name)}"]
    if name == "fashion-mnist":
        ways.append("apt-get install dataset-fashion-mnist (Debian/Ubuntu)")
    ways.append("allow fastnn to download them (network access)")
    tried = f" Download failed: {' | '.join(errors)}." if errors else ""
    return (f"{name} not found: need the four files {files} in one folder (looked in: {looked})."
            f"{tried} Supply them: {'; or '.join(ways)}.")


def locate(name, data_dir=None, download_missing=True, progress=True, log=None):
    """Folder holding dataset ``name``: ``data_dir`` when given (which must hold the files:
    see ``check_folder``), else the first complete one of ``candidate_dirs``, else a fresh
    download into the cache folder (if ``download_missing``).

    Raises ``DatasetNotFoundError`` with a message listing the expected files and the ways
    to supply them.
    """
    _check_name(name)
    if data_dir is not None:  # a folder the user named is used or refused, never replaced
        return check_folder(data_dir)
    for folder in candidate_dirs(name):
        if has_files(folder):
            return folder
    if not download_missing:
        raise DatasetNotFoundError(_not_found_message(name, data_dir))
    folder = cache_dir(name)
    errors = _download_missing(name, folder, progress, log)
    if errors:
        raise DatasetNotFoundError(_not_found_message(name, data_dir, errors))
    return folder


def load_dataset(name, data_dir=None, download_missing=True, progress=True, log=None,
                 dtype=np.float32):
    """Load a named dataset as ``(X_train, y_train, X_test, y_test)``, images flattened and
    scaled to [0, 1] in ``dtype``, labels int64 (see ``locate`` for where files are looked for).
    """
    folder = locate(name, data_dir, download_missing, progress, log)
    Xtr, ytr = load_mnist(folder, "train")
    Xte, yte = load_mnist(folder, "test")
    return flatten_and_scale(Xtr, dtype), ytr, flatten_and_scale(Xte, dtype), yte


# -- preprocessing and batching ---------------------------------------------------------

class Preprocessor:
    """Input preprocessing fitted on the training split only, then applied unchanged.

    Methods (inputs already scaled to [0, 1] by ``flatten_and_scale``; CS224n's notes on
    data preprocessing):

    ``"scale"``
        x (nothing more to do)
    ``"center"``
        x − μ, μ the per-feature training mean (mean subtraction)
    ``"standardize"``
        (x − μ) / σ, σ the per-feature training std; features that are constant in
        training (σ < 1e-8, e.g. MNIST's border pixels) get σ = 1
    ``"pca-whiten"``
        (x − μ) U_k diag(1/√(λ + ε)): the centered data projected onto the first k
        eigenvectors of its covariance (the right singular vectors of the centered data
        matrix, whose singular values give λᵢ = sᵢ²/(n − 1)) and each coordinate divided by
        its scale, so that the training data has covariance λᵢ/(λᵢ + ε) ≈ 1 per kept
        direction: identity up to ε
    ``"zca-whiten"``
        PCA whitening rotated back, (x − μ) U_k diag(1/√(λ + ε)) U_kᵀ: identity covariance
        as well, in the pixel basis (Bell & Sejnowski 1997), so the images stay images

    Parameters
    ----------
    method : str, default "scale"
        One of ``METHODS``.
    n_components : int, optional
        Whitening only: keep the k directions of largest variance (default: all, which
        ``"pca-whiten"`` then uses as a rotation plus rescaling).
    eps : float, default ``WHITEN_EPS``
        Whitening only: ε added to every eigenvalue. Image data has many directions of
        (near) zero variance (constant border pixels, pixel noise); ε keeps those from being
        scaled up to unit variance, where they would dominate the whitened input. The default
        0.1 (for pixels in [0, 1]) leaves the few hundred directions with λ ≫ 0.1 white;
        smaller values cost an MLP accuracy on MNIST (README, "Whitening").

    Attributes
    ----------
    mean, std : ndarray or None
        The fitted per-feature mean and standard deviation (where the method uses them).
    whitening : ndarray of shape (features, k) or None
        The whitening matrix W: the transform is (x − μ) W.
    """

    METHODS = ("scale", "center", "standardize", "pca-whiten", "zca-whiten")
    #: Default ε of the whitening methods.
    WHITEN_EPS = 0.1

    def __init__(self, method="scale", n_components=None, eps=WHITEN_EPS):
        if method not in self.METHODS:
            raise ValueError(f"unknown preprocessing {method!r}; choose from {', '.join(self.METHODS)}")
        self.method = method
        self.n_components = None if n_components is None else check_positive_int(
            n_components, "n_components")
        self.eps = check_number(eps, "eps", low=0.0)
        self.mean = None
        self.std = None
        self.whitening = None

    @property
    def whitens(self):
        return self.method.endswith("-whiten")

    def fit(self, X):
        """Compute the statistics on the training inputs ``X`` (n, features)."""
        X = np.asarray(X)
        if self.method != "scale":
            self.mean = X.mean(axis=0, dtype=np.float64).astype(X.dtype)
        if self.method == "standardize":
            std = X.std(axis=0, dtype=np.float64)
            std[std < 1e-8] = 1.0
            self.std = std.astype(X.dtype)
        if self.whitens:
            self.whitening = self._whitening_matrix(X).astype(X.dtype)
        return self

    def _whitening_matrix(self, X):
        n, d = X.shape
        k = d if self.n_components is None else self.n_components
        if n < 2 or k > min(n, d):
            raise ValueError(f"{self.method} with {k} components needs at least 2 samples and "
                             f"k <= min(samples, features); X has shape {X.shape}")
        centered = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
        # eigenvectors of the covariance XᵀX/(n − 1) = V diag(s²/(n − 1)) Vᵀ: the SVD basis
        eigenvalues, vectors = np.linalg.eigh(centered.T @ centered / (n - 1))
        order = np.argsort(eigenvalues)[::-1][:k]
        basis = vectors[:, order]
        W = basis / np.sqrt(np.maximum(eigenvalues[order], 0.0) + self.eps)
        return W @ basis.T if self.method == "zca-whiten" else W

    def transform(self, X):
        """Apply the fitted transformation; returns a new array (``X`` is not modified)."""
        X = np.array(X, copy=True)
        if self.method == "scale":
            return X
        if self.mean is None:
            raise ValueError(f"Preprocessor({self.method!r}) must be fitted before transform")
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"X has shape {X.shape}, expected (n, {self.mean.shape[0]})")
        X -= self.mean.astype(X.dtype, copy=False)
        if self.method == "standardize":
            X /= self.std.astype(X.dtype, copy=False)
        if self.whitens:
            X = X @ self.whitening.astype(X.dtype, copy=False)
        return X

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def state_dict(self):
        """Flat state for model files: ``method`` and, when fitted, its arrays."""
        state = {"method": self.method}
        if self.whitens:
            state.update(n_components=self.n_components, eps=self.eps)
        for key in ("mean", "std", "whitening"):
            if getattr(self, key) is not None:
                state[key] = getattr(self, key).copy()
        return state

    @classmethod
    def from_state(cls, state):
        """Rebuild from ``state_dict()`` output (None means plain scaling)."""
        if state is None:
            return cls("scale")
        pre = cls(state.get("method", "scale"), state.get("n_components"),
                  state.get("eps", cls.WHITEN_EPS))
        needed = {"scale": (), "center": ("mean",), "standardize": ("mean", "std"),
                  "pca-whiten": ("mean", "whitening"), "zca-whiten": ("mean", "whitening")}
        missing = [key for key in needed[pre.method] if key not in state]
        if missing:
            raise ValueError(f"preprocessing state for {pre.method!r} lacks {missing}")
        for key in ("mean", "std", "whitening"):
            setattr(pre, key, np.asarray(state[key]) if key in state else None)
        return pre

    @property
    def n_features_in(self):
        """Width of the inputs the fitted transform takes (None for plain scaling)."""
        return None if self.mean is None else self.mean.shape[0]

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in (("n_components", self.n_components),
                                                     ("eps", self.eps)) if self.whitens)
        return f"Preprocessor({self.method!r}{extra})"


def train_val_split(X, y, validation_split, rng=None):
    """Hold out a random ``validation_split`` fraction of (X, y): ``(X_tr, y_tr, X_val, y_val)``."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), got {validation_split!r}")
    n = X.shape[0]
    n_val = int(round(n * validation_split))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                         f"{n - n_val} for training and {n_val} for validation")
    order = np.random.default_rng(rng).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[train], y[train], X[val], y[val]


def iterate_blocks(X, y, batch_size, rng=None, shuffle=True, block_rows=8192, exclude=None,
                   convert=None):
    """Yield ``(X_batch, y_batch)`` over one epoch of arrays too large to load, block by block.

    The rows are taken in blocks of ``block_rows`` consecutive rows, visited in an order
    drawn from ``rng``, and shuffled within each block; a batch is read from ``X`` (e.g. a
    memory map, whose pages the operating system caches) by its row indices, so only the
    current batch is ever copied into memory. Batches run on across block boundaries; the
    last one of the epoch holds the remainder. Rows where the boolean mask ``exclude`` is
    True are left out (e.g. held out for validation); ``convert(X_batch, y_batch)`` checks
    and converts each batch (e.g. to the network's dtype).
    """
    rng = np.random.default_rng(rng)
    n = len(X)
    starts = np.arange(0, n, block_rows)
    if shuffle:
        rng.shuffle(starts)
    carry = np.empty(0, dtype=np.intp)
    for start in starts:
        stop = min(start + block_rows, n)
        rows = np.arange(start, stop) if exclude is None else start + np.flatnonzero(~exclude[start:stop])
        rows = np.concatenate([carry, rng.permutation(rows) if shuffle else rows])
        full = len(rows) - len(rows) % batch_size
        for i in range(0, full, batch_size):
            yield _batch(X, y, rows[i:i + batch_size], convert)
        carry = rows[full:]
    if len(carry):
        yield _batch(X, y, carry, convert)


def _batch(X, y, rows, convert):
    X_b, y_b = np.asarray(X[rows]), np.asarray(y[rows])
    return (X_b, y_b) if convert is None else convert(X_b, y_b)


def hflip(X, rng=None, p=0.5, image_shape=(28, 28)):
    """A copy of the flattened images ``X`` with each mirrored left-right with probability ``p``.

    A classic augmentation for Fashion-MNIST, whose garments keep their class when mirrored;
    not for digits, which do not.
    """
    X = np.array(X, copy=True)
    rows, cols = image_shape
    if X.ndim != 2 or X.shape[1] != rows * cols:
        raise ValueError(f"X must have shape (n, {rows * cols}) for images of {rows}x{cols}, "
                         f"got {X.shape}")
    flip = np.random.default_rng(rng).random(len(X)) < p
    images = X.reshape(len(X), rows, cols)
    images[flip] = images[flip, :, ::-1]
    return X


def shift(X, rng=None, max_shift=2, image_shape=(28, 28)):
    """A copy of the flattened images ``X``, each translated by a random whole number of pixels.

    Image i moves by (dyᵢ, dxᵢ), each drawn uniformly from {−max_shift, …, max_shift};
    pixels that move in from outside the frame are 0, the background of MNIST and
    Fashion-MNIST. Small translations keep an image's class, so they add training
    examples the classifier should treat alike (Simard, Steinkraus & Platt 2003,
    "Best practices for convolutional neural networks applied to visual document
    analysis"; Nielsen, *Neural Networks and Deep Learning*, ch. 3, "Artificially
    expanding the training data").
    """
    if not (isinstance(max_shift, (int, np.integer)) and max_shift >= 0):
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
    rows, cols = image_shape
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != rows * cols:
        raise ValueError(f"X must have shape (n, {rows * cols}) for images of {rows}x{cols}, "
                         f"got {X.shape}")
    n, k = len(X), max_shift
    offsets = np.random.default_rng(rng).integers(0, 2 * k + 1, size=(2, n))
    # Each output image is a rows x cols window of its zero-padded original: one gather.
    padded = np.zeros((n, rows + 2 * k, cols + 2 * k), dtype=X.dtype)
    padded[:, k:k + rows, k:k + cols] = X.reshape(n, rows, cols)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (rows, cols), axis=(1, 2))
    return windows[np.arange(n), offsets[0], offsets[1]].reshape(X.shape)


def iterate_minibatches(X, y, batch_size, rng=None, shuffle=True):
    """Yield ``(X_batch, y_batch)`` over one epoch, in an order drawn from ``rng`` if ``shuffle``.

    The last batch holds the remainder (it is smaller when ``batch_size`` does not divide n).
    """
    n = X.shape[0]  # also for a SciPy sparse X, which has no len()
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]

"""Reading MNIST-layout IDX files (gzip-compressed or raw).

IDX format (LeCun et al.): two zero bytes, a type code (0x08 unsigned byte, 0x09 signed
byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then
one big-endian uint32 per dimension, then the data in C order, big-endian.
"""
import gzip
import os
import struct

import numpy as np

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
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_file(folder, stem):
    """Path of ``stem`` in ``folder`` as ``stem.gz`` or ``stem`` (or the ``x.idx3-ubyte`` spelling), else None."""
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

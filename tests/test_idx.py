"""IDX reader: real MNIST files, gzip and raw, and malformed files."""
import gzip
import struct

import numpy as np
import pytest

from conftest import DATA_ROOT, MNIST_SMALL
from fastnn.datasets import IDXError, load_mnist, read_idx


def _write_idx(path, array, type_code=0x08, compress=False):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("dtype,code", [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C),
                                        (np.float32, 0x0D), (np.float64, 0x0E)])
def test_round_trip(tmp_path, compress, dtype, code):
    array = (np.arange(60).reshape(3, 4, 5) % 250).astype(dtype)
    path = tmp_path / "x.idx"
    _write_idx(path, array, code, compress)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_reads_mnist_small():
    if not MNIST_SMALL.exists():
        pytest.skip(f"mnist-small not found at {MNIST_SMALL}")
    images, labels = load_mnist(MNIST_SMALL, "train")
    assert images.shape == (8000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (8000,) and labels.min() == 0 and labels.max() == 9
    test_images, _ = load_mnist(MNIST_SMALL, "test")
    assert test_images.shape == (2000, 28, 28)
    # mnist-small's test split is the last 2,000 images of the official test file
    official = read_idx(DATA_ROOT / "mnist-t10k" / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(test_images, official[8000:])


@pytest.mark.parametrize("payload,message", [
    (b"\x00\x00", "truncated header"),
    (b"\x01\x02\x08\x01\x00\x00\x00\x02ab", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x02ab", "not an IDX file"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "holds 3 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "holds more"),
    (b"\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "declares shape"),
    # no data, but 564793 x 973376 x (2^32 - 1) elements is past NumPy's size limit (hypothesis)
    (b"\x00\x00\x08\x04\x00\x00\x00\x00\x00\x08\x9e\x39\x00\x0e\xda\x40\xff\xff\xff\xff",
     "cannot represent"),
])
def test_malformed_files_raise_clear_errors(tmp_path, payload, message):
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(IDXError, match=message):
        read_idx(path)


def test_corrupt_gzip_raises_idx_error(tmp_path):
    path = tmp_path / "bad.gz"
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd")
    path.write_bytes(good[:-6])
    with pytest.raises(IDXError, match="cannot read"):
        read_idx(path)


def test_missing_split_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist(tmp_path, "validation")


def test_images_and_labels_must_agree(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(IDXError, match="3 images but .* 4 labels"):
        load_mnist(tmp_path, "test")

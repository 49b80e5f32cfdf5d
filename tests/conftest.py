import os
from pathlib import Path

import numpy as np
import pytest

try:
    import fastnn_c
except ImportError as error:  # a checkout without compiled kernels: never test around them
    raise pytest.UsageError(
        f"fastnn's compiled kernels are missing ({error}). Build them where the tests import "
        f"fastnn from: `pip install -e .` in this checkout (README, \"Tests\").") from error

# Subprocesses (``python -m fastnn``, writer scripts) import the fastnn under test, the one
# this process imported (this checkout built in place, or an installed wheel when the suite
# runs from another folder), not whichever one the environment would find first.
_ROOT = str(Path(fastnn_c.__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != _ROOT])

#: Folder of the MNIST-layout fixture; .ci/run sets FASTNN_TEST_DATA to ../shared/data.
DATA_ROOT = Path(os.environ.get("FASTNN_TEST_DATA",
                                Path(__file__).resolve().parents[1].parent / "shared" / "data"))
MNIST_SMALL = DATA_ROOT / "mnist-small"

#: Tolerances for kernel-vs-NumPy-reference comparisons (relative; absolute ones scale with them).
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def mnist_small():
    """(X_train, y_train, X_test, y_test) of mnist-small, scaled to [0, 1], float32."""
    if not (MNIST_SMALL / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"mnist-small not found at {MNIST_SMALL} (set FASTNN_TEST_DATA)")
    from fastnn.datasets import flatten_and_scale, load_mnist

    Xtr, ytr = load_mnist(MNIST_SMALL, "train")
    Xte, yte = load_mnist(MNIST_SMALL, "test")
    return flatten_and_scale(Xtr), ytr, flatten_and_scale(Xte), yte


def layout(array, kind):
    """``array`` as C-contiguous ("C"), Fortran-ordered ("F") or a strided view ("strided")."""
    if kind == "C":
        return np.ascontiguousarray(array)
    if kind == "F":
        return np.asfortranarray(array)
    wide = np.zeros((array.shape[0], 2 * array.shape[1]), dtype=array.dtype)
    wide[:, ::2] = array
    return wide[:, ::2]


def pytest_report_header(config):
    return f"fastnn_c: {fastnn_c.SIMD} build from {os.path.dirname(fastnn_c.__file__)}"

"""Dense forward/backward at the MLP shapes: fastnn vs NumPy matmul (vs torch)."""
import numpy as np
import pytest

from fastnn_c import dense as _dense
from workloads import torch

SHAPES = [(n, a, b) for n in (32, 128, 512) for a, b in ((784, 256), (256, 128), (128, 10))]
DTYPES = [np.float32, np.float64]


def _arrays(n, a, b, dtype):
    rng = np.random.default_rng(0)
    return (rng.random((n, a)).astype(dtype), rng.random((a, b)).astype(dtype),
            rng.random(b).astype(dtype), rng.random((n, b)).astype(dtype))


def _impls(n, a, b, dtype, direction):
    X, W, bias, dY = _arrays(n, a, b, dtype)
    Y, dX, dW, db = np.empty((n, b), dtype), np.empty_like(X), np.empty_like(W), np.empty_like(bias)
    if direction == "forward":
        impls = {"fastnn": lambda: _dense.dense_forward(X, W, bias, Y),
                 "numpy": lambda: (np.matmul(X, W, out=Y), np.add(Y, bias, out=Y))}
    else:
        impls = {"fastnn": lambda: _dense.dense_backward(X, W, dY, dW, db, dX),
                 "numpy": lambda: (np.matmul(X.T, dY, out=dW), np.sum(dY, axis=0, out=db),
                                   np.matmul(dY, W.T, out=dX))}
    if torch is not None:
        tX, tW, tb, tdY = map(torch.from_numpy, (X, W, bias, dY))
        tY, tdX, tdW, tdb = map(torch.from_numpy, (Y, dX, dW, db))
        if direction == "forward":
            impls["torch"] = lambda: torch.addmm(tb, tX, tW, out=tY)
        else:
            impls["torch"] = lambda: (torch.mm(tX.T, tdY, out=tdW), torch.sum(tdY, 0, out=tdb),
                                      torch.mm(tdY, tW.T, out=tdX))
    return impls


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
def test_dense(benchmark, direction, shape, dtype, impl):
    impls = _impls(*shape, dtype, direction)
    if impl not in impls:
        pytest.skip("torch is not installed")
    benchmark.group = f"dense-{direction}-{'x'.join(map(str, shape))}-{np.dtype(dtype).name}"
    benchmark(impls[impl])

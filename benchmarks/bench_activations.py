"""Every activation forward and backward on 512x1024: fastnn vs the best NumPy vs torch."""
import numpy as np
import pytest

from fastnn.layers import ACTIVATIONS, Activation
from workloads import NUMPY_BACKWARD, NUMPY_FORWARD, torch, torch_elementwise

SHAPE = (512, 1024)
TORCH_FORWARD, TORCH_BACKWARD = torch_elementwise()


def _impls(name, dtype, direction):
    rng = np.random.default_rng(0)
    Z = (3 * rng.standard_normal(SHAPE)).astype(dtype)
    dA = rng.standard_normal(SHAPE).astype(dtype)
    layer = Activation(name)
    A = layer._forward(Z).copy()
    out = np.empty_like(Z)
    if direction == "forward":
        impls = {"fastnn": lambda: layer._forward(Z), "numpy": lambda: NUMPY_FORWARD[name](Z, out)}
    else:
        impls = {"fastnn": lambda: layer._backward(dA), "numpy": lambda: NUMPY_BACKWARD[name](A, dA, out)}
    if torch is not None:
        tZ, tA, tdA, tout = map(torch.from_numpy, (Z, A, dA, out))
        if direction == "forward":
            impls["torch"] = lambda: TORCH_FORWARD[name](tZ, tout)
        else:
            # torch's softplus_backward takes the input, the others the output
            source = tZ if name == "softplus" else tA
            impls["torch"] = lambda: TORCH_BACKWARD[name](source, tdA, tout)
    return impls


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
def test_activation(benchmark, direction, name, dtype, impl):
    impls = _impls(name, dtype, direction)
    if impl not in impls:
        pytest.skip("torch is not installed")
    benchmark.group = f"{name}-{direction}-512x1024-{np.dtype(dtype).name}"
    benchmark(impls[impl])


# -- PReLU (one slope per unit) and RReLU (training mode) -------------------------------------
def _parametric_impls(name, dtype, direction):
    """fastnn's layer beside the best NumPy found: max(z, αz) forward (0 <= α <= 1), slopes as
    mask·(1 − α) + α backward; RReLU's NumPy slopes from ``Generator.random(out=)``, stored.
    (Ufuncs with ``out=``: an augmented assignment would make the closures' arrays local.)"""
    from fastnn.layers import PReLU, RReLU

    rng = np.random.default_rng(0)
    Z = rng.standard_normal(SHAPE).astype(dtype)
    dA = rng.standard_normal(SHAPE).astype(dtype)
    out, slopes, work = np.empty_like(Z), np.empty_like(Z), np.empty_like(Z)
    mask = np.empty(SHAPE, dtype=bool)
    if name == "prelu":
        layer = PReLU(SHAPE[1], dtype=dtype)
        alpha = layer.weight.data
        dalpha = np.empty_like(alpha)

        def numpy_forward():
            np.multiply(Z, alpha, out=out)
            np.maximum(Z, out, out=out)

        def numpy_backward():
            np.greater(Z, 0, out=mask)
            np.multiply(mask, 1 - alpha, out=slopes)
            np.add(slopes, alpha, out=slopes)
            np.multiply(dA, slopes, out=out)
            np.minimum(Z, 0, out=work)
            np.multiply(work, dA, out=work)
            work.sum(axis=0, out=dalpha)
    else:
        layer = RReLU(rng=0)
        lower, upper = layer.lower, layer.upper

        def numpy_forward():
            rng.random(dtype=dtype, out=slopes)
            np.multiply(slopes, dtype(upper - lower), out=slopes)
            np.add(slopes, dtype(lower), out=slopes)
            np.multiply(Z, slopes, out=out)
            np.maximum(Z, out, out=out)

        def numpy_backward():
            np.greater(Z, 0, out=mask)
            np.subtract(1, slopes, out=work)
            np.multiply(work, mask, out=work)
            np.add(work, slopes, out=work)
            np.multiply(dA, work, out=out)

        numpy_forward()
    layer._forward(Z)
    if direction == "forward":
        impls = {"fastnn": lambda: layer._forward(Z), "numpy": numpy_forward}
    else:
        impls = {"fastnn": lambda: layer._backward(dA), "numpy": numpy_backward}
    if torch is not None:
        tZ = torch.from_numpy(Z).requires_grad_(direction == "backward")
        module = (torch.nn.PReLU(SHAPE[1], dtype=tZ.dtype) if name == "prelu"
                  else torch.nn.RReLU(lower, upper))
        if direction == "forward":
            impls["torch"] = lambda: module(tZ.detach())
        else:
            tdA = torch.from_numpy(dA)

            def torch_backward():
                tZ.grad = None
                module(tZ).backward(tdA)

            impls["torch"] = torch_backward  # includes torch's forward: it keeps no slopes
    return impls


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["prelu", "rrelu"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
def test_parametric_activation(benchmark, direction, name, dtype, impl):
    impls = _parametric_impls(name, dtype, direction)
    if impl not in impls:
        pytest.skip("torch is not installed")
    benchmark.group = f"{name}-{direction}-512x1024-{np.dtype(dtype).name}"
    benchmark(impls[impl])

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

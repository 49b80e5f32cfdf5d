"""Dense forward/backward at the MLP shapes: fastnn vs NumPy matmul (vs torch)."""
import numpy as np
import pytest

from workloads import DENSE_SHAPES, dense_case, torch

SHAPES = DENSE_SHAPES
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch"])
def test_dense(benchmark, direction, shape, dtype, impl):
    if impl == "torch" and torch is None:
        pytest.skip("torch is not installed")
    benchmark.group = f"dense-{direction}-{'x'.join(map(str, shape))}-{np.dtype(dtype).name}"
    benchmark(dense_case(impl, *shape, dtype, direction))

"""Full training steps: fastnn vs the hand-written NumPy step vs torch, plus the GEMM floor.

"gemm-floor" runs only the step's products (forward, dW and dX), on the backend fastnn's
step trains with here (the micro-kernel or the BLAS).
"""
import numpy as np
import pytest

from workloads import fastnn_step, gemm_floor_step, numpy_batch_norm_step, numpy_step, torch_step

MLP = [784, 256, 128, 10]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", [32, 128, 512])
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch", "gemm-floor"])
def test_sgd_step(benchmark, impl, n, dtype):
    benchmark.group = f"step-sgd-784-256-128-10-batch{n}-{np.dtype(dtype).name}"
    step = {"fastnn": fastnn_step, "numpy": numpy_step, "torch": torch_step,
            "gemm-floor": gemm_floor_step}[impl](MLP, n, dtype)
    if step is None:
        pytest.skip("torch is not installed")
    benchmark(step)


@pytest.mark.parametrize("n", [32, 128, 512])
@pytest.mark.parametrize("impl", ["fastnn", "torch"])
def test_adam_step(benchmark, impl, n):
    benchmark.group = f"step-adam-784-256-128-10-batch{n}-float32"
    step = {"fastnn": fastnn_step, "torch": torch_step}[impl](MLP, n, optimizer="adam", lr=1e-3)
    if step is None:
        pytest.skip("torch is not installed")
    benchmark(step)


DEEP = [784, 512, 512, 512, 512, 10]


@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch", "gemm-floor"])
def test_batch_norm_step(benchmark, impl):
    benchmark.group = "step-sgd-784-[512]x4-10-batchnorm-batch128-float32"
    step = {"fastnn": lambda: fastnn_step(DEEP, 128, batch_norm=True),
            "gemm-floor": lambda: gemm_floor_step(DEEP, 128),
            "numpy": lambda: numpy_batch_norm_step(DEEP, 128),
            "torch": lambda: torch_step(DEEP, 128, batch_norm=True)}[impl]()
    if step is None:
        pytest.skip("torch is not installed")
    benchmark(step)

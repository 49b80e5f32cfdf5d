"""``predict`` at batch 1, 8, 32, 128, 512: fastnn vs NumPy vs torch vs onnxruntime.

The same 784-256-128-10 ReLU MLP in every library (``workloads.mlp_weights``), float32,
class labels out (``workloads.predictor`` says what each implementation runs; onnxruntime
runs fastnn's exported graph with ArgMax in it). Each test also checks its labels against
the float64 reference. These groups run in one process, where the libraries' thread pools
can slow each other down: the figures to quote come from ``python benchmarks/report.py
--only inference`` (each library in a process of its own), which also measures JAX.
"""
import numpy as np
import pytest

import workloads as w

BATCHES = [1, 8, 32, 128, 512]


@pytest.fixture(scope="module")
def weights():
    return w.mlp_weights()


@pytest.fixture(scope="module")
def predictors(weights):
    built = {}

    def get(impl):
        if impl not in built:
            onnx_model = None
            if impl == "torch":
                pytest.importorskip("torch", reason="the comparison needs torch")
            if impl == "onnxruntime":
                pytest.importorskip("onnx", reason="fastnn's ONNX export needs onnx")
                pytest.importorskip("onnxruntime", reason="the comparison needs onnxruntime")
                onnx_model = w.onnx_label_model(weights)
            built[impl] = w.predictor(impl, weights, onnx_model=onnx_model)
        return built[impl]

    return get


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("impl", ["fastnn", "numpy", "torch", "onnxruntime"])
def test_predict(benchmark, predictors, weights, impl, n):
    prepare = predictors(impl)
    X = w.batch(w.MLP, n)[0]
    reference, ambiguous = w.reference_labels(weights, X)
    benchmark.group = f"predict-{'-'.join(map(str, w.MLP))}-batch{n}-float32"
    labels = benchmark(prepare(X))
    assert w.label_mismatches(np.asarray(labels), reference, ambiguous).size == 0

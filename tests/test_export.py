"""ONNX export checked by running it in onnxruntime; PyTorch conversion checked both ways."""
import numpy as np
import pytest

import fastnn
from fastnn import export
from fastnn.datasets import Preprocessor
from fastnn.layers import ACTIVATIONS, Layer

onnx = pytest.importorskip("onnx", reason="the ONNX extra is not installed (pip install 'fastnn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the ONNX extra is not installed")


def run_onnx(proto, X, outputs=None):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(outputs or [o.name for o in session.get_outputs()],
                    session.run(outputs, {"input": X.astype(np.float32)})))


def assert_close(actual, expected):
    """The issue's bound: |onnxruntime − fastnn| ≤ 1e-5 · max|fastnn|."""
    bound = 1e-5 * max(float(np.max(np.abs(expected))), 1e-30)
    assert float(np.max(np.abs(actual - expected))) <= bound


def trained(net, X, rng):
    """A few SGD steps (so batch-norm statistics and weights are not at their initial values)."""
    y = rng.integers(0, net.out_features, len(X))
    fastnn.fit(net, X, y, optimizer=fastnn.SGD(net.parameters(), lr=0.05), epochs=2, batch_size=32, rng=0)
    return net.eval()


def mixed_networks():
    rng = 3
    return {
        "every activation": fastnn.Sequential(
            [fastnn.Dense(13, 16, rng=rng)]
            + [layer for name in ACTIVATIONS for layer in
               (fastnn.Activation(name), fastnn.Dense(16, 16, rng=rng))]
            + [fastnn.Dense(16, 5, rng=rng)]),
        "batch norm before (folded)": fastnn.mlp([13, 17, 9, 5], activation="elu", batch_norm=True, rng=rng),
        "batch norm after (a node)": fastnn.mlp([13, 17, 9, 5], activation="tanh", batch_norm="after",
                                                rng=rng),
        "dropout": fastnn.mlp([13, 17, 5], activation="leaky_relu", dropout=0.3, rng=rng),
        "no bias": fastnn.Sequential([fastnn.Dense(13, 8, bias=False, rng=rng), fastnn.SELU(),
                                      fastnn.BatchNorm(8), fastnn.Dense(8, 5, rng=rng)]),
        "prelu and rrelu": fastnn.Sequential([
            fastnn.Dense(13, 8, rng=rng), fastnn.PReLU(8), fastnn.Dense(8, 6, rng=rng),
            fastnn.PReLU(1), fastnn.Dense(6, 7, rng=rng), fastnn.RReLU(0.05, 0.4, rng=rng),
            fastnn.Dense(7, 5, rng=rng)]),
    }


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("batch", [1, 257])
def test_each_activation_matches_onnxruntime(name, batch):
    rng = np.random.default_rng(0)
    net = fastnn.Sequential([fastnn.Dense(11, 7, rng=1), fastnn.Activation(name),
                             fastnn.Dense(7, 4, rng=2)])
    X = rng.normal(scale=3, size=(batch, 11)).astype(np.float32)
    got = run_onnx(export.to_onnx(net), X)
    assert_close(got["logits"], net.forward(X))
    assert_close(got["probabilities"], net.predict_proba(X))
    np.testing.assert_array_equal(got["label"], net.predict(X))


@pytest.mark.parametrize("kind", list(mixed_networks()))
@pytest.mark.parametrize("batch", [1, 257])
def test_mixed_networks_match_onnxruntime(kind, batch):
    rng = np.random.default_rng(1)
    net = trained(mixed_networks()[kind], rng.normal(size=(300, 13)).astype(np.float32), rng)
    X = rng.normal(size=(batch, 13)).astype(np.float32)
    proto = export.to_onnx(net)
    got = run_onnx(proto, X)
    assert_close(got["logits"], net.forward(X))
    assert_close(got["probabilities"], net.predict_proba(X))
    np.testing.assert_array_equal(got["label"], net.predict(X))
    ops = {node.op_type for node in proto.graph.node}
    assert "Dropout" not in ops
    if kind == "batch norm before (folded)":
        assert "BatchNormalization" not in ops
    if kind == "batch norm after (a node)":
        assert "BatchNormalization" in ops


@pytest.mark.parametrize("method", ["center", "standardize"])
def test_model_file_with_preprocessing_on_real_digits(tmp_path, mnist_small, method):
    Xtr, ytr, Xte, _ = mnist_small
    pre = Preprocessor(method).fit(Xtr)
    net = fastnn.mlp([784, 64, 10], batch_norm=True, rng=0)
    fastnn.fit(net, pre.transform(Xtr[:2000]), ytr[:2000], epochs=1, batch_size=64, rng=0)
    fastnn.save(tmp_path / "m.npz", net, preprocessing=pre.state_dict())
    model = fastnn.load(tmp_path / "m.npz")
    out = tmp_path / "m.onnx"
    proto = export.to_onnx(model, out)
    assert onnx.load(str(out)) == proto
    X = Xte[:257]  # pixels in [0, 1]: the graph applies the preprocessing itself
    got = run_onnx(proto, X)
    assert_close(got["logits"], model.net.forward(pre.transform(X)))
    np.testing.assert_array_equal(got["label"], model.net.predict(pre.transform(X)))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["preprocessing"] == method and props["fastnn_version"] == fastnn.__version__


def test_graph_is_checked_with_dynamic_batch_and_opset():
    proto = export.to_onnx(fastnn.mlp([6, 5, 3], rng=0))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [export.OPSET]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 6
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities", "label"]


def test_value_and_binary_losses():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(33, 6)).astype(np.float32)
    mse = fastnn.mlp([6, 8, 2], loss="mse", rng=0)
    got = run_onnx(export.to_onnx(mse), X)
    assert list(got) == ["predictions"]
    assert_close(got["predictions"], mse.forward(X))
    bce = fastnn.mlp([6, 8, 3], loss="binary_cross_entropy", rng=0)
    got = run_onnx(export.to_onnx(bce), X)
    assert_close(got["probabilities"], bce.predict_proba(X))
    np.testing.assert_array_equal(got["label"], bce.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("labels", [("ham", "spam"), ("ham", "spam", "eggs"), (3, 7, 11)])
def test_estimator_labels_are_its_classes(labels):
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = np.asarray(labels)[np.digitize(X[:, 0], [-0.5, 0.5]) % len(labels)]
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    got = run_onnx(export.to_onnx(clf), X)
    label = got["label"].astype(str) if isinstance(labels[0], str) else got["label"]
    np.testing.assert_array_equal(label, clf.predict(X))
    assert_close(got["probabilities"], clf.predict_proba(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_poisson_regressor_exports_its_log_link():
    """MLPRegressor(loss="poisson"): the graph's predictions are exp of the network's output."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(90, 3)).astype(np.float32)
    y = rng.poisson(np.exp(1 + X @ np.array([1.0, -0.5, 0.3])), size=(2, 90)).T
    reg = fastnn.MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=20,
                              random_state=0).fit(X, y)
    got = run_onnx(export.to_onnx(reg), X)
    assert list(got) == ["predictions"]
    assert_close(got["predictions"], reg.predict(X))
    assert (got["predictions"] > 0).all()


def test_float64_network_exports_in_float32():
    net = fastnn.mlp([5, 7, 3], dtype=np.float64, activation="softplus", rng=0)
    X = np.random.default_rng(4).normal(size=(9, 5))
    assert_close(run_onnx(export.to_onnx(net), X)["logits"], net.forward(X))


class Doubler(Layer):
    """A user-defined layer: Y = 2X."""

    def _forward(self, X):
        return 2 * X

    def _backward(self, dY):
        return 2 * dY


def test_layer_without_onnx_form_names_it_and_writes_nothing(tmp_path):
    net = fastnn.Sequential([fastnn.Dense(3, 4, rng=0), Doubler(), fastnn.Dense(4, 2, rng=0)])
    with pytest.raises(ValueError, match=r"layer 1 \(Doubler\(\)\) has no ONNX form"):
        export.to_onnx(net, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_unfitted_estimator_and_wrong_type():
    with pytest.raises(ValueError, match="not fitted"):
        export.to_onnx(fastnn.MLPRegressor())
    with pytest.raises(TypeError, match="model must be"):
        export.to_onnx("model.npz")


# -- PyTorch ------------------------------------------------------------------------------

torch_mark = pytest.mark.usefixtures("torch")


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch is not installed (pip install 'fastnn[torch]')")


def torch_networks():
    rng = 5
    return {
        "every activation": fastnn.Sequential(
            [fastnn.Dense(9, 12, rng=rng, dtype=np.float64)]
            + [layer for name in ACTIVATIONS for layer in
               (fastnn.Activation(name), fastnn.Dense(12, 12, rng=rng, dtype=np.float64))]
            + [fastnn.Dense(12, 4, rng=rng, dtype=np.float64)]),
        "batch norm and dropout": fastnn.mlp([9, 12, 8, 4], activation="elu", batch_norm=True,
                                             dropout=0.0, dtype=np.float64, rng=rng),
        "batch norm after, leaky": fastnn.mlp([9, 12, 4], activation="leaky_relu",
                                              batch_norm="after", dtype=np.float64, rng=rng),
        "prelu, per unit and shared": fastnn.Sequential([
            fastnn.Dense(9, 12, rng=rng, dtype=np.float64), fastnn.PReLU(12, dtype=np.float64),
            fastnn.Dense(12, 8, rng=rng, dtype=np.float64),
            fastnn.PReLU(1, init=0.1, dtype=np.float64),
            fastnn.Dense(8, 4, rng=rng, dtype=np.float64)]),
    }


@pytest.mark.parametrize("kind", list(torch_networks()))
def test_to_torch_forward_and_gradients_agree(torch, kind):
    rng = np.random.default_rng(6)
    net = torch_networks()[kind]
    X = rng.normal(size=(16, 9))
    y = rng.integers(0, 4, 16)
    module = export.to_torch(net)
    assert module.training and next(module.parameters()).dtype == torch.float64
    # training mode (batch statistics; any dropout has p = 0): the same loss and gradients
    loss = net.loss(X, y)
    net.backward()
    out = module(torch.from_numpy(X))
    t_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    t_loss.backward()
    assert abs(loss - t_loss.item()) <= 1e-12 * abs(loss)
    torch_params = [p for m in module for p in m.parameters(recurse=False)]
    fastnn_params = net.parameters()
    assert len(torch_params) == len(fastnn_params)
    for p, tp in zip(fastnn_params, torch_params):
        grad = tp.grad.numpy().T if tp.ndim == 2 else tp.grad.numpy()
        np.testing.assert_allclose(p.grad, grad, rtol=1e-9, atol=1e-13)
    # evaluation mode: running statistics
    net.eval()
    module.eval()
    np.testing.assert_allclose(net.forward(X), module(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-12, atol=1e-13)


def test_round_trip_and_one_torch_step_matches_fastnn(torch):
    rng = np.random.default_rng(7)
    net = fastnn.mlp([9, 12, 8, 4], activation="tanh", batch_norm=True, dtype=np.float64, rng=1)
    X = rng.normal(size=(16, 9))
    y = rng.integers(0, 4, 16)
    module = export.to_torch(net)
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    torch.nn.functional.cross_entropy(module(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    opt.step()
    back = export.from_torch(module)
    net.train_step(X, y, fastnn.SGD(net.parameters(), lr=0.1, momentum=0.9))
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(back.state_dict()[key], value, rtol=1e-12, atol=1e-14, err_msg=key)
    assert back.training


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-unit"])
def test_prelu_and_rrelu_graph_nodes(shared):
    rng = np.random.default_rng(4)
    prelu = fastnn.PReLU(1 if shared else 6)
    prelu.weight.copy_(rng.uniform(-0.2, 0.6, prelu.num_parameters))
    net = fastnn.Sequential([fastnn.Dense(5, 6, rng=0), prelu, fastnn.RReLU(0.1, 0.5, rng=0),
                             fastnn.Dense(6, 3, rng=1)]).eval()
    proto = export.to_onnx(net)
    nodes = {node.op_type: node for node in proto.graph.node}
    assert nodes["LeakyRelu"].attribute[0].f == pytest.approx(0.3)
    slope = next(t for t in proto.graph.initializer if t.name == nodes["PRelu"].input[1])
    assert list(slope.dims) == [prelu.num_parameters]
    X = rng.normal(scale=3, size=(9, 5)).astype(np.float32)
    assert_close(run_onnx(proto, X)["logits"], net.forward(X))


def test_prelu_and_rrelu_to_torch_and_back(torch):
    rng = np.random.default_rng(9)
    prelu = fastnn.PReLU(6, dtype=np.float64)
    prelu.weight.copy_(rng.uniform(0, 0.5, 6))
    net = fastnn.Sequential([fastnn.Dense(5, 6, rng=0, dtype=np.float64), prelu,
                             fastnn.RReLU(0.1, 0.5, rng=0),
                             fastnn.Dense(6, 3, rng=1, dtype=np.float64)])
    module = export.to_torch(net)
    assert isinstance(module[1], torch.nn.PReLU) and module[1].num_parameters == 6
    assert isinstance(module[2], torch.nn.RReLU)
    assert (module[2].lower, module[2].upper) == (0.1, 0.5)
    np.testing.assert_array_equal(module[1].weight.detach().numpy(), prelu.weight.data)
    X = rng.normal(size=(7, 5))
    net.eval()
    module.eval()
    np.testing.assert_allclose(net.forward(X), module(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-12, atol=1e-13)
    with torch.no_grad():
        module[1].weight.mul_(2)
    back = export.from_torch(module)
    assert isinstance(back.layers[2], fastnn.RReLU) and back.layers[2].slope == 0.3
    np.testing.assert_array_equal(back.layers[1].weight.data, 2 * prelu.weight.data)
    assert back.layers[1].init == 0.25


def test_from_torch_module(torch):
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10, momentum=0.2, eps=1e-3), nn.ReLU(),
                           nn.Dropout(0.25), nn.Linear(10, 8), nn.Hardtanh(), nn.Linear(8, 3)).eval()
    net = export.from_torch(module)
    assert not net.training and net.dtype == np.float32
    bn = net.layers[1]
    assert (bn.momentum, bn.eps) == (0.2, 1e-3)
    X = np.random.default_rng(8).normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(net.forward(X), module(torch.from_numpy(X)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_unsupported_torch_modules_are_named(torch):
    nn = torch.nn
    with pytest.raises(ValueError, match=r"module 1 \(GELU.*\) has no fastnn layer"):
        export.from_torch(nn.Sequential(nn.Linear(3, 3), nn.GELU()))
    with pytest.raises(ValueError, match=r"module 0 \(Hardtanh.*bounds"):
        export.from_torch(nn.Sequential(nn.Hardtanh(0, 2)))
    with pytest.raises(TypeError, match="torch.nn.Sequential"):
        export.from_torch(nn.Linear(3, 3))
    net = fastnn.Sequential([fastnn.Dense(3, 4, rng=0), Doubler()])
    with pytest.raises(ValueError, match=r"layer 1 \(Doubler\(\)\) has no PyTorch module"):
        export.to_torch(net)


def test_cli_export_subprocess(mnist_small, tmp_path):
    """`fastnn train --save` then `fastnn export`, run as the commands a user types."""
    import os
    import subprocess
    import sys

    from conftest import MNIST_SMALL

    env = dict(os.environ, FASTNN_DATA_DIR=str(MNIST_SMALL))
    model, graph = tmp_path / "m.npz", tmp_path / "m.onnx"
    for args in (["train", "--hidden", "32", "--epochs", "1", "--batch-norm", "--preprocess",
                  "standardize", "--save", str(model), "-q"], ["export", str(model), str(graph)]):
        result = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    assert f"wrote {graph}: ONNX opset {export.OPSET}" in result.stdout
    loaded = fastnn.load(model)
    X = mnist_small[2][:50]
    got = run_onnx(onnx.load(str(graph)), X)
    expected = loaded.net.predict(Preprocessor.from_state(loaded.preprocessing).transform(X))
    np.testing.assert_array_equal(got["label"], expected)
    result = subprocess.run([sys.executable, "-m", "fastnn", "export", str(tmp_path / "no.npz"),
                             str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "model file not found" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("method", ["pca-whiten", "zca-whiten"])
def test_whitening_is_part_of_the_graph(tmp_path, method):
    rng = np.random.default_rng(9)
    X = rng.random((400, 12)).astype(np.float32)
    pre = Preprocessor(method, n_components=6 if method == "pca-whiten" else None).fit(X)
    net = fastnn.mlp([pre.whitening.shape[1], 10, 3], rng=0)
    fastnn.save(tmp_path / "m.npz", net, preprocessing=pre.state_dict())
    got = run_onnx(export.to_onnx(fastnn.load(tmp_path / "m.npz")), X[:257])
    assert_close(got["logits"], net.forward(pre.transform(X[:257])))

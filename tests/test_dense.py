"""Dense kernels and the Dense layer against the NumPy reference."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL, layout
from fastnn.layers import ACTIVATIONS as ACTIVATION_NAMES
from fastnn_c import activations as _act
from fastnn_c import dense as _dense

BATCHES = [1, 7, 64, 257]
WIDTHS = [(1, 1), (3, 5), (784, 3), (17, 784)]


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("n_in,n_out", WIDTHS, ids=lambda w: str(w))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_dense_kernels_match_reference(dtype, rng, n, n_in, n_out, bias):
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    tol = dict(rtol=RTOL[dtype] * np.sqrt(n_in), atol=ATOL[dtype] * n_in)

    Y = np.empty((n, n_out), dtype)
    _dense.dense_forward(X, W, b, Y)
    np.testing.assert_allclose(Y, ref.dense_forward(X, W, b), **tol)

    dX, dW, db = np.empty_like(X), np.empty_like(W), np.empty(n_out, dtype)
    _dense.dense_backward(X, W, dY, dW, db, dX)
    ref_dX, ref_dW, ref_db = ref.dense_backward(X, W, dY)
    np.testing.assert_allclose(dX, ref_dX, rtol=RTOL[dtype] * np.sqrt(n_out), atol=ATOL[dtype] * n_out)
    np.testing.assert_allclose(dW, ref_dW, rtol=RTOL[dtype] * np.sqrt(n), atol=ATOL[dtype] * n)
    np.testing.assert_allclose(db, ref_db, rtol=RTOL[dtype] * np.sqrt(n), atol=ATOL[dtype] * n)


def test_first_layer_skips_input_gradient(rng):
    X = rng.standard_normal((4, 3))
    W, dY = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    dW, db = np.empty_like(W), np.empty(2)
    _dense.dense_backward(X, W, dY, dW, db, None)
    np.testing.assert_allclose(dW, X.T @ dY, rtol=1e-12)


@pytest.mark.parametrize("kind", ["F", "strided"])
def test_layer_copies_non_contiguous_input(dtype, rng, kind):
    layer = fastnn.Dense(6, 4, rng=0, dtype=dtype)
    X = rng.standard_normal((9, 6)).astype(dtype)
    expected = ref.dense_forward(X, layer.weight.data, layer.bias.data)
    got = layer.forward(layout(X, kind))
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype] * 4, atol=ATOL[dtype] * 10)


def test_kernel_rejects_wrong_shapes():
    X, W, b = np.ones((3, 4)), np.ones((5, 2)), np.ones(2)
    with pytest.raises(ValueError, match=r"dense_forward: W has shape \(5, 2\), expected \(4, 2\)"):
        _dense.dense_forward(X, W, b, np.empty((3, 2)))
    with pytest.raises(ValueError, match=r"dense_forward: b has shape \(3,\), expected \(2,\)"):
        _dense.dense_forward(np.ones((3, 5)), W, np.ones(3), np.empty((3, 2)))
    with pytest.raises(ValueError, match=r"dense_backward: dX has shape \(3, 4\), expected \(3, 5\)"):
        _dense.dense_backward(np.ones((3, 5)), W, np.ones((3, 2)), np.empty((5, 2)), None, np.empty((3, 4)))


@pytest.mark.parametrize("n,n_in,n_out", [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_kernels_with_an_empty_dimension(n, n_in, n_out, with_bias, rng):
    X, W = rng.standard_normal((n, n_in)), rng.standard_normal((n_in, n_out))
    b = rng.standard_normal(n_out) if with_bias else None
    Y = np.full((n, n_out), np.nan)
    _dense.dense_forward(X, W, b, Y)
    np.testing.assert_array_equal(Y, X @ W + (b if with_bias else 0))
    A = np.full((n, n_out), np.nan)
    _dense.dense_activation_forward(X, W, b, A, _act.KINDS["relu"])
    np.testing.assert_array_equal(A, np.maximum(X @ W + (b if with_bias else 0), 0))
    dY = rng.standard_normal((n, n_out))
    dW, dX = np.full((n_in, n_out), np.nan), np.full((n, n_in), np.nan)
    db = np.full(n_out, np.nan) if with_bias else None
    _dense.dense_backward(X, W, dY, dW, db, dX)
    np.testing.assert_array_equal(dW, X.T @ dY)
    np.testing.assert_array_equal(dX, dY @ W.T)
    if with_bias:
        np.testing.assert_array_equal(db, dY.sum(axis=0))
    with pytest.raises(ValueError, match="empty batch or layer"):
        _dense.dense_sgd_backward(X, W, dY, b, dX, 0.1)


def test_kernel_rejects_wrong_dtype_layout_and_rank():
    X, W, Y = np.ones((3, 4)), np.ones((4, 2)), np.empty((3, 2))
    with pytest.raises(TypeError, match="W has dtype float32, expected float64"):
        _dense.dense_forward(X, W.astype(np.float32), None, Y)
    with pytest.raises(TypeError, match="X must be float32 or float64, got int64"):
        _dense.dense_forward(X.astype(np.int64), W, None, Y)
    with pytest.raises(TypeError, match="X must be a numpy.ndarray, got list"):
        _dense.dense_forward(X.tolist(), W, None, Y)
    with pytest.raises(TypeError, match="b has dtype >f8"):
        _dense.dense_forward(X, W, np.ones(2, ">f8"), Y)
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        _dense.dense_forward(np.asfortranarray(X), W, None, Y)
    with pytest.raises(ValueError, match="X must be C-contiguous"):
        _dense.dense_forward(np.ones((3, 8))[:, ::2], W, None, Y)
    with pytest.raises(ValueError, match="b has 2 dimensions, expected 1"):
        _dense.dense_forward(X, W, np.ones((1, 2)), Y)
    read_only = np.empty((3, 2))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="Y is read-only"):
        _dense.dense_forward(X, W, None, read_only)
    with pytest.raises(ValueError, match=r"dZ has shape \(2, 2\), expected \(3, 2\)"):
        _dense.dense_activation_sgd_backward(X, W.copy(), Y, Y, np.empty((2, 2)), None, None, 5, 0.0, 0.1)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_layer_gradcheck(rng, bias):
    layer = fastnn.Dense(5, 3, bias=bias, rng=1, dtype=np.float64)
    result = fastnn.gradcheck(layer, rng.standard_normal((7, 5)), check_input=True)
    assert result.passed, str(result)
    assert result.max_relative_error < 1e-7


def test_dense_layer_validates_input():
    layer = fastnn.Dense(4, 2, rng=0)
    with pytest.raises(ValueError, match="X has 3 features per row, expected 4"):
        layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="must be 2-D"):
        layer.forward(np.ones(4))
    with pytest.raises(ValueError, match="empty batch"):
        layer.forward(np.ones((0, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        layer.forward(np.ones((2, 4), dtype=complex))
    with pytest.raises(ValueError, match="in_features must be an int >= 1"):
        fastnn.Dense(0, 3)
    with pytest.raises(TypeError, match="float32 or float64"):
        fastnn.Dense(3, 3, dtype=np.int32)
    with pytest.raises(ValueError, match="unknown initializer 'bogus'"):
        fastnn.Dense(3, 3, init="bogus")


def test_layer_reuses_buffers_across_steps(rng):
    layer = fastnn.Dense(8, 4, rng=0)
    X = rng.standard_normal((16, 8)).astype(np.float32)
    first = layer.forward(X)
    second = layer.forward(X)
    assert np.shares_memory(first, second)
    smaller = layer.forward(X[:5])  # a smaller batch is served from the same buffer
    assert np.shares_memory(first, smaller) and smaller.shape == (5, 4)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@pytest.mark.parametrize("n,n_in,n_out", [(1, 3, 5), (7, 784, 3), (64, 17, 33)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_fused_dense_activation_matches_the_two_layers(dtype, rng, name, n, n_in, n_out, bias):
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dA = rng.standard_normal((n, n_out)).astype(dtype)
    kind = _act.KINDS[name]

    A = np.empty((n, n_out), dtype)
    _dense.dense_activation_forward(X, W, b, A, kind, 0.1)
    alpha = 0.1 if name in ("leaky_relu", "elu") else None
    f, _ = ref.activation(name, ref.dense_forward(X.astype(np.float64), W, b), alpha)
    np.testing.assert_allclose(A, f, rtol=RTOL[dtype] * 30, atol=ATOL[dtype] * 30)

    dZ, dW, db, dX = (np.empty((n, n_out), dtype), np.empty_like(W), np.empty(n_out, dtype),
                      np.empty_like(X))
    _dense.dense_activation_backward(X, W, A, dA, dZ, dW, db, dX, kind, 0.1)
    expected_dZ = dA * ref.activation_derivative_from_output(name, A, alpha)
    np.testing.assert_allclose(dZ, expected_dZ, rtol=RTOL[dtype] * 30, atol=ATOL[dtype] * 30)
    ref_dX, ref_dW, ref_db = ref.dense_backward(X, W, expected_dZ)
    scale = dict(rtol=RTOL[dtype] * 30, atol=ATOL[dtype] * 30 * max(n, n_in, n_out))
    np.testing.assert_allclose(dW, ref_dW, **scale)
    np.testing.assert_allclose(db, ref_db, **scale)
    np.testing.assert_allclose(dX, ref_dX, **scale)


def test_networks_run_dense_activation_pairs_fused(rng):
    """A Sequential fuses each Dense+Activation pair; results equal the layer-by-layer path."""
    net = fastnn.mlp([6, 5, 4, 3], activation="elu", rng=0, dtype=np.float64)
    assert len(net._plan) == 3  # (Dense+ELU), (Dense+ELU), Dense
    X, y = rng.standard_normal((9, 6)), rng.integers(0, 3, 9)
    fused_loss = net.loss(X, y)
    net.backward()
    fused = [p.grad.copy() for p in net.parameters()]
    out = X
    for layer in net.layers:
        out = layer.forward(out)
    assert net.loss_fn.forward(out, y) == pytest.approx(fused_loss, rel=1e-14)
    grad = net.loss_fn.backward()
    for layer in reversed(net.layers):
        grad = layer.backward(grad)
    for expected, p in zip(fused, net.parameters()):
        np.testing.assert_allclose(p.grad, expected, rtol=1e-13)


def test_fused_kernels_reject_wrong_shapes():
    X, W, A = np.ones((3, 4)), np.ones((4, 2)), np.empty((3, 2))
    with pytest.raises(ValueError, match=r"A has shape \(3, 3\), expected \(3, 2\)"):
        _dense.dense_activation_forward(X, W, None, np.empty((3, 3)), 5)
    with pytest.raises(ValueError, match="unknown activation code"):
        _dense.dense_activation_forward(X, W, None, A, 42)
    with pytest.raises(ValueError, match=r"dA has shape \(3, 3\), expected \(3, 2\)"):
        _dense.dense_activation_backward(X, W, A, np.ones((3, 3)), A, np.empty((4, 2)), None, None, 5)


@pytest.mark.parametrize("n,n_in,n_out", [(1, 3, 5), (7, 784, 3), (64, 17, 33)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_sgd_backward_updates_in_place(dtype, rng, n, n_in, n_out, bias):
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    ref_dX, ref_dW, ref_db = ref.dense_backward(X, W, dY)
    expected_W = W - dtype(0.05) * ref_dW
    expected_b = None if b is None else b - dtype(0.05) * ref_db
    dX = np.empty_like(X)
    _dense.dense_sgd_backward(X, W, dY, b, dX, 0.05)
    tol = dict(rtol=RTOL[dtype] * 30, atol=ATOL[dtype] * 30 * max(n, n_in, n_out))
    np.testing.assert_allclose(dX, ref_dX, **tol)  # computed from the weights before the update
    np.testing.assert_allclose(W, expected_W, **tol)
    if bias:
        np.testing.assert_allclose(b, expected_b, **tol)

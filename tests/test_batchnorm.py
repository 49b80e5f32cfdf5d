"""BatchNorm: kernels against a NumPy reference, running statistics, stability, gradients."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL, layout
from fastnn import BatchNorm, Dense, Sequential, gradcheck
from fastnn_c import batchnorm as _batchnorm

SHAPES = [(2, 1), (5, 3), (64, 17), (33, 100)]
LAYOUTS = ["C", "F", "strided"]


def random_layer(n_features, dtype, rng, momentum=0.1):
    layer = BatchNorm(n_features, momentum=momentum, dtype=dtype)
    layer.gamma.copy_(rng.uniform(0.5, 2.0, n_features))
    layer.beta.copy_(rng.standard_normal(n_features))
    return layer


def assert_close(actual, expected, dtype, scale=1.0):
    np.testing.assert_allclose(actual, expected, rtol=10 * RTOL[dtype], atol=10 * ATOL[dtype] * scale)


# -- forward ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_forward_train_matches_reference(shape, kind, dtype, rng):
    X = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    layer = random_layer(shape[1], dtype, rng)
    Y = layer.forward(layout(X, kind))
    expected, _ = ref.batchnorm_forward(X, layer.gamma.data, layer.beta.data, layer.eps)
    assert Y.dtype == dtype and Y.shape == shape
    assert_close(Y, expected, dtype)


@pytest.mark.parametrize("shape", [(1, 4)] + SHAPES, ids=str)
def test_forward_eval_uses_running_statistics(shape, dtype, rng):
    layer = random_layer(shape[1], dtype, rng)
    layer.running_mean = rng.standard_normal(shape[1])
    layer.running_var = rng.uniform(0.1, 3.0, shape[1])
    X = rng.standard_normal(shape).astype(dtype)
    Y = layer.eval().forward(X)
    expected, _ = ref.batchnorm_forward(X, layer.gamma.data, layer.beta.data, layer.eps,
                                    layer.running_mean.astype(np.float64),
                                    layer.running_var.astype(np.float64))
    assert_close(Y, expected, dtype)
    assert np.all(layer.running_var > 0)  # eval leaves the running statistics alone
    before = layer.state_dict()
    layer.forward(X)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_train_output_is_normalized(rng):
    X = rng.standard_normal((500, 6)) * [1, 10, 100, 0.1, 1e3, 5] + [0, -5, 50, 1, 1e4, 3]
    Y = BatchNorm(6, dtype=np.float64).forward(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Y.var(axis=0), X.var(axis=0) / (X.var(axis=0) + 1e-5), rtol=1e-12)


def test_stable_when_mean_dwarfs_spread_float32(rng):
    """μ = 1e4, σ = 1e-2 in float32: Σx² − nμ² would lose every digit of the variance."""
    X = (1e4 + 1e-2 * rng.standard_normal((256, 8))).astype(np.float32)
    layer = BatchNorm(8, dtype=np.float32)
    Y = layer.forward(X).astype(np.float64)
    expected, _ = ref.batchnorm_forward(X, 1.0, 0.0, layer.eps)  # float64 statistics of the same data
    np.testing.assert_allclose(Y, expected, atol=2e-5)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(layer.running_mean, 0.1 * X64.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * X64.var(axis=0, ddof=1), rtol=1e-6)
    # The same holds for the kernel's cached statistics used by backward.
    np.testing.assert_allclose(1 / layer._inv_std ** 2 - layer.eps, X64.var(axis=0), rtol=1e-9)


@pytest.mark.parametrize("n", [3, 257, 5000])
def test_float32_forward_and_backward_stay_accurate_far_from_zero(rng, n):
    """μ = 1e4, σ = 1e-2, a first row 50σ off the mean, up to 5000 rows: the float32 kernels
    (shifted sums, blocked accumulation) agree with float64 statistics of the same data."""
    X = (1e4 + 1e-2 * rng.standard_normal((n, 8))).astype(np.float32)
    X[0] += np.float32(0.5)
    dY = rng.standard_normal((n, 8)).astype(np.float32)
    gamma = rng.uniform(0.5, 2, 8).astype(np.float32)
    layer = BatchNorm(8, dtype=np.float32)
    layer.gamma.copy_(gamma)
    Y = layer.forward(X).astype(np.float64)
    expected, _ = ref.batchnorm_forward(X, gamma.astype(np.float64), 0.0, layer.eps)
    np.testing.assert_allclose(Y, expected, atol=1e-5 * np.abs(expected).max())
    dX = layer.backward(dY).astype(np.float64)
    ref_dX, ref_dgamma, ref_dbeta = ref.batchnorm_backward_train(X, gamma.astype(np.float64), dY, layer.eps)
    np.testing.assert_allclose(dX, ref_dX, atol=1e-5 * np.abs(ref_dX).max())
    np.testing.assert_allclose(layer.gamma.grad, ref_dgamma, rtol=1e-4, atol=1e-4 * np.sqrt(n))
    np.testing.assert_allclose(layer.beta.grad, ref_dbeta, rtol=1e-5, atol=1e-5 * np.sqrt(n))


def test_train_needs_two_rows_but_eval_takes_one():
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 rows"):
        layer.forward(np.ones((1, 3)))
    assert layer.eval().forward(np.ones((1, 3))).shape == (1, 3)


# -- running statistics ----------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, 0.3, 1.0, 0.0])
def test_running_statistics_over_several_steps(momentum, dtype, rng):
    layer = BatchNorm(7, momentum=momentum, dtype=dtype)
    mean, var = np.zeros(7), np.ones(7)
    for step in range(6):
        n = 2 + 7 * step
        X = (rng.standard_normal((n, 7)) * rng.uniform(0.5, 3, 7) + rng.standard_normal(7)).astype(dtype)
        layer.forward(X)
        X64 = X.astype(np.float64)
        mean = (1 - momentum) * mean + momentum * X64.mean(axis=0)
        var = (1 - momentum) * var + momentum * X64.var(axis=0, ddof=1)  # unbiased, as PyTorch
    assert layer.running_mean.dtype == dtype
    assert_close(layer.running_mean, mean, dtype)
    assert_close(layer.running_var, var, dtype)


def test_running_statistics_are_buffers_saved_by_state_dict(rng):
    layer = random_layer(4, np.float64, rng)
    layer.forward(rng.standard_normal((10, 4)))
    state = layer.state_dict()
    assert set(state) == {"gamma", "beta", "running_mean", "running_var"}
    assert [p.name for p in layer.parameters()] == ["gamma", "beta"]
    assert not any(p.regularize for p in layer.parameters())
    state["running_mean"] += 1  # a copy, not a view
    assert not np.array_equal(state["running_mean"], layer.running_mean)
    clone = BatchNorm(4, dtype=np.float64)
    clone.load_state_dict(layer.state_dict())
    X = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(clone.eval().forward(X), layer.eval().forward(X))
    layer.reset_running_stats()
    assert not layer.running_mean.any() and np.all(layer.running_var == 1)


# -- backward --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward_train_matches_chain_rule(shape, dtype, rng):
    X = (1 + 2 * rng.standard_normal(shape)).astype(dtype)
    dY = rng.standard_normal(shape).astype(dtype)
    layer = random_layer(shape[1], dtype, rng)
    layer.forward(X)
    dX = layer.backward(dY)
    eX, eg, eb = ref.batchnorm_backward_train(X, layer.gamma.data.astype(np.float64), dY, layer.eps)
    assert_close(dX, eX, dtype, scale=10)
    assert_close(layer.gamma.grad, eg, dtype, scale=10)
    assert_close(layer.beta.grad, eb, dtype, scale=10)


@pytest.mark.parametrize("shape", [(1, 3)] + SHAPES, ids=str)
def test_backward_eval(shape, dtype, rng):
    layer = random_layer(shape[1], dtype, rng)
    layer.running_mean = rng.standard_normal(shape[1])
    layer.running_var = rng.uniform(0.1, 3.0, shape[1])
    X = rng.standard_normal(shape).astype(dtype)
    dY = rng.standard_normal(shape).astype(dtype)
    layer.eval().forward(X)
    dX = layer.backward(dY)
    inv_std = 1 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
    xhat = (X - layer.running_mean.astype(np.float64)) * inv_std
    assert_close(dX, dY * layer.gamma.data * inv_std, dtype, scale=10)
    assert_close(layer.gamma.grad, (dY * xhat).sum(axis=0), dtype, scale=10)
    assert_close(layer.beta.grad, dY.sum(axis=0), dtype, scale=10)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(3, 3), (9, 5), (16, 1)], ids=str)
def test_gradcheck_layer(training, shape, rng):
    # No batch of 2: it normalizes to ±1 whatever X is, so ∂L/∂X ≈ 0 and the relative error
    # would compare rounding noise with rounding noise.
    layer = random_layer(shape[1], np.float64, rng)
    layer.running_mean = rng.standard_normal(shape[1])
    layer.running_var = rng.uniform(0.5, 2.0, shape[1])
    layer.train(training)
    X = 2 + 3 * rng.standard_normal(shape)
    result = gradcheck(layer, X, check_input=True, rng=1)
    assert result.passed, str(result)
    assert {c.name for c in result.checks} == {"input", "BatchNorm.gamma", "BatchNorm.beta"}


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck_network(position, training, rng):
    net = fastnn.mlp([6, 8, 7, 3], activation="tanh", batch_norm=position, rng=3, dtype=np.float64)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.index("BatchNorm") == (1 if position == "before" else 2)
    X = rng.standard_normal((10, 6))
    y = rng.integers(0, 3, 10)
    for _ in range(3):  # non-trivial running statistics for eval mode
        net.loss(X + rng.standard_normal(X.shape), y)
    net.train(training)
    result = gradcheck(net, X, y, check_input=True)
    assert result.passed, str(result)


def test_first_layer_skips_input_gradient(rng):
    net = Sequential([BatchNorm(4, dtype=np.float64), Dense(4, 2, rng=0, dtype=np.float64)])
    net.loss(rng.standard_normal((5, 4)), np.array([0, 1, 1, 0, 1]))
    assert net.backward() is None
    assert np.any(net.layers[0].gamma.grad != 0)


# -- configuration and validation ------------------------------------------------------------
def test_config_round_trip(rng):
    net = Sequential([Dense(5, 4, bias=False, rng=0), BatchNorm(4, momentum=0.25, eps=1e-3),
                      fastnn.ReLU(), Dense(4, 2, rng=0)])
    X = rng.standard_normal((8, 5)).astype(np.float32)
    net.loss(X, np.array([0, 1] * 4))
    clone = Sequential.from_config(net.get_config())
    clone.load_state_dict(net.state_dict())
    bn = clone.layers[1]
    assert (bn.momentum, bn.eps, bn.n_features) == (0.25, 1e-3, 4)
    np.testing.assert_array_equal(bn.running_mean, net.layers[1].running_mean)
    np.testing.assert_array_equal(clone.predict_proba(X), net.predict_proba(X))
    wide = net.astype(np.float64)
    assert wide.layers[1].running_var.dtype == np.float64
    np.testing.assert_allclose(wide.layers[1].running_var, net.layers[1].running_var, rtol=1e-7)
    assert fastnn.layers.LAYERS["BatchNorm"] is BatchNorm


@pytest.mark.parametrize("kwargs, match", [
    ({"n_features": 0}, "n_features"),
    ({"n_features": 3, "momentum": 1.5}, "momentum"),
    ({"n_features": 3, "momentum": -0.1}, "momentum"),
    ({"n_features": 3, "eps": 0.0}, "eps"),
    ({"n_features": 3, "eps": float("inf")}, "eps"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchNorm(**kwargs)


def test_wrong_width_is_refused():
    with pytest.raises(ValueError, match="expected 3"):
        BatchNorm(3).forward(np.ones((4, 5)))


def test_kernels_check_shapes():
    X = np.ones((4, 3))
    v3, v2 = np.ones(3), np.ones(2)
    with pytest.raises(ValueError):
        _batchnorm.batchnorm_forward_train(X, v3, v3, v3.copy(), v3.copy(), 0.1, 1e-5,
                                           np.empty((4, 2)), np.empty(3), np.empty(3))
    with pytest.raises(ValueError):
        _batchnorm.batchnorm_forward_train(X, v2, v3, v3.copy(), v3.copy(), 0.1, 1e-5,
                                           np.empty((4, 3)), np.empty(3), np.empty(3))
    with pytest.raises(ValueError):
        _batchnorm.batchnorm_forward_eval(X, v3, v3, v3, v2, 1e-5, np.empty((4, 3)), np.empty(3),
                                          np.empty(3))
    with pytest.raises(ValueError):
        _batchnorm.batchnorm_backward(X, v3, v3, v3, np.ones((5, 3)), np.empty(3), np.empty(3),
                                      None, True)
    with pytest.raises(ValueError):
        _batchnorm.batchnorm_backward(X, v3, v3, v3, X, np.empty(3), np.empty(3),
                                      np.empty((4, 2)), True)


def test_nan_propagates(rng):
    X = rng.standard_normal((6, 3))
    X[2, 1] = np.nan
    Y = BatchNorm(3, dtype=np.float64).forward(X)
    assert np.all(np.isnan(Y[:, 1])) and np.all(np.isfinite(Y[:, [0, 2]]))


@pytest.mark.parametrize("shape", [(2, 2), (64, 17), (5, 40), (77, 301), (600, 1000)], ids=str)
def test_threaded_kernels_equal_serial(shape, dtype, rng):
    """Each thread owns a block of features, so the results do not depend on the thread count
    (blocks of whole 16-feature units: 40 features split 16 + 24, 17 stay on one thread)."""
    from fastnn_c import batchnorm as _bn

    n, d = shape
    X, dY = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    results = []
    for threads in (1, 2, 3, 16):
        gamma, beta = np.full(d, 1.5, dtype), np.full(d, 0.5, dtype)
        running_mean, running_var = np.zeros(d, dtype), np.ones(d, dtype)
        Y, dX, mean, inv_std = np.empty_like(X), np.empty_like(X), np.empty(d), np.empty(d)
        dgamma, dbeta = np.empty(d, dtype), np.empty(d, dtype)
        _bn.batchnorm_forward_train(X, gamma, beta, running_mean, running_var, 0.1, 1e-5, Y, mean,
                                    inv_std, threads)
        _bn.batchnorm_backward(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, True, threads)
        dX_eval = np.empty_like(X)
        _bn.batchnorm_backward(X, mean, inv_std, gamma, dY, dgamma.copy(), dbeta.copy(), dX_eval,
                               False, threads)
        results.append((Y, dX, running_mean, running_var, dgamma, dbeta, dX_eval))
    for threaded in results[1:]:
        for a, b in zip(results[0], threaded):
            np.testing.assert_array_equal(a, b)

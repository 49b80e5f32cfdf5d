"""L2/L1 penalties and max-norm: kernels against NumPy, network wiring, gradients, configs."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL
from fastnn import BatchNorm, Dense, Sequential, gradcheck
from fastnn_c import regularization as _regularization

COEFFICIENTS = [(0.1, 0.0), (0.0, 0.05), (0.3, 0.02)]


# -- kernels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 17, 10000])
@pytest.mark.parametrize("l2, l1", COEFFICIENTS)
def test_penalty_kernels_match_reference(n, l2, l1, dtype, rng):
    w = rng.standard_normal(n).astype(dtype)
    w[::5] = 0  # sign(0) = 0
    grad = rng.standard_normal(n).astype(dtype)
    value, dpenalty = ref.regularization_penalty(w, l2, l1)
    rtol = 10 * RTOL[dtype]
    assert _regularization.regularization_penalty(w, l2, l1) == pytest.approx(value, rel=1e-12)
    new_grad = grad.copy()
    returned = _regularization.regularization_backward(w, new_grad, l2, l1)
    assert returned == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(new_grad, grad + dpenalty, rtol=rtol, atol=10 * ATOL[dtype])


def test_penalty_propagates_nan():
    w = np.array([1.0, np.nan, -2.0])
    grad = np.zeros(3)
    assert np.isnan(_regularization.regularization_backward(w, grad, 0.0, 0.1))
    assert np.isnan(grad[1]) and grad[0] == pytest.approx(0.1) and grad[2] == pytest.approx(-0.1)


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 5), (30, 17), (200, 64)], ids=str)
@pytest.mark.parametrize("c", [0.5, 2.0, 1e3])
def test_max_norm_matches_reference(shape, c, dtype, rng):
    W = (rng.standard_normal(shape) * rng.uniform(0.01, 1.0, shape[1])).astype(dtype)
    W[:, 0] = 0  # a zero column stays zero
    expected = ref.max_norm_constraint(W, c)
    _regularization.max_norm_constraint(W, c)
    np.testing.assert_allclose(W, expected, rtol=10 * RTOL[dtype], atol=10 * ATOL[dtype])
    assert np.all(np.sqrt((W.astype(np.float64) ** 2).sum(axis=0)) <= c * (1 + 10 * RTOL[dtype]))


def test_kernels_check_arguments():
    with pytest.raises(ValueError, match=r"regularization_backward: grad has shape \(2,\), expected \(3,\)"):
        _regularization.regularization_backward(np.ones(3), np.ones(2), 0.1, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        _regularization.regularization_penalty(np.ones(3), -0.1, 0.0)
    with pytest.raises(ValueError, match="max_norm"):
        _regularization.max_norm_constraint(np.ones((2, 2)), 0.0)


# -- network ---------------------------------------------------------------------------------
def small_net(l2=0.0, l1=0.0, dtype=np.float64, regularize_bias=False, max_norm=None):
    return Sequential([Dense(6, 8, rng=0, dtype=dtype, regularize_bias=regularize_bias,
                             max_norm=max_norm),
                       BatchNorm(8, dtype=dtype), fastnn.Tanh(),
                       Dense(8, 3, rng=1, dtype=dtype, max_norm=max_norm)], l2=l2, l1=l1)


@pytest.mark.parametrize("l2, l1", COEFFICIENTS)
@pytest.mark.parametrize("regularize_bias", [False, True])
def test_loss_and_gradients_include_the_penalty(l2, l1, regularize_bias, dtype, rng):
    X = rng.standard_normal((10, 6)).astype(dtype)
    y = rng.integers(0, 3, 10)
    plain, net = small_net(dtype=dtype), small_net(l2, l1, dtype, regularize_bias)
    data_loss = plain.loss(X, y)
    plain.backward()
    penalized = [p for p in net.parameters()
                 if p.name == "weight" or (regularize_bias and p.name == "bias")]
    expected_penalty = sum(ref.regularization_penalty(p.data, l2, l1)[0] for p in penalized)
    assert net.penalty() == pytest.approx(expected_penalty, rel=1e-6)
    assert net.loss(X, y) == pytest.approx(data_loss + expected_penalty, rel=1e-6)
    net.backward()
    tol = {"rtol": 10 * RTOL[dtype], "atol": 10 * ATOL[dtype]}
    for p, q in zip(net.parameters(), plain.parameters()):
        extra = ref.regularization_penalty(p.data, l2, l1)[1] if any(p is r for r in penalized) else 0
        np.testing.assert_allclose(p.grad, q.grad + extra, **tol, err_msg=p.name)
    assert net.evaluate(X, y)["loss"] == pytest.approx(plain.evaluate(X, y)["loss"], rel=1e-6)


def test_biases_and_batchnorm_are_not_regularized_by_default():
    net = small_net(l2=0.1)
    flags = {(type(layer).__name__, p.name): p.regularize
             for layer in net.layers for p in layer.parameters()}
    assert flags == {("Dense", "weight"): True, ("Dense", "bias"): False,
                     ("BatchNorm", "gamma"): False, ("BatchNorm", "beta"): False}
    assert Dense(3, 2, regularize_bias=True).bias.regularize


def test_parameter_flag_overrides(rng):
    net = small_net(l2=0.5)
    X, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
    net.layers[0].weight.regularize = False
    expected = ref.regularization_penalty(net.layers[3].weight.data, 0.5, 0.0)[0]
    assert net.penalty() == pytest.approx(expected)
    net.layers[1].gamma.regularize = True  # opt a batch-norm scale in
    assert net.penalty() == pytest.approx(expected + 0.25 * 8)
    assert net.loss(X, y) > expected


@pytest.mark.parametrize("l2, l1", COEFFICIENTS)
def test_gradcheck_with_penalties(l2, l1, rng):
    # Batch norm after the activation, so the first bias matters (before it, ∂L/∂b = 0).
    net = Sequential([Dense(6, 8, rng=0, dtype=np.float64, regularize_bias=True), fastnn.Tanh(),
                      BatchNorm(8, dtype=np.float64), Dense(8, 3, rng=1, dtype=np.float64)],
                     l2=l2, l1=l1)
    net.layers[0].bias.copy_(rng.standard_normal(8))
    X, y = rng.standard_normal((9, 6)), rng.integers(0, 3, 9)
    result = gradcheck(net, X, y, check_input=True)
    assert result.passed, str(result)


def test_sgd_step_is_weight_decay(rng):
    """With l2, one SGD step is w ← w − η(∇L_data + λw) = (1 − ηλ) w − η∇L_data."""
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    plain, net = small_net(), small_net(l2=0.2)
    plain.loss(X, y)
    plain.backward()
    w0 = net.layers[0].weight.data.copy()
    net.train_step(X, y, fastnn.SGD(net.parameters(), lr=0.5))
    np.testing.assert_allclose(net.layers[0].weight.data,
                               (1 - 0.5 * 0.2) * w0 - 0.5 * plain.layers[0].weight.grad, rtol=1e-12)


def test_train_step_enforces_max_norm(rng):
    net = small_net(max_norm=0.3)
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    W = net.layers[0].weight.data
    assert np.any(np.linalg.norm(W, axis=0) > 0.3)  # the initial weights violate it
    net.train_step(X, y, fastnn.SGD(net.parameters(), lr=1.0))
    for layer in (net.layers[0], net.layers[3]):
        norms = np.linalg.norm(layer.weight.data, axis=0)
        assert np.all(norms <= 0.3 * (1 + 1e-12))
        assert np.any(norms > 0.3 * (1 - 1e-12))  # rescaled onto the ball, not shrunk further


def test_apply_constraints_is_public_and_layerwise(rng):
    net = Sequential([Dense(5, 4, rng=0, max_norm=0.1, dtype=np.float64),
                      Dense(4, 2, rng=0, dtype=np.float64)])
    second = net.layers[1].weight.data.copy()
    expected = ref.max_norm_constraint(net.layers[0].weight.data, 0.1)
    net.apply_constraints()
    np.testing.assert_allclose(net.layers[0].weight.data, expected, rtol=1e-12)
    np.testing.assert_array_equal(net.layers[1].weight.data, second)


def test_config_round_trip():
    net = fastnn.mlp([5, 7, 3], l2=0.01, l1=0.002, max_norm=3.0, rng=0)
    config = net.get_config()
    assert (config["l2"], config["l1"]) == (0.01, 0.002)
    assert all(spec["config"]["max_norm"] == 3.0 for spec in config["layers"]
               if spec["class"] == "Dense")
    clone = Sequential.from_config(config)
    assert (clone.l2, clone.l1) == (0.01, 0.002)
    assert clone.get_config() == config
    assert net.astype(np.float64).get_config()["l2"] == 0.01
    biased = Sequential.from_config(Sequential([Dense(3, 2, regularize_bias=True)]).get_config())
    assert biased.layers[0].bias.regularize
    plain = Sequential([Dense(3, 2)]).get_config()  # unset options leave configs as they were
    assert "l2" not in plain and "l1" not in plain
    assert set(plain["layers"][0]["config"]) == {"in_features", "out_features", "bias", "init", "dtype"}


@pytest.mark.parametrize("kwargs, match", [
    ({"l2": -0.1}, "l2"), ({"l1": float("nan")}, "l1"), ({"l2": "0.1"}, "l2")])
def test_invalid_coefficients(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Sequential([Dense(3, 2)], **kwargs)


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf")])
def test_invalid_max_norm(value):
    with pytest.raises(ValueError, match="max_norm"):
        Dense(3, 2, max_norm=value)


# -- mlp options -----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm, expected", [
    (False, ["Dense", "Activation", "Dropout", "Dense", "Activation", "Dropout", "Dense"]),
    (True, ["Dense", "BatchNorm", "Activation", "Dropout", "Dense", "BatchNorm", "Activation",
            "Dropout", "Dense"]),
    ("after", ["Dense", "Activation", "BatchNorm", "Dropout", "Dense", "Activation", "BatchNorm",
               "Dropout", "Dense"]),
])
def test_mlp_layout(batch_norm, expected):
    net = fastnn.mlp([5, 6, 4, 3], batch_norm=batch_norm, dropout=0.2, l2=0.1, l1=0.01,
                     max_norm=2.0, rng=0, dtype=np.float64)
    assert [type(layer).__name__ for layer in net.layers] == expected
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    # Before the activation, batch norm's β replaces the hidden layers' biases.
    assert [layer.bias is None for layer in dense] == [batch_norm is True] * 2 + [False]
    assert all(layer.max_norm == 2.0 for layer in dense)
    assert all(layer.dtype == np.float64 for layer in net.layers if isinstance(layer, BatchNorm))
    assert (net.l2, net.l1) == (0.1, 0.01)
    assert all(layer.p == 0.2 for layer in net.layers if isinstance(layer, fastnn.Dropout))


def test_mlp_defaults_add_nothing():
    net = fastnn.mlp([5, 6, 3], rng=0)
    assert [type(layer).__name__ for layer in net.layers] == ["Dense", "Activation", "Dense"]
    assert (net.l2, net.l1) == (0.0, 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_norm": "middle"}, "batch_norm"), ({"dropout": 1.0}, "dropout"),
    ({"max_norm": -1.0}, "max_norm"), ({"l2": -1.0}, "l2")])
def test_mlp_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastnn.mlp([5, 6, 3], **kwargs)

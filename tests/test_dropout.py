"""Dropout: the in-kernel generator against a NumPy reference, mask statistics, modes, gradients."""
import math

import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import layout
from fastnn import Dense, Dropout, Sequential, gradcheck
from fastnn_c import dropout as _dropout


# -- the reference generator -----------------------------------------------------------------
def test_reference_is_a_splitmix64_stream():
    # The kernel's draws for one call are the SplitMix64 sequence started at `base`.
    with np.errstate(over="ignore"):
        base = ref.mix64(ref.mix64(ref.U64(42) + ref.PHI) + ref.U64(3) * ref.PHI)
        z = ref.mix64(base + np.arange(1, 6, dtype=ref.U64) * ref.PHI)
    np.testing.assert_array_equal(z, ref.splitmix64_stream(base, 5))
    # Known first output of splitmix64 seeded with 0 (Vigna's reference implementation).
    assert int(ref.splitmix64_stream(0, 1)[0]) == 0xE220A8397B1DCDAF


# -- kernels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 1000, 70001])  # 70001 > one chunk: the threaded path
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernel_matches_reference(n, p, n_threads, dtype, rng):
    X = rng.standard_normal(n).astype(dtype)
    Y, mask = np.empty_like(X), np.empty(n, dtype=np.uint8)
    _dropout.dropout_forward(X, Y, mask, p, 2 ** 63 + 12345, 17, n_threads)
    expected = ref.dropout_mask(n, p, 2 ** 63 + 12345, 17)
    np.testing.assert_array_equal(mask.astype(bool), expected)
    np.testing.assert_array_equal(Y, X * np.where(expected, dtype(1 / (1 - p)), dtype(0)))
    dY = rng.standard_normal(n).astype(dtype)
    dX = np.empty_like(dY)
    _dropout.dropout_apply(dY, mask, dX, p, n_threads)
    np.testing.assert_array_equal(dX, dY * np.where(expected, dtype(1 / (1 - p)), dtype(0)))


def test_kernels_check_arguments():
    X = np.ones(5)
    with pytest.raises(ValueError, match=r"dropout_forward: Y has shape \(4,\), expected \(5,\)"):
        _dropout.dropout_forward(X, np.empty(4), np.empty(5, np.uint8), 0.5, 1, 0)
    with pytest.raises(ValueError, match=r"dropout_apply: mask has shape \(4,\), expected \(5,\)"):
        _dropout.dropout_apply(X, np.empty(4, np.uint8), np.empty(5), 0.5)
    for p in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="p must be"):
            _dropout.dropout_forward(X, np.empty(5), np.empty(5, np.uint8), p, 1, 0)


# -- layer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_rate_and_expectation(p, rng):
    X = rng.uniform(0.5, 1.5, (400, 500))
    layer = Dropout(p, rng=0)
    Y = layer.forward(X)
    kept = Y != 0
    n = X.size
    assert abs(kept.mean() - (1 - p)) < 6 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(Y[kept], X[kept] / (1 - p), rtol=1e-15)
    # E[Y] = X: the mean of Y / X is 1 within 6 standard errors (Var = p/(1 − p) per element).
    assert abs((Y / X).mean() - 1) < 6 * math.sqrt(p / (1 - p) / n)
    # Units are dropped independently: no correlation between neighbours.
    assert abs(np.corrcoef(kept[:, :-1].ravel(), kept[:, 1:].ravel())[0, 1]) < 6 / math.sqrt(n)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (5, 3), (64, 101)], ids=str)
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
def test_layer_matches_reference_and_advances(shape, kind, dtype, rng):
    X = rng.standard_normal(shape).astype(dtype)
    layer = Dropout(0.3, rng=5)
    seed = int(layer.state_dict()["seed"][0])
    for counter in range(3):
        Y = layer.forward(layout(X, kind))
        expected = ref.dropout_mask(X.size, 0.3, seed, counter).reshape(shape)
        assert Y.dtype == dtype
        np.testing.assert_array_equal(Y, X * np.where(expected, dtype(1 / 0.7), dtype(0)))
        assert int(layer.state_dict()["counter"][0]) == counter + 1


def test_eval_mode_and_p_zero_are_identity(rng):
    X = rng.standard_normal((8, 5))
    layer = Dropout(0.5, rng=0).eval()
    np.testing.assert_array_equal(layer.forward(X), X)
    dY = rng.standard_normal((8, 5))
    np.testing.assert_array_equal(layer.backward(dY), dY)
    assert int(layer.state_dict()["counter"][0]) == 0  # no randomness drawn
    zero = Dropout(0.0, rng=0)
    np.testing.assert_array_equal(zero.forward(X), X)
    np.testing.assert_array_equal(zero.backward(dY), dY)


def test_backward_reuses_the_forward_mask(dtype, rng):
    X = rng.standard_normal((20, 30)).astype(dtype)
    dY = rng.standard_normal((20, 30)).astype(dtype)
    layer = Dropout(0.4, rng=1)
    Y = layer.forward(X).copy()
    dX = layer.backward(dY)
    np.testing.assert_array_equal(dX != 0, Y != 0)
    np.testing.assert_array_equal(dX[Y != 0], dY[Y != 0] * dtype(1 / 0.6))


def test_same_seed_same_masks_different_seeds_differ(rng):
    X = np.ones((50, 40))
    a, b, c = Dropout(0.5, rng=7), Dropout(0.5, rng=np.random.default_rng(7)), Dropout(0.5, rng=8)
    for _ in range(3):
        ya = a.forward(X).copy()
        np.testing.assert_array_equal(ya, b.forward(X))
        assert not np.array_equal(ya, c.forward(X))
    assert not np.array_equal(ya, Dropout(0.5, rng=7).forward(X))  # successive calls differ


def test_state_dict_resumes_the_same_masks():
    X = np.ones((10, 10))
    layer = Dropout(0.5, rng=3)
    layer.forward(X)
    state = layer.state_dict()
    assert state["seed"].dtype == np.uint64 and state["counter"].shape == (1,)
    expected = [layer.forward(X).copy() for _ in range(3)]
    other = Dropout(0.5, rng=99)
    other.load_state_dict(state)
    for y in expected:
        np.testing.assert_array_equal(other.forward(X), y)


def test_frozen_randomness_reuses_one_mask(rng):
    X = rng.standard_normal((6, 7))
    layer = Dropout(0.5, rng=0)
    with layer.frozen_randomness():
        first = layer.forward(X).copy()
        counter = int(layer.state_dict()["counter"][0])
        second = layer.forward(2 * X)
        np.testing.assert_array_equal(second, 2 * first)
        assert int(layer.state_dict()["counter"][0]) == counter
    assert not np.array_equal(layer.forward(X), first)  # fresh masks again afterwards


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_gradcheck_layer_with_mask_held_fixed(p, rng):
    result = gradcheck(Dropout(p, rng=0), rng.standard_normal((7, 9)), check_input=True)
    assert result.passed, str(result)
    assert result.checks[0].n_checked == 63


def test_gradcheck_network_with_dropout(rng):
    net = fastnn.mlp([5, 9, 8, 3], activation="tanh", dropout=0.3, rng=0, dtype=np.float64)
    assert sum(isinstance(layer, Dropout) for layer in net.layers) == 2
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    before = net.state_dict()
    result = gradcheck(net, X, y, check_input=True)
    assert result.passed, str(result)
    for key, value in net.state_dict().items():  # gradcheck restores the generator state
        np.testing.assert_array_equal(value, before[key])


def test_training_is_reproducible_after_save_and_load(rng):
    X, y = rng.standard_normal((32, 6)), rng.integers(0, 3, 32)

    def run(net, steps):
        opt = fastnn.SGD(net.parameters(), lr=0.1)
        return [net.train_step(X, y, opt) for _ in range(steps)]

    net = fastnn.mlp([6, 10, 3], dropout=0.5, rng=1, dtype=np.float64)
    run(net, 3)
    clone = Sequential.from_config(net.get_config())
    clone.load_state_dict(net.state_dict())
    assert run(clone, 4) == run(net, 4)


def test_predict_and_evaluate_run_without_dropout(rng):
    net = Sequential([Dense(4, 3, rng=0, dtype=np.float64), Dropout(0.5, rng=0)])
    X = rng.standard_normal((10, 4))
    np.testing.assert_array_equal(net.predict_proba(X), net.predict_proba(X))
    assert net.training and net.layers[1].training  # the mode is restored
    net.eval()
    expected = net.forward(X)
    net.train()
    np.testing.assert_allclose(net.predict_proba(X).sum(axis=1), 1)
    np.testing.assert_array_equal(net.predict(X), expected.argmax(axis=1))


@pytest.mark.parametrize("p", [1.0, -0.5, float("nan"), "0.5", True])
def test_invalid_p(p):
    with pytest.raises(ValueError, match="p must be"):
        Dropout(p)


def test_config():
    layer = Dropout(0.25, rng=0)
    assert layer.get_config() == {"p": 0.25}
    assert repr(layer) == "Dropout(p=0.25)"
    assert fastnn.layers.LAYERS["Dropout"] is Dropout
    assert Dropout.stochastic and not Dense.stochastic

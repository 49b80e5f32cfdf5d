"""Property-based tests (hypothesis) for batch norm, dropout, regularization and optimizers.

Random shapes (including 1 in every dimension), dtypes and values, including ±inf, NaN,
denormals and large magnitudes: a result equal to the NumPy reference, or a clean
ValueError/TypeError. Never a crash, never silent garbage.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastnn
import reference as ref
from fastnn import optimizers
from test_properties import FLOAT_DTYPES, matrices

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(X=matrices(rows=st.integers(0, 9), cols=st.integers(1, 9)), seed=st.integers(0, 2**32 - 1),
       training=st.booleans())
def test_batch_norm(X, seed, training):
    n, d = X.shape
    layer = fastnn.BatchNorm(d, dtype=X.dtype)
    layer.train(training)
    if n == 0 or (training and n < 2):
        with pytest.raises(ValueError):
            layer.forward(X)
        return
    Y = layer.forward(X)
    dY = np.random.default_rng(seed).standard_normal(X.shape).astype(X.dtype)
    dX = layer.backward(dY)
    finite_columns = np.all(np.isfinite(X), axis=0)
    # a non-finite entry makes its column's statistics non-finite (in training) and never
    # leaks into other columns
    if training:
        assert not np.isfinite(Y[:, ~finite_columns]).all(axis=0).any()
    Xf = X[:, finite_columns].astype(np.float64)
    assume(Xf.size and np.all(np.abs(Xf) < 1e6))
    gamma, beta = layer.gamma.data[finite_columns], layer.beta.data[finite_columns]
    if training:
        expected, _ = ref.batchnorm_forward(Xf, gamma, beta, layer.eps)
        expected_dX, _, _ = ref.batchnorm_backward_train(Xf, gamma, dY[:, finite_columns], layer.eps)
    else:
        expected, _ = ref.batchnorm_forward(Xf, gamma, beta, layer.eps, np.zeros(Xf.shape[1]),
                                        np.ones(Xf.shape[1]))
        expected_dX = dY[:, finite_columns] * gamma / np.sqrt(1 + layer.eps)
    tol = 2e-3 if X.dtype == np.float32 else 1e-7
    spread = Xf.std(axis=0)
    assume(not training or np.all((spread == 0) | (spread > 1e-3 * (np.abs(Xf).max(axis=0) + 1e-30))))
    np.testing.assert_allclose(Y[:, finite_columns], expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(dX[:, finite_columns], expected_dX, rtol=tol, atol=tol * 10)


@SETTINGS
@given(X=matrices(rows=st.integers(0, 9), cols=st.integers(1, 40)), p=st.floats(0, 0.95),
       seed=st.integers(0, 2**32 - 1))
def test_dropout(X, p, seed):
    layer = fastnn.Dropout(p, rng=seed)
    if X.shape[0] == 0:
        with pytest.raises(ValueError):
            layer.forward(X)
        return
    Y = layer.forward(X)
    if p == 0:
        np.testing.assert_array_equal(Y, X)
        return
    scale = X.dtype.type(1 / (1 - p))
    mask = layer._mask.astype(bool)
    with np.errstate(all="ignore"):  # like torch, a dropped inf or NaN gives inf·0 = NaN
        np.testing.assert_array_equal(Y, np.where(mask, X * scale, X * 0))
    dX = layer.backward(np.ones_like(X))
    np.testing.assert_array_equal(dX, np.where(mask, scale, 0).astype(X.dtype))
    layer.eval()
    np.testing.assert_array_equal(layer.forward(X), X)


@SETTINGS
@given(W=matrices(rows=st.integers(1, 6), cols=st.integers(1, 6), finite=True),
       l2=st.floats(0, 10), l1=st.floats(0, 10), seed=st.integers(0, 2**32 - 1))
def test_regularized_loss_and_gradient(W, l2, l1, seed):
    n_in, n_out = W.shape
    assume(np.all(np.abs(W) < 1e6))
    net = fastnn.Sequential([fastnn.Dense(n_in, n_out, dtype=W.dtype)], loss="mse", l2=l2, l1=l1)
    net.layers[0].weight.copy_(W)
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((3, n_in)), rng.standard_normal((3, n_out))
    value = net.loss(X, y)
    net.backward()
    Wd = W.astype(np.float64)
    data_loss = net.loss_fn.value(net.forward(X), y)
    penalty = 0.5 * l2 * np.sum(Wd * Wd) + l1 * np.sum(np.abs(Wd))
    tol = 1e-4 if W.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(value, data_loss + penalty, rtol=tol, atol=tol)
    layer = net.layers[0]
    unregularized = fastnn.Sequential([layer], loss="mse")
    unregularized.loss(X, y)
    unregularized.backward()
    data_grad = layer.weight.grad.astype(np.float64)
    net.loss(X, y)
    net.backward()
    np.testing.assert_allclose(layer.weight.grad, data_grad + l2 * Wd + l1 * np.sign(Wd),
                               rtol=tol, atol=tol * (1 + l2 * np.abs(Wd).max()))


@SETTINGS
@given(name=st.sampled_from(["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]),
       shape=st.sampled_from([(1,), (7,), (3, 5), (1, 1)]), dtype=FLOAT_DTYPES,
       seed=st.integers(0, 2**32 - 1), special=st.sampled_from([None, np.nan, np.inf, 1e-40, 1e30]),
       clip_value=st.sampled_from([None, 0.5]), weight_decay=st.sampled_from([0.0, 0.1]))
def test_optimizer_updates(name, shape, dtype, seed, special, clip_value, weight_decay):
    rng = np.random.default_rng(seed)
    lr = 0.01
    param = fastnn.Parameter(rng.standard_normal(shape).astype(dtype), "weight")
    reference_param = fastnn.Parameter(param.data.copy(), "weight")  # same dtype: same overflows
    opt = optimizers.get(name, [param], lr=lr, clip_value=clip_value, weight_decay=weight_decay)
    reference = ref.Optimizer(name, lr, clip_value=clip_value, weight_decay=weight_decay,
                          momentum=getattr(opt, "momentum", 0.9), eps=getattr(opt, "eps", None))
    for _ in range(3):
        grad = rng.standard_normal(shape)
        if special is not None:
            grad.flat[0] = special
        param.grad[...] = grad
        reference_param.grad = grad.astype(dtype)
        opt.step()
        with np.errstate(all="ignore"):
            reference.step([reference_param])
    expected = reference_param.data
    got = param.data.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got[finite], expected[finite], rtol=tol, atol=tol)


@SETTINGS
@given(A=matrices(rows=st.integers(1, 9), cols=st.integers(1, 9)),
       bounds=st.sampled_from([(0.01, 0.99), (-0.99, 0.99), (-1.0, 1.0), (-np.inf, np.inf)]))
def test_diagnostics_activation_stats(A, bounds):
    """The monitor's compiled column pass against NumPy (mean, variance, zeros, saturation)."""
    from fastnn_c import diagnostics as _diag

    n, m = A.shape
    lower, upper = bounds
    mean, var, zeros = np.empty(m), np.empty(m), np.empty(m, dtype=np.intp)
    if not A.flags.c_contiguous:  # kernels take C-contiguous input and say so cleanly
        with pytest.raises(ValueError, match="contiguous"):
            _diag.activation_stats(A, lower, upper, mean, var, zeros)
        A = np.ascontiguousarray(A)
    saturated = _diag.activation_stats(A, lower, upper, mean, var, zeros)
    with np.errstate(all="ignore"):
        expected_mean, expected_var, expected_zeros, expected_saturated = ref.activation_stats(
            A, lower, upper)
    np.testing.assert_array_equal(zeros, expected_zeros)
    np.testing.assert_array_equal(np.isfinite(mean), np.isfinite(expected_mean))
    ok = (np.isfinite(expected_mean) & np.isfinite(expected_var)
          & (np.abs(A.astype(np.float64)).max(axis=0) < 1e6))
    np.testing.assert_allclose(mean[ok], expected_mean[ok], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(var[ok], expected_var[ok], rtol=1e-6, atol=1e-9)
    counted = np.isfinite(lower) or np.isfinite(upper)  # ±inf bounds: saturation not counted
    assert saturated == (expected_saturated if counted else 0)


@SETTINGS
@given(a=matrices(rows=st.integers(1, 5), cols=st.integers(1, 9), non_contiguous=st.just(False)))
def test_diagnostics_sum_squares(a):
    from fastnn_c import diagnostics as _diag

    copy = np.empty_like(a)  # any shape: read as one run of values
    with np.errstate(all="ignore"):
        expected = ref.sum_squares(a)
        got = _diag.copy_sum_squares(a, copy)
        np.testing.assert_array_equal(copy, a)
        assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected, rel=1e-12)
        other = np.flip(a).copy()
        expected_diff = ref.sum_squares(a, other)
        got_diff = _diag.diff_sum_squares(a, other)
        assert (np.isnan(got_diff) and np.isnan(expected_diff)) or \
            got_diff == pytest.approx(expected_diff, rel=1e-12)

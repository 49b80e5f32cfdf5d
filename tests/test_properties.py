"""Property-based tests (hypothesis): random shapes, dtypes, layouts and values through the public API.

Every case either matches the NumPy reference or raises a clean ValueError/TypeError: never a
crash, never silent garbage. Shapes include 0 and 1 in every dimension; values include ±inf,
NaN, denormals and huge magnitudes.
"""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
import reference as ref
from fastnn import losses
from fastnn.datasets import IDXError, read_idx
from fastnn.layers import ACTIVATIONS, Activation

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
FLOAT_DTYPES = st.sampled_from([np.float32, np.float64])
# Input dtypes the boundary must handle: floats, ints and bools are converted, complex refused.
ANY_DTYPE = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.bool_,
                             np.complex64])


def _values(dtype, finite=False):
    """Floats that stress kernels: ±inf, NaN, denormals, huge (but overflow-safe) magnitudes."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return hnp.from_dtype(dtype)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    huge = min(1e15, float(np.finfo(dtype).max) / 2)  # float16 tops out at 65504
    specials = st.sampled_from([0.0, -0.0, tiny, -tiny, huge, -huge, 1.0, -1.0])
    ordinary = st.floats(-1e3, 1e3, width=8 * dtype.itemsize)
    if finite:
        return st.one_of(ordinary, specials)
    return st.one_of(ordinary, specials, st.sampled_from([np.inf, -np.inf, np.nan]))


@st.composite
def matrices(draw, dtype=None, rows=st.integers(0, 9), cols=st.integers(0, 9), finite=False,
             non_contiguous=st.booleans()):
    dtype = draw(dtype) if dtype is not None else draw(FLOAT_DTYPES)
    shape = (draw(rows), draw(cols))
    array = draw(hnp.arrays(dtype, shape, elements=_values(dtype, finite)))
    if draw(non_contiguous) and shape[0] > 1:
        array = np.asfortranarray(array) if draw(st.booleans()) else np.repeat(array, 2, axis=0)[::2]
    return array


def _close_where_finite(got, expected, dtype, scale):
    """Equal non-finite pattern, and finite entries within rounding of the float64 reference."""
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    finite = np.isfinite(expected)
    eps = np.finfo(dtype).eps
    underflow = 1024 * np.finfo(dtype).smallest_normal  # products of denormals flush towards 0
    np.testing.assert_array_less(np.abs(got[finite] - expected[finite]),
                                 64 * eps * scale[finite] + underflow)


@PROPERTY_SETTINGS
@given(X=matrices(dtype=ANY_DTYPE), out_features=st.integers(1, 5), dtype=FLOAT_DTYPES,
       seed=st.integers(0, 2**32 - 1))
def test_dense_forward_backward(X, out_features, dtype, seed):
    in_features = X.shape[1]
    if in_features == 0:
        with pytest.raises(ValueError, match="in_features"):
            fastnn.Dense(in_features, out_features)
        return
    layer = fastnn.Dense(in_features, out_features, rng=seed, dtype=dtype)
    if X.dtype.kind == "c":
        with pytest.raises(TypeError, match="real numbers"):
            layer.forward(X)
        return
    if X.shape[0] == 0:
        with pytest.raises(ValueError, match="empty batch"):
            layer.forward(X)
        return
    Xc = X.astype(dtype).astype(np.float64)
    W, b = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    Y = layer.forward(X)
    assert Y.dtype == dtype and Y.shape == (X.shape[0], out_features)
    with np.errstate(all="ignore"):
        expected = Xc @ W + b
        scale = np.abs(Xc) @ np.abs(W) + np.abs(b)
    _close_where_finite(Y, expected, dtype, scale)

    dY = np.random.default_rng(seed).standard_normal(Y.shape).astype(dtype)
    dX = layer.backward(dY)
    with np.errstate(all="ignore"):
        _close_where_finite(dX, dY.astype(np.float64) @ W.T, dtype, np.abs(dY) @ np.abs(W.T))
        _close_where_finite(layer.weight.grad, Xc.T @ dY, dtype, np.abs(Xc.T) @ np.abs(dY))


@PROPERTY_SETTINGS
@given(Z=matrices(), name=st.sampled_from(ACTIVATIONS))
def test_activations(Z, name):
    layer = Activation(name)
    if Z.shape[0] == 0:
        with pytest.raises(ValueError, match="empty batch"):
            layer.forward(Z)
        return
    dtype = Z.dtype.type
    A = layer.forward(Z)
    expected, derivative = ref.activation(name, Z.astype(np.float64))
    expected = expected.astype(dtype)  # overflow of huge inputs in float32 is expected behaviour
    assert A.shape == Z.shape and A.dtype == Z.dtype
    np.testing.assert_array_equal(np.isnan(A), np.isnan(expected))
    ok = np.isfinite(expected)
    np.testing.assert_allclose(A[ok], expected[ok], rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-30)
    np.testing.assert_array_equal(A[np.isinf(expected)], expected[np.isinf(expected)])
    dA = np.ones_like(Z)
    dZ = layer.backward(dA)
    assert dZ.shape == Z.shape and not np.isnan(dZ[np.isfinite(Z)]).any()


@PROPERTY_SETTINGS
@given(z=matrices(rows=st.integers(0, 8), cols=st.integers(0, 6)), name=st.sampled_from(list(losses.LOSSES)),
       seed=st.integers(0, 2**32 - 1), bad_labels=st.booleans())
def test_losses(z, name, seed, bad_labels):
    loss = losses.get(name)
    n, k = z.shape
    rng = np.random.default_rng(seed)
    if loss.target_kind == "labels":
        y = rng.integers(0, max(k, 1), n)
        if bad_labels and n:
            y[rng.integers(n)] = k + rng.integers(0, 3)
    else:
        y = rng.uniform(0, 1, z.shape)
    if n == 0 or k == 0 or (loss.target_kind == "labels" and bad_labels):
        with pytest.raises(ValueError):
            loss.forward(z, y)
        return
    value = loss.forward(z, y)
    grad = loss.backward()
    expected_value, expected_grad = {"softmax_cross_entropy": ref.softmax_cross_entropy, "mse": ref.mse,
                                     "hinge": ref.hinge, "binary_cross_entropy": ref.binary_cross_entropy,
                                     "poisson": ref.poisson}[name](z, y)
    assume(np.all(np.isfinite(z)))  # non-finite logits: only "no crash" is asserted above
    rtol = 1e-4 if z.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(value, expected_value, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=rtol / z.size)


@PROPERTY_SETTINGS
@given(payload=st.binary(max_size=64), gzipped=st.booleans())
def test_idx_reader_on_arbitrary_bytes(tmp_path_factory, payload, gzipped):
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(gzip.compress(payload) if gzipped else payload)
    try:
        array = read_idx(path)
    except IDXError:
        return
    header = 4 + 4 * payload[3]
    assert array.size * array.dtype.itemsize == len(payload) - header


@PROPERTY_SETTINGS
@given(shape=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), data=st.binary(max_size=32),
       flip=st.integers(0, 300))
def test_idx_reader_on_hostile_headers(tmp_path_factory, shape, data, flip):
    """Absurd dimensions never allocate: the declared size is checked against the bytes present."""
    payload = bytearray(bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + data)
    if flip < len(payload) * 8:
        payload[flip // 8] ^= 1 << (flip % 8)
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(bytes(payload))
    try:
        array = read_idx(path)
    except IDXError:
        return
    assert array.nbytes <= len(payload)

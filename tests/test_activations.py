"""Activation kernels against the textbook formulas, overflow safety, NaN propagation, gradchecks."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL, layout
from fastnn.layers import ACTIVATIONS, Activation
from fastnn_c import activations as _act

ALPHAS = {"leaky_relu": [0.01, 0.3], "elu": [1.0, 0.5]}
CASES = [(name, alpha) for name in ACTIVATIONS for alpha in ALPHAS.get(name, [None])]


def _ids(case):
    return case[0] if case[1] is None else f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (64, 784), (257, 1)], ids=str)
def test_forward_backward_match_reference(dtype, rng, case, shape):
    name, alpha = case
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    layer = Activation(name, alpha)
    expected, derivative = ref.activation(name, Z.astype(np.float64), alpha)
    A = layer.forward(Z)
    np.testing.assert_allclose(A, expected, rtol=RTOL[dtype] * 4, atol=ATOL[dtype] * 4)
    dZ = layer.backward(dA)
    # derivatives are computed from the output A, so in float32 they inherit A's rounding
    np.testing.assert_allclose(dZ, dA * derivative, rtol=RTOL[dtype] * 20, atol=ATOL[dtype] * 20)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_reference_derivative_from_output_is_the_textbook_one(rng, case):
    """The output-based derivative other tests use as a reference (test_dense.py) against the
    textbook one in terms of z."""
    name, alpha = case
    Z = rng.uniform(-4, 4, 1000)
    Z[np.abs(Z) < 1e-3] = 0.5           # away from the kinks, as in test_gradcheck
    Z[np.abs(np.abs(Z) - 1) < 1e-3] = 0.5
    A, derivative = ref.activation(name, Z, alpha)
    np.testing.assert_allclose(ref.activation_derivative_from_output(name, A, alpha), derivative,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_gradcheck(rng, case):
    name, alpha = case
    Z = rng.uniform(-3, 3, size=(6, 5))
    Z[np.abs(Z) < 1e-3] = 0.5           # keep away from the kinks of ReLU-like functions
    Z[np.abs(np.abs(Z) - 1) < 1e-3] = 0.5  # and of hardtanh
    result = fastnn.gradcheck(Activation(name, alpha), Z, check_input=True)
    assert result.passed, str(result)


@pytest.mark.parametrize("name,limit", [("sigmoid", 800.0), ("softplus", 800.0)])
def test_no_overflow_at_extremes(dtype, name, limit):
    Z = np.array([[-limit, -100.0, -89.0, 0.0, 89.0, 100.0, limit]], dtype=dtype)
    with np.errstate(all="raise"):
        A = Activation(name).forward(Z)
    assert np.all(np.isfinite(A))
    if name == "sigmoid":
        assert A[0, 0] == 0 and A[0, -1] == 1 and A[0, 3] == 0.5
    else:
        assert A[0, -1] == dtype(limit) and A[0, 0] == 0


def test_nan_propagates_and_inf_is_handled(dtype):
    Z = np.array([[np.nan, np.inf, -np.inf]], dtype=dtype)
    for name in ACTIVATIONS:
        A = Activation(name).forward(Z)
        assert np.isnan(A[0, 0]), name
    assert list(Activation("sigmoid").forward(Z)[0, 1:]) == [1, 0]
    assert list(Activation("tanh").forward(Z)[0, 1:]) == [1, -1]
    assert list(Activation("relu").forward(Z)[0, 1:]) == [np.inf, 0]


@pytest.mark.parametrize("kind", ["F", "strided"])
def test_non_contiguous_input_is_copied(rng, kind):
    Z = rng.standard_normal((5, 4))
    A = Activation("tanh").forward(layout(Z, kind))
    np.testing.assert_allclose(A, np.tanh(Z), rtol=1e-14)


def test_threaded_path_matches_serial(rng):
    Z = rng.standard_normal(300_001)
    serial, threaded = np.empty_like(Z), np.empty_like(Z)
    for name, code in _act.KINDS.items():
        _act.activation_forward(code, Z, serial, 0.1, 1)
        _act.activation_forward(code, Z, threaded, 0.1, 2)
        np.testing.assert_array_equal(serial, threaded, err_msg=name)
        grad_serial, grad_threaded = np.empty_like(Z), np.empty_like(Z)
        _act.activation_backward(code, serial, Z, grad_serial, 0.1, 1)
        _act.activation_backward(code, serial, Z, grad_threaded, 0.1, 2)
        np.testing.assert_array_equal(grad_serial, grad_threaded, err_msg=name)


def test_forward_may_run_in_place(rng):
    Z = rng.standard_normal(1000)
    expected = np.tanh(Z)
    _act.activation_forward(_act.KINDS["tanh"], Z, Z, 0.0, 1)
    np.testing.assert_allclose(Z, expected, rtol=1e-14)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Activation("swish")
    with pytest.raises(ValueError, match="takes no alpha"):
        Activation("relu", alpha=0.1)
    with pytest.raises(ValueError, match="elu needs alpha > 0"):
        fastnn.ELU(alpha=0)
    with pytest.raises(ValueError, match=r"activation_forward: A has shape \(3,\), expected \(4,\)"):
        _act.activation_forward(0, np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="unknown activation code"):
        _act.activation_forward(99, np.ones(4), np.ones(4))
    with pytest.raises(RuntimeError, match="before forward"):
        fastnn.ReLU().backward(np.ones((2, 2)))
    layer = fastnn.ReLU()
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dY has shape \(2, 2\), expected \(2, 3\)"):
        layer.backward(np.ones((2, 2)))


def test_named_classes_round_trip_config():
    for cls in (fastnn.ReLU, fastnn.Sigmoid, fastnn.Tanh, fastnn.HardTanh, fastnn.Softsign,
                fastnn.Identity, fastnn.SELU, fastnn.Softplus):
        layer = cls()
        assert type(layer)(**layer.get_config()).name == layer.name
    assert fastnn.LeakyReLU(alpha=0.2).get_config() == {"alpha": 0.2}
    assert repr(fastnn.ELU(alpha=0.5)) == "ELU(alpha=0.5)"


@pytest.mark.parametrize("name,low,high,max_ulp", [
    ("sigmoid", -87.0, 100.0, 3),     # below -87 the result is subnormal (absolute error only)
    ("elu", -30.0, 0.0, 2),           # expm1: relative accuracy down to tiny |z|
    ("softplus", -80.0, 80.0, 3),
    ("tanh", -10.0, 10.0, 3),
])
def test_float32_transcendentals_are_accurate_to_a_few_ulp(name, low, high, max_ulp):
    """The inline float32 exp/expm1/log1p (fastnn_c/_vecmath.h) over a dense sweep, in ulps."""
    Z = np.concatenate([np.linspace(low, high, 400_001, dtype=np.float32),
                        np.float32(1e-3) * np.linspace(-1, 1, 20_001, dtype=np.float32)])
    Z = Z[(Z >= low) & (Z <= high)]
    A = Activation(name, 1.0 if name == "elu" else None).forward(Z[None, :])[0]
    expected, _ = ref.activation(name, Z.astype(np.float64)[None, :], 1.0 if name == "elu" else None)
    expected = expected[0]
    ulp = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(A - expected) / ulp) <= max_ulp


def test_float32_tanh_at_interval_edges_special_values_and_tails():
    """The AVX-512 tanh switches polynomial at 1/16 2^k and 1.5/16 2^k and clamps at 9.5: check
    a few ulps either side of each, the special values, and every tail length of a 16-lane
    vector, in place and not."""
    edges = (np.float32([1, 1.5])[:, None] * np.float32(2.0) ** np.arange(-4, 4)).ravel()
    edges = np.append(edges, np.float32(9.5)).astype(np.float32)
    around = (edges.view(np.int32)[:, None] + np.arange(-8, 9, dtype=np.int32)).view(np.float32)
    around = around.ravel()
    Z = np.concatenate([around, -around])[None, :]
    expected = np.tanh(Z.astype(np.float64))
    ulp = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(Activation("tanh").forward(Z) - expected) / ulp) <= 3

    tiny = np.float32([1e-45, -1e-40, 1e-30])  # tanh(z) rounds to z
    special = np.array([[0.0, -0.0, *tiny, 9.6, 20.0, -1e30, np.inf, -np.inf, np.nan]],
                       dtype=np.float32)
    A = Activation("tanh").forward(special)
    np.testing.assert_array_equal(A, [[0.0, -0.0, *tiny, 1, 1, -1, 1, -1, np.nan]])
    assert list(np.signbit(A[0, :2])) == [False, True]

    Z = np.linspace(-3, 3, 33, dtype=np.float32)
    for n in range(1, 34):
        out = np.full(34, 7, dtype=np.float32)
        _act.activation_forward(_act.KINDS["tanh"], Z[:n], out[:n], 0.0, 1)
        np.testing.assert_allclose(out[:n], np.tanh(Z[:n]), rtol=4e-7, atol=0)
        assert out[n] == 7, "wrote past the end"
        in_place = Z[:n].copy()
        _act.activation_forward(_act.KINDS["tanh"], in_place, in_place, 0.0, 1)
        np.testing.assert_array_equal(in_place, out[:n])


def test_float32_exp_underflows_and_overflows_like_libm():
    Z = np.array([[-88.0, -100.0, -104.0, -1e4, 88.0, 88.8, 1e4]], dtype=np.float32)
    A = Activation("sigmoid").forward(Z)[0]
    assert A[0] > 0 and A[1] == 0 and A[4] == 1 and A[6] == 1    # 1 / (1 + inf) = 0
    np.testing.assert_allclose(A[0], 1 / (1 + np.exp(88.0)), rtol=1e-6)
    E = Activation("elu", 1.0).forward(Z)[0]
    assert list(E[1:4]) == [-1, -1, -1]

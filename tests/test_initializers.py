"""Initializers: empirical moments against their formulas, bounds, seeding, Dense wiring."""
import functools
import math

import numpy as np
import pytest

from fastnn import Dense, initializers

SHAPE = (300, 500)   # 150,000 draws: the sample variance is within ~1% at 6 standard errors
FAN_IN, FAN_OUT = SHAPE
N = SHAPE[0] * SHAPE[1]
TRUNCATED_VARIANCE = 0.77374  # variance of N(0, 1) truncated to [-2, 2]

# name -> (initializer, expected mean, expected variance, kurtosis of its distribution)
NORMAL, UNIFORM, TRUNC = 3.0, 1.8, 2.36
CASES = {
    "normal": (functools.partial(initializers.normal, std=0.3, mean=0.5), 0.5, 0.09, NORMAL),
    "uniform": (functools.partial(initializers.uniform, limit=0.2), 0.0, 0.04 / 3, UNIFORM),
    "truncated_normal": (functools.partial(initializers.truncated_normal, std=0.5), 0.0,
                         0.25 * TRUNCATED_VARIANCE, TRUNC),
    "nielsen": (initializers.nielsen, 0.0, 1 / FAN_IN, NORMAL),
    "nielsen_large": (initializers.nielsen_large, 0.0, 1.0, NORMAL),
    "lecun_normal": (initializers.lecun_normal, 0.0, 1 / FAN_IN, NORMAL),
    "lecun_uniform": (initializers.lecun_uniform, 0.0, 1 / FAN_IN, UNIFORM),
    "glorot_normal": (initializers.glorot_normal, 0.0, 2 / (FAN_IN + FAN_OUT), NORMAL),
    "glorot_uniform": (initializers.glorot_uniform, 0.0, 2 / (FAN_IN + FAN_OUT), UNIFORM),
    "glorot_standard": (initializers.glorot_standard, 0.0, 1 / (3 * FAN_IN), UNIFORM),
    "he_normal": (initializers.he_normal, 0.0, 2 / FAN_IN, NORMAL),
    "he_uniform": (initializers.he_uniform, 0.0, 2 / FAN_IN, UNIFORM),
    "vs_fan_out_normal": (functools.partial(initializers.variance_scaling, scale=3.0, mode="fan_out"),
                          0.0, 3 / FAN_OUT, NORMAL),
    "vs_fan_avg_truncated": (functools.partial(initializers.variance_scaling, scale=0.5,
                                               mode="fan_avg", distribution="truncated_normal"),
                             0.0, 0.5 / ((FAN_IN + FAN_OUT) / 2), TRUNC),
    "vs_fan_in_uniform": (functools.partial(initializers.variance_scaling, scale=2.0,
                                            mode="fan_in", distribution="uniform"),
                          0.0, 2 / FAN_IN, UNIFORM),
}


@pytest.mark.parametrize("name", list(CASES))
def test_mean_and_variance_match_formula(name, dtype):
    init, mean, variance, kurtosis = CASES[name]
    w = init(SHAPE, rng=7, dtype=dtype)
    assert w.shape == SHAPE and w.dtype == dtype and w.flags.c_contiguous
    w = w.astype(np.float64)
    # 6 standard errors: the mean's is σ/√N, the sample variance's is σ²√((κ − 1)/N).
    assert abs(w.mean() - mean) < 6 * math.sqrt(variance / N)
    assert abs(w.var() / variance - 1) < 6 * math.sqrt((kurtosis - 1) / N)


@pytest.mark.parametrize("name, limit", [
    ("uniform", 0.2),
    ("lecun_uniform", math.sqrt(3 / FAN_IN)),
    ("glorot_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("glorot_standard", 1 / math.sqrt(FAN_IN)),
    ("he_uniform", math.sqrt(6 / FAN_IN)),
])
def test_uniform_limits(name, limit):
    w = CASES[name][0](SHAPE, rng=3, dtype=np.float64)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit  # the whole interval is used


def test_truncated_normal_is_truncated_at_two_std():
    w = initializers.truncated_normal(SHAPE, rng=1, dtype=np.float64, std=0.5)
    assert np.abs(w).max() <= 1.0
    assert np.abs(w).max() > 0.99


def test_variance_scaling_truncated_is_truncated_at_two_of_its_own_std():
    w = initializers.variance_scaling(SHAPE, rng=1, dtype=np.float64, scale=1.0, mode="fan_in",
                                      distribution="truncated_normal")
    std = math.sqrt(1 / FAN_IN) / math.sqrt(TRUNCATED_VARIANCE)
    assert np.abs(w).max() <= 2 * std * (1 + 1e-12)


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain, dtype):
    w = initializers.orthogonal(shape, rng=0, dtype=dtype, gain=gain).astype(np.float64)
    assert w.shape == shape
    small = min(shape)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(small), atol=tol * gain ** 2)


def test_orthogonal_is_not_always_the_same_matrix():
    a = initializers.orthogonal((20, 20), rng=0)
    b = initializers.orthogonal((20, 20), rng=1)
    assert not np.allclose(a, b)


def test_zeros_and_constant(dtype):
    assert not initializers.zeros((3, 4), dtype=dtype).any()
    c = initializers.constant((3, 4), dtype=dtype, value=0.25)
    assert c.dtype == dtype and np.all(c == 0.25)


@pytest.mark.parametrize("name", sorted(initializers.INITIALIZERS))
def test_same_seed_same_weights(name):
    init = initializers.get(name)
    a = init((40, 30), rng=123)
    b = init((40, 30), rng=np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    if name not in ("zeros", "constant"):
        assert not np.array_equal(a, init((40, 30), rng=124))


def test_one_generator_advances():
    rng = np.random.default_rng(5)
    a = initializers.he_normal((10, 10), rng)
    b = initializers.he_normal((10, 10), rng)
    assert not np.array_equal(a, b)


def test_one_dimensional_shape_uses_its_length_as_both_fans():
    w = initializers.glorot_uniform((100000,), rng=0, dtype=np.float64)
    assert abs(w.var() * 100000 - 1) < 0.02


@pytest.mark.parametrize("call, match", [
    (lambda: initializers.get("he"), "unknown initializer 'he'"),
    (lambda: initializers.variance_scaling((3, 3), mode="fan_max"), "mode"),
    (lambda: initializers.variance_scaling((3, 3), distribution="cauchy"), "distribution"),
    (lambda: initializers.variance_scaling((3, 3), scale=0.0), "scale"),
    (lambda: initializers.normal((3, 3), std=-1.0), "std"),
    (lambda: initializers.uniform((3, 3), limit=-0.1), "limit"),
    (lambda: initializers.truncated_normal((3, 3), std=float("nan")), "std"),
    (lambda: initializers.he_normal((2, 3, 4)), "1-D or 2-D"),
    (lambda: initializers.orthogonal((5,)), "2-D"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_dtype_is_checked():
    with pytest.raises(TypeError, match="float32 or float64"):
        initializers.he_normal((3, 3), dtype=np.int32)


def test_get_binds_parameters():
    init = initializers.get("normal", std=0.01)
    assert abs(init((400, 400), rng=0, dtype=np.float64).std() - 0.01) < 1e-4


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "lecun_uniform", "orthogonal"])
def test_dense_uses_the_named_initializer(name):
    layer = Dense(30, 20, init=name, rng=9, dtype=np.float64)
    expected = initializers.get(name)((30, 20), np.random.default_rng(9), np.float64)
    np.testing.assert_array_equal(layer.weight.data, expected)
    assert not layer.bias.data.any()


def test_dense_nielsen_biases_are_standard_normal():
    layer = Dense(20, 20000, init="nielsen", rng=0, dtype=np.float64)
    assert abs(layer.bias.data.var() - 1) < 6 * math.sqrt(2 / 20000)
    assert abs(layer.weight.data.var() * 20 - 1) < 6 * math.sqrt(2 / layer.weight.data.size)


def test_default_for_activation():
    assert initializers.default_for_activation("relu") == "he_normal"
    assert initializers.default_for_activation("elu") == "he_normal"
    assert initializers.default_for_activation("selu") == "lecun_normal"
    assert initializers.default_for_activation("sigmoid") == "glorot_uniform"

"""Fused optimizer updates (fastnn_c.optim) vs the obvious in-place NumPy code.

    python -m pytest benchmarks/bench_optim.py --benchmark-enable -q

Each group holds one update rule on one size, fastnn beside NumPy: a 784x256 float32
weight (the first layer of the MNIST MLP, 200,704 entries) and a 1024x1024 one (~1M).
NumPy needs several passes and temporaries per rule; fastnn makes one pass.
"""
import math

import numpy as np
import pytest

from fastnn_c import optim as _optim

SHAPES = {"784x256": (784, 256), "1M": (1024, 1024)}
LR, MU, RHO, EPS, B1, B2 = 1e-3, 0.9, 0.99, 1e-8, 0.9, 0.999
STEP, K = LR / (1 - B1 ** 10), 1 / math.sqrt(1 - B2 ** 10)      # Adam's factors at t = 10


def _numpy_sgd(x, g, s1, s2):
    x -= LR * g


def _numpy_momentum(x, g, v, s2):
    v *= MU
    v -= LR * g
    x += v


def _numpy_nesterov(x, g, v, s2):
    v_prev = v.copy()
    v *= MU
    v -= LR * g
    x += -MU * v_prev + (1 + MU) * v


def _numpy_adagrad(x, g, cache, s2):
    cache += g * g
    x -= LR * g / (np.sqrt(cache) + EPS)


def _numpy_rmsprop(x, g, cache, s2):
    cache *= RHO
    cache += (1 - RHO) * g * g
    x -= LR * g / (np.sqrt(cache) + EPS)


def _numpy_adam(x, g, m, v):
    m *= B1
    m += (1 - B1) * g
    v *= B2
    v += (1 - B2) * g * g
    x -= STEP * m / (np.sqrt(v) * K + EPS)


def _numpy_grad_norm(x, g, s1, s2):
    return math.sqrt(np.dot(g.ravel(), g.ravel()))


NUMPY = {"sgd": _numpy_sgd, "momentum": _numpy_momentum, "nesterov": _numpy_nesterov,
         "adagrad": _numpy_adagrad, "rmsprop": _numpy_rmsprop, "adam": _numpy_adam,
         "grad_norm": _numpy_grad_norm}

FASTNN = {
    "sgd": lambda x, g, s1, s2: _optim.sgd_update(x, g, LR),
    "momentum": lambda x, g, s1, s2: _optim.momentum_update(x, g, s1, LR, MU),
    "nesterov": lambda x, g, s1, s2: _optim.momentum_update(x, g, s1, LR, MU, nesterov=True),
    "adagrad": lambda x, g, s1, s2: _optim.adagrad_update(x, g, s1, LR, EPS),
    "rmsprop": lambda x, g, s1, s2: _optim.rmsprop_update(x, g, s1, LR, RHO, EPS),
    "adam": lambda x, g, s1, s2: _optim.adam_update(x, g, s1, s2, STEP, B1, B2, EPS, K),
    "grad_norm": lambda x, g, s1, s2: math.sqrt(_optim.sum_squares(g)),
}


def _arrays(shape):
    """Parameter, gradient and two state arrays (non-negative: they may hold squares)."""
    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    s1, s2 = (np.abs(rng.standard_normal(shape, dtype=np.float32)) for _ in range(2))
    return x, g, s1, s2


@pytest.mark.parametrize("size", SHAPES)
@pytest.mark.parametrize("rule", list(NUMPY))
@pytest.mark.parametrize("impl", ["fastnn", "numpy"])
def test_update(benchmark, impl, rule, size):
    x, g, s1, s2 = _arrays(SHAPES[size])
    fn = FASTNN[rule] if impl == "fastnn" else NUMPY[rule]
    benchmark.group = f"{rule}-{size}-float32"
    benchmark(fn, x, g, s1, s2)

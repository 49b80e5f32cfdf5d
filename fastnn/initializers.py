"""Weight initializers.

Every initializer has the signature ``init(shape, rng=None, dtype=np.float32, **params)`` and
returns a new array. ``rng`` is None, an int seed or a ``numpy.random.Generator``, so the
same seed gives the same weights. Weights of a dense layer have shape (fan_in, fan_out);
a 1-D shape (n,) counts as fan_in = fan_out = n.

Select one by name in ``Dense(..., init="he_normal")`` (see ``INITIALIZERS``), or pass any
callable with that signature (e.g. ``functools.partial(normal, std=0.05)``).

=================== ============================================ ===========================
name                distribution                                 variance
=================== ============================================ ===========================
zeros, constant     0, or ``value``                              0
normal              N(mean, std²)                                std²
uniform             U[−limit, +limit]                            limit²/3
truncated_normal    N(0, std²) redrawn outside ±2 std            0.7737 std²
nielsen             N(0, 1/fan_in) (biases N(0, 1))              1/fan_in
nielsen_large       N(0, 1) (biases N(0, 1))                     1
lecun_normal        N(0, 1/fan_in)                               1/fan_in
lecun_uniform       U[±√(3/fan_in)]                              1/fan_in
glorot_normal       N(0, 2/(fan_in + fan_out))                   2/(fan_in + fan_out)
glorot_uniform      U[±√(6/(fan_in + fan_out))]                  2/(fan_in + fan_out)
glorot_standard     U[±1/√fan_in]                                1/(3 fan_in)
he_normal           N(0, 2/fan_in)                               2/fan_in
he_uniform          U[±√(6/fan_in)]                              2/fan_in
variance_scaling    scale/n, n = fan_in, fan_out or fan_avg;     scale/n
                    normal, truncated normal or uniform
orthogonal          gain · Q, Q (semi-)orthogonal                gain²/max(fan_in, fan_out)
=================== ============================================ ===========================

``xavier_*`` and ``kaiming_*`` are aliases of ``glorot_*`` and ``he_*``.
References: LeCun et al., "Efficient BackProp" (1998); Glorot & Bengio (2010); He et al.
(2015); Saxe et al. (2014); Nielsen, "Neural Networks and Deep Learning", ch. 3.
"""
import functools
import math

import numpy as np

from fastnn._validation import check_dtype, check_number, check_rng

# Standard deviation of N(0, 1) truncated to [-2, 2]; dividing by it restores unit variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def _fans(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape
    raise ValueError(f"initializers take a 1-D or 2-D shape, got {shape}")


def _finish(values, dtype):
    return np.ascontiguousarray(values, dtype=check_dtype(dtype))


def zeros(shape, rng=None, dtype=np.float32):
    """All zeros."""
    return np.zeros(shape, dtype=check_dtype(dtype))


def constant(shape, rng=None, dtype=np.float32, value=0.0):
    """Every entry equal to ``value``."""
    return np.full(shape, value, dtype=check_dtype(dtype))



def normal(shape, rng=None, dtype=np.float32, std=1.0, mean=0.0):
    """N(mean, std²)."""
    std = check_number(std, "std", low=0)
    return _finish(check_rng(rng).normal(mean, std, size=shape), dtype)


def uniform(shape, rng=None, dtype=np.float32, limit=0.05):
    """U[−limit, +limit]."""
    limit = check_number(limit, "limit", low=0)
    return _finish(check_rng(rng).uniform(-limit, limit, size=shape), dtype)


def truncated_normal(shape, rng=None, dtype=np.float32, std=1.0):
    """N(0, std²) with draws beyond two standard deviations redrawn (variance 0.7737 std²)."""
    std = check_number(std, "std", low=0)
    rng = check_rng(rng)
    values = rng.standard_normal(size=shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2
    return _finish(std * values, dtype)


def variance_scaling(shape, rng=None, dtype=np.float32, scale=1.0, mode="fan_in",
                     distribution="normal"):
    """Draws with variance ``scale / n``, n = fan_in, fan_out or (fan_in + fan_out) / 2.

    distribution "normal": N(0, scale/n); "truncated_normal": the same variance from a
    normal truncated at ±2σ; "uniform": U[−√(3 scale/n), +√(3 scale/n)].
    LeCun, Glorot and He initializers are special cases (He et al. 2015, eq. 10;
    Glorot & Bengio 2010, eq. 16).
    """
    check_number(scale, "scale", low=0, low_open=True)
    fan_in, fan_out = _fans(shape)
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    if mode not in fans:
        raise ValueError(f"mode must be one of {sorted(fans)}, got {mode!r}")
    variance = scale / max(1.0, fans[mode])
    if distribution == "normal":
        return normal(shape, rng, dtype, std=math.sqrt(variance))
    if distribution == "truncated_normal":
        return truncated_normal(shape, rng, dtype, std=math.sqrt(variance) / _TRUNCATED_NORMAL_STD)
    if distribution == "uniform":
        return uniform(shape, rng, dtype, limit=math.sqrt(3 * variance))
    raise ValueError("distribution must be 'normal', 'truncated_normal' or 'uniform', "
                     f"got {distribution!r}")


def nielsen(shape, rng=None, dtype=np.float32):
    """Nielsen's default weight initialization: N(0, 1/n_in) (his biases are N(0, 1))."""
    return variance_scaling(shape, rng, dtype, 1.0, "fan_in", "normal")


def nielsen_large(shape, rng=None, dtype=np.float32):
    """Nielsen's "large weight" initialization: N(0, 1) for weights and biases."""
    return normal(shape, rng, dtype, std=1.0)


def lecun_normal(shape, rng=None, dtype=np.float32):
    """N(0, 1/fan_in) (LeCun et al. 1998); the initializer SELU networks assume."""
    return variance_scaling(shape, rng, dtype, 1.0, "fan_in", "normal")


def lecun_uniform(shape, rng=None, dtype=np.float32):
    """U[−√(3/fan_in), +√(3/fan_in)], variance 1/fan_in."""
    return variance_scaling(shape, rng, dtype, 1.0, "fan_in", "uniform")


def glorot_normal(shape, rng=None, dtype=np.float32):
    """N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    return variance_scaling(shape, rng, dtype, 1.0, "fan_avg", "normal")


def glorot_uniform(shape, rng=None, dtype=np.float32):
    """Glorot & Bengio's normalized initialization, eq. 16: U[−√(6/(fan_in+fan_out)), +]."""
    return variance_scaling(shape, rng, dtype, 1.0, "fan_avg", "uniform")


def glorot_standard(shape, rng=None, dtype=np.float32):
    """Glorot & Bengio's "standard" heuristic, eq. 1: U[−1/√fan_in, +1/√fan_in] (variance 1/(3 fan_in))."""
    fan_in, _ = _fans(shape)
    return uniform(shape, rng, dtype, limit=1 / math.sqrt(max(1, fan_in)))


def he_normal(shape, rng=None, dtype=np.float32):
    """N(0, 2/fan_in) (He et al. 2015), for ReLU-family activations."""
    return variance_scaling(shape, rng, dtype, 2.0, "fan_in", "normal")


def he_uniform(shape, rng=None, dtype=np.float32):
    """U[−√(6/fan_in), +√(6/fan_in)], variance 2/fan_in."""
    return variance_scaling(shape, rng, dtype, 2.0, "fan_in", "uniform")


def orthogonal(shape, rng=None, dtype=np.float32, gain=1.0):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2014), from the QR of a normal draw."""
    rows, cols = _fans(shape)
    if len(tuple(shape)) != 2:
        raise ValueError(f"orthogonal needs a 2-D shape, got {tuple(shape)}")
    a = check_rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
    if rows < cols:
        q = q.T
    return _finish(gain * q, dtype)


INITIALIZERS = {
    "zeros": zeros,
    "constant": constant,
    "normal": normal,
    "uniform": uniform,
    "truncated_normal": truncated_normal,
    "variance_scaling": variance_scaling,
    "nielsen": nielsen,
    "nielsen_large": nielsen_large,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_standard": glorot_standard,
    "xavier_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "orthogonal": orthogonal,
}

# Bias initializer that goes with a weight scheme when the user names none.
DEFAULT_BIAS_INIT = {"nielsen": "normal", "nielsen_large": "normal"}


def get(init, **params):
    """Return the initializer named ``init`` (with ``params`` bound), or ``init`` if callable."""
    if callable(init):
        return functools.partial(init, **params) if params else init
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; choose from {', '.join(sorted(INITIALIZERS))}")
    fn = INITIALIZERS[init]
    return functools.partial(fn, **params) if params else fn


def default_for_activation(activation):
    """The initializer that keeps activation variance stable for ``activation``.

    He for the ReLU family (PReLU and RReLU included: He et al. 2015 derive it for PReLU),
    LeCun normal for SELU, Glorot uniform otherwise.
    """
    if activation in ("relu", "leaky_relu", "elu", "prelu", "rrelu"):
        return "he_normal"
    if activation == "selu":
        return "lecun_normal"
    return "glorot_uniform"

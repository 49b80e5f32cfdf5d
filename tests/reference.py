"""Straightforward NumPy implementations every kernel is tested against."""
import math

import numpy as np

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def dense_forward(X, W, b):
    return X @ W + (0 if b is None else b)


def dense_backward(X, W, dY):
    return dY @ W.T, X.T @ dY, dY.sum(axis=0)


def sparse_forward(X, W, b):
    """X W + b for a SciPy sparse X (duplicate entries add up, as SciPy reads them)."""
    return np.asarray(X @ W) + (0 if b is None else b)


def sparse_backward(X, dY):
    """(Xᵀ dY, Σ_rows dY) for a SciPy sparse X."""
    return np.asarray(X.T @ dY), dY.sum(axis=0)


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def activation(name, z, alpha=None):
    """(f(z), f'(z)) written from the textbook formulas in terms of z."""
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "identity":
            return z, np.ones_like(z)
        if name == "sigmoid":
            s = _sigmoid(z)
            return s, s * (1 - s)
        if name == "tanh":
            t = np.tanh(z)
            return t, 1 - t * t
        if name == "hardtanh":
            return np.clip(z, -1, 1), ((z > -1) & (z < 1)).astype(z.dtype)
        if name == "softsign":
            return z / (1 + np.abs(z)), 1 / (1 + np.abs(z)) ** 2
        if name == "relu":
            return np.maximum(z, 0), (z > 0).astype(z.dtype)
        if name == "leaky_relu":
            a = 0.01 if alpha is None else alpha
            return np.where(z >= 0, z, a * z), np.where(z > 0, 1, a).astype(z.dtype)
        if name == "elu":
            a = 1.0 if alpha is None else alpha
            return (np.where(z > 0, z, a * np.expm1(np.minimum(z, 0))),
                    np.where(z > 0, 1, a * np.exp(np.minimum(z, 0))))
        if name == "selu":
            neg = SELU_ALPHA * np.expm1(np.minimum(z, 0))
            return (SELU_LAMBDA * np.where(z > 0, z, neg),
                    SELU_LAMBDA * np.where(z > 0, 1, SELU_ALPHA * np.exp(np.minimum(z, 0))))
        if name == "softplus":
            return np.logaddexp(0, z), _sigmoid(z)
    raise ValueError(name)


# The loss references take ±inf and NaN on purpose (IEEE semantics are what the kernels must
# match), so the overflow and invalid-value warnings those produce are expected here.

@np.errstate(over="ignore", invalid="ignore")
def softmax_cross_entropy(z, y):
    z = z.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    grad = np.exp(log_p)
    grad[np.arange(n), y] -= 1
    return -log_p[np.arange(n), y].mean(), grad / n


@np.errstate(over="ignore", invalid="ignore")
def mse(p, t):
    d = p.astype(np.float64) - t
    return np.mean(d * d), 2 * d / d.size


@np.errstate(over="ignore", invalid="ignore")
def hinge(s, y, margin=1.0):
    s = s.astype(np.float64)
    n = len(y)
    correct = s[np.arange(n), y][:, None]
    margins = margin + s - correct
    margins[np.arange(n), y] = 0
    active = margins > 0
    grad = active.astype(np.float64)
    grad[np.arange(n), y] = -active.sum(axis=1)
    return np.maximum(margins, 0).sum() / n, grad / n


@np.errstate(over="ignore", invalid="ignore")
def binary_cross_entropy(z, t):
    z = z.astype(np.float64)
    value = np.mean(np.logaddexp(0, z) - t * z)
    return value, (_sigmoid(z) - t) / z.size


@np.errstate(over="ignore", invalid="ignore")
def poisson(z, t):
    """Poisson loss with the log link: mean of e^z − t z, gradient (e^z − t) / (n k)."""
    n, k = z.shape
    return float(np.mean(np.exp(z) - t * z)), (np.exp(z) - t) / (n * k)


def weighted(loss, z, t, w):
    """``loss``'s weighted mean from its definition: Σ w_i ℓ_i / Σ w_i with ℓ_i the loss of
    row i alone, gradient w_i ∇ℓ_i / Σ w_i (0 when Σ w = 0)."""
    total = float(np.sum(w))
    rows = [loss(z[i:i + 1], t[i:i + 1]) for i in range(len(z))]
    if total == 0:
        return 0.0, np.zeros_like(z)
    value = sum(w_i * v for w_i, (v, _) in zip(w, rows)) / total
    grad = np.concatenate([w_i * g for w_i, (_, g) in zip(w, rows)]) / total
    return value, grad


def activation_derivative_from_output(name, a, alpha=None):
    """f'(z) written in terms of the output a = f(z), as backward passes use it."""
    if name == "identity":
        return np.ones_like(a)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "hardtanh":
        return ((a > -1) & (a < 1)).astype(a.dtype)
    if name == "softsign":
        return (1 - np.abs(a)) ** 2
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, 1, 0.01 if alpha is None else alpha)
    if name == "elu":
        return np.where(a > 0, 1, a + (1.0 if alpha is None else alpha))
    if name == "selu":
        return np.where(a > 0, SELU_LAMBDA, a + SELU_LAMBDA * SELU_ALPHA)
    if name == "softplus":
        return -np.expm1(-a)  # sigmoid(z) = 1 − e^(−softplus(z))
    raise ValueError(name)


# -- batch norm ------------------------------------------------------------------------------
def batchnorm_forward(X, gamma, beta, eps, mean=None, var=None):
    """Y and x̂ from batch statistics (mean/var None) or the given running statistics."""
    X = X.astype(np.float64)
    if mean is None:
        mean, var = X.mean(axis=0), X.var(axis=0)
    xhat = (X - mean) / np.sqrt(var + eps)
    return gamma * xhat + beta, xhat


def batchnorm_backward_train(X, gamma, dY, eps):
    """Gradients by the step-by-step chain rule of Ioffe & Szegedy (2015), Algorithm/eqs. in §3."""
    X, dY = X.astype(np.float64), dY.astype(np.float64)
    n = X.shape[0]
    mu = X.mean(axis=0)
    var = X.var(axis=0)
    xhat = (X - mu) / np.sqrt(var + eps)
    dxhat = dY * gamma
    dvar = np.sum(dxhat * (X - mu), axis=0) * -0.5 * (var + eps) ** -1.5
    dmu = -np.sum(dxhat, axis=0) / np.sqrt(var + eps) + dvar * np.mean(-2 * (X - mu), axis=0)
    dX = dxhat / np.sqrt(var + eps) + dvar * 2 * (X - mu) / n + dmu / n
    return dX, np.sum(dY * xhat, axis=0), dY.sum(axis=0)


# -- dropout: the counter-based generator (SplitMix64) ---------------------------------------
U64 = np.uint64
PHI = U64(0x9E3779B97F4A7C15)


def mix64(z):
    z = np.asarray(z, dtype=U64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


def dropout_mask(size, p, seed, counter):
    with np.errstate(over="ignore"):
        base = mix64(mix64(U64(seed) + PHI) + U64(counter) * PHI)
        z = mix64(base + (np.arange(1, size + 1, dtype=U64) * PHI))
    threshold = U64(math.ceil(p * 2.0 ** 53))
    return (z >> U64(11)) >= threshold


def rrelu_slopes(shape, lower, upper, seed, counter, dtype):
    """RReLU's training-mode slopes r = lower + (upper − lower) u: u from the top 23 (float32)
    or 52 (float64) bits of the dropout stream's hashes, as the mantissa of [1, 2) minus 1."""
    size = int(np.prod(shape))
    with np.errstate(over="ignore"):
        base = mix64(mix64(U64(seed) + PHI) + U64(counter) * PHI)
        z = mix64(base + (np.arange(1, size + 1, dtype=U64) * PHI))
    if np.dtype(dtype) == np.float32:
        bits = (z >> U64(41)).astype(np.uint32) | np.uint32(0x3F800000)
        u = bits.view(np.float32) - np.float32(1)
    else:
        u = ((z >> U64(12)) | U64(0x3FF0000000000000)).view(np.float64) - 1.0
    r = dtype(lower) + dtype(upper - lower) * u.astype(dtype)
    return r.reshape(shape)


def rrelu_forward(z, r):
    return np.where(z > 0, z, r * z)


def prelu_forward(z, alpha):
    return np.where(z > 0, z, alpha * z)


def prelu_backward(z, alpha, da):
    """(dz, dalpha) in float64; dalpha summed over rows, and over units when alpha is (1,)."""
    z64, da64 = z.astype(np.float64), da.astype(np.float64)
    dz = np.where(z > 0, da, alpha * da)
    contribution = da64 * np.where(z > 0, 0.0, z64)
    dalpha = contribution.sum(axis=0) if alpha.shape[0] > 1 or z.shape[1] == 1 else \
        np.array([contribution.sum()])
    return dz, dalpha


def splitmix64_stream(state, count):
    """Vigna's splitmix64.c next(): x += φ; return mix64(x)."""
    out = []
    for _ in range(count):
        with np.errstate(over="ignore"):
            state = U64(state) + PHI
        out.append(mix64(state))
    return np.array(out, dtype=U64)


# -- optimizers: the textbook rules, written out ---------------------------------------------

def effective_grad(g, x, scale, clip, wd):
    """clip(scale·g, −c, c) + λx, in g's dtype."""
    g = g * scale
    if clip is not None:
        g = np.clip(g, -clip, clip)
    return g + wd * x


class Optimizer:
    """A straightforward NumPy implementation of each optimizer's update rule."""

    def __init__(self, name, lr, momentum=0.9, rho=0.99, betas=(0.9, 0.999), eps=None,
                 weight_decay=0.0, clip_norm=None, clip_value=None):
        self.name, self.lr, self.mu, self.rho = name, lr, momentum, rho
        self.beta1, self.beta2 = betas
        self.eps = eps if eps is not None else (1e-10 if name == "adagrad" else 1e-8)
        self.wd, self.clip_norm, self.clip_value = weight_decay, clip_norm, clip_value
        self.state = {}
        self.t = 0

    def step(self, params):
        self.t += 1
        t = self.t
        norm = math.sqrt(sum(np.sum(p.grad.astype(np.float64) ** 2) for p in params))
        scale = 1.0
        if self.clip_norm is not None and norm > self.clip_norm:
            scale = self.clip_norm / (norm + 1e-6)
        for i, p in enumerate(params):
            with p.edit() as x:  # a Parameter's values are written through edit()
                self._update(i, p, x, scale, t)

    def _update(self, i, p, x, scale, t):
        wd = self.wd if p.regularize else 0.0
        decoupled = self.name == "adamw"
        g = effective_grad(p.grad, x, scale, self.clip_value, 0.0 if decoupled else wd)
        s = self.state.setdefault(i, {k: np.zeros_like(x) for k in ("a", "b")})
        lr = self.lr
        if self.name == "sgd":
            x -= lr * g
        elif self.name == "momentum":            # v = μv − αg; x += v
            s["a"] = self.mu * s["a"] - lr * g
            x += s["a"]
        elif self.name == "nesterov":            # CS231n
            v_prev = s["a"].copy()
            s["a"] = self.mu * s["a"] - lr * g
            x += -self.mu * v_prev + (1 + self.mu) * s["a"]
        elif self.name == "adagrad":             # cache += g²; x −= αg/(√cache + ε)
            s["a"] += g * g
            x -= lr * g / (np.sqrt(s["a"]) + self.eps)
        elif self.name == "rmsprop":
            s["a"] = self.rho * s["a"] + (1 - self.rho) * g * g
            x -= lr * g / (np.sqrt(s["a"]) + self.eps)
        else:                                    # Adam / AdamW, Kingma & Ba Algorithm 1
            s["a"] = self.beta1 * s["a"] + (1 - self.beta1) * g
            s["b"] = self.beta2 * s["b"] + (1 - self.beta2) * g * g
            m_hat = s["a"] / (1 - self.beta1 ** t)
            v_hat = s["b"] / (1 - self.beta2 ** t)
            if decoupled:
                x -= lr * wd * x
            x -= lr * m_hat / (np.sqrt(v_hat) + self.eps)


# -- regularization --------------------------------------------------------------------------
def regularization_penalty(w, l2, l1):
    w = w.astype(np.float64)
    return 0.5 * l2 * np.sum(w * w) + l1 * np.sum(np.abs(w)), l2 * w + l1 * np.sign(w)


def max_norm_constraint(W, c):
    W = W.astype(np.float64)
    norms = np.sqrt(np.sum(W * W, axis=0))
    return W * np.where(norms > c, c / np.where(norms > 0, norms, 1), 1)


# -- diagnostics -----------------------------------------------------------------------------
def activation_stats(A, lower, upper):
    A64 = A.astype(np.float64)
    saturated = int(np.count_nonzero((A64 <= lower) | (A64 >= upper)))
    return A64.mean(axis=0), A64.var(axis=0), np.count_nonzero(A <= 0, axis=0), saturated


def sum_squares(a, b=None):
    """Σ aᵢ², or Σ (aᵢ − bᵢ)², in float64."""
    a = np.asarray(a, dtype=np.float64)
    d = a if b is None else a - np.asarray(b, dtype=np.float64)
    return float(np.sum(d * d))

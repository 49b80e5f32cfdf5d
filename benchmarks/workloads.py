"""The workloads every benchmark compares: fastnn, hand-written NumPy, PyTorch, onnxruntime and JAX.

The NumPy reference is the code a careful user writes by hand: preallocated buffers,
``out=`` arguments, in-place updates. ``gemm_floor_step`` does the same products a training
step does, alone, through fastnn's BLAS, so a step can be quoted as a multiple of them.

Every library is imported where a workload first needs it, not at import: ``runner.py``
measures each library in a process of its own, and a process that loads only the library it
measures carries no other library's thread pool. ``from workloads import torch`` still gives
torch, or None where it is not installed.
"""
import functools
import importlib
import time

import numpy as np

#: The network of the inference and training-step comparisons.
MLP = (784, 256, 128, 10)
#: The deep batch-norm network of the "bn" training step.
DEEP = (784, 512, 512, 512, 512, 10)


def optional(name):
    """The module ``name``, or None if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def __getattr__(name):
    # ``workloads.torch``: imported on first use (PEP 562), None without torch.
    if name == "torch":
        return optional("torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def best_times(fns, repeats=7, min_seconds=0.05, settle=0.15):
    """Best-of-``repeats`` mean seconds per call of each callable (None gives None), each
    repeat running ≥ ``min_seconds``, measured round-robin.

    Each round times every callable once, so a slow spell of a shared machine hits all of
    them alike and the ratios between them stay meaningful. Between callables it sleeps
    ``settle`` seconds: NumPy, torch and fastnn each have their own BLAS thread pool, and
    OpenBLAS's idle workers spin for about 0.1 s (2^28 cycles) before sleeping, so a step
    timed right after another library's ran up to 2x slower here.
    """
    live = [fn for fn in fns if fn is not None]
    numbers = []
    for fn in live:
        time.sleep(settle if len(live) > 1 else 0)
        fn()
        number = 1
        while min_seconds > 0 and _seconds(fn, number) < min_seconds:
            number *= 2
        numbers.append(number)
    best = [float("inf")] * len(live)
    for _ in range(repeats):
        for i, (fn, number) in enumerate(zip(live, numbers)):
            if len(live) > 1:
                time.sleep(settle)
            best[i] = min(best[i], _seconds(fn, number) / number)
    found = iter(best)
    return [None if fn is None else next(found) for fn in fns]


def _seconds(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def batch(sizes, n, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, sizes[0]), dtype=np.float64).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    return X, y


class NumpyMLP:
    """Hand-written, preallocated NumPy MLP: ReLU hidden layers, softmax cross-entropy, SGD."""

    def __init__(self, sizes, n, dtype=np.float32, lr=0.01, seed=0):
        rng = np.random.default_rng(seed)
        self.lr = dtype(lr)
        self.W = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, dtype) for b in sizes[1:]]
        self.Z = [np.empty((n, b), dtype) for b in sizes[1:]]
        self.dA = [np.empty((n, b), dtype) for b in sizes[1:-1]]
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.mask = [np.empty((n, b), bool) for b in sizes[1:-1]]
        self.rows = np.arange(n)
        self.row_max = np.empty((n, 1), dtype)

    def step(self, X, y):
        L = len(self.W)
        inputs = [X]
        for i in range(L):
            np.matmul(inputs[-1], self.W[i], out=self.Z[i])
            self.Z[i] += self.b[i]
            if i < L - 1:
                np.maximum(self.Z[i], 0, out=self.Z[i])
                inputs.append(self.Z[i])
        g = self.Z[-1]
        np.max(g, axis=1, keepdims=True, out=self.row_max)
        g -= self.row_max
        np.exp(g, out=g)
        g /= g.sum(axis=1, keepdims=True)
        g[self.rows, y] -= 1
        g *= 1 / len(y)
        for i in reversed(range(L)):
            np.matmul(inputs[i].T, g, out=self.dW[i])
            np.sum(g, axis=0, out=self.db[i])
            if i > 0:
                np.matmul(g, self.W[i].T, out=self.dA[i - 1])
                np.greater(inputs[i], 0, out=self.mask[i - 1])
                self.dA[i - 1] *= self.mask[i - 1]
                g = self.dA[i - 1]
        for W, dW, b, db in zip(self.W, self.dW, self.b, self.db):
            dW *= self.lr
            W -= dW
            db *= self.lr
            b -= db


class NumpyBatchNormMLP:
    """Hand-written NumPy MLP with batch norm before each ReLU (Dense without bias → BN → ReLU).

    Training-mode batch statistics, running estimates (momentum 0.1), the compact backward
    dX = γ/σ · (dY − mean(dY) − x̂·mean(dY·x̂)), and SGD on W, γ, β and the output bias.
    """

    def __init__(self, sizes, n, dtype=np.float32, lr=0.01, seed=0, eps=1e-5, momentum=0.1):
        rng = np.random.default_rng(seed)
        self.lr, self.eps, self.momentum = dtype(lr), eps, momentum
        self.W = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b_out = np.zeros(sizes[-1], dtype)
        hidden = sizes[1:-1]
        self.gamma = [np.ones(h, dtype) for h in hidden]
        self.beta = [np.zeros(h, dtype) for h in hidden]
        self.running_mean = [np.zeros(h, dtype) for h in hidden]
        self.running_var = [np.ones(h, dtype) for h in hidden]
        self.Z = [np.empty((n, b), dtype) for b in sizes[1:]]
        self.xhat = [np.empty((n, h), dtype) for h in hidden]
        self.A = [np.empty((n, h), dtype) for h in hidden]
        self.inv_std = [np.empty(h, dtype) for h in hidden]
        self.dZ = [np.empty((n, h), dtype) for h in hidden]
        self.dW = [np.empty_like(W) for W in self.W]
        self.rows = np.arange(n)
        self.row_max = np.empty((n, 1), dtype)

    def step(self, X, y):
        n, L = len(y), len(self.W)
        inputs = [X]
        for i in range(L - 1):
            Z, xhat, A = self.Z[i], self.xhat[i], self.A[i]
            np.matmul(inputs[-1], self.W[i], out=Z)
            mean = Z.mean(axis=0)
            np.subtract(Z, mean, out=xhat)
            var = np.mean(xhat * xhat, axis=0)
            np.sqrt(var + self.eps, out=self.inv_std[i])
            np.reciprocal(self.inv_std[i], out=self.inv_std[i])
            xhat *= self.inv_std[i]
            np.multiply(xhat, self.gamma[i], out=A)
            A += self.beta[i]
            np.maximum(A, 0, out=A)
            self.running_mean[i] *= 1 - self.momentum
            self.running_mean[i] += self.momentum * mean
            self.running_var[i] *= 1 - self.momentum
            self.running_var[i] += self.momentum * var * (n / (n - 1))
            inputs.append(A)
        g = self.Z[-1]
        np.matmul(inputs[-1], self.W[-1], out=g)
        g += self.b_out
        np.max(g, axis=1, keepdims=True, out=self.row_max)
        g -= self.row_max
        np.exp(g, out=g)
        g /= g.sum(axis=1, keepdims=True)
        g[self.rows, y] -= 1
        g *= 1 / n
        np.matmul(inputs[-1].T, g, out=self.dW[-1])
        self.b_out -= self.lr * g.sum(axis=0)
        for i in reversed(range(L - 1)):
            dA = self.dZ[i]
            np.matmul(g, self.W[i + 1].T, out=dA)
            dA *= self.A[i] > 0
            xhat = self.xhat[i]
            dbeta = dA.sum(axis=0)
            dgamma = np.einsum("ij,ij->j", dA, xhat)
            # dY of the BN output → dZ (in place in dA)
            dA -= dbeta / n
            dA -= xhat * (dgamma / n)
            dA *= self.gamma[i] * self.inv_std[i]
            np.matmul(inputs[i].T, dA, out=self.dW[i])
            self.gamma[i] -= self.lr * dgamma
            self.beta[i] -= self.lr * dbeta
            g = dA
        for W, dW in zip(self.W, self.dW):
            dW *= self.lr
            W -= dW


def numpy_batch_norm_step(sizes, n, dtype=np.float32):
    mlp = NumpyBatchNormMLP(sizes, n, dtype)
    X, y = batch(sizes, n, dtype)
    return lambda: mlp.step(X, y)


def fastnn_step(sizes, n, dtype=np.float32, optimizer="sgd", lr=0.01, batch_norm=False):
    """A closure running one fastnn training step on a fixed batch."""
    import fastnn

    net = (fastnn.mlp(sizes, rng=0, dtype=dtype, batch_norm=True) if batch_norm
           else fastnn.mlp(sizes, rng=0, dtype=dtype))
    if optimizer == "sgd":
        opt = fastnn.SGD(net.parameters(), lr=lr)
    else:
        from fastnn import optimizers
        opt = optimizers.get(optimizer, net.parameters(), lr=lr)
    X, y = batch(sizes, n, dtype)
    return lambda: net.train_step(X, y, opt)


def numpy_step(sizes, n, dtype=np.float32):
    mlp = NumpyMLP(sizes, n, dtype)
    X, y = batch(sizes, n, dtype)
    return lambda: mlp.step(X, y)


def torch_step(sizes, n, dtype=np.float32, optimizer="sgd", lr=0.01, batch_norm=False):
    """PyTorch CPU step of the same network, or None without torch."""
    torch = optional("torch")
    if torch is None:
        return None
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=tdtype))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(torch.nn.BatchNorm1d(b, dtype=tdtype))
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = (torch.optim.SGD(model.parameters(), lr=lr) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=lr))
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = batch(sizes, n, dtype)
    X, y = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()

    return step


#: Training steps by row name: (network, optimizer, learning rate, batch norm).
STEP_ROWS = {"sgd": (MLP, "sgd", 0.01, False), "adam": (MLP, "adam", 1e-3, False),
             "bn": (DEEP, "sgd", 0.01, True)}


def step_case(lib, row, n, dtype=np.float32):
    """A closure running one training step of ``STEP_ROWS[row]`` at batch n in ``lib``
    (fastnn, numpy, torch or jax), or None where that library has no such step here (NumPy
    and JAX: plain SGD; NumPy also the batch-norm step)."""
    sizes, optimizer, lr, batch_norm = STEP_ROWS[row]
    if lib == "fastnn":
        return fastnn_step(sizes, n, dtype, optimizer=optimizer, lr=lr, batch_norm=batch_norm)
    if lib == "torch":
        return torch_step(sizes, n, dtype, optimizer=optimizer, lr=lr, batch_norm=batch_norm)
    if optimizer != "sgd":
        return None
    if lib == "numpy":
        return numpy_batch_norm_step(sizes, n, dtype) if batch_norm else numpy_step(sizes, n, dtype)
    if lib == "jax" and not batch_norm:
        return jax_step(sizes, n, dtype, lr)
    return None


def gemm_floor_step(sizes, n, dtype=np.float32):
    """A closure doing the products of one training step once, on the backend a step of
    fastnn trains with here (``fastnn._config.dense_backend``: the micro-kernel or the BLAS)
    and through the same kernels, with nothing else around them (the "GEMM floor"): X·W per
    layer, then from the last layer back Xᵀ·dY and, for every layer but the first, dY·Wᵀ."""
    from fastnn._config import dense_backend
    from fastnn_c import dense

    threads, blas = dense_backend()
    forward, backward = dense.dense_forward.typed(dtype), dense.dense_backward.typed(dtype)
    rng = np.random.default_rng(0)
    forwards, backwards = [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        X, W = rng.random((n, a)).astype(dtype), rng.random((a, b)).astype(dtype)
        dY, dW = rng.random((n, b)).astype(dtype), np.empty((a, b), dtype)
        dX = np.empty((n, a), dtype) if i > 0 else None
        forwards.append((forward, (X, W, None, np.empty((n, b), dtype), threads, blas)))
        backwards.insert(0, (backward, (X, W, dY, dW, None, dX, threads, blas)))
    calls = forwards + backwards

    def step():
        for kernel, args in calls:
            kernel(*args)

    return step


def adam_floor_step(sizes, n, dtype=np.float32):
    """The GEMM floor plus one Adam update over every weight and bias (fastnn's fused kernel,
    on gradients with no zeros, so its state stays out of the subnormals): what an Adam step
    cannot avoid, the products and one pass over θ, g, m and v."""
    from fastnn_c import optim as _optim

    products = gemm_floor_step(sizes, n, dtype)
    rng = np.random.default_rng(0)
    shapes = [shape for a, b in zip(sizes[:-1], sizes[1:]) for shape in ((a, b), (b,))]
    arrays = [[rng.random(shape).astype(dtype) + dtype(0.5) for _ in range(4)] for shape in shapes]

    def step():
        products()
        for param, grad, m, v in arrays:
            _optim.adam_update(param, grad, m, v, 1e-12, 0.9, 0.999, 1e-8, 1.0)

    return step


# -- elementwise formulations: the best NumPy we could write (in place, out=), and torch's kernels --
ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
SELU_LAMBDA, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


def _np_elu_like(Z, A, alpha, scale=1.0):
    """scale · (z if z > 0 else alpha (e^z − 1)), with one boolean temporary."""
    positive = Z > 0
    np.minimum(Z, 0, out=A)
    np.expm1(A, out=A)
    A *= alpha
    np.copyto(A, Z, where=positive)
    if scale != 1.0:
        A *= scale


NUMPY_FORWARD = {
    "identity": lambda Z, A: np.copyto(A, Z),
    "sigmoid": lambda Z, A: (np.negative(Z, out=A), np.exp(A, out=A), np.add(A, 1, out=A),
                             np.reciprocal(A, out=A)),
    "tanh": lambda Z, A: np.tanh(Z, out=A),
    "hardtanh": lambda Z, A: np.clip(Z, -1, 1, out=A),
    "softsign": lambda Z, A: (np.abs(Z, out=A), np.add(A, 1, out=A), np.divide(Z, A, out=A)),
    "relu": lambda Z, A: np.maximum(Z, 0, out=A),
    "leaky_relu": lambda Z, A: (np.multiply(Z, ALPHA["leaky_relu"], out=A), np.maximum(Z, A, out=A)),
    "elu": lambda Z, A: _np_elu_like(Z, A, ALPHA["elu"]),
    "selu": lambda Z, A: _np_elu_like(Z, A, SELU_ALPHA, SELU_LAMBDA),
    "softplus": lambda Z, A: np.logaddexp(0, Z, out=A),
}


def _np_where_positive(A, dA, dZ, negative_factor):
    np.multiply(dA, negative_factor, out=dZ)
    np.copyto(dZ, dA, where=A > 0)


NUMPY_BACKWARD = {
    "identity": lambda A, dA, dZ: np.copyto(dZ, dA),
    "sigmoid": lambda A, dA, dZ: (np.subtract(1, A, out=dZ), np.multiply(dZ, A, out=dZ),
                                  np.multiply(dZ, dA, out=dZ)),
    "tanh": lambda A, dA, dZ: (np.multiply(A, A, out=dZ), np.subtract(1, dZ, out=dZ),
                               np.multiply(dZ, dA, out=dZ)),
    "hardtanh": lambda A, dA, dZ: np.multiply(dA, np.abs(A) < 1, out=dZ),
    "softsign": lambda A, dA, dZ: (np.abs(A, out=dZ), np.subtract(1, dZ, out=dZ),
                                   np.multiply(dZ, dZ, out=dZ), np.multiply(dZ, dA, out=dZ)),
    "relu": lambda A, dA, dZ: np.multiply(dA, A > 0, out=dZ),
    "leaky_relu": lambda A, dA, dZ: _np_where_positive(A, dA, dZ, ALPHA["leaky_relu"]),
    "elu": lambda A, dA, dZ: (np.add(A, ALPHA["elu"], out=dZ), np.multiply(dZ, dA, out=dZ),
                              np.copyto(dZ, dA, where=A > 0)),
    "selu": lambda A, dA, dZ: (np.add(A, SELU_LAMBDA * SELU_ALPHA, out=dZ), np.multiply(dZ, dA, out=dZ),
                               np.multiply(dA, SELU_LAMBDA, out=dZ, where=A > 0)),
    "softplus": lambda A, dA, dZ: (np.negative(A, out=dZ), np.expm1(dZ, out=dZ),
                                   np.negative(dZ, out=dZ), np.multiply(dZ, dA, out=dZ)),
}


def torch_elementwise():
    """(forward, backward) callables per activation using the kernels torch's autograd runs."""
    torch = optional("torch")
    if torch is None:
        return {}, {}
    aten = torch.ops.aten
    forward = {
        "identity": lambda Z, A: A.copy_(Z),
        "sigmoid": lambda Z, A: torch.sigmoid(Z, out=A),
        "tanh": lambda Z, A: torch.tanh(Z, out=A),
        "hardtanh": lambda Z, A: A.copy_(torch.nn.functional.hardtanh(Z)),
        "softsign": lambda Z, A: A.copy_(torch.nn.functional.softsign(Z)),
        "relu": lambda Z, A: torch.clamp_min(Z, 0, out=A),
        "leaky_relu": lambda Z, A: aten.leaky_relu.out(Z, ALPHA["leaky_relu"], out=A),
        "elu": lambda Z, A: aten.elu.out(Z, ALPHA["elu"], 1, 1, out=A),
        "selu": lambda Z, A: A.copy_(torch.selu(Z)),
        "softplus": lambda Z, A: aten.softplus.out(Z, 1, 20, out=A),
    }
    backward = {
        "identity": lambda A, dA, dZ: dZ.copy_(dA),
        "sigmoid": lambda A, dA, dZ: aten.sigmoid_backward.grad_input(dA, A, grad_input=dZ),
        "tanh": lambda A, dA, dZ: aten.tanh_backward.grad_input(dA, A, grad_input=dZ),
        "hardtanh": lambda A, dA, dZ: aten.hardtanh_backward.grad_input(dA, A, -1.0, 1.0, grad_input=dZ),
        "softsign": lambda A, dA, dZ: dZ.copy_(dA * (1 - A.abs()) ** 2),
        "relu": lambda A, dA, dZ: aten.threshold_backward.grad_input(dA, A, 0, grad_input=dZ),
        "leaky_relu": lambda A, dA, dZ: aten.leaky_relu_backward.grad_input(
            dA, A, ALPHA["leaky_relu"], True, grad_input=dZ),
        "elu": lambda A, dA, dZ: aten.elu_backward.grad_input(dA, ALPHA["elu"], 1, 1, True, A,
                                                               grad_input=dZ),
        "selu": lambda A, dA, dZ: aten.elu_backward.grad_input(dA, SELU_ALPHA, SELU_LAMBDA, 1, True,
                                                                A, grad_input=dZ),
        "softplus": lambda A, dA, dZ: aten.softplus_backward.grad_input(dA, A, 1, 20, grad_input=dZ),
    }
    return forward, backward


class NumpySoftmaxCE:
    """Softmax cross-entropy value and gradient, the best in-place NumPy we could write."""

    def __init__(self, n, k, dtype):
        self.grad = np.empty((n, k), dtype)
        self.row = np.empty((n, 1), dtype)
        self.rows = np.arange(n)

    def __call__(self, logits, labels):
        g, row = self.grad, self.row
        np.max(logits, axis=1, keepdims=True, out=row)
        np.subtract(logits, row, out=g)
        picked = g[self.rows, labels]
        np.exp(g, out=g)
        np.sum(g, axis=1, keepdims=True, out=row)
        loss = np.mean(np.log(row[:, 0]) - picked)
        g /= row
        g[self.rows, labels] -= 1
        g *= 1 / len(labels)
        return loss


def torch_softmax_ce(logits, labels):
    """torch's fused log-softmax + NLL forward and backward (what CrossEntropyLoss runs)."""
    torch = optional("torch")
    tl = torch.from_numpy(logits).requires_grad_(True)
    ty = torch.from_numpy(labels)

    def step():
        tl.grad = None
        torch.nn.functional.cross_entropy(tl, ty).backward()

    return step


class NumpyBatchNorm:
    """Training-mode batch norm forward + backward on (n, d), in-place NumPy with out= buffers."""

    def __init__(self, n, d, dtype, eps=1e-5):
        self.eps = eps
        self.xhat, self.Y, self.dX = (np.empty((n, d), dtype) for _ in range(3))
        self.gamma, self.beta = np.ones(d, dtype), np.zeros(d, dtype)

    def __call__(self, X, dY):
        n = len(X)
        mean = X.mean(axis=0)
        np.subtract(X, mean, out=self.xhat)
        var = np.einsum("ij,ij->j", self.xhat, self.xhat) / n
        inv_std = 1 / np.sqrt(var + self.eps)
        self.xhat *= inv_std
        np.multiply(self.xhat, self.gamma, out=self.Y)
        self.Y += self.beta
        dbeta = dY.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", dY, self.xhat)
        np.multiply(self.xhat, dgamma / n, out=self.dX)
        np.subtract(dY, self.dX, out=self.dX)
        self.dX -= dbeta / n
        self.dX *= self.gamma * inv_std
        return self.dX


def torch_batch_norm(X, dY):
    """torch's native batch-norm forward and backward kernels (what autograd runs)."""
    torch = optional("torch")
    aten = torch.ops.aten
    x, dy = torch.from_numpy(X), torch.from_numpy(dY)
    d = X.shape[1]
    w, b = torch.ones(d), torch.zeros(d)
    rm, rv = torch.zeros(d), torch.ones(d)

    def step():
        _, mean, invstd = aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        aten.native_batch_norm_backward(dy, x, w, rm, rv, mean, invstd, True, 1e-5, [True, True, True])

    return step


def numpy_dropout(Z, p=0.5, seed=0):
    """The usual inverted dropout in NumPy, buffers preallocated: a uniform draw, a mask, a
    scaled product."""
    rng = np.random.default_rng(seed)
    mask, out = np.empty(Z.shape, bool), np.empty_like(Z)
    scale = Z.dtype.type(1 / (1 - p))

    def dropout():
        np.less(rng.random(Z.shape, dtype=Z.dtype), p, out=mask)
        np.multiply(Z, mask, out=out)
        np.multiply(out, scale, out=out)

    return dropout


# -- elementwise passes, one library at a time (runner.py's "elementwise" section) ----------
#: Passes timed as one call: forward and backward together, or dropout's forward alone.
COMBINED = {"batch_norm": "fwd+bwd", "dropout": "forward", "softmax_ce": "fwd+bwd"}


def elementwise_data(shape, dtype=np.float32, seed=0):
    """(Z, dA): pre-activations N(0, 3²) and an upstream gradient N(0, 1)."""
    rng = np.random.default_rng(seed)
    return ((3 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(dtype))


def elementwise_case(lib, kernel, direction, shape, dtype=np.float32):
    """A closure running ``lib``'s ``kernel`` pass ("forward" or "backward"; for the passes in
    ``COMBINED`` the direction named there) on ``shape`` into preallocated outputs, or None
    where ``lib`` has no such pass. fastnn runs its layers' ``_forward``/``_backward`` (the
    kernels without the public methods' argument checks), torch the kernels its autograd runs."""
    Z, dA = elementwise_data(shape, dtype)
    if kernel in COMBINED:
        return _combined_case(lib, kernel, Z, dA)
    forward = direction == "forward"
    if lib == "fastnn":
        from fastnn.layers import Activation

        layer = Activation(kernel)
        layer._forward(Z)
        return functools.partial(layer._forward, Z) if forward else functools.partial(layer._backward, dA)
    if lib == "numpy":
        A, out = np.empty_like(Z), np.empty_like(Z)
        NUMPY_FORWARD[kernel](Z, A)
        return (functools.partial(NUMPY_FORWARD[kernel], Z, out) if forward
                else functools.partial(NUMPY_BACKWARD[kernel], A, dA, out))
    if lib == "torch":
        torch = optional("torch")
        torch_forward, torch_backward = torch_elementwise()
        tZ, tdA = torch.from_numpy(Z), torch.from_numpy(dA)
        tA, tout = torch.empty_like(tZ), torch.empty_like(tZ)
        torch_forward[kernel](tZ, tA)
        source = tZ if kernel == "softplus" else tA  # torch's softplus_backward takes the input
        return (functools.partial(torch_forward[kernel], tZ, tout) if forward
                else functools.partial(torch_backward[kernel], source, tdA, tout))
    return None


def _combined_case(lib, kernel, Z, dA):
    n, d = Z.shape
    if lib == "fastnn":
        import fastnn
        from fastnn_c import losses

        if kernel == "batch_norm":
            bn = fastnn.BatchNorm(d, dtype=Z.dtype)
            return lambda: (bn._forward(Z), bn._backward(dA))
        if kernel == "dropout":
            return functools.partial(fastnn.Dropout(0.5, rng=0)._forward, Z)
        grad = np.empty_like(Z)
        return functools.partial(losses.softmax_cross_entropy, Z, _ce_labels(n, d), grad)
    if lib == "numpy":
        if kernel == "batch_norm":
            return functools.partial(NumpyBatchNorm(n, d, Z.dtype), Z, dA)
        if kernel == "dropout":
            return numpy_dropout(Z)
        return functools.partial(NumpySoftmaxCE(n, d, Z.dtype), Z, _ce_labels(n, d))
    if lib == "torch":
        torch = optional("torch")
        if kernel == "batch_norm":
            return torch_batch_norm(Z, dA)
        if kernel == "dropout":
            return functools.partial(torch.nn.functional.dropout, torch.from_numpy(Z), 0.5, True)
        return torch_softmax_ce(Z, _ce_labels(n, d))
    return None


def _ce_labels(n, k):
    return np.random.default_rng(1).integers(0, k, n)


def traffic_passes(kernel, direction):
    """The memory-traffic floor of a pass as NumPy passes: 1 = a copy (one array in, one
    out), 2 = an add (two in, one out). Identity's backward reads dA alone."""
    if kernel == "batch_norm":
        return (1, 2)
    if direction == "forward" or kernel in ("identity", "dropout", "softmax_ce"):
        return (1,)
    return (2,)


def traffic_case(shape, passes, dtype=np.float32):
    """The fastest NumPy passes moving as many bytes as a kernel (``traffic_passes``)."""
    Z, dA = elementwise_data(shape, dtype)
    out = np.empty_like(Z)
    calls = [functools.partial(np.copyto, out, Z) if inputs == 1
             else functools.partial(np.add, Z, dA, out=out) for inputs in passes]
    return calls[0] if len(calls) == 1 else lambda: [call() for call in calls]


# -- dense forward/backward, one library at a time ----------------------------------------
DENSE_SHAPES = [(n, a, b) for n in (32, 128, 512) for a, b in ((784, 256), (256, 128), (128, 10))]


def dense_case(lib, n, a, b, dtype=np.float32, direction="forward"):
    """``lib``'s dense forward (X W + b) or backward (dW, db, dX) at batch n, in → out, outputs
    preallocated; None where ``lib`` is not fastnn, numpy or torch."""
    rng = np.random.default_rng(0)
    X, W = rng.random((n, a)).astype(dtype), rng.random((a, b)).astype(dtype)
    bias, dY = rng.random(b).astype(dtype), rng.random((n, b)).astype(dtype)
    Y, dX, dW, db = np.empty((n, b), dtype), np.empty_like(X), np.empty_like(W), np.empty_like(bias)
    forward = direction == "forward"
    if lib == "fastnn":
        from fastnn._config import dense_backend
        from fastnn_c import dense

        backend = dense_backend()  # the products as a training step runs them here
        return (functools.partial(dense.dense_forward, X, W, bias, Y, *backend) if forward
                else functools.partial(dense.dense_backward, X, W, dY, dW, db, dX, *backend))
    if lib == "numpy":
        if forward:
            return lambda: (np.matmul(X, W, out=Y), np.add(Y, bias, out=Y))
        return lambda: (np.matmul(X.T, dY, out=dW), np.sum(dY, axis=0, out=db), np.matmul(dY, W.T, out=dX))
    if lib == "torch":
        torch = optional("torch")
        tX, tW, tb, tdY = map(torch.from_numpy, (X, W, bias, dY))
        tY, tdX, tdW, tdb = map(torch.from_numpy, (Y, dX, dW, db))
        if forward:
            return functools.partial(torch.addmm, tb, tX, tW, out=tY)
        return lambda: (torch.mm(tX.T, tdY, out=tdW), torch.sum(tdY, 0, out=tdb),
                        torch.mm(tdY, tW.T, out=tdX))
    return None


# -- inference: predict class labels with the same weights in every library -----------------
def mlp_weights(sizes=MLP, dtype=np.float32, seed=0):
    """[(W (in, out), b), ...] of a ReLU MLP: He-normal weights, biases N(0, 0.1²). NumPy
    alone draws them, so every library's process builds the same network."""
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype),
             (0.1 * rng.standard_normal(b)).astype(dtype)) for a, b in zip(sizes[:-1], sizes[1:])]


def reference_labels(weights, X, rtol=1e-3):
    """(labels, ambiguous): the float64 argmax of the ReLU MLP's logits on X, and the rows
    whose two largest logits are closer than ``rtol``·max(1, max |logit|), where float32
    rounding may order them either way."""
    x = X.astype(np.float64)
    for i, (W, b) in enumerate(weights):
        x = x @ W.astype(np.float64) + b
        if i < len(weights) - 1:
            np.maximum(x, 0, out=x)
    top = np.sort(x, axis=1)[:, -2:]
    ambiguous = top[:, 1] - top[:, 0] < rtol * np.maximum(1, np.abs(x).max(axis=1))
    return x.argmax(axis=1), ambiguous


def label_mismatches(labels, reference, ambiguous):
    """Row indices where ``labels`` differ from the float64 reference, ambiguous rows aside."""
    labels = np.asarray(labels).reshape(-1)
    if labels.shape != reference.shape:
        raise ValueError(f"got {labels.shape[0]} labels for {reference.shape[0]} rows")
    return np.flatnonzero((labels != reference) & ~ambiguous)


def fastnn_mlp(weights):
    """A fastnn network holding ``weights`` (loaded through ``load_state_dict``)."""
    import fastnn

    sizes = [weights[0][0].shape[0]] + [W.shape[1] for W, _ in weights]
    net = fastnn.mlp(sizes, rng=0, dtype=weights[0][0].dtype)
    dense = [i for i, layer in enumerate(net.layers) if isinstance(layer, fastnn.Dense)]
    net.load_state_dict({f"{i}.{name}": value for i, (W, b) in zip(dense, weights)
                         for name, value in (("weight", W), ("bias", b))})
    return net


def onnx_label_model(weights):
    """``fastnn.export.to_onnx`` of the network, cut down to its ``label`` output (the ArgMax
    of the logits): Gemm, Relu, ..., Gemm, ArgMax. Returns the serialized model."""
    import onnx

    from fastnn.export import to_onnx

    model = to_onnx(fastnn_mlp(weights))
    graph = model.graph
    outputs = [output for output in graph.output if output.name == "label"]
    needed, nodes = {"label"}, []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    del graph.output[:], graph.node[:]
    graph.output.extend(outputs)
    graph.node.extend(reversed(nodes))
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def predictor(lib, weights, threads=None, onnx_model=None):
    """``prepare(X)`` for ``lib``'s forward pass + argmax: it returns a closure computing X's
    class labels in the library's own array type, X converted once, outside the closure.

    fastnn: ``net.eval()``, ``net.predict(X)``. numpy: matmul, bias, ReLU into preallocated
    buffers, ``argmax(out=)``. torch: ``nn.Sequential`` of ``Linear``/``ReLU`` under
    ``inference_mode`` (entered per call), ``argmax``. onnxruntime: ``onnx_model``
    (``onnx_label_model``, bytes or a path), ``intra_op_num_threads=threads``, default graph
    optimizations. jax: ``jax.jit`` of the forward pass and argmax, ``block_until_ready``.
    """
    if lib == "fastnn":
        net = fastnn_mlp(weights).eval()
        return lambda X: functools.partial(net.predict, X)
    if lib == "numpy":
        return functools.partial(_numpy_predict, weights)
    if lib == "torch":
        return _torch_predictor(weights)
    if lib == "onnxruntime":
        ort = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
        return lambda X: lambda: session.run(["label"], {"input": X})[0]
    if lib == "jax":
        return _jax_predictor(weights)
    raise ValueError(f"no predictor for {lib!r}")


def _numpy_predict(weights, X):
    Z = [np.empty((len(X), W.shape[1]), W.dtype) for W, _ in weights]
    labels = np.empty(len(X), np.intp)

    def predict():
        x = X
        for i, (W, b) in enumerate(weights):
            np.matmul(x, W, out=Z[i])
            np.add(Z[i], b, out=Z[i])
            if i < len(weights) - 1:
                np.maximum(Z[i], 0, out=Z[i])
            x = Z[i]
        return np.argmax(x, axis=1, out=labels)

    return predict


def _torch_predictor(weights):
    torch = importlib.import_module("torch")
    layers = []
    for W, b in weights:
        linear = torch.nn.Linear(*W.shape, dtype=torch.float32 if W.dtype == np.float32 else torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).eval()

    def prepare(X):
        tX = torch.from_numpy(X)

        @torch.inference_mode()
        def predict():
            return model(tX).argmax(dim=1)

        return predict

    return prepare


def _jax_logits(jax, params, x):
    for W, b in params[:-1]:
        x = jax.nn.relu(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def _jax_predictor(weights):
    jax = importlib.import_module("jax")
    params = [(jax.numpy.asarray(W), jax.numpy.asarray(b)) for W, b in weights]
    forward = jax.jit(lambda params, x: jax.numpy.argmax(_jax_logits(jax, params, x), axis=1))

    def prepare(X):
        x = jax.numpy.asarray(X)
        return lambda: forward(params, x).block_until_ready()

    return prepare


def jax_step(sizes, n, dtype=np.float32, lr=0.01):
    """The whole SGD step of the ReLU MLP + softmax cross-entropy under one ``jax.jit``
    (forward, loss, gradient, update), parameters donated. The closure does not wait for
    the step: time it with its ``block_until_ready`` after the last call, so that a run of
    steps costs what a training loop's does."""
    jax = importlib.import_module("jax")
    jnp = jax.numpy
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in mlp_weights(sizes, dtype)]
    X, y = batch(sizes, n, dtype)
    x, labels = jnp.asarray(X), jnp.asarray(y.astype(np.int32))

    def loss(params, x, labels):
        log_p = jax.nn.log_softmax(_jax_logits(jax, params, x))
        return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))

    @functools.partial(jax.jit, donate_argnums=0)
    def update(params, x, labels):
        grads = jax.grad(loss)(params, x, labels)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    return _JaxStep(jax, update, params, x, labels)


class _JaxStep:
    def __init__(self, jax, update, params, *args):
        self.jax, self.update, self.params, self.args = jax, update, params, args

    def __call__(self):
        self.params = self.update(self.params, *self.args)

    def block_until_ready(self):
        self.jax.block_until_ready(self.params)

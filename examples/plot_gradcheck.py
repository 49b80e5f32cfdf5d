"""
Gradient checking a custom network
==================================

A layer's backward pass is easy to get subtly wrong, and a network with a wrong gradient
often still trains, only worse. :func:`fastnn.gradcheck` compares the gradients that
``backward`` computes with central differences, (L(θ + ε) − L(θ − ε)) / 2ε, entry by
entry, and reports for each tensor the relative error ‖a − n‖ / (‖a‖ + ‖n‖) read against
the bands of the gradient-checking notes: at most 1e-7 is fine, around 1e-5 asks for a
second look, 1e-3 and above is almost certainly a bug.

Here a new layer, Swish with a learned slope (Ramachandran et al. 2017), is written in
NumPy by subclassing :class:`fastnn.layers.Layer`, checked alone, then checked inside a
network built by hand from fastnn's layers; a copy with a deliberate bug shows what a
wrong gradient looks like.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.layers import Layer, Parameter

# %%
# The layer
# ---------
#
# y = x·σ(βx), with one learned β. A layer implements ``_forward`` and ``_backward`` (the
# public ``forward``/``backward`` check the arrays first), lists its parameters, and writes
# each parameter's gradient into ``.grad``:
#
# ∂y/∂x = σ(βx) + βx·σ(βx)(1 − σ(βx)),   ∂y/∂β = x²·σ(βx)(1 − σ(βx)).


class Swish(Layer):
    """x·σ(βx) with a learned β (one for the whole layer)."""

    def __init__(self, beta=1.0, dtype=np.float64):
        super().__init__()
        self.beta = Parameter(np.full(1, beta, dtype=dtype), "beta", regularize=False)

    def parameters(self):
        return [self.beta]

    def get_config(self):
        return {"beta": float(self.beta.data[0])}

    def _forward(self, X):
        self._input = X
        self._sigma = 1.0 / (1.0 + np.exp(-self.beta.data[0] * X))
        self._output = X * self._sigma
        return self._output

    def _backward(self, dY):
        X, s, beta = self._input, self._sigma, self.beta.data[0]
        ds = s * (1.0 - s)
        self.beta.grad[0] = np.sum(dY * X * X * ds)
        return dY * (s + beta * X * ds)


class BuggySwish(Swish):
    """The same layer with a common slip: the chain rule's factor β is forgotten in ∂y/∂x."""

    def _backward(self, dY):
        X, s = self._input, self._sigma
        ds = s * (1.0 - s)
        self.beta.grad[0] = np.sum(dY * X * X * ds)
        return dY * (s + X * ds)


# %%
# Checked alone
# -------------
#
# For a layer, gradcheck differentiates L = Σ G ⊙ layer(X) for a fixed random G, with
# respect to the input and to every parameter. In float64: in float32 rounding alone
# gives relative errors of 1e-3 and more, and gradcheck warns that the check is meaningless.
rng = np.random.default_rng(0)
X = rng.standard_normal((8, 5))
print(fastnn.gradcheck(Swish(beta=1.5), X, check_input=True))
print()
print(fastnn.gradcheck(BuggySwish(beta=1.5), X, check_input=True))

# %%
# Checked in a network
# --------------------
#
# A network built by hand, in float64, from fastnn's layers and the new one: Dense, batch
# normalization, Swish, dropout (its mask is frozen during the check) and a softmax
# output. ``max_entries`` checks 60 random entries of each tensor, enough to catch a wrong
# formula and much faster than all 25,000 weights of the first layer.
#
# The first Dense layer has no bias: batch normalization subtracts it again, so its
# gradient is exactly zero, and a relative error between zero and the rounding noise of
# central differences (about 1e-10) is 1, a false alarm.
DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
X_train, y_train, _, _ = fastnn.datasets.load_dataset(
    "mnist", data_dir=DATA / "mnist-small", download_missing=False, progress=False)
X, y = X_train[:32].astype(np.float64), y_train[:32]


def network(swish):
    return fastnn.Sequential([
        fastnn.Dense(784, 32, bias=False, init="he_normal", rng=0, dtype=np.float64),
        fastnn.BatchNorm(32, dtype=np.float64),
        swish,
        fastnn.Dropout(0.2, rng=0),
        fastnn.Dense(32, 10, rng=1, dtype=np.float64),
    ])


results = {}
for label, swish in (("Swish", Swish(beta=1.5)), ("BuggySwish", BuggySwish(beta=1.5))):
    results[label] = fastnn.gradcheck(network(swish), X, y, max_entries=60)
    print(label)
    print(results[label])
    print()

# %%
# Every tensor of the correct network is in the "fine" band, one to two orders of
# magnitude below 1e-7. With the bug, the tensors above the layer and Swish's own β stay
# fine (their formulas are right), while every tensor below it, which receives its wrong
# ∂L/∂x, is in the "almost certainly wrong" band: where the fine rows end is where the
# bug is.
fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
names = [check.name for check in results["Swish"].checks]
x = np.arange(len(names))
for offset, (label, result) in zip((-0.2, 0.2), results.items()):
    errors = [max(check.relative_error, 1e-17) for check in result.checks]
    ax.bar(x + offset, errors, width=0.4, label=label)
for edge, verdict in ((1e-7, "fine below"), (1e-3, "almost certainly wrong above")):
    ax.axhline(edge, color="black", linestyle=":", linewidth=1)
    ax.annotate(verdict, (len(names) - 0.5, edge), ha="right", va="bottom", fontsize="small")
ax.set_xticks(x, names, rotation=20, ha="right")
ax.set(yscale="log", ylabel="relative error ‖a − n‖ / (‖a‖ + ‖n‖)",
       title="gradcheck of the hand-built network, per tensor")
ax.legend(loc="center left")
plt.show()

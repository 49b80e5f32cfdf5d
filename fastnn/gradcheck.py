"""Gradient checking by central differences (CS231n/CS224n; the seeds' blog post).

For every parameter entry θ_i, the numerical derivative
(L(θ + ε e_i) − L(θ − ε e_i)) / 2ε is compared with the analytical gradient from
``backward``. Each tensor gets the relative error ‖a − n‖ / (‖a‖ + ‖n‖) over all its
checked entries (the post's formula 3-3), read against the bands (``BANDS``):

- ≤ 1e-7: fine, the gradient is right (the post);
- ≤ 1e-4: acceptable where the objective has kinks (CS231n's notes on gradient checks):
  a ReLU-family unit, hardtanh, SELU or ELU with α ≠ 1, the hinge loss or the l1 penalty
  between the tensor and the loss, where a ±ε step that crosses a kink makes the central
  difference wrong by up to the jump in slope;
- otherwise below 1e-3: look again (a small bug, a kink, float32 somewhere);
- ≥ 1e-3 (and NaN): almost certainly wrong (the post: "much larger than 1e-3").

Each tensor gets its rule: "smooth" (pass at ≤ 1e-7) or "kinks" (pass at ≤ 1e-4, naming
the first non-smooth piece the tensor's gradient flows through). Which pieces are kinked is
known here (``kinks_of``), not guessed from the numbers; a ``threshold`` given by the
caller replaces both rules for every tensor.

The smooth edge is tight for large trained networks: the numerical derivative's rounding
error is about u·|L|/ε, absolute, so a tensor whose gradient entries are small next to the
loss reaches 1e-7 from rounding alone (the README's trained MNIST network: entries of 1e-5
to 1e-4 against L ≈ 0.13 gave 1.1e-7 on its first layers, which its ReLUs put under the
kinks rule; its last layer, smooth, stayed at 1e-8 to 7e-8 on the seeds and SIMD levels
tried). A smooth tensor just above 1e-7 with tiny gradients is worth reading against
this estimate before hunting for a bug.

The step ε. The post uses ε = 1e-7; fastnn's default is ε = 1e-6. In float64 the central
difference has two errors: truncation, ε²·|L‴|/6 (the Taylor terms the symmetric
difference does not cancel), and rounding, about u·|L|/ε with u ≈ 1.1e-16 (the two loss
values agree in their leading digits, so their difference keeps only the last ones). The
sum is smallest near ε = (3u)^(1/3) ≈ 7e-6 for L, L‴ of order 1. Below that, rounding
dominates and the relative error of the gradient grows tenfold per decade of ε (the
gradient is smaller than L, so it sits well above u/ε): on a small tanh network it is
~1e-9 at ε = 1e-6, ~2e-8 at the post's 1e-7 and ~2e-7 at 1e-8 (benchmarks/README.md).
The post's ε therefore still lands in the "fine" band in float64 (``eps=1e-7`` works), but
with a tenth of the margin; 1e-6 is kept as the default, and a much smaller ε would make
correct gradients "look again".
In float32 (u ≈ 6e-8) rounding alone is ~1e-2 to 1e-1 at these ε: the check is
meaningless there and a warning says so; convert with ``net.astype(np.float64)``.

What is differentiated:
- a ``Sequential`` network: its loss L(X, y) (y is required);
- a ``Layer``: L = Σ G ⊙ layer(X) for a fixed random G (so every output matters);
- a ``Loss``: L(output, y) with respect to ``output`` (pass the output as X).
"""
import contextlib
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from fastnn._validation import check_number, check_rng
from fastnn.layers import Layer, PReLU, RReLU
from fastnn.losses import Loss
from fastnn.network import Sequential


class GradcheckError(AssertionError):
    """Raised by ``gradcheck(..., raise_exception=True)`` when a tensor fails the check."""


class GradcheckWarning(UserWarning):
    """The check runs where its result means little (float32, stochastic layers)."""


#: The bands for the relative error: (upper edge, verdict), checked in order; the second
#: applies only to a tensor whose objective has kinks.
BANDS = ((1e-7, "fine"), (1e-4, "fine with kinks"), (1e-3, "look again"),
         (math.inf, "almost certainly wrong"))
#: The edge of the smooth rule (the post) and of the kinks rule (CS231n).
_SMOOTH_EDGE, _KINKS_EDGE = BANDS[0][0], BANDS[1][0]
_LEGEND = ("bands: <= 1e-7 fine; <= 1e-4 fine where kinks; below 1e-3 look again; "
          ">= 1e-3 almost certainly wrong")


def band(relative_error, kinks=False):
    """The verdict on a relative error ‖a − n‖ / (‖a‖ + ‖n‖) (see ``BANDS``).

    "fine" (≤ 1e-7), "fine with kinks" (≤ 1e-4, only when ``kinks``), "look again" (below
    1e-3) or "almost certainly wrong" (≥ 1e-3, and NaN).
    """
    if not relative_error < BANDS[2][0]:
        return BANDS[3][1]
    if relative_error <= _SMOOTH_EDGE:
        return BANDS[0][1]
    return BANDS[1][1] if kinks and relative_error <= _KINKS_EDGE else BANDS[2][1]


def kinks_of(piece):
    """Why ``piece`` (a layer or loss) is not differentiable everywhere, or None if it is.

    Kinks (a jump in the derivative): relu, leaky_relu (α ≠ 1), PReLU and RReLU at 0;
    hardtanh at ±1; elu with α ≠ 1 and selu at 0 (slopes α and 1, λα and λ); the hinge loss
    where a margin is 0. The other activations and losses are continuously differentiable.
    """
    name = getattr(piece, "name", None)
    if isinstance(piece, (PReLU, RReLU)) or name in ("relu", "hardtanh", "selu", "hinge"):
        return name or type(piece).__name__
    if (name == "leaky_relu" or name == "elu") and piece.alpha != 1:
        return name
    return None


@dataclass
class TensorCheck:
    """Outcome for one tensor: relative error, the rule it was read by, the worst entry.

    ``rule`` is "smooth", "kinks (<where>)" or "threshold"; ``threshold`` is its edge.
    """

    name: str
    relative_error: float
    worst_index: tuple
    worst_analytic: float
    worst_numeric: float
    n_checked: int
    rule: str = "smooth"
    threshold: float = _SMOOTH_EDGE

    @property
    def kinks(self):
        return self.rule.startswith("kinks")

    @property
    def passed(self):
        return self.relative_error <= self.threshold

    @property
    def band(self):
        """The verdict on ``relative_error`` (see ``band``)."""
        return band(self.relative_error, self.kinks)


@dataclass
class GradcheckResult:
    """Per-tensor outcomes; ``passed`` when every tensor is within its rule's threshold.

    ``threshold`` is the caller's threshold, or None when each tensor's rule set its own.
    """

    threshold: float = None
    checks: list = field(default_factory=list)

    @property
    def passed(self):
        return all(c.passed for c in self.checks)

    @property
    def max_relative_error(self):
        return max((c.relative_error for c in self.checks), default=0.0)

    def __str__(self):
        rule_width = max([len(self._rule(c)) for c in self.checks] + [4])
        rows = [f"{'tensor':<24} {'rel. error':>11} {'checked':>8}  {'rule':<{rule_width}}  "
                f"{'band':<22}  worst (index: analytic vs numeric)"]
        for c in self.checks:
            flag = "" if c.passed else "  FAIL"
            rows.append(f"{c.name:<24} {c.relative_error:11.3e} {c.n_checked:8d}  "
                        f"{self._rule(c):<{rule_width}}  {c.band:<22}  "
                        f"{c.worst_index}: {c.worst_analytic:.6e} vs {c.worst_numeric:.6e}{flag}")
        if self.threshold is None:
            how = "each tensor by its rule: smooth <= 1e-7, kinks <= 1e-4"
        else:
            how = f"threshold {_edge(self.threshold)} for every tensor"
        rows.append(f"gradcheck {'passed' if self.passed else 'FAILED'} ({how}; {_LEGEND})")
        failing = [c for c in self.checks if not c.passed]
        if failing:
            worst = max(failing, key=lambda c: c.relative_error if c.relative_error == c.relative_error
                        else math.inf)
            if worst.band == "almost certainly wrong":
                rows.append(f"{worst.name}: {worst.relative_error:.1e} >= 1e-3: the analytical "
                            f"gradient is almost certainly wrong (worst entry {worst.worst_index})")
            else:
                rows.append(f"{worst.name}: {worst.relative_error:.1e} is above its rule's "
                            f"{_edge(worst.threshold)}: a small bug, float32 somewhere, or a kink within "
                            "eps of an entry; another input or rng tells them apart")
        return "\n".join(rows)

    @staticmethod
    def _rule(check):
        return f"{check.rule} <= {_edge(check.threshold)}"


def _edge(x):
    """1e-4 rather than 0.0001 or 1e-04."""
    if x == 0 or x >= 1e-2:
        return f"{x:g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def relative_error(a, b):
    """‖a − b‖ / (‖a‖ + ‖b‖), and 0 when both are zero."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denominator == 0 else float(np.linalg.norm(a - b) / denominator)


def gradcheck(target, X, y=None, *, eps=1e-6, threshold=None, check_input=False,
              max_entries=None, rng=0, raise_exception=False):
    """Compare analytical gradients of ``target`` with central differences.

    Parameters
    ----------
    target : Sequential, Layer or Loss
        What to check (see the module docstring for the function differentiated).
    X : array
        Input batch (for a Loss: the output/logits to differentiate at).
    y : array, optional
        Targets; required for networks and losses.
    eps : float, default 1e-6
        Central-difference step; the post's 1e-7 also works in float64 (the module
        docstring weighs truncation against rounding error).
    threshold : float, optional
        Largest relative error that passes, for every tensor. By default each tensor's rule
        sets it: 1e-7 (the post's "fine" edge) where the objective is smooth in that
        tensor, 1e-4 where a kink lies between it and the loss (``kinks_of``).
    check_input : bool
        Also check ∂L/∂X (always on for a Loss).
    max_entries : int, optional
        Check at most this many randomly chosen entries per tensor (for large layers).
    rng : None, int or Generator
        Chooses the projection G for layers and the sampled entries.
    raise_exception : bool
        Raise ``GradcheckError`` with the report instead of returning a failing result.

    Returns
    -------
    GradcheckResult
        ``print(result)`` shows one row per tensor, with the rule it was read by.
    """
    rng = check_rng(rng)
    if threshold is not None:
        threshold = check_number(threshold, "threshold", low=0)
    X = np.array(X, dtype=np.float64 if np.asarray(X).dtype.kind != "f" else None, copy=True)
    X = np.ascontiguousarray(X)
    if isinstance(target, Sequential):
        if y is None:
            raise ValueError("gradcheck of a network needs targets y")
        value, gradients, tensors, layers, kinks = _network_problem(target, X, y)
    elif isinstance(target, Layer):
        value, gradients, tensors, layers, kinks = _layer_problem(target, X, rng)
    elif isinstance(target, Loss):
        if y is None:
            raise ValueError("gradcheck of a loss needs targets y")
        value, gradients, tensors, layers, kinks = _loss_problem(target, X, y)
        check_input = True
    else:
        raise TypeError(f"gradcheck takes a Sequential, Layer or Loss, got {type(target).__name__}")

    if any(values.dtype != np.float64 for values in tensors.values()):
        warnings.warn("gradcheck in float32 is meaningless: rounding error (~1e-3 relative) swamps "
                      "the comparison; use net.astype(np.float64) / dtype=np.float64",
                      GradcheckWarning, stacklevel=2)
    if not check_input:
        tensors.pop("input", None)

    result = GradcheckResult(threshold=threshold)
    with contextlib.ExitStack() as stack:
        for layer in layers:
            if layer.stochastic and layer.training:
                if not hasattr(layer, "frozen_randomness"):
                    raise ValueError(f"{layer!r} draws new random numbers on every forward pass; "
                                     "a gradient check of it is meaningless in training mode")
                stack.enter_context(layer.frozen_randomness())
        saved = [layer.state_dict() for layer in layers]
        try:
            analytic = gradients()
            # The perturbations write the parameters' writable ``values`` in place; the
            # restore below counts as the write (load_state_dict), also after an error.
            for name, values in tensors.items():
                check = _check_tensor(name, values, analytic[name], value, eps, max_entries, rng)
                if threshold is not None:
                    check.rule, check.threshold = "threshold", threshold
                elif kinks.get(name):
                    check.rule, check.threshold = f"kinks ({kinks[name]})", _KINKS_EDGE
                result.checks.append(check)
        finally:
            for layer, state in zip(layers, saved):
                layer.load_state_dict(state)
    if raise_exception and not result.passed:
        raise GradcheckError(str(result))
    return result


def _check_tensor(name, values, analytic, loss_fn, eps, max_entries, rng):
    flat = values.reshape(-1)
    indices = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        indices = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
    analytic = analytic.reshape(-1)[indices].astype(np.float64)
    numeric = np.empty(len(indices))
    for n, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = loss_fn()
        flat[i] = original - eps
        minus = loss_fn()
        flat[i] = original
        numeric[n] = (plus - minus) / (2 * eps)
    worst = int(np.argmax(np.abs(analytic - numeric))) if len(indices) else 0
    return TensorCheck(
        name=name,
        relative_error=relative_error(analytic, numeric),
        worst_index=(tuple(int(i) for i in np.unravel_index(indices[worst], values.shape))
                     if len(indices) else ()),
        worst_analytic=float(analytic[worst]) if len(indices) else 0.0,
        worst_numeric=float(numeric[worst]) if len(indices) else 0.0,
        n_checked=len(indices),
    )


def _with_input_grad(layer, backward):
    """Run ``backward`` with the layer computing ∂L/∂X even if it normally skips it."""
    keep = layer.needs_input_grad
    layer.needs_input_grad = True
    try:
        return backward().copy()
    finally:
        layer.needs_input_grad = keep


def _network_problem(net, X, y):
    """L(X, y) of the network; tensors are the input and every parameter."""
    X = np.ascontiguousarray(X, dtype=net.dtype)
    params = {f"{i}.{type(layer).__name__}.{p.name}": p
              for i, layer in enumerate(net.layers) for p in layer.parameters()}

    def value():
        return net.loss(X, y)

    def gradients():
        net.loss(X, y)
        grads = {"input": _with_input_grad(net.layers[0], net.backward)}
        grads.update({name: p.grad.copy() for name, p in params.items()})
        return grads

    tensors = {"input": X, **{name: p.values for name, p in params.items()}}
    # The nearest non-smooth piece on each tensor's way to the loss (layers after its own).
    later = [None] * (len(net.layers) + 1)
    later[-1] = kinks_of(net.loss_fn) and f"{net.loss_fn.name} loss"
    for i in reversed(range(len(net.layers))):
        kink = kinks_of(net.layers[i])
        later[i] = f"{i}.{kink}" if kink else later[i + 1]
    kinks = {"input": later[0]}
    for i, layer in enumerate(net.layers):
        for p in layer.parameters():
            kinks[f"{i}.{type(layer).__name__}.{p.name}"] = (
                later[i + 1] or (net.l1 and p.regularize and "l1 penalty") or None)
    return value, gradients, tensors, net.layers, kinks


def _layer_problem(layer, X, rng):
    """L = Σ G ⊙ layer(X) for a fixed random G; tensors are the input and the parameters."""
    X = np.ascontiguousarray(X, dtype=layer.dtype_for(X))
    G = rng.standard_normal((X.shape[0], layer.output_features(X.shape[1]))).astype(X.dtype)
    params = {f"{type(layer).__name__}.{p.name}": p for p in layer.parameters()}

    def value():
        return float(np.sum(G.astype(np.float64) * layer.forward(X)))

    def gradients():
        layer.forward(X)
        grads = {"input": _with_input_grad(layer, lambda: layer.backward(G))}
        grads.update({name: p.grad.copy() for name, p in params.items()})
        return grads

    tensors = {"input": X, **{name: p.values for name, p in params.items()}}
    # fastnn's parameters enter their layer smoothly (PReLU's α linearly); its input may not.
    kink = kinks_of(layer)
    return value, gradients, tensors, [layer], {"input": kink}


def _loss_problem(loss, output, y):
    """L(output, y); the only tensor is the output."""

    def value():
        return loss.forward(output, y)

    def gradients():
        loss.forward(output, y)
        return {"output": loss.backward().copy()}

    kink = kinks_of(loss) and f"{loss.name} loss"
    return value, gradients, {"output": output}, [], {"output": kink}

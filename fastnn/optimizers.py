"""Optimizers: in-place, fused compiled updates of a list of parameters."""
import numpy as np

from fastnn.layers import Parameter
from fastnn_c import optim as _optim


class Optimizer:
    """Base class: holds the parameters and the hyper-parameters; ``step()`` updates in place."""

    def __init__(self, params, lr):
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] is a {type(p).__name__}, not a fastnn Parameter "
                                "(pass net.parameters())")
        if not params:
            raise ValueError("the optimizer got no parameters")
        if not (isinstance(lr, (int, float)) and lr > 0 and np.isfinite(lr)):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self.params = params
        self.lr = float(lr)
        self.step_count = 0

    def step(self):
        """Apply one update to every parameter from its ``grad``."""
        for p in self.params:
            self._update(p.data.reshape(-1), p.grad.reshape(-1))
        self.step_count += 1

    def state_dict(self):
        """Hyper-parameters and step count (subclasses add their per-parameter state)."""
        return {"lr": self.lr, "step_count": self.step_count}

    def load_state_dict(self, state):
        self.lr = float(state["lr"])
        self.step_count = int(state["step_count"])


class SGD(Optimizer):
    """Plain stochastic gradient descent: θ ← θ − α ∇θ L."""

    def _update(self, data, grad):
        _optim.sgd_update(data, grad, self.lr)

    def __repr__(self):
        return f"SGD(lr={self.lr})"

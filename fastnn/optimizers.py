"""Optimizers: in-place, fused compiled updates of a list of parameters.

Every ``step()`` makes one compiled pass over each parameter, its gradient and its state
(``fastnn_c.optim``), plus one read-only pass over the gradients for their global L2 norm,
which is stored in ``optimizer.last_grad_norm`` (before clipping) so training logs can
show it.

Shared options
--------------
weight_decay : float, default 0
    L2 penalty λ: the gradient becomes g + λθ (for AdamW: decoupled decay, see there).
    It applies only to parameters with ``Parameter.regularize == True``, i.e. to weights
    and not to biases or normalization parameters (CS224n). torch.optim decays every
    parameter unless told otherwise through parameter groups.
clip_norm : float, optional
    Clip by global norm (Keras ``global_clipnorm``; torch ``clip_grad_norm_``): when the
    L2 norm ‖g‖ of all gradients together exceeds ``clip_norm``, every gradient is scaled
    by clip_norm / (‖g‖ + 1e-6) (torch's formula). The scaling happens inside the update
    pass; ``p.grad`` itself is left unchanged.
clip_value : float, optional
    Clip each gradient entry to [−clip_value, clip_value] (Keras ``clipvalue``), after the
    norm scaling. The weight-decay term is added after clipping, as in torch.

A non-finite gradient norm is not an error: clipping then yields NaN parameters (as in
torch); ``last_grad_norm`` shows it.

State
-----
``state_dict()`` returns a flat dict ``{"name", "lr", "step_count", "state.<i>.<slot>"}``
where ``i`` is the parameter's index in ``params`` and each slot an array of the
parameter's shape and dtype (e.g. ``"state.0.m"``). The other hyper-parameters are not
part of the state: rebuild the optimizer with ``get(name, params, **get_config())``, then
``load_state_dict``; training then continues bit for bit.
"""
import inspect
import math
import numbers

import numpy as np

from fastnn._validation import FLOAT_DTYPES, check_number, from_registry, scalar_value
from fastnn._views import BoundViews, specialized
from fastnn.layers import Parameter
from fastnn_c import optim as _optim

#: The update kernels' float32 and float64 specializations, called with bound memoryviews.
_OPTIM = specialized(_optim.sgd_update, _optim.momentum_update, _optim.adagrad_update,
                     _optim.rmsprop_update, _optim.adam_update)


def _check_params(params):
    params = list(params)
    if not params:
        raise ValueError("the optimizer got no parameters")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] is a {type(p).__name__}, not a fastnn Parameter "
                            "(pass net.parameters())")
        if not isinstance(p.data, np.ndarray) or p.data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"params[{i}] ({p.name}) must hold a float32 or float64 array, "
                            f"got {getattr(p.data, 'dtype', type(p.data).__name__)}")
        if (not isinstance(p.grad, np.ndarray) or p.grad.shape != p.data.shape
                or p.grad.dtype != p.data.dtype):
            raise ValueError(f"params[{i}] ({p.name}): grad must be an array of the same shape "
                             f"and dtype as data {p.data.shape} {p.data.dtype}")
        if not (p.data.flags.c_contiguous and p.grad.flags.c_contiguous):
            raise ValueError(f"params[{i}] ({p.name}): data and grad must be C-contiguous "
                             "(they are updated in place)")
    if len({id(p) for p in params}) != len(params):
        raise ValueError("params contains the same Parameter twice")
    return params



def global_grad_norm(params):
    """L2 norm of all gradients of ``params`` together, √(Σ g²), summed in double."""
    return math.sqrt(sum(_optim.sum_squares(p.grad) for p in params))


def clip_grad_norm(params, max_norm):
    """Scale the gradients of ``params`` in place so their global L2 norm is at most ``max_norm``.

    Like ``torch.nn.utils.clip_grad_norm_``: when ‖g‖ > max_norm every gradient is
    multiplied by max_norm / (‖g‖ + 1e-6). Returns ‖g‖ before clipping.
    """
    params = _check_params(params)
    max_norm = check_number(max_norm, "max_norm", low=0, low_open=True)
    norm = global_grad_norm(params)
    scale = _clip_scale(norm, max_norm)
    if scale != 1.0:
        for p in params:
            _optim.clip_inplace(p.grad, scale)
    return norm


def clip_grad_value(params, clip_value):
    """Clip every gradient entry of ``params`` to [−clip_value, clip_value], in place."""
    params = _check_params(params)
    clip_value = check_number(clip_value, "clip_value", low=0, low_open=True)
    for p in params:
        _optim.clip_inplace(p.grad, 1.0, clip_value)


def _clip_scale(norm, max_norm):
    if max_norm is None or not norm > max_norm:
        return 1.0
    return max_norm / (norm + 1e-6)


class Optimizer:
    """Base class: holds the parameters and hyper-parameters; ``step()`` updates in place.

    Subclasses set ``name`` and ``slots`` and implement
    ``_update(kernels, data, grad, state, weight_decay, grad_scale, clip_value)`` on flat
    memoryviews (``kernels``: the update kernels for the parameter's dtype),
    calling one kernel of ``fastnn_c.optim``.

    Parameters
    ----------
    params : iterable of Parameter
        Typically ``net.parameters()``.
    lr : float
        Learning rate α > 0; schedules change ``optimizer.lr`` between steps.
    weight_decay, clip_norm, clip_value
        See the module docstring.

    Attributes
    ----------
    params : list of Parameter
    lr : float
    step_count : int
        Number of ``step()`` calls so far.
    last_grad_norm : float or None
        Global L2 norm of the gradients seen by the last ``step()``, before clipping. With
        ``clip_norm`` it is computed in the step; otherwise on first access (an extra pass
        over the gradients that unclipped training need not pay every step), so read it
        before the next ``backward()``.
    """

    #: Registry key, also stored in ``state_dict()["name"]``.
    name = None
    #: Names of the per-parameter state arrays.
    slots = ()

    def __init__(self, params, lr, weight_decay=0.0, clip_norm=None, clip_value=None):
        self.params = _check_params(params)
        # lr = 0 is allowed, as in torch: a schedule can end there (cosine's min_lr=0).
        self.lr = check_number(lr, "lr", low=0)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)
        self.clip_norm = (None if clip_norm is None
                          else check_number(clip_norm, "clip_norm", low=0, low_open=True))
        self.clip_value = (None if clip_value is None
                           else check_number(clip_value, "clip_value", low=0, low_open=True))
        self.step_count = 0
        self._grad_norm = None
        self._fused = False
        self.state = [{slot: np.zeros_like(p.values) for slot in self.slots} for p in self.params]
        # The kernels' memoryviews of the parameters, gradients and state, acquired once.
        self._views = BoundViews()
        self._param_ids = frozenset(id(p) for p in self.params)
        self._asked = (None, False)  # the last tuple plain_sgd_rate was asked about, covers?

    @property
    def last_grad_norm(self):
        if self._grad_norm is None and self.step_count and not self._fused:
            self._grad_norm = global_grad_norm(self.params)
        return self._grad_norm

    def plain_sgd_rate(self, params):
        """The rate α when ``step()`` would be exactly θ ← θ − α·g on the parameters
        ``params`` (the same set as ``self.params``), else None.

        The question a caller asks before applying the update itself, fused into its own
        computation (``Sequential.train_step`` folds it into the weight-gradient GEMMs,
        ``fastnn.layers.ExecutionPlan``); it then calls ``record_fused_step()``. Only
        ``SGD`` without momentum, weight decay on regularized parameters or clipping says
        yes.
        """
        return None

    def record_fused_step(self):
        """Count one step whose update the caller applied itself (see ``plain_sgd_rate``).

        ``step_count`` advances as ``step()`` would; ``last_grad_norm`` becomes None, since
        the gradients of a fused step are never stored.
        """
        self.step_count += 1
        self._grad_norm = None
        self._fused = True

    def _covers(self, params):
        """Whether ``params`` is the set ``self.params``; remembered for a tuple (which
        cannot change), so a network asking every step pays for the set once."""
        asked, covers = self._asked
        if params is not asked:
            covers = frozenset(map(id, params)) == self._param_ids
            if isinstance(params, tuple):
                self._asked = (params, covers)
        return covers

    def step(self, grad_norm=None):
        """Apply one update to every parameter from its ``grad``.

        ``grad_norm``: the global L2 norm of these gradients when the caller has computed it
        already (``fit`` does, to check it is finite); it saves a pass over the gradients.
        """
        self._fused = False
        if grad_norm is None and self.clip_norm is not None:
            grad_norm = global_grad_norm(self.params)
        self._grad_norm = grad_norm
        scale = 1.0 if self.clip_norm is None else _clip_scale(grad_norm, self.clip_norm)
        clip = math.inf if self.clip_value is None else self.clip_value
        self.step_count += 1
        views = self._views
        for p, state in zip(self.params, self.state):
            decay = self.weight_decay if p.regularize else 0.0
            self._update(_OPTIM[p.values.dtype], views.own_flat(p.values), views.own_flat(p.grad),
                         {slot: views.own_flat(array) for slot, array in state.items()}, decay,
                         scale, clip)
            p.mark_changed()

    def get_config(self):
        """Constructor hyper-parameters (JSON-serialisable): ``get(name, params, **config)``."""
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                "clip_norm": self.clip_norm, "clip_value": self.clip_value}

    def state_dict(self):
        """Flat dict: name, lr, step_count and copies of every state array (see module doc)."""
        state = {"name": self.name, "lr": self.lr, "step_count": self.step_count}
        for i, slots in enumerate(self.state):
            for slot, array in slots.items():
                state[f"state.{i}.{slot}"] = array.copy()
        return state

    def load_state_dict(self, state):
        """Restore ``lr``, ``step_count`` and the state arrays from ``state_dict()`` output.

        Raises ValueError if the state is for another optimizer kind, if keys are missing
        or unexpected, or if an array's shape or dtype differs from its parameter's.
        """
        name = scalar_value(state.get("name"))
        if name != self.name:
            raise ValueError(f"state is for optimizer {name!r}, this one is {self.name!r}")
        expected = {"name", "lr", "step_count"} | {
            f"state.{i}.{slot}" for i in range(len(self.params)) for slot in self.slots}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__} state is missing {missing}, has unexpected "
                             f"{unexpected} (was it saved for the same parameters and options?)")
        lr = check_number(scalar_value(state["lr"]), "state['lr']", low=0)
        step_count = scalar_value(state["step_count"])
        if not isinstance(step_count, numbers.Integral) or step_count < 0:
            raise ValueError(f"state['step_count'] must be an int >= 0, got {step_count!r}")
        for i, (p, slots) in enumerate(zip(self.params, self.state)):
            for slot, target in slots.items():
                value = state[f"state.{i}.{slot}"]
                if (not isinstance(value, np.ndarray) or value.shape != target.shape
                        or value.dtype != target.dtype):
                    got = (f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray)
                           else type(value).__name__)
                    raise ValueError(f"state['state.{i}.{slot}'] is {got}, expected an array "
                                     f"{target.shape} {target.dtype} for params[{i}] ({p.name})")
        for i, slots in enumerate(self.state):
            for slot, target in slots.items():
                np.copyto(target, state[f"state.{i}.{slot}"])
        self.lr = lr
        self.step_count = int(step_count)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum or Nesterov momentum.

    Update rules (g includes weight decay and clipping, α = lr, μ = momentum):

    - plain (μ = 0): θ ← θ − α g
    - momentum (CS224n): v ← μ v − α g;  θ ← θ + v
    - Nesterov (Sutskever et al. 2013, in the CS231n form):
      v' ← μ v − α g;  θ ← θ − μ v + (1 + μ) v'

    torch.optim.SGD keeps b ← μ b + g and steps θ ← θ − α b (Nesterov: θ ← θ − α(g + μ b)).
    With a constant lr the two are the same (v = −α b); when lr changes, torch's new lr
    also rescales the accumulated velocity, here it applies to new gradients only.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Needs momentum > 0.
    weight_decay, clip_norm, clip_value
        See ``fastnn.optimizers``.
    """

    name = "sgd"

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 clip_norm=None, clip_value=None):
        self.momentum = check_number(momentum, "momentum", low=0, high=1, high_open=True)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = nesterov
        self.slots = ("velocity",) if self.momentum > 0 else ()
        super().__init__(params, lr, weight_decay, clip_norm, clip_value)

    def plain_sgd_rate(self, params):
        plain = (self.momentum == 0 and self.clip_norm is None and self.clip_value is None
                 and (self.weight_decay == 0 or not any(p.regularize for p in self.params)))
        return self.lr if plain and self._covers(params) else None

    def _update(self, kernels, data, grad, state, weight_decay, grad_scale, clip_value):
        if self.momentum == 0:
            kernels.sgd_update(data, grad, self.lr, weight_decay, grad_scale, clip_value)
        else:
            kernels.momentum_update(data, grad, state["velocity"], self.lr, self.momentum,
                                    weight_decay, grad_scale, clip_value, self.nesterov)

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                **super().get_config()}


class Momentum(SGD):
    """SGD with (classical) momentum, μ = 0.9 by default: ``SGD(..., momentum=0.9)``.

    v ← μ v − α g;  θ ← θ + v (CS224n). See ``SGD`` for how this relates to torch.optim.
    """

    name = "momentum"

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        super().__init__(params, lr, momentum, False, weight_decay, clip_norm, clip_value)

    def get_config(self):
        config = super().get_config()
        del config["nesterov"]
        return config


class Nesterov(SGD):
    """Nesterov accelerated gradient, μ = 0.9 by default: ``SGD(..., momentum=0.9, nesterov=True)``.

    v' ← μ v − α g;  θ ← θ − μ v + (1 + μ) v' (CS231n). See ``SGD`` for torch.optim.
    """

    name = "nesterov"

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        super().__init__(params, lr, momentum, True, weight_decay, clip_norm, clip_value)

    def get_config(self):
        config = super().get_config()
        del config["nesterov"]
        return config


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): per-entry rates from the gradient history.

    G ← G + g²;  θ ← θ − α g / (√G + ε)

    Same as torch.optim.Adagrad with lr_decay = 0 and initial_accumulator_value = 0.
    CS224n's snippet puts ε inside the root (√(G + ε)); here, as in the paper, torch and
    Keras, it is added to √G.
    """

    name = "adagrad"
    slots = ("sum_sq",)

    def __init__(self, params, lr=1e-2, eps=1e-10, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        super().__init__(params, lr, weight_decay, clip_norm, clip_value)

    def _update(self, kernels, data, grad, state, weight_decay, grad_scale, clip_value):
        kernels.adagrad_update(data, grad, state["sum_sq"], self.lr, self.eps, weight_decay,
                              grad_scale, clip_value)

    def get_config(self):
        return {"lr": self.lr, "eps": self.eps, **super().get_config()}


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012, lecture 6.5): AdaGrad with a moving average.

    r ← ρ r + (1 − ρ) g²;  θ ← θ − α g / (√r + ε)   (CS224n)

    Same as torch.optim.RMSprop (whose ρ is called ``alpha``) without its momentum and
    centered options. Keras defaults to ρ = 0.9, lr = 1e-3.
    """

    name = "rmsprop"
    slots = ("mean_sq",)

    def __init__(self, params, lr=1e-2, rho=0.99, eps=1e-8, weight_decay=0.0, clip_norm=None,
                 clip_value=None):
        self.rho = check_number(rho, "rho", low=0, high=1, high_open=True)
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        super().__init__(params, lr, weight_decay, clip_norm, clip_value)

    def _update(self, kernels, data, grad, state, weight_decay, grad_scale, clip_value):
        kernels.rmsprop_update(data, grad, state["mean_sq"], self.lr, self.rho, self.eps,
                              weight_decay, grad_scale, clip_value)

    def get_config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps, **super().get_config()}


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (check_number(betas[0], "betas[0]", low=0, high=1, high_open=True),
            check_number(betas[1], "betas[1]", low=0, high=1, high_open=True))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias correction.

    m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;
    m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  θ ← θ − α m̂ / (√v̂ + ε)

    ``weight_decay`` is an L2 term added to g (as in torch.optim.Adam); for decoupled
    decay use ``AdamW``. CS224n's snippet omits the bias correction; the paper has it.
    Computed as θ − (α/(1 − β₁ᵗ)) m / (√v/√(1 − β₂ᵗ) + ε), like torch.
    """

    name = "adam"
    slots = ("m", "v")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 clip_norm=None, clip_value=None):
        self.betas = _check_betas(betas)
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        super().__init__(params, lr, weight_decay, clip_norm, clip_value)

    def _update(self, kernels, data, grad, state, weight_decay, grad_scale, clip_value):
        beta1, beta2 = self.betas
        t = self.step_count
        step_size = self.lr / (1.0 - beta1 ** t)
        inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
        if self._decoupled:
            l2, decay_factor = 0.0, 1.0 - self.lr * weight_decay
        else:
            l2, decay_factor = weight_decay, 1.0
        kernels.adam_update(data, grad, state["m"], state["v"], step_size, beta1, beta2,
                           self.eps, inv_sqrt_bc2, l2, decay_factor, grad_scale, clip_value)

    def get_config(self):
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                **super().get_config()}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2).

    θ ← (1 − αλ) θ − α m̂ / (√v̂ + ε), with m̂, v̂ from the raw gradient (see ``Adam``).

    The decay is scaled by the current lr, as in torch.optim.AdamW and Keras (the paper's
    schedule multiplier η_t is lr / initial lr, so with a schedule the decay follows it).
    Only parameters with ``regularize == True`` decay; torch's default weight_decay 0.01.
    """

    name = "adamw"
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 clip_norm=None, clip_value=None):
        super().__init__(params, lr, betas, eps, weight_decay, clip_norm, clip_value)


#: Optimizers by name, for the command line and model files.
OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW)}


def get(name, params, **kwargs):
    """Build the optimizer ``name`` from ``OPTIMIZERS`` over ``params``.

    Keyword arguments whose value is None are dropped (they mean "the default"), so a
    command line can pass every option it has; a keyword the optimizer does not take
    raises ValueError listing those it does.

    >>> opt = get("adam", net.parameters(), lr=1e-3, weight_decay=None)
    """
    return from_registry(OPTIMIZERS, "optimizer", name, params, kwargs)


#: Learning rate given to an optimizer whose lr has no default (SGD and the momentum methods,
#: as in torch) when it is built by name without one (Keras's SGD default).
DEFAULT_SGD_LR = 0.01


def make_optimizer(name, params, **kwargs):
    """``get(name, params, **kwargs)``, with ``lr=DEFAULT_SGD_LR`` where the optimizer has no
    default lr and none is given: what ``fit(optimizer="sgd")`` and the command line build."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    cls = OPTIMIZERS.get(name)
    if cls is not None and "lr" not in kwargs:
        lr = inspect.signature(cls).parameters.get("lr")
        if lr is not None and lr.default is inspect.Parameter.empty:
            kwargs["lr"] = DEFAULT_SGD_LR
    return get(name, params, **kwargs)

"""Layers: parameters, caches and buffers around the stateless kernels of ``fastnn_c``.

Each layer has ``forward(X)`` (validates, then computes) and ``backward(dY)`` (returns the
gradient with respect to the input and fills the ``grad`` of each parameter). Networks call
the unvalidated ``_forward``/``_backward`` after validating once at their own boundary.

Outputs and gradients live in buffers owned by the layer and reused across calls (a
training step does not allocate): the array a layer returns is overwritten by its next
call. Copy it if you need to keep it.
"""
import numpy as np

from fastnn import initializers
from fastnn._config import elementwise_threads
from fastnn._validation import check_array, check_dtype, check_positive_int, check_rng
from fastnn_c import activations as _activations
from fastnn_c import dense as _dense


class Parameter:
    """A trainable array and its gradient.

    Attributes
    ----------
    data : ndarray
        The values, updated in place by optimizers.
    grad : ndarray
        Gradient of the loss with respect to ``data``, written by ``backward``.
    name : str
        Name within its layer ("weight", "bias", ...).
    regularize : bool
        Whether L1/L2 penalties and weight decay apply (True for weights, False for
        biases and normalization parameters, following CS224n).
    """

    __slots__ = ("data", "grad", "name", "regularize")

    def __init__(self, data, name, regularize=True):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name
        self.regularize = regularize

    def __repr__(self):
        return f"Parameter({self.name}, shape={self.data.shape}, dtype={self.data.dtype})"


class Layer:
    """Base class. Subclasses implement ``_forward``/``_backward`` and ``get_config``."""

    #: True for layers whose forward pass draws random numbers (dropout).
    stochastic = False

    def __init__(self):
        self.training = True
        #: False on a network's first layer: nobody needs the gradient of the input.
        self.needs_input_grad = True
        self._buffers = {}
        self._output = None

    # -- public API --------------------------------------------------------------------
    def forward(self, X):
        """Validate ``X`` (shape (batch, features)) and return the layer's output."""
        X = check_array(X, "X", self._dtype_for(X), n_columns=self.input_features())
        return self._forward(X)

    def backward(self, dY):
        """Gradient of the loss w.r.t. the input, given ``dY`` = ∂L/∂output of the last forward."""
        if self._output is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dY = check_array(dY, "dY", self._output.dtype)
        if dY.shape != self._output.shape:
            raise ValueError(f"dY has shape {dY.shape}, expected {self._output.shape} "
                             "(the shape of the last forward output)")
        return self._backward(dY)

    def parameters(self):
        """The layer's trainable ``Parameter`` objects."""
        return []

    def state_dict(self):
        """Arrays that define the layer: parameters and non-trainable buffers (copies)."""
        return {p.name: p.data.copy() for p in self.parameters()}

    def load_state_dict(self, state):
        """Copy arrays from ``state`` (as returned by ``state_dict``) into the layer."""
        own = {p.name: p.data for p in self.parameters()}
        own.update(self._state_buffers())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}: state is missing {missing}, "
                             f"has unexpected {unexpected}")
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"{type(self).__name__}.{key}: shape {value.shape}, "
                                 f"expected {target.shape}")
            np.copyto(target, value, casting="same_kind")

    def train(self, mode=True):
        """Training mode (batch statistics, dropout on); ``train(False)`` is ``eval()``."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (running statistics, dropout off)."""
        return self.train(False)

    def get_config(self):
        """Constructor arguments, JSON-serialisable (used by model files)."""
        return {}

    def input_features(self):
        """Number of input features the layer requires, or None if any width works."""
        return None

    def output_features(self, in_features):
        """Number of output features for ``in_features`` inputs."""
        return in_features

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- for subclasses ----------------------------------------------------------------
    def _state_buffers(self):
        """Non-trainable arrays saved with the layer (e.g. running statistics)."""
        return {}

    def _dtype_for(self, X):
        params = self.parameters()
        if params:
            return params[0].data.dtype
        dt = np.asarray(X).dtype
        return dt if dt in (np.float32, np.float64) else np.float32

    def _buffer(self, key, shape, dtype):
        """A reusable array of ``shape``: a leading-rows view of a buffer sized to the largest batch."""
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf[: shape[0]]


class Dense(Layer):
    """Fully-connected layer: Y = X W + b.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    bias : bool, default True
        Whether to learn an additive bias b.
    init : str or callable, default "glorot_uniform"
        Weight initializer, by name from ``fastnn.initializers.INITIALIZERS`` or a callable
        ``init(shape, rng, dtype)``; the default is Glorot & Bengio's U[−√(6/(in+out)), +].
    bias_init : str or callable, optional
        Bias initializer; by default zeros, except N(0, 1) for Nielsen's schemes.
    rng : None, int or numpy.random.Generator
        Source of the initial weights.
    dtype : float32 or float64

    Shape
    -----
    X (batch, in_features) → Y (batch, out_features); W is (in_features, out_features).
    """

    def __init__(self, in_features, out_features, bias=True, init="glorot_uniform",
                 bias_init=None, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_dtype(dtype)
        self.init = init if isinstance(init, str) else getattr(init, "__name__", "custom")
        rng = check_rng(rng)
        weight_init = initializers.get(init)
        self.weight = Parameter(weight_init((self.in_features, self.out_features), rng, self.dtype),
                                "weight")
        self.bias = None
        if bias:
            if bias_init is None:
                bias_init = initializers.DEFAULT_BIAS_INIT.get(init, "zeros")
            values = initializers.get(bias_init)((self.out_features,), rng, self.dtype)
            self.bias = Parameter(values, "bias", regularize=False)

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "init": self.init, "dtype": self.dtype.name}

    def input_features(self):
        return self.in_features

    def output_features(self, in_features):
        return self.out_features

    def _forward(self, X):
        Y = self._buffer("Y", (X.shape[0], self.out_features), self.dtype)
        _dense.dense_forward(X, self.weight.data, None if self.bias is None else self.bias.data, Y)
        self._input = X
        self._output = Y
        return Y

    def _backward(self, dY):
        dX = self._buffer("dX", self._input.shape, self.dtype) if self.needs_input_grad else None
        _dense.dense_backward(self._input, self.weight.data, dY, self.weight.grad,
                              None if self.bias is None else self.bias.grad, dX)
        return dX


class Activation(Layer):
    """Elementwise activation A = f(Z), by name from ``ACTIVATIONS``.

    Formulas (α is ``alpha``):
    identity z; sigmoid 1/(1+e^−z); tanh; hardtanh max(−1, min(1, z)); softsign z/(1+|z|);
    relu max(0, z); leaky_relu z if z ≥ 0 else αz (α ≥ 0, default 0.01);
    elu z if z > 0 else α(e^z − 1) (α > 0, default 1); selu λ·elu_α(z) with
    λ = 1.0507, α = 1.6733 (Klambauer et al. 2017); softplus log(1 + e^z).
    Sigmoid and softplus are computed through e^−|z|, so they never overflow.
    """

    DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}

    def __init__(self, name, alpha=None):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
        if alpha is not None and name not in self.DEFAULT_ALPHA:
            raise ValueError(f"activation {name!r} takes no alpha")
        alpha = self.DEFAULT_ALPHA.get(name, 0.0) if alpha is None else float(alpha)
        if name == "leaky_relu" and not alpha >= 0:
            raise ValueError(f"leaky_relu needs alpha >= 0, got {alpha}")
        if name == "elu" and not alpha > 0:
            raise ValueError(f"elu needs alpha > 0, got {alpha}")
        self.name = name
        self.alpha = alpha
        self._kind = _activations.KINDS[name]

    def get_config(self):
        config = {"name": self.name}
        if self.name in self.DEFAULT_ALPHA:
            config["alpha"] = self.alpha
        return config

    def __repr__(self):
        alpha = f", alpha={self.alpha}" if self.name in self.DEFAULT_ALPHA else ""
        return f"Activation({self.name!r}{alpha})"

    def _forward(self, Z):
        A = self._buffer("A", Z.shape, Z.dtype)
        _activations.activation_forward(self._kind, Z.reshape(-1), A.reshape(-1), self.alpha,
                                        elementwise_threads(Z.size))
        self._output = A
        return A

    def _backward(self, dA):
        dZ = self._buffer("dZ", dA.shape, dA.dtype)
        _activations.activation_backward(self._kind, self._output.reshape(-1), dA.reshape(-1),
                                         dZ.reshape(-1), self.alpha, elementwise_threads(dA.size))
        return dZ


ACTIVATIONS = tuple(_activations.KINDS)


class _NamedActivation(Activation):
    activation = None

    def __init__(self):
        super().__init__(self.activation)

    def get_config(self):
        return {}

    __repr__ = Layer.__repr__


class _NamedActivationWithAlpha(_NamedActivation):
    def __init__(self, alpha=None):
        Activation.__init__(self, self.activation, alpha)

    def get_config(self):
        return {"alpha": self.alpha}


class Identity(_NamedActivation):
    """A = Z."""
    activation = "identity"


class Sigmoid(_NamedActivation):
    """1 / (1 + e^−z), overflow-free."""
    activation = "sigmoid"


class Tanh(_NamedActivation):
    """tanh(z)."""
    activation = "tanh"


class HardTanh(_NamedActivation):
    """max(−1, min(1, z)) (CS224n)."""
    activation = "hardtanh"


class Softsign(_NamedActivation):
    """z / (1 + |z|) (Glorot & Bengio 2010)."""
    activation = "softsign"


class ReLU(_NamedActivation):
    """max(0, z)."""
    activation = "relu"


class LeakyReLU(_NamedActivationWithAlpha):
    """z if z ≥ 0 else αz, with slope alpha ≥ 0 (default 0.01)."""
    activation = "leaky_relu"


class ELU(_NamedActivationWithAlpha):
    """z if z > 0 else α(e^z − 1), alpha > 0 (default 1) (Clevert et al. 2016)."""
    activation = "elu"


class SELU(_NamedActivation):
    """λ·elu_α(z) with λ = 1.0507, α = 1.6733 (Klambauer et al. 2017)."""
    activation = "selu"


class Softplus(_NamedActivation):
    """log(1 + e^z), overflow-free."""
    activation = "softplus"


#: Layer classes a model file may name (a closed registry: nothing else is constructed).
LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Identity, Sigmoid, Tanh, HardTanh,
                                         Softsign, ReLU, LeakyReLU, ELU, SELU, Softplus)}

"""Layers: parameters, caches and buffers around the stateless kernels of ``fastnn_c``.

Each layer has ``forward(X)`` (validates, then computes) and ``backward(dY)`` (returns the
gradient with respect to the input and fills the ``grad`` of each parameter). Subclasses
implement the unvalidated ``_forward``/``_backward``; an ``ExecutionPlan`` (what a
``Sequential`` runs) calls them after the network has validated once at its own boundary,
fuses each Dense layer with the activation after it, and holds the fused plain-SGD step.

Outputs and gradients live in buffers owned by the layer and reused across calls (a
training step does not allocate): the array a layer returns is overwritten by its next
call. Copy it if you need to keep it.
"""
import contextlib
import functools
import math

import numpy as np

from fastnn import initializers
from fastnn._config import BATCHNORM_PARALLEL_MIN_ELEMENTS, dense_backend, elementwise_threads
from fastnn._validation import (
    check_array,
    check_dtype,
    check_number,
    check_positive_int,
    check_rng,
    is_sparse,
)
from fastnn._views import BoundViews, specialized
from fastnn_c import SIMD as _simd_level
from fastnn_c import activations as _activations
from fastnn_c import batchnorm as _batchnorm
from fastnn_c import dense as _dense
from fastnn_c import dropout as _dropout
from fastnn_c import optim as _optim
from fastnn_c import regularization as _regularization
from fastnn_c import sparse as _sparse

_writes = 0  # see write_count


def write_count():
    """Writes to parameters and layer state made so far in this process: each
    ``Parameter.mark_changed`` (which ``copy_``, ``edit`` and assigning ``Parameter.data``
    call), each update of a layer's running statistics and each change of a layer setting
    that the forward pass reads adds one. A cache of arrays derived from them (prediction's
    packed weights) that sees the count it was built at needs no other check."""
    return _writes


def _count_write():
    global _writes
    _writes += 1


class _Setting:
    """A layer setting that the forward pass reads (an activation's slope, batch norm's ε):
    assigning it validates the value with ``check(layer, value)`` and, once the layer is
    built, counts as a write of the layer's state (``Layer._state_changed``), so a compiled
    prediction pass built before is built again.

    Only ``__set__`` is defined: reads find the value in the instance's ``__dict__`` under
    the same name, as fast as a plain attribute.
    """

    def __init__(self, check=None):
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name

    def __set__(self, obj, value):
        if self.check is not None:
            value = self.check(obj, value)
        built = self.name in obj.__dict__
        obj.__dict__[self.name] = value
        if built:
            obj._state_changed()


class _Fixed:
    """An attribute set once, by the constructor (a layer's shape, dtype, parameters, an
    activation's kind): assigning it again raises AttributeError. Reads go to the instance's
    ``__dict__`` directly (see ``_Setting``)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __set__(self, obj, value):
        if self.name in obj.__dict__:
            raise AttributeError(f"{type(obj).__name__}.{self.name} is fixed once built (the "
                                 "compiled passes depend on it); build a new layer or network")
        obj.__dict__[self.name] = value


class ParameterWriteError(ValueError):
    """A write into the read-only ``Parameter.data`` (or a view of it) was refused.

    A ``ValueError``, as NumPy's own error for a read-only array, so code that catches that
    keeps working; the message says how to write instead.
    """


_WRITE_INSTEAD = ("Parameter.data is read-only, so that no write can bypass the compiled "
                  "prediction pass (it would give stale predictions). Write with "
                  "p.copy_(values), `with p.edit() as w: w[...] = ...`, or p.data = values; "
                  "for an estimator assign est.coefs_ / est.intercepts_")


def _refuse(view, what):
    raise ParameterWriteError(f"{what}: {type(view)._instead}") from None


def _plain(value):
    """``value`` with every ``ParameterView`` in it (also inside tuples, lists and dicts) as a
    plain ndarray view, still read-only."""
    if isinstance(value, ParameterView):
        return value.view(np.ndarray)
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _read_only_refusals(name):
    """An ndarray method that writes in place, refusing with ``_WRITE_INSTEAD`` where NumPy
    would refuse a read-only array."""
    method = getattr(np.ndarray, name)

    def refusing(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ValueError as error:
            if "read-only" in str(error) or "not writeable" in str(error):
                _refuse(self, f"ndarray.{name}")
            raise

    refusing.__name__ = name
    refusing.__qualname__ = f"ParameterView.{name}"
    refusing.__doc__ = (f"``numpy.ndarray.{name}``; on a read-only view, refused with "
                        "``ParameterWriteError``.")
    return refusing


class _ReadOnlyFlat:
    """``ParameterView.flat`` of a read-only view: numpy's flat iterator, refusing writes."""

    __slots__ = ("_view", "_flat")

    def __init__(self, view, flat):
        self._view, self._flat = view, flat

    def __getitem__(self, key):
        return self._flat[key]

    def __setitem__(self, key, value):
        _refuse(self._view, "assignment through .flat")

    def __iter__(self):
        return iter(self._flat)

    def __len__(self):
        return len(self._flat)

    def __array__(self, dtype=None, copy=None):
        return np.array(self._flat, dtype=dtype)

    def __getattr__(self, name):
        return getattr(self._flat, name)


class ParameterView(np.ndarray):
    """What ``Parameter.data`` returns: a read-only view of the parameter's values.

    Every in-place write NumPy knows (item assignment, a ufunc's ``out=``, ``+=``,
    ``np.copyto``, ``np.put``, ``fill``, ...) raises ``ParameterWriteError``, whose message
    names the ways to write a parameter (``Parameter.copy_``, ``Parameter.edit``, binding
    ``p.data``). Reads give what they give on any ndarray: computations, copies
    (``.copy()``, ``.astype``, ``np.array``, fancy indexing), pickles and ``tolist`` are plain,
    writable ndarrays; slices, reshapes and transposes are views of the parameter and stay
    read-only ``ParameterView`` objects. ``np.asarray(p.data)`` is a plain read-only view, as
    for any read-only array.

    A view whose ``writeable`` flag someone set back to True behaves as a plain ndarray: that
    is a deliberate bypass, and the caller then owes ``p.mark_changed()``.
    """

    __slots__ = ()
    _instead = _WRITE_INSTEAD

    def __setitem__(self, key, value):
        if not self.flags.writeable:
            _refuse(self, "item assignment")
        super().__setitem__(key, value)

    def __getitem__(self, key):
        result = super().__getitem__(key)
        if isinstance(result, ParameterView) and result.flags.writeable:  # a copy (fancy index)
            return result.view(np.ndarray)
        return result

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            for o in out:
                if isinstance(o, ParameterView) and not o.flags.writeable:
                    _refuse(o, f"numpy.{ufunc.__name__} writing into out=")
            kwargs["out"] = _plain(out)
        if method == "at" and isinstance(inputs[0], ParameterView) and not inputs[0].flags.writeable:
            _refuse(inputs[0], f"numpy.{ufunc.__name__}.at")
        return getattr(ufunc, method)(*_plain(inputs), **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        try:
            return func(*_plain(args), **_plain(kwargs))
        except ValueError as error:
            if "read-only" in str(error) or "not writeable" in str(error):
                _refuse(self, f"numpy.{func.__name__}")
            raise

    # Copies are plain arrays: nobody should meet this class outside a parameter's values.
    def copy(self, order="C"):
        """A plain, writable copy (``numpy.ndarray.copy``)."""
        return np.array(self.view(np.ndarray), order=order, copy=True)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        """A plain, writable copy cast to ``dtype`` (``numpy.ndarray.astype``)."""
        return self.view(np.ndarray).astype(dtype, order=order, casting=casting, copy=True)

    def flatten(self, order="C"):
        """A plain, writable 1-D copy (``numpy.ndarray.flatten``)."""
        return self.view(np.ndarray).flatten(order)

    def dot(self, b, out=None):
        """``numpy.dot(self, b, out)``, refusing ``out`` when it is a read-only view."""
        return np.dot(self, b, out=out)

    def __reduce_ex__(self, protocol):
        return self.copy().__reduce_ex__(protocol)

    def __reduce__(self):
        return self.copy().__reduce__()

    @property
    def flat(self):
        """``numpy.ndarray.flat``; on a read-only view, writes through it are refused."""
        flat = self.view(np.ndarray).flat
        return flat if self.flags.writeable else _ReadOnlyFlat(self, flat)

    fill = _read_only_refusals("fill")
    put = _read_only_refusals("put")
    sort = _read_only_refusals("sort")
    partition = _read_only_refusals("partition")
    setfield = _read_only_refusals("setfield")
    byteswap = _read_only_refusals("byteswap")
    resize = _read_only_refusals("resize")


class BufferView(ParameterView):
    """A ``ParameterView`` of a layer's non-trainable state (batch norm's running
    statistics): read-only, written by assigning the attribute or ``load_state_dict``."""

    __slots__ = ()
    _instead = ("a layer's running statistics are read-only in place, so that no write can "
                "bypass the compiled prediction pass (it would give stale predictions). "
                "Assign them (bn.running_mean = values) or use load_state_dict")


def _read_only_view(values, cls=ParameterView):
    view = values.view(cls)
    view.flags.writeable = False
    return view


def _broadcasts(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


class Parameter:
    """A trainable array and its gradient.

    Attributes
    ----------
    data : ParameterView
        The values, as a read-only view. Read them as any array; write them only through
        ``copy_``, ``edit`` or by assigning ``p.data = values``. In-place writes (``p.data[...] = v``,
        ``np.copyto(p.data, v)``, ``p.data += v``, ``out=p.data``) raise
        ``ParameterWriteError`` instead of giving stale predictions.
    grad : ndarray
        Gradient of the loss with respect to ``data``, written by ``backward``.
    name : str
        Name within its layer ("weight", "bias", ...).
    regularize : bool
        Whether L1/L2 penalties and weight decay apply (True for weights, False for
        biases and normalization parameters, following CS224n).
    version : int
        Counts the writes to the values: ``copy_``, ``edit``, assigning ``data``, and every
        fastnn code path that changes them (optimizer steps, the fused SGD step, max-norm
        constraints, ``load_state_dict``, the estimators' setters and L-BFGS) each add one
        (``mark_changed``). Prediction keeps the weights packed for its small-batch kernels
        and repacks when a version moved.

    Notes
    -----
    The parameter owns its values: the constructor copies ``data`` into a C-contiguous array,
    and ``p.data = values`` copies ``values`` into it (its shape, or one that broadcasts to
    it; cast to the parameter's dtype under ``same_kind`` casting) rather than binding the
    caller's array, so no array the caller keeps can change the parameter behind the
    prediction pass's back (before, ``p.data = values`` bound the array itself). Writing
    ways, each one version step::

        p.data = values                # copies
        p.copy_(values)                # the same, in place
        with p.edit() as w:            # the writable values; the change counts on exit,
            w *= 0.5                   # also when the block raises

    ``values`` is the writable array itself, for kernels and optimizers (which call
    ``mark_changed()`` after writing); user code uses ``copy_`` or ``edit``.
    """

    __slots__ = ("_values", "_view", "grad", "name", "regularize", "version")

    def __init__(self, data, name, regularize=True):
        self._bind(np.array(data, order="C", copy=True))
        self.grad = np.zeros_like(self._values)
        self.name = name
        self.regularize = regularize
        self.version = 0

    def _bind(self, values):
        self._values = values
        self._view = _read_only_view(values)

    @property
    def data(self):
        """The values as a read-only ``ParameterView`` (see the class notes for writing)."""
        return self._view

    @data.setter
    def data(self, values):
        self.copy_(values)

    @property
    def values(self):
        """The writable array of the values. Internal: for kernels and optimizers, which
        call ``mark_changed()`` after writing it (else prediction may use the previous
        values). User code writes with ``copy_``, ``edit`` or ``p.data = values``."""
        return self._values

    def copy_(self, values):
        """Copy ``values`` into the parameter, in place, and record the change; returns the
        parameter. ``values`` has the parameter's shape or broadcasts to it (a scalar
        fills), and is cast to its dtype under ``same_kind`` casting."""
        target = self._values
        values = np.asarray(values)
        if values.shape != target.shape and not _broadcasts(values.shape, target.shape):
            raise ValueError(f"Parameter {self.name}: values of shape {values.shape}, expected "
                             f"{target.shape} (a parameter's shape is fixed by its layer)")
        if not np.can_cast(values.dtype, target.dtype, casting="same_kind"):
            raise TypeError(f"Parameter {self.name}: cannot copy {values.dtype} values into a "
                            f"{target.dtype} parameter (same_kind casting)")
        np.copyto(target, values, casting="same_kind")
        self.mark_changed()
        return self

    @contextlib.contextmanager
    def edit(self):
        """``with p.edit() as w:`` gives the writable values ``w``; the change is recorded
        when the block ends, also when it raises (part of the write may have happened)."""
        try:
            yield self._values
        finally:
            self.mark_changed()

    def mark_changed(self):
        """Record that the values were written in place (through ``values``)."""
        self.version += 1
        _count_write()

    def __getstate__(self):
        return {"values": self._values, "grad": self.grad, "name": self.name,
                "regularize": self.regularize, "version": self.version}

    def __setstate__(self, state):
        if isinstance(state, tuple):  # a pickle of the former __slots__ layout
            state = dict(state[1])
            state["values"] = state.pop("_data")
        self._bind(np.ascontiguousarray(state["values"]))
        self.grad = state["grad"]
        self.name = state["name"]
        self.regularize = state["regularize"]
        self.version = state["version"]

    def __repr__(self):
        return f"Parameter({self.name}, shape={self._values.shape}, dtype={self._values.dtype})"


class Layer:
    """Base class. Subclasses implement ``_forward``/``_backward`` and ``get_config``."""

    #: True for layers whose forward pass draws random numbers (dropout).
    stochastic = False
    #: True for layers that take a SciPy sparse (CSR) input batch (Dense).
    accepts_sparse = False

    def __init__(self):
        self.training = True
        #: False on a network's first layer: nobody needs the gradient of the input.
        self.needs_input_grad = True
        self._buffers = {}
        self._views = {}  # key -> the view _buffer returned last (same shape: returned again)
        #: Memoryviews of the buffers and parameters the kernels get (shared by the layers
        #: of an ExecutionPlan, so each finds the one before it's output).
        self._bound = BoundViews()
        self._output = None
        #: Counts the writes to the arrays of ``_state_buffers`` (running statistics), as
        #: ``Parameter.version`` counts those of a parameter (``_state_changed``).
        self.state_version = 0

    # -- public API --------------------------------------------------------------------
    def forward(self, X):
        """Validate ``X`` (shape (batch, features)) and return the layer's output."""
        X = check_array(X, "X", self.dtype_for(X), n_columns=self.input_features(),
                        accept_sparse=self.accepts_sparse)
        return self._forward(X)

    @property
    def output(self):
        """The array the last forward pass returned, or None before the first one.

        A buffer of the layer, overwritten by the next forward pass. None also for a Dense
        layer run fused with the activation after it (its pre-activation is never stored).
        """
        return self._output

    def dtype_for(self, X):
        """The dtype the layer computes in for input ``X``: its parameters' dtype; for a
        layer without parameters X's float dtype (float32 for non-float input)."""
        params = self.parameters()
        if params:
            return params[0].values.dtype
        dt = np.asarray(X).dtype
        return dt if dt in (np.float32, np.float64) else np.float32

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
        state = {p.name: p.values.copy() for p in self.parameters()}
        state.update({key: value.copy() for key, value in self._state_buffers().items()})
        return state

    def load_state_dict(self, state):
        """Copy arrays from ``state`` (as returned by ``state_dict``) into the layer."""
        own = {p.name: p.values for p in self.parameters()}
        own.update(self._state_buffers())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}: state is missing {missing}, "
                             f"has unexpected {unexpected}")
        values = {}
        for key, target in own.items():  # every check before the first write
            value = values[key] = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"{type(self).__name__}.{key}: shape {value.shape}, "
                                 f"expected {target.shape}")
            if not np.can_cast(value.dtype, target.dtype, casting="same_kind"):
                raise TypeError(f"{type(self).__name__}.{key}: cannot load {value.dtype} "
                                f"into {target.dtype} (same_kind casting)")
        try:
            for key, target in own.items():
                np.copyto(target, values[key], casting="same_kind")
        finally:  # also after a partial copy: nothing may keep a pass built on the old values
            for p in self.parameters():
                p.mark_changed()
            self._state_changed()

    def _state_changed(self):
        self.state_version += 1
        _count_write()

    def train(self, mode=True):
        """Training mode (batch statistics, dropout on); ``train(False)`` is ``eval()``."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (running statistics, dropout off)."""
        return self.train(False)

    def apply_constraints(self):
        """Project the parameters back onto their constraint set (called after each update)."""

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

    def _buffer(self, key, shape, dtype):
        """A reusable array of ``shape``: a leading-rows view of a buffer sized to the largest batch."""
        view = self._views.get(key)
        if view is not None and view.shape == shape and view.dtype == dtype:
            return view
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        if view is not None:
            self._bound.unbind(view)
        view = self._views[key] = self._bound.bind(buf[: shape[0]])
        return view

    def _param_view(self, array):
        """The memoryview of one of the layer's parameter, gradient or state arrays, bound on
        first use."""
        return self._bound.own(array)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_buffers={}, _views={})  # scratch is rebuilt on use, not copied or pickled
        return state


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
    regularize_bias : bool, default False
        Whether the network's L2/L1 penalties also apply to the bias (by default only W
        is penalised: a bias does not multiply an input, CS224n). For finer control set
        ``Parameter.regularize`` directly (that flag is not part of ``get_config``).
    max_norm : float, optional
        Max-norm constraint c (Srivastava et al. 2014): after every optimizer step,
        ``apply_constraints`` rescales each unit's incoming weights, column j of W, to
        ‖W[:, j]‖₂ ≤ c. Typical values are 3 to 4.

    Shape
    -----
    X (batch, in_features) → Y (batch, out_features); W is (in_features, out_features).

    Notes
    -----
    ``in_features``, ``out_features``, ``dtype``, ``weight`` and ``bias`` are fixed once
    built (assigning them raises AttributeError); ``max_norm`` may be assigned (validated).

    X may be a SciPy sparse matrix (converted to CSR): the products then run on its CSR
    arrays (``fastnn_c.sparse``), Y = X W + b row by row over the stored values and
    ∂L/∂W = Xᵀ dY scattered into the rows of the features present. No gradient with
    respect to a sparse X is formed (``backward`` returns None). The fused plain-SGD step
    writes only the rows of W whose feature occurs in the batch; every other optimizer
    (Adam, momentum, weight decay) reads the whole dense gradient and updates every row,
    as its state decays where the gradient is zero.
    """

    accepts_sparse = True
    _csr = None  # (indptr, indices, data) of the last forward's sparse batch, else None

    in_features, out_features, dtype = _Fixed(), _Fixed(), _Fixed()
    weight, bias = _Fixed(), _Fixed()
    max_norm = _Setting(lambda layer, c: None if c is None
                        else check_number(c, "max_norm", low=0, low_open=True))

    def __init__(self, in_features, out_features, bias=True, init="glorot_uniform",
                 bias_init=None, rng=None, dtype=np.float32, regularize_bias=False, max_norm=None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_dtype(dtype)
        self.init = init if isinstance(init, str) else getattr(init, "__name__", "custom")
        rng = check_rng(rng)
        weight_init = initializers.get(init)
        self.weight = Parameter(weight_init((self.in_features, self.out_features), rng, self.dtype),
                                "weight")
        bias_parameter = None
        if bias:
            if bias_init is None:
                bias_init = initializers.DEFAULT_BIAS_INIT.get(init, "zeros")
            values = initializers.get(bias_init)((self.out_features,), rng, self.dtype)
            bias_parameter = Parameter(values, "bias", regularize=bool(regularize_bias))
        self.bias = bias_parameter
        self.regularize_bias = bool(regularize_bias)
        self.max_norm = max_norm
        self._input = None

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def get_config(self):
        config = {"in_features": self.in_features, "out_features": self.out_features,
                  "bias": self.bias is not None, "init": self.init, "dtype": self.dtype.name}
        # Options appear only when set, so configs of plain layers keep their form.
        if self.regularize_bias:
            config["regularize_bias"] = True
        if self.max_norm is not None:
            config["max_norm"] = self.max_norm
        return config

    def apply_constraints(self):
        """Rescale columns of W whose L2 norm exceeds ``max_norm`` (no-op without it)."""
        if self.max_norm is not None:
            _regularization.max_norm_constraint(self.weight.values, self.max_norm)
            self.weight.mark_changed()

    def input_features(self):
        return self.in_features

    def output_features(self, in_features):
        return self.out_features

    def _bias_view(self, values):
        return None if values is None else self._param_view(values)

    def _forward(self, X):
        Y = self._buffer("Y", (X.shape[0], self.out_features), self.dtype)
        if is_sparse(X):
            return self._sparse_forward(X, Y, _IDENTITY, 0.0)
        _DENSE[self.dtype].dense_forward(
            self._bound(X), self._param_view(self.weight.values),
            self._bias_view(None if self.bias is None else self.bias.values), self._bound(Y),
            *dense_backend())
        self._input, self._csr = X, None
        self._output = Y
        return Y

    def _backward(self, dY):
        if self._csr is not None:
            return self._sparse_backward(self._bound(dY))
        dX = self._buffer("dX", self._input.shape, self.dtype) if self.needs_input_grad else None
        _DENSE[self.dtype].dense_backward(
            self._bound(self._input), self._param_view(self.weight.values), self._bound(dY),
            self._param_view(self.weight.grad),
            self._bias_view(None if self.bias is None else self.bias.grad), self._bound(dX),
            *dense_backend())
        return dX

    @property
    def input(self):
        """The input X of the last forward pass (the array itself, not a copy), or None.

        With ``weight`` and ``bias`` as they were in that pass, Z = X W + b is the
        pre-activation, also where a fused pass never stored it (``output`` is None).
        """
        return self._input

    def _forward_activation(self, activation, X):
        """Forward of this layer and the ``activation`` layer after it, as one fused kernel.

        The activation's output is its usual buffer; the pre-activation is never stored.
        """
        A = activation._buffer("A", (X.shape[0], self.out_features), self.dtype)
        if is_sparse(X):
            self._sparse_forward(X, A, activation.kind, activation.alpha)
            self._output = None
            activation._output = A
            return A
        _DENSE[self.dtype].dense_activation_forward(
            self._bound(X), self._param_view(self.weight.values),
            self._bias_view(None if self.bias is None else self.bias.values), self._bound(A),
            activation.kind, activation.alpha, *dense_backend())
        self._input, self._csr = X, None
        self._output = None  # Z = X W + b was folded into the activation's output
        activation._output = A
        return A

    def _sgd_backward(self, lr, dY):
        """Backward fused with a plain SGD step of rate ``lr`` (the gradient is not stored)."""
        if self._csr is not None:
            return self._sparse_sgd_backward(self._bound(dY), lr)
        dX = self._buffer("dX", self._input.shape, self.dtype) if self.needs_input_grad else None
        _DENSE[self.dtype].dense_sgd_backward(
            self._bound(self._input), self._param_view(self.weight.values), self._bound(dY),
            self._bias_view(None if self.bias is None else self.bias.values), self._bound(dX), lr,
            *dense_backend())
        self._mark_changed()
        return dX

    def _mark_changed(self):
        for p in self.parameters():
            p.mark_changed()

    def _sgd_backward_activation(self, activation, lr, dA):
        """``_backward_activation`` fused with a plain SGD step of rate ``lr``."""
        dZ = activation._buffer("dZ", dA.shape, self.dtype)
        if self._csr is not None:
            return self._sparse_sgd_backward(self._activation_gradient(activation, dA, dZ), lr)
        dX = self._buffer("dX", self._input.shape, self.dtype) if self.needs_input_grad else None
        _DENSE[self.dtype].dense_activation_sgd_backward(
            self._bound(self._input), self._param_view(self.weight.values),
            self._bound(activation._output), self._bound(dA), self._bound(dZ),
            self._bias_view(None if self.bias is None else self.bias.values), self._bound(dX),
            activation.kind, activation.alpha, lr, *dense_backend())
        self._mark_changed()
        return dX

    def _backward_activation(self, activation, dA):
        """Backward through ``activation`` and this layer (after ``_forward_activation``)."""
        dZ = activation._buffer("dZ", dA.shape, self.dtype)
        if self._csr is not None:
            return self._sparse_backward(self._activation_gradient(activation, dA, dZ))
        dX = self._buffer("dX", self._input.shape, self.dtype) if self.needs_input_grad else None
        _DENSE[self.dtype].dense_activation_backward(
            self._bound(self._input), self._param_view(self.weight.values),
            self._bound(activation._output), self._bound(dA), self._bound(dZ),
            self._param_view(self.weight.grad),
            self._bias_view(None if self.bias is None else self.bias.grad), self._bound(dX),
            activation.kind, activation.alpha, *dense_backend())
        return dX


    # -- a sparse (CSR) input batch ---------------------------------------------------
    # The sparse kernels take the micro-kernel's threads (dense_backend): where OpenBLAS
    # trains instead, its spinning threads would starve an OpenMP team, so they run on one.
    def _sparse_forward(self, X, A, kind, alpha):
        """A := f(X W + b) on X's CSR arrays; keeps them for the backward pass."""
        nnz = int(X.indptr[-1])  # SciPy's indices and data may run past the last row's end
        csr = (np.asarray(X.indptr, dtype=np.int64), np.asarray(X.indices[:nnz], dtype=np.int64),
               np.ascontiguousarray(X.data[:nnz], dtype=self.dtype), self.in_features)
        _SPARSE[self.dtype].sparse_forward(
            *csr, self._param_view(self.weight.values),
            self._bias_view(None if self.bias is None else self.bias.values), self._bound(A),
            kind, alpha, dense_backend()[0])
        self._input, self._csr = X, csr
        self._output = A
        return A

    def _activation_gradient(self, activation, dA, dZ):
        """dZ := dA ⊙ f'(Z), from the activation's output A = f(Z)."""
        _ACTIVATION_BACKWARD[self.dtype](activation.kind, self._bound.flat(activation._output),
                                         self._bound.flat(dA), self._bound.flat(dZ),
                                         activation.alpha, 1)
        return self._bound(dZ)

    def _sparse_backward(self, dY):
        """∂L/∂W := Xᵀ dY and ∂L/∂b := Σ_rows dY; None, as no gradient of a sparse X is formed."""
        _SPARSE[self.dtype].sparse_backward(
            *self._csr, dY, self._param_view(self.weight.grad),
            self._bias_view(None if self.bias is None else self.bias.grad), dense_backend()[0])
        return None

    def _sparse_sgd_backward(self, dY, lr):
        """W −= lr Xᵀ dY, b −= lr Σ_rows dY: only the rows of W of the batch's features."""
        _SPARSE[self.dtype].sparse_sgd_backward(
            *self._csr, dY, self._param_view(self.weight.values),
            self._bias_view(None if self.bias is None else self.bias.values), lr,
            dense_backend()[0])
        self._mark_changed()
        return None


_SPARSE = specialized(_sparse.sparse_forward, _sparse.sparse_backward, _sparse.sparse_sgd_backward)
_ACTIVATION_BACKWARD = {dtype: _activations.activation_backward.typed(dtype)
                        for dtype in (np.dtype(np.float32), np.dtype(np.float64))}
_IDENTITY = _activations.KINDS["identity"]

_DENSE = specialized(_dense.dense_forward, _dense.dense_backward, _dense.dense_activation_forward,
                     _dense.dense_activation_backward, _dense.dense_sgd_backward,
                     _dense.dense_activation_sgd_backward)


class Activation(Layer):
    """Elementwise activation A = f(Z), by name from ``ACTIVATIONS``.

    Formulas (α is ``alpha``):
    identity z; sigmoid 1/(1+e^−z); tanh; hardtanh max(−1, min(1, z)); softsign z/(1+|z|);
    relu max(0, z); leaky_relu z if z ≥ 0 else αz (α ≥ 0, default 0.01);
    elu z if z > 0 else α(e^z − 1) (α > 0, default 1); selu λ·elu_α(z) with
    λ = 1.0507, α = 1.6733 (Klambauer et al. 2017); softplus log(1 + e^z).
    Large |z| never raises or gives NaN: sigmoid is 1/(1+e^−z), where an overflowing e^−z
    gives exactly 0, and softplus is computed through e^−|z|.

    Attributes
    ----------
    name : str
    alpha : float
        α of leaky_relu and elu (0 for the others).
    kind : int
        The activation's code in the compiled kernels, ``fastnn_c.activations.KINDS[name]``.

    ``name`` and ``kind`` are fixed once built (assigning them raises AttributeError: build
    a new layer); ``alpha`` may be assigned, is validated as in the constructor, and counts
    as a change of the layer, so prediction builds its compiled pass again.
    """

    DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
    name, kind = _Fixed(), _Fixed()
    alpha = _Setting(lambda layer, alpha: _check_alpha(layer.name, alpha))

    def __init__(self, name, alpha=None):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
        if alpha is not None and name not in self.DEFAULT_ALPHA:
            raise ValueError(f"activation {name!r} takes no alpha")
        self.name = name
        self.alpha = self.DEFAULT_ALPHA.get(name, 0.0) if alpha is None else alpha
        self.kind = _activations.KINDS[name]

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
        _ACTIVATIONS[Z.dtype].activation_forward(
            self.kind, self._bound.flat(Z), self._bound.flat(A), self.alpha,
            elementwise_threads(Z.size, self.name in THREADED_FORWARD))
        self._output = A
        return A

    def _backward(self, dA):
        dZ = self._buffer("dZ", dA.shape, dA.dtype)
        _ACTIVATIONS[dA.dtype].activation_backward(
            self.kind, self._bound.flat(self._output), self._bound.flat(dA), self._bound.flat(dZ),
            self.alpha, elementwise_threads(dA.size, self.name in THREADED_BACKWARD))
        return dZ


def _check_alpha(name, alpha):
    alpha = float(alpha)
    if name == "leaky_relu" and not alpha >= 0:
        raise ValueError(f"leaky_relu needs alpha >= 0, got {alpha}")
    if name == "elu" and not alpha > 0:
        raise ValueError(f"elu needs alpha > 0, got {alpha}")
    if name not in Activation.DEFAULT_ALPHA and alpha != 0:
        raise ValueError(f"activation {name!r} takes no alpha")
    return alpha


_ACTIVATIONS = specialized(_activations.activation_forward, _activations.activation_backward,
                           _activations.prelu_forward, _activations.prelu_backward,
                           _activations.rrelu_forward, _activations.rrelu_backward)
ACTIVATIONS = tuple(_activations.KINDS)
#: Activation passes whose work per value pays for waking a second thread on large arrays;
#: fewer with the faster AVX-512 kernels (measurements: benchmarks/README.md).
if _simd_level == "avx512":
    THREADED_FORWARD, THREADED_BACKWARD = frozenset({"softplus"}), frozenset()
else:
    THREADED_FORWARD = frozenset({"sigmoid", "tanh", "elu", "selu", "softplus"})
    THREADED_BACKWARD = frozenset({"softplus"})


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


class BatchNorm(Layer):
    """Batch normalization over the batch axis (Ioffe & Szegedy 2015), PyTorch's BatchNorm1d.

    Training mode normalizes each feature with the statistics of the batch,
    x̂ = (x − μ_B)/√(σ²_B + ε) with the biased variance σ²_B = (1/n) Σ (x − μ_B)², outputs
    Y = γ x̂ + β, and updates the running estimates

        running_mean ← (1 − momentum) · running_mean + momentum · μ_B
        running_var  ← (1 − momentum) · running_var  + momentum · σ²_B · n/(n − 1)

    (the running variance uses the unbiased batch variance, as PyTorch does). Evaluation
    mode uses the running estimates instead of batch statistics.

    Parameters
    ----------
    n_features : int
        Number of features (columns) of the input.
    momentum : float in [0, 1], default 0.1
        Weight of the NEW batch statistic in the running average (PyTorch's convention).
        Keras's ``momentum`` is the decay of the OLD value: Keras 0.99 is momentum=0.01 here.
    eps : float > 0, default 1e-5
        Added to the variance for stability (Keras's default is 1e-3).
    dtype : float32 or float64

    Attributes
    ----------
    gamma, beta : Parameter
        Scale (initialised to 1) and offset (initialised to 0); never regularized.
    running_mean, running_var : ndarray
        Buffers (not trainable), initialised to 0 and 1, saved by ``state_dict``.

    Notes
    -----
    Placed between a Dense layer and its activation (the paper's choice) the Dense bias is
    redundant, since β takes its role: use ``Dense(..., bias=False)``. It can also follow the
    activation. Training mode needs at least 2 rows per batch.

    Shape
    -----
    X (batch, n_features) → Y (batch, n_features).

    ``n_features``, ``dtype``, ``gamma`` and ``beta`` are fixed once built. ``eps`` and
    ``momentum`` may be assigned (validated; a change of either counts as a change of the
    layer, so prediction builds its compiled pass again: ε is part of the evaluation-mode
    map, momentum only of training). ``running_mean`` and ``running_var`` are read-only
    views: assign them (``bn.running_mean = values``) or use ``load_state_dict``.
    """

    n_features, dtype, gamma, beta = _Fixed(), _Fixed(), _Fixed(), _Fixed()
    momentum = _Setting(lambda layer, m: check_number(m, "momentum", low=0, high=1))
    eps = _Setting(lambda layer, eps: check_number(eps, "eps", low=0, low_open=True))

    def __init__(self, n_features, momentum=0.1, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.n_features = check_positive_int(n_features, "n_features")
        self.momentum = momentum
        self.eps = eps
        self.dtype = check_dtype(dtype)
        self.gamma = Parameter(np.ones(self.n_features, dtype=self.dtype), "gamma", regularize=False)
        self.beta = Parameter(np.zeros(self.n_features, dtype=self.dtype), "beta", regularize=False)
        self._running_mean = np.zeros(self.n_features, dtype=self.dtype)
        self._running_var = np.ones(self.n_features, dtype=self.dtype)
        self._running_views = (_read_only_view(self._running_mean, BufferView),
                               _read_only_view(self._running_var, BufferView))
        # What backward needs besides the input: per-feature μ and 1/√(σ² + ε), in float64.
        self._mean = np.zeros(self.n_features)
        self._inv_std = np.ones(self.n_features)
        self._batch_stats = True

    def parameters(self):
        return [self.gamma, self.beta]

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_running_views"]  # views of the arrays, made again by __setstate__
        return state

    def __setstate__(self, state):
        state = dict(state)
        for name in ("running_mean", "running_var"):  # pickles of before the views
            if name in state:
                state["_" + name] = state.pop(name)
        self.__dict__.update(state)
        self._running_views = (_read_only_view(self._running_mean, BufferView),
                               _read_only_view(self._running_var, BufferView))

    @property
    def running_mean(self):
        """The running mean, a read-only view (assign the attribute to change it)."""
        return self._running_views[0]

    @running_mean.setter
    def running_mean(self, values):
        self._set_running("running_mean", self._running_mean, values)

    @property
    def running_var(self):
        """The running variance, a read-only view (assign the attribute to change it)."""
        return self._running_views[1]

    @running_var.setter
    def running_var(self, values):
        self._set_running("running_var", self._running_var, values)

    def _set_running(self, name, target, values):
        values = np.asarray(values)
        if values.shape != target.shape and not _broadcasts(values.shape, target.shape):
            raise ValueError(f"BatchNorm.{name}: shape {values.shape}, expected {target.shape}")
        try:
            np.copyto(target, values, casting="same_kind")
        finally:
            self._state_changed()

    def reset_running_stats(self):
        """Running mean back to 0 and running variance back to 1."""
        self._running_mean.fill(0)
        self._running_var.fill(1)
        self._state_changed()

    def get_config(self):
        return {"n_features": self.n_features, "momentum": self.momentum, "eps": self.eps,
                "dtype": self.dtype.name}

    def input_features(self):
        return self.n_features

    def _state_buffers(self):
        return {"running_mean": self._running_mean, "running_var": self._running_var}

    def _forward(self, X):
        Y = self._buffer("Y", X.shape, self.dtype)
        if self.training:
            if X.shape[0] < 2:
                raise ValueError(f"BatchNorm in training mode needs at least 2 rows per batch, got "
                                 f"{X.shape[0]} (use eval() for single samples)")
            _BATCHNORM[self.dtype].batchnorm_forward_train(
                self._bound(X), self._param_view(self.gamma.values), self._param_view(self.beta.values),
                self._param_view(self._running_mean), self._param_view(self._running_var),
                self.momentum, self.eps, self._bound(Y), self._param_view(self._mean),
                self._param_view(self._inv_std), self._threads(X.size))
            self._state_changed()
        else:
            _BATCHNORM[self.dtype].batchnorm_forward_eval(
                self._bound(X), self._param_view(self.gamma.values), self._param_view(self.beta.values),
                self._param_view(self._running_mean), self._param_view(self._running_var), self.eps,
                self._bound(Y), self._param_view(self._mean), self._param_view(self._inv_std))
        self._batch_stats = self.training
        self._input = X
        self._output = Y
        return Y

    def _backward(self, dY):
        dX = self._buffer("dX", dY.shape, self.dtype) if self.needs_input_grad else None
        _BATCHNORM[self.dtype].batchnorm_backward(
            self._bound(self._input), self._param_view(self._mean), self._param_view(self._inv_std),
            self._param_view(self.gamma.values), self._bound(dY), self._param_view(self.gamma.grad),
            self._param_view(self.beta.grad), self._bound(dX), self._batch_stats,
            self._threads(dY.size))
        return dX

    @staticmethod
    def _threads(n_elements):
        return elementwise_threads(n_elements, True, BATCHNORM_PARALLEL_MIN_ELEMENTS)

    def evaluation_affine(self):
        """The evaluation-mode map as y = s·x + t per feature (float64), with
        s = γ/√(σ²_run + ε) and t = β − μ_run·s (Ioffe & Szegedy 2015, §3.1): what folds into
        a neighbouring Dense layer for prediction and ONNX export."""
        var, mean = self._running_var.astype(np.float64), self._running_mean.astype(np.float64)
        scale = self.gamma.values.astype(np.float64) / np.sqrt(var + self.eps)
        return scale, self.beta.values.astype(np.float64) - mean * scale

    def batch_statistics(self):
        """Per-feature mean μ_B and biased variance σ²_B (float64) of the input of the last
        training-mode forward pass, or None after an evaluation-mode one.

        Read from what backward keeps, μ_B and 1/√(σ²_B + ε): σ²_B = 1/inv_std² − ε.
        """
        if not self._batch_stats:
            return None
        return self._mean.copy(), 1.0 / (self._inv_std * self._inv_std) - self.eps


_BATCHNORM = specialized(_batchnorm.batchnorm_forward_train, _batchnorm.batchnorm_forward_eval,
                         _batchnorm.batchnorm_backward)


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): zero each unit with probability p.

    In training mode Y = X ⊙ M / (1 − p) with M_ij ~ Bernoulli(1 − p), so E[Y] = X and
    nothing needs rescaling at test time; evaluation mode (and p = 0) is the identity.

    The mask comes from a counter-based generator inside the compiled kernel: call k of
    the layer draws element i from a hash of (seed, k, i) (SplitMix64), so masks are
    reproducible from the seed, and ``state_dict`` holds the generator state as two small
    uint64 arrays, "seed" and "counter": loading it resumes the same sequence of masks.
    The mask of the last forward pass is stored (one byte per element) and reused by
    ``backward``.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        Probability of dropping a unit (PyTorch's ``p``, Keras's ``rate``).
    rng : None, int or numpy.random.Generator
        Source of the seed.

    Shape
    -----
    X (batch, features) → Y of the same shape (and dtype).
    """

    stochastic = True
    #: May be assigned (validated). Evaluation mode is the identity whatever p is, so the
    #: compiled prediction pass does not depend on it; a change still counts as a change of
    #: the layer (training-mode forward passes read it on every call).
    p = _Setting(lambda layer, p: check_number(p, "p", low=0, high=1, high_open=True))

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        seed = check_rng(rng).integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True)
        self._seed = np.array([seed], dtype=np.uint64)
        self._counter = np.zeros(1, dtype=np.uint64)
        self._frozen = False
        self._frozen_mask_ready = False
        self._identity = True
        self._mask = None

    def get_config(self):
        return {"p": self.p}

    @contextlib.contextmanager
    def frozen_randomness(self):
        """Context in which every forward pass reuses one mask (the first one drawn inside).

        Used by ``fastnn.gradcheck``: with the mask held fixed the layer is a deterministic,
        differentiable function, so finite differences apply.
        """
        saved = (self._frozen, self._frozen_mask_ready)
        self._frozen, self._frozen_mask_ready = True, False
        try:
            yield self
        finally:
            self._frozen, self._frozen_mask_ready = saved

    def _state_buffers(self):
        return {"seed": self._seed, "counter": self._counter}

    def _forward(self, X):
        self._identity = not self.training or self.p == 0
        if self._identity:
            self._output = X
            return X
        Y = self._buffer("Y", X.shape, X.dtype)
        if self._frozen and self._frozen_mask_ready and self._mask.shape == X.shape:
            _DROPOUT[X.dtype].dropout_apply(self._bound.flat(X), self._bound.flat(self._mask),
                                            self._bound.flat(Y), self.p,
                                            elementwise_threads(X.size, False))
        else:
            self._mask = self._buffer("mask", X.shape, np.uint8)
            _DROPOUT[X.dtype].dropout_forward(
                self._bound.flat(X), self._bound.flat(Y), self._bound.flat(self._mask), self.p,
                int(self._seed[0]), int(self._counter[0]), elementwise_threads(X.size, True))
            self._counter += np.uint64(1)
            self._frozen_mask_ready = self._frozen
        self._output = Y
        return Y

    def _backward(self, dY):
        if self._identity:
            return dY
        dX = self._buffer("dX", dY.shape, dY.dtype)
        _DROPOUT[dY.dtype].dropout_apply(self._bound.flat(dY), self._bound.flat(self._mask),
                                         self._bound.flat(dX), self.p,
                                         elementwise_threads(dY.size, False))
        return dX


_DROPOUT = specialized(_dropout.dropout_forward, _dropout.dropout_apply)
_OPTIM = specialized(_optim.sgd_update)


class PReLU(Layer):
    """Parametric ReLU (He et al. 2015): f(z) = z if z > 0 else α z, with α learned.

    PyTorch's ``nn.PReLU``: one slope shared by every unit (``num_parameters=1``, the
    default) or one per unit (``num_parameters=units``, He et al.'s channel-wise form and
    Keras's default), initialised to ``init``. The gradient of α sums dA·z over the inputs
    on the negative side (z <= 0): ∂L/∂α_j = Σ_i ∂L/∂a_ij · z_ij [z_ij <= 0], over the
    units too when α is shared. α is a ``Parameter`` every optimizer updates, excluded
    from L2/L1 penalties and weight decay (``regularize=False``: decay would pull α to 0,
    i.e. towards ReLU, which PyTorch's documentation advises against). Géron (ch. 11):
    PReLU does well on large image data sets but may overfit small ones.

    Parameters
    ----------
    num_parameters : int, default 1
        1 (one shared α) or the number of units of the input.
    init : float, default 0.25
        Initial value of every α (He et al.'s and PyTorch's).
    dtype : float32 or float64

    Attributes
    ----------
    weight : Parameter
        The slopes α, shape (num_parameters,) (PyTorch's name).

    Shape
    -----
    X (batch, units) → Y of the same shape.
    """

    name = "prelu"
    #: Fixed once built; ``init`` is the constructor's argument only (the slopes are ``weight``).
    num_parameters, dtype, weight = _Fixed(), _Fixed(), _Fixed()

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = check_positive_int(num_parameters, "num_parameters")
        self.init = check_number(init, "init")
        self.dtype = check_dtype(dtype)
        self.weight = Parameter(np.full(self.num_parameters, self.init, dtype=self.dtype),
                                "weight", regularize=False)
        self._input = None

    def parameters(self):
        return [self.weight]

    def get_config(self):
        return {"num_parameters": self.num_parameters, "init": self.init, "dtype": self.dtype.name}

    def input_features(self):
        return self.num_parameters if self.num_parameters > 1 else None

    @property
    def input(self):
        """The input of the last forward pass (the array itself, not a copy), or None."""
        return self._input

    def _forward(self, X):
        A = self._buffer("A", X.shape, self.dtype)
        _ACTIVATIONS[self.dtype].prelu_forward(self._bound(X), self._param_view(self.weight.values),
                                               self._bound(A))
        self._input = X
        self._output = A
        return A

    def _backward(self, dA):
        dZ = self._buffer("dZ", dA.shape, self.dtype)
        _ACTIVATIONS[self.dtype].prelu_backward(
            self._bound(self._input), self._param_view(self.weight.values), self._bound(dA),
            self._bound(dZ), self._param_view(self.weight.grad))
        return dZ


class RReLU(Layer):
    """Randomized leaky ReLU (Xu et al. 2015), PyTorch's ``nn.RReLU`` semantics.

    Training mode: f(z) = z if z > 0 else r z with a slope r ~ U[lower, upper] drawn for
    every element on every forward pass; evaluation mode: the fixed slope
    (lower + upper)/2, i.e. leaky ReLU. Géron (ch. 11): it performs fairly well and seems
    to act as a regularizer.

    The slopes come from the counter-based generator that ``Dropout`` uses: call k draws
    element i from a hash of (seed, k, i), so ``state_dict`` holds the stream as two uint64
    arrays, "seed" and "counter", and loading it resumes the same slopes. Nothing is
    stored between forward and backward: backward draws the slopes of its forward pass
    again. ``frozen_randomness()`` holds them fixed for gradient checks.

    Parameters
    ----------
    lower, upper : float, default 1/8 and 1/3
        The range of the slopes, 0 <= lower <= upper (PyTorch's defaults).
    rng : None, int or numpy.random.Generator
        Source of the seed.

    Shape
    -----
    X (batch, features) → Y of the same shape (and dtype).
    """

    name = "rrelu"
    stochastic = True
    #: May be assigned (validated against each other); a change counts as a change of the
    #: layer, so prediction (the mean slope) builds its compiled pass again.
    lower = _Setting(lambda layer, lower: check_number(
        lower, "lower", low=0, high=layer.__dict__.get("upper", math.inf)))
    upper = _Setting(lambda layer, upper: check_number(upper, "upper", low=layer.lower))

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, rng=None):
        super().__init__()
        self.lower = lower
        self.upper = upper
        seed = check_rng(rng).integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True)
        self._seed = np.array([seed], dtype=np.uint64)
        self._counter = np.zeros(1, dtype=np.uint64)
        self._frozen = False
        self._frozen_counter = None
        self._drawn = None  # the counter of the last training-mode forward pass
        self._input = None

    @property
    def slope(self):
        """The evaluation-mode slope (lower + upper)/2."""
        return (self.lower + self.upper) / 2

    def get_config(self):
        return {"lower": self.lower, "upper": self.upper}

    @property
    def input(self):
        """The input of the last forward pass (the array itself, not a copy), or None."""
        return self._input

    @contextlib.contextmanager
    def frozen_randomness(self):
        """Context in which every forward pass reuses one set of slopes (the first drawn inside).

        Used by ``fastnn.gradcheck``: with the slopes held fixed the layer is a deterministic,
        piecewise-linear function, so finite differences apply.
        """
        saved = (self._frozen, self._frozen_counter)
        self._frozen, self._frozen_counter = True, None
        try:
            yield self
        finally:
            self._frozen, self._frozen_counter = saved

    def _state_buffers(self):
        return {"seed": self._seed, "counter": self._counter}

    def _forward(self, X):
        A = self._buffer("A", X.shape, X.dtype)
        self._input = X
        self._output = A
        if not self.training:
            self._drawn = None
            _ACTIVATIONS[X.dtype].activation_forward(_LEAKY_RELU, self._bound.flat(X),
                                                     self._bound.flat(A), self.slope)
            return A
        if self._frozen and self._frozen_counter is not None:
            self._drawn = self._frozen_counter
        else:
            self._drawn = int(self._counter[0])
            self._counter += np.uint64(1)
            if self._frozen:
                self._frozen_counter = self._drawn
        _ACTIVATIONS[X.dtype].rrelu_forward(
            self._bound.flat(X), self._bound.flat(A), self.lower, self.upper, int(self._seed[0]),
            self._drawn, elementwise_threads(X.size, True))
        return A

    def _backward(self, dA):
        dZ = self._buffer("dZ", dA.shape, dA.dtype)
        if self._drawn is None:
            _ACTIVATIONS[dA.dtype].activation_backward(
                _LEAKY_RELU, self._bound.flat(self._output), self._bound.flat(dA),
                self._bound.flat(dZ), self.slope)
        else:
            _ACTIVATIONS[dA.dtype].rrelu_backward(
                self._bound.flat(self._output), self._bound.flat(dA), self._bound.flat(dZ),
                self.lower, self.upper, int(self._seed[0]), self._drawn,
                elementwise_threads(dA.size, True))
        return dZ


_LEAKY_RELU = _activations.KINDS["leaky_relu"]
#: Hidden activations that are layers of their own rather than an ``Activation``: PReLU
#: learns its slope, RReLU draws it.
PARAMETRIC_ACTIVATIONS = {"prelu": PReLU, "rrelu": RReLU}
#: Every activation name ``fastnn.mlp`` and the CLI take.
HIDDEN_ACTIVATIONS = ACTIVATIONS + tuple(PARAMETRIC_ACTIVATIONS)



class ExecutionPlan:
    """How a stack of layers runs: forward, backward, and backward fused with plain SGD.

    A Dense layer directly followed by an Activation runs as one fused kernel (GEMM, bias
    and activation in one pass, and likewise backward); every other layer runs alone.
    Nothing is validated here: ``Sequential`` validates once at its boundary.

    The fused plain-SGD step
    ------------------------
    ``sgd_backward(dY, lr)`` is ``backward(dY)`` with the plain SGD update θ ← θ − lr·∂L/∂θ
    of every parameter done inside it, from the last layer to the first:

    * a Dense layer's update is its weight-gradient GEMM, W ← W − lr·XᵀdY (α = −lr, β = 1
      into W), with b ← b − lr·Σ_rows dY, and dX = dY·Wᵀ taken with the old W. Its
      gradients are never stored: its parameters' ``grad`` arrays keep their old contents;
    * another layer with parameters (batch norm) runs its backward, which fills its
      ``grad``, then steps θ ← θ − lr·g.

    Every gradient is the one of the weights before the step, so the result is that of
    ``backward(dY)`` followed by ``SGD(lr).step()`` up to rounding (a GEMM that accumulates
    into W rounds differently from one that writes dW first). It saves the dW store and
    the separate update pass: on a batch-32 step the update costs nothing beyond the GEMM.
    Only plain SGD folds this way (no momentum, weight decay, clipping or penalty);
    ``Sequential.train_step`` is its one caller and decides when it applies.
    """

    def __init__(self, layers):
        self._layers = tuple(layers)
        self._share_views()
        self._forward, backward, sgd_backward = [], [], []
        i = 0
        while i < len(layers):
            layer, following = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layer, Dense) and isinstance(following, Activation):
                self._forward.append(functools.partial(layer._forward_activation, following))
                backward.append(functools.partial(layer._backward_activation, following))
                sgd_backward.append(functools.partial(layer._sgd_backward_activation, following))
                i += 2
                continue
            self._forward.append(layer._forward)
            backward.append(layer._backward)
            if isinstance(layer, Dense):
                sgd_backward.append(layer._sgd_backward)
            elif layer.parameters():
                sgd_backward.append(functools.partial(_backward_then_sgd, layer))
            else:
                sgd_backward.append(lambda lr, grad, layer=layer: layer._backward(grad))
            i += 1
        self._backward, self._sgd_backward = backward[::-1], sgd_backward[::-1]

    @property
    def views(self):
        """The ``BoundViews`` the layers share (their outputs and gradients are bound there)."""
        return self._layers[0]._bound if self._layers else None

    def _share_views(self):
        """One ``BoundViews`` for every layer, so that each finds the memoryview of the output
        of the layer before it (and of the gradient the layer after it returns)."""
        shared = BoundViews()
        for layer in self._layers:
            shared.update(layer._bound)
            layer._bound = shared

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._share_views()

    def __len__(self):
        """Number of stages: a fused Dense+Activation pair counts once."""
        return len(self._forward)

    def forward(self, X):
        """The last layer's output for the validated batch ``X``."""
        for forward in self._forward:
            X = forward(X)
        return X

    def backward(self, dY):
        """Fill every parameter's ``grad`` from ``dY`` = ∂L/∂output; returns ∂L/∂X (None when
        the first layer has ``needs_input_grad = False``)."""
        for backward in self._backward:
            dY = backward(dY)
        return dY

    def sgd_backward(self, dY, lr):
        """``backward(dY)`` with θ ← θ − lr·∂L/∂θ folded in (see the class docstring)."""
        for backward in self._sgd_backward:
            dY = backward(lr, dY)
        return dY


def _backward_then_sgd(layer, lr, grad):
    """``layer``'s backward, then θ ← θ − lr·g on its parameters (the gradient it just used)."""
    grad = layer._backward(grad)
    for p in layer.parameters():
        _OPTIM[p.values.dtype].sgd_update(layer._bound.own_flat(p.values),
                                        layer._bound.own_flat(p.grad), lr)
        p.mark_changed()
    return grad


#: Layer classes a model file may name (a closed registry: nothing else is constructed).
LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Identity, Sigmoid, Tanh, HardTanh,
                                         Softsign, ReLU, LeakyReLU, ELU, SELU, Softplus,
                                         BatchNorm, Dropout, PReLU, RReLU)}

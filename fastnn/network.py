"""Sequential networks and the ``mlp`` shortcut."""
import contextlib

import numpy as np

from fastnn import inference, initializers
from fastnn import losses as _losses
from fastnn._validation import check_array, check_dtype, check_number, check_rng, is_sparse
from fastnn._views import specialized
from fastnn.layers import (
    HIDDEN_ACTIVATIONS,
    LAYERS,
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    ExecutionPlan,
    Layer,
    PReLU,
    RReLU,
    write_count,
)
from fastnn_c import regularization as _regularization

#: The penalty kernels' float32 and float64 specializations, called with bound memoryviews.
_REGULARIZATION = specialized(_regularization.regularization_penalty,
                              _regularization.regularization_backward)

#: Rows per chunk of ``forward`` on large inputs (bounds the buffers' memory).
PREDICT_CHUNK = 4096


class Sequential:
    """A stack of layers trained against one loss.

    Parameters
    ----------
    layers : list of Layer
    loss : str or fastnn.losses.Loss, default "softmax_cross_entropy"
        Applied to the last layer's output (logits); see ``fastnn.losses``.
    l2 : float >= 0, default 0
        L2 penalty coefficient λ₂ ("weight decay").
    l1 : float >= 0, default 0
        L1 penalty coefficient λ₁.

    Notes
    -----
    Regularization. ``loss(X, y)`` returns

        L = L_data + (λ₂/2) Σ w² + λ₁ Σ |w|

    summed over every parameter with ``regularize=True`` (the weights of Dense layers; not
    biases nor batch-norm γ, β unless asked), and ``backward()`` adds λ₂ w + λ₁ sign(w) to
    their gradients (sign(0) = 0). So l2 is λ in λ/2·‖w‖² with gradient λw: plain SGD then
    shrinks weights by the factor (1 − η λ₂) per step, exactly PyTorch's SGD
    ``weight_decay=l2``. L_data is a batch mean, so Nielsen's regularized cost
    C₀ + (λ/2n) Σ w² (n = training-set size) is l2 = λ/n, and his L1 term (λ/n) Σ |w| is
    l1 = λ/n; Keras's ``L2(c)`` adds c Σ w² (no ½), i.e. l2 = 2c. ``evaluate`` reports the
    data loss only. Max-norm constraints are per layer (``Dense(..., max_norm=c)``) and are
    enforced by ``apply_constraints()``, which ``train_step`` calls after each update.

    Modes. ``forward`` and ``loss`` use the current mode (``train()``/``eval()``; batch
    statistics and dropout in training mode), as in PyTorch; ``predict``, ``predict_proba``
    and ``evaluate`` always compute in evaluation mode, whatever the mode.

    Prediction. ``predict``, ``predict_proba`` and ``evaluate`` run the whole evaluation-mode
    pass as one compiled call (``fastnn.inference``: batch norm folded into the Dense layers,
    then the softmax or argmax) when the layers fold, which every network of ``mlp`` does;
    otherwise layer by layer. The compiled pass keeps the weights packed and builds again when
    a parameter's ``version`` or a layer's ``state_version`` moves. Every way to change the
    weights counts (``Parameter.data`` is read-only; ``p.data = v``, ``p.copy_(v)`` and
    ``with p.edit() as w:`` write, see ``fastnn.layers.Parameter``), and so does assigning a
    layer setting the pass reads (an activation's ``alpha``, batch norm's ``eps`` and running
    statistics, RReLU's bounds). ``layers`` is a tuple, fixed once built.

    Sparse input. When the first layer is Dense, X may be a SciPy sparse matrix (kept as CSR,
    never densified): the first layer runs on its stored values, the others as usual, and
    prediction runs layer by layer in chunks of ``PREDICT_CHUNK`` rows (the compiled pass
    packs dense rows).

    Examples
    --------
    >>> net = Sequential([Dense(784, 100, init="he_normal", rng=0), ReLU(), Dense(100, 10, rng=0)])
    >>> opt = SGD(net.parameters(), lr=0.1)
    >>> loss = net.train_step(X_batch, y_batch, opt)
    """

    def __init__(self, layers, loss="softmax_cross_entropy", l2=0.0, l1=0.0):
        layers = list(layers)
        if not layers:
            raise ValueError("a Sequential network needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] is a {type(layer).__name__}, not a fastnn Layer")
        dtypes = {p.data.dtype for layer in layers for p in layer.parameters()}
        if len(dtypes) > 1:
            raise TypeError(f"all layers must share one dtype, got {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        self._layers = tuple(layers)
        self.loss_fn = _losses.get(loss)
        self.in_features = next((l.input_features() for l in layers
                                 if l.input_features() is not None), None)
        width = self.in_features
        for layer in layers:
            expected = layer.input_features()
            if width is not None and expected is not None and expected != width:
                raise ValueError(f"{layer!r} expects {expected} inputs but receives {width}")
            width = layer.output_features(width)
        self.out_features = width
        for layer in layers:
            layer.needs_input_grad = True
        layers[0].needs_input_grad = False
        self._plan = ExecutionPlan(layers)
        self.loss_fn.share_views(self._plan.views)
        self._constrained = [layer for layer in layers
                             if type(layer).apply_constraints is not Layer.apply_constraints]
        self._parameters = tuple(self.parameters())
        self._compiled = {}  # head -> (write_count, parameter_versions, CompiledForward or None)
        self.training = True
        self.l2 = check_number(l2, "l2", low=0)
        self.l1 = check_number(l1, "l1", low=0)

    # -- forward / backward ------------------------------------------------------------
    def forward(self, X):
        """Network output (logits) for ``X`` of shape (batch, in_features), as a new array."""
        X = self._check_X(X)
        if X.shape[0] <= PREDICT_CHUNK:
            return self._forward(X).copy()
        return np.concatenate([self._forward(X[i:i + PREDICT_CHUNK]).copy()
                               for i in range(0, X.shape[0], PREDICT_CHUNK)])

    def loss(self, X, y):
        """Forward pass and loss value, including the L2/L1 penalty; afterwards ``backward()``
        computes every gradient."""
        X = self._check_X(X)
        output = self._forward(X)
        target = self.loss_fn.check_target(y, output.shape, self.dtype)
        value = self.loss_fn.forward(output, target, validate=False)
        if self.l2 or self.l1:
            value += self.penalty()
        return value

    def backward(self):
        """Fill each parameter's ``grad`` from the last ``loss`` call; returns ∂L/∂X if kept."""
        grad = self._plan.backward(self.loss_fn.backward())
        if self.l2 or self.l1:
            views = self._plan.views
            for p in self._regularized():
                _REGULARIZATION[p.values.dtype].regularization_backward(
                    views.own_flat(p.values), views.own_flat(p.grad), self.l2, self.l1)
        return grad

    def penalty(self):
        """The regularization term (l2/2) Σ w² + l1 Σ |w| over parameters with ``regularize``."""
        views = self._plan.views
        return sum(_REGULARIZATION[p.values.dtype].regularization_penalty(views.own_flat(p.values),
                                                                   self.l2, self.l1)
                   for p in self._regularized())

    def apply_constraints(self):
        """Enforce every layer's constraints (max-norm); ``train_step`` calls it after each update."""
        for layer in self._constrained:
            layer.apply_constraints()

    def train_step(self, X, y, optimizer, fused=True):
        """One step of training on the batch (X, y): forward, loss, backward, update, constraints.

        Returns the batch loss (before the update), including the regularization penalty.

        Parameters
        ----------
        X, y : a batch
        optimizer : fastnn.optimizers.Optimizer
            Built on ``self.parameters()``.
        fused : bool, default True
            Whether a plain SGD step may run fused. When ``fused`` is true, the network has
            no L2/L1 penalty and ``optimizer.plain_sgd_rate(self.parameters())`` gives a
            rate (plain SGD: no momentum, weight decay or clipping), the update is folded
            into the backward pass (``ExecutionPlan.sgd_backward``: each Dense layer's into
            its weight-gradient GEMM, W ← W − lr·XᵀdY) and counted with
            ``optimizer.record_fused_step()``. The weights come out as those of the unfused
            step up to rounding, but the Dense layers' ``grad`` arrays are not written (and
            ``optimizer.last_grad_norm`` is None). ``fused=False`` always runs ``loss``,
            ``backward`` and ``optimizer.step()``, so every ``grad`` holds this step's gradient.

        ``fastnn.fit`` runs exactly this step per batch: fused when it checks nothing
        (``on_nonfinite="ignore"``, no diagnostics), unfused otherwise (it inspects the
        gradients before the update), so a loop of ``train_step`` calls over fit's batches
        gives fit's weights bit for bit.
        """
        rate = None
        if fused and not (self.l2 or self.l1):
            rate = optimizer.plain_sgd_rate(self._parameters)
        value = self.loss(X, y)
        if rate is None:
            self.backward()
            optimizer.step()
        else:
            self._plan.sgd_backward(self.loss_fn.backward(), rate)
            optimizer.record_fused_step()
        self.apply_constraints()
        return value

    def _regularized(self):
        return [p for p in self.parameters() if p.regularize]

    def _forward(self, X):
        return self._plan.forward(X)

    def _check_X(self, X):
        # A SciPy sparse X (as CSR) goes to a first Dense layer's sparse kernels.
        return check_array(X, "X", self.dtype, n_columns=self.in_features,
                           accept_sparse=self.layers[0].accepts_sparse)

    # -- prediction --------------------------------------------------------------------
    @contextlib.contextmanager
    def _evaluation_mode(self):
        modes = [layer.training for layer in self.layers]
        training = self.training
        self.eval()
        try:
            yield
        finally:
            for layer, mode in zip(self.layers, modes):
                layer.train(mode)
            self.training = training

    def _evaluation_output(self, X, head):
        """``head`` ("logits", "argmax" or "softmax") of the evaluation-mode output for X."""
        X = self._check_X(X)
        if is_sparse(X):  # the compiled pass packs dense weights for dense rows
            return self._layered_output(X, head)
        cached = self._compiled.get(head)
        # While nothing anywhere was written (write_count), the pass built last still holds.
        compiled = (cached[2] if cached is not None and cached[0] == write_count()
                    else self._compiled_forward(head))
        if compiled is not None:
            return compiled(X)
        return self._layered_output(X, head)

    def _layered_output(self, X, head):
        """``_evaluation_output`` through the layers one by one (``forward``, by chunks)."""
        with self._evaluation_mode():
            output = self.forward(X)
        if head == "argmax":
            return output.argmax(axis=1)
        if head == "softmax":
            output -= output.max(axis=1, keepdims=True)
            np.exp(output, out=output)
            output /= output.sum(axis=1, keepdims=True)
        return output

    def _compiled_forward(self, head):
        """The compiled evaluation-mode pass ending in ``head``, built again if this network's
        parameter or state versions moved since it was built."""
        writes = write_count()
        versions = inference.parameter_versions(self._parameters, self.layers)
        cached = self._compiled.get(head)
        if cached is None or cached[1] != versions:
            compiled = inference.compile_forward(self.layers, self.dtype, head)
        else:
            compiled = cached[2]
        self._compiled[head] = (writes, versions, compiled)
        return compiled

    def predict(self, X):
        """Class labels (argmax of the logits) for classification losses; outputs for MSE."""
        if self.loss_fn.target_kind == "labels":
            return self._evaluation_output(X, "argmax")
        output = self.decision_function(X)
        if isinstance(self.loss_fn, _losses.BinaryCrossEntropy):
            return (output > 0).astype(np.int64)
        return output

    def decision_function(self, X):
        """The evaluation-mode network output (logits, or the regression outputs) for X, as a
        new array: ``forward`` in evaluation mode, through the compiled pass where it applies."""
        return self._evaluation_output(X, "logits")

    def predict_proba(self, X):
        """Class probabilities: softmax for cross-entropy, sigmoid per unit for binary CE."""
        if isinstance(self.loss_fn, _losses.BinaryCrossEntropy):
            return 1 / (1 + np.exp(-self.decision_function(X)))
        if not isinstance(self.loss_fn, _losses.SoftmaxCrossEntropy):
            raise ValueError(f"predict_proba needs a probabilistic loss, not {self.loss_fn.name}")
        return self._evaluation_output(X, "softmax")

    def evaluate(self, X, y):
        """Mean loss and, for classification, accuracy over (X, y): ``{"loss": .., "accuracy": ..}``.

        Runs in evaluation mode; the loss is the data loss, without the regularization penalty.
        """
        output = self.decision_function(X)
        target = self.loss_fn.check_target(y, output.shape, self.dtype)
        result = {"loss": self.loss_fn.value(output, target)}
        if self.loss_fn.target_kind == "labels":
            result["accuracy"] = float(np.mean(output.argmax(axis=1) == target))
        return result

    # -- state -------------------------------------------------------------------------
    @property
    def layers(self):
        """The layers, as a tuple: the execution plan and the compiled prediction pass are
        built from them, so the network's structure is fixed once built (build a new
        ``Sequential`` for another one)."""
        return self._layers

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_compiled"] = {}  # compiled passes are rebuilt, not copied or pickled
        return state

    def __setstate__(self, state):
        state = dict(state)
        if "layers" in state:  # a pickle of before the tuple
            state["_layers"] = tuple(state.pop("layers"))
        self.__dict__.update(state)
        self.loss_fn.share_views(self._plan.views)

    def parameters(self):
        """All trainable parameters, in layer order."""
        return [p for layer in self.layers for p in layer.parameters()]

    def train(self, mode=True):
        """Training mode for every layer; ``train(False)`` is ``eval()``."""
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        """Evaluation mode for every layer."""
        return self.train(False)

    def state_dict(self):
        """Copies of every layer's arrays, keyed "<layer index>.<name>"."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers)
                for key, value in layer.state_dict().items()}

    def load_state_dict(self, state):
        """Load arrays produced by ``state_dict`` (in place, so optimizers keep working)."""
        per_layer = [{} for _ in self.layers]
        for key, value in state.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.layers):
                raise ValueError(f"state key {key!r} names no layer of this network")
            per_layer[int(index)][name] = value
        for layer, layer_state in zip(self.layers, per_layer):
            layer.load_state_dict(layer_state)

    def get_config(self):
        """Architecture as JSON-serialisable data: layer classes and their arguments, the loss."""
        config = {"layers": [{"class": type(l).__name__, "config": l.get_config()} for l in self.layers],
                  "loss": {"name": self.loss_fn.name, "config": self.loss_fn.get_config()}}
        # Present only when set, so configs of unregularized networks keep their form.
        if self.l2:
            config["l2"] = self.l2
        if self.l1:
            config["l1"] = self.l1
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuild a network from ``get_config()`` output, using only the closed layer registry."""
        layers = []
        for spec in config["layers"]:
            if spec["class"] not in LAYERS:
                raise ValueError(f"unknown layer class {spec['class']!r} in config")
            layers.append(LAYERS[spec["class"]](**spec["config"]))
        loss = _losses.LOSSES.get(config["loss"]["name"])
        if loss is None:
            raise ValueError(f"unknown loss {config['loss']['name']!r} in config")
        return cls(layers, loss=loss(**config["loss"]["config"]), l2=config.get("l2", 0.0),
                   l1=config.get("l1", 0.0))

    def astype(self, dtype):
        """A copy of the network with parameters in ``dtype`` (e.g. float64 for gradcheck)."""
        config = self.get_config()
        dtype = check_dtype(dtype)
        for spec in config["layers"]:
            if "dtype" in spec["config"]:
                spec["config"]["dtype"] = dtype.name
        clone = type(self).from_config(config)
        clone.load_state_dict(self.state_dict())
        clone.train(self.training)
        return clone

    def __repr__(self):
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        penalties = "".join(f", {k}={v}" for k, v in (("l2", self.l2), ("l1", self.l1)) if v)
        return f"Sequential([\n{inner}\n], loss={self.loss_fn.name!r}{penalties})"


def mlp(sizes, activation="relu", loss="softmax_cross_entropy", init=None, rng=None,
        dtype=np.float32, alpha=None, batch_norm=False, dropout=0.0, l2=0.0, l1=0.0,
        max_norm=None):
    """A multi-layer perceptron in Nielsen's notation: ``mlp([784, 30, 10], activation="sigmoid")``.

    Dense layers of the given widths with ``activation`` between them and none after the
    last (the loss works on logits). Each hidden layer is

        Dense → [BatchNorm] → activation → [BatchNorm if batch_norm="after"] → [Dropout]

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, output last (at least two).
    activation : str
        One of ``fastnn.layers.HIDDEN_ACTIVATIONS``: the ``Activation`` names, "prelu" (a
        ``PReLU`` layer with one learned slope per unit, He et al.'s channel-wise form,
        initialised to ``alpha`` or 0.25) or "rrelu" (``RReLU(1/8, 1/3)``, seeded from ``rng``).
    init : str or callable, optional
        Weight initializer; by default the one that suits the activation
        (``fastnn.initializers.default_for_activation``: He for ReLU/ELU, LeCun for SELU,
        Glorot otherwise). ``init="nielsen"`` gives Nielsen's N(0, 1/n_in) weights and
        N(0, 1) biases.
    rng : None, int or numpy.random.Generator
        Source of the initial weights and of the dropout (and RReLU) seeds.
    batch_norm : bool or {"before", "after"}, default False
        True or "before": ``BatchNorm`` between each hidden Dense layer and its activation
        (Ioffe & Szegedy), and those Dense layers get no bias (β replaces it);
        "after": ``BatchNorm`` after each hidden activation.
    dropout : float in [0, 1), default 0
        Drop probability of a ``Dropout`` layer after each hidden activation (none if 0).
    l2, l1 : float >= 0, default 0
        Penalty coefficients of the network (see ``Sequential``).
    max_norm : float, optional
        Max-norm constraint on every Dense layer's incoming weight vectors.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {sizes}")
    if batch_norm not in (False, True, None, "before", "after"):
        raise ValueError(f"batch_norm must be False, True, 'before' or 'after', got {batch_norm!r}")
    batch_norm = "before" if batch_norm is True else (batch_norm or None)
    dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
    if activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from "
                         f"{', '.join(HIDDEN_ACTIVATIONS)}")
    if activation == "rrelu" and alpha is not None:
        raise ValueError("activation 'rrelu' takes no alpha (use RReLU(lower, upper) layers)")
    rng = check_rng(rng)
    init = init or initializers.default_for_activation(activation)
    layers = []
    n_hidden = len(sizes) - 2
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < n_hidden
        layers.append(Dense(n_in, n_out, bias=not (hidden and batch_norm == "before"), init=init,
                            rng=rng, dtype=dtype, max_norm=max_norm))
        if hidden:
            if batch_norm == "before":
                layers.append(BatchNorm(n_out, dtype=dtype))
            if activation == "prelu":
                layers.append(PReLU(n_out, 0.25 if alpha is None else alpha, dtype=dtype))
            elif activation == "rrelu":
                layers.append(RReLU(rng=rng))
            else:
                layers.append(Activation(activation, alpha))
            if batch_norm == "after":
                layers.append(BatchNorm(n_out, dtype=dtype))
            if dropout > 0:
                layers.append(Dropout(dropout, rng=rng))
    return Sequential(layers, loss=loss, l2=l2, l1=l1)

"""Take a trained network to other runtimes: ONNX graphs and PyTorch modules.

``to_onnx`` writes the evaluation-mode forward pass as an ONNX graph (opset ``OPSET``) that
onnxruntime and other ONNX runtimes serve; ``to_torch`` and ``from_torch`` convert between a
``fastnn.Sequential`` and a ``torch.nn.Sequential`` of the matching modules. Both need their
optional extras: ``pip install "fastnn[onnx]"`` (onnx, onnxruntime) and ``"fastnn[torch]"``.

Layouts differ: a fastnn ``Dense`` holds W of shape (in, out) and computes X W + b, PyTorch's
``Linear`` holds its transpose (out, in) and ONNX's ``Gemm`` takes W as it is (transB = 0).
"""
import json
import os
import tempfile

import numpy as np

from fastnn._version import __version__
from fastnn.datasets import Preprocessor
from fastnn.layers import (
    ELU,
    SELU,
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    HardTanh,
    Identity,
    LeakyReLU,
    PReLU,
    ReLU,
    RReLU,
    Sigmoid,
    Softplus,
    Softsign,
    Tanh,
)
from fastnn.losses import BinaryCrossEntropy, Poisson, SoftmaxCrossEntropy
from fastnn.network import Sequential

__all__ = ["OPSET", "to_onnx", "to_torch", "from_torch"]

#: The ONNX operator set the graphs use (every operator below exists unchanged in opset 17).
OPSET = 17
#: The ONNX IR version of opset 17, so that runtimes older than the onnx package load the file.
IR_VERSION = 8

#: SELU's constants (Klambauer et al. 2017, eq. 14), as fastnn's kernels use them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _parts(model):
    """``(net, preprocessor or None, classes or None)`` of a network, estimator or model file."""
    if isinstance(model, Sequential):
        return model, None, None
    net = getattr(model, "net_", None)
    if isinstance(net, Sequential):  # a fitted fastnn estimator
        return net, None, getattr(model, "classes_", None)
    net = getattr(model, "net", None)
    if isinstance(net, Sequential):  # what fastnn.load returns
        pre = Preprocessor.from_state(model.preprocessing)
        return net, (None if pre.method == "scale" else pre), None
    if hasattr(model, "get_params") and not hasattr(model, "net_"):
        raise ValueError(f"this {type(model).__name__} is not fitted yet: call fit(X, y) first")
    raise TypeError("model must be a fastnn.Sequential, a fitted fastnn estimator or a loaded "
                    f"model file (fastnn.load), got {type(model).__name__}")


def _import(name, extra):
    try:
        return __import__(name)
    except ImportError as error:
        raise ImportError(f"{name} is needed for this conversion: pip install \"fastnn[{extra}]\"") \
            from error


# -- ONNX ---------------------------------------------------------------------------------

#: fastnn activation name → (ONNX operator, attributes given the layer's alpha).
_ONNX_ACTIVATIONS = {
    "identity": ("Identity", lambda a: {}),
    "sigmoid": ("Sigmoid", lambda a: {}),
    "tanh": ("Tanh", lambda a: {}),
    "softsign": ("Softsign", lambda a: {}),
    "softplus": ("Softplus", lambda a: {}),
    "relu": ("Relu", lambda a: {}),
    "leaky_relu": ("LeakyRelu", lambda a: {"alpha": a}),
    "elu": ("Elu", lambda a: {"alpha": a}),
    "selu": ("Selu", lambda a: {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}),
}


class _Graph:
    """Nodes and constant tensors of a graph under construction, with fresh value names."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.initializers = [], []
        self._count = 0

    def name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint, array):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, output=None, **attributes):
        output = output or self.name(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], **attributes))
        return output


def _fold_batchnorm(W, b, bn):
    """W', b' with X W' + b' = BN_eval(X W + b): each column scaled by γ/√(σ²+ε) (float64)."""
    scale, shift = bn.evaluation_affine()
    return W.astype(np.float64) * scale, b.astype(np.float64) * scale + shift


def _layer_nodes(graph, layers, x):
    """Append the nodes of ``layers`` (evaluation mode) to ``graph``; return the output name."""
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Dense):
            W = layer.weight.data
            b = layer.bias.data if layer.bias is not None else np.zeros(layer.out_features)
            following = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(following, BatchNorm):  # Dense → BatchNorm folds into one Gemm
                W, b = _fold_batchnorm(W, b, following)
                i += 1
            x = graph.node("Gemm", [x, graph.constant("W", W.astype(np.float32)),
                                    graph.constant("b", b.astype(np.float32))])
        elif isinstance(layer, Activation):
            if layer.name == "hardtanh":
                x = graph.node("Clip", [x, graph.constant("min", np.float32(-1)),
                                        graph.constant("max", np.float32(1))])
            else:
                op, attributes = _ONNX_ACTIVATIONS[layer.name]
                x = graph.node(op, [x], **attributes(float(layer.alpha)))
        elif isinstance(layer, BatchNorm):
            x = graph.node("BatchNormalization",
                           [x] + [graph.constant(hint, value.astype(np.float32)) for hint, value in
                                  (("gamma", layer.gamma.data), ("beta", layer.beta.data),
                                   ("running_mean", layer.running_mean),
                                   ("running_var", layer.running_var))],
                           epsilon=float(layer.eps))
        elif isinstance(layer, PReLU):  # slope (units,) or (1,): broadcast over the batch
            slope = graph.constant("slope", layer.weight.data.astype(np.float32))
            x = graph.node("PRelu", [x, slope])
        elif isinstance(layer, RReLU):
            x = graph.node("LeakyRelu", [x], alpha=float(layer.slope))
        elif not isinstance(layer, Dropout):  # Dropout is the identity at inference: no node
            raise ValueError(f"layer {i} ({layer!r}) has no ONNX form; supported: Dense, the "
                             "activations, PReLU, RReLU, BatchNorm, Dropout")
        i += 1
    return x


def _output_nodes(graph, net, z, classes):
    """Name the network's outputs; returns ``[(name, element type, shape, description), ...]``."""
    TensorProto = graph.onnx.TensorProto
    rows, full = ["batch"], ["batch", net.out_features]
    loss = net.loss_fn
    if isinstance(loss, Poisson):  # the log link: the network's output is log ŷ
        graph.node("Exp", [z], "predictions")
        return [("predictions", TensorProto.FLOAT, full, "exp of the network's outputs")]
    if loss.target_kind != "labels" and not isinstance(loss, BinaryCrossEntropy):
        graph.node("Identity", [z], "predictions")
        return [("predictions", TensorProto.FLOAT, full, "the network's outputs")]
    outputs = [("logits", TensorProto.FLOAT, full, "the last layer's outputs (logits or scores)")]
    graph.node("Identity", [z], "logits")
    if isinstance(loss, BinaryCrossEntropy):
        positive = graph.node("Cast", [graph.node("Greater", [z, graph.constant("zero", np.float32(0))])],
                              to=TensorProto.INT64)
        if classes is not None and len(classes) == 2 and net.out_features == 1:
            # a binary estimator: one logistic unit, probabilities of both classes, its labels
            p = graph.node("Sigmoid", [z])
            graph.node("Concat", [graph.node("Sub", [graph.constant("one", np.float32(1)), p]), p],
                       "probabilities", axis=1)
            outputs.append(("probabilities", TensorProto.FLOAT, ["batch", 2],
                            "probabilities of classes_[0] and classes_[1]"))
            index = graph.node("Reshape", [positive, graph.constant("rows", np.array([-1]))])
            return outputs + [_class_labels(graph, classes, index)]
        graph.node("Sigmoid", [z], "probabilities")
        outputs.append(("probabilities", TensorProto.FLOAT, full, "sigmoid of each logit"))
        graph.node("Identity", [positive], "label")
        outputs.append(("label", TensorProto.INT64, full, "1 where the logit is > 0, else 0"))
        return outputs
    if isinstance(loss, SoftmaxCrossEntropy):
        graph.node("Softmax", [z], "probabilities", axis=1)
        outputs.append(("probabilities", TensorProto.FLOAT, full, "softmax of the logits"))
    index = graph.node("ArgMax", [z], None if classes is not None else "label", axis=1, keepdims=0)
    if classes is None:
        outputs.append(("label", TensorProto.INT64, rows, "index of the largest logit"))
        return outputs
    return outputs + [_class_labels(graph, classes, index)]


def _class_labels(graph, classes, index):
    """The node ``label`` = classes[index] for an estimator's ``classes_``; its output entry."""
    TensorProto = graph.onnx.TensorProto
    classes = np.asarray(classes)
    if classes.dtype.kind in "OUS":
        table = np.array([str(c).encode() for c in classes], dtype=object)
        kind = TensorProto.STRING
    elif classes.dtype.kind in "iub":
        table, kind = classes.astype(np.int64), TensorProto.INT64
    else:
        table, kind = classes.astype(np.float64), TensorProto.DOUBLE
    graph.node("Gather", [graph.constant("classes", table), index], "label", axis=0)
    return ("label", kind, ["batch"], "the estimator's class (classes_) of the largest output")


def to_onnx(model, path=None):
    """The evaluation-mode forward pass of ``model`` as an ONNX graph.

    Parameters
    ----------
    model : fastnn.Sequential, fitted fastnn estimator, or a loaded model file
        A model file (``fastnn.load``) brings its stored preprocessing, which becomes the
        first nodes of the graph (centering ``Sub``, standardizing ``Div``, PCA or ZCA
        whitening ``MatMul``).
    path : str or path-like, optional
        Where to write the ``.onnx`` file (atomically: nothing is left at ``path`` on error).

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker``; opset ``OPSET``. Input ``"input"``: float32 features
        of shape (batch, in_features) as they reach the stored preprocessing, i.e. for images
        pixels scaled to [0, 1] (``fastnn.datasets.flatten_and_scale``); the batch dimension
        is dynamic. Outputs (float32 unless stated):

        - classification losses: ``"logits"``; ``"probabilities"`` (softmax for softmax
          cross-entropy, per-unit sigmoid for binary cross-entropy; none for hinge);
          ``"label"`` (int64 class index, or the estimator's ``classes_`` entry);
        - value losses: ``"predictions"`` (MSE: the outputs; Poisson: their exp, the
          inverse of its log link, as ``MLPRegressor(loss="poisson").predict``).

    Notes
    -----
    Dense → ``Gemm`` (W as stored, (in, out)); a BatchNorm right after a Dense is folded into
    its ``Gemm`` (W' = W·γ/√(σ²+ε) per column, b' = (b − μ)·γ/√(σ²+ε) + β with the running
    statistics, in float64); any other BatchNorm (e.g. after the activation) stays a
    ``BatchNormalization`` node; HardTanh → ``Clip(−1, 1)``; SELU → ``Selu`` with fastnn's λ
    and α; PReLU → ``PRelu`` (its slopes, one per unit or one shared, broadcast over the
    batch); RReLU → ``LeakyRelu`` with its evaluation slope (lower + upper)/2; Dropout
    disappears (the identity at inference). A float64 network is exported in
    float32. The metadata (``metadata_props``) holds the fastnn version, the network's
    configuration (JSON), the preprocessing and the input's description.

    Raises
    ------
    ValueError
        A layer has no ONNX form (the message names it).
    """
    onnx = _import("onnx", "onnx")
    net, pre, classes = _parts(model)
    n_in = (pre.n_features_in if pre is not None else None) or net.in_features
    if n_in is None:
        raise ValueError("the network has no Dense or BatchNorm layer, so its input width is unknown")
    graph = _Graph(onnx)
    x = "input"
    if pre is not None:
        x = graph.node("Sub", [x, graph.constant("mean", pre.mean.astype(np.float32))])
        if pre.method == "standardize":
            x = graph.node("Div", [x, graph.constant("std", pre.std.astype(np.float32))])
        if pre.whitening is not None:
            x = graph.node("MatMul", [x, graph.constant("whitening", pre.whitening.astype(np.float32))])
    z = _layer_nodes(graph, net.layers, x)
    outputs = _output_nodes(graph, net, z, classes)
    helper = onnx.helper
    described = "; ".join(f"{name}: {text}" for name, _, _, text in outputs)
    input_text = ("float32 features (batch, %d) as they reach the model's preprocessing "
                  "(%s); for images, pixels scaled to [0, 1]" % (n_in, pre.method if pre else "none"))
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes, "fastnn",
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", n_in])],
            [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape, _ in outputs],
            graph.initializers, doc_string=f"input: {input_text}. outputs: {described}"),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fastnn",
        producer_version=__version__, ir_version=IR_VERSION)
    helper.set_model_props(proto, {
        "fastnn_version": __version__, "network": json.dumps(net.get_config()),
        "preprocessing": pre.method if pre is not None else "none", "input": input_text,
        "outputs": described})
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        _write_atomically(os.fspath(path), proto.SerializeToString())
    return proto


def _write_atomically(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    except OSError as exc:  # name the user's path, not the temporary file's
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
    try:
        # mkstemp creates 0600; the .onnx follows the umask like model files (fastnn.io)
        mask = os.umask(0)  # the only portable way to read it
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# -- PyTorch ------------------------------------------------------------------------------

def _torch_activation(nn, layer):
    alpha = float(layer.alpha)
    return {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
            "hardtanh": lambda: nn.Hardtanh(-1.0, 1.0), "softsign": nn.Softsign,
            "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(alpha),
            "elu": lambda: nn.ELU(alpha), "selu": nn.SELU, "softplus": nn.Softplus}[layer.name]()


def to_torch(model):
    """A ``torch.nn.Sequential`` computing what the network computes, weights copied.

    Dense → ``Linear`` (weight transposed to (out, in)), each activation → its module
    (HardTanh → ``Hardtanh(-1, 1)``; PReLU → ``PReLU(num_parameters, init)`` with the
    slopes copied; RReLU → ``RReLU(lower, upper)``), BatchNorm → ``BatchNorm1d`` with γ, β,
    the running statistics, ``eps`` and ``momentum`` (both libraries weight the new batch
    statistic by momentum and keep the unbiased running variance), Dropout → ``Dropout(p)``.
    The module has the network's dtype and mode (``train()``/``eval()``).

    Not part of the module: the loss (use the matching ``torch.nn`` loss), the L2/L1
    penalties (``net.l2`` is PyTorch's SGD ``weight_decay``; L1 has no optimizer option) and
    ``Dense(max_norm=...)`` constraints, the stored preprocessing of a model file, and
    Dropout's and RReLU's random streams. ``torch.nn.Softplus`` returns x itself above
    x = 20 (fastnn computes log(1 + eˣ) exactly; they differ there by under 2.1e-9).
    """
    torch = _import("torch", "torch")
    nn = torch.nn
    net, _, _ = _parts(model)
    dtype = {np.float32: torch.float32, np.float64: torch.float64}[net.dtype.type]
    modules = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            module = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                               dtype=dtype)
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
                if layer.bias is not None:
                    module.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
        elif isinstance(layer, Activation):
            module = _torch_activation(nn, layer)
        elif isinstance(layer, BatchNorm):
            module = nn.BatchNorm1d(layer.n_features, eps=layer.eps, momentum=layer.momentum,
                                    dtype=dtype)
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.gamma.data.copy()))
                module.bias.copy_(torch.from_numpy(layer.beta.data.copy()))
                module.running_mean.copy_(torch.from_numpy(layer.running_mean.copy()))
                module.running_var.copy_(torch.from_numpy(layer.running_var.copy()))
        elif isinstance(layer, PReLU):
            module = nn.PReLU(layer.num_parameters, layer.init, dtype=dtype)
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        elif isinstance(layer, RReLU):
            module = nn.RReLU(layer.lower, layer.upper)
        elif isinstance(layer, Dropout):
            module = nn.Dropout(layer.p)
        else:
            raise ValueError(f"layer {i} ({layer!r}) has no PyTorch module here; supported: "
                             "Dense, the activations, PReLU, RReLU, BatchNorm, Dropout")
        modules.append(module)
    return nn.Sequential(*modules).train(net.training)


def _fastnn_layer(torch, module, index, dtype):
    """The fastnn layer for one torch module (weights copied), or ValueError naming it."""
    nn = torch.nn

    def unsupported(why):
        return ValueError(f"module {index} ({module!r}) {why}")

    if isinstance(module, nn.Linear):
        layer = Dense(module.in_features, module.out_features, bias=module.bias is not None,
                      init="zeros", dtype=dtype)
        layer.weight.copy_(module.weight.detach().cpu().numpy().T)
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach().cpu().numpy())
        return layer
    if isinstance(module, nn.BatchNorm1d):
        if not (module.affine and module.track_running_stats) or module.momentum is None:
            raise unsupported("needs affine=True, track_running_stats=True and a momentum "
                              "(fastnn's BatchNorm keeps γ, β and running statistics)")
        layer = BatchNorm(module.num_features, momentum=module.momentum, eps=module.eps, dtype=dtype)
        layer.gamma.copy_(module.weight.detach().cpu().numpy())
        layer.beta.copy_(module.bias.detach().cpu().numpy())
        layer.running_mean = module.running_mean.cpu().numpy()
        layer.running_var = module.running_var.cpu().numpy()
        return layer
    if isinstance(module, nn.Dropout):
        return Dropout(module.p)
    if isinstance(module, nn.PReLU):
        layer = PReLU(module.num_parameters, module.init, dtype=dtype)
        layer.weight.copy_(module.weight.detach().cpu().numpy())
        return layer
    if isinstance(module, nn.RReLU):
        return RReLU(module.lower, module.upper)
    if isinstance(module, nn.Hardtanh) and not isinstance(module, nn.ReLU6):
        if (module.min_val, module.max_val) != (-1.0, 1.0):
            raise unsupported("has bounds other than (-1, 1), which fastnn's HardTanh has")
        return HardTanh()
    if isinstance(module, nn.Softplus):
        if module.beta != 1:
            raise unsupported("has beta != 1, which fastnn's Softplus does not take")
        return Softplus()
    if isinstance(module, nn.LeakyReLU):
        return LeakyReLU(module.negative_slope)
    if isinstance(module, nn.ELU) and type(module) is nn.ELU:
        return ELU(module.alpha)
    simple = {nn.Identity: Identity, nn.Sigmoid: Sigmoid, nn.Tanh: Tanh,
              nn.Softsign: Softsign, nn.ReLU: ReLU, nn.SELU: SELU}
    if type(module) in simple:
        return simple[type(module)]()
    raise unsupported("has no fastnn layer; supported: Linear, BatchNorm1d, Dropout, ReLU, "
                      "LeakyReLU, PReLU, RReLU, ELU, SELU, Sigmoid, Tanh, Hardtanh(-1, 1), "
                      "Softsign, Softplus(beta=1), Identity")


def from_torch(module, loss="softmax_cross_entropy", l2=0.0, l1=0.0):
    """A ``fastnn.Sequential`` from a ``torch.nn.Sequential`` of supported modules.

    The inverse of ``to_torch``: Linear (weight transposed to (in, out)), BatchNorm1d (γ, β,
    running statistics, eps, momentum), Dropout, PReLU (slopes copied), RReLU, and the
    activation modules fastnn has. The
    network takes the module's dtype (float32 or float64) and mode.

    Parameters
    ----------
    module : torch.nn.Sequential
    loss, l2, l1
        The network's loss and penalties (see ``fastnn.Sequential``): a torch module has none.

    Raises
    ------
    ValueError
        A module fastnn has no layer for (the message names it and its index).
    """
    torch = _import("torch", "torch")
    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) > 1:
        raise ValueError(f"the module's parameters have several dtypes: {sorted(map(str, dtypes))}")
    torch_dtype = dtypes.pop() if dtypes else torch.float32
    dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(torch_dtype)
    if dtype is None:
        raise ValueError(f"the module's parameters are {torch_dtype}; fastnn takes float32 or float64")
    converted = [_fastnn_layer(torch, child, i, dtype) for i, child in enumerate(module)]
    return Sequential(converted, loss=loss, l2=l2, l1=l1).train(module.training)

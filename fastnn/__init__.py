"""fastnn: fully-connected neural networks on compiled Cython kernels.

>>> import fastnn
>>> net = fastnn.mlp([784, 100, 10], activation="relu", rng=0)
>>> opt = fastnn.SGD(net.parameters(), lr=0.1)
>>> loss = net.train_step(X_batch, y_batch, opt)

``import fastnn`` loads the networks, layers, optimizers and kernels and nothing heavy: the
names whose modules pull in scikit-learn (the estimators), tqdm (the training loop), the
HTTP stack (dataset downloads) or matplotlib (plots, experiments) are imported on first use,
through the module ``__getattr__`` below (PEP 562). They are in ``__all__`` and
``dir(fastnn)`` like the others. tests/test_import.py checks what an import loads;
benchmarks/import_time.py measures it.
"""
import importlib

from fastnn import (
    callbacks,
    diagnostic_rules,
    diagnostics,
    initializers,
    io,
    layers,
    losses,
    optimizers,
    schedules,
)
from fastnn._config import get_num_threads, set_num_threads
from fastnn._version import __version__
from fastnn.callbacks import Callback, EarlyStopping, History, MetricsLogger, ModelCheckpoint
from fastnn.diagnostics import Monitor
from fastnn.gradcheck import GradcheckError, GradcheckWarning, gradcheck, relative_error
from fastnn.io import ModelFileError, load, save
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
    Parameter,
    PReLU,
    ReLU,
    RReLU,
    Sigmoid,
    Softplus,
    Softsign,
    Tanh,
)
from fastnn.network import Sequential, mlp
from fastnn.optimizers import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    RMSProp,
    clip_grad_norm,
    clip_grad_value,
)

#: Public names imported on first use: name -> (module, attribute; None for the module itself).
_LAZY = {
    "datasets": ("fastnn.datasets", None),          # urllib.request, tqdm (downloads)
    "experiments": ("fastnn.experiments", None),    # matplotlib when a result is plotted
    "plotting": ("fastnn.plotting", None),          # matplotlib
    "training": ("fastnn.training", None),          # tqdm
    "fit": ("fastnn.training", "fit"),
    "TrainingDivergedError": ("fastnn.training", "TrainingDivergedError"),
    "MLPClassifier": ("fastnn.estimator", "MLPClassifier"),   # scikit-learn, SciPy
    "MLPRegressor": ("fastnn.estimator", "MLPRegressor"),
    "TensorBoard": ("fastnn.tensorboard", "TensorBoard"),     # tensorboard when a run starts
}


def __getattr__(name):
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'fastnn' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__", "get_num_threads", "set_num_threads", "callbacks", "datasets",
    "diagnostic_rules", "diagnostics", "experiments", "plotting",
    "Monitor", "io", "training", "MLPClassifier", "MLPRegressor", "ModelFileError", "load", "save",
    "Callback",
    "EarlyStopping", "History", "MetricsLogger", "ModelCheckpoint", "TensorBoard",
    "TrainingDivergedError", "fit",
    "initializers", "layers",
    "losses", "optimizers", "gradcheck", "GradcheckError", "GradcheckWarning", "relative_error",
    "Activation", "Dense", "Identity", "Sigmoid", "Tanh", "HardTanh", "Softsign", "ReLU",
    "LeakyReLU", "ELU", "SELU", "Softplus", "PReLU", "RReLU", "BatchNorm", "Dropout",
    "Parameter", "Sequential", "mlp", "schedules",
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW", "clip_grad_norm",
    "clip_grad_value",
]

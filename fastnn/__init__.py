"""fastnn: fully-connected neural networks on compiled Cython kernels.

>>> import fastnn
>>> net = fastnn.mlp([784, 100, 10], activation="relu", rng=0)
>>> opt = fastnn.SGD(net.parameters(), lr=0.1)
>>> loss = net.train_step(X_batch, y_batch, opt)
"""
from fastnn import (
                    callbacks,
                    datasets,
                    diagnostic_rules,
                    diagnostics,
                    experiments,
                    initializers,
                    io,
                    layers,
                    losses,
                    optimizers,
                    plotting,
                    schedules,
                    training,
)
from fastnn._config import get_num_threads, set_num_threads
from fastnn._version import __version__
from fastnn.callbacks import Callback, EarlyStopping, History, MetricsLogger, ModelCheckpoint
from fastnn.diagnostics import Monitor
from fastnn.estimator import MLPClassifier, MLPRegressor
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
from fastnn.training import TrainingDivergedError, fit

__all__ = [
    "__version__", "get_num_threads", "set_num_threads", "callbacks", "datasets",
    "diagnostic_rules", "diagnostics", "experiments", "plotting",
    "Monitor", "io", "training", "MLPClassifier", "MLPRegressor", "ModelFileError", "load", "save",
    "Callback",
    "EarlyStopping", "History", "MetricsLogger", "ModelCheckpoint", "TrainingDivergedError", "fit",
    "initializers", "layers",
    "losses", "optimizers", "gradcheck", "GradcheckError", "GradcheckWarning", "relative_error",
    "Activation", "Dense", "Identity", "Sigmoid", "Tanh", "HardTanh", "Softsign", "ReLU",
    "LeakyReLU", "ELU", "SELU", "Softplus", "PReLU", "RReLU", "BatchNorm", "Dropout",
    "Parameter", "Sequential", "mlp", "schedules",
    "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW", "clip_grad_norm",
    "clip_grad_value",
]

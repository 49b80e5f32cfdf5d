"""Packaged experiments that reproduce the background texts' observations with fastnn.

``EXPERIMENTS`` maps a name to ``fn(data, *, rng=0, quiet=False)``, where ``data`` is
``(X_train, y_train, X_test, y_test)`` with images scaled to [0, 1]; each returns a result
with ``table() -> str``, ``to_json(path)`` and ``plot(path)`` (what ``fastnn experiment
NAME`` prints and writes).

vanishing-gradients
    Nielsen, *Neural Networks and Deep Learning*, ch. 5 ("Why are deep neural networks
    hard to train?"): the speed of learning ‖δ^l‖ of each hidden layer of sigmoid networks
    [784, 30, 10] ... [784, 30, 30, 30, 30, 10] at initialization and during full-batch
    gradient descent on the first 1,000 training images, next to the same networks with
    Glorot or He initialization, ReLU/ELU, and batch normalization.
activations
    Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward
    neural networks": a network with 4 hidden layers and sigmoid, tanh or softsign units,
    with the "standard" initialization U[−1/√n, 1/√n] against the normalized one
    U[−√6/√(n_in + n_out), +]: activation mean and standard deviation per layer over
    training, and test accuracy.

Their matrices are small (widths 30 and 200), so they run fastest on one thread
(``fastnn.set_num_threads(1)``, ``--threads 1``); run times are in benchmarks/README.md.
"""
import sys
import time

import numpy as np

from fastnn import _json
from fastnn._table import format_number, format_table
from fastnn._validation import check_array, check_labels, check_positive_int, check_rng
from fastnn.diagnostics import Monitor
from fastnn.losses import BinaryCrossEntropy
from fastnn.network import mlp
from fastnn.optimizers import SGD
from fastnn.plotting import require_matplotlib


class NielsenCrossEntropy(BinaryCrossEntropy):
    """The cross-entropy cost of Nielsen's ``network2.py`` (``CrossEntropyCost``), from logits.

    C = (1/n) Σ_i Σ_j [log(1 + e^{z_ij}) − t_ij z_ij], sigmoid output units against one-hot
    targets, summed over the k output units and averaged over the n examples, so
    ∂C/∂z = (σ(z) − t)/n, Nielsen's δ^L = a^L − y averaged over the batch. fastnn's
    ``binary_cross_entropy`` also averages over the units; this is k times it.
    """

    name = "nielsen_cross_entropy"

    def _kernel(self, output, target, grad):
        value = super()._kernel(output, target, grad)
        if grad is not None:
            grad *= output.shape[1]
        return value * output.shape[1]


def _check_data(data):
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise ValueError("data must be (X_train, y_train, X_test, y_test)")
    X_train, y_train, X_test, y_test = data
    X_train = check_array(X_train, "X_train", np.float32)
    X_test = check_array(X_test, "X_test", np.float32, n_columns=X_train.shape[1])
    n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    y_train = check_labels(y_train, "y_train", X_train.shape[0], n_classes)
    y_test = check_labels(y_test, "y_test", X_test.shape[0], n_classes)
    return X_train, y_train, X_test, y_test, n_classes


def _accuracy(net, X, y):
    net.eval()
    accuracy = float(np.mean(net.forward(X).argmax(axis=1) == y))
    net.train()
    return accuracy


def _log(quiet, message):
    if not quiet:
        print(message, file=sys.stderr, flush=True)



def _tags(warnings):
    """Short names of the warnings' kinds ("Vanishing gradients", "Saturation", ...)."""
    return sorted({w.split(":")[0] for w in warnings})



def _series(values):
    return " ".join(format_number(v, 2) for v in values)


def _ratio(values):
    """last / first of a per-layer series ("-" for a single layer)."""
    return format_number(values[-1] / values[0], 3) if len(values) > 1 and values[0] != 0 else "-"



class _Result:
    """Shared JSON export: ``{"experiment", "settings", "runs"}``."""

    experiment = None

    def __init__(self, settings, runs):
        self.settings = settings
        self.runs = runs

    def to_dict(self):
        return {"experiment": self.experiment, "settings": self.settings, "runs": self.runs}

    def to_json(self, path):
        """Write the settings and every run's numbers as JSON (non-finite floats as strings)."""
        with open(path, "w", encoding="utf-8") as f:
            _json.dump(self.to_dict(), f, indent=1)

    def __repr__(self):
        return f"{type(self).__name__}({len(self.runs)} runs)"


# -- vanishing gradients (Nielsen ch. 5) ------------------------------------------------

#: (label, activation, init, batch_norm) of each arm, Nielsen's first.
VANISHING_ARMS = (
    ("sigmoid, Nielsen init", "sigmoid", "nielsen", False),
    ("sigmoid, Glorot init", "sigmoid", "glorot_uniform", False),
    ("ReLU, He init", "relu", "he_normal", False),
    ("ELU, He init", "elu", "he_normal", False),
    ("sigmoid, Nielsen init, batch norm", "sigmoid", "nielsen", True),
)


class VanishingGradientsResult(_Result):
    """Speeds of learning per hidden layer for each (arm, depth) run.

    Each run in ``runs`` is a dict: ``arm``, ``activation``, ``init``, ``batch_norm``,
    ``sizes``, ``speeds`` (epochs × hidden layers: ‖δ^l‖ before each update, row 0 at
    initialization), ``update_ratios`` (epochs × hidden layers: ‖ΔW^l‖/‖W^l‖ of each
    update), ``train_accuracy`` (on the images trained on), ``test_accuracy``,
    ``warnings`` (``Monitor.warnings()`` of the run) and ``seconds``.
    """

    experiment = "vanishing-gradients"

    def table(self):
        """Two tables: ‖δ^l‖ at initialization and at the end (Nielsen's measure); ‖ΔW^l‖/‖W^l‖."""
        s = self.settings
        speed_rows, update_rows = [], []
        for run in self.runs:
            network = "-".join(map(str, run["sizes"]))
            speeds = np.asarray(run["speeds"], dtype=float)
            updates = np.asarray(run["update_ratios"], dtype=float)
            speed_rows.append((run["arm"], network, _series(speeds[0]), _series(speeds[-1]),
                               _ratio(speeds[0]), _ratio(speeds[-1])))
            update_rows.append((run["arm"], network, _series(updates[0]), _series(updates[-1]),
                                f"{run['train_accuracy']:.1%}", f"{run['test_accuracy']:.1%}",
                                ", ".join(_tags(run["warnings"])) or "-"))
        intro = (f"Speed of learning ||delta^l|| of each hidden layer (Nielsen ch. 5): norm of the "
                 f"gradient of the cost w.r.t. the layer's biases (beta with batch norm), mean over "
                 f"the first {s['n_train']} training images.\nFull-batch gradient descent, "
                 f"eta={s['lr']}, L2 lambda={s['lmbda']} (decay eta*lambda/n), {s['epochs']} "
                 f"epochs, Nielsen's cross-entropy cost on sigmoid outputs.")
        speeds = format_table(("arm", "network", "||delta^l|| at init (hidden 1..L)",
                           f"at epoch {s['epochs']}", "last/first at init",
                           f"last/first at epoch {s['epochs']}"), speed_rows)
        note = ("Relative weight update ||dW^l||/||W^l|| of each hidden layer per epoch (the speed "
                "at which the weights move; comparable across layers and with batch norm, where the "
                "batch sum of delta cancels); accuracy on the training images and on "
                f"{s['n_test']} test images; warnings of the run's Monitor.")
        updates = format_table(("arm", "network", "||dW||/||W|| at init (hidden 1..L)",
                            f"at epoch {s['epochs']}", "train acc", "test acc",
                            "monitor warnings"), update_rows)
        return f"{intro}\n\n{speeds}\n\n{note}\n\n{updates}"

    def plot(self, path):
        """One panel per (arm, depth): ‖δ^l‖ per hidden layer against epoch, log scale (Nielsen)."""
        Figure, FigureCanvasAgg = require_matplotlib()
        arms = list(dict.fromkeys(run["arm"] for run in self.runs))
        depths = sorted({len(run["sizes"]) - 2 for run in self.runs})
        fig = Figure(figsize=(4 * len(depths), 2.8 * len(arms)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(arms), len(depths), squeeze=False, sharex=True)
        for run in self.runs:
            ax = axes[arms.index(run["arm"]), depths.index(len(run["sizes"]) - 2)]
            speeds = np.asarray(run["speeds"], dtype=float)
            updates = np.asarray(run["update_ratios"], dtype=float)
            for j in range(speeds.shape[1]):
                line, = ax.plot(np.arange(speeds.shape[0]), speeds[:, j], label=f"hidden layer {j + 1}")
                ax.plot(np.arange(updates.shape[0]), updates[:, j], ":", color=line.get_color())
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.set_title(f"{run['arm']}\n{'-'.join(map(str, run['sizes']))}", fontsize="small")
            ax.legend(fontsize="x-small")
        for ax in axes[-1]:
            ax.set_xlabel("epoch")
        for ax in axes[:, 0]:
            ax.set_ylabel("||delta|| (solid), ||dW||/||W|| (dotted)")
        fig.suptitle("Speed of learning per hidden layer (Nielsen, ch. 5): bias-gradient norm "
                     "||delta^l|| and relative weight update")
        fig.savefig(path, dpi=90)


def vanishing_gradients(data, *, rng=0, quiet=False, n_train=1000, epochs=500, lr=0.1,
                        lmbda=5.0, hidden_width=30, depths=(1, 2, 3, 4), arms=VANISHING_ARMS):
    """Nielsen's ch. 5 experiment, plus the remedies side by side.

    For each arm in ``arms`` and each number of hidden layers in ``depths``, a network
    [784, 30, ..., 30, 10] is trained by full-batch gradient descent on the first
    ``n_train`` training images, exactly as Nielsen's ``generate_gradient.py``: before each
    of the ``epochs`` updates the speed of learning ‖δ^l‖ of every hidden layer is recorded
    (a ``Monitor`` at interval 1), the first record being the value at initialization.
    Nielsen's 500 epochs are kept: the 20 runs take about 15 s single-threaded.

    Settings follow Nielsen: sigmoid units, ``init="nielsen"`` (weights N(0, 1/n_in), biases
    N(0, 1)), ``network2``'s default cost, which is the cross-entropy on sigmoid outputs
    (``NielsenCrossEntropy``; not the quadratic cost of ch. 1-2), η = 0.1, L2 λ = 5.0 and
    500 epochs. The other arms change only the activation and initializer (Glorot for
    sigmoid; He for ReLU/ELU) or insert batch normalization before each hidden activation
    (whose β then carries the bias gradient).

    Parameters
    ----------
    data : (X_train, y_train, X_test, y_test)
        Images scaled to [0, 1], integer labels.
    rng : None, int or numpy.random.Generator
        Seed of every network's initial weights.
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    VanishingGradientsResult
    """
    X_train, y_train, X_test, y_test, n_classes = _check_data(data)
    n_train = min(check_positive_int(n_train, "n_train"), X_train.shape[0])
    epochs = check_positive_int(epochs, "epochs")
    X, y = X_train[:n_train], y_train[:n_train]
    targets = np.eye(n_classes, dtype=np.float32)[y]
    base = check_rng(rng)
    settings = {"n_train": n_train, "n_test": int(X_test.shape[0]), "epochs": epochs, "lr": lr,
                "lmbda": lmbda, "hidden_width": hidden_width, "depths": list(depths),
                "cost": "Nielsen's cross-entropy (network2 CrossEntropyCost)", "batch": "full"}
    runs = []
    for label, activation, init, batch_norm in arms:
        for depth in depths:
            sizes = [X.shape[1]] + [hidden_width] * depth + [n_classes]
            net = mlp(sizes, activation, loss=NielsenCrossEntropy(), init=init,
                      rng=np.random.default_rng(base.integers(2**63)), batch_norm=batch_norm)
            optimizer = SGD(net.parameters(), lr=lr, weight_decay=lmbda / n_train)
            monitor = Monitor(net, interval=1)
            start = time.perf_counter()
            for step in range(epochs):
                net.loss(X, targets)
                net.backward()
                monitor.after_backward(step)
                optimizer.step()
                monitor.after_update(step)
            seconds = time.perf_counter() - start
            record = monitor.record
            hidden = [i for i, _, kind in record.layers() if kind == "dense"][:-1]
            speeds = np.stack([record.series(i, "delta_norm")[1] for i in hidden], axis=1)
            updates = np.stack([record.series(i, "update_ratio")[1] for i in hidden], axis=1)
            run = {"arm": label, "activation": activation, "init": init,
                   "batch_norm": bool(batch_norm), "sizes": sizes, "speeds": speeds,
                   "update_ratios": updates,
                   "train_accuracy": _accuracy(net, X, y),
                   "test_accuracy": _accuracy(net, X_test, y_test),
                   "warnings": monitor.warnings(), "seconds": seconds}
            runs.append(run)
            _log(quiet, f"vanishing-gradients: {label:<34} {'-'.join(map(str, sizes)):<22} "
                        f"init ||delta|| {' '.join(format_number(v, 2) for v in speeds[0])}  "
                        f"test {run['test_accuracy']:.1%}  ({seconds:.1f} s)")
    return VanishingGradientsResult(settings, runs)


# -- activations and initialization (Glorot & Bengio 2010) -----------------------------

ACTIVATION_ARMS = tuple((activation, init) for activation in ("sigmoid", "tanh", "softsign")
                        for init in ("glorot_standard", "glorot_uniform"))
INIT_LABELS = {"glorot_standard": "standard U[-1/sqrt(n), 1/sqrt(n)]",
               "glorot_uniform": "normalized U[-sqrt(6/(n_in+n_out)), +]"}


class ActivationsResult(_Result):
    """Per-layer activation statistics over training for each (activation, init) run.

    Each run in ``runs`` is a dict: ``activation``, ``init``, ``sizes``, ``steps``, and per
    hidden layer (lists over layers, each a list over ``steps``) ``mean``, ``std``,
    ``p2``, ``p98``, ``saturated``; ``grad_norm_weight_init`` (‖∂C/∂W‖ per Dense layer at
    the first step), ``test_accuracy``, ``warnings`` and ``seconds``.
    """

    experiment = "activations"

    def table(self):
        """Per run, per hidden layer: mean and std at the start and the end, saturation, gradients."""
        s = self.settings
        blocks = [f"Glorot & Bengio (2010): {'-'.join(map(str, self.runs[0]['sizes']))}, softmax "
                  f"cross-entropy, SGD lr={s['lr']}, batch {s['batch_size']}, {s['epochs']} epochs "
                  f"on {s['n_train']} images; activation statistics of the training batch every "
                  f"{s['interval']} steps ('start' = first step, 'end' = mean of the last "
                  f"{s['tail']} records)."]
        summary = []
        for run in self.runs:
            tail = s["tail"]
            rows = []
            for j in range(len(run["mean"])):
                mean, std = np.asarray(run["mean"][j]), np.asarray(run["std"][j])
                saturated = np.asarray(run["saturated"][j], dtype=float)
                rows.append((f"layer {j + 1}", format_number(mean[0], 3),
                             format_number(np.mean(mean[-tail:]), 3), format_number(std[0], 3),
                             format_number(np.mean(std[-tail:]), 3),
                             f"{np.mean(saturated[-tail:]):.1%}",
                             format_number(run["grad_norm_weight_init"][j], 3)))
            header = ("hidden", "mean start", "mean end", "std start", "std end",
                      "saturated end", "||dC/dW|| start")
            title = (f"{run['activation']}, {INIT_LABELS[run['init']]} init: test accuracy "
                     f"{run['test_accuracy']:.1%}")
            blocks.append(title + "\n" + format_table(header, rows))
            summary.append((run["activation"], run["init"], f"{run['test_accuracy']:.1%}",
                            ", ".join(_tags(run["warnings"])) or "-"))
        blocks.append(format_table(("activation", "init", "test acc", "monitor warnings"), summary))
        return "\n\n".join(blocks)

    def plot(self, path):
        """Rows: activations; columns: inits; one curve per hidden layer over training.

        Sigmoid rows show the mean with a ±std band (Glorot & Bengio's fig. 2); tanh and
        softsign rows, whose means stay near 0, show the standard deviation (solid) and the
        98th percentile (dashed) as their figs. 3-4 do.
        """
        Figure, FigureCanvasAgg = require_matplotlib()
        activations = list(dict.fromkeys(run["activation"] for run in self.runs))
        inits = list(dict.fromkeys(run["init"] for run in self.runs))
        fig = Figure(figsize=(6 * len(inits), 3.2 * len(activations)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(activations), len(inits), squeeze=False, sharey="row")
        for run in self.runs:
            row = activations.index(run["activation"])
            ax = axes[row, inits.index(run["init"])]
            steps = np.asarray(run["steps"])
            for j in range(len(run["mean"])):
                mean, std = np.asarray(run["mean"][j]), np.asarray(run["std"][j])
                if run["activation"] == "sigmoid":
                    line, = ax.plot(steps, mean, label=f"layer {j + 1}")
                    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(),
                                    alpha=0.12)
                else:
                    line, = ax.plot(steps, std, label=f"layer {j + 1}")
                    ax.plot(steps, np.asarray(run["p98"][j]), "--", color=line.get_color())
            ax.set_title(f"{run['activation']}, {INIT_LABELS[run['init']]}: "
                         f"test {run['test_accuracy']:.1%}", fontsize="small")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
            if ax is axes[row, 0]:
                ax.set_ylabel("mean ± std" if run["activation"] == "sigmoid"
                              else "std (solid), 98th percentile (dashed)")
        for ax in axes[-1]:
            ax.set_xlabel("training step")
        fig.suptitle("Activation values per hidden layer during training (Glorot & Bengio 2010)")
        fig.savefig(path, dpi=90)


def activations(data, *, rng=0, quiet=False, hidden=(200, 200, 200, 200), epochs=4,
                batch_size=10, lr=0.1, interval=25, arms=ACTIVATION_ARMS):
    """Glorot & Bengio's experiment: activation statistics per layer, by activation and init.

    A network with 4 hidden layers (default 784-200-200-200-200-10, smaller than the
    paper's 1,000 units so that the six runs take minutes on 2 cores), sigmoid, tanh or
    softsign units, trained with plain SGD on mini-batches of 10 (the paper's size) with
    softmax cross-entropy, once with the "standard" initialization U[−1/√n_in, 1/√n_in]
    (``glorot_standard``) and once with the normalized one (``glorot_uniform``); biases 0.
    A ``Monitor`` records the mean, standard deviation, percentiles and saturated fraction
    of every hidden layer's outputs every ``interval`` steps.

    What the paper reports, to compare: with sigmoid units the top hidden layer is driven
    to 0 (saturation) early in training while the lower layers stay near 0.5; tanh and
    softsign keep means near 0; the normalized initialization keeps activations and
    back-propagated gradients of similar size across layers.

    Returns
    -------
    ActivationsResult
    """
    X_train, y_train, X_test, y_test, n_classes = _check_data(data)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    interval = check_positive_int(interval, "interval")
    base = check_rng(rng)
    n = X_train.shape[0]
    steps_total = epochs * -(-n // batch_size)
    tail = max(1, min(10, (steps_total // interval) // 10))
    settings = {"hidden": list(hidden), "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "interval": interval, "n_train": int(n), "n_test": int(X_test.shape[0]),
                "tail": tail, "loss": "softmax_cross_entropy", "optimizer": "SGD"}
    runs = []
    for activation, init in arms:
        sizes = [X_train.shape[1], *hidden, n_classes]
        seed = base.integers(2**63)
        net = mlp(sizes, activation, init=init, rng=np.random.default_rng(seed))  # biases 0
        optimizer = SGD(net.parameters(), lr=lr)
        monitor = Monitor(net, interval=interval)
        shuffle = np.random.default_rng(seed)
        step = 0
        start = time.perf_counter()
        for _ in range(epochs):
            order = shuffle.permutation(n)
            for first in range(0, n, batch_size):
                batch = order[first:first + batch_size]
                net.loss(X_train[batch], y_train[batch])
                net.backward()
                monitor.after_backward(step)
                optimizer.step()
                monitor.after_update(step)
                step += 1
        seconds = time.perf_counter() - start
        record = monitor.record
        layers = record.layers()
        acts = [i for i, _, kind in layers if kind == "activation"]
        dense = [i for i, _, kind in layers if kind == "dense"]
        run = {"activation": activation, "init": init, "sizes": sizes,
               "steps": record.series(acts[0], "act_mean")[0]}
        for key, column in (("mean", "act_mean"), ("std", "act_std"), ("p2", "act_p2"),
                            ("p98", "act_p98"), ("saturated", "saturated_frac")):
            run[key] = [record.series(i, column)[1] for i in acts]
        run["grad_norm_weight_init"] = [record.series(i, "grad_norm_weight")[1][0] for i in dense]
        run["test_accuracy"] = _accuracy(net, X_test, y_test)
        run["warnings"] = monitor.warnings()
        run["seconds"] = seconds
        runs.append(run)
        _log(quiet, f"activations: {activation:<8} {init:<15} test {run['test_accuracy']:.1%} "
                    f"({seconds:.1f} s)")
    return ActivationsResult(settings, runs)


EXPERIMENTS = {"vanishing-gradients": vanishing_gradients, "activations": activations}

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
import os
import re
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

    def _kernel(self, output, target, grad, weight=None):
        value = super()._kernel(output, target, grad, weight)
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


class _TensorBoardRun:
    """One setting's TensorBoard run, ``logdir/run``, written by the ``TensorBoard`` callback
    driven from the experiment's own loop; does nothing when ``logdir`` is None."""

    def __init__(self, logdir, run, net, optimizer, monitor, epochs):
        self.callback = None
        if logdir is not None:
            from fastnn.callbacks import History, Trainer
            from fastnn.tensorboard import TensorBoard

            self.trainer = Trainer(net, optimizer, None, History(), epochs)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", run).strip("-")
            # Histograms every 10th record: the experiments are for watching, not for speed.
            self.callback = TensorBoard(os.path.join(os.fspath(logdir), name), diagnostics=monitor,
                                        histogram_freq=10)
            self.callback.on_train_begin(self.trainer)

    def step(self, step, loss):
        if self.callback is not None:
            self.callback.on_batch_end(self.trainer, step, loss)

    def epoch(self, epoch, metrics):
        if self.callback is not None:
            self.callback.on_epoch_end(self.trainer, epoch, metrics)

    def close(self):
        if self.callback is not None:
            self.callback.on_train_end(self.trainer)



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
            ax.set_ylabel(r"$\|\delta\|$ (solid), $\|\Delta W\|/\| W\|$ (dotted)")
        fig.suptitle("Speed of learning per hidden layer (Nielsen, ch. 5): bias-gradient norm "
                     r"$\|\delta^l\|$ and relative weight update")
        fig.savefig(path, dpi=90)


def vanishing_gradients(data, *, rng=0, quiet=False, n_train=1000, epochs=500, lr=0.1,
                        lmbda=5.0, hidden_width=30, depths=(1, 2, 3, 4), arms=VANISHING_ARMS,
                        logdir=None):
    """Nielsen's ch. 5 experiment, plus the remedies side by side.

    For each arm in ``arms`` and each number of hidden layers in ``depths``, a network
    [784, 30, ..., 30, 10] is trained by full-batch gradient descent on the first
    ``n_train`` training images, exactly as Nielsen's ``generate_gradient.py``: before each
    of the ``epochs`` updates the speed of learning ‖δ^l‖ of every hidden layer is recorded
    (a ``Monitor`` at interval 1), the first record being the value at initialization.
    Nielsen's 500 epochs are kept: the 20 runs take about 20 s single-threaded.

    Settings follow Nielsen: sigmoid units, ``init="nielsen"`` (weights N(0, 1/n_in), biases
    N(0, 1)), ``network2``'s default cost, which is the cross-entropy on sigmoid outputs
    (``NielsenCrossEntropy``; not the quadratic cost of ch. 1-2), η = 0.1, L2 λ = 5.0 and
    500 epochs. The other arms change only the activation and initializer (Glorot for
    sigmoid; He for ReLU/ELU) or insert batch normalization before each hidden activation
    (whose β then carries the bias gradient).

    Two things the runs show that are the setting, not fastnn (both reproduced step by step
    in PyTorch from the same initial weights in tests/test_experiments_torch.py):

    - ELU + He at depth 4 diverges with the default draw (‖δ‖ ~1e23 by epoch 15): torch
      follows the same trajectory to the overflow. η = 0.1 on Nielsen's cost, summed over
      the 10 output units, is too large a step for that draw; at η = 0.05 it fits the
      1,000 images (99.9%), and other draws and depths train at η = 0.1.
    - The sudden several-fold jump of ‖ΔW‖/‖W‖ late in every batch-norm run is full-batch
      gradient descent reaching the edge of stability (Cohen et al., ICLR 2021): the cost's
      sharpness (top Hessian eigenvalue) grows during training (2 at the start, 20 = 2/η
      near epoch 350 for 784-30-10) and once it passes 2/η the iterates oscillate along
      that direction with a growing amplitude, which shows as the jump a few dozen epochs
      later; GD then hovers there. Rounding seeds the oscillation, so its epoch moves a
      little with the dtype (float32 earlier than float64); a smaller η moves it later.

    Parameters
    ----------
    data : (X_train, y_train, X_test, y_test)
        Images scaled to [0, 1], integer labels.
    rng : None, int or numpy.random.Generator
        Seed of every network's initial weights.
    quiet : bool
        No progress lines on stderr.
    logdir : str or path-like, optional
        Write each (arm, depth) run to TensorBoard as ``logdir/<arm>-depth<depth>``
        (``fastnn.callbacks.TensorBoard``: the monitor's record and histograms), so that
        TensorBoard overlays the runs.

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
            board = _TensorBoardRun(logdir, f"{label}-depth{depth}", net, optimizer, monitor,
                                    epochs)
            start = time.perf_counter()
            try:
                for step in range(epochs):
                    loss = net.loss(X, targets)
                    net.backward()
                    monitor.after_backward(step)
                    optimizer.step()
                    monitor.after_update(step)
                    board.step(step, loss)
            finally:
                board.close()
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


def _smooth(values, window):
    """Running mean over ``window`` consecutive values (``window`` − 1 fewer values)."""
    values = np.asarray(values, dtype=float)
    return values if window == 1 else np.convolve(values, np.ones(window) / window, "valid")


def _top_layer_story(run, chance=0.2):
    """How the top hidden layer's mean and the test accuracy moved in one run (a dict).

    ``start``, ``min`` (and its ``min_step``), ``end`` of the top layer's mean; the first
    recorded update after the minimum at which the mean is back to twice its minimum
    (``doubled_step``: leaving saturation, None if never); the first evaluated update from
    which the test accuracy stays at or above ``chance`` (``left_chance_step``, None if it
    ends below; 20% is twice chance for 10 classes, and "stays" ignores single noisy
    evaluations).
    """
    steps = np.asarray(run["steps"])
    mean = np.asarray(run["mean"][-1], dtype=float)
    low = int(np.nanargmin(mean))
    after = np.nonzero(mean[low:] >= 2 * mean[low])[0]
    curve = np.asarray(run.get("test_curve", []))
    below = np.nonzero(curve < chance)[0]
    left = [] if len(curve) == 0 or curve[-1] < chance else [below[-1] + 1 if len(below) else 0]
    return {"start": float(mean[0]), "min": float(mean[low]), "min_step": int(steps[low]),
            "end": float(mean[-1]),
            "doubled_step": int(steps[low + after[0]]) if len(after) else None,
            "left_chance_step": int(run["test_steps"][left[0]]) if len(left) else None}


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
            story = _top_layer_story(run)
            # Saturation at 0 and the escape from it are a sigmoid story (means > 0).
            sigmoid = run["activation"] == "sigmoid"
            summary.append((run["activation"], run["init"], f"{run['test_accuracy']:.1%}",
                            f"{story['start']:.3f} -> {story['min']:.3f} (update "
                            f"{story['min_step']}) -> {story['end']:.3f}" if sigmoid else "-",
                            (story["doubled_step"] if story["doubled_step"] is not None
                             else "never") if sigmoid else "-",
                            story["left_chance_step"]
                            if story["left_chance_step"] is not None else "never",
                            ", ".join(_tags(run["warnings"])) or "-"))
        blocks.append(format_table(("activation", "init", "test acc",
                                    "top layer mean: start -> min -> end",
                                    "top mean >= 2x min (update)",
                                    "test acc >= 20% from (update)",
                                    "monitor warnings"), summary))
        return "\n\n".join(blocks)

    def plot(self, path):
        """Rows: activations; columns: inits; one curve per hidden layer over training.

        Sigmoid rows show the mean with a ±std band and the 98th and 2nd percentiles
        (Glorot & Bengio's fig. 2); tanh and softsign rows, whose means stay near 0, show the
        standard deviation (solid) and the 98th percentile (dashed) as their figs. 3-4 do.
        The test accuracy over updates is drawn in black on a second axis.
        """
        Figure, FigureCanvasAgg = require_matplotlib()
        activations = list(dict.fromkeys(run["activation"] for run in self.runs))
        inits = list(dict.fromkeys(run["init"] for run in self.runs))
        fig = Figure(figsize=(6 * len(inits), 3.2 * len(activations) + 1), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(activations), len(inits), squeeze=False, sharey="row")
        for run in self.runs:
            row = activations.index(run["activation"])
            ax = axes[row, inits.index(run["init"])]
            # Statistics of one mini-batch are noisy: a running mean over ~1/200 of the run.
            window = max(1, len(run["steps"]) // 200)
            steps = np.asarray(run["steps"])[window - 1:]
            for j in range(len(run["mean"])):
                mean, std = _smooth(run["mean"][j], window), _smooth(run["std"][j], window)
                if run["activation"] == "sigmoid":
                    line, = ax.plot(steps, mean, label=f"layer {j + 1}")
                    ax.fill_between(steps, mean - std, mean + std, color=line.get_color(),
                                    alpha=0.12)
                    ax.plot(steps, _smooth(run["p98"][j], window), "--", color=line.get_color(),
                            lw=0.8)
                    ax.plot(steps, _smooth(run["p2"][j], window), ":", color=line.get_color(),
                            lw=0.8)
                else:
                    line, = ax.plot(steps, std, label=f"layer {j + 1}")
                    ax.plot(steps, _smooth(run["p98"][j], window), "--", color=line.get_color())
            if run.get("test_curve"):
                # The paper's fig. 2 has no accuracy; drawn here to see it leave chance.
                twin = ax.twinx()
                twin.plot(run["test_steps"], run["test_curve"], color="black", lw=0.8, alpha=0.6)
                twin.set_ylim(0, 1)
                twin.set_ylabel("test accuracy (black)", fontsize="x-small")
            ax.set_title(f"{run['activation']}, {INIT_LABELS[run['init']]}: "
                         f"test {run['test_accuracy']:.1%}", fontsize="small")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="x-small", loc="best")
            if ax is axes[row, 0]:
                ax.set_ylabel("mean ± std, 98th (--) and 2nd (:) percentiles"
                              if run["activation"] == "sigmoid"
                              else "std (solid), 98th percentile (dashed)")
        for ax in axes[-1]:
            ax.set_xlabel("updates")
        fig.suptitle("Activation values per hidden layer during training (Glorot & Bengio 2010)")
        fig.savefig(path, dpi=90)


def activations(data, *, rng=0, quiet=False, hidden=(200, 200, 200, 200), epochs=4,
                batch_size=10, lr=0.1, interval=25, arms=ACTIVATION_ARMS, eval_interval=None,
                n_eval=2000, logdir=None):
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
    back-propagated gradients of similar size across layers. Their figure 2 runs on for
    about a hundred epochs of 20,000 updates, long enough to see the saturated top sigmoid
    layer slowly leave 0; the 4 default epochs (3,200 updates on mnist-small) see only the
    fall. ``epochs`` is the length option (``--epochs`` in the CLI); README.md gives a long
    setting and what happens within it.

    Parameters
    ----------
    arms : sequence of (activation, init)
        Default: sigmoid, tanh and softsign, each with both inits.
    eval_interval : int, optional
        Every this many updates, the test accuracy on the first ``n_eval`` test images is
        recorded (``test_steps``, ``test_curve``), to see when it leaves chance; by default
        ten times per epoch.
    logdir : str or path-like, optional
        Write each (activation, init) run to TensorBoard as ``logdir/<activation>-<init>``
        (``fastnn.callbacks.TensorBoard``: the monitor's record, histograms of every hidden
        layer, and per epoch the mean training loss and the accuracy on the ``n_eval`` test
        images), so that TensorBoard overlays the runs: its histograms are Glorot &
        Bengio's figures as training goes.

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
    steps_per_epoch = -(-n // batch_size)
    steps_total = epochs * steps_per_epoch
    tail = max(1, min(10, (steps_total // interval) // 10))
    eval_interval = check_positive_int(eval_interval or max(1, steps_per_epoch // 10),
                                       "eval_interval")
    X_eval, y_eval = X_test[:n_eval], y_test[:n_eval]
    settings = {"hidden": list(hidden), "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "interval": interval, "n_train": int(n), "n_test": int(X_test.shape[0]),
                "tail": tail, "loss": "softmax_cross_entropy", "optimizer": "SGD",
                "eval_interval": eval_interval, "n_eval": int(X_eval.shape[0])}
    runs = []
    for activation, init in arms:
        sizes = [X_train.shape[1], *hidden, n_classes]
        seed = base.integers(2**63)
        net = mlp(sizes, activation, init=init, rng=np.random.default_rng(seed))  # biases 0
        optimizer = SGD(net.parameters(), lr=lr)
        monitor = Monitor(net, interval=interval)
        board = _TensorBoardRun(logdir, f"{activation}-{init}", net, optimizer, monitor, epochs)
        shuffle = np.random.default_rng(seed)
        step = 0
        test_steps, test_curve = [], []
        start = time.perf_counter()
        try:
            for epoch in range(1, epochs + 1):
                order = shuffle.permutation(n)
                total = 0.0
                for first in range(0, n, batch_size):
                    if step % eval_interval == 0:
                        test_steps.append(step)
                        test_curve.append(_accuracy(net, X_eval, y_eval))
                    batch = order[first:first + batch_size]
                    loss = net.loss(X_train[batch], y_train[batch])
                    net.backward()
                    monitor.after_backward(step)
                    optimizer.step()
                    monitor.after_update(step)
                    board.step(step, loss)
                    total += loss * len(batch)
                    step += 1
                if board.callback is not None:
                    board.epoch(epoch, {"loss": total / n,
                                        "test_accuracy": _accuracy(net, X_eval, y_eval)})
        finally:
            board.close()
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
        run["test_steps"], run["test_curve"] = test_steps + [step], test_curve + [_accuracy(
            net, X_eval, y_eval)]
        run["warnings"] = monitor.warnings()
        run["seconds"] = seconds
        runs.append(run)
        story = _top_layer_story(run)
        _log(quiet, f"activations: {activation:<8} {init:<15} test {run['test_accuracy']:.1%} "
                    f"({seconds:.1f} s; top layer mean {story['start']:.3f} -> {story['min']:.3f} "
                    f"(update {story['min_step']}) -> {story['end']:.3f})")
    return ActivationsResult(settings, runs)


# -- ReLU and its variants (Géron ch. 11) ------------------------------------------------

#: (label, activation, alpha, init) of each arm: He init throughout, LeCun for SELU (Géron).
RELU_VARIANT_ARMS = (
    ("ReLU", "relu", None, "he_normal"),
    ("leaky ReLU 0.01", "leaky_relu", 0.01, "he_normal"),
    ("leaky ReLU 0.2", "leaky_relu", 0.2, "he_normal"),
    ("RReLU", "rrelu", None, "he_normal"),
    ("PReLU", "prelu", None, "he_normal"),
    ("ELU", "elu", None, "he_normal"),
    ("SELU", "selu", None, "lecun_normal"),
    ("tanh", "tanh", None, "he_normal"),
    ("sigmoid", "sigmoid", None, "he_normal"),
)


class ReluVariantsResult(_Result):
    """Test and training accuracy and time per epoch of each (arm, seed) run.

    Each run in ``runs`` is a dict: ``arm``, ``activation``, ``alpha``, ``init``, ``seed``,
    ``test_accuracy``, ``train_accuracy`` (on the training subset, evaluation mode),
    ``final_loss`` (mean training loss of the last epoch), ``epoch_seconds`` (wall time of
    each epoch) and ``seconds_per_epoch`` (the fastest one).
    ``settings["skipped"]`` lists the arms whose activation this build lacks.
    """

    experiment = "relu-variants"

    def summary(self):
        """Per arm, in ``arms`` order: means and standard deviations over the seeds."""
        rows = []
        for arm in dict.fromkeys(run["arm"] for run in self.runs):
            runs = [run for run in self.runs if run["arm"] == arm]
            test = np.array([r["test_accuracy"] for r in runs])
            train = np.array([r["train_accuracy"] for r in runs])
            rows.append({"arm": arm, "init": runs[0]["init"], "seeds": len(runs),
                         "test_mean": float(test.mean()), "test_std": float(test.std()),
                         "train_mean": float(train.mean()),
                         "gap_mean": float((train - test).mean()),
                         "seconds_per_epoch": float(np.median([r["seconds_per_epoch"]
                                                               for r in runs]))})
        return rows

    def table(self):
        """One row per arm, best test accuracy first, with its rank in Géron's order."""
        s = self.settings
        rows = sorted(self.summary(), key=lambda r: -r["test_mean"])
        body = format_table(
            ("rank", "activation", "init", "test acc (mean ± std)", "train acc", "gap train-test",
             "s/epoch"),
            [(i + 1, r["arm"], r["init"], f"{r['test_mean']:.2%} ± {r['test_std']:.2%}",
              f"{r['train_mean']:.2%}", f"{r['gap_mean']:+.2%}", f"{r['seconds_per_epoch']:.2f}")
             for i, r in enumerate(rows)])
        intro = (f"Géron ch. 11's activations on {'-'.join(map(str, s['sizes']))}: {s['n_train']} "
                 f"training images, {s['epochs']} epochs of batch {s['batch_size']} "
                 f"({s['updates']} updates each), SGD lr={s['lr']} momentum={s['momentum']}, "
                 f"softmax cross-entropy; seeds {s['seeds']}; test on {s['n_test']} images. "
                 "s/epoch: the fastest epoch (median over seeds).")
        skipped = (f"\nnot in this build (skipped): {', '.join(s['skipped'])}"
                   if s["skipped"] else "")
        return f"{intro}\n\n{body}{skipped}"

    def plot(self, path):
        """Test accuracy per arm (each seed a dot, the mean a bar), training accuracy as a
        hollow marker; time per epoch in a second panel."""
        Figure, FigureCanvasAgg = require_matplotlib()
        rows = self.summary()
        fig = Figure(figsize=(11, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax, ax_time = fig.subplots(1, 2, width_ratios=(3, 1))
        x = np.arange(len(rows))
        ax.bar(x, [r["test_mean"] for r in rows], color="tab:blue", alpha=0.35, label="test (mean)")
        for i, row in enumerate(rows):
            runs = [run for run in self.runs if run["arm"] == row["arm"]]
            ax.plot([i] * len(runs), [r["test_accuracy"] for r in runs], ".", color="tab:blue")
            ax.plot([i] * len(runs), [r["train_accuracy"] for r in runs], "o", mfc="none",
                    color="tab:red", label="train (per seed)" if i == 0 else None)
        low = min(min(r["test_accuracy"], r["train_accuracy"]) for r in self.runs)
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.set_xticks(x, [r["arm"] for r in rows], rotation=30, ha="right")
        ax.set_ylabel("accuracy")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize="small")
        ax_time.barh(x, [r["seconds_per_epoch"] for r in rows], color="tab:gray")
        ax_time.set_yticks(x, [r["arm"] for r in rows])
        ax_time.invert_yaxis()
        ax_time.set_xlabel("seconds per epoch")
        s = self.settings
        fig.suptitle(f"ReLU variants (Géron ch. 11): {'-'.join(map(str, s['sizes']))}, "
                     f"{s['updates']} updates, {len(s['seeds'])} seeds")
        fig.savefig(path, dpi=90)


def relu_variants(data, *, rng=0, quiet=False, arms=RELU_VARIANT_ARMS, hidden=(100,) * 5,
                  n_train=10000, epochs=20, batch_size=32, lr=0.01, momentum=0.9, n_seeds=3):
    """Géron's ranking of activations, measured: the same deep MLP with each activation.

    Géron (Hands-On ML, ch. 11): "ELU > leaky ReLU (and variants) > ReLU > tanh > sigmoid";
    leaky ReLU with α = 0.2 did better than α = 0.01; RReLU's random leak acts as a
    regularizer; PReLU does well on large data but may overfit small data. Each arm of
    ``arms`` trains 784-[100]x5-10 (``hidden``) with He init (LeCun for SELU, which needs it
    for self-normalization), biases 0, on the first ``n_train`` training images for
    ``epochs`` epochs of mini-batches of ``batch_size`` (so every arm gets the same number of
    updates), with SGD and momentum, once per seed for ``n_seeds`` seeds (the seed draws the
    initial weights and the shuffling; arm i of seed k uses the same draws for every arm).

    ``arms`` is data: (label, activation, alpha, init) tuples; an arm whose activation this
    build does not know (``mlp`` raises ValueError) is skipped and named in the table.

    Sized to the issue's budget of about 10 minutes on 2 cores: the defaults (10,000 images,
    20 epochs of 32, i.e. 6,260 updates, 3 seeds, 27 runs) took 1-2 minutes per dataset on
    one thread of a shared machine (benchmarks/README.md).

    Returns
    -------
    ReluVariantsResult
    """
    X_train, y_train, X_test, y_test, n_classes = _check_data(data)
    n_train = min(check_positive_int(n_train, "n_train"), X_train.shape[0])
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    n_seeds = check_positive_int(n_seeds, "n_seeds")
    X, y = X_train[:n_train], y_train[:n_train]
    sizes = [X.shape[1], *hidden, n_classes]
    seeds = [int(s) for s in check_rng(rng).integers(2**31, size=n_seeds)]
    settings = {"sizes": sizes, "n_train": n_train, "n_test": int(X_test.shape[0]),
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
                "updates": epochs * -(-n_train // batch_size), "seeds": seeds, "skipped": [],
                "loss": "softmax_cross_entropy", "optimizer": "SGD"}
    runs = []
    for label, activation, alpha, init in arms:
        for seed in seeds:
            try:
                net = mlp(sizes, activation, init=init, alpha=alpha,
                          rng=np.random.default_rng(seed))
            except ValueError as exc:
                if activation in str(exc):  # an activation another branch adds (PReLU, RReLU)
                    settings["skipped"].append(label)
                    _log(quiet, f"relu-variants: {label} skipped: {exc}")
                    break
                raise
            optimizer = SGD(net.parameters(), lr=lr, momentum=momentum)
            shuffle = np.random.default_rng(seed)
            epoch_seconds, losses = [], []
            for _ in range(epochs):
                order = shuffle.permutation(n_train)
                start = time.perf_counter()
                losses = [net.train_step(X[order[i:i + batch_size]], y[order[i:i + batch_size]],
                                         optimizer) for i in range(0, n_train, batch_size)]
                epoch_seconds.append(time.perf_counter() - start)
            run = {"arm": label, "activation": activation, "alpha": alpha, "init": init,
                   "seed": seed, "test_accuracy": _accuracy(net, X_test, y_test),
                   "train_accuracy": _accuracy(net, X, y),
                   "final_loss": float(np.mean(losses)),
                   # the fastest epoch: other processes only ever add time
                   "seconds_per_epoch": float(np.min(epoch_seconds)),
                   "epoch_seconds": epoch_seconds}
            runs.append(run)
            _log(quiet, f"relu-variants: {label:<16} seed {seed:<11} test "
                        f"{run['test_accuracy']:.2%} train {run['train_accuracy']:.2%} "
                        f"({run['seconds_per_epoch']:.2f} s/epoch)")
    return ReluVariantsResult(settings, runs)


# -- histograms at initialization (Glorot & Bengio's figures 6 and 7) ----------------------

class InitHistogramsResult(_Result):
    """Histograms per hidden layer at initialization, one run per init.

    Each run in ``runs`` is a dict: ``init``, ``sizes``, and per hidden layer (lists over
    layers) ``act_std``, ``grad_std`` (standard deviation of the activations and of the
    back-propagated gradients ∂C/∂s, s the layer's pre-activation), ``act_zero_peak``
    (fraction of activations with |a| < 0.05), ``act_hist`` and ``grad_hist`` (density
    histograms on ``settings["act_edges"]`` / ``settings["grad_edges"]``).
    """

    experiment = "init-histograms"

    def table(self):
        """Per init and hidden layer: spread of activations and of back-propagated gradients."""
        s = self.settings
        rows = []
        for run in self.runs:
            for j, (a, z, g) in enumerate(zip(run["act_std"], run["act_zero_peak"],
                                              run["grad_std"])):
                rows.append((INIT_LABELS.get(run["init"], run["init"]), f"layer {j + 1}",
                             format_number(a, 3), f"{z:.1%}", format_number(g, 3)))
            rows.append(("", "last/first", _ratio(run["act_std"]), "",
                         _ratio(run["grad_std"])))
        intro = (f"Glorot & Bengio (2010), figures 6 and 7: {s['activation']} network "
                 f"{'-'.join(map(str, self.runs[0]['sizes']))} at initialization (biases 0), "
                 f"{s['n_examples']} training images, softmax cross-entropy; std of each hidden "
                 "layer's activations and of the back-propagated gradients dC/ds (s: the "
                 "layer's input to the activation), and the share of activations near 0 "
                 "(|a| < 0.05, the histograms' 0-peak).")
        return intro + "\n\n" + format_table(("init", "hidden", "act std", "|a| < 0.05",
                                             "grad std"), rows)

    def plot(self, path):
        """Rows: activations (fig. 6), back-propagated gradients (fig. 7); columns: inits;
        one density histogram per hidden layer."""
        Figure, FigureCanvasAgg = require_matplotlib()
        s = self.settings
        fig = Figure(figsize=(5.5 * len(self.runs), 7), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, len(self.runs), squeeze=False, sharey="row", sharex="row")
        for col, run in enumerate(self.runs):
            for row, (key, edges, what) in enumerate((
                    ("act_hist", s["act_edges"], "activation value"),
                    ("grad_hist", s["grad_edges"], "back-propagated gradient dC/ds"))):
                ax = axes[row, col]
                centers = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
                for j, hist in enumerate(run[key]):
                    ax.plot(centers, hist, label=f"layer {j + 1}")
                ax.set_title(f"{INIT_LABELS.get(run['init'], run['init'])}", fontsize="small")
                ax.set_xlabel(what)
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize="x-small")
                if row == 1:
                    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
        axes[0, 0].set_ylabel("density (fig. 6)")
        axes[1, 0].set_ylabel("density (fig. 7)")
        fig.suptitle(f"{s['activation']} network at initialization: activations (top) and "
                     "back-propagated gradients (bottom) per layer (Glorot & Bengio 2010, figs 6-7)")
        fig.savefig(path, dpi=90)


def init_histograms(data, *, rng=0, quiet=False, activation="tanh", hidden=(1000,) * 5,
                    inits=("glorot_standard", "glorot_uniform"), n_examples=1000, bins=80):
    """Glorot & Bengio's figures 6 and 7: activations and gradients per layer at initialization.

    A network 784-[1000]x5-10 (the paper's width and depth) of ``activation`` units (tanh,
    as in their figures), biases 0, with each init of ``inits`` (the same seed for both):
    one forward and backward pass of softmax cross-entropy on the first ``n_examples``
    training images, then density histograms per hidden layer of the activations
    a = f(s) (fig. 6) and of the back-propagated gradients ∂C/∂s (fig. 7).

    What the paper shows: with the standard init U[−1/√n, 1/√n], Var[W] = 1/(3n), so each
    layer multiplies the activations' variance by about n·Var[W] = 1/3 going up and the
    gradients' going down: activations shrink toward 0 with depth (a 0-peak that grows
    with the layer) and the gradients shrink from the top layer to the bottom one (a
    0-peak that grows toward the input). The normalized init, Var[W] = 2/(n_in + n_out),
    keeps both about constant.

    Returns
    -------
    InitHistogramsResult
    """
    X_train, y_train, _, _, n_classes = _check_data(data)
    n_examples = min(check_positive_int(n_examples, "n_examples"), X_train.shape[0])
    bins = check_positive_int(bins, "bins")
    X, y = X_train[:n_examples], y_train[:n_examples]
    sizes = [X.shape[1], *hidden, n_classes]
    seed = int(check_rng(rng).integers(2**63))
    captured = []
    for init in inits:
        net = mlp(sizes, activation, init=init, rng=np.random.default_rng(seed))
        net.train()
        # Layer by layer through the public forward/backward, keeping what the fused plan skips.
        outputs, A = [], X
        for layer in net.layers:
            A = layer.forward(A)
            outputs.append(np.array(A, dtype=np.float64))
        target = net.loss_fn.check_target(y, A.shape, net.dtype)
        net.loss_fn.forward(A, target)
        grad, grads = net.loss_fn.backward(), {}
        for i in range(len(net.layers) - 1, -1, -1):
            layer = net.layers[i]
            layer.needs_input_grad = True
            grad = layer.backward(grad)
            if i < len(net.layers) - 1 and layer.__class__.__name__ == "Activation":
                grads[i] = np.array(grad, dtype=np.float64)
        hidden_idx = sorted(grads)
        captured.append((init, [outputs[i] for i in hidden_idx], [grads[i] for i in hidden_idx]))
    limit = max(np.percentile(np.abs(g), 99.5) for _, _, gs in captured for g in gs)
    act_low = min(float(a.min()) for _, acts, _ in captured for a in acts)
    act_high = max(float(a.max()) for _, acts, _ in captured for a in acts)
    act_edges = np.linspace(act_low, act_high, bins + 1)
    grad_edges = np.linspace(-limit, limit, bins + 1)
    settings = {"activation": activation, "hidden": list(hidden), "n_examples": n_examples,
                "seed": seed, "act_edges": act_edges, "grad_edges": grad_edges,
                "loss": "softmax_cross_entropy"}
    runs = []
    for init, acts, grads in captured:
        run = {"init": init, "sizes": sizes,
               "act_std": [float(a.std()) for a in acts],
               "act_zero_peak": [float(np.mean(np.abs(a) < 0.05)) for a in acts],
               "grad_std": [float(g.std()) for g in grads],
               "act_hist": [np.histogram(a, act_edges, density=True)[0] for a in acts],
               "grad_hist": [np.histogram(g, grad_edges, density=True)[0] for g in grads]}
        runs.append(run)
        _log(quiet, f"init-histograms: {init:<15} act std {_series(run['act_std'])}  "
                    f"grad std {_series(run['grad_std'])}")
    return InitHistogramsResult(settings, runs)


EXPERIMENTS = {"vanishing-gradients": vanishing_gradients, "activations": activations,
               "relu-variants": relu_variants, "init-histograms": init_histograms}

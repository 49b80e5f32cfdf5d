"""The training loop: mini-batch epochs, validation, schedules, callbacks and a History.

``fit`` is what ``fastnn train`` runs. One epoch::

    net.train()
    for each shuffled mini-batch (X_b, y_b):
        loss = net.loss(X_b, y_b)           # forward
        net.backward()
        monitor.after_backward(step)        # diagnostics see the gradients
        optimizer.step()
        net.apply_constraints()             # max-norm
        monitor.after_update(step)
        before the update: stop with TrainingDivergedError (or skip the step) if the loss
        or a gradient is not finite (with on_nonfinite="ignore" and no monitor,
        net.train_step(X_b, y_b, optimizer) does all of the above unchecked)
        schedule.on_batch_end()
        callbacks: on_batch_end
    net.eval(); metrics on the validation data
    schedule.on_epoch_end(metrics); callbacks: on_epoch_end (early stopping, checkpoints)

Reproducibility: with an int seed ``rng``, the validation split depends only on the seed and
epoch k's shuffling only on (seed, k) (``numpy.random.SeedSequence`` spawn keys), so a run
saved after k epochs and resumed with ``initial_epoch=k`` continues exactly as if never
stopped (given the optimizer and schedule state, see ``fastnn.io``).
"""
import inspect
import json
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from fastnn import optimizers as _optimizers
from fastnn._validation import check_array, check_positive_int
from fastnn.datasets import iterate_minibatches, train_val_split

#: Batches between two refreshes of the running loss shown on the progress bar.
POSTFIX_EVERY = 20


class TrainingDivergedError(FloatingPointError):
    """The training loss or a gradient became NaN or infinite.

    Raised before the update of the failing step, so the network keeps its last good
    weights (and ``ModelCheckpoint`` callbacks have saved them). ``step`` and ``layer`` say
    where it happened (``layer`` is None when the input batch itself is not finite).
    """

    def __init__(self, message, step=None, layer=None):
        super().__init__(message)
        self.step = step
        self.layer = layer


def first_nonfinite(net, X, what):
    """Where a non-finite value first appears: ``(index, layer)`` or ``(None, None)`` for the input.

    ``what`` is "output" (forward values, after a non-finite loss) or "gradient" (parameter
    gradients, after backward). Looked up only when something went wrong.
    """
    if what == "output" and not np.all(np.isfinite(X)):
        return None, None
    for index, layer in enumerate(net.layers):
        if what == "output":
            arrays = [layer._output] if getattr(layer, "_output", None) is not None else []
        else:
            arrays = [p.grad for p in layer.parameters()]
        if any(not np.all(np.isfinite(a)) for a in arrays):
            return index, layer
    return len(net.layers) - 1, net.layers[-1]


# -- history ----------------------------------------------------------------------------

class History:
    """Per-epoch metrics of a ``fit`` call.

    Attributes
    ----------
    epochs : list of dict
        One JSON-serialisable dict per epoch: ``epoch`` (1-based), ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` (when there is validation data), ``lr``, ``time`` (s).
    stopped_epoch : int or None
        Epoch after which early stopping ended training.
    best_epoch : int or None
        Epoch whose weights early stopping restored.
    skipped_steps : list of dict
        Steps left out by ``on_nonfinite="skip"``: ``{"epoch", "step", "reason"}``.
    optimizer, schedule
        The objects used (handy when ``fit`` built them from names), not serialised.
    """

    def __init__(self, epochs=None):
        self.epochs = list(epochs or [])
        self.stopped_epoch = None
        self.best_epoch = None
        self.skipped_steps = []
        self.optimizer = None
        self.schedule = None

    def __len__(self):
        return len(self.epochs)

    def __getitem__(self, key):
        """The values of metric ``key`` over the epochs (None where missing)."""
        return [record.get(key) for record in self.epochs]

    @property
    def history(self):
        """Keras-style dict of lists: ``{"loss": [...], "val_loss": [...], ...}``."""
        keys = []
        for record in self.epochs:
            keys += [k for k in record if k not in keys]
        return {key: self[key] for key in keys}

    def to_dict(self):
        """JSON-serialisable summary: the epochs and the early-stopping outcome."""
        return {"epochs": [dict(r) for r in self.epochs], "stopped_epoch": self.stopped_epoch,
                "best_epoch": self.best_epoch, "skipped_steps": list(self.skipped_steps)}

    def __repr__(self):
        return f"History({len(self)} epochs)"


# -- callbacks --------------------------------------------------------------------------

class Trainer:
    """What callbacks see: the network, optimizer, schedule, history; set ``stop_training``."""

    def __init__(self, net, optimizer, schedule, history, epochs):
        self.net = net
        self.optimizer = optimizer
        self.schedule = schedule
        self.history = history
        self.epochs = epochs
        self.stop_training = False


class Callback:
    """Base class: override the hooks you need. ``epoch`` is 1-based, ``step`` the global step."""

    def on_train_begin(self, trainer):
        """Before the first epoch."""

    def on_epoch_begin(self, trainer, epoch):
        """Before the first batch of ``epoch``."""

    def on_batch_end(self, trainer, step, loss):
        """After the update of ``step``, with that batch's loss."""

    def on_epoch_end(self, trainer, epoch, metrics):
        """After validation, with the epoch's metrics; set ``trainer.stop_training`` to stop."""

    def on_train_end(self, trainer):
        """After the last epoch, also when training stops with an error."""

    def on_diverged(self, trainer, error):
        """Training is about to stop with ``error`` (a TrainingDivergedError); weights are the last good."""


def _improvement_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


def _monitored(metrics, monitor, who):
    value = metrics.get(monitor)
    if value is None:
        available = ", ".join(k for k, v in metrics.items() if isinstance(v, float))
        raise ValueError(f"{who} monitors {monitor!r}, which this run does not compute "
                         f"(available: {available}); pass validation data or another monitor")
    return value


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Parameters
    ----------
    monitor : str, default "val_loss"
    patience : int, default 5
        Epochs without improvement tolerated before stopping.
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    mode : "auto", "min" or "max"
        "auto" maximises metrics whose name contains "acc" and minimises the others.
    restore_best_weights : bool, default False
        At the end of training, load the weights (and buffers) of the best epoch.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.monitor = monitor
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.min_delta = abs(float(min_delta))
        self.mode = _improvement_mode(monitor, mode)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, trainer):
        self.best = None
        self.best_epoch = None
        self.best_state = None
        self.wait = 0

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch, metrics):
        value = _monitored(metrics, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = trainer.net.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.history.stopped_epoch = epoch

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_state is not None:
            trainer.net.load_state_dict(self.best_state)
            trainer.history.best_epoch = self.best_epoch


class ModelCheckpoint(Callback):
    """Save the model file ``path`` (atomically, see ``fastnn.io.save``) after each epoch.

    With ``save_best_only`` only epochs that improve ``monitor`` are written. The file holds
    the optimizer and schedule state; its metadata has ``epoch`` and ``history``, so training
    can resume with ``fit(..., initial_epoch=metadata["epoch"])``.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto",
                 preprocessing=None, metadata=None):
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _improvement_mode(monitor, mode)
        self.preprocessing = preprocessing
        self.metadata = dict(metadata or {})

    def on_train_begin(self, trainer):
        self.best = None

    def on_epoch_end(self, trainer, epoch, metrics):
        if self.save_best_only:
            value = _monitored(metrics, self.monitor, "ModelCheckpoint")
            better = (self.best is None or (value < self.best if self.mode == "min"
                                            else value > self.best))
            if not better:
                return
            self.best = value
        self._save(trainer, {"epoch": epoch})

    def on_diverged(self, trainer, error):
        """Save the last good weights (the failing step was not applied) with the error."""
        done = trainer.history.epochs[-1]["epoch"] if trainer.history.epochs else 0
        self._save(trainer, {"epoch": done, "diverged": str(error)})

    def _save(self, trainer, metadata):
        from fastnn import io
        io.save(self.path, trainer.net, optimizer=trainer.optimizer, schedule=trainer.schedule,
                preprocessing=self.preprocessing,
                metadata={**self.metadata, **metadata, "history": trainer.history.to_dict()})


class MetricsLogger(Callback):
    """Write each epoch's metrics as one JSON line to ``path`` (flushed every epoch)."""

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = bool(append)
        self._file = None

    def on_train_begin(self, trainer):
        self._file = open(self.path, "a" if self.append else "w", encoding="utf-8")

    def on_epoch_end(self, trainer, epoch, metrics):
        self._file.write(json.dumps(metrics) + "\n")
        self._file.flush()

    def on_train_end(self, trainer):
        if self._file is not None:
            self._file.close()
            self._file = None


# -- the loop ---------------------------------------------------------------------------

#: Learning rate used when an optimizer that has no default (SGD and momentum, as in torch)
#: is built by name without one (Keras's SGD default).
DEFAULT_SGD_LR = 0.01


def make_optimizer(name, params, **kwargs):
    """An optimizer by name from ``fastnn.optimizers`` (None-valued options mean the default)."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    cls = _optimizers.OPTIMIZERS.get(name)
    if cls is not None and "lr" not in kwargs:
        lr = inspect.signature(cls).parameters.get("lr")
        if lr is not None and lr.default is inspect.Parameter.empty:
            kwargs["lr"] = DEFAULT_SGD_LR
    return _optimizers.get(name, params, **kwargs)


def make_schedule(name, optimizer, **kwargs):
    """A learning-rate schedule by name from ``fastnn.schedules`` (None-valued options mean the default)."""
    from fastnn import schedules

    return schedules.get(name, optimizer, **kwargs)


def restore(model):
    """Rebuild the optimizer and schedule saved in a model file, for ``model.net``.

    ``model`` is what ``fastnn.io.load`` returns. Returns ``(optimizer, schedule)`` (None
    for what the file does not hold), their state loaded, ready to continue with
    ``fit(model.net, ..., optimizer=optimizer, schedule=schedule, initial_epoch=...)``.
    """
    optimizer = schedule = None
    if model.optimizer_state is not None:
        if model.optimizer_config is None:
            raise ValueError("the model file has optimizer state but no optimizer description")
        name = model.optimizer_state.get("name")
        optimizer = _optimizers.get(str(name), model.net.parameters(),
                                    **model.optimizer_config["config"])
        optimizer.load_state_dict(model.optimizer_state)
    if model.schedule_state is not None:
        if optimizer is None or model.schedule_config is None:
            raise ValueError("the model file has schedule state but no optimizer or schedule description")
        from fastnn import schedules
        schedule = schedules.get(str(model.schedule_state.get("name")), optimizer,
                                 **model.schedule_config["config"])
        schedule.load_state_dict(model.schedule_state)
    return optimizer, schedule


def _seed_from(rng):
    """An int seed from None, an int or a Generator (which is advanced by one draw)."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if rng is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return int(rng)
    raise TypeError(f"rng must be None, a non-negative int seed or a numpy.random.Generator, "
                    f"got {rng!r}")


def _stream(seed, *key):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _format_metrics(epoch, epochs, metrics):
    parts = [f"epoch {epoch}/{epochs}", f"loss {metrics['loss']:.4f}"]
    if "accuracy" in metrics:
        parts.append(f"acc {100 * metrics['accuracy']:.2f}%")
    if "val_loss" in metrics:
        parts.append(f"val_loss {metrics['val_loss']:.4f}")
    if "val_accuracy" in metrics:
        parts.append(f"val_acc {100 * metrics['val_accuracy']:.2f}%")
    parts.append(f"lr {metrics['lr']:.3g}")
    parts.append(f"{metrics['time']:.1f}s")
    return "  ".join(parts)


def fit(net, X, y, *, optimizer="adam", epochs=10, batch_size=64, validation_split=0.0,
        validation_data=None, schedule=None, callbacks=(), monitor=None, rng=None,
        shuffle=True, initial_epoch=0, verbose=0, log=None, on_nonfinite="raise"):
    """Train ``net`` on (X, y) with mini-batches; the loop ``fastnn train`` runs.

    Parameters
    ----------
    net : fastnn.Sequential
    X : array (n, in_features)
        Inputs, converted to the network's dtype once.
    y : array (n,) of int labels, or (n, out_features) targets for value losses
    optimizer : str or optimizer, default "adam"
        A name from ``fastnn.optimizers.OPTIMIZERS`` (default hyper-parameters) or an
        optimizer built on ``net.parameters()``.
    epochs : int
        Index of the last epoch (as in Keras): trains epochs ``initial_epoch + 1 .. epochs``.
    batch_size : int
    validation_split : float in [0, 1)
        Fraction of (X, y) held out (randomly, from ``rng``) for validation.
    validation_data : (X_val, y_val), optional
        Explicit validation set (excludes ``validation_split``).
    schedule : str or schedule, optional
        Learning-rate schedule (``fastnn.schedules``); ``on_batch_end()`` runs after every
        step, ``on_epoch_end(metrics)`` after every epoch.
    callbacks : sequence of Callback
        E.g. ``EarlyStopping``, ``ModelCheckpoint``, ``MetricsLogger``.
    monitor : fastnn.diagnostics.Monitor, optional
        ``after_backward(step)`` before and ``after_update(step)`` after each optimizer step.
    rng : None, int or numpy.random.Generator
        Seed of the validation split and the shuffling (see the module docstring).
    shuffle : bool, default True
    initial_epoch : int, default 0
        Epochs already done (to resume training from a checkpoint).
    verbose : 0, 1 or 2
        0 silent; 1 a progress bar per epoch on stderr (only on a terminal, tqdm's
        ``disable=None``) and one summary line per epoch; 2 the summary lines only.
    log : callable, optional
        Where summary lines go (default ``print`` to stdout).
    on_nonfinite : "raise", "skip" or "ignore", default "raise"
        A NaN/inf loss or gradient: "raise" stops with ``TrainingDivergedError`` naming the
        step and the first layer where it appeared, before the update, so the weights stay
        the last good ones (``ModelCheckpoint`` callbacks save them); "skip" leaves that
        step out (listed in ``history.skipped_steps``) and goes on; "ignore" checks nothing
        and runs ``net.train_step`` (fastest: plain SGD folds its update into the GEMMs).
        The checks cost one pass over the gradients per step.

    Returns
    -------
    History
        Per-epoch metrics. The network is left in eval mode.

    Raises
    ------
    TrainingDivergedError
        The loss or a gradient became NaN or infinite (the message names the epoch, the
        step and the first layer where it appeared).
    """
    epochs = check_positive_int(epochs, "epochs", minimum=0)
    initial_epoch = check_positive_int(initial_epoch, "initial_epoch", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    log = log or (lambda line: print(line, flush=True))
    X = check_array(X, "X", net.dtype, n_columns=net.in_features)
    y = net.loss_fn.check_target(y, (X.shape[0], net.out_features), net.dtype)
    seed = _seed_from(rng)
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass validation_split or validation_data, not both")
        X_val, y_val = validation_data
        X_val = check_array(X_val, "validation_data[0]", net.dtype, n_columns=net.in_features)
        y_val = net.loss_fn.check_target(y_val, (X_val.shape[0], net.out_features), net.dtype)
    elif validation_split:
        X, y, X_val, y_val = train_val_split(X, y, float(validation_split), _stream(seed, 0))
    else:
        X_val = y_val = None

    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, net.parameters())
    elif hasattr(optimizer, "params"):
        if {id(p) for p in optimizer.params} != {id(p) for p in net.parameters()}:
            raise ValueError("the optimizer was built on other parameters than net.parameters()")
    if isinstance(schedule, str):
        schedule = make_schedule(schedule, optimizer)

    if on_nonfinite not in ("raise", "skip", "ignore"):
        raise ValueError(f"on_nonfinite must be 'raise', 'skip' or 'ignore', got {on_nonfinite!r}")
    unchecked = on_nonfinite == "ignore" and monitor is None
    # the finiteness check's gradient norm is the optimizer's too when both see the same parameters
    norm_is_optimizers = optimizer._param_ids == net._parameter_ids
    history = History()
    history.optimizer, history.schedule = optimizer, schedule
    trainer = Trainer(net, optimizer, schedule, history, epochs)
    callbacks = list(callbacks)
    classify = net.loss_fn.target_kind == "labels"
    n = X.shape[0]
    step = initial_epoch * math.ceil(n / batch_size)
    for cb in callbacks:
        cb.on_train_begin(trainer)
    try:
        for epoch in range(initial_epoch + 1, epochs + 1):
            for cb in callbacks:
                cb.on_epoch_begin(trainer, epoch)
            start = time.perf_counter()
            net.train()
            total_loss, correct, seen = 0.0, 0, 0
            bar = tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="img", unit_scale=True,
                       leave=False, file=sys.stderr, dynamic_ncols=True,
                       disable=None if verbose == 1 else True)
            with bar:
                batches = iterate_minibatches(X, y, batch_size, _stream(seed, 1, epoch), shuffle)
                for i, (X_b, y_b) in enumerate(batches):
                    if unchecked:
                        # forward, backward, update and constraints in one call (with plain SGD
                        # the update is folded into the weight-gradient GEMMs)
                        loss = net.train_step(X_b, y_b, optimizer)
                    else:
                        loss = net.loss(X_b, y_b)
                        problem = norm = None
                        if on_nonfinite != "ignore" and not math.isfinite(loss):
                            problem = ("the training loss is " + str(loss), "output")
                        else:
                            net.backward()
                            if on_nonfinite != "ignore":
                                norm = _optimizers.global_grad_norm(net.parameters())
                                if not math.isfinite(norm):
                                    problem = ("a gradient is not finite", "gradient")
                        if problem is not None:
                            index, layer = first_nonfinite(net, X_b, problem[1])
                            where = ("in the input batch" if layer is None else
                                     f"first in layer {index} ({layer!r})")
                            message = (f"{problem[0]} at epoch {epoch}, step {step} (batch {i}), "
                                       f"{where}; lower the learning rate, clip gradients or "
                                       "check the inputs")
                            if on_nonfinite == "skip":
                                history.skipped_steps.append({"epoch": epoch, "step": step,
                                                              "reason": message})
                                step += 1
                                continue
                            error = TrainingDivergedError(message, step, index)
                            for cb in callbacks:
                                cb.on_diverged(trainer, error)
                            raise error
                        if monitor is not None:
                            monitor.after_backward(step)
                        optimizer.step(norm if norm_is_optimizers else None)
                        net.apply_constraints()
                        if monitor is not None:
                            monitor.after_update(step)
                    if schedule is not None:
                        schedule.on_batch_end()
                    m = len(X_b)
                    total_loss += loss * m
                    seen += m
                    if classify:
                        correct += int(np.count_nonzero(net.layers[-1]._output.argmax(axis=1) == y_b))
                    for cb in callbacks:
                        cb.on_batch_end(trainer, step, loss)
                    step += 1
                    bar.update(m)
                    if i % POSTFIX_EVERY == 0:
                        bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
            metrics = {"epoch": epoch, "loss": total_loss / seen if seen else math.nan}
            if classify:
                metrics["accuracy"] = correct / seen if seen else math.nan
            net.eval()
            if X_val is not None:
                val = net.evaluate(X_val, y_val)
                metrics["val_loss"] = val["loss"]
                if "accuracy" in val:
                    metrics["val_accuracy"] = val["accuracy"]
            metrics["lr"] = float(optimizer.lr)
            metrics["time"] = time.perf_counter() - start
            history.epochs.append(metrics)
            if schedule is not None:
                schedule.on_epoch_end(dict(metrics))
            for cb in callbacks:
                cb.on_epoch_end(trainer, epoch, dict(metrics))
            if verbose:
                log(_format_metrics(epoch, epochs, metrics))
            if trainer.stop_training:
                break
    finally:
        net.eval()
        for cb in callbacks:
            cb.on_train_end(trainer)
    return history

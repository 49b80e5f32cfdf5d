"""Callbacks of ``fastnn.fit`` and the ``History`` it returns (Keras's names and meanings).

A callback sees the run through a ``Trainer`` (network, optimizer, schedule, history) and
is called at fixed points of ``fit``: ``on_train_begin``, ``on_epoch_begin``,
``on_batch_end`` (after each update), ``on_epoch_end`` (after validation, with the epoch's
metrics; set ``trainer.stop_training`` to stop), ``on_diverged`` (before
``TrainingDivergedError`` is raised) and ``on_train_end`` (always, also after an error).
``monitor`` is, as in Keras, the name of the metric a callback watches ("val_loss",
"val_accuracy", ...); per-layer training diagnostics are ``fit(diagnostics=Monitor(...))``.
"""
import os

from fastnn import _json, io
from fastnn._validation import check_positive_int


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


class Trainer:
    """What callbacks see: the network, optimizer, schedule, history; set ``stop_training``."""

    def __init__(self, net, optimizer, schedule, history, epochs):
        self.net = net
        self.optimizer = optimizer
        self.schedule = schedule
        self.history = history
        self.epochs = epochs
        self.stop_training = False
        #: The exception that is ending ``fit`` (KeyboardInterrupt included), seen by
        #: ``on_train_end``; None when training ends normally.
        self.error = None


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
        At the end of training, load the weights (and buffers) of the best epoch, together
        with the optimizer's and the schedule's state of that epoch, so that they stay
        consistent (a saved model resumes from that epoch). Not when
        training ends with an exception or Ctrl-C (``trainer.error``): the network then stays
        at the last whole step.
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
                self.best_optimizer_state = (None if trainer.optimizer is None
                                             else trainer.optimizer.state_dict())
                self.best_schedule_state = (None if trainer.schedule is None
                                            else trainer.schedule.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True
                trainer.history.stopped_epoch = epoch

    def on_train_end(self, trainer):
        if (self.restore_best_weights and self.best_state is not None
                and getattr(trainer, "error", None) is None):
            trainer.net.load_state_dict(self.best_state)
            if self.best_optimizer_state is not None:
                trainer.optimizer.load_state_dict(self.best_optimizer_state)
            if self.best_schedule_state is not None:
                trainer.schedule.load_state_dict(self.best_schedule_state)
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
        io.save(self.path, trainer.net, optimizer=trainer.optimizer, schedule=trainer.schedule,
                preprocessing=self.preprocessing,
                metadata={**self.metadata, **metadata, "history": trainer.history.to_dict()})


class MetricsLogger(Callback):
    """Write each epoch's metrics as one JSON line to ``path`` (flushed every epoch).

    The file is opened at the end of the first epoch, so a run stopped before one (Ctrl-C)
    leaves no empty file and an earlier log as it was; each line goes out in one write.
    """

    def __init__(self, path, append=False):
        self.path = os.fspath(path)
        self.append = bool(append)
        self._file = None

    def on_epoch_end(self, trainer, epoch, metrics):
        line = _json.dumps(metrics, "metrics") + "\n"
        if self._file is None:
            self._file = open(self.path, "a" if self.append else "w", encoding="utf-8")
        self._file.write(line)
        self._file.flush()

    def on_train_end(self, trainer):
        if self._file is not None:
            self._file.close()
            self._file = None


def __getattr__(name):
    # TensorBoard lives in fastnn.tensorboard, imported on first use (PEP 562): importing
    # fastnn.callbacks loads none of it.
    if name == "TensorBoard":
        from fastnn.tensorboard import TensorBoard

        return TensorBoard
    raise AttributeError(f"module 'fastnn.callbacks' has no attribute {name!r}")

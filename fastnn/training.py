"""The training loop: ``fit`` trains a network on mini-batches, with validation and callbacks.

``fit`` is what ``fastnn train`` runs. One epoch::

    net.train()
    for each shuffled mini-batch (X_b, y_b):
        loss = net.loss(X_b, y_b)             # forward
        net.backward()
        stop with TrainingDivergedError (or skip the step) if the loss or a gradient is
        not finite, before the update
        diagnostics.after_backward(step)      # a Monitor sees the gradients
        optimizer.step()
        net.apply_constraints()               # max-norm
        diagnostics.after_update(step)
        schedule.on_batch_end()
        callbacks: on_batch_end
    net.eval(); metrics on the validation data
    schedule.on_epoch_end(metrics); callbacks: on_epoch_end (early stopping, checkpoints)

With ``on_nonfinite="ignore"`` and no diagnostics, everything from ``net.loss`` to
``diagnostics.after_update`` is one ``net.train_step(X_b, y_b, optimizer)`` (plain SGD then
folds its update into the GEMMs).

Reproducibility: with an int seed ``rng``, the validation split depends only on the seed and
epoch k's shuffling only on (seed, k) (the streams of ``fastnn._seeding``), so a run saved
after k epochs and resumed with ``initial_epoch=k`` continues exactly as if never stopped
(given the optimizer and schedule state, see ``fastnn.io``).

Where the rest lives: callbacks and ``History`` in ``fastnn.callbacks``, ``make_optimizer``
in ``fastnn.optimizers``, ``restore`` (optimizer and schedule from a model file) in
``fastnn.io``. Importing them from here still works in 0.2.x, with a DeprecationWarning, and
stops in 0.3.0 (CHANGELOG.md, "Deprecation policy").
"""
import importlib
import math
import signal
import sys
import threading
import time
import warnings

import numpy as np

from fastnn import _seeding, schedules
from fastnn import callbacks as _callbacks
from fastnn import optimizers as _optimizers
from fastnn._config import StepThreads
from fastnn._validation import check_array, check_positive_int, is_sparse
from fastnn.datasets import iterate_blocks, iterate_minibatches, train_val_split
from fastnn.optimizers import Optimizer, global_grad_norm

#: Batches between two refreshes of the running loss shown on the progress bar.
POSTFIX_EVERY = 20
#: What ``fit`` does with a non-finite loss or gradient.
ON_NONFINITE = ("raise", "skip", "ignore")

#: Rows of an out-of-core X (a ``numpy.memmap``) read at a time and shuffled among themselves.
STREAM_BLOCK_ROWS = 8192

#: Names that moved out of this module: {name: (module, name there)}; deprecated here.
_MOVED = {**{name: ("fastnn.callbacks", name) for name in (
    "Callback", "EarlyStopping", "History", "MetricsLogger", "ModelCheckpoint", "Trainer")},
    "make_optimizer": ("fastnn.optimizers", "make_optimizer"),
    "make_schedule": ("fastnn.schedules", "get"), "restore": ("fastnn.io", "restore")}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _MOVED[name]
    warnings.warn(f"fastnn.training.{name} is deprecated and goes in 0.3.0: use "
                  f"{module}.{attribute}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attribute)


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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT, or a KeyboardInterrupt raised by a callback) stopped ``fit``.

    A ``KeyboardInterrupt``, so code that catches that still does. ``fit`` lets a SIGINT that
    arrives inside a training step finish that step first (forward, backward, the update of
    every parameter, the constraints and the schedule's ``on_batch_end``), so the network,
    the optimizer state and the schedule are those of the last whole step, never a half
    update. Nothing is saved: ``fastnn train`` saves the model at that step only with
    ``--save-on-interrupt``.

    Attributes: ``epoch`` (the epoch it stopped in, 1-based), ``steps_done`` (whole steps
    of this ``fit`` call), ``global_steps`` (whole steps including the ``initial_epoch``
    ones before it: the step count a resumed run continues from), ``epochs_done`` (whole
    epochs, validation included) and ``history``.
    """

    def __init__(self, epoch, steps_done, global_steps, epochs_done, history):
        super().__init__(f"interrupted in epoch {epoch} after {global_steps} training steps "
                         f"({epochs_done} whole epoch{'' if epochs_done == 1 else 's'})")
        self.epoch, self.steps_done, self.global_steps = epoch, steps_done, global_steps
        self.epochs_done, self.history = epochs_done, history


class _WholeSteps:
    """Defers SIGINT to the end of the training step it arrives in (see ``TrainingInterrupted``).

    Installed by ``fit`` for its duration when it runs on the main thread and SIGINT has
    Python's default handler (a program's own handler is left alone); otherwise a no-op.
    ``with guard:`` marks a step: a SIGINT inside it raises KeyboardInterrupt when the step
    ends, one outside it at once, as usual.
    """

    def __init__(self):
        self.inside = False
        self.pending = False
        self.installed = False

    def _handler(self, signum, frame):
        if self.inside:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def install(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handler)
            self.installed = True
        return self

    def uninstall(self):
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __enter__(self):
        self.inside = True
        return self

    def __exit__(self, kind, value, traceback):
        self.inside = False
        if self.pending and kind is None:
            self.pending = False
            raise KeyboardInterrupt
        return False


def first_nonfinite(net, X, what):
    """Where a non-finite value first appears: ``(index, layer)`` or ``(None, None)`` for the input.

    ``what`` is "output" (forward values, after a non-finite loss) or "gradient" (parameter
    gradients, after backward). Looked up only when something went wrong.
    """
    values = X.data if is_sparse(X) else X  # a sparse batch's stored values
    if what == "output" and not np.all(np.isfinite(values)):
        return None, None
    for index, layer in enumerate(net.layers):
        if what == "output":
            arrays = [layer.output] if layer.output is not None else []
        else:
            arrays = [p.grad for p in layer.parameters()]
        if any(not np.all(np.isfinite(a)) for a in arrays):
            return index, layer
    return len(net.layers) - 1, net.layers[-1]


def _augmented(batches, augment, rng):
    for X_b, y_b in batches:
        yield augment(X_b, rng), y_b


def _format_metrics(epoch, epochs, metrics, n_samples=None):
    """The per-epoch line; the time and the rate cover the whole epoch, validation included."""
    parts = [f"epoch {epoch}/{epochs}", f"loss {metrics['loss']:.4f}"]
    if "accuracy" in metrics:
        parts.append(f"acc {100 * metrics['accuracy']:.2f}%")
    if "val_loss" in metrics:
        parts.append(f"val_loss {metrics['val_loss']:.4f}")
    if "val_accuracy" in metrics:
        parts.append(f"val_acc {100 * metrics['val_accuracy']:.2f}%")
    parts.append(f"lr {metrics['lr']:.3g}")
    seconds = metrics["time"]
    parts.append(f"{seconds:.2f}s/epoch" if seconds < 10 else f"{seconds:.1f}s/epoch")
    if n_samples:
        parts.append(f"{n_samples / max(metrics['time'], 1e-9):,.0f} samples/s")
    return "  ".join(parts)


def fit(net, X, y, *, optimizer="adam", epochs=10, batch_size=64, validation_split=0.0,
        validation_data=None, schedule=None, callbacks=(), diagnostics=None, rng=None,
        shuffle=True, initial_epoch=0, verbose=0, log=None, on_nonfinite="raise", augment=None):
    """Train ``net`` on (X, y) with mini-batches; the loop ``fastnn train`` runs.

    Parameters
    ----------
    net : fastnn.Sequential
    X : array (n, in_features), numpy.memmap, or iterable of (X_batch, y_batch)
        Inputs, converted to the network's dtype once. Out of core: a ``numpy.memmap`` (for
        instance ``np.load(path, mmap_mode="r")``) is never loaded whole; each epoch reads it
        in blocks of ``STREAM_BLOCK_ROWS`` consecutive rows, visited in a new random order,
        and shuffles the rows within each block, converting one block at a time. An iterable
        of ``(X_batch, y_batch)`` pairs (a list, or any object that can be iterated once per
        epoch) is used as it comes, with ``y=None``: its batches are the steps. X (or each
        X_batch) may be a SciPy sparse matrix when the first layer is Dense: it is kept as
        CSR, each batch is a CSR slice, and the first layer runs on the stored values
        (``fastnn.layers.Dense``).
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
    diagnostics : fastnn.diagnostics.Monitor, optional
        Per-layer training diagnostics: ``after_backward(step)`` before and
        ``after_update(step)`` after each optimizer step. (Formerly ``monitor``, which
        now means only what it means to ``EarlyStopping`` and ``ModelCheckpoint``, as in
        Keras: a metric name.)
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
        step out (listed in ``history.skipped_steps``) and goes on; "ignore" checks nothing.
        The checks cost one pass over the gradients per step.
    augment : callable, optional
        ``augment(X_batch, rng)`` returns the training batch to use (e.g.
        ``fastnn.datasets.hflip``); ``rng`` depends only on (seed, epoch). Validation data is
        never augmented.

    Each batch runs ``net.train_step(X_b, y_b, optimizer, fused=...)``'s step: fused
    (plain SGD folded into the GEMMs) with "ignore" and no ``diagnostics``, where nothing
    needs the gradients, and otherwise unfused with the checks and hooks between backward
    and update. A loop of ``train_step`` calls over the same batches gives the same
    weights bit for bit.

    Returns
    -------
    History
        Per-epoch metrics. The network is left in eval mode.

    Raises
    ------
    TrainingDivergedError
        The loss or a gradient became NaN or infinite (the message names the epoch, the
        step and the first layer where it appeared).
    TrainingInterrupted
        Ctrl-C: the network, optimizer and schedule are left at the last whole step (a
        SIGINT inside a step lets it finish), and ``EarlyStopping`` does not restore its
        best weights. Saving is the caller's choice.
    Exception
        Whatever a callback (or a diagnostics hook) raised, as it is. Callbacks run between
        steps, so the weights, the optimizer state and the schedule it leaves are those of
        the last whole step, consistent with each other; ``on_train_end`` still runs (with
        ``trainer.error`` set to the exception).
    """
    epochs = check_positive_int(epochs, "epochs", minimum=0)
    initial_epoch = check_positive_int(initial_epoch, "initial_epoch", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be 'raise', 'skip' or 'ignore', got {on_nonfinite!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable (X_batch, rng) -> X_batch, got {augment!r}")
    log = log or (lambda line: print(line, flush=True))
    seed = _seeding.seed_from(rng)
    data, validation = _training_data(net, X, y, validation_split, validation_data, seed)
    optimizer = _resolve_optimizer(net, optimizer)
    if isinstance(schedule, str):
        schedule = schedules.get(schedule, optimizer)
    history = _callbacks.History()
    history.optimizer, history.schedule = optimizer, schedule
    trainer = _callbacks.Trainer(net, optimizer, schedule, history, epochs)
    run = _Run(trainer, list(callbacks), diagnostics, on_nonfinite,
               first_step=initial_epoch * data.steps_per_epoch(batch_size))
    guard = run.guard
    epoch = initial_epoch
    try:
        guard.install()
        try:
            with run.threads:  # the thread count for this run's steps
                for cb in run.callbacks:
                    cb.on_train_begin(trainer)
                for epoch in range(initial_epoch + 1, epochs + 1):
                    batches = data.batches(batch_size, _seeding.stream(seed, _seeding.SHUFFLE, epoch),
                                           shuffle)
                    if augment is not None:
                        batches = _augmented(batches, augment,
                                             _seeding.stream(seed, _seeding.AUGMENT, epoch))
                    metrics = run.epoch(epoch, batches, data.n_rows, validation, progress=verbose == 1)
                    if verbose:
                        log(_format_metrics(epoch, epochs, metrics, data.n_rows))
                    if trainer.stop_training:
                        break
        finally:
            guard.uninstall()  # raises KeyboardInterrupt for a SIGINT still pending
    except KeyboardInterrupt as error:
        trainer.error = error
        stop = TrainingInterrupted(max(epoch, initial_epoch + 1), run.steps_done,
                                   run.first_step + run.steps_done, len(history), history)
        _end(net, run, trainer)
        raise stop from None
    except BaseException as error:
        trainer.error = error
        _end(net, run, trainer)
        raise
    _end(net, run, trainer)
    return history


def _end(net, run, trainer):
    net.eval()
    for cb in run.callbacks:
        cb.on_train_end(trainer)


def _training_data(net, X, y, validation_split, validation_data, seed):
    """(data, validation): the training batches' source and the (X_val, y_val) pair or None."""
    validation = None
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass validation_split or validation_data, not both")
        X_val, y_val = validation_data
        validation = _checked(net, X_val, y_val, "validation_data[0]")
    split_rng = _seeding.stream(seed, _seeding.VALIDATION_SPLIT)
    if isinstance(X, np.memmap):
        data = _Streamed(net, X, y)
        if validation_split:
            data.exclude, validation = data.hold_out(float(validation_split), split_rng)
        return data, validation
    if not isinstance(X, np.ndarray) and y is None and hasattr(X, "__iter__"):
        if validation_split:
            raise ValueError("validation_split needs X as an array; with an iterable of batches "
                             "pass validation_data")
        return _Batches(net, X), validation
    X, y = _checked(net, X, y, "X")
    if validation_split:
        X, y, X_val, y_val = train_val_split(X, y, float(validation_split), split_rng)
        validation = (X_val, y_val)
    return _InMemory(X, y), validation


def _checked(net, X, y, name):
    X = check_array(X, name, net.dtype, n_columns=net.in_features,
                    accept_sparse=net.layers[0].accepts_sparse)
    return X, net.loss_fn.check_target(y, (X.shape[0], net.out_features), net.dtype)


class _InMemory:
    """Training arrays in memory: every epoch a fresh permutation of all rows."""

    def __init__(self, X, y):
        self.X, self.y, self.n_rows = X, y, X.shape[0]

    def steps_per_epoch(self, batch_size):
        return math.ceil(self.n_rows / batch_size)

    def batches(self, batch_size, rng, shuffle):
        return iterate_minibatches(self.X, self.y, batch_size, rng, shuffle)


class _Streamed(_InMemory):
    """An out-of-core X (a memory map) read block by block, each block checked on arrival."""

    def __init__(self, net, X, y):
        if X.ndim != 2 or X.shape[1] != net.in_features:
            raise ValueError(f"X has shape {X.shape}, expected (n, {net.in_features})")
        if len(y) != len(X):
            raise ValueError(f"y has {len(y)} rows, expected {len(X)} (one per row of X)")
        self.net, self.X, self.y, self.n_rows = net, X, y, X.shape[0]
        self.exclude = None

    def hold_out(self, fraction, rng):
        """Mark a random ``fraction`` of the rows for validation: (mask, (X_val, y_val))."""
        n_val = int(round(self.n_rows * fraction))
        if not 0 < n_val < self.n_rows:
            raise ValueError(f"validation_split={fraction} of {self.n_rows} samples leaves no "
                             "training or no validation data")
        rows = np.sort(rng.choice(self.n_rows, n_val, replace=False))
        exclude = np.zeros(self.n_rows, dtype=bool)
        exclude[rows] = True
        self.n_rows -= n_val
        return exclude, self._convert(self.X[rows], self.y[rows])

    def _convert(self, X_block, y_block):
        return _checked(self.net, X_block, y_block, "X")

    def batches(self, batch_size, rng, shuffle):
        return iterate_blocks(self.X, self.y, batch_size, rng, shuffle, STREAM_BLOCK_ROWS,
                              self.exclude, self._convert)


class _Batches:
    """Batches as the user's iterable gives them, each checked on arrival."""

    def __init__(self, net, batches):
        self.net, self.source = net, batches
        self.n_rows = None

    def steps_per_epoch(self, batch_size):
        return len(self.source) if hasattr(self.source, "__len__") else 0

    def batches(self, batch_size, rng, shuffle):
        for X_b, y_b in self.source:
            yield _checked(self.net, X_b, y_b, "X")


def _resolve_optimizer(net, optimizer):
    """An optimizer by name (default hyper-parameters) on ``net``, or a given one checked."""
    if isinstance(optimizer, str):
        return _optimizers.make_optimizer(optimizer, net.parameters())
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a name from fastnn.optimizers.OPTIMIZERS or a fastnn "
                        f"Optimizer, got {type(optimizer).__name__}")
    if {id(p) for p in optimizer.params} != {id(p) for p in net.parameters()}:
        raise ValueError("the optimizer was built on other parameters than net.parameters()")
    return optimizer


class _Run:
    """One ``fit`` call's state shared by its epochs and steps: the trainer, callbacks,
    diagnostics, the non-finite policy and the global step counter."""

    def __init__(self, trainer, callbacks, diagnostics, on_nonfinite, first_step):
        self.trainer = trainer
        self.net, self.optimizer, self.schedule = trainer.net, trainer.optimizer, trainer.schedule
        self.callbacks = callbacks
        self.diagnostics = diagnostics
        self.on_nonfinite = on_nonfinite
        self.checked = on_nonfinite != "ignore"
        # Nothing looks at the gradients: a plain SGD step may fold its update into the GEMMs.
        self.fused = not self.checked and diagnostics is None
        self.classify = self.net.loss_fn.target_kind == "labels"
        self.step = self.first_step = first_step
        self.steps_done = 0  # whole steps applied by this call (not those left out)
        self.guard = _WholeSteps()
        self.threads = StepThreads()

    def epoch(self, epoch, batches, n_rows, validation, progress):
        """Train on ``batches``, validate, record and announce the epoch; returns its metrics."""
        for cb in self.callbacks:
            cb.on_epoch_begin(self.trainer, epoch)
        start = time.perf_counter()
        from tqdm import tqdm  # only for a progress bar: not a cost of importing fastnn

        bar = tqdm(total=n_rows, desc=f"epoch {epoch}/{self.trainer.epochs}", unit="img",
                   unit_scale=True, leave=False, file=sys.stderr, dynamic_ncols=True,
                   disable=None if progress else True)
        with bar:
            metrics = {"epoch": epoch, **self._train(epoch, batches, bar)}
        self.net.eval()
        if validation is not None:
            val = self.net.evaluate(*validation)
            metrics["val_loss"] = val["loss"]
            if "accuracy" in val:
                metrics["val_accuracy"] = val["accuracy"]
        metrics["lr"] = float(self.optimizer.lr)
        metrics["time"] = time.perf_counter() - start
        self.trainer.history.epochs.append(metrics)
        if self.schedule is not None:
            self.schedule.on_epoch_end(dict(metrics))
        for cb in self.callbacks:
            cb.on_epoch_end(self.trainer, epoch, dict(metrics))
        return metrics

    def _train(self, epoch, batches, bar):
        """One pass over the batches: ``{"loss"}`` and, for classification, ``{"accuracy"}``."""
        self.net.train()
        total_loss, correct, seen = 0.0, 0, 0
        for i, (X_b, y_b) in enumerate(batches):
            started = time.perf_counter()
            with self.guard:  # a SIGINT in here takes effect when the whole step is done
                loss = self._step(epoch, i, X_b, y_b)
                if loss is None:  # left out by on_nonfinite="skip"
                    self.step += 1
                    continue
                if self.schedule is not None:
                    self.schedule.on_batch_end()
                self.steps_done += 1
            self.threads.step_done(time.perf_counter() - started)
            rows = X_b.shape[0]  # len() is undefined on a sparse batch
            total_loss += loss * rows
            seen += rows
            if self.classify:
                correct += int(np.count_nonzero(self.net.layers[-1].output.argmax(axis=1) == y_b))
            for cb in self.callbacks:
                cb.on_batch_end(self.trainer, self.step, loss)
            self.step += 1
            bar.update(rows)
            if i % POSTFIX_EVERY == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
        metrics = {"loss": total_loss / seen if seen else math.nan}
        if self.classify:
            metrics["accuracy"] = correct / seen if seen else math.nan
        return metrics

    def _step(self, epoch, batch, X_b, y_b):
        """One optimizer step on the batch; its loss, or None if it was left out."""
        if self.fused:
            return self.net.train_step(X_b, y_b, self.optimizer)
        net, diagnostics = self.net, self.diagnostics
        loss = net.loss(X_b, y_b)
        if self.checked and not math.isfinite(loss):
            return self._nonfinite(epoch, batch, X_b, f"the training loss is {loss}", "output")
        net.backward()
        norm = None
        if self.checked:
            norm = global_grad_norm(net.parameters())
            if not math.isfinite(norm):
                return self._nonfinite(epoch, batch, X_b, "a gradient is not finite", "gradient")
        if diagnostics is not None:
            diagnostics.after_backward(self.step)
        self.optimizer.step(norm)
        net.apply_constraints()
        if diagnostics is not None:
            diagnostics.after_update(self.step)
        return loss

    def _nonfinite(self, epoch, batch, X_b, problem, what):
        """Skip the step (returns None) or raise TrainingDivergedError, per ``on_nonfinite``."""
        index, layer = first_nonfinite(self.net, X_b, what)
        where = "in the input batch" if layer is None else f"first in layer {index} ({layer!r})"
        message = (f"{problem} at epoch {epoch}, step {self.step} (batch {batch}), {where}; "
                   "lower the learning rate, clip gradients or check the inputs")
        if self.on_nonfinite == "skip":
            self.trainer.history.skipped_steps.append(
                {"epoch": epoch, "step": self.step, "reason": message})
            return None
        error = TrainingDivergedError(message, self.step, index)
        for cb in self.callbacks:
            cb.on_diverged(self.trainer, error)
        raise error

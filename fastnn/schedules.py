"""Learning-rate schedules: they set ``optimizer.lr`` between steps or epochs.

A training loop calls ``on_batch_end()`` after every optimizer step and
``on_epoch_end(metrics)`` after every epoch (``metrics`` a dict such as
``{"loss": .., "val_loss": .., "val_accuracy": ..}``). Each schedule advances on the hook
that matches its ``interval`` ("step" or "epoch") and ignores the other one.

For the formula schedules, t counts the intervals completed so far (0 before training)
and α₀ is ``optimizer.lr`` when the schedule is created; the optimizer's lr is set to
α(0) at once, and to α(t) after the t-th interval. CS224n lists step decay, exponential
decay and the 1/t schedule; cosine annealing is Loshchilov & Hutter's SGDR without
restarts; reduce-on-plateau follows torch.optim.lr_scheduler.ReduceLROnPlateau.

``state_dict()`` is a flat dict of scalars (``{"name", "t", "base_lr", "lr", ...}``).
Hyper-parameters are not part of it: rebuild with ``get(name, optimizer, **get_config())``.
"""
import math

from fastnn._validation import check_number, check_positive_int, from_registry, scalar_value
from fastnn.optimizers import Optimizer

INTERVALS = ("step", "epoch")


class Schedule:
    """Base class. Subclasses set ``name`` and implement ``lr_at(t)`` (or override the hooks).

    Parameters
    ----------
    optimizer : fastnn.optimizers.Optimizer
    interval : {"step", "epoch"}
        Which hook advances the schedule.

    Attributes
    ----------
    base_lr : float
        α₀, the optimizer's lr when the schedule was created.
    t : int
        Intervals completed so far.
    """

    name = None

    def __init__(self, optimizer, interval):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastnn Optimizer, got {type(optimizer).__name__}")
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
        self.optimizer = optimizer
        self.interval = interval
        self.base_lr = optimizer.lr
        self.t = 0

    def _start(self):
        """Set the lr for the first interval (called at the end of subclass constructors)."""
        self.optimizer.lr = self.lr_at(0)

    def on_batch_end(self):
        """Call after every optimizer step; advances step-based schedules."""
        if self.interval == "step":
            self._advance(None)

    def on_epoch_end(self, metrics=None):
        """Call after every epoch with the epoch's metrics; advances epoch-based schedules."""
        if self.interval == "epoch":
            self._advance(metrics)

    def _advance(self, metrics):
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)

    def get_config(self):
        """Constructor arguments except the optimizer (JSON-serialisable)."""
        return {"interval": self.interval}

    def state_dict(self):
        """Flat dict of scalars: name, t, base_lr and the current lr."""
        return {"name": self.name, "t": self.t, "base_lr": self.base_lr, "lr": self.optimizer.lr}

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output; also sets the optimizer's lr to the saved lr."""
        name = scalar_value(state.get("name"))
        if name != self.name:
            raise ValueError(f"state is for schedule {name!r}, this one is {self.name!r}")
        expected = set(self.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__} state is missing {missing}, "
                             f"has unexpected {unexpected}")
        values = {key: scalar_value(state[key]) for key in expected}
        t = values["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"state['t'] must be an int >= 0, got {t!r}")
        self._load(values)
        self.optimizer.lr = check_number(values["lr"], "state['lr']", low=0)

    def _load(self, values):
        self.t = int(values["t"])
        self.base_lr = check_number(values["base_lr"], "state['base_lr']", low=0, low_open=True)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """α(t) = α₀."""

    name = "constant"

    def __init__(self, optimizer, interval="epoch"):
        super().__init__(optimizer, interval)
        self._start()

    def lr_at(self, t):
        return self.base_lr


class StepDecay(Schedule):
    """Step decay (CS224n): multiply the lr by ``gamma`` every ``step_size`` intervals.

    α(t) = α₀ · gamma^⌊t / step_size⌋   (torch.optim.lr_scheduler.StepLR)
    """

    name = "step"

    def __init__(self, optimizer, step_size, gamma=0.1, interval="epoch"):
        super().__init__(optimizer, interval)
        self.step_size = check_positive_int(step_size, "step_size")
        self.gamma = check_number(gamma, "gamma", low=0, high=1, low_open=True)
        self._start()

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)

    def get_config(self):
        return {"step_size": self.step_size, "gamma": self.gamma, **super().get_config()}


class ExponentialDecay(Schedule):
    """Exponential decay (CS224n): α(t) = α₀ e^(−k t), k ≥ 0."""

    name = "exponential"

    def __init__(self, optimizer, k, interval="epoch"):
        super().__init__(optimizer, interval)
        self.k = check_number(k, "k", low=0)
        self._start()

    def lr_at(self, t):
        return self.base_lr * math.exp(-self.k * t)

    def get_config(self):
        return {"k": self.k, **super().get_config()}


class InverseTimeDecay(Schedule):
    """The 1/t schedule of CS224n: α(t) = α₀ τ / max(t, τ).

    Constant for the first τ intervals, then decays as 1/t.
    """

    name = "inverse_time"

    def __init__(self, optimizer, tau, interval="step"):
        super().__init__(optimizer, interval)
        self.tau = check_number(tau, "tau", low=0, low_open=True)
        self._start()

    def lr_at(self, t):
        return self.base_lr * self.tau / max(t, self.tau)

    def get_config(self):
        return {"tau": self.tau, **super().get_config()}


class CosineAnnealing(Schedule):
    """Cosine annealing from α₀ to ``min_lr`` over ``t_max`` intervals, with optional warm-up.

    - linear warm-up, t < warmup:  α(t) = α₀ (t + 1) / warmup
    - cosine, warmup ≤ t ≤ t_max:   α(t) = m + (α₀ − m)(1 + cos(π (t − warmup)/(t_max − warmup)))/2
    - t > t_max:                    α(t) = m

    (Loshchilov & Hutter 2017, without restarts; m = ``min_lr``). The warm-up's first
    interval already uses α₀/warmup, so no step is spent at lr 0.
    """

    name = "cosine"

    def __init__(self, optimizer, t_max, min_lr=0.0, warmup=0, interval="step"):
        super().__init__(optimizer, interval)
        self.t_max = check_positive_int(t_max, "t_max")
        self.warmup = check_positive_int(warmup, "warmup", minimum=0)
        if self.warmup >= self.t_max:
            raise ValueError(f"warmup ({self.warmup}) must be smaller than t_max ({self.t_max})")
        self.min_lr = check_number(min_lr, "min_lr", low=0)
        if self.min_lr > self.base_lr:
            raise ValueError(f"min_lr ({self.min_lr}) exceeds the optimizer's lr ({self.base_lr})")
        self._start()

    def lr_at(self, t):
        if t < self.warmup:
            return self.base_lr * (t + 1) / self.warmup
        if t >= self.t_max:
            return self.min_lr
        progress = (t - self.warmup) / (self.t_max - self.warmup)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def get_config(self):
        return {"t_max": self.t_max, "min_lr": self.min_lr, "warmup": self.warmup,
                **super().get_config()}


class ReduceLROnPlateau(Schedule):
    """Multiply the lr by ``factor`` when a validation metric stops improving (epoch-based).

    After each epoch, ``metrics[monitor]`` is compared with the best value so far. It
    improves if, for mode "min", it is below best·(1 − threshold) (threshold_mode "rel")
    or below best − threshold ("abs"); for mode "max", above best·(1 + threshold) or
    best + threshold. After more than ``patience`` epochs without improvement the lr
    becomes max(lr·factor, min_lr), and the count pauses for ``cooldown`` epochs.
    Same semantics as torch.optim.lr_scheduler.ReduceLROnPlateau.

    If ``metrics`` lacks ``monitor`` and ``monitor`` is "val_<x>", "<x>" is used instead
    (e.g. "loss" when training without validation data). NaN never counts as better.

    Parameters
    ----------
    optimizer : Optimizer
    monitor : str, default "val_loss"
    mode : {"min", "max"}, default "min"
    factor : float in (0, 1), default 0.1
    patience : int >= 0, default 10
    threshold : float >= 0, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int >= 0, default 0
    min_lr : float >= 0, default 0
    """

    name = "plateau"

    def __init__(self, optimizer, monitor="val_loss", mode="min", factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0,
                 interval="epoch"):
        if interval != "epoch":
            raise ValueError(f"ReduceLROnPlateau is epoch-based; interval must be 'epoch', "
                             f"got {interval!r}")
        super().__init__(optimizer, interval)
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name (str), got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.factor = check_number(factor, "factor", low=0, high=1, low_open=True,
                                    high_open=True)
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.threshold = check_number(threshold, "threshold", low=0)
        self.threshold_mode = threshold_mode
        self.cooldown = check_positive_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_number(min_lr, "min_lr", low=0)
        self.best = None                     # no epoch seen yet
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, value):
        if self.best is None:
            return not math.isnan(value)
        if self.mode == "min":
            bound = (self.best * (1 - self.threshold) if self.threshold_mode == "rel"
                     else self.best - self.threshold)
            return value < bound
        bound = (self.best * (1 + self.threshold) if self.threshold_mode == "rel"
                 else self.best + self.threshold)
        return value > bound

    def _metric(self, metrics):
        if not isinstance(metrics, dict):
            raise ValueError(f"ReduceLROnPlateau.on_epoch_end needs the epoch's metrics dict "
                             f"(with {self.monitor!r}), got {metrics!r}")
        key = self.monitor
        if key not in metrics and key.startswith("val_") and key[4:] in metrics:
            key = key[4:]
        if key not in metrics:
            raise ValueError(f"metrics has no {self.monitor!r} to monitor; it has "
                             f"{sorted(metrics)}")
        return float(metrics[key])

    def _advance(self, metrics):
        value = self._metric(metrics)
        self.t += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def get_config(self):
        return {"monitor": self.monitor, "mode": self.mode, "factor": self.factor,
                "patience": self.patience, "threshold": self.threshold,
                "threshold_mode": self.threshold_mode, "cooldown": self.cooldown,
                "min_lr": self.min_lr, **super().get_config()}

    def state_dict(self):
        return {**super().state_dict(), "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter}

    def _load(self, values):
        super()._load(values)
        self.best = None if values["best"] is None else float(values["best"])
        self.num_bad_epochs = check_positive_int(values["num_bad_epochs"],
                                                 "state['num_bad_epochs']", minimum=0)
        self.cooldown_counter = check_positive_int(values["cooldown_counter"],
                                                   "state['cooldown_counter']", minimum=0)


#: Schedules by name, for the command line and model files.
SCHEDULES = {cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, InverseTimeDecay,
                                       CosineAnnealing, ReduceLROnPlateau)}


def get(name, optimizer, **kwargs):
    """Build the schedule ``name`` from ``SCHEDULES`` for ``optimizer``.

    Keyword arguments whose value is None are dropped (they mean "the default"); one the
    schedule does not take raises ValueError listing those it does.

    >>> sched = get("cosine", opt, t_max=10 * steps_per_epoch, warmup=100)
    """
    return from_registry(SCHEDULES, "schedule", name, optimizer, kwargs)

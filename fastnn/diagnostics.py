"""Training diagnostics: see vanishing and exploding gradients, saturation and dead units.

A ``Monitor`` watches a ``Sequential`` network while it trains and records, every
``interval`` steps and per layer:

* **Dense layers** — Nielsen's *speed of learning* ``delta_norm`` = ‖δ^l‖, the norm of the
  gradient of the cost with respect to the biases of the units the layer feeds (Nielsen,
  *Neural Networks and Deep Learning*, ch. 5: ∂C/∂b^l_j = δ^l_j); the norms of the weight
  and bias gradients; the weight norm; and the relative size of the update,
  ‖W_after − W_before‖ / ‖W_before‖.
* **Activation layers** — mean, standard deviation and percentiles of the outputs (Glorot &
  Bengio 2010, fig. 2-4), the *saturated fraction* of outputs for bounded activations,
  the *dead fraction* of ReLU units and the *negative fraction* of PReLU and RReLU units.
* **Batch-normalization layers** — the batch mean and variance of the layer's input
  against the running estimates used at test time, and the gradient norms of the scale γ
  and shift β.

Definitions
-----------
Saturation (``saturation_tol`` = ε, default 0.01), the output within ε of an asymptote,
where the derivative is nearly zero:

=========== ====================================
sigmoid     a <= ε or a >= 1 − ε
tanh        |a| >= 1 − ε
softsign    |a| >= 1 − ε
hardtanh    |a| >= 1 (the derivative is exactly 0)
=========== ====================================

A ReLU unit is *dead on a batch* when its output is zero for every example of the batch;
``dead_frac`` is the fraction of such units. (A unit that is dead on every batch no
longer learns.) The analogue for PReLU and RReLU is ``negative_frac``, the fraction of
units whose input is on the negative side (z <= 0) for every example of the batch: such a
unit is not dead, its gradient passes with slope α, but on that batch it is linear.
When a Dense layer is followed directly by a batch-normalization layer, its own bias has
zero gradient (the normalization subtracts it again) and ``delta_norm`` is the norm of
the gradient of β, the bias of the units that feed the nonlinearity.

Cost: on recorded steps, one compiled pass over each activation array
(``fastnn_c.diagnostics.activation_stats``), ``np.percentile`` on at most
``max_percentile_sample`` entries, the gradient norms, and one copy of each weight matrix;
nothing on the other steps.

Example
-------
>>> monitor = Monitor(net, interval=10)
>>> for step, (X, y) in enumerate(batches):
...     net.loss(X, y); net.backward()
...     monitor.after_backward(step)
...     optimizer.step()
...     monitor.after_update(step)
>>> print(monitor.table()); print("\\n".join(monitor.warnings()))
>>> monitor.to_csv("diagnostics.csv"); monitor.plot("diagnostics.png")
"""
import csv
import math
import numbers

import numpy as np

from fastnn import _json, diagnostic_rules
from fastnn._table import format_number, format_table
from fastnn._validation import check_number, check_positive_int
from fastnn.layers import Activation, Dense, PReLU, RReLU
from fastnn.plotting import plot_diagnostics
from fastnn_c import diagnostics as _diag
from fastnn_c import optim as _optim

#: Columns of the tidy record, in order. One row per recorded step per monitored layer;
#: a metric that does not apply to the layer's kind is None.
COLUMNS = (
    "step", "layer", "name", "kind", "units",
    # Dense (and BatchNorm for the gradient norms)
    "delta_norm", "grad_norm_bias", "grad_norm_weight", "weight_norm", "update_ratio",
    # Activation
    "act_mean", "act_std", "act_p2", "act_p25", "act_p50", "act_p75", "act_p98",
    "saturated_frac", "dead_frac", "negative_frac",
    # BatchNorm (averages over features)
    "bn_batch_mean", "bn_running_mean", "bn_batch_var", "bn_running_var",
    "bn_mean_shift", "bn_var_ratio",
)
PERCENTILES = (2, 25, 50, 75, 98)
_INT_COLUMNS = ("step", "layer", "units")
_STR_COLUMNS = ("name", "kind")

#: Activations with a saturation rule (see the module docstring).
SATURATING = ("sigmoid", "tanh", "softsign", "hardtanh")
#: Activations whose units are counted on their negative side (``negative_frac``).
NEGATIVE_SIDE = ("prelu", "rrelu")


def saturation_bounds(activation, tol):
    """(lower, upper): an output a is saturated when a <= lower or a >= upper.

    (−inf, inf) for activations without a saturation rule (never counted).
    """
    if activation == "sigmoid":
        return tol, 1.0 - tol
    if activation in ("tanh", "softsign"):
        return -(1.0 - tol), 1.0 - tol
    if activation == "hardtanh":
        return -1.0, 1.0
    return -math.inf, math.inf


def _norm(array):
    """Euclidean norm of a C-contiguous array, summed in double (no float32 overflow)."""
    return math.sqrt(_optim.sum_squares(array))


def _is_batchnorm(layer):
    return hasattr(layer, "running_mean") and hasattr(layer, "running_var")


def _param(layer, names):
    for p in layer.parameters():
        if p.name in names:
            return p
    return None


class Monitor:
    """Per-layer training diagnostics of a ``Sequential`` network (see the module docstring).

    Parameters
    ----------
    net : fastnn.Sequential
    interval : int, default 10
        Record on steps 0, interval, 2·interval, ... (``step % interval == 0``).
    saturation_tol : float, default 0.01
        ε of the saturation rule: sigmoid a <= ε or a >= 1 − ε, tanh/softsign |a| >= 1 − ε.
    max_percentile_sample : int, default 2048
        Percentiles come from at most this many outputs: whole rows taken at a regular
        stride (every unit equally represented); exact when the batch is small enough.

    Hooks
    -----
    ``after_backward(step)`` after the backward pass, before the optimizer update;
    ``after_update(step)`` right after the update. ``step`` counts from 0 over the whole
    training run. Both do nothing on steps that are not recorded.

    Attributes
    ----------
    record : DiagnosticsRecord
        The rows recorded so far; ``table``, ``warnings``, ``to_json``, ``to_csv`` and
        ``plot`` delegate to it.
    """

    def __init__(self, net, interval=10, saturation_tol=0.01, max_percentile_sample=2048):
        if not hasattr(net, "layers") or not hasattr(net, "parameters"):
            raise TypeError(f"net must be a fastnn Sequential, got {type(net).__name__}")
        self.net = net
        self.interval = check_positive_int(interval, "interval")
        self.saturation_tol = check_number(saturation_tol, "saturation_tol", low=0, high=0.5,
                                           low_open=True, high_open=True)
        self.max_percentile_sample = check_positive_int(max_percentile_sample,
                                                        "max_percentile_sample")
        self.record = DiagnosticsRecord(meta={"interval": self.interval,
                                              "saturation_tol": self.saturation_tol})
        self._layers = self._describe_layers(net.layers)
        self._pending = {}      # layer index -> row of the step being recorded
        self._pending_step = None
        self._before = {}       # layer index -> copy of the weights before the update

    def _describe_layers(self, layers):
        """(index, layer, kind, name, extra) for every layer the monitor watches."""
        described, counts = [], {}
        for i, layer in enumerate(layers):
            if isinstance(layer, Dense):
                kind, label = "dense", "dense"
            elif isinstance(layer, (Activation, PReLU, RReLU)):
                kind, label = "activation", layer.name
            elif _is_batchnorm(layer):
                kind, label = "batchnorm", "batchnorm"
            else:
                continue
            counts[label] = counts.get(label, 0) + 1
            extra = {}
            if kind == "dense":
                follower = layers[i + 1] if i + 1 < len(layers) else None
                extra["bn_after"] = follower if _is_batchnorm(follower) else None
            described.append((i, layer, kind, f"{label}{counts[label]}", extra))
        return described

    # -- hooks -------------------------------------------------------------------------
    def is_recorded(self, step):
        """Whether ``step`` is a recorded step."""
        return step % self.interval == 0

    def after_backward(self, step):
        """Record gradients, activations and batch-norm statistics of this step (if recorded)."""
        step = self._check_step(step)
        if not self.is_recorded(step):
            return
        self._pending = {}
        self._pending_step = step
        # Overflow and NaN are what the record is there to show, not reasons to warn.
        with np.errstate(all="ignore"):
            for index, layer, kind, name, extra in self._layers:
                row = dict.fromkeys(COLUMNS)
                row.update(step=step, layer=index, name=name, kind=kind)
                if kind == "dense":
                    self._dense_stats(index, layer, extra, row)
                elif kind == "activation":
                    self._activation_stats(layer, row)
                else:
                    self._batchnorm_stats(layer, row)
                self._pending[index] = row
                self.record.rows.append(row)

    def after_update(self, step):
        """Add ‖ΔW‖/‖W‖ of this step's update to the step's rows (if recorded)."""
        step = self._check_step(step)
        if not self.is_recorded(step) or step != self._pending_step:
            return
        with np.errstate(all="ignore"):
            for index, before in self._before.items():
                row = self._pending[index]
                weight = self.net.layers[index].weight.data.reshape(-1)
                norm, change = row["weight_norm"], math.sqrt(_diag.diff_sum_squares(weight, before))
                row["update_ratio"] = change / norm if norm > 0 else (math.inf if change else 0.0)
        self._pending = {}
        self._pending_step = None

    @staticmethod
    def _check_step(step):
        if not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 0:
            raise ValueError(f"step must be an int >= 0 (the global step counter), got {step!r}")
        return int(step)

    # -- per-kind statistics -----------------------------------------------------------
    def _dense_stats(self, index, layer, extra, row):
        weight = layer.weight
        row["units"] = layer.out_features
        row["grad_norm_weight"] = _norm(weight.grad)
        if layer.bias is not None:
            row["grad_norm_bias"] = _norm(layer.bias.grad)
        shift = _param(extra["bn_after"], ("bias", "beta", "shift")) if extra["bn_after"] else None
        if shift is not None:
            row["delta_norm"] = _norm(shift.grad)
        else:
            row["delta_norm"] = row["grad_norm_bias"]
        before = self._before.get(index)
        if before is None or before.size != weight.data.size or before.dtype != weight.data.dtype:
            before = self._before[index] = np.empty(weight.data.size, dtype=weight.data.dtype)
        row["weight_norm"] = math.sqrt(_diag.copy_sum_squares(weight.data.reshape(-1), before))

    def _activation_stats(self, layer, row):
        A = layer.output
        if A is None:
            raise RuntimeError(f"{layer!r} has no output: call after_backward after a forward "
                               "and backward pass")
        A = A.reshape(A.shape[0], -1)
        n, m = A.shape
        lower, upper = saturation_bounds(layer.name, self.saturation_tol)
        col_mean, col_var = np.empty(m), np.empty(m)
        counted = layer.name == "relu" or layer.name in NEGATIVE_SIDE
        col_nonpositive = np.empty(m, dtype=np.intp) if counted else None
        saturated = _diag.activation_stats(A, lower, upper, col_mean, col_var, col_nonpositive)
        # Law of total variance over equally sized columns.
        mean = float(col_mean.mean())
        var = float(col_var.mean() + col_mean.var())
        row.update(units=m, act_mean=mean, act_std=math.sqrt(var) if var >= 0 else math.nan)
        percentiles = self._percentiles(A) if not math.isnan(mean) else [math.nan] * len(PERCENTILES)
        for q, value in zip(PERCENTILES, percentiles):
            row[f"act_p{q}"] = float(value)
        if layer.name in SATURATING:
            row["saturated_frac"] = saturated / A.size
        if layer.name == "relu":  # ReLU's outputs are >= 0: the count is of zeros
            row["dead_frac"] = float(np.count_nonzero(col_nonpositive == n)) / m
        elif counted:
            row["negative_frac"] = self._negative_fraction(layer, A, col_nonpositive)

    @staticmethod
    def _negative_fraction(layer, A, col_nonpositive):
        """Fraction of units with z <= 0 on every row. With slopes >= 0 (RReLU's always),
        a <= 0 exactly where z <= 0, so the count over A serves; a PReLU slope learned
        below 0 makes a > 0 on both sides, and then the layer's input is counted."""
        n, m = A.shape
        if isinstance(layer, PReLU) and float(layer.weight.data.min()) < 0:
            Z = np.ascontiguousarray(layer.input).reshape(n, m)
            _diag.activation_stats(Z, -math.inf, math.inf, np.empty(m), np.empty(m),
                                   col_nonpositive)
        return float(np.count_nonzero(col_nonpositive == n)) / m

    def _percentiles(self, A):
        """``PERCENTILES`` of whole rows of A taken at a regular stride, at most
        ``max_percentile_sample`` values; linear interpolation (NumPy's default method)."""
        rows = max(1, self.max_percentile_sample // A.shape[1])
        sample = A[::max(1, -(-A.shape[0] // rows))].reshape(-1)
        position = np.array(PERCENTILES) / 100 * (sample.size - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, sample.size - 1)
        part = np.partition(sample, np.union1d(low, high))
        a, b = part[low].astype(np.float64), part[high].astype(np.float64)
        return a + (b - a) * (position - low)

    def _batchnorm_stats(self, layer, row):
        running_mean = np.asarray(layer.running_mean, dtype=np.float64)
        running_var = np.asarray(layer.running_var, dtype=np.float64)
        batch_mean, batch_var = self._batch_moments(layer)
        eps = float(getattr(layer, "eps", 1e-5))
        row["units"] = running_mean.shape[0]
        scale = _param(layer, ("weight", "gamma", "scale"))
        shift = _param(layer, ("bias", "beta", "shift"))
        if scale is not None:
            row["grad_norm_weight"] = _norm(scale.grad)
            row["weight_norm"] = _norm(scale.data)
        if shift is not None:
            row["grad_norm_bias"] = _norm(shift.grad)
        row["bn_running_mean"] = float(running_mean.mean())
        row["bn_running_var"] = float(running_var.mean())
        if batch_mean is not None:
            row["bn_batch_mean"] = float(batch_mean.mean())
            row["bn_batch_var"] = float(batch_var.mean())
            row["bn_mean_shift"] = float(np.mean(np.abs(batch_mean - running_mean)
                                                 / np.sqrt(running_var + eps)))
            with np.errstate(divide="ignore", invalid="ignore"):
                row["bn_var_ratio"] = float(np.mean(batch_var / running_var))

    @staticmethod
    def _batch_moments(layer):
        """Batch mean and biased variance of the layer's input on the last training-mode
        forward (``BatchNorm.batch_statistics()``); (None, None) after an evaluation-mode
        one or for a layer without that method."""
        statistics = layer.batch_statistics() if hasattr(layer, "batch_statistics") else None
        return (None, None) if statistics is None else statistics

    # -- results (delegated) -----------------------------------------------------------
    @property
    def rows(self):
        """The recorded rows (list of dicts with keys ``COLUMNS``)."""
        return self.record.rows

    def table(self):
        """Per-layer summary, first vs last recorded values (``DiagnosticsRecord.table``)."""
        return self.record.table()

    def warnings(self):
        """Plain-words warnings with remedies (``DiagnosticsRecord.warnings``)."""
        return self.record.warnings()

    def to_json(self, path):
        """Write the record as JSON (``DiagnosticsRecord.to_json``)."""
        self.record.to_json(path)

    def to_csv(self, path):
        """Write the record as CSV (``DiagnosticsRecord.to_csv``)."""
        self.record.to_csv(path)

    def plot(self, path, title=None):
        """Per-layer curves over training as a PNG (``DiagnosticsRecord.plot``)."""
        self.record.plot(path, title=title)


class DiagnosticsRecord:
    """A tidy table of diagnostics: one row per recorded step per layer (keys ``COLUMNS``).

    Attributes
    ----------
    rows : list of dict
    meta : dict
        Monitor settings (``interval``, ``saturation_tol``).
    """

    def __init__(self, rows=None, meta=None):
        self.rows = list(rows or [])
        self.meta = dict(meta or {})

    # -- access ------------------------------------------------------------------------
    def layers(self):
        """[(layer index, name, kind)] in network order."""
        seen = {}
        for row in self.rows:
            seen.setdefault(row["layer"], (row["layer"], row["name"], row["kind"]))
        return [seen[i] for i in sorted(seen)]

    def series(self, layer, column):
        """(steps, values) of ``column`` for layer index ``layer``; None values become NaN."""
        pairs = [(row["step"], row[column]) for row in self.rows if row["layer"] == layer]
        steps = np.array([s for s, _ in pairs], dtype=np.int64)
        values = np.array([math.nan if v is None else v for _, v in pairs], dtype=np.float64)
        return steps, values

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return f"DiagnosticsRecord({len(self.rows)} rows, {len(self.layers())} layers)"

    # -- export ------------------------------------------------------------------------
    def to_json(self, path):
        """Write ``{"format", "meta", "columns", "rows": [{column: value}]}``.

        Strict JSON: non-finite numbers are written as the strings "NaN", "Infinity",
        "-Infinity" and ``read_json`` turns them back into floats (``fastnn._json``).
        """
        rows = [{k: row[k] for k in COLUMNS} for row in self.rows]
        with open(path, "w", encoding="utf-8") as f:
            _json.dump({"format": "fastnn.diagnostics/1", "meta": self.meta,
                        "columns": list(COLUMNS), "rows": rows}, f, indent=1)

    @classmethod
    def read_json(cls, path):
        """Load a record written by ``to_json``."""
        with open(path, encoding="utf-8") as f:
            data = _json.loads(f.read())
        if data.get("format") != "fastnn.diagnostics/1":
            raise ValueError(f"{path}: not a fastnn diagnostics file (format {data.get('format')!r})")
        rows = [{k: row.get(k) for k in COLUMNS} for row in data["rows"]]
        return cls(rows, data.get("meta"))

    def to_csv(self, path):
        """Write a header of ``COLUMNS`` and one line per row; empty cells for None."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for row in self.rows:
                writer.writerow(["" if row[k] is None else (repr(row[k]) if isinstance(row[k], float)
                                                            else row[k]) for k in COLUMNS])

    @classmethod
    def read_csv(cls, path):
        """Load a record written by ``to_csv``."""
        rows = []
        with open(path, newline="", encoding="utf-8") as f:
            for raw in csv.DictReader(f):
                row = {}
                for k in COLUMNS:
                    cell = raw.get(k, "")
                    if cell == "":
                        row[k] = None
                    elif k in _STR_COLUMNS:
                        row[k] = cell
                    elif k in _INT_COLUMNS:
                        row[k] = int(cell)
                    else:
                        row[k] = float(cell)
                rows.append(row)
        return cls(rows)

    # -- summary -----------------------------------------------------------------------
    _SUMMARY = {
        "dense": (("delta_norm", "speed ||delta||"), ("grad_norm_weight", "||grad W||"),
                  ("update_ratio", "||dW||/||W||")),
        "activation": (("act_mean", "mean"), ("act_std", "std"), ("act_p2", "p2"),
                       ("act_p98", "p98"), ("saturated_frac", "saturated"),
                       ("dead_frac", "dead"), ("negative_frac", "negative")),
        "batchnorm": (("grad_norm_bias", "||grad beta||"), ("bn_mean_shift", "|mu_B-mu|/sigma"),
                      ("bn_var_ratio", "var_B/var")),
    }

    def table(self):
        """Per-layer summary: each metric at the first and at the last recorded step."""
        if not self.rows:
            return "(no steps recorded)"
        first_step = min(r["step"] for r in self.rows)
        last_step = max(r["step"] for r in self.rows)
        header = ("layer", "name", "metric", f"step {first_step}", f"step {last_step}")
        lines = []
        for index, name, kind in self.layers():
            rows = [r for r in self.rows if r["layer"] == index]
            for column, label in self._SUMMARY[kind]:
                if all(r[column] is None for r in rows):
                    continue  # not applicable to this layer (e.g. dead units of a sigmoid)
                lines.append((index, name, label, format_number(rows[0][column]),
                              format_number(rows[-1][column])))
        return format_table(header, lines, group=2)

    def warnings(self):
        """Plain-words warnings about what the record shows, each with the texts' remedies
        (the rules and their thresholds: ``fastnn.diagnostic_rules``)."""
        return diagnostic_rules.warnings(self)

    # -- plot --------------------------------------------------------------------------
    def plot(self, path, title=None):
        """Per-layer curves over training as a PNG (``fastnn.plotting.plot_diagnostics``)."""
        plot_diagnostics(self, path, title=title)

"""Training diagnostics: see vanishing and exploding gradients, saturation and dead units.

A ``Monitor`` watches a ``Sequential`` network while it trains and records, every
``interval`` steps and per layer:

* **Dense layers** — Nielsen's *speed of learning* ``delta_norm`` = ‖δ^l‖, the norm of the
  gradient of the cost with respect to the biases of the units the layer feeds (Nielsen,
  *Neural Networks and Deep Learning*, ch. 5: ∂C/∂b^l_j = δ^l_j); the norms of the weight
  and bias gradients; the weight norm; and the relative size of the update,
  ‖W_after − W_before‖ / ‖W_before‖.
* **Activation layers** — mean, standard deviation and percentiles of the outputs (Glorot &
  Bengio 2010, fig. 2-4), the *saturated fraction* of outputs for bounded activations and
  the *dead fraction* of ReLU units.
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
longer learns.) When a Dense layer is followed directly by a batch-normalization layer,
its own bias has zero gradient (the normalization subtracts it again) and ``delta_norm``
is the norm of the gradient of β, the bias of the units that feed the nonlinearity.

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
import json
import math
import numbers

import numpy as np

from fastnn._validation import check_positive_int
from fastnn.layers import Activation, Dense
from fastnn.plotting import require_matplotlib
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
    "saturated_frac", "dead_frac",
    # BatchNorm (averages over features)
    "bn_batch_mean", "bn_running_mean", "bn_batch_var", "bn_running_var",
    "bn_mean_shift", "bn_var_ratio",
)
PERCENTILES = (2, 25, 50, 75, 98)
_INT_COLUMNS = ("step", "layer", "units")
_STR_COLUMNS = ("name", "kind")

#: Activations with a saturation rule (see the module docstring).
SATURATING = ("sigmoid", "tanh", "softsign", "hardtanh")


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
        if not (isinstance(saturation_tol, numbers.Real) and 0 < saturation_tol < 0.5):
            raise ValueError(f"saturation_tol must be a number in (0, 0.5), got {saturation_tol!r}")
        self.saturation_tol = float(saturation_tol)
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
            elif isinstance(layer, Activation):
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
        A = layer._output
        if A is None:
            raise RuntimeError(f"{layer!r} has no output: call after_backward after a forward "
                               "and backward pass")
        A = A.reshape(A.shape[0], -1)
        n, m = A.shape
        lower, upper = saturation_bounds(layer.name, self.saturation_tol)
        col_mean, col_var = np.empty(m), np.empty(m)
        col_zeros = np.empty(m, dtype=np.intp) if layer.name == "relu" else None
        saturated = _diag.activation_stats(A, lower, upper, col_mean, col_var, col_zeros)
        # Law of total variance over equally sized columns.
        mean = float(col_mean.mean())
        var = float(col_var.mean() + col_mean.var())
        row.update(units=m, act_mean=mean, act_std=math.sqrt(var) if var >= 0 else math.nan)
        percentiles = self._percentiles(A) if not math.isnan(mean) else [math.nan] * len(PERCENTILES)
        for q, value in zip(PERCENTILES, percentiles):
            row[f"act_p{q}"] = float(value)
        if layer.name in SATURATING:
            row["saturated_frac"] = saturated / A.size
        if col_zeros is not None:
            row["dead_frac"] = float(np.count_nonzero(col_zeros == n)) / m

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
        """Batch mean and (biased) variance of the layer's input on the last training forward.

        Read from what fastnn's BatchNorm keeps for its backward pass (``_mean`` and
        ``_inv_std`` = 1/√(σ²_B + ε)); other batch-norm layers get them from their input
        (``_input``) through the compiled column pass. None in evaluation mode.
        """
        if not getattr(layer, "_batch_stats", getattr(layer, "training", True)):
            return None, None
        eps = float(getattr(layer, "eps", 1e-5))
        mean, inv_std = getattr(layer, "_mean", None), getattr(layer, "_inv_std", None)
        if mean is not None and inv_std is not None:
            inv_std = np.asarray(inv_std, dtype=np.float64)
            return np.asarray(mean, dtype=np.float64), 1.0 / (inv_std * inv_std) - eps
        X = getattr(layer, "_input", None)
        if X is None:
            return None, None
        X = X.reshape(X.shape[0], -1)
        mean, var = np.empty(X.shape[1]), np.empty(X.shape[1])
        _diag.activation_stats(X, -math.inf, math.inf, mean, var, None)
        return mean, var

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


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _from_json_value(value):
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return value


class DiagnosticsRecord:
    """A tidy table of diagnostics: one row per recorded step per layer (keys ``COLUMNS``).

    Attributes
    ----------
    rows : list of dict
    meta : dict
        Monitor settings (``interval``, ``saturation_tol``).
    """

    #: Warning thresholds. Ratios compare the last and the first hidden Dense layer by the
    #: relative weight gradient ‖∂C/∂W‖/‖W‖ (how fast the weights move for a given learning
    #: rate, comparable across widths and with batch norm) and by Nielsen's ‖δ‖/√units
    #: (skipped when batch norm follows either layer).
    VANISHING_RATIO = 10.0
    EXPLODING_RATIO = 10.0
    #: Growth of a layer's weight-gradient norm over training counted as exploding.
    EXPLODING_GROWTH = 100.0
    #: Mean saturated / dead fraction over the last third of the records that warns.
    SATURATION_WARN = 0.2
    DEAD_WARN = 0.1

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

        Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity"
        (strict JSON has no literal for them); ``read_json`` turns them back into floats.
        """
        rows = [{k: _json_value(row[k]) for k in COLUMNS} for row in self.rows]
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"format": "fastnn.diagnostics/1", "meta": self.meta,
                       "columns": list(COLUMNS), "rows": rows}, f, allow_nan=False, indent=1)

    @classmethod
    def read_json(cls, path):
        """Load a record written by ``to_json``."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("format") != "fastnn.diagnostics/1":
            raise ValueError(f"{path}: not a fastnn diagnostics file (format {data.get('format')!r})")
        rows = [{k: _from_json_value(row.get(k)) for k in COLUMNS} for row in data["rows"]]
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
                       ("dead_frac", "dead")),
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
            for column, label in self._SUMMARY[kind]:
                if all(r[column] is None for r in self.rows if r["layer"] == index):
                    continue  # not applicable to this layer (e.g. dead units of a sigmoid)
                _, values = self.series(index, column)
                lines.append((str(index), name, label, _fmt(values[0]), _fmt(values[-1])))
        return _format_table(header, lines)

    def warnings(self):
        """Plain-words warnings about what the record shows, each with the texts' remedies.

        Vanishing (exploding) gradients: the median over recorded steps of the ratio, last
        to first hidden Dense layer, of ‖∂C/∂W‖/‖W‖ or of Nielsen's ‖δ‖/√units (not used
        next to batch norm, whose β gradient cancels over the batch) is >=
        ``VANISHING_RATIO`` (<= 1/``EXPLODING_RATIO``). Exploding also when a gradient or
        statistic is non-finite or a weight-gradient norm grows ``EXPLODING_GROWTH``-fold. Saturation and
        dead units: the mean fraction over the last third of the records is at least
        ``SATURATION_WARN`` / ``DEAD_WARN``.
        """
        out = []
        layers = self.layers()
        dense = [(i, name) for i, name, kind in layers if kind == "dense"]
        nonfinite = self._nonfinite_warning()
        if nonfinite:
            out.append(nonfinite)
        if len(dense) >= 3:  # at least two hidden Dense layers to compare
            out += self._depth_warnings(dense[:-1])
        grown = []
        for i, name in dense:
            values = self.series(i, "grad_norm_weight")[1]
            finite = values[np.isfinite(values)]
            if finite.size >= 2 and finite[0] > 0 and finite.max() / finite[0] >= self.EXPLODING_GROWTH:
                grown.append(f"{name} {finite.max() / finite[0]:.3g}x ({finite[0]:.3g} -> "
                             f"{finite.max():.3g})")
        if grown:
            out.append("Exploding gradients: weight-gradient norms grew by orders of magnitude "
                       f"during training: {', '.join(grown)}. {_REMEDIES['exploding']}")
        levels = {"saturated_frac": [], "dead_frac": []}
        for i, name, kind in layers:
            if kind != "activation":
                continue
            for column, threshold in (("saturated_frac", self.SATURATION_WARN),
                                      ("dead_frac", self.DEAD_WARN)):
                values = self.series(i, column)[1]
                if np.all(np.isnan(values)):
                    continue
                level = float(np.nanmean(values[len(values) - max(1, len(values) // 3):]))
                if level >= threshold:
                    levels[column].append(f"{name} {level:.0%}")
        if levels["saturated_frac"]:
            out.append(
                f"Saturation: outputs within {self.meta.get('saturation_tol', 0.01):g} of the "
                "activation's asymptotes, where its derivative is nearly zero and little gradient "
                "flows back (mean over the last third of training): "
                f"{', '.join(levels['saturated_frac'])}. {_REMEDIES['saturation']}")
        if levels["dead_frac"]:
            out.append(
                "Dead units: ReLU units that output zero for every example of a batch pass no "
                "gradient and stop learning (mean fraction over the last third of training): "
                f"{', '.join(levels['dead_frac'])}. {_REMEDIES['dead']}")
        return out

    def _nonfinite_warning(self):
        """One message for the first recorded step with a non-finite figure, or None."""
        for row in sorted(self.rows, key=lambda r: (r["step"], r["layer"])):
            bad = [k for k in COLUMNS[5:] if isinstance(row[k], float) and not math.isfinite(row[k])
                   and not (k == "update_ratio" and row["weight_norm"] == 0)]
            if bad:
                layers = sorted({r["name"] for r in self.rows if r["step"] >= row["step"] and any(
                    isinstance(r[k], float) and math.isnan(r[k]) for k in COLUMNS[5:])})
                return (f"Exploding gradients: non-finite {', '.join(bad)} in {row['name']} "
                        f"(layer {row['layer']}) at step {row['step']}; training has diverged "
                        f"(NaN afterwards in {len(layers)} layers). {_REMEDIES['exploding']}")
        return None

    def _depth_warnings(self, hidden):
        """Compare the first and the last hidden Dense layer (see ``warnings``)."""
        (i0, name0), (i1, name1) = hidden[0], hidden[-1]
        units = {i: next(r["units"] for r in self.rows if r["layer"] == i) for i in (i0, i1)}
        measures = {"relative weight gradient ||dC/dW||/||W||": self._median_ratio(
            i0, i1, lambda i: self.series(i, "grad_norm_weight")[1] / self.series(i, "weight_norm")[1])}
        # With batch norm after a Dense layer, delta is beta's gradient, a batch sum that the
        # normalization makes cancel: not a measure of how fast the layer learns.
        normalized = {r["layer"] - 1 for r in self.rows if r["kind"] == "batchnorm"}
        if not normalized & {i0, i1}:
            measures["Nielsen's speed of learning ||delta||/sqrt(units)"] = self._median_ratio(
                i0, i1, lambda i: self.series(i, "delta_norm")[1] / math.sqrt(units[i]))
        measures = {k: v for k, v in measures.items() if v is not None}
        if not measures:
            return []
        detail = "; ".join(f"{label}: {median:.3g}x (median over {count} recorded steps; "
                           f"{first:.3g}x at the first, {last:.3g}x at the last)"
                           for label, (median, first, last, count) in measures.items())
        medians = [m[0] for m in measures.values()]
        if max(medians) >= self.VANISHING_RATIO:
            return [f"Vanishing gradients: the first hidden layer ({name0}, layer {i0}) learns "
                    f"{max(medians):.3g}x slower than the last hidden layer ({name1}, layer {i1}) "
                    f"({detail}); early layers barely change. {_REMEDIES['vanishing']}"]
        if min(medians) <= 1 / self.EXPLODING_RATIO:
            return [f"Exploding gradients: the first hidden layer ({name0}, layer {i0}) learns "
                    f"{1 / min(medians):.3g}x faster than the last hidden layer ({name1}, "
                    f"layer {i1}) ({detail}). {_REMEDIES['exploding']}"]
        return []

    @staticmethod
    def _median_ratio(i0, i1, measure):
        """(median, first, last, count) over recorded steps of measure(i1) / measure(i0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = measure(i1) / measure(i0)
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if ratio.size == 0:
            return None
        return float(np.median(ratio)), float(ratio[0]), float(ratio[-1]), int(ratio.size)

    # -- plot --------------------------------------------------------------------------
    def plot(self, path, title=None):
        """Per-layer curves over training, written as a PNG to ``path``.

        Panels: speed of learning ‖δ^l‖ per Dense layer (log scale, as Nielsen's ch. 5
        figures); ‖ΔW‖/‖W‖ per Dense layer; activation mean ± standard deviation per
        activation layer (Glorot & Bengio's fig. 2); saturated and dead
        fractions; and, with batch norm, |μ_B − μ|/σ. Needs matplotlib (``fastnn[plot]``).
        """
        Figure, FigureCanvasAgg = require_matplotlib()
        layers = self.layers()
        kinds = {kind for _, _, kind in layers}
        panels = ["speed", "update", "activation", "fraction"]
        if "batchnorm" in kinds:
            panels.append("batchnorm")
        fig = Figure(figsize=(11, 3.2 * ((len(panels) + 1) // 2)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots((len(panels) + 1) // 2, 2, squeeze=False).ravel()
        for ax, panel in zip(axes, panels):
            _draw_panel(ax, self, layers, panel)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title)
        fig.savefig(path, dpi=100)


_REMEDIES = {
    "vanishing": ("Remedies: an initializer that keeps the variance of activations and gradients "
                  "constant across layers (Glorot for sigmoid/tanh, He for ReLU/ELU); ReLU or ELU "
                  "instead of sigmoid; batch normalization."),
    "exploding": ("Remedies: a lower learning rate; gradient clipping (rescale the gradient when "
                  "its norm exceeds a threshold); Glorot/He initialization instead of large "
                  "weights; batch normalization."),
    "saturation": ("Remedies: Glorot's normalized initialization (or He for ReLU); tanh/softsign, "
                   "or ReLU/ELU, instead of sigmoid (sigmoid's mean output of 0.5 pushes the top "
                   "hidden layer into saturation, Glorot & Bengio 2010); batch normalization; "
                   "a lower learning rate."),
    "dead": ("Remedies: a lower learning rate; He initialization; leaky ReLU or ELU, which keep a "
             "gradient for negative inputs; batch normalization."),
}


#: Panels that plot one recorded column per layer of one kind: (kind, column, title, log scale).
_COLUMN_PANELS = {
    "speed": ("dense", "delta_norm", "Speed of learning ||delta|| (bias gradient)", True),
    "update": ("dense", "update_ratio", "Update size ||dW|| / ||W||", True),
    "batchnorm": ("batchnorm", "bn_mean_shift",
                  "Batch norm: |batch mean - running mean| / running std", False),
}


def _draw_panel(ax, record, layers, panel):
    if panel in _COLUMN_PANELS:
        wanted, column, title, log_scale = _COLUMN_PANELS[panel]
        for i, name, kind in layers:
            if kind == wanted:
                steps, values = record.series(i, column)
                ax.plot(steps, values, label=name)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title)
    elif panel == "activation":
        for i, name, kind in layers:
            if kind == "activation":
                steps, mean = record.series(i, "act_mean")
                _, std = record.series(i, "act_std")
                line, = ax.plot(steps, mean, label=name)
                ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set_title("Activation mean (band: ± one standard deviation)")
    elif panel == "fraction":
        for i, name, kind in layers:
            if kind == "activation":
                for column, style in (("saturated_frac", "-"), ("dead_frac", "--")):
                    steps, values = record.series(i, column)
                    if not np.all(np.isnan(values)):
                        ax.plot(steps, values, style, label=f"{name} {column.split('_')[0]}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("Saturated (solid) / dead (dashed) fraction")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")


def _fmt(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _format_table(header, lines):
    widths = [max(len(h), *(len(line[k]) for line in lines)) if lines else len(h)
              for k, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip(), "  ".join("-" * w for w in widths)]
    previous = None
    for line in lines:
        shown = line if line[0] != previous else ("", "", *line[2:])
        previous = line[0]
        out.append(fmt.format(*shown).rstrip())
    return "\n".join(out)

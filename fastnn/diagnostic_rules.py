"""Warning rules: what a diagnostics record says, in plain words, with the texts' remedies.

Each rule is a function ``rule(record) -> list of str`` over a
``fastnn.diagnostics.DiagnosticsRecord`` (its ``rows``, ``layers()``, ``series()`` and
``meta``); ``warnings(record)`` runs ``RULES`` in order. Hidden Dense layers are every
Dense layer but the last.

``nonfinite``
    Exploding: a recorded figure is NaN or infinite (training has diverged).
``depth``
    Vanishing (exploding): the median over recorded steps of the ratio, last to first
    hidden Dense layer, of the relative weight gradient ‖∂C/∂W‖/‖W‖ or of Nielsen's
    ‖δ‖/√units (not next to batch norm, whose β gradient cancels over the batch) is
    >= ``VANISHING_RATIO`` (<= 1/``EXPLODING_RATIO``). Needs two hidden Dense layers.
``gradient_growth``
    Exploding: a Dense layer's weight-gradient norm grew ``EXPLODING_GROWTH``-fold from
    its first finite record.
``saturation``, ``dead_units``
    The mean saturated (dead) fraction of an activation layer over the last third of the
    records is at least ``SATURATION_WARN`` (``DEAD_WARN``).
``negative_units``
    PReLU/RReLU: the mean fraction of units on the negative side for a whole batch over
    the last third of the records is at least ``NEGATIVE_WARN``. Such units are not dead
    (their gradient passes with slope α), so the threshold is higher than for ReLU: the
    warning is that much of the layer has become a linear map.

References: Nielsen, *Neural Networks and Deep Learning*, ch. 5 (speed of learning);
Glorot & Bengio (2010) (saturation); He et al. (2015) (initialization for ReLU).
"""
import math

import numpy as np

#: Median ratio of the last to the first hidden layer's learning speed that warns of
#: vanishing gradients, and of the first to the last that warns of exploding ones.
VANISHING_RATIO = 10.0
EXPLODING_RATIO = 10.0
#: Growth of a layer's weight-gradient norm over training counted as exploding.
EXPLODING_GROWTH = 100.0
#: Mean saturated / dead fraction over the last third of the records that warns.
SATURATION_WARN = 0.2
DEAD_WARN = 0.1
#: Mean fraction of PReLU/RReLU units on the negative side for a whole batch, over the last
#: third of the records, that warns.
NEGATIVE_WARN = 0.5

REMEDIES = {
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
    "negative": ("Remedies: a lower learning rate; He initialization; batch normalization before "
                 "the activation, which centres each unit's input on the batch."),
}


def _dense_layers(record):
    return [(i, name) for i, name, kind in record.layers() if kind == "dense"]


def _nonfinite_figures(row):
    """The columns of ``row`` holding NaN or ±inf (an update ratio of zero weights excepted)."""
    return [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)
            and not (k == "update_ratio" and row["weight_norm"] == 0)]


def nonfinite(record):
    """One message for the first recorded step with a non-finite figure."""
    for row in sorted(record.rows, key=lambda r: (r["step"], r["layer"])):
        bad = _nonfinite_figures(row)
        if bad:
            layers = sorted({r["name"] for r in record.rows if r["step"] >= row["step"] and any(
                isinstance(v, float) and math.isnan(v) for v in r.values())})
            return [f"Exploding gradients: non-finite {', '.join(bad)} in {row['name']} "
                    f"(layer {row['layer']}) at step {row['step']}; training has diverged "
                    f"(NaN afterwards in {len(layers)} layers). {REMEDIES['exploding']}"]
    return []


def _median_ratio(i0, i1, measure):
    """(median, first, last, count) over recorded steps of measure(i1) / measure(i0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = measure(i1) / measure(i0)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if ratio.size == 0:
        return None
    return float(np.median(ratio)), float(ratio[0]), float(ratio[-1]), int(ratio.size)


def depth(record):
    """Compare how fast the first and the last hidden Dense layer learn."""
    hidden = _dense_layers(record)[:-1]
    if len(hidden) < 2:
        return []
    (i0, name0), (i1, name1) = hidden[0], hidden[-1]
    units = {i: next(r["units"] for r in record.rows if r["layer"] == i) for i in (i0, i1)}

    def relative_gradient(i):
        return record.series(i, "grad_norm_weight")[1] / record.series(i, "weight_norm")[1]

    measures = {"relative weight gradient ||dC/dW||/||W||": _median_ratio(i0, i1, relative_gradient)}
    # With batch norm after a Dense layer, delta is beta's gradient, a batch sum that the
    # normalization makes cancel: not a measure of how fast the layer learns.
    normalized = {r["layer"] - 1 for r in record.rows if r["kind"] == "batchnorm"}
    if not normalized & {i0, i1}:
        measures["Nielsen's speed of learning ||delta||/sqrt(units)"] = _median_ratio(
            i0, i1, lambda i: record.series(i, "delta_norm")[1] / math.sqrt(units[i]))
    measures = {k: v for k, v in measures.items() if v is not None}
    if not measures:
        return []
    detail = "; ".join(f"{label}: {median:.3g}x (median over {count} recorded steps; "
                       f"{first:.3g}x at the first, {last:.3g}x at the last)"
                       for label, (median, first, last, count) in measures.items())
    medians = [m[0] for m in measures.values()]
    if max(medians) >= VANISHING_RATIO:
        return [f"Vanishing gradients: the first hidden layer ({name0}, layer {i0}) learns "
                f"{max(medians):.3g}x slower than the last hidden layer ({name1}, layer {i1}) "
                f"({detail}); early layers barely change. {REMEDIES['vanishing']}"]
    if min(medians) <= 1 / EXPLODING_RATIO:
        return [f"Exploding gradients: the first hidden layer ({name0}, layer {i0}) learns "
                f"{1 / min(medians):.3g}x faster than the last hidden layer ({name1}, "
                f"layer {i1}) ({detail}). {REMEDIES['exploding']}"]
    return []


def gradient_growth(record):
    """Weight-gradient norms that grew by orders of magnitude during training."""
    grown = []
    for i, name in _dense_layers(record):
        values = record.series(i, "grad_norm_weight")[1]
        finite = values[np.isfinite(values)]
        if finite.size >= 2 and finite[0] > 0 and finite.max() / finite[0] >= EXPLODING_GROWTH:
            grown.append(f"{name} {finite.max() / finite[0]:.3g}x ({finite[0]:.3g} -> "
                         f"{finite.max():.3g})")
    if not grown:
        return []
    return ["Exploding gradients: weight-gradient norms grew by orders of magnitude during "
            f"training: {', '.join(grown)}. {REMEDIES['exploding']}"]


def _late_levels(record, column, threshold):
    """"name 35%" for each activation layer whose mean ``column`` over the last third of the
    records is at least ``threshold``."""
    levels = []
    for i, name, kind in record.layers():
        if kind != "activation":
            continue
        values = record.series(i, column)[1]
        if np.all(np.isnan(values)):
            continue
        level = float(np.nanmean(values[len(values) - max(1, len(values) // 3):]))
        if level >= threshold:
            levels.append(f"{name} {level:.0%}")
    return levels


def saturation(record):
    """Activation layers whose outputs sit near the asymptotes late in training."""
    levels = _late_levels(record, "saturated_frac", SATURATION_WARN)
    if not levels:
        return []
    return [f"Saturation: outputs within {record.meta.get('saturation_tol', 0.01):g} of the "
            "activation's asymptotes, where its derivative is nearly zero and little gradient "
            "flows back (mean over the last third of training): "
            f"{', '.join(levels)}. {REMEDIES['saturation']}"]


def dead_units(record):
    """ReLU layers with many units that output zero for a whole batch late in training."""
    levels = _late_levels(record, "dead_frac", DEAD_WARN)
    if not levels:
        return []
    return ["Dead units: ReLU units that output zero for every example of a batch pass no "
            "gradient and stop learning (mean fraction over the last third of training): "
            f"{', '.join(levels)}. {REMEDIES['dead']}"]


def negative_units(record):
    """PReLU/RReLU layers with half their units on the negative side for a whole batch late
    in training."""
    levels = _late_levels(record, "negative_frac", NEGATIVE_WARN)
    if not levels:
        return []
    return ["Negative-side units: PReLU/RReLU units whose input is <= 0 for every example of a "
            "batch still learn (the gradient passes with slope alpha, unlike dead ReLU units) "
            "but are linear on it, so the layer adds little nonlinearity (mean fraction over "
            f"the last third of training): {', '.join(levels)}. {REMEDIES['negative']}"]


#: The rules ``warnings`` runs, in the order of its messages.
RULES = (nonfinite, depth, gradient_growth, saturation, dead_units, negative_units)


def warnings(record, rules=RULES):
    """Every message of ``rules`` (default ``RULES``) about ``record``, in order."""
    return [message for rule in rules for message in rule(record)]

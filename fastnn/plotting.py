"""Plots as PNG files, drawn with matplotlib's object API (no pyplot, Agg canvas): learning
curves of a ``fit`` history and the per-layer curves of a diagnostics record.

matplotlib is optional: ``pip install "fastnn[plot]"``. It is imported only when a plot
is drawn; without it, ``require_matplotlib()`` raises an ImportError saying how to get it.
"""
import os

import numpy as np

PLOT_HINT = 'plotting needs matplotlib: pip install "fastnn[plot]"'


def require_matplotlib():
    """Import matplotlib's Figure and Agg canvas, or raise ImportError naming the extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    return Figure, FigureCanvasAgg


def plot_history(history, path, title=None):
    """Write learning curves (loss, and accuracy when recorded; train vs validation) to ``path``.

    Parameters
    ----------
    history : fastnn.callbacks.History or list of dict
        Per-epoch metrics with keys ``epoch``, ``loss``, ``val_loss``, ``accuracy``,
        ``val_accuracy`` (the validation and accuracy curves are drawn when present).
    path : str or os.PathLike
        Output file; the format follows its suffix (PNG recommended).
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    records = history.epochs if hasattr(history, "epochs") else list(history)
    if not records:
        raise ValueError("the history is empty: nothing to plot")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    panels = [("loss", "loss")]
    if any(r.get("accuracy") is not None for r in records):
        panels.append(("accuracy", "accuracy"))
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for k, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "-s")):
            values = [r.get(prefix + key) for r in records]
            points = [(e, v) for e, v in zip(epochs, values) if v is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(os.fspath(path), dpi=100)
    return os.fspath(path)


def plot_diagnostics(record, path, title=None):
    """Per-layer curves of a ``fastnn.diagnostics.DiagnosticsRecord`` over training, to ``path``.

    Panels: speed of learning ‖δ^l‖ per Dense layer (log scale, as Nielsen's ch. 5
    figures); ‖ΔW‖/‖W‖ per Dense layer; activation mean ± standard deviation per
    activation layer (Glorot & Bengio's fig. 2); saturated, dead and negative-side
    fractions; and, with batch norm, |μ_B − μ|/σ. ``Monitor.plot`` and
    ``DiagnosticsRecord.plot`` call this.
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    layers = record.layers()
    kinds = {kind for _, _, kind in layers}
    panels = ["speed", "update", "activation", "fraction"]
    if "batchnorm" in kinds:
        panels.append("batchnorm")
    fig = Figure(figsize=(11, 3.2 * ((len(panels) + 1) // 2)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots((len(panels) + 1) // 2, 2, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, record, layers, panel)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)


#: Panels that plot one recorded column per layer of one kind: (kind, column, title, log scale).
_COLUMN_PANELS = {
    "speed": ("dense", "delta_norm", r"Speed of learning $\|\delta\|$ (bias gradient)", True),
    "update": ("dense", "update_ratio", r"Update size $\|\Delta W\| \,/\, \|W\|$", True),
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
                for column, style in (("saturated_frac", "-"), ("dead_frac", "--"),
                                      ("negative_frac", ":")):
                    steps, values = record.series(i, column)
                    if not np.all(np.isnan(values)):
                        ax.plot(steps, values, style, label=f"{name} {column.split('_')[0]}")
        ax.set_ylim(-0.02, 1.02)
        # Two lines: on one, the title ran past a half-width panel and was clipped.
        ax.set_title("Fraction of units: saturated (solid),\ndead (dashed), negative side (dotted)")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")

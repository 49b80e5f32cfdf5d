"""Learning curves as a PNG, drawn with matplotlib's object API (no pyplot, Agg canvas).

matplotlib is optional: ``pip install "fastnn[plot]"``. It is imported only when a plot
is drawn; without it, ``require_matplotlib()`` raises an ImportError saying how to get it.
"""
import os

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
    history : fastnn.training.History or list of dict
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

"""
Glorot's experiment in TensorBoard
==================================

:func:`fastnn.experiments.activations` with ``logdir=`` writes each setting (activation ×
initialization) as a TensorBoard run of its own, through the
:class:`fastnn.callbacks.TensorBoard` callback: the monitor's per-layer curves as scalars
and each hidden layer's activations, pre-activations, gradients and weights as histograms.
``tensorboard --logdir runs/glorot`` overlays the runs; the guide page "Watching training
in TensorBoard" shows its dashboards. Here the event files are read back with TensorBoard's
own reader and drawn with matplotlib, to show what the dashboards hold.

Needs ``pip install "fastnn[tensorboard]"``.
"""

import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
data = fastnn.datasets.load_dataset("mnist", data_dir=DATA / "mnist-small",
                                    download_missing=False, progress=False)
fastnn.set_num_threads(1)  # batches of 10: one thread is fastest

# %%
# Sigmoid units with both initializations, one epoch (800 updates); a monitor every 25
# updates, histograms every 250. From the command line:
# ``fastnn experiment activations --epochs 1 --arms sigmoid --logdir runs/glorot``.
logdir = Path(tempfile.mkdtemp(prefix="glorot-"))
arms = (("sigmoid", "glorot_standard"), ("sigmoid", "glorot_uniform"))
result = fastnn.experiments.activations(data, epochs=1, arms=arms, rng=0, quiet=True,
                                        logdir=logdir)
print(sorted(p.name for p in logdir.iterdir()))

# %%
# TensorBoard's reader sees the tags of each run.
runs = {}
for run in sorted(logdir.iterdir()):
    runs[run.name] = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0})
    runs[run.name].Reload()
tags = runs["sigmoid-glorot_standard"].Tags()
print("scalars:", ", ".join(t for t in tags["scalars"] if t.startswith(("act_mean", "delta"))))
print("histograms:", ", ".join(tags["histograms"]))

# %%
# The Scalars dashboard's ``act_mean`` cards, one line per run: the top layer (sigmoid4)
# falls from 0.5 toward 0, the lower ones stay near 0.5 (Glorot & Bengio, figure 2).
fig, axes = plt.subplots(1, 4, figsize=(13, 3), sharey=True, layout="constrained")
for k, ax in enumerate(axes, 1):
    for name, events in runs.items():
        scalars = events.Scalars(f"act_mean/sigmoid{k}")
        ax.plot([e.step for e in scalars], [e.value for e in scalars], label=name)
    ax.set_title(f"act_mean/sigmoid{k}", fontsize="small")
    ax.set_xlabel("step")
axes[0].legend(fontsize="x-small")

# %%
# The Histograms dashboard's ``activations/sigmoid4`` card of the standard initialization:
# the top layer's distribution at each histogram step, drifting toward 0.
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for event in runs["sigmoid-glorot_standard"].Histograms("activations/sigmoid4"):
    h = event.histogram_value
    right = np.array(h.bucket_limit)
    left = np.concatenate([[h.min], right[:-1]])
    ax.plot((left + right) / 2, np.array(h.bucket) / h.num, label=f"step {event.step}")
ax.set_xlabel("activation of sigmoid4")
ax.set_ylabel("fraction of the batch")
ax.legend(fontsize="x-small")
plt.show()

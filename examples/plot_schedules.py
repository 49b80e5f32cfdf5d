"""
Learning-rate schedules
=======================

A schedule of :mod:`fastnn.schedules` sets ``optimizer.lr`` between steps or epochs:
the training loop calls ``on_batch_end()`` after every step and ``on_epoch_end(metrics)``
after every epoch, and each schedule advances on the hook of its ``interval``. CS224n
lists step decay, exponential decay and the 1/t schedule; cosine annealing with a linear
warm-up is Loshchilov & Hutter's SGDR without restarts; reduce-on-plateau divides the rate
when a monitored metric stops improving.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt

import fastnn
from fastnn import schedules

# %%
# The formula schedules
# ---------------------
#
# Each drives an optimizer through 30 epochs of 100 steps; the learning rate is read after
# every step. A schedule needs only an optimizer (and an optimizer only parameters).
steps_per_epoch, epochs = 100, 30


def trace(make_schedule):
    net = fastnn.mlp([4, 4, 2], rng=0)
    optimizer = fastnn.SGD(net.parameters(), lr=0.1)
    schedule = make_schedule(optimizer)
    rates = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            rates.append(optimizer.lr)
            schedule.on_batch_end()
        schedule.on_epoch_end({})
    return rates


formulas = {
    "StepDecay(step_size=10, gamma=0.5)": lambda o: schedules.StepDecay(o, step_size=10, gamma=0.5),
    "ExponentialDecay(k=0.1)": lambda o: schedules.ExponentialDecay(o, k=0.1),
    "InverseTimeDecay(tau=500), per step": lambda o: schedules.InverseTimeDecay(o, tau=500),
    "CosineAnnealing(t_max=3000, warmup=300)": lambda o: schedules.CosineAnnealing(
        o, t_max=3000, warmup=300),
}
fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for label, make in formulas.items():
    ax.plot([s / steps_per_epoch for s in range(epochs * steps_per_epoch)], trace(make),
            label=label)
ax.set(xlabel="epoch", ylabel="learning rate", title="Formula schedules from lr = 0.1")
ax.grid(True, alpha=0.3)
ax.legend()
plt.show()

# %%
# Reduce on plateau, in a real run
# --------------------------------
#
# :class:`~fastnn.schedules.ReduceLROnPlateau` reads the validation loss that
# :func:`fastnn.fit` passes to ``on_epoch_end`` and halves the rate after an epoch that did
# not improve it. With SGD and momentum at a rate that is too high, the validation loss
# stops falling after two epochs; the first cut brings it down at once. The later cuts
# come after the network has fitted its training set (the training loss near 0), when
# there is little left to gain.
DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
X_train, y_train, X_test, y_test = fastnn.datasets.load_dataset(
    "mnist", data_dir=DATA / "mnist-small", download_missing=False, progress=False)
fastnn.set_num_threads(1)

net = fastnn.mlp([784, 100, 10], activation="relu", rng=0)
optimizer = fastnn.SGD(net.parameters(), lr=0.3, momentum=0.9)
plateau = schedules.ReduceLROnPlateau(optimizer, monitor="val_loss", factor=0.5, patience=1)
history = fastnn.fit(net, X_train, y_train, optimizer=optimizer, schedule=plateau, epochs=20,
                     batch_size=128, validation_split=0.2, rng=0)

epochs_run = [e["epoch"] for e in history.epochs]
fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, layout="constrained")
ax_loss.plot(epochs_run, [e["loss"] for e in history.epochs], "-o", markersize=3, label="training")
ax_loss.plot(epochs_run, [e["val_loss"] for e in history.epochs], "-s", markersize=3,
             label="validation")
ax_loss.set(ylabel="loss", yscale="log", title="ReduceLROnPlateau(factor=0.5, patience=1)")
ax_loss.legend()
ax_lr.step(epochs_run, [e["lr"] for e in history.epochs], where="mid")  # the rate of each epoch
ax_lr.set(xlabel="epoch", ylabel="learning rate", yscale="log")
for ax in (ax_loss, ax_lr):
    ax.grid(True, alpha=0.3)
plt.show()
for e in history.epochs:
    print(f"epoch {e['epoch']:2d}  val_loss {e['val_loss']:.4f}  lr {e['lr']:.4g}")

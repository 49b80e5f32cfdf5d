"""
Batch normalization against none
================================

Ioffe & Szegedy (2015) normalize each hidden layer's input over the mini-batch, then scale
and shift it by learned γ and β. The pre-activations then keep a fixed mean and variance
whatever the layers below do, which lets a deep network train at rates and with units
where it would otherwise stall.

Here the same deep sigmoid network, 784-[100]x4-10 with Glorot initialization, trains with
SGD and momentum, once plain and once with a :class:`~fastnn.layers.BatchNorm` layer
before every hidden activation (``mlp(..., batch_norm=True)``), and then the same pair with
ReLU units and He initialization. :func:`fastnn.fit` records the training loss and the test
accuracy after every epoch.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
X_train, y_train, X_test, y_test = fastnn.datasets.load_dataset(
    "mnist", data_dir=DATA / "mnist-small", download_missing=False, progress=False)
fastnn.set_num_threads(1)

# %%
# Four runs of 10 epochs, the test set as validation data (for the curves only: nothing is
# tuned on it).
sizes = [784, 100, 100, 100, 100, 10]
settings = {"sigmoid": "glorot_uniform", "relu": "he_normal"}
histories = {}
for activation, init in settings.items():
    for batch_norm in (False, True):
        net = fastnn.mlp(sizes, activation=activation, init=init, batch_norm=batch_norm, rng=0)
        optimizer = fastnn.SGD(net.parameters(), lr=0.01, momentum=0.9)
        history = fastnn.fit(net, X_train, y_train, optimizer=optimizer, epochs=10,
                             batch_size=64, validation_data=(X_test, y_test), rng=0)
        label = f"{activation}{', batch norm' if batch_norm else ''}"
        histories[label] = history
        last = history.epochs[-1]
        print(f"{label:<22} training loss {last['loss']:.3f}  test accuracy "
              f"{last['val_accuracy']:.1%}  ({sum(e['time'] for e in history.epochs):.1f} s)")

# %%
# Without batch normalization the deep sigmoid network stays at chance for most of the
# ten epochs; with it, the same network learns from the first epoch (more slowly than the
# ReLU networks). For ReLU with He initialization, which already keeps the signal's size
# from layer to layer, batch normalization changes much less.
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for label, history in histories.items():
    epochs = [e["epoch"] for e in history.epochs]
    style = "-" if "batch norm" in label else "--"
    ax_loss.plot(epochs, [e["loss"] for e in history.epochs], style, marker="o", markersize=3,
                 label=label)
    ax_acc.plot(epochs, [e["val_accuracy"] for e in history.epochs], style, marker="o",
                markersize=3, label=label)
ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
for ax in (ax_loss, ax_acc):
    ax.grid(True, alpha=0.3)
    ax.legend()
plt.show()

"""
Vanishing gradients (Nielsen, chapter 5)
========================================

Nielsen's *Neural Networks and Deep Learning*, chapter 5, asks why deep networks are hard
to train. He measures the *speed of learning* of each hidden layer, ‖δˡ‖, the norm of the
gradient of the cost with respect to the layer's biases, in sigmoid networks
784-30-…-30-10 trained by full-batch gradient descent on 1,000 digits, and finds that each
layer learns several times slower than the one above it.

:func:`fastnn.experiments.vanishing_gradients` repeats his experiment (his cost, his
initialization, η = 0.1, λ = 5) next to the remedies: Glorot initialization, ReLU or ELU
with He initialization, and batch normalization. It records ‖δˡ‖ with a
:class:`~fastnn.diagnostics.Monitor` before every update. Here it runs 150 epochs instead of
Nielsen's 500 so that the gallery builds quickly; ``fastnn experiment vanishing-gradients``
runs the full length.
"""

import os
from pathlib import Path

from matplotlib.figure import Figure

import fastnn

# mnist-small: 8,000 training and 2,000 test digits; $FASTNN_TEST_DATA, by default
# ../shared/data, from the repository root (where the tests find it too).
DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
data = fastnn.datasets.load_dataset("mnist", data_dir=DATA / "mnist-small",
                                    download_missing=False, progress=False)

# Widths of 30 units: small products, which run fastest on one thread.
fastnn.set_num_threads(1)

# %%
# Twenty runs: five settings, one to four hidden layers each.
result = fastnn.experiments.vanishing_gradients(data, epochs=150, rng=0, quiet=True)
print(result.table())

# %%
# The deepest networks side by side: Nielsen's sigmoid network, ReLU with He
# initialization, and the sigmoid network with batch normalization, each with four hidden
# layers. The sigmoid network's first layer learns 50 to 100 times slower than its fourth;
# ReLU keeps the four together, and batch normalization lets the lower layers catch up.
deepest = {run["arm"]: run for run in result.runs if len(run["sizes"]) == 6}
shown = ("sigmoid, Nielsen init", "ReLU, He init", "sigmoid, Nielsen init, batch norm")
fig = Figure(figsize=(10, 3.6), layout="constrained")
axes = fig.subplots(1, len(shown), sharey=True)
for ax, arm in zip(axes, shown):
    speeds = deepest[arm]["speeds"]
    for layer in range(len(speeds[0])):
        ax.plot([row[layer] for row in speeds], label=f"hidden layer {layer + 1}")
    ax.set(yscale="log", xlabel="epoch", title=arm)
    ax.grid(True, alpha=0.3)
axes[0].set_ylabel(r"speed of learning $\|\delta^l\|$")
axes[-1].legend(fontsize="small")
fig.suptitle(r"Speed of learning $\|\delta^l\|$ of each hidden layer, 784-30-30-30-30-10")
fig.savefig("vanishing_gradients_deepest.png", dpi=100)

# %%
# Every run: each panel is one network, ‖δˡ‖ of every hidden layer over the epochs (solid)
# and the relative size of each update, ‖ΔW‖/‖W‖ (dotted), on a log scale. In the sigmoid
# networks the lower layers' curves lie below the upper ones' by a factor that grows with
# depth, about 100x between the first and the fourth hidden layer, and the deep ones never
# leave chance on the test set. ReLU and ELU with He initialization keep the layers within
# a factor of about two of each other; the deepest ELU network diverges, a step too large
# for that draw of weights (the README reproduces it in PyTorch). With batch normalization
# the lower layers catch up within a few dozen epochs (its ‖δˡ‖ is the gradient of β,
# which the normalization keeps small).
result.plot("vanishing_gradients.png")

# %%
# The speeds at initialization, first hidden layer against the last, per network:
for run in result.runs:
    speeds = run["speeds"][0]
    print(f"{run['arm']:<36} {'-'.join(map(str, run['sizes'])):<22} "
          f"last/first = {speeds[-1] / speeds[0]:7.2f}  test accuracy {run['test_accuracy']:.1%}")

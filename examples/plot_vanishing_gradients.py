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
# Each panel is one network: ‖δˡ‖ of every hidden layer over the epochs (solid) and the
# relative size of each update, ‖ΔW‖/‖W‖ (dotted), on a log scale. In the sigmoid
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

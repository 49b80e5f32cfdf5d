"""
Activations and initialization (Glorot & Bengio 2010)
=====================================================

Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks" (2010), watched the activations of every hidden layer while a network with four
hidden layers trained. With sigmoid units the top hidden layer is driven to 0 early in
training, where sigmoid saturates, while the lower layers stay near 0.5; tanh and softsign
keep their means near 0; and their "normalized" initialization,
U[−√6/√(nᵢ + nᵢ₊₁), +√6/√(nᵢ + nᵢ₊₁)], keeps the activations of similar size from layer to
layer, where the "standard" U[−1/√n, 1/√n] lets them shrink.

:func:`fastnn.experiments.activations` trains 784-200-200-200-200-10 with plain SGD on
mini-batches of 10 for each activation and each initialization, and a
:class:`~fastnn.diagnostics.Monitor` records each hidden layer's statistics every 25
updates. Two epochs here (1,600 updates); the paper's figure runs for far longer:
``fastnn experiment activations --epochs 100 --arms sigmoid`` trains for 80,000 updates,
and :doc:`the diagnostics guide <../guide/diagnostics>` shows its figure ("Figure 2 to the
end").
"""

import os
from pathlib import Path

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
data = fastnn.datasets.load_dataset("mnist", data_dir=DATA / "mnist-small",
                                    download_missing=False, progress=False)
fastnn.set_num_threads(1)  # batches of 10: one thread is fastest

# %%
# Six runs: sigmoid, tanh and softsign, each with both initializations.
result = fastnn.experiments.activations(data, epochs=2, rng=0, quiet=True)
print(result.table())

# %%
# One row per activation, one column per initialization, one curve per hidden layer.
# The sigmoid row shows each layer's mean with a band of ± one standard deviation and its
# 98th and 2nd percentiles (the paper's figure 2): the top layer (layer 4) falls toward 0
# while the test accuracy stays at chance, with either initialization, for these 1,600 updates.
# The tanh and softsign rows show the standard deviation (solid) and the 98th percentile
# (dashed), as the paper's figures 3 and 4 do. The black curve is the test accuracy.
result.plot("activations.png")

# %%
# At initialization: Glorot & Bengio's figures 6 and 7
# ----------------------------------------------------
#
# Before any training, a tanh network 784-[1000]x5-10: the histograms of each hidden
# layer's activations (top) and of the back-propagated gradients ∂C/∂s (bottom). With the
# standard initialization each layer multiplies the activations' variance by about 1/3,
# so they collapse toward 0 going up, and the gradients do the same going down; the
# normalized initialization keeps both alike across the five layers.
histograms = fastnn.experiments.init_histograms(data, n_examples=500, rng=0, quiet=True)
print(histograms.table())
histograms.plot("init_histograms.png")

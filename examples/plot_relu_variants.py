"""
ReLU and its variants (Géron, chapter 11)
=========================================

Géron's *Hands-On Machine Learning*, chapter 11, ranks the hidden-layer activations:
"ELU > leaky ReLU (and variants) > ReLU > tanh > sigmoid". Does the ranking show on
digits? :func:`fastnn.experiments.relu_variants` trains the same deep network,
784-[100]x5-10, once per activation: ReLU, leaky ReLU with α = 0.01 and 0.2, RReLU, PReLU,
ELU, SELU (with LeCun initialization), tanh and sigmoid (He initialization for the others),
every one with the same updates (SGD with momentum 0.9, batches of 32).

This gallery runs a reduced version: 4,000 training images, 5 epochs and 2 seeds.
The README's table comes from the full setting (``fastnn experiment relu-variants``:
20 epochs, 3 seeds), on both mnist-small and Fashion-MNIST.
"""

import os
from pathlib import Path

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
data = fastnn.datasets.load_dataset("mnist", data_dir=DATA / "mnist-small",
                                    download_missing=False, progress=False)
fastnn.set_num_threads(1)  # widths of 100: one thread is fastest

# %%
result = fastnn.experiments.relu_variants(data, n_train=4000, epochs=5, n_seeds=2, rng=0,
                                          quiet=True)
print(result.table())

# %%
# Test accuracy per activation (bars: the mean over seeds, dots: each seed) and training
# accuracy (hollow markers), with the fastest epoch's time on the right. The ReLU family,
# ELU, SELU and tanh end within about two points of each other, no further apart than two
# seeds of one activation, so at this size their order is mostly noise. Five layers of
# sigmoid units have not left chance in these 625 updates (in the full setting they reach
# about 73%): they learn far more slowly, the book's point about sigmoid.
result.plot("relu_variants.png")

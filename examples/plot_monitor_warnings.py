"""
The monitor's warnings on a badly initialized network
=====================================================

A deep network that trains badly usually says why, if one looks at its layers: gradients
that shrink from layer to layer, units stuck at an asymptote of their activation, ReLU
units that never fire. A :class:`fastnn.Monitor` records per-layer statistics every
``interval`` steps while the network trains, and
:meth:`~fastnn.diagnostics.Monitor.warnings` reads them with the rules of
:mod:`fastnn.diagnostic_rules` and says in plain words what is wrong and which remedy the
texts give.

The patient: four hidden layers of 30 sigmoid units with Nielsen's "large" initialization,
weights N(0, 1) (his chapter 3 shows why that saturates the units), trained with plain SGD,
as ``fastnn diagnose --activation sigmoid --init nielsen_large --hidden 30,30,30,30``.
"""

import os
from pathlib import Path

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
X_train, y_train, X_test, y_test = fastnn.datasets.load_dataset(
    "mnist", data_dir=DATA / "mnist-small", download_missing=False, progress=False)
fastnn.set_num_threads(1)

# %%
# Two epochs, the monitor recording every 10 steps: ``fit`` calls its hooks around each
# update (``diagnostics=``).
sizes = [784, 30, 30, 30, 30, 10]
net = fastnn.mlp(sizes, activation="sigmoid", init="nielsen_large", rng=0)
monitor = fastnn.Monitor(net, interval=10)
fastnn.fit(net, X_train, y_train, optimizer=fastnn.SGD(net.parameters(), lr=0.1), epochs=2,
           batch_size=64, diagnostics=monitor, rng=0)
print(f"test accuracy {net.evaluate(X_test, y_test)['accuracy']:.1%}\n")
print(monitor.table())

# %%
# What the monitor concludes, with the remedies:
print("\n\n".join(monitor.warnings()))

# %%
# The record, drawn: the speed of learning ‖δ‖ of each Dense layer (log scale), the
# relative update ‖ΔW‖/‖W‖, each activation layer's mean ± standard deviation, and the
# fraction of saturated units. The first layer learns about ten times slower than the
# last hidden one, and a quarter to more than half of each layer's sigmoid outputs sit
# within 0.01 of 0 or 1, where the derivative is nearly zero.
monitor.plot("monitor_bad.png", title="sigmoid, N(0, 1) weights: what the monitor records")

# %%
# The remedies applied
# --------------------
#
# The same depth with ReLU units and He initialization, and batch normalization before
# each activation, trained the same way: the test accuracy is printed first, then the
# monitor's verdict.
net = fastnn.mlp(sizes, activation="relu", init="he_normal", batch_norm=True, rng=0)
monitor = fastnn.Monitor(net, interval=10)
fastnn.fit(net, X_train, y_train, optimizer=fastnn.SGD(net.parameters(), lr=0.1), epochs=2,
           batch_size=64, diagnostics=monitor, rng=0)
print(f"test accuracy {net.evaluate(X_test, y_test)['accuracy']:.1%}\n")
print("\n\n".join(monitor.warnings()) or "no warnings")
monitor.plot("monitor_good.png", title="ReLU, He init, batch norm: what the monitor records")

"""
The optimizers on one problem
=============================

fastnn's optimizers make one compiled, in-place pass over each parameter per step. Here
each trains the same network, 784-100-100-10 with ReLU units and He initialization, from
the same initial weights on the same sequence of mini-batches, with the learning rate each
is commonly used with: plain SGD, SGD with momentum (Polyak), Nesterov's momentum,
AdaGrad, RMSProp, Adam and AdamW.

The loop is written out, one :meth:`~fastnn.network.Sequential.train_step` per mini-batch,
to record the loss of every step rather than every epoch.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastnn

DATA = Path(os.environ.get("FASTNN_TEST_DATA", "../shared/data"))
X_train, y_train, X_test, y_test = fastnn.datasets.load_dataset(
    "mnist", data_dir=DATA / "mnist-small", download_missing=False, progress=False)
fastnn.set_num_threads(1)

# %%
# Three epochs of batches of 64 (375 steps), the same batches for every optimizer.
optimizers = {
    "SGD, lr 0.1": lambda p: fastnn.SGD(p, lr=0.1),
    "Momentum 0.9, lr 0.01": lambda p: fastnn.Momentum(p, lr=0.01, momentum=0.9),
    "Nesterov 0.9, lr 0.01": lambda p: fastnn.Nesterov(p, lr=0.01, momentum=0.9),
    "AdaGrad, lr 0.01": lambda p: fastnn.AdaGrad(p, lr=0.01),
    "RMSProp, lr 0.001": lambda p: fastnn.RMSProp(p, lr=0.001),
    "Adam, lr 0.001": lambda p: fastnn.Adam(p, lr=0.001),
    "AdamW, lr 0.001": lambda p: fastnn.AdamW(p, lr=0.001, weight_decay=0.01),
}
batch_size, epochs = 64, 3
order = np.random.default_rng(0)
batches = [perm[i:i + batch_size] for perm in (order.permutation(len(X_train)) for _ in range(epochs))
           for i in range(0, len(X_train), batch_size)]

losses = {}
for name, make in optimizers.items():
    net = fastnn.mlp([784, 100, 100, 10], activation="relu", rng=0)   # He init for ReLU
    optimizer = make(net.parameters())
    losses[name] = [net.train_step(X_train[b], y_train[b], optimizer) for b in batches]
    print(f"{name:<22} last-epoch loss {np.mean(losses[name][-len(batches) // epochs:]):.3f}  "
          f"test accuracy {net.evaluate(X_test, y_test)['accuracy']:.1%}")

# %%
# The loss of each step, smoothed over 20 steps. Plain SGD at 0.1 and the two momentum
# methods at 0.01 (with momentum 0.9, an effective step of 0.1) follow nearly the same
# curve. The adaptive methods, which scale each weight's step by the size of its own past
# gradients, reach a lower loss in the same steps at these rates, RMSProp and AdaGrad the
# lowest. Adam and AdamW draw one curve: AdamW differs only by its decoupled weight decay,
# a shrinking of the weights by lr × 0.01 per step, too little to show in three epochs.
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
window = np.ones(20) / 20
for name, curve in losses.items():
    ax.plot(np.convolve(curve, window, mode="valid"), label=name)
ax.set(xlabel="step", ylabel="training loss (running mean of 20 steps)", yscale="log",
       title="784-100-100-10 ReLU on mnist-small, the same batches for every optimizer")
ax.grid(True, alpha=0.3)
ax.legend()
plt.show()

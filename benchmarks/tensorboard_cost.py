"""What the TensorBoard callback costs a Fashion-MNIST epoch of ``fastnn train``'s network.

    python benchmarks/tensorboard_cost.py [--rounds 3] [--threads 2] [--images 54000]
                                          [--histogram-freq 50]

The network and data are those of a ``fastnn train --dataset fashion-mnist --logdir DIR``
epoch: 784-512-256-10 ReLU, batch norm, dropout 0.3, Adam, batch 128, 54,000 training
images (the 8,000 mnist-small training images tiled to Fashion-MNIST's size: the cost does
not depend on the pictures), with a ``Monitor`` at its default interval 10. Three arms, each
epoch in a fresh process, rounds interleaved (a busy spell of the machine costs every arm
alike):

- ``plain``: no monitor, no callback (``fastnn train`` without ``--logdir``);
- ``monitor``: the monitor alone (``fastnn diagnose``);
- ``tensorboard``: the monitor and the TensorBoard callback, histograms every
  ``--histogram-freq``-th recorded step (default 50, the callback's: every 500 steps).

Prints each arm's median epoch time and process CPU time (all threads: the callback's
worker included), the ratios ``tensorboard``/``monitor`` (the goal: at most 1.03) and
``monitor``/``plain``, and the time the callback's hooks take on the training thread as a
share of the epoch's, in wall time and in the thread's CPU time, which a loaded machine
disturbs far less. On a busy machine, time fewer images with a proportionally smaller
``--histogram-freq`` (``--images 12800 --histogram-freq 10``: one histogram step per 100
steps) and scale. Reads mnist-small from ``$FASTNN_TEST_DATA/mnist-small``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("plain", "monitor", "tensorboard")


def one_epoch(arm, threads, n_images, histogram_freq):
    """Train one epoch in this process; returns {"epoch": s, "hooks": s on the training thread}."""
    import numpy as np

    import fastnn
    from fastnn.datasets import flatten_and_scale, load_mnist
    from fastnn.tensorboard import TensorBoard, require_tensorboard

    fastnn.set_num_threads(threads)
    data_dir = Path(os.environ.get("FASTNN_TEST_DATA", ROOT.parent / "shared" / "data"))
    images, y = load_mnist(data_dir / "mnist-small")
    reps = -(-n_images // len(y))
    X = np.tile(flatten_and_scale(images), (reps, 1))[:n_images]
    y = np.tile(y, reps)[:n_images]
    net = fastnn.mlp([784, 512, 256, 10], activation="relu", init="he_normal", batch_norm=True,
                     dropout=0.3, rng=0)
    monitor = None if arm == "plain" else fastnn.Monitor(net)
    callbacks, hooks = [], [0.0, 0.0]  # wall and training-thread CPU seconds in the hooks
    if arm == "tensorboard":
        class Timed(TensorBoard):
            def on_batch_end(self, trainer, step, loss):
                start, cpu = time.perf_counter(), time.thread_time()
                super().on_batch_end(trainer, step, loss)
                hooks[0] += time.perf_counter() - start
                hooks[1] += time.thread_time() - cpu

            def on_epoch_end(self, trainer, epoch, metrics):
                start, cpu = time.perf_counter(), time.thread_time()
                super().on_epoch_end(trainer, epoch, metrics)
                hooks[0] += time.perf_counter() - start
                hooks[1] += time.thread_time() - cpu

        callbacks.append(Timed(tempfile.mkdtemp(prefix="fastnn-tb-"), diagnostics=monitor,
                               histogram_freq=histogram_freq))
    require_tensorboard()  # imported once per process: not a cost of the epoch
    cpu, thread_cpu = time.process_time(), time.thread_time()
    history = fastnn.fit(net, X, y, optimizer=fastnn.Adam(net.parameters(), lr=2e-3), epochs=1,
                         batch_size=128, diagnostics=monitor, callbacks=callbacks, verbose=0,
                         rng=0)
    return {"epoch": history.epochs[0]["time"], "cpu": time.process_time() - cpu,
            "thread_cpu": time.thread_time() - thread_cpu, "hooks": hooks[0],
            "hooks_cpu": hooks[1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=54000,
                        help="images per epoch (default: 54000)")
    parser.add_argument("--histogram-freq", type=int, default=50)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # a worker process
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(one_epoch(args.arm, args.threads, args.images, args.histogram_freq)))
        return
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    results = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS:
            command = [sys.executable, __file__, "--arm", arm, "--threads", str(args.threads),
                       "--images", str(args.images), "--histogram-freq", str(args.histogram_freq)]
            out = subprocess.run(command, env=env, capture_output=True, text=True,
                                 check=True).stdout
            results[arm].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {r + 1} {arm:<12} epoch {results[arm][-1]['epoch']:.2f} s", flush=True)
    def median(arm, key):
        return statistics.median(x[key] for x in results[arm])

    for arm in ARMS:
        print(f"{arm:<12} median epoch {median(arm, 'epoch'):.2f} s, process CPU "
              f"{median(arm, 'cpu'):.2f} s")
    for key, what in (("epoch", "epoch time"), ("cpu", "process CPU (all threads)")):
        print(f"{what}: tensorboard / monitor {median('tensorboard', key) / median('monitor', key):.3f}"
              f" (goal <= 1.03), monitor / plain {median('monitor', key) / median('plain', key):.3f}")
    tb = results["tensorboard"]
    for key, total, what in (("hooks", "epoch", "wall time"), ("hooks_cpu", "thread_cpu", "CPU time")):
        shares = [x[key] / x[total] for x in tb]
        print(f"callback on the training thread, {what}: median {100 * statistics.median(shares):.2f}% "
              f"of the epoch's (rounds: {', '.join(f'{100 * s:.2f}%' for s in shares)})")


if __name__ == "__main__":
    main()

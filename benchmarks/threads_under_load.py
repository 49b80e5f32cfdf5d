"""``fastnn train`` with the default thread count, idle and with one core busy.

    python benchmarks/threads_under_load.py [--rounds 3] [--epochs 3] [--data-dir DIR]

Runs ``fastnn train --data-dir DIR --epochs N`` three ways, in turn within each round
(interleaved, so a busy spell of the machine costs each alike): as a new user types it (the
default count), with ``--threads 1``, and with ``--threads`` set to every core (the count
fixed, as the default was before ``fastnn._config.StepThreads``). It does so on an idle
machine and again while one process spins on one core. The figure is each run's seconds
per epoch after the first (printed by the command), the median over rounds. The goals
(issue 26): with a core busy, the default within 1.2x of one thread; idle, the default as
fast as every core fixed. Set ``FASTNN_MICRO_KERNEL`` in the environment to choose the
training kernel. Not a timed test: report the machine with the figures.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH_TIME = re.compile(r"([0-9.]+)s/epoch")


def epoch_seconds(command):
    """Median seconds per epoch after the first, as the command printed them."""
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    times = [float(t) for t in EPOCH_TIME.findall(out)]
    if len(times) < 2:
        raise RuntimeError(f"expected two or more epoch lines from {command}, got:\n{out}")
    return statistics.median(times[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    default_data = Path(os.environ.get("FASTNN_TEST_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data-dir", default=str(default_data / "mnist-small"))
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    train = [sys.executable, "-m", "fastnn", "train", "--data-dir", args.data_dir,
             "--epochs", str(args.epochs)]
    ways = {"default": train, "--threads 1": [*train, "--threads", "1"],
            f"--threads {cores}": [*train, "--threads", str(cores)]}
    results = {}
    for load in ("idle", "one core busy"):
        spinner = None
        if load != "idle":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            times = {way: [] for way in ways}
            for _ in range(args.rounds):
                for way, command in ways.items():
                    times[way].append(epoch_seconds(command))
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        results[load] = {way: statistics.median(t) for way, t in times.items()}
        spread = {way: f"{min(t):.2f}-{max(t):.2f}" for way, t in times.items()}
        print(f"{load}: " + ", ".join(f"{way} {results[load][way]:.2f} s/epoch ({spread[way]})"
                                      for way in ways))
    busy, idle = results["one core busy"], results["idle"]
    print(f"one core busy: default / --threads 1 = {busy['default'] / busy['--threads 1']:.2f}"
          " (goal <= 1.2)")
    print(f"idle: default / --threads {cores} = {idle['default'] / idle[f'--threads {cores}']:.2f}"
          " (goal ~1)")
    print(f"machine: {os.cpu_count()} CPUs, {cores} usable; FASTNN_MICRO_KERNEL="
          f"{os.environ.get('FASTNN_MICRO_KERNEL', '(unset)')}")


if __name__ == "__main__":
    main()

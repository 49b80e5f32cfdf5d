"""Start-up time of ``import fastnn`` and ``fastnn --help`` against ``import numpy``.

    python benchmarks/import_time.py [--rounds 20]

Each round starts one fresh interpreter per command, in turn (interleaved, so a busy spell
of the machine costs every command alike), and times the whole process from the parent:
interpreter start-up included, as a user waits for it. Prints the median and spread of
each command and the median ratios to ``import numpy``. The goals (issue 28): ``import
fastnn`` at most 2x ``import numpy``, ``fastnn --help`` at most 3x. Run it from the
repository root, on the build in place (``pip install -e .``); not a timed test: the ratios
depend on the machine and on its load, so report the machine with the figures.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import numpy": [sys.executable, "-c", "import numpy"],
    "import fastnn": [sys.executable, "-c", "import fastnn"],
    "fastnn --help": [sys.executable, "-m", "fastnn", "--help"],
}
GOALS = {"import fastnn": 2.0, "fastnn --help": 3.0}


def cpu_model():
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_once(argv):
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="fresh processes per command")
    args = parser.parse_args(argv)

    for command in COMMANDS.values():  # warm the file cache: the first start reads from disk
        run_once(command)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(run_once(command))

    print(f"{platform.node()}: {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.rounds} rounds")
    numpy = statistics.median(times["import numpy"])
    print(f"{'command':<16} {'median ms':>9} {'min ms':>7} {'max ms':>7} {'x numpy':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        goal = f"  (goal <= {GOALS[name]:.0f}x)" if name in GOALS else ""
        print(f"{name:<16} {median * 1e3:9.1f} {min(values) * 1e3:7.1f} {max(values) * 1e3:7.1f} "
              f"{median / numpy:8.2f}{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

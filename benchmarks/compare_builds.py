"""Two builds of fastnn against each other, rounds interleaved: is a change any slower?

    python benchmarks/compare_builds.py BEFORE_PYTHON:BEFORE_CHECKOUT AFTER_PYTHON:AFTER_CHECKOUT
        [--rounds 5] [-- report.py arguments]

Each build is a Python (typically a venv's, with that build installed or built in place)
and the checkout whose ``benchmarks/report.py`` it runs. Round r runs the before build's
report once, then the after build's, then round r + 1 (so a slow spell of a shared machine
hits both builds alike); each report runs fastnn alone, one round, in worker processes of
its own. A row's figure is the median over rounds (and, on a noisy machine, the best
round); the table gives both builds and after/before (< 1: the after build is faster).
The default rows are the ones a kernel change must not slow down: the SGD step at batch
32, 128 and 512, the Adam and batch-norm steps, and ``predict`` at batch 1 and 32.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

DEFAULT_REPORT = ["--only", "train,inference", "--libs", "fastnn",
                  "--train-rows", "sgd:32,sgd:128,sgd:512,adam:128,bn:128", "--batches", "1,32"]


def _build(text):
    python, _, checkout = text.partition(":")
    if not checkout:
        raise argparse.ArgumentTypeError(f"expected PYTHON:CHECKOUT, got {text!r}")
    return python, os.path.abspath(checkout)


def _row(entry):
    case = entry["case"]
    if case["kind"] == "step":
        return f"{case['row']} step, batch {case['batch']}"
    return f"{case['kind']} batch {case.get('batch', '?')}"


def run_report(python, checkout, report_args, path):
    """Run ``checkout``'s report.py with ``python``; {row: seconds} from its JSON."""
    subprocess.run([python, os.path.join(checkout, "benchmarks", "report.py"), *report_args,
                    "--rounds", "1", "--json", path], cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL)
    with open(path) as f:
        data = json.load(f)
    return ({_row(m): m["min"] for m in data["measurements"]
             if m["case"]["kind"] in ("step", "predict") and m.get("min") is not None},
            data["machine"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=_build)
    parser.add_argument("after", type=_build)
    parser.add_argument("--rounds", type=int, default=5)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    report_args = argv[split + 1:] or DEFAULT_REPORT
    times = {"before": {}, "after": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in ("before", "after"):
                python, checkout = getattr(args, name)
                found, machine = run_report(python, checkout, report_args,
                                            os.path.join(tmp, f"{name}-{r}.json"))
                for row, seconds in found.items():
                    times[name].setdefault(row, []).append(seconds)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['date']}; "
          f"load at the end {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| row | before µs | after µs | after / before | best of rounds: before, after, ratio |")
    print("| --- | --- | --- | --- | --- |")
    for row in times["before"]:
        before, after = times["before"][row], times["after"].get(row, [float("nan")])
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {row} | {b * 1e6:.1f} | {a * 1e6:.1f} | {a / b:.3f} | "
              f"{min(before) * 1e6:.1f}, {min(after) * 1e6:.1f}, {min(after) / min(before):.3f} |")


if __name__ == "__main__":
    main()

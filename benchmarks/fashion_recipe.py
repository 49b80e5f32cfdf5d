"""The `fastnn train` recipe on Fashion-MNIST: candidates by validation accuracy, then the
chosen one against the former defaults on the test set, run back to back.

    python benchmarks/fashion_recipe.py search [NAME ...]   # best validation accuracy per run
    python benchmarks/fashion_recipe.py final [NAME ...]    # test accuracy and training time

Choose on validation only: `search` never prints test accuracy. `final` runs the former
defaults and the current defaults (or the NAMEs given, the first the baseline of the time
ratios) for seeds 0, 1, 2 alternately, each with --threads 1, so their times compare on a
shared machine. Not run by CI (about 10 minutes on 2 cores).
Set SEEDS=0,1 or THREADS=2 to change those; FASTNN_SRC to run another checkout (built in place).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

NONE = ["--augment", "none"]
#: The defaults before issue 18: 784-256-128-10, dropout 0.2, Adam 1e-3 cosine, batch 64.
FORMER = ["--hidden", "256,128", "--dropout", "0.2", "--no-batch-norm", "--batch-size", "64",
          "--lr", "1e-3", *NONE]
#: Issue 18's first choice (2026-11-29): the former defaults with batch norm, batch 128, lr 2e-3.
BN = ["--hidden", "256,128", "--dropout", "0.2", "--batch-norm", "--batch-size", "128",
      "--lr", "2e-3", *NONE]
#: Each candidate in full (a later flag overrides an earlier one), so that a name keeps its
#: meaning when the defaults change; "defaults" is whatever `fastnn train` does today.
CANDIDATES = {
    "former defaults": FORMER,
    "hflip": [*FORMER, "--augment", "hflip"],
    "bn": [*FORMER, "--batch-norm"],
    "bn hflip": [*FORMER, "--batch-norm", "--augment", "hflip"],
    "bn b128 lr2e-3": BN,
    "bn b128 lr2e-3 d0.1": [*BN, "--dropout", "0.1"],
    "bn b128 lr2e-3 p10": [*BN, "--patience", "10"],
    "bn b128 lr2e-3 e40": [*BN, "--epochs", "40"],
    "384,192 bn b128 lr2e-3": [*BN, "--hidden", "384,192"],
    "bn b128 lr2e-3, dropout 0.3": [*BN, "--dropout", "0.3"],
    "bn b128 lr2e-3, adamw wd 0.05": [*BN, "--optimizer", "adamw", "--weight-decay", "0.05"],
    "shift 1": [*BN, "--augment", "shift", "--max-shift", "1"],
    "shift 2": [*BN, "--augment", "shift", "--max-shift", "2"],
    "hflip+shift 1": [*BN, "--augment", "hflip+shift", "--max-shift", "1"],
    "shift 1, 50 epochs": [*BN, "--augment", "shift", "--max-shift", "1", "--epochs", "50"],
    "shift 1, 50 epochs, patience 10": [*BN, "--augment", "shift", "--max-shift", "1",
                                        "--epochs", "50", "--patience", "10"],
    "shift 1, 40 epochs, patience 10": [*BN, "--augment", "shift", "--max-shift", "1",
                                        "--epochs", "40", "--patience", "10"],
    "shift 1, 60 epochs, patience 10": [*BN, "--augment", "shift", "--max-shift", "1",
                                        "--epochs", "60", "--patience", "10"],
    "512,256": [*BN, "--hidden", "512,256"],
    "512,256, dropout 0.3": [*BN, "--hidden", "512,256", "--dropout", "0.3"],
    "512,256, batch 256, lr 3e-3": [*BN, "--hidden", "512,256", "--batch-size", "256",
                                    "--lr", "3e-3"],
    "512,256 shift 1": [*BN, "--hidden", "512,256", "--augment", "shift", "--max-shift", "1",
                        "--patience", "10"],
    "defaults": [],
}


def train(flags, seed, threads):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        env = dict(os.environ)
        if os.environ.get("FASTNN_SRC"):
            env["PYTHONPATH"] = os.environ["FASTNN_SRC"]
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fastnn", "train", "--dataset", "fashion-mnist",
                              "--seed", str(seed), "--threads", str(threads), "--log", log, "-q",
                              *flags], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if out.returncode:
            raise SystemExit(out.stderr)
        rows = [json.loads(line) for line in open(log)]
    test = float(re.search(r"test accuracy (\d+\.\d+)%", out.stdout).group(1))
    return rows, test, wall


def main(argv):
    mode, names = (argv[0] if argv else "search"), argv[1:]
    seeds = [int(s) for s in os.environ.get("SEEDS", "0,1,2").split(",")]
    threads = int(os.environ.get("THREADS", "1"))
    if mode == "search":
        for name in names or CANDIDATES:
            for seed in seeds:
                rows, _, wall = train(CANDIDATES[name], seed, threads)
                best = max(rows, key=lambda r: r["val_accuracy"])
                print(f"{name:22s} seed {seed}: best val {100 * best['val_accuracy']:.2f}% "
                      f"(epoch {best['epoch']} of {len(rows)}), wall {wall:.1f}s", flush=True)
    elif mode == "final":
        # The first name is the baseline of the time ratios.
        results = {name: [] for name in names or ["former defaults", "defaults"]}
        for seed in seeds:
            for name in results:
                rows, test, wall = train(CANDIDATES[name], seed, threads)
                train_time = sum(r["time"] for r in rows)
                results[name].append((test, train_time))
                print(f"{name:16s} seed {seed}: test {test:.2f}%  {len(rows)} epochs, training "
                      f"{train_time:.1f}s, wall {wall:.1f}s", flush=True)
        base = sum(s for _, s in next(iter(results.values())))
        for name, runs in results.items():
            acc = sum(t for t, _ in runs) / len(runs)
            sec = sum(s for _, s in runs)
            print(f"{name:16s} mean: test {acc:.2f}%  training {sec / len(runs):.1f}s "
                  f"({sec / base:.2f}x the first)", flush=True)
    else:
        raise SystemExit(f"usage: {sys.argv[0]} search [NAME ...] | final [NAME ...]")


if __name__ == "__main__":
    main(sys.argv[1:])

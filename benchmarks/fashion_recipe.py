"""The `fastnn train` recipe on Fashion-MNIST: candidates by validation accuracy, then the
chosen one against the former defaults on the test set, run back to back.

    python benchmarks/fashion_recipe.py search [NAME ...]   # best validation accuracy per run
    python benchmarks/fashion_recipe.py final               # test accuracy and training time

Choose on validation only: `search` never prints test accuracy. `final` runs the former
defaults and the current defaults for seeds 0, 1, 2 alternately, each with --threads 1, so
their times compare on a shared machine. Not run by CI (about 10 minutes on 2 cores).
Set SEEDS=0,1 or THREADS=2 to change those; FASTNN_SRC to run another checkout's src/.
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
FORMER = ["--no-batch-norm", "--batch-size", "64", "--lr", "1e-3", *NONE]
CANDIDATES = {
    "former defaults": FORMER,
    "hflip": [*FORMER[:-2], "--augment", "hflip"],
    "bn": ["--batch-norm", "--batch-size", "64", "--lr", "1e-3", *NONE],
    "bn hflip": ["--batch-norm", "--batch-size", "64", "--lr", "1e-3", "--augment", "hflip"],
    "bn b128 lr2e-3": ["--batch-norm", "--batch-size", "128", "--lr", "2e-3", *NONE],
    "bn b128 lr2e-3 d0.1": ["--batch-norm", "--batch-size", "128", "--lr", "2e-3",
                            "--dropout", "0.1", *NONE],
    "bn b128 lr2e-3 p10": ["--batch-norm", "--batch-size", "128", "--lr", "2e-3",
                           "--patience", "10", *NONE],
    "bn b128 lr2e-3 e40": ["--batch-norm", "--batch-size", "128", "--lr", "2e-3",
                           "--epochs", "40", *NONE],
    "384,192 bn b128 lr2e-3": ["--hidden", "384,192", "--batch-norm", "--batch-size", "128",
                               "--lr", "2e-3", *NONE],
    "new defaults, dropout 0.3": ["--dropout", "0.3", *NONE],
    "new defaults, adamw wd 0.05": ["--optimizer", "adamw", "--lr", "2e-3", "--weight-decay",
                                    "0.05", *NONE],
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
        results = {"former defaults": [], "defaults": []}
        for seed in seeds:
            for name in results:
                rows, test, wall = train(CANDIDATES[name], seed, threads)
                train_time = sum(r["time"] for r in rows)
                results[name].append((test, train_time))
                print(f"{name:16s} seed {seed}: test {test:.2f}%  {len(rows)} epochs, training "
                      f"{train_time:.1f}s, wall {wall:.1f}s", flush=True)
        for name, runs in results.items():
            acc = sum(t for t, _ in runs) / len(runs)
            sec = sum(s for _, s in runs) / len(runs)
            print(f"{name:16s} mean: test {acc:.2f}%  training {sec:.1f}s", flush=True)
        ratio = (sum(s for _, s in results["defaults"]) /
                 sum(s for _, s in results["former defaults"]))
        print(f"training time ratio defaults / former defaults: {ratio:.2f}x")
    else:
        raise SystemExit(f"usage: {sys.argv[0]} search [NAME ...] | final")


if __name__ == "__main__":
    main(sys.argv[1:])

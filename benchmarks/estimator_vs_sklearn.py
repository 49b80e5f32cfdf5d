"""fastnn.MLPClassifier vs sklearn.neural_network.MLPClassifier: fit time and test accuracy.

Same hyper-parameters for both (scikit-learn's names): hidden_layer_sizes=(256, 128),
solver="adam", batch_size=128, learning_rate_init=1e-3, alpha=1e-4, max_iter=EPOCHS with
tol=0 and n_iter_no_change=EPOCHS so neither stops early, random_state=0 (or 0 .. seeds - 1),
input of ``--dtype`` (float32 or float64).
Compute dtype: the input's for both (scikit-learn's rule, and fastnn's default dtype=None).
Each fit runs in its own fresh process (``--child``), the two libraries' fits alternating
(rounds interleaved); the best of ``--repeats`` fits is reported (wall time; its CPU time
beside it); BLAS and OpenMP threads are each library's default, or ``--threads N``.

Usage::

    python benchmarks/estimator_vs_sklearn.py                      # Fashion-MNIST 20k + digits
    python benchmarks/estimator_vs_sklearn.py --fashion-train 60000 # the full training set
    python benchmarks/estimator_vs_sklearn.py --json results.json
    python benchmarks/estimator_vs_sklearn.py --dtype float64     # float64 on both sides

Fashion-MNIST is read from ``--fashion-dir`` (IDX files, default
/usr/share/datasets/fashion-mnist) with ``fastnn.datasets.load_mnist``; digits is
scikit-learn's ``load_digits`` (1797 8x8 images; a stratified 75/25 split).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

HIDDEN = (256, 128)
BATCH = 128
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load(dataset, n_train, fashion_dir, dtype):
    X, y, X_test, y_test = _load(dataset, n_train, fashion_dir)
    return X.astype(dtype), y, X_test.astype(dtype), y_test


def _load(dataset, n_train, fashion_dir):
    if dataset == "fashion":
        from fastnn.datasets import load_mnist

        X, y = load_mnist(fashion_dir, "train")
        X_test, y_test = load_mnist(fashion_dir, "test")
        X = X[:n_train].reshape(min(n_train, len(X)), -1).astype(np.float32) / 255
        X_test = X_test.reshape(len(X_test), -1).astype(np.float32) / 255
        return X, y[:n_train], X_test, y_test
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X, X_test, y, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    return X, y, X_test, y_test


def child(library, dataset, n_train, epochs, fashion_dir, seed, dtype):
    """One fit in this process; prints a JSON line."""
    if library == "fastnn":
        from fastnn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, y, X_test, y_test = load(dataset, n_train, fashion_dir, dtype)
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, solver="adam", batch_size=BATCH,
                        learning_rate_init=1e-3, alpha=1e-4, max_iter=epochs, tol=0.0,
                        n_iter_no_change=epochs, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, as intended
        start, cpu_start = time.perf_counter(), time.process_time()
        clf.fit(X, y)
        fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    accuracy = float(np.mean(clf.predict(X_test) == y_test))
    dtype = str(clf.coefs_[0].dtype)
    print(json.dumps({"library": library, "dataset": dataset, "n_train": len(X),
                      "epochs": int(clf.n_iter_), "fit_s": fit_s, "cpu_s": cpu_s, "accuracy": accuracy,
                      "compute_dtype": dtype}))


def run(library, dataset, n_train, epochs, fashion_dir, threads=None, seed=0, dtype="float32"):
    env = os.environ.copy()
    if threads:
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--child", library, dataset, str(n_train),
                          str(epochs), "--fashion-dir", fashion_dir, "--seeds", str(seed),
                          "--dtype", dtype],
                         capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("LIB", "DATASET", "N", "EPOCHS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--fashion-dir", default=FASHION_DIR)
    parser.add_argument("--fashion-train", type=int, default=20000)
    parser.add_argument("--fashion-epochs", type=int, default=10)
    parser.add_argument("--digits-epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1, help="random_state 0 .. seeds - 1: fit "
                        "time is the median over seeds of the best of --repeats, accuracy the "
                        "mean over seeds (for a child: its random_state)")
    parser.add_argument("--threads", type=int, help="OPENBLAS_NUM_THREADS and OMP_NUM_THREADS "
                        "of the fits (default: each library's own default)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the input's dtype, which both libraries compute in")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.child:
        library, dataset, n, epochs = args.child
        child(library, dataset, int(n), int(epochs), args.fashion_dir, args.seeds, args.dtype)
        return 0
    cases = [("fashion", args.fashion_train, args.fashion_epochs), ("digits", 0, args.digits_epochs)]
    results = []
    print(f"| dataset | n_train | epochs | library | compute dtype | fit (s, best of {args.repeats}"
          f"{', median of seeds' if args.seeds > 1 else ''}) | CPU (s) | test accuracy"
          f"{' (mean of seeds)' if args.seeds > 1 else ''} | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset, n, epochs in cases:
        best, per_seed = {}, {"sklearn": [], "fastnn": []}
        for seed in range(args.seeds):
            runs = {"sklearn": [], "fastnn": []}
            for _ in range(args.repeats):  # rounds interleaved: load drifts hit both alike
                for library in runs:
                    runs[library].append(run(library, dataset, n, epochs, args.fashion_dir,
                                             args.threads, seed, args.dtype))
            for library, done in runs.items():
                per_seed[library].append(dict(min(done, key=lambda r: r["fit_s"]), seed=seed,
                                              all_fit_s=[r["fit_s"] for r in done]))
        for library in ("sklearn", "fastnn"):
            per_seed_l = per_seed[library]
            results.extend(per_seed_l)
            best[library] = dict(per_seed_l[0],
                                 fit_s=float(np.median([r["fit_s"] for r in per_seed_l])),
                                 cpu_s=float(np.median([r["cpu_s"] for r in per_seed_l])),
                                 accuracy=float(np.mean([r["accuracy"] for r in per_seed_l])))
        for library in ("sklearn", "fastnn"):
            r = best[library]
            speedup = best["sklearn"]["fit_s"] / r["fit_s"]
            print(f"| {dataset} | {r['n_train']} | {r['epochs']} | {library} | {r['compute_dtype']} "
                  f"| {r['fit_s']:.2f} | {r['cpu_s']:.2f} | {100 * r['accuracy']:.2f}% | {speedup:.2f}x |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

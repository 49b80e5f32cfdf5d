"""fastnn.MLPClassifier vs sklearn.neural_network.MLPClassifier on sparse, text-like data.

The data (generated from a fixed seed, the same in every process): ``--rows`` training rows
and ``--test-rows`` test rows over ``--features`` features at ``--density``; each row draws
its features from a Zipf-like law (feature j with weight 1/(j + 10), as words of a
vocabulary), its values are log(1 + count) scaled to unit L2 norm (TF-IDF-like), and the
label is the argmax of 5 centred scores X T of a random linear teacher T on the 1,000 most
frequent features, so the target is learnable.
X is a CSR matrix, never densified by either library.

Same hyper-parameters for both (scikit-learn's names and defaults): hidden_layer_sizes=(100,),
solver="adam", batch_size=200 ("auto"), learning_rate_init=1e-3, alpha=1e-4, max_iter=EPOCHS
with tol=0 and n_iter_no_change=EPOCHS so neither stops early, random_state=0; the input's
dtype (``--dtype``) is the compute dtype of both. Each fit runs in a fresh process
(``--child``); rounds alternate the libraries, and the best of ``--repeats`` is reported.

Equal accuracy: ``--fastnn-epochs`` gives fastnn the epochs it needs to reach at least
scikit-learn's test accuracy (the two initialize differently, so one epoch each does not
land on the same accuracy).

Usage::

    python benchmarks/sparse_vs_sklearn.py --fastnn-epochs 2   # 20,000 x 100,000 at 0.1%
    python benchmarks/sparse_vs_sklearn.py --dtype float64
"""
import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np

SEED = 20261207
CLASSES = 5
TEACHER_FEATURES = 1000


def make_data(rows, test_rows, features, density, dtype):
    """(X, y, X_test, y_test): CSR matrices of ``dtype`` and int labels (module docstring)."""
    from scipy import sparse

    rng = np.random.default_rng(SEED)
    n = rows + test_rows
    per_row = max(1, int(round(density * features)))
    weights = 1.0 / (np.arange(features) + 10.0)
    weights /= weights.sum()
    cols = rng.choice(features, size=(n, per_row), p=weights)  # repeats count a word twice
    X = sparse.csr_matrix((np.ones(n * per_row), cols.ravel(), np.arange(0, n * per_row + 1,
                                                                          per_row)),
                          shape=(n, features))
    X.sum_duplicates()
    X.data = np.log1p(X.data)
    X = sparse.diags(1.0 / np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())) @ X
    X = X.tocsr().astype(dtype)
    # The teacher reads the TEACHER_FEATURES most frequent features (as a topic reads its
    # common words); scores centred per class, so the classes are about equally frequent.
    teacher = np.zeros((features, CLASSES))
    teacher[:TEACHER_FEATURES] = rng.standard_normal((min(features, TEACHER_FEATURES), CLASSES))
    scores = np.asarray(X @ teacher)
    y = (scores - scores.mean(axis=0)).argmax(axis=1)
    return X[:rows], y[:rows], X[rows:], y[rows:]


def child(library, args):
    """One fit in this process; prints a JSON line."""
    if library == "fastnn":
        from fastnn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, y, X_test, y_test = make_data(args.rows, args.test_rows, args.features, args.density,
                                     args.dtype)
    # fastnn's dtype= set to the input's: the same compute dtype as scikit-learn's, whatever
    # fastnn's default
    extra = {"dtype": args.dtype} if library == "fastnn" else {}
    clf = MLPClassifier(hidden_layer_sizes=(100,), solver="adam", learning_rate_init=1e-3,
                        alpha=1e-4, max_iter=args.epochs, tol=0.0, n_iter_no_change=args.epochs,
                        random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter, as intended
        start = time.perf_counter()
        clf.fit(X, y)
        fit_s = time.perf_counter() - start
    print(json.dumps({"library": library, "fit_s": fit_s, "epochs": int(clf.n_iter_),
                      "accuracy": float(np.mean(clf.predict(X_test) == y_test)),
                      "compute_dtype": str(clf.coefs_[0].dtype), "nnz": int(X.nnz)}))


def run(library, args):
    command = [sys.executable, __file__, "--child", library, "--rows", str(args.rows),
               "--test-rows", str(args.test_rows), "--features", str(args.features),
               "--density", str(args.density),
               "--epochs", str(args.fastnn_epochs if library == "fastnn" else args.epochs),
               "--dtype", args.dtype]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--test-rows", type=int, default=5000)
    parser.add_argument("--features", type=int, default=100000)
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--fastnn-epochs", type=int, help="fastnn's epochs (default --epochs): "
                        "as many as it needs to reach scikit-learn's test accuracy")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    if args.fastnn_epochs is None:
        args.fastnn_epochs = args.epochs
    if args.child:
        child(args.child, args)
        return 0
    runs = {"sklearn": [], "fastnn": []}
    for _ in range(args.repeats):  # rounds interleaved
        for library in runs:
            runs[library].append(run(library, args))
            print(json.dumps(runs[library][-1]), file=sys.stderr, flush=True)
    best = {library: min(r, key=lambda x: x["fit_s"]) for library, r in runs.items()}
    print(f"{args.rows} x {args.features} CSR at density {args.density} "
          f"({best['fastnn']['nnz']} stored values), {args.dtype}")
    print("| library | compute dtype | epochs | fit (s, best of %d) | all fits (s) | "
          "test accuracy | speed-up |" % args.repeats)
    print("|---|---|---|---|---|---|---|")
    for library, r in best.items():
        fits = ", ".join(f"{x['fit_s']:.2f}" for x in runs[library])
        print(f"| {library} | {r['compute_dtype']} | {r['epochs']} | {r['fit_s']:.2f} | {fits} | "
              f"{100 * r['accuracy']:.2f}% | {best['sklearn']['fit_s'] / r['fit_s']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

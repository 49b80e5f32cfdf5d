"""Estimator fits: fastnn.MLPClassifier vs scikit-learn's MLPClassifier (pytest-benchmark group).

Same hyper-parameters (256-128, adam, batch 128, 10 epochs with tol=0), float32 input, both
computing in float32, on scikit-learn's digits (1347 training images, a stratified 75/25
split). For the Fashion-MNIST comparison, each library in its own process, run
``python benchmarks/estimator_vs_sklearn.py``.
"""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the comparison needs scikit-learn")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
def test_mlp_classifier_fit(benchmark, digits, impl):
    if impl == "fastnn":
        from fastnn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, X_test, y, y_test = digits
    benchmark.group = "estimator-fit-digits-256-128-adam-batch128-10epochs-float32"

    def fit():
        clf = MLPClassifier(hidden_layer_sizes=(256, 128), batch_size=128, max_iter=10, tol=0.0,
                            n_iter_no_change=10, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return clf.fit(X, y)

    clf = benchmark.pedantic(fit, rounds=3, iterations=1)
    assert clf.n_iter_ == 10 and clf.coefs_[0].dtype == np.float32
    benchmark.extra_info["test_accuracy"] = float(np.mean(clf.predict(X_test) == y_test))
    assert benchmark.extra_info["test_accuracy"] > 0.9

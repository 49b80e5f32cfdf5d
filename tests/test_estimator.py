"""fastnn.estimator.MLPClassifier: the scikit-learn estimator protocol, with and without sklearn."""
import numpy as np
import pytest

from fastnn.estimator import MLPClassifier


@pytest.fixture
def blobs():
    """Three Gaussian blobs in 5-D with string labels."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(3, 5))
    labels = rng.integers(0, 3, 300)
    X = centers[labels] + rng.normal(size=(300, 5))
    names = np.array(["cat", "dog", "emu"])[labels]
    return X, names


def test_params_round_trip():
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), activation="tanh", learning_rate=0.01,
                        random_state=3)
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (8, 4) and params["activation"] == "tanh"
    assert params["random_state"] == 3 and params["optimizer"] == "adam"
    clone = MLPClassifier(**params)
    assert clone.get_params() == params
    assert clf.set_params(epochs=3, alpha=0.1) is clf
    assert clf.epochs == 3 and clf.alpha == 0.1
    with pytest.raises(ValueError, match="invalid parameter 'hidden'"):
        clf.set_params(hidden=(3,))
    assert repr(MLPClassifier(epochs=3)) == "MLPClassifier(epochs=3)"


def test_fit_predict_with_string_labels(blobs):
    X, y = blobs
    clf = MLPClassifier(hidden_layer_sizes=(16,), epochs=15, learning_rate=0.01, random_state=0)
    assert clf.fit(X[:200], y[:200]) is clf
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "emu"])
    assert clf.n_features_in_ == 5 and len(clf.loss_curve_) == 15
    pred = clf.predict(X[200:])
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(clf.classes_)
    assert clf.score(X[200:], y[200:]) >= 0.95
    proba = clf.predict_proba(X[200:])
    assert proba.shape == (100, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)


def test_seeded_fits_agree_and_refit_starts_fresh(blobs):
    X, y = blobs
    a = MLPClassifier(hidden_layer_sizes=(6,), epochs=3, random_state=1).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(6,), epochs=3, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    first = a.net_
    a.fit(X, y)
    assert a.net_ is not first
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_integer_labels_and_options(blobs):
    X, y = blobs
    codes = np.unique(y, return_inverse=True)[1] * 10 + 5  # labels 5, 15, 25
    clf = MLPClassifier(hidden_layer_sizes=12, epochs=30, early_stopping=True, patience=2,
                        alpha=1e-4, dropout=0.1, batch_norm=True, dtype="float64",
                        random_state=0, learning_rate=0.01).fit(X, codes)
    np.testing.assert_array_equal(clf.classes_, [5, 15, 25])
    assert clf.net_.dtype == np.float64
    assert "val_loss" in clf.history_.epochs[0]
    assert clf.score(X, codes) >= 0.9


def test_errors(blobs):
    X, y = blobs
    clf = MLPClassifier()
    with pytest.raises(ValueError, match="not fitted"):
        clf.predict(X)
    with pytest.raises(ValueError, match="at least two classes"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="one label per row"):
        clf.fit(X, y[:10])


def test_sklearn_clone_pipeline_grid_search(blobs):
    pytest.importorskip("sklearn", reason="scikit-learn is optional")
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = blobs
    clf = MLPClassifier(hidden_layer_sizes=(8,), epochs=10, learning_rate=0.01, random_state=0)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy is not clf
    assert is_classifier(clf)
    pipe = make_pipeline(StandardScaler(), clf)
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3)
    search.fit(X, y)
    assert search.best_score_ >= 0.9
    assert set(search.predict(X[:10])) <= {"cat", "dog", "emu"}

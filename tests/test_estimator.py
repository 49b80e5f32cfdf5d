"""fastnn.MLPClassifier and MLPRegressor: scikit-learn's estimator contract, its MLP's parameters
and training trajectory, partial_fit/warm_start, read-only and memory-mapped data, bad input.

scikit-learn is a test dependency (the conformance and trajectory tests need it); the
estimators themselves must work without it, which ``test_works_without_sklearn`` checks in a
subprocess where importing sklearn fails.
"""
import inspect
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastnn.estimator import MLPClassifier, MLPRegressor

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test dependency")
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

# Short fits (small max_iter) are the point of most tests here: scikit-learn's
# ConvergenceWarning is expected, as in scikit-learn's own MLP tests.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(16,), random_state=0)


# -- scikit-learn's own conformance checks ---------------------------------------------------
# Two checks (dense and sparse X) are expected failures, of fastnn's extras only: batch
# norm's batch statistics and dropout's masks are per row, so a weight of 2 is not the row
# repeated.
def _expected_failures(estimator):
    if estimator.batch_norm or estimator.dropout:
        why = "batch norm's statistics and dropout's masks are per row, not weighted"
        return {f"check_sample_weight_equivalence_on_{kind}_data": why for kind in ("dense", "sparse")}
    return {}


@parametrize_with_checks([MLPClassifier(**SMALL), MLPRegressor(**SMALL),
                          MLPClassifier(solver="lbfgs", **SMALL),
                          MLPRegressor(solver="sgd", dtype=None, **SMALL),
                          MLPClassifier(batch_norm=True, dropout=0.1, **SMALL)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# -- same parameters, same training as scikit-learn's MLP --------------------------------------
def _trajectories(kind, X, y, **params):
    """Loss curves and weights of scikit-learn's and fastnn's estimator from the same weights.

    Both train one epoch from their own initial weights, then fastnn's gets scikit-learn's
    weights (through the coefs_/intercepts_ setters) and both continue with warm_start for
    5 more epochs without shuffling, in float64.
    """
    sk_cls, fn_cls = ((sk_nn.MLPClassifier, MLPClassifier) if kind == "classifier"
                      else (sk_nn.MLPRegressor, MLPRegressor))
    common = dict(hidden_layer_sizes=(7, 5), activation="tanh", random_state=0, shuffle=False,
                  tol=0.0, max_iter=1, warm_start=True)
    common.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = sk_cls(**common).fit(X, y)
        fn = fn_cls(dtype="float64", **common).fit(X, y)
        fn.coefs_, fn.intercepts_ = sk.coefs_, sk.intercepts_
        sk.set_params(max_iter=5).fit(X, y)
        fn.set_params(max_iter=5).fit(X, y)
    return sk, fn


@pytest.mark.parametrize("params", [
    dict(),
    dict(alpha=0.5),
    dict(alpha=1.0, batch_size=64),  # 230 = 3·64 + 38: the last batch's L2 uses its own size
    dict(solver="sgd", alpha=0.1),
    dict(solver="sgd", alpha=0.1, nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.1),
    dict(activation="logistic", beta_1=0.5, beta_2=0.9, epsilon=1e-3),
], ids=["adam", "adam-alpha", "adam-last-batch", "nesterov", "momentum", "invscaling", "logistic"])
@pytest.mark.parametrize("problem", ["multiclass", "binary", "multilabel", "regression-1",
                                     "regression-3"])
def test_same_steps_as_sklearn(problem, params):
    """Exactly scikit-learn's objective and updates: alpha's mapping, the loss scale of each
    problem, Adam's epsilon, SGD's momentum and schedules (module docstring of fastnn.estimator)."""
    if problem == "multiclass":
        X, y = make_blobs(230, n_features=4, centers=3, random_state=0)
    elif problem == "binary":
        X, y = make_blobs(230, n_features=4, centers=2, random_state=0)
    elif problem == "multilabel":
        X, y = make_multilabel_classification(230, n_features=4, n_classes=3, random_state=0)
    else:
        X, y = make_regression(230, 4, n_targets=int(problem[-1]), random_state=0)
        y = y / 100
    sk, fn = _trajectories("regressor" if problem.startswith("regression") else "classifier",
                           X, y, **params)
    # the first epoch started from each library's own initial weights
    np.testing.assert_allclose(fn.loss_curve_[1:], sk.loss_curve_[1:], rtol=1e-10)
    for a, b in zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert (fn.n_iter_, fn.t_ - 230, fn.out_activation_, fn.n_outputs_, fn.n_layers_) == \
        (sk.n_iter_, sk.t_ - 230, sk.out_activation_, sk.n_outputs_, sk.n_layers_)
    np.testing.assert_allclose(fn.predict(X), sk.predict(X), rtol=1e-12)


def test_lbfgs_matches_sklearn_objective():
    """lbfgs minimises scikit-learn's objective: from the same weights, the same optimum."""
    X, y = make_blobs(120, n_features=3, centers=3, random_state=1)
    sk, fn = _trajectories("classifier", X, y, solver="lbfgs", alpha=0.1, tol=1e-10,
                           max_iter=1)
    assert fn.loss_ == pytest.approx(sk.loss_, rel=1e-4)
    np.testing.assert_array_equal(fn.predict(X), sk.predict(X))


def test_stopping_rule_is_sklearns():
    X, y = make_blobs(300, n_features=5, centers=3, random_state=0)
    params = dict(hidden_layer_sizes=(10,), random_state=0, tol=1e-2, n_iter_no_change=3)
    fn = MLPClassifier(dtype="float64", **params).fit(X, y)
    curve = np.array(fn.loss_curve_)
    assert fn.n_iter_ == len(curve) < 200
    # scikit-learn's rule: stop after more than n_iter_no_change epochs without improving on
    # the best loss by tol
    best, count = np.inf, 0
    for i, value in enumerate(curve):
        count = count + 1 if value > best - 1e-2 else 0
        best = min(best, value)
        if count > 3:
            assert i == len(curve) - 1
            break
    assert count > 3 and fn.best_loss_ == curve.min()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(4\) reached"):
        MLPClassifier(max_iter=4, **SMALL).fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_convergence_warning_points_at_the_callers_line(solver):
    X, y = make_blobs(60, n_features=4, centers=2, random_state=0)
    with pytest.warns(ConvergenceWarning) as record:
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, solver=solver).fit(X, y)
    assert [(w.filename, w.lineno) for w in record] == [
        (__file__, inspect.currentframe().f_lineno - 2)]


def test_early_stopping_keeps_best_validation_epoch():
    X, y = make_blobs(400, n_features=5, centers=3, cluster_std=4.0, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=4, random_state=0, learning_rate_init=0.01).fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.n_iter_ < 200
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        clf.partial_fit(X, y)
    reg = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, random_state=0,
                       max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(*make_regression(200, 4, random_state=0))
    assert reg.best_validation_score_ == max(reg.validation_scores_)


def test_adaptive_learning_rate_divides_by_five():
    X, y = make_blobs(200, n_features=4, centers=3, random_state=0)
    clf = MLPClassifier(solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=1,
                        max_iter=6, learning_rate_init=0.1, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    # tol=10: no epoch after the first counts as an improvement, so after epochs 3 and 5
    # (more than n_iter_no_change=1 epochs without one) the rate is divided by 5
    assert clf.n_iter_ == 6
    assert clf._optimizer.lr == pytest.approx(0.1 / 5 ** 2)


# -- parameters and attributes ---------------------------------------------------------------
def test_parameters_are_sklearns():
    """Every parameter of scikit-learn's estimators, with its default; fastnn's extras after."""
    extras = {"batch_norm": False, "dropout": 0.0, "init": None, "dtype": None}
    for ours, theirs in ((MLPClassifier(), sk_nn.MLPClassifier()),
                         (MLPRegressor(), sk_nn.MLPRegressor())):
        assert ours.get_params() == {**theirs.get_params(), **extras}
    assert repr(MLPClassifier(max_iter=3)) == "MLPClassifier(max_iter=3)"


def test_fitted_attributes(blobs):
    X, y = blobs
    clf = MLPClassifier(hidden_layer_sizes=(8, 4), max_iter=30, **{"random_state": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "emu"])
    assert [w.shape for w in clf.coefs_] == [(5, 8), (8, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (4,), (3,)]
    assert (clf.n_layers_, clf.n_outputs_, clf.out_activation_) == (4, 3, "softmax")
    assert clf.n_iter_ == 30 and clf.t_ == 30 * len(X) and len(clf.loss_curve_) == 30
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.n_features_in_ == 5 and not hasattr(clf, "feature_names_in_")
    weight = clf.coefs_[0]  # a read-only view of the network's own array
    assert np.shares_memory(weight, clf.net_.layers[0].weight.data) and not weight.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        weight[...] = 0
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6)
    binary = MLPClassifier(max_iter=5, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        binary.fit(X, y == "dog")
    assert binary.coefs_[-1].shape == (16, 1) and binary.out_activation_ == "logistic"
    assert binary.predict_proba(X).shape == (len(X), 2)


def test_lbfgs_has_no_loss_curve_and_no_partial_fit(blobs):
    X, y = blobs
    clf = MLPClassifier(solver="lbfgs", **SMALL).fit(X, y)
    assert clf.score(X, y) > 0.95 and 0 < clf.n_iter_ <= 200
    assert not hasattr(clf, "loss_curve_") and not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError, match="lbfgs is not stochastic"):
        clf.partial_fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier(solver="lbfgs", max_iter=2, **SMALL).fit(X, y)


def test_multi_output_regression_and_multilabel():
    X, Y = make_regression(300, 6, n_targets=3, noise=0.1, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0).fit(X, Y / 100)
    assert reg.predict(X).shape == (300, 3) and reg.score(X, Y / 100) > 0.95
    X, Y = make_multilabel_classification(300, n_features=6, n_classes=4, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0,
                        learning_rate_init=0.01).fit(X, Y)
    assert clf.predict(X).shape == (300, 4) and set(np.unique(clf.predict(X))) <= {0, 1}
    # subset accuracy; scikit-learn's MLPClassifier with these parameters scores 0.53
    assert clf.score(X, Y) > 0.45 and clf.out_activation_ == "logistic"


def test_fastnn_extras(blobs):
    X, y = blobs
    for extra in (dict(batch_norm=True), dict(dropout=0.2), dict(activation="elu"),
                  dict(solver="rmsprop"), dict(solver="adamw", dtype="float64"),
                  dict(dtype=None)):
        clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0, **extra).fit(X, y)
        assert clf.score(X, y) > 0.9, extra
    assert MLPClassifier(dtype="float64", **SMALL).fit(X, y).net_.dtype == np.float64
    assert MLPClassifier(dtype=None, **SMALL).fit(X.astype(np.float32), y).net_.dtype == np.float32


def test_deprecated_and_removed_names(blobs):
    X, y = blobs
    with pytest.warns(FutureWarning, match="learning_rate_init=0.01"):
        clf = MLPClassifier(learning_rate=0.01, **SMALL).fit(X, y)
    assert clf.score(X, y) > 0.9
    for old in ("epochs", "optimizer", "patience"):
        with pytest.raises(TypeError, match=old):
            MLPClassifier(**{old: 3})


@pytest.mark.parametrize("name, value, message", [
    ("alpha", -1.0, "'alpha' parameter of MLPClassifier must be a float in the range"),
    ("solver", "newton", "'solver' parameter"),
    ("learning_rate", "cosine", "'learning_rate' parameter"),
    ("hidden_layer_sizes", (4, 0), r"hidden_layer_sizes must be > 0, got \[4, 0\]"),
    ("activation", "swish", "'activation' parameter"),
    ("max_iter", 0, "'max_iter' parameter"),
    ("dtype", "int32", "'dtype' parameter"),
])
def test_invalid_parameters(blobs, name, value, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**{name: value}).fit(*blobs)


def test_feature_names_from_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=list("abcde"))
    clf = MLPClassifier(max_iter=20, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, list("abcde"))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X)


# -- scikit-learn's defaults: the input's dtype, its initial weights --------------------------
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_dtype_follows_the_input_and_dtype_overrides(blobs, cls):
    X, y = blobs
    if cls is MLPRegressor:
        y = X[:, 0] ** 2
    for X_dtype, dtype, expected in [(np.float64, None, np.float64), (np.float32, None, np.float32),
                                     (np.float64, "float32", np.float32),
                                     (np.float32, "float64", np.float64)]:
        est = cls(max_iter=2, dtype=dtype, **SMALL).fit(X.astype(X_dtype), y)
        assert {c.dtype for c in est.coefs_ + est.intercepts_} == {np.dtype(expected)}
        out = est.predict_proba(X.astype(X_dtype)) if cls is MLPClassifier else est.predict(X.astype(X_dtype))
        assert out.dtype == X_dtype  # scikit-learn's output dtype: the input's


@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_default_initial_weights_are_sklearns(activation):
    """init=None draws scikit-learn's _init_coef from RandomState(random_state): an int seed
    starts from scikit-learn's weights (a negligible rate keeps them through one epoch)."""
    X, y = make_blobs(60, n_features=4, centers=3, random_state=0)
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, solver="sgd", momentum=0.0,
                  learning_rate_init=1e-12, max_iter=1, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = sk_nn.MLPClassifier(**params).fit(X, y)
        fn = MLPClassifier(**params).fit(X, y)
    for a, b in zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_load_digits_default_accuracy_is_sklearns():
    """Default parameters on load_digits: fastnn's accuracy is scikit-learn's, within 1%."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    scores = {}
    for name, cls in [("sklearn", sk_nn.MLPClassifier), ("fastnn", MLPClassifier)]:
        scores[name] = [cls(random_state=seed).fit(X_train, y_train).score(X_test, y_test)
                        for seed in range(3)]
    assert np.mean(scores["fastnn"]) >= np.mean(scores["sklearn"]) - 0.01, scores


# -- sample_weight --------------------------------------------------------------------------
@pytest.mark.parametrize("params", [dict(), dict(solver="sgd", alpha=0.1),
                                    dict(alpha=1.0, batch_size=64)],
                         ids=["adam", "sgd-alpha", "adam-last-batch"])
@pytest.mark.parametrize("problem", ["multiclass", "binary", "regression-2", "poisson"])
def test_weighted_steps_are_sklearns(problem, params):
    """With sample_weight, scikit-learn's weighted mean loss and its L2 term over Σ w: the
    same weights as scikit-learn's after 5 epochs from the same start."""
    rng = np.random.default_rng(0)
    if problem in ("multiclass", "binary"):
        X, y = make_blobs(230, n_features=4, centers=3 if problem == "multiclass" else 2,
                          random_state=0)
        kind = "classifier"
    elif problem == "poisson":
        X = rng.uniform(0, 1, size=(230, 4))
        y = rng.poisson(np.exp(X @ [0.5, -0.3, 0.2, 0.1]))
        kind, params = "regressor", dict(params, loss="poisson")
    else:
        X, y = make_regression(230, 4, n_targets=2, random_state=0)
        y, kind = y / 100, "regressor"
    w = rng.uniform(0, 3, size=230)
    sk_cls, fn_cls = ((sk_nn.MLPClassifier, MLPClassifier) if kind == "classifier"
                      else (sk_nn.MLPRegressor, MLPRegressor))
    common = dict(hidden_layer_sizes=(7, 5), activation="tanh", random_state=0, shuffle=False,
                  tol=0.0, max_iter=5, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = sk_cls(**common).fit(X, y, sample_weight=w)
        fn = fn_cls(**common).fit(X, y, sample_weight=w)
    for a, b in zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    if problem != "poisson":  # Poisson: scikit-learn's loss adds the terms free of ŷ
        np.testing.assert_allclose(fn.loss_curve_, sk.loss_curve_, rtol=1e-10)


def test_integer_weights_are_repeated_rows():
    """lbfgs over the whole data: weight 2 is the row twice, weight 0 the row left out."""
    X, y = make_blobs(80, n_features=3, centers=3, random_state=2)
    w = np.random.default_rng(1).integers(0, 3, size=80)
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", alpha=0.1, random_state=0, tol=1e-10,
                  max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
        repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-6)


def test_weighted_early_stopping_and_partial_fit(blobs):
    X, y = blobs
    w = np.random.default_rng(0).uniform(0.5, 2, size=len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(early_stopping=True, max_iter=5, **SMALL).fit(X, y, sample_weight=w)
    assert len(clf.validation_scores_) == clf.n_iter_
    clf = MLPClassifier(**SMALL).partial_fit(X, y, sample_weight=w, classes=np.unique(y))
    assert clf.t_ == len(y)
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(**SMALL).fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="Negative values"):
        MLPClassifier(**SMALL).fit(X, y, sample_weight=-np.ones(len(y)))


def test_poisson_regressor_predicts_positive_rates():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(300, 3))
    y = rng.poisson(np.exp(1 + X[:, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), random_state=0,
                           max_iter=50).fit(X, y)
    assert reg.out_activation_ == "exp"
    assert (reg.predict(X) > 0).all()
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -y - 1.0)
    with pytest.raises(ValueError, match="'loss' parameter"):
        MLPRegressor(loss="absolute_error").fit(X, y)


# -- partial_fit and warm_start -------------------------------------------------------------
def test_partial_fit_needs_classes_then_learns(blobs):
    X, y = blobs
    clf = MLPClassifier(learning_rate_init=0.01, **SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X[:50], y[:50])
    assert not hasattr(clf, "classes_")
    for epoch in range(20):
        for start in range(0, 300, 50):
            clf.partial_fit(X[start:start + 50], y[start:start + 50],
                            classes=["cat", "dog", "emu"] if epoch == start == 0 else None)
    assert clf.n_iter_ == 1 and clf.t_ == 20 * 300
    assert clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="is not the same as on last call"):
        clf.partial_fit(X, y, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="has classes not in"):
        clf.partial_fit(X, np.where(y == "cat", "yak", y))
    # a batch may hold only some of the classes
    clf.partial_fit(X[y == "cat"], y[y == "cat"])
    reg = MLPRegressor(learning_rate_init=0.01, **SMALL)
    Xr, yr = make_regression(300, 5, random_state=0)
    for _ in range(100):
        reg.partial_fit(Xr, yr / 100)
    assert reg.score(Xr, yr / 100) > 0.9


def test_warm_start_continues(blobs):
    X, y = blobs
    clf = MLPClassifier(max_iter=5, warm_start=True, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        net = clf.net_
        clf.fit(X, y)
    assert clf.net_ is net and len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X[y != "cat"], y[y != "cat"])
    cold = MLPClassifier(max_iter=5, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
        first = cold.net_
        cold.fit(X, y)
    assert cold.net_ is not first and len(cold.loss_curve_) == 5


def test_seeded_fits_agree(blobs):
    X, y = blobs
    a = MLPClassifier(max_iter=20, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        proba = a.fit(X, y).predict_proba(X)
        np.testing.assert_array_equal(clone(a).fit(X, y).predict_proba(X), proba)
        np.testing.assert_array_equal(a.fit(X, y).predict_proba(X), proba)


# -- read-only and memory-mapped data -------------------------------------------------------
def test_joblib_memmapped_estimator_predicts_and_trains(blobs, tmp_path):
    joblib = pytest.importorskip("joblib")
    X, y = blobs
    for est, target in ((MLPClassifier(batch_norm=True, **SMALL), y),
                        (MLPRegressor(**SMALL), X[:, 0] * 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, target)
        path = tmp_path / "model.joblib"
        joblib.dump(est, path)
        loaded = joblib.load(path, mmap_mode="r")
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        loaded.partial_fit(X, target)  # training after loading: arrays are writable again
        assert loaded.t_ == est.t_ + len(X)


def test_read_only_and_memmapped_inputs(blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    X_map = np.load(path, mmap_mode="r")
    y_ro = np.array(y)
    y_ro.setflags(write=False)
    clf = MLPClassifier(**SMALL).fit(X_map, y_ro)
    assert clf.score(X_map, y_ro) > 0.95
    clf.partial_fit(X_map, y_ro)
    X_ro = np.asfortranarray(X)
    X_ro.setflags(write=False)
    np.testing.assert_array_equal(clf.predict(X_ro), clf.predict(X))


# -- bad input: scikit-learn's errors, and the fitted model stays as it was -------------------
@pytest.fixture
def fitted(blobs):
    X, y = blobs
    return MLPClassifier(max_iter=50, **SMALL).fit(X, y)


def _bad_inputs(X):
    sp = pytest.importorskip("scipy.sparse")
    nan = X.copy()
    nan[3, 1] = np.nan
    inf = X.copy()
    inf[0, 0] = np.inf
    return [
        (nan, ValueError, "Input X contains NaN"),
        (inf, ValueError, "Input X contains infinity"),
        (sp.csr_matrix(nan), ValueError, "Input X contains NaN"),  # sparse X is taken, checked
        (X.astype(complex), ValueError, "Complex data not supported"),
        (np.full(X.shape, "a", dtype=object), ValueError, "could not convert string to float"),
        (X[:0], ValueError, r"Found array with 0 sample\(s\)"),
        (X[:, 0], ValueError, "Expected 2D array, got 1D array instead"),
        (X[:, :3], ValueError, "X has 3 features, but MLPClassifier is expecting 5 features"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_bad_X_raises_sklearn_error_and_keeps_model(fitted, blobs, case):
    X, y = blobs
    bad, error, message = _bad_inputs(X)[case]
    before = fitted.predict_proba(X)
    state = dict(fitted.__dict__)
    for method in ("predict", "predict_proba"):
        with pytest.raises(error, match=message):
            getattr(fitted, method)(bad)
    if case != 7:  # a new feature count is fine for fit
        with pytest.raises(error, match=message):
            fitted.fit(bad, y[:bad.shape[0]])
        with pytest.raises(error, match=message):
            fitted.partial_fit(bad, y[:bad.shape[0]])
    assert fitted.__dict__.keys() == state.keys()
    assert all(fitted.__dict__[k] is v for k, v in state.items())
    np.testing.assert_array_equal(fitted.predict_proba(X), before)


def test_bad_targets(fitted, blobs):
    X, y = blobs
    before = fitted.predict_proba(X)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        fitted.fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        MLPRegressor().fit(X, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fitted.fit(X, y[:10])
    # one class: scikit-learn fits a model that predicts it
    one = MLPClassifier(max_iter=2, **SMALL).fit(X, np.full(len(X), "only"))
    assert list(one.classes_) == ["only"] and set(one.predict(X)) == {"only"}
    np.testing.assert_array_equal(one.predict_proba(X), np.ones((len(X), 1)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        fitted.fit(X, None)
    with pytest.raises(ValueError, match="The validation set is too small"):
        fitted.set_params(early_stopping=True).fit(X[:5], y[:5])
    with pytest.raises(ValueError, match="unknown initializer"):
        fitted.set_params(early_stopping=False, init="nonsense").fit(X, y)
    fitted.set_params(init=None)
    np.testing.assert_array_equal(fitted.predict_proba(X), before)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        clf = MLPClassifier(max_iter=100, **SMALL).fit(X, y.reshape(-1, 1))
    assert clf.predict(X).shape == (len(X),)
    with pytest.raises(NotFittedError, match="This MLPRegressor instance is not fitted yet"):
        MLPRegressor().predict(X)


# -- scikit-learn's tools -------------------------------------------------------------------
def test_pipeline_grid_search_over_alpha(blobs):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = blobs
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**SMALL))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1.0],
                                 "mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3)
    search.fit(X, y)
    assert search.best_score_ >= 0.9
    assert set(search.predict(X[:10])) <= {"cat", "dog", "emu"}


def test_works_without_sklearn(tmp_path):
    """The estimators import, fit, predict and raise scikit-learn's messages with sklearn absent."""
    script = textwrap.dedent("""
        import sys, warnings
        sys.modules["sklearn"] = None  # import sklearn raises ImportError
        import numpy as np
        from fastnn import MLPClassifier, MLPRegressor
        from fastnn import _estimator_input
        assert not _estimator_input.HAVE_SKLEARN
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 4)); y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
        clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, max_iter=300,
                            learning_rate_init=0.01).fit(X, y)
        assert clf.score(X, y) > 0.9, clf.score(X, y)
        assert set(clf.get_params()) >= {"alpha", "solver", "tol"}
        reg = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, solver="lbfgs").fit(X, X[:, 0])
        assert reg.score(X, X[:, 0]) > 0.9
        def raises(exc, text, f, *a):
            try:
                f(*a)
            except exc as e:
                assert text in str(e), (text, str(e))
            else:
                raise AssertionError(text)
        bad = X.copy(); bad[0, 0] = np.nan
        raises(ValueError, "Input X contains NaN", clf.predict, bad)
        raises(ValueError, "Expected 2D array, got 1D array instead", clf.predict, X[:, 0])
        raises(ValueError, "X has 3 features, but MLPClassifier is expecting 4 features",
               clf.predict, X[:, :3])
        raises(ValueError, "Found array with 0 sample(s)", clf.predict, X[:0])
        raises(ValueError, "Complex data not supported", clf.predict, X.astype(complex))
        raises(ValueError, "Unknown label type: continuous", clf.fit, X, X[:, 0])
        raises(ValueError, "not fitted yet", MLPClassifier().predict, X)
        raises(ValueError, "classes must be passed", MLPClassifier().partial_fit, X, y)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            MLPClassifier(max_iter=3).fit(X, y)
        assert any(type(x.message).__name__ == "ConvergenceWarning" for x in w)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.fixture
def blobs():
    """Three Gaussian blobs in 5-D with string labels."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(3, 5))
    labels = rng.integers(0, 3, 300)
    X = centers[labels] + rng.normal(size=(300, 5))
    return X, np.array(["cat", "dog", "emu"])[labels]

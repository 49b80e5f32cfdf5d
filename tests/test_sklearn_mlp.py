"""scikit-learn's own MLP tests, run against fastnn's estimators.

This module executes the installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py``
with one change, its import of ``MLPClassifier``/``MLPRegressor`` pointed at fastnn, and
supplies the ``global_random_seed`` fixture of scikit-learn's conftest. Written for
scikit-learn 1.9.1 (``WRITTEN_FOR``; the test dependency group pins it): the lists below name
that file's tests, and ``test_written_for_installed_sklearn`` fails when another version is
installed, so that the lists are revisited rather than silently outdated.

``DESELECTED`` are tests that read or set scikit-learn's private attributes, which a drop-in
need not mirror (README, "Where fastnn differs").
"""
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test dependency")

WRITTEN_FOR = "1.9.1"
SOURCE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
SKLEARN_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor\n"
FASTNN_IMPORT = "from fastnn import MLPClassifier, MLPRegressor\n"

#: scikit-learn's tests left out, each with why (private attributes fastnn does not keep).
DESELECTED = {
    "test_fit": "sets scikit-learn's private training state by hand (_coef_grads, "
                "_intercept_grads, _coef_velocity, learning_rate_) and runs its private _fit; "
                "the worked example's arithmetic is tests/test_estimator.py's step-for-step "
                "comparison with scikit-learn",
    "test_gradient": "calls scikit-learn's private _loss_grad_lbfgs; fastnn's gradients are "
                     "checked by fastnn.gradcheck (tests/test_gradcheck.py)",
    "test_learning_rate_warmstart": "reads scikit-learn's private _optimizer.learning_rate; "
                                    "fastnn's optimizer is its own (SGD's rate is scaled, "
                                    "fastnn.estimator's docstring)",
    "test_adaptive_learning_rate": "reads scikit-learn's private _optimizer.learning_rate "
                                   "(as test_learning_rate_warmstart)",
}


def _load():
    text = SOURCE.read_text()
    if text.count(SKLEARN_IMPORT) != 1:
        raise RuntimeError(f"{SOURCE}: expected one line {SKLEARN_IMPORT.strip()!r} to redirect")
    code = compile(text.replace(SKLEARN_IMPORT, FASTNN_IMPORT), str(SOURCE), "exec")
    namespace = {"__name__": __name__, "__file__": str(SOURCE)}
    exec(code, namespace)
    return namespace


_NAMESPACE = _load()
_TESTS = {name: fn for name, fn in _NAMESPACE.items() if name.startswith("test_") and callable(fn)}
for _name, _fn in _TESTS.items():
    if _name not in DESELECTED:
        globals()[_name] = _fn
# The module-level helpers and data the tests use by name (their globals are _NAMESPACE).


@pytest.fixture(params=[0])
def global_random_seed(request):
    """scikit-learn's fixture: the seed its tests run with (0, its default run)."""
    return request.param


def test_written_for_installed_sklearn():
    assert sklearn.__version__ == WRITTEN_FOR, (
        f"this harness was written for scikit-learn {WRITTEN_FOR}'s test_mlp.py, and "
        f"{sklearn.__version__} is installed: update DESELECTED for its tests, "
        "then WRITTEN_FOR and the test dependency group's pin")


def test_deselected_names_existing_tests():
    unknown = set(DESELECTED) - set(_TESTS)
    assert not unknown, f"not tests of {SOURCE}: {sorted(unknown)}"

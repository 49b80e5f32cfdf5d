"""Input checks of the scikit-learn estimators (``fastnn.estimator``), with or without scikit-learn.

With scikit-learn installed every check is scikit-learn's own (``validate_data``,
``check_is_fitted``, ``type_of_target``, ``check_classification_targets``), so users get the
errors and warnings they know, word for word, and ``n_features_in_``/``feature_names_in_``
follow scikit-learn's rules. Without it, the fallbacks below raise the same exception types
with the same messages for what the estimators meet (NaN, inf, sparse, complex, object and
string data, empty and 1-D arrays, wrong feature counts, continuous class labels).

Every function here leaves the estimator unchanged when it raises (``validate_X_y`` restores
``n_features_in_`` and ``feature_names_in_`` that scikit-learn's ``validate_data`` may have
reset before failing), so a failed ``fit`` keeps the previous model usable.
"""
import warnings

import numpy as np

from fastnn._validation import is_sparse

try:
    import sklearn  # noqa: F401
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.multiclass import type_of_target as _sk_type_of_target
    from sklearn.utils.validation import _check_sample_weight as _sk_check_sample_weight
    from sklearn.utils.validation import check_is_fitted as _sk_check_is_fitted
    from sklearn.utils.validation import column_or_1d as _sk_column_or_1d
    from sklearn.utils.validation import validate_data as _sk_validate_data

    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - exercised by the no-sklearn test run
    HAVE_SKLEARN = False

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit`` (scikit-learn's exception of that name)."""

    class ConvergenceWarning(UserWarning):
        """Training stopped at ``max_iter`` before meeting its tolerance."""

    class DataConversionWarning(UserWarning):
        """Input data was converted (e.g. a column vector y raveled)."""

_FITTED_HINT = ("This {name} instance is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator.")
_STATE_KEYS = ("n_features_in_", "feature_names_in_")
_NO_Y = object()  # validate X alone (y=None is a missing target)


def check_is_fitted(estimator):
    """NotFittedError with scikit-learn's wording if ``estimator`` has not been fitted."""
    if HAVE_SKLEARN:
        _sk_check_is_fitted(estimator)
    elif not estimator.__sklearn_is_fitted__():
        raise NotFittedError(_FITTED_HINT.format(name=type(estimator).__name__))


def validate_X(estimator, X, reset, dtype):
    """X as a C-contiguous 2-D finite array of ``dtype`` (a SciPy sparse X as a CSR matrix of
    ``dtype``); sets or checks ``n_features_in_``."""
    return _validate(estimator, X, _NO_Y, reset, dtype, y_numeric=False)


def validate_X_y(estimator, X, y, reset, dtype, y_numeric):
    """(X, y) checked together; y may be 1-D or 2-D (multi-output), finite, one row per sample."""
    return _validate(estimator, X, y, reset, dtype, y_numeric)


def _validate(estimator, X, y, reset, dtype, y_numeric):
    saved = {k: estimator.__dict__[k] for k in _STATE_KEYS if k in estimator.__dict__}
    try:
        if HAVE_SKLEARN:
            # Sparse X as CSR (CSC, COO and the rest converted), as scikit-learn's MLPs take it.
            kwargs = dict(accept_sparse="csr", dtype=dtype, order="C", reset=reset)
            if y is _NO_Y:
                return _aligned(_sk_validate_data(estimator, X, **kwargs))
            X, y = _sk_validate_data(estimator, X, y, multi_output=True, y_numeric=y_numeric,
                                     **kwargs)
            return _aligned(X), y
        return _fallback_validate(estimator, X, y, reset, dtype, y_numeric)
    except BaseException:
        for key in _STATE_KEYS:
            estimator.__dict__.pop(key, None)
        estimator.__dict__.update(saved)
        raise


def validate_sample_weight(sample_weight, X):
    """``sample_weight`` as a (n_samples,) array of X's dtype, or None (every weight 1).

    scikit-learn's ``_check_sample_weight`` where installed (its messages); without it, the
    same checks: one finite, non-negative weight per row of X.
    """
    if sample_weight is None:
        return None
    if HAVE_SKLEARN:
        return _sk_check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
    weight = np.asarray(sample_weight, dtype=X.dtype)
    if weight.ndim == 0:
        weight = np.full(X.shape[0], weight, dtype=X.dtype)
    if weight.shape != (X.shape[0],):
        raise ValueError(f"sample_weight.shape == {weight.shape}, expected {(X.shape[0],)}!")
    if not np.isfinite(weight).all():
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if (weight < 0).any():
        raise ValueError("Negative values in data passed to `sample_weight`")
    return np.ascontiguousarray(weight)


def _aligned(X):
    """X, copied if its buffer is not aligned for its dtype (the kernels need aligned arrays;
    an array unpickled from a byte stream, as Dask ships a chunk, may not be); a sparse X's
    arrays likewise."""
    arrays = (X.data, X.indices, X.indptr) if is_sparse(X) else (X,)
    return X if all(a.flags.aligned for a in arrays) else X.copy()


def column_or_1d(y):
    """y of shape (n, 1) raveled with scikit-learn's DataConversionWarning; other shapes as they are."""
    if y.ndim == 2 and y.shape[1] == 1:
        if HAVE_SKLEARN:
            return _sk_column_or_1d(y, warn=True)
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change "
                      "the shape of y to (n_samples, ), for example using ravel().",
                      DataConversionWarning, stacklevel=3)
        return y.ravel()
    return y


def type_of_target(y):
    """scikit-learn's target type ("binary", "multiclass", "multilabel-indicator", "continuous", ...)."""
    if HAVE_SKLEARN:
        return _sk_type_of_target(y, input_name="y")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all():
            return "multilabel-indicator"
        suffix = "-multioutput"
    else:
        suffix = ""
        y = y.reshape(-1) if y.ndim == 2 else y
    if y.dtype.kind == "f" and np.any(y != y.astype(np.int64)):
        return "continuous" + suffix
    if y.dtype.kind == "O" and not all(isinstance(v, str) for v in y.ravel()):
        return "unknown"
    if len(np.unique(y)) > 2 or suffix:
        return "multiclass" + suffix
    return "binary"


def check_class_labels(y):
    """ValueError with scikit-learn's wording for targets a classifier cannot take."""
    if HAVE_SKLEARN:
        check_classification_targets(y)
        return
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass", "multiclass-multioutput", "multilabel-indicator",
                    "multilabel-sequences"):
        raise ValueError(f"Unknown label type: {kind}. Maybe you are trying to fit a classifier, "
                         "which expects discrete classes on a regression target with continuous "
                         "values.")


# -- without scikit-learn ------------------------------------------------------------------

def _fallback_validate(estimator, X, y, reset, dtype, y_numeric):
    name = type(estimator).__name__
    if X is None:
        raise ValueError(f"{name} requires X to be passed, but the target X is None.")
    names = _feature_names(X)
    X = _fallback_check_array(X, "X", dtype, name, ensure_2d=True)
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if names is not None:
            estimator.feature_names_in_ = names
        else:
            estimator.__dict__.pop("feature_names_in_", None)
    else:
        fitted_names = getattr(estimator, "feature_names_in_", None)
        if fitted_names is not None and names is None:
            warnings.warn(f"X does not have valid feature names, but {name} was fitted with "
                          "feature names", UserWarning, stacklevel=4)
        elif names is not None and fitted_names is None:
            warnings.warn(f"X has feature names, but {name} was fitted without feature names",
                          UserWarning, stacklevel=4)
        elif names is not None and not np.array_equal(names, fitted_names):
            raise ValueError("The feature names should match those that were passed during fit.")
        expected = getattr(estimator, "n_features_in_", None)
        if expected is not None and X.shape[1] != expected:
            raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {expected} "
                             "features as input.")
    if y is _NO_Y:
        return X
    if y is None:
        raise ValueError(f"This {name} estimator requires y to be passed, but the target y is "
                         "None.")
    y = np.asarray(y)
    if hasattr(y, "toarray") or y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{y}\n")
    if y_numeric and y.dtype.kind == "O":
        y = y.astype(np.float64)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        kind = "NaN" if np.isnan(y).any() else "infinity or a value too large for " + repr(y.dtype)
        raise ValueError(f"Input y contains {kind}.")
    if y.ndim not in (1, 2):
        raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
    if len(y) != len(X):
        raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                         f"[{len(X)}, {len(y)}]")
    return X, y


def _feature_names(X):
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    return names if len(names) and all(isinstance(c, str) for c in names) else None


def _fallback_check_array(X, input_name, dtype, name, ensure_2d=True):
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError("Sparse data was passed for X, but dense data is required. Use "
                        "'.toarray()' to convert to a dense numpy array.")
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{arr}\n")
    if arr.ndim == 0 or (ensure_2d and arr.ndim == 1):
        shape = "scalar" if arr.ndim == 0 else "1D"
        raise ValueError(f"Expected 2D array, got {shape} array instead:\narray={arr}.\nReshape "
                         "your data either using array.reshape(-1, 1) if your data has a single "
                         "feature or array.reshape(1, -1) if it contains a single sample.")
    if arr.ndim > 2:
        raise ValueError(f"Found array with dim {arr.ndim}. {name} expected <= 2.")
    if arr.dtype.kind in "OUS":
        if arr.dtype.kind in "US":
            raise ValueError("dtype='numeric' is not compatible with arrays of bytes/strings."
                             "Convert your data to numeric values explicitly instead.")
    arr = np.ascontiguousarray(arr, dtype=dtype)  # object arrays: float() of each entry
    if arr.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
                         f"is required by {name}.")
    if arr.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 "
                         f"is required by {name}.")
    if not np.isfinite(arr).all():
        kind = ("NaN" if np.isnan(arr).any()
                else f"infinity or a value too large for {arr.dtype!r}")
        raise ValueError(f"Input {input_name} contains {kind}.")
    return arr

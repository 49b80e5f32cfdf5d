"""Input validation at the API boundary.

Casting rule (documented in the README): boolean, integer and floating inputs are converted
to the model's dtype (float32 or float64); complex, object and string arrays are refused
with a TypeError. Non-C-contiguous input (Fortran order, strided views) is copied into a
C-contiguous array. Empty batches and non-matching shapes raise ValueError. Where the
caller takes sparse input (a network whose first layer is Dense), a SciPy sparse matrix or
array of any format is converted to CSR with its values in the model's dtype; nothing is
densified.
"""
import inspect
import math
import numbers
import os
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel():
    """``stacklevel`` for a warning raised deep inside fastnn (a training callback) that
    points at the first caller outside the package, the user's line; Python 3.12's
    ``warnings.warn(skip_file_prefixes=...)`` does the same."""
    frame, level = sys._getframe(1), 1  # the function about to warn is level 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def check_dtype(dtype):
    """Return ``dtype`` as a NumPy dtype if it is float32 or float64, else raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def is_sparse(x):
    """Whether ``x`` is a SciPy sparse matrix or array (SciPy is not imported for this: an
    object of its classes exists only once ``scipy.sparse`` is loaded)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(x)


def check_array(x, name, dtype, ndim=2, n_columns=None, allow_empty=False, accept_sparse=False):
    """Return ``x`` as a C-contiguous array of ``dtype`` with ``ndim`` dimensions.

    Raises TypeError for non-numeric input and ValueError naming ``name`` for the wrong
    number of dimensions, an empty batch or ``n_columns`` not matching. With
    ``accept_sparse``, a SciPy sparse ``x`` (CSR, CSC, COO or any other format) comes back
    as a CSR matrix whose ``data`` is a C-contiguous array of ``dtype`` (its structure is
    checked by the kernels that read it); without, it is refused with a TypeError.
    """
    if is_sparse(x):
        return _check_sparse(x, name, dtype, n_columns, allow_empty, accept_sparse)
    arr = np.asarray(x)
    _check_real(arr, name)
    if arr.ndim != ndim:
        hint = " (use x.reshape(1, -1) for a single sample)" if ndim == 2 and arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D with shape {arr.shape}{hint}")
    _check_rows(arr, name, n_columns, allow_empty)
    return np.ascontiguousarray(arr, dtype=dtype)


def _check_real(x, name):
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {x.dtype}")


def _check_rows(x, name, n_columns, allow_empty):
    """A 2-D (or wider) x: at least one row unless ``allow_empty``, ``n_columns`` columns."""
    if not allow_empty and x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {x.shape})")
    if n_columns is not None and x.shape[1] != n_columns:
        raise ValueError(f"{name} has {x.shape[1]} features per row, expected {n_columns} "
                         f"(shape {x.shape})")


def _check_sparse(x, name, dtype, n_columns, allow_empty, accept_sparse):
    if not accept_sparse:
        raise TypeError(f"{name} is a sparse {x.format} matrix, but dense data is required "
                        "here (use .toarray())")
    _check_real(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got a {x.ndim}-D sparse array of shape {x.shape}")
    _check_rows(x, name, n_columns, allow_empty)
    from scipy import sparse

    csr = x.tocsr()
    data = np.ascontiguousarray(csr.data, dtype=dtype)
    if data is csr.data and type(csr) is sparse.csr_matrix:
        return csr
    # A new matrix shares the structure arrays; only data is converted (SciPy copies nothing
    # it need not).
    return sparse.csr_matrix((data, csr.indices, csr.indptr), shape=csr.shape)


def check_labels(y, name, n_rows, n_classes):
    """Return integer class labels as a C-contiguous int64 vector (kernels check their range)."""
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer floats")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per row), got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} labels, expected {n_rows} (one per row)")
    # The range [0, n_classes) is checked by the loss kernels, in the pass that reads the labels.
    return np.ascontiguousarray(arr, dtype=np.int64)


def describe_interval(low=None, high=None, low_open=False, high_open=False):
    """Interval notation for the bounds of ``check_number``: "[0.0, 1.0)", "(0.0, inf)"."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return (f"{left}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}{right}")


def check_number(value, name, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds, else ValueError naming ``name``.

    The one scalar validator of fastnn (layers, optimizers, schedules, initializers and the
    command line use it). ``low``/``high`` are inclusive unless ``low_open``/``high_open``;
    bool, non-real and non-finite values are refused.

    Messages: "{name} must be a finite number, got {value!r}", "{name} must be > {low}, got
    {value}" (">=" for a closed bound), "{name} must be < {high}, got {value}" ("<=").
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def scalar_value(value):
    """A Python scalar from a plain value or a 0-d array (as ``np.load`` returns them)."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def check_positive_int(value, name, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_rng(rng):
    """Accept None, an int seed or a numpy.random.Generator (SPEC 7) and return a Generator."""
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def from_registry(registry, kind, name, first, kwargs):
    """``registry[name](first, **kwargs)``, dropping keywords whose value is None (they mean
    "the default"); an unknown name or keyword raises ValueError listing the valid ones."""
    cls = registry.get(name)
    if cls is None:
        raise ValueError(f"unknown {kind} {name!r}; choose from {', '.join(registry)}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = list(inspect.signature(cls).parameters)[1:]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"{kind} {name!r} does not take {', '.join(unknown)}; "
                         f"its options are {', '.join(accepted)}")
    return cls(first, **kwargs)

"""The kernel convention (fastnn_c/_kernel.pyx), checked on every kernel of every family.

Each kernel called with NumPy arrays checks them: a wrong dtype is a TypeError, a
non-contiguous array, a read-only output or a wrong shape a ValueError, and every message
names the kernel and the argument. Read-only inputs are accepted, inputs are never written,
and no kernel writes outside its outputs, at batch 1 and at odd widths.
"""
import numpy as np
import pytest

from fastnn_c import (
    activations,
    batchnorm,
    dense,
    diagnostics,
    dropout,
    losses,
    optim,
    packed,
    regularization,
    sparse,
)

RELU = activations.KINDS["relu"]
TANH = activations.KINDS["tanh"]


class Arr:
    """An array argument: its name, shape (or a function of the float dtype giving it), kind
    of values, and whether the kernel writes it."""

    def __init__(self, name, shape, kind="float", out=False):
        self.name, self._shape, self.kind, self.out = name, shape, kind, out

    def shape(self, dtype):
        return self._shape(dtype) if callable(self._shape) else self._shape


def packed_shape(n_in, n_out):
    """The shape of a packed (n_in, n_out) weight matrix, which depends on the float dtype."""
    return lambda dtype: (packed.packed_size(n_in, n_out, dtype),)


# Element types and the wrong type each is given in the dtype test. "float" is the call's
# float dtype; the others are fixed.
KINDS = {"float": None, "positive": None, "unit": None, "float64": np.float64,
         "positive64": np.float64, "mask": np.uint8, "labels": np.int64, "counts": np.intp,
         "indptr": np.int64, "columns": np.int64}
WRONG = {"float": np.float16, "positive": np.float16, "unit": np.float16, "float64": np.float32,
         "positive64": np.float32, "mask": np.float64, "labels": np.int32, "counts": np.float64,
         "indptr": np.int32, "columns": np.int32}


def kernel_cases(n, d):
    """{kernel name: (function, parameters, fewest rows)} for a batch of n rows of d features
    (a dense layer d → d + 2, k = d + 1 classes); parameters are Arr or plain values."""
    o, k = d + 2, d + 1
    f, fo = (n, d), (n, o)
    csr = [Arr("indptr", (n + 1,), "indptr"), Arr("indices", (2 * n,), "columns"),
           Arr("data", (2 * n,)), d]
    return {
        # activations
        "activation_forward": (activations.activation_forward,
                               [TANH, Arr("Z", f), Arr("A", f, out=True), 0.1, 1], 1),
        "activation_backward": (activations.activation_backward,
                                [TANH, Arr("A", f), Arr("dA", f), Arr("dZ", f, out=True), 0.1, 1], 1),
        "prelu_forward": (activations.prelu_forward,
                          [Arr("Z", f), Arr("alpha", (d,)), Arr("A", f, out=True)], 1),
        "prelu_backward": (activations.prelu_backward, [
            Arr("Z", f), Arr("alpha", (d,)), Arr("dA", f), Arr("dZ", f, out=True),
            Arr("dalpha", (d,), out=True)], 1),
        "rrelu_forward": (activations.rrelu_forward,
                          [Arr("Z", f), Arr("A", f, out=True), 0.125, 1 / 3, 7, 3, 1], 1),
        "rrelu_backward": (activations.rrelu_backward, [
            Arr("A", f), Arr("dA", f), Arr("dZ", f, out=True), 0.125, 1 / 3, 7, 3, 1], 1),
        # batch norm
        "batchnorm_forward_train": (batchnorm.batchnorm_forward_train, [
            Arr("X", f), Arr("gamma", (d,)), Arr("beta", (d,)), Arr("running_mean", (d,), out=True),
            Arr("running_var", (d,), "positive", out=True), 0.1, 1e-5, Arr("Y", f, out=True),
            Arr("mean", (d,), "float64", out=True), Arr("inv_std", (d,), "positive64", out=True), 1], 2),
        "batchnorm_forward_eval": (batchnorm.batchnorm_forward_eval, [
            Arr("X", f), Arr("gamma", (d,)), Arr("beta", (d,)), Arr("running_mean", (d,)),
            Arr("running_var", (d,), "positive"), 1e-5, Arr("Y", f, out=True),
            Arr("mean", (d,), "float64", out=True), Arr("inv_std", (d,), "positive64", out=True)], 1),
        "batchnorm_backward": (batchnorm.batchnorm_backward, [
            Arr("X", f), Arr("mean", (d,), "float64"), Arr("inv_std", (d,), "positive64"),
            Arr("gamma", (d,)), Arr("dY", f), Arr("dgamma", (d,), out=True),
            Arr("dbeta", (d,), out=True), Arr("dX", f, out=True), True, 1], 1),
        # dropout
        "dropout_forward": (dropout.dropout_forward, [
            Arr("X", f), Arr("Y", f, out=True), Arr("mask", f, "mask", out=True), 0.5, 7, 3, 1], 1),
        "dropout_apply": (dropout.dropout_apply,
                          [Arr("X", f), Arr("mask", f, "mask"), Arr("Y", f, out=True), 0.5, 1], 1),
        # regularization
        "regularization_penalty": (regularization.regularization_penalty, [Arr("w", f), 0.1, 0.01], 1),
        "regularization_backward": (regularization.regularization_backward,
                                    [Arr("w", f), Arr("grad", f, out=True), 0.1, 0.01], 1),
        "max_norm_constraint": (regularization.max_norm_constraint, [Arr("W", f, out=True), 0.5], 1),
        # diagnostics
        "activation_stats": (diagnostics.activation_stats, [
            Arr("A", f), -0.9, 0.9, Arr("col_mean", (d,), "float64", out=True),
            Arr("col_var", (d,), "float64", out=True),
            Arr("col_nonpositive", (d,), "counts", out=True)], 1),
        "copy_sum_squares": (diagnostics.copy_sum_squares, [Arr("src", f), Arr("dst", f, out=True)], 1),
        "diff_sum_squares": (diagnostics.diff_sum_squares, [Arr("a", f), Arr("b", f)], 1),
        # dense
        "dense_forward": (dense.dense_forward,
                          [Arr("X", f), Arr("W", (d, o)), Arr("b", (o,)), Arr("Y", fo, out=True)], 1),
        "dense_backward": (dense.dense_backward, [
            Arr("X", f), Arr("W", (d, o)), Arr("dY", fo), Arr("dW", (d, o), out=True),
            Arr("db", (o,), out=True), Arr("dX", f, out=True)], 1),
        "dense_activation_forward": (dense.dense_activation_forward, [
            Arr("X", f), Arr("W", (d, o)), Arr("b", (o,)), Arr("A", fo, out=True), RELU, 0.0], 1),
        "dense_activation_backward": (dense.dense_activation_backward, [
            Arr("X", f), Arr("W", (d, o)), Arr("A", fo), Arr("dA", fo), Arr("dZ", fo, out=True),
            Arr("dW", (d, o), out=True), Arr("db", (o,), out=True), Arr("dX", f, out=True), RELU,
            0.0], 1),
        "dense_sgd_backward": (dense.dense_sgd_backward, [
            Arr("X", f), Arr("W", (d, o), out=True), Arr("dY", fo), Arr("b", (o,), out=True),
            Arr("dX", f, out=True), 0.1], 1),
        "dense_activation_sgd_backward": (dense.dense_activation_sgd_backward, [
            Arr("X", f), Arr("W", (d, o), out=True), Arr("A", fo), Arr("dA", fo),
            Arr("dZ", fo, out=True), Arr("b", (o,), out=True), Arr("dX", f, out=True), RELU, 0.0,
            0.1], 1),
        "dense_pack": (packed.dense_pack, [Arr("W", (d, o)), Arr("packed", packed_shape(d, o), out=True)], 1),
        "dense_packed_forward": (packed.dense_packed_forward, [
            Arr("X", f), Arr("packed", packed_shape(d, o)), Arr("b", (o,)), Arr("A", fo, out=True), RELU,
            0.0], 1),
        "dense_forward blas": (dense.dense_forward, [
            Arr("X", f), Arr("W", (d, o)), Arr("b", (o,)), Arr("Y", fo, out=True), 1, True], 1),
        "dense_activation_forward blas": (dense.dense_activation_forward, [
            Arr("X", f), Arr("W", (d, o)), Arr("b", (o,)), Arr("A", fo, out=True), RELU, 0.0,
            1, True], 1),
        # the micro-kernel's products split over two threads
        "dense_backward threads": (dense.dense_backward, [
            Arr("X", f), Arr("W", (d, o)), Arr("dY", fo), Arr("dW", (d, o), out=True),
            Arr("db", (o,), out=True), Arr("dX", f, out=True), 2], 1),
        "dense_activation_sgd_backward threads": (dense.dense_activation_sgd_backward, [
            Arr("X", f), Arr("W", (d, o), out=True), Arr("A", fo), Arr("dA", fo),
            Arr("dZ", fo, out=True), Arr("b", (o,), out=True), Arr("dX", f, out=True), RELU, 0.0,
            0.1, 2], 1),
        "read_sum": (packed.read_sum, [Arr("values", f)], 1),
        # losses
        "softmax_cross_entropy": (losses.softmax_cross_entropy, [
            Arr("logits", (n, k)), Arr("labels", (n,), "labels"), Arr("grad", (n, k), out=True),
            Arr("weight", (n,), "positive")], 1),
        "mean_squared_error": (losses.mean_squared_error, [
            Arr("pred", (n, k)), Arr("target", (n, k)), Arr("grad", (n, k), out=True),
            Arr("weight", (n,), "positive")], 1),
        "multiclass_hinge": (losses.multiclass_hinge, [
            Arr("scores", (n, k)), Arr("labels", (n,), "labels"), Arr("grad", (n, k), out=True),
            Arr("weight", (n,), "positive")], 1),
        "binary_cross_entropy_logits": (losses.binary_cross_entropy_logits, [
            Arr("logits", (n, k)), Arr("target", (n, k), "unit"), Arr("grad", (n, k), out=True),
            Arr("weight", (n,), "positive")], 1),
        "poisson_log": (losses.poisson_log, [
            Arr("raw", (n, k)), Arr("target", (n, k), "positive"), Arr("grad", (n, k), out=True),
            Arr("weight", (n,), "positive")], 1),
        # optimizers
        "sgd_update": (optim.sgd_update, [Arr("param", f, out=True), Arr("grad", f), 0.1], 1),
        "momentum_update": (optim.momentum_update, [
            Arr("param", f, out=True), Arr("grad", f), Arr("velocity", f, out=True), 0.1, 0.9], 1),
        "adagrad_update": (optim.adagrad_update, [
            Arr("param", f, out=True), Arr("grad", f), Arr("sum_sq", f, "positive", out=True), 0.1,
            1e-8], 1),
        "rmsprop_update": (optim.rmsprop_update, [
            Arr("param", f, out=True), Arr("grad", f), Arr("mean_sq", f, "positive", out=True), 0.1,
            0.9, 1e-8], 1),
        "adam_update": (optim.adam_update, [
            Arr("param", f, out=True), Arr("grad", f), Arr("m", f, out=True),
            Arr("v", f, "positive", out=True), 0.1, 0.9, 0.999, 1e-8, 1.0], 1),
        "sum_squares": (optim.sum_squares, [Arr("x", f)], 1),
        "clip_inplace": (optim.clip_inplace, [Arr("x", f, out=True), 0.5, 0.3], 1),
        # sparse: a CSR batch of n rows over d features, two stored values a row
        "sparse_forward": (sparse.sparse_forward, [
            *csr, Arr("W", (d, o)), Arr("b", (o,)), Arr("A", fo, out=True), TANH, 0.0, 1], 1),
        "sparse_backward": (sparse.sparse_backward, [
            *csr, Arr("dY", fo), Arr("dW", (d, o), out=True), Arr("db", (o,), out=True), 1], 1),
        "sparse_sgd_backward": (sparse.sparse_sgd_backward, [
            *csr, Arr("dY", fo), Arr("W", (d, o), out=True), Arr("b", (o,), out=True), 0.1,
            1], 1),
    }


KERNELS = sorted(kernel_cases(3, 5))


def name_of(case):
    """The kernel a case calls: its key, less a variant named after a space ("dense_forward
    blas")."""
    return case.split()[0]
#: (kernel, array argument, its parameter, whether it is the kernel's first array)
_ARRAYS = [(kernel, p, i == 0) for kernel in KERNELS
           for i, p in enumerate(q for q in kernel_cases(3, 5)[kernel][1] if isinstance(q, Arr))]
ARGUMENTS = [(kernel, p.name) for kernel, p, _ in _ARRAYS]
OUTPUTS = [(kernel, p.name) for kernel, p, _ in _ARRAYS if p.out]
#: Arrays checked against the first one's shape and float dtype.
LATER = [(kernel, p.name) for kernel, p, first in _ARRAYS if not first]
#: Float arrays after the first, whose dtype is the call's (sparse kernels' come after their
#: int64 CSR structure).
LATER_FLOAT = [(kernel, p.name) for kernel in KERNELS
               for p in [q for q in kernel_cases(3, 5)[kernel][1]
                         if isinstance(q, Arr) and KINDS[q.kind] is None][1:]]
#: (rows, features); past 1024 rows or features the micro-kernel's products run k in chunks
#: and keep partial sums in scratch (the weight gradient's k is the rows).
SHAPES = [(1, 1), (1, 7), (2, 3), (3, 5), (33, 17), (1030, 3), (2, 1030)]
PAD = 8  # elements after each array in its buffer, which must stay untouched
SENTINEL = {np.dtype(np.uint8): 0xAB}


def values(rng, shape, kind, dtype, n_classes):
    size = int(np.prod(shape))
    if kind == "mask":
        return rng.integers(0, 2, size)
    if kind == "labels":
        return rng.integers(0, n_classes, size)
    if kind == "counts":
        return np.zeros(size)
    if kind == "indptr":  # two stored values a row
        return 2 * np.arange(size)
    if kind == "columns":  # of the d = n_classes - 1 features
        return rng.integers(0, n_classes - 1, size)
    if kind == "unit":
        return rng.uniform(0, 1, size)
    if kind.startswith("positive"):
        return rng.uniform(0.5, 2, size)
    return rng.standard_normal(size)


def build(kernel, dtype, n=3, d=5, seed=0):
    """(function, arguments, {name: (array, buffer, parameter)}) with every array carved from
    the front of a longer buffer whose tail holds a sentinel."""
    fn, params, _ = kernel_cases(n, d)[kernel]
    rng = np.random.default_rng(seed)
    args, arrays = [], {}
    for p in params:
        if not isinstance(p, Arr):
            args.append(p)
            continue
        element = KINDS[p.kind] or dtype
        shape = p.shape(dtype)
        size = int(np.prod(shape))
        buffer = np.full(size + PAD, SENTINEL.get(np.dtype(element), 77), dtype=element)
        buffer[:size] = values(rng, shape, p.kind, dtype, d + 1)
        array = buffer[:size].reshape(shape)
        args.append(array)
        arrays[p.name] = (array, buffer, p)
    return fn, args, arrays


def position(kernel, name):
    return next(i for i, p in enumerate(kernel_cases(3, 5)[kernel][1])
                if isinstance(p, Arr) and p.name == name)


def call_with(kernel, dtype, name, replace):
    """Call ``kernel`` with argument ``name`` replaced by ``replace(array)``."""
    fn, args, arrays = build(kernel, dtype)
    args[position(kernel, name)] = replace(arrays[name][0])
    return fn(*args)


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{d}" for n, d in SHAPES])
@pytest.mark.parametrize("kernel", KERNELS)
def test_writes_only_its_outputs(kernel, shape, dtype):
    n, d = shape
    fn, args, arrays = build(kernel, dtype, n, d)
    before = {name: buffer.copy() for name, (_, buffer, _) in arrays.items()}
    if n < kernel_cases(n, d)[kernel][2]:
        with pytest.raises(ValueError, match=f"{name_of(kernel)}: X has {n} rows"):
            fn(*args)
        return
    fn(*args)
    for name, (array, buffer, p) in arrays.items():
        size = array.size
        np.testing.assert_array_equal(buffer[size:], before[name][size:],
                                      err_msg=f"{kernel} wrote past the end of {name}")
        if not p.out:
            np.testing.assert_array_equal(buffer, before[name], err_msg=f"{kernel} wrote {name}")


@pytest.mark.parametrize("kernel", KERNELS)
def test_read_only_inputs_are_accepted(kernel, dtype):
    fn, args, arrays = build(kernel, dtype)
    expected = fn(*args)
    outputs = {name: array.copy() for name, (array, _, p) in arrays.items() if p.out}
    fn, args, arrays = build(kernel, dtype)
    for array, _, p in arrays.values():
        if not p.out:
            array.flags.writeable = False
    assert fn(*args) == expected
    for name, array in outputs.items():
        np.testing.assert_array_equal(arrays[name][0], array, err_msg=name)


@pytest.mark.parametrize("kernel,name", ARGUMENTS, ids=[f"{k}-{a}" for k, a in ARGUMENTS])
def test_wrong_dtype_is_a_type_error_naming_the_argument(kernel, name, dtype):
    wrong = WRONG[next(p.kind for p in kernel_cases(3, 5)[kernel][1]
                       if isinstance(p, Arr) and p.name == name)]
    with pytest.raises(TypeError, match=f"^{name_of(kernel)}: {name} (has dtype|must be float32)"):
        call_with(kernel, dtype, name, lambda a: a.astype(wrong))


@pytest.mark.parametrize("kernel,name", LATER_FLOAT, ids=[f"{k}-{a}" for k, a in LATER_FLOAT])
def test_mixed_float_dtypes_are_refused(kernel, name, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    expected = np.dtype(dtype).name
    with pytest.raises(TypeError, match=f"^{name_of(kernel)}: {name} has dtype {np.dtype(other).name}, "
                                        f"expected {expected}"):
        call_with(kernel, dtype, name, lambda a: a.astype(other))


def strided(array):
    """A view with array's shape and values whose last axis has a stride of two elements."""
    wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
    wide[..., ::2] = array
    return wide[..., ::2]


@pytest.mark.parametrize("kernel,name", ARGUMENTS, ids=[f"{k}-{a}" for k, a in ARGUMENTS])
def test_non_contiguous_is_a_value_error_naming_the_argument(kernel, name, dtype):
    with pytest.raises(ValueError, match=f"^{name_of(kernel)}: {name} must be C-contiguous"):
        call_with(kernel, dtype, name, strided)


@pytest.mark.parametrize("kernel,name", OUTPUTS, ids=[f"{k}-{a}" for k, a in OUTPUTS])
def test_read_only_output_is_a_value_error_naming_the_argument(kernel, name, dtype):
    def read_only(array):
        array.flags.writeable = False
        return array

    with pytest.raises(ValueError, match=f"^{name_of(kernel)}: {name} is read-only"):
        call_with(kernel, dtype, name, read_only)


@pytest.mark.parametrize("kernel,name", LATER, ids=[f"{k}-{a}" for k, a in LATER])
def test_wrong_shape_is_a_value_error_naming_the_argument(kernel, name, dtype):
    """Every array but the first, which sets the shapes the others are checked against."""
    def one_more_row(array):
        return np.concatenate([array, array[:1]])

    with pytest.raises(ValueError, match=f"^{name_of(kernel)}: {name} has shape"):
        call_with(kernel, dtype, name, one_more_row)


@pytest.mark.parametrize("kernel,name", ARGUMENTS, ids=[f"{k}-{a}" for k, a in ARGUMENTS])
def test_a_list_is_a_type_error_naming_the_argument(kernel, name, dtype):
    with pytest.raises(TypeError, match=f"^{name_of(kernel)}: {name} must be a numpy.ndarray, got list"):
        call_with(kernel, dtype, name, lambda a: a.tolist())


#: Public functions of the families that take no arrays (a size, a timing probe): not kernels.
NOT_KERNELS = {"packed_size", "parallel_region"}


def test_every_kernel_of_every_family_is_covered():
    modules = (activations, batchnorm, dense, diagnostics, dropout, losses, optim, packed,
               regularization, sparse)
    kernels = {name for m in modules for name, obj in vars(m).items()
               if callable(obj) and not name.startswith("_") and type(obj).__name__ in
               ("builtin_function_or_method", "cython_function_or_method", "Kernel")}
    assert kernels - NOT_KERNELS == {name_of(case) for case in KERNELS}

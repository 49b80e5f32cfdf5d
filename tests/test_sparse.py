"""Sparse (CSR) input: fastnn_c.sparse against the SciPy reference, the Dense layer, the
network and trainer paths, model files and the scikit-learn estimators."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL
from fastnn_c import activations as _act
from fastnn_c import sparse as _sparse

sp = pytest.importorskip("scipy.sparse")

BATCHES = [1, 7, 64]
WIDTHS = [(1, 1), (5, 3), (300, 17), (1000, 33)]
IDENTITY = _act.KINDS["identity"]


def random_csr(rng, n, n_in, dtype, density=0.05, empty_rows=True):
    """A CSR matrix with some empty rows, in SciPy's canonical form."""
    X = sp.random(n, n_in, density=density, format="csr", dtype=np.float64, random_state=rng)
    X.data = rng.standard_normal(X.nnz)
    if empty_rows and n > 2:  # every third row empty
        X = sp.csr_matrix(sp.diags((np.arange(n) % 3 != 1).astype(float)) @ X)
        X.eliminate_zeros()
    return X.astype(dtype)


def csr_arrays(X):
    """The leading arguments of the sparse kernels for X."""
    return (X.indptr.astype(np.int64), X.indices.astype(np.int64), np.ascontiguousarray(X.data),
            X.shape[1])


def tolerance(dtype, k):
    return dict(rtol=RTOL[dtype] * np.sqrt(k), atol=ATOL[dtype] * k)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("n_in,n_out", WIDTHS, ids=lambda w: str(w))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_kernels_match_reference(dtype, rng, n, n_in, n_out, bias, threads):
    X = random_csr(rng, n, n_in, dtype, density=0.2)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    tol = tolerance(dtype, n_in)

    Y = np.full((n, n_out), np.nan, dtype)
    _sparse.sparse_forward(*csr_arrays(X), W, b, Y, IDENTITY, 0.0, threads)
    np.testing.assert_allclose(Y, ref.sparse_forward(X, W, b), **tol)

    dW, db = np.full_like(W, np.nan), np.full(n_out, np.nan, dtype)
    _sparse.sparse_backward(*csr_arrays(X), dY, dW, db, threads)
    ref_dW, ref_db = ref.sparse_backward(X, dY)
    np.testing.assert_allclose(dW, ref_dW, **tolerance(dtype, n))
    np.testing.assert_allclose(db, ref_db, **tolerance(dtype, n))

    lr = 0.1
    W2, b2 = W.copy(), None if b is None else b.copy()
    _sparse.sparse_sgd_backward(*csr_arrays(X), dY, W2, b2, lr, threads)
    np.testing.assert_allclose(W2, W - lr * ref_dW, **tolerance(dtype, n))
    if bias:
        np.testing.assert_allclose(b2, b - lr * ref_db, **tolerance(dtype, n))
    absent = np.setdiff1d(np.arange(n_in), X.indices)
    np.testing.assert_array_equal(W2[absent], W[absent])  # rows of absent features untouched


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_sparse_forward_fuses_activation(dtype, rng, name):
    X = random_csr(rng, 9, 40, dtype, density=0.3)
    W = rng.standard_normal((40, 11)).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    A = np.empty((9, 11), dtype)
    alpha = 0.1 if name == "leaky_relu" else 0.0
    _sparse.sparse_forward(*csr_arrays(X), W, b, A, _act.KINDS[name], alpha)
    expected, _ = ref.activation(name, ref.sparse_forward(X, W, b).astype(np.float64),
                                 alpha if name == "leaky_relu" else None)
    np.testing.assert_allclose(A, expected, **tolerance(dtype, 40))


def test_threads_give_the_same_bits(rng):
    X = random_csr(rng, 300, 2000, np.float32, density=0.05)
    W = rng.standard_normal((2000, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    dY = rng.standard_normal((300, 64)).astype(np.float32)
    outs = []
    for threads in (1, 2, 3):
        Y, dW, db = np.empty((300, 64), np.float32), np.empty_like(W), np.empty(64, np.float32)
        _sparse.sparse_forward(*csr_arrays(X), W, b, Y, IDENTITY, 0.0, threads)
        _sparse.sparse_backward(*csr_arrays(X), dY, dW, db, threads)
        outs.append((Y, dW, db))
    for Y, dW, db in outs[1:]:
        np.testing.assert_array_equal(Y, outs[0][0])
        np.testing.assert_array_equal(dW, outs[0][1])
        np.testing.assert_array_equal(db, outs[0][2])


def test_unsorted_and_duplicate_indices(dtype, rng):
    # Row 0 holds column 3 twice and its columns out of order; row 1 is empty.
    indptr = np.array([0, 4, 4, 6])
    indices = np.array([3, 0, 3, 2, 1, 0])
    data = rng.standard_normal(6).astype(dtype)
    X = sp.csr_matrix((data, indices, indptr), shape=(3, 4))
    assert not X.has_canonical_format
    W = rng.standard_normal((4, 5)).astype(dtype)
    dY = rng.standard_normal((3, 5)).astype(dtype)
    dense = X.toarray()  # SciPy sums the duplicates
    Y = np.empty((3, 5), dtype)
    _sparse.sparse_forward(*csr_arrays(X), W, None, Y)
    np.testing.assert_allclose(Y, dense @ W, **tolerance(dtype, 4))
    dW = np.empty_like(W)
    _sparse.sparse_backward(*csr_arrays(X), dY, dW, None)
    np.testing.assert_allclose(dW, dense.T @ dY, **tolerance(dtype, 4))


def test_read_only_arrays_are_read(rng):
    X = random_csr(rng, 5, 30, np.float64, density=0.3)
    indptr, indices, data, _ = csr_arrays(X)
    for array in (indptr, indices, data):
        array.flags.writeable = False
    W = rng.standard_normal((30, 4))
    Y = np.empty((5, 4))
    _sparse.sparse_forward(indptr, indices, data, 30, W, None, Y)
    np.testing.assert_allclose(Y, X @ W, rtol=1e-12)


@pytest.mark.parametrize("case,match", [
    ("index_high", r"sparse_forward: indices\[2\] is 30, expected a column in \[0, 30\)"),
    ("index_negative", r"sparse_forward: indices\[0\] is -1, expected a column in \[0, 30\)"),
    ("indptr_length", r"sparse_forward: indices has shape \(4,\), expected \(3,\)"),
    ("indptr_start", r"sparse_forward: indptr\[0\] is 1, expected 0"),
    ("indptr_decreasing", r"sparse_forward: indptr decreases at position 2 \(3 then 2\)"),
    ("indptr_end", r"sparse_forward: indices has shape \(4,\), expected \(9,\)"),
    ("indices_length", r"sparse_forward: indices has shape \(3,\), expected \(4,\)"),
    ("n_features", r"sparse_forward: W has shape \(30, 2\), expected \(31, 2\)"),
])
def test_bad_structure_is_refused(case, match):
    indptr = np.array([0, 3, 3, 4], dtype=np.int64)
    indices = np.array([0, 5, 7, 29], dtype=np.int64)
    data, n_features = np.ones(4), 30
    if case == "index_high":
        indices[2] = 30
    elif case == "index_negative":
        indices[0] = -1
    elif case == "indptr_length":
        indptr = indptr[:3].copy()
    elif case == "indptr_start":
        indptr[0] = 1
    elif case == "indptr_decreasing":
        indptr[2] = 2
    elif case == "indptr_end":
        indptr[3] = 9
    elif case == "indices_length":
        indices = indices[:3].copy()
    elif case == "n_features":
        n_features = 31
    with pytest.raises(ValueError, match=match):
        _sparse.sparse_forward(indptr, indices, data, n_features, np.ones((30, 2)), None,
                               np.empty((3, 2)))


def test_wrong_dtypes_are_refused():
    indptr, indices = np.array([0, 1], dtype=np.int32), np.array([0], dtype=np.int64)
    with pytest.raises(TypeError, match="sparse_forward: indptr has dtype int32, expected int64"):
        _sparse.sparse_forward(indptr, indices, np.ones(1), 2, np.ones((2, 2)), None,
                               np.empty((1, 2)))
    with pytest.raises(TypeError, match="sparse_backward: dY has dtype float32, expected float64"):
        _sparse.sparse_backward(indptr.astype(np.int64), indices, np.ones(1), 2,
                                np.ones((1, 2), np.float32), np.empty((2, 2)), None)


def test_gradient_matches_central_differences(rng):
    """float64: the sparse network's ∂L/∂W and ∂L/∂b of every layer against central
    differences, for features present in the batch and absent from it."""
    X = random_csr(rng, 12, 50, np.float64, density=0.1)
    y = rng.integers(0, 3, 12)
    net = fastnn.mlp([50, 8, 3], activation="tanh", rng=0, dtype=np.float64)
    net.loss(X, y)
    net.backward()
    eps = 1e-6
    for layer in (net.layers[0], net.layers[2]):
        for p in layer.parameters():
            analytic = p.grad.copy()
            flat = p.values.reshape(-1)
            for i in rng.choice(flat.size, size=min(flat.size, 40), replace=False):
                original = flat[i]
                flat[i] = original + eps
                plus = net.loss(X, y)
                flat[i] = original - eps
                minus = net.loss(X, y)
                flat[i] = original
                numeric = (plus - minus) / (2 * eps)
                assert abs(numeric - analytic.reshape(-1)[i]) <= 1e-7 * (1 + abs(numeric))


# -- the layer and the network ---------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_layer_takes_any_format(dtype, rng, fmt):
    layer = fastnn.Dense(30, 4, rng=0, dtype=dtype)
    X = random_csr(rng, 6, 30, np.float64, density=0.3)
    got = layer.forward(X.asformat(fmt)).copy()
    np.testing.assert_allclose(got, ref.sparse_forward(X, layer.weight.data, layer.bias.data),
                               **tolerance(dtype, 30))
    G = rng.standard_normal(got.shape).astype(dtype)
    assert layer.backward(G) is None  # no gradient of a sparse input
    np.testing.assert_allclose(layer.weight.grad, X.T @ G, **tolerance(dtype, 6))


def test_layer_copies_non_contiguous_and_integer_data(rng):
    layer = fastnn.Dense(10, 3, rng=0, dtype=np.float32)
    X = random_csr(rng, 4, 10, np.float64, density=0.5)
    strided = np.repeat(X.data, 2)[::2]
    assert not strided.flags.c_contiguous
    Xs = sp.csr_matrix((strided, X.indices, X.indptr), shape=X.shape)
    expected = ref.sparse_forward(X, layer.weight.data.astype(np.float64), layer.bias.data)
    np.testing.assert_allclose(layer.forward(Xs), expected, rtol=1e-5, atol=1e-6)
    Xi = sp.csr_matrix((np.arange(1, X.nnz + 1), X.indices, X.indptr), shape=X.shape)
    np.testing.assert_allclose(layer.forward(Xi), ref.sparse_forward(
        Xi.astype(np.float64), layer.weight.data.astype(np.float64), layer.bias.data),
        rtol=1e-5, atol=1e-5)


def test_sparse_input_refused_where_dense_is_required(rng):
    X = random_csr(rng, 4, 6, np.float32)
    with pytest.raises(TypeError, match="X is a sparse csr matrix, but dense data is required"):
        fastnn.layers.ReLU().forward(X)
    with pytest.raises(ValueError, match="X has 6 features per row, expected 5"):
        fastnn.Dense(5, 2).forward(X)


def test_network_matches_dense_input(rng):
    """Loss, every gradient and the predictions of a sparse X equal those of X.toarray()."""
    X = random_csr(rng, 40, 120, np.float64, density=0.05)
    y = rng.integers(0, 4, 40)
    net = fastnn.mlp([120, 16, 4], activation="relu", rng=1, dtype=np.float64)
    sparse_loss = net.loss(X, y)
    net.backward()
    sparse_grads = [p.grad.copy() for p in net.parameters()]
    dense_loss = net.loss(X.toarray(), y)
    net.backward()
    assert sparse_loss == pytest.approx(dense_loss, rel=1e-12)
    for got, p in zip(sparse_grads, net.parameters()):
        np.testing.assert_allclose(got, p.grad, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(net.predict(X), net.predict(X.toarray()))
    np.testing.assert_allclose(net.predict_proba(X.tocsc()), net.predict_proba(X.toarray()),
                               rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "momentum"])
def test_fit_matches_dense_input(rng, optimizer):
    X = random_csr(rng, 90, 60, np.float64, density=0.1)
    y = rng.integers(0, 3, 90)
    nets = [fastnn.mlp([60, 12, 3], rng=2, dtype=np.float64) for _ in range(2)]
    for net, data in zip(nets, (X, X.toarray())):
        fastnn.fit(net, data, y, optimizer=optimizer, epochs=3, batch_size=16, rng=3,
                   validation_split=0.2, on_nonfinite="ignore")
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-12)


def test_fused_sgd_step_touches_only_present_rows(rng):
    X = random_csr(rng, 16, 500, np.float32, density=0.01)
    y = rng.integers(0, 2, 16)
    net = fastnn.mlp([500, 8, 2], rng=0)
    opt = fastnn.optimizers.make_optimizer("sgd", net.parameters())
    before = net.layers[0].weight.data.copy()
    net.train_step(X, y, opt)
    after = net.layers[0].weight.data
    present = np.unique(X.indices)
    absent = np.setdiff1d(np.arange(500), present)
    np.testing.assert_array_equal(after[absent], before[absent])
    assert not np.array_equal(after[present], before[present])


def test_fit_on_an_iterable_of_sparse_batches(rng):
    """The out-of-core path: batches as they come, each a sparse matrix."""
    X = random_csr(rng, 64, 40, np.float32, density=0.1)
    y = rng.integers(0, 2, 64)
    batches = [(X[i:i + 16].tocoo(), y[i:i + 16]) for i in range(0, 64, 16)]
    net = fastnn.mlp([40, 8, 2], rng=0)
    history = fastnn.fit(net, batches, None, epochs=2, validation_data=(X, y))
    assert len(history.epochs) == 2
    assert np.isfinite(history.epochs[-1]["val_loss"])


def test_model_file_round_trip(tmp_path, rng):
    X = random_csr(rng, 50, 80, np.float32, density=0.05)
    y = rng.integers(0, 3, 50)
    net = fastnn.mlp([80, 10, 3], rng=0)
    fastnn.fit(net, X, y, epochs=2, batch_size=10)
    path = tmp_path / "model.fastnn"
    fastnn.io.save(path, net)
    loaded = fastnn.io.load(path)
    loaded = loaded.net if hasattr(loaded, "net") else loaded
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), net.predict_proba(X.toarray()),
                               rtol=1e-5, atol=1e-6)


# -- the scikit-learn estimators ------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_estimator_sparse_matches_dense(fmt):
    """scikit-learn's test_sparse_matrices, and partial_fit and predict_proba besides."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=2, return_X_y=True)
    X, y = X[:50], y[:50]
    X_sparse = sp.csr_matrix(X).asformat(fmt)
    clf = fastnn.MLPClassifier(solver="lbfgs", hidden_layer_sizes=15, random_state=1)
    pred_dense = clf.fit(X, y).predict(X)
    pred_sparse = clf.fit(X_sparse, y).predict(X_sparse)
    np.testing.assert_array_equal(pred_dense, pred_sparse)
    np.testing.assert_array_equal(clf.predict(X), clf.predict(X_sparse))
    np.testing.assert_allclose(clf.predict_proba(X_sparse), clf.predict_proba(X), rtol=1e-4,
                               atol=1e-7)  # float32 products summed in another order
    a = fastnn.MLPClassifier(hidden_layer_sizes=8, random_state=0, dtype=np.float64)
    b = fastnn.MLPClassifier(hidden_layer_sizes=8, random_state=0, dtype=np.float64)
    a.partial_fit(X_sparse, y, classes=[0, 1])
    b.partial_fit(X, y, classes=[0, 1])
    for wa, wb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-12)


def test_regressor_takes_sparse_with_early_stopping(rng):
    pytest.importorskip("sklearn")
    X = random_csr(rng, 120, 30, np.float64, density=0.2)
    y = np.asarray(X @ rng.standard_normal(30)).ravel()
    reg = fastnn.MLPRegressor(hidden_layer_sizes=10, max_iter=20, early_stopping=True,
                              random_state=0, dtype=np.float64, n_iter_no_change=50)
    with pytest.warns(Warning, match="Maximum iterations"):
        reg.fit(X, y)
    np.testing.assert_allclose(reg.predict(X), reg.predict(X.toarray()), rtol=1e-12)

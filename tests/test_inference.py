"""The small-batch dense kernels (packed and in place), the compiled evaluation-mode pass
(``fastnn.inference``, ``fastnn_c.stack.DenseStack``) and the parameter versions that keep
it in step with the weights."""
import copy
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
import reference as ref
from fastnn import inference
from fastnn._config import micro_kernel_threads
from fastnn.layers import BatchNorm, Dense, Dropout, ReLU, Tanh
from fastnn_c import activations, dense
from fastnn_c import packed as pk
from fastnn_c import stack as st

RELU = activations.KINDS["relu"]
#: Largest error relative to the scale of the values: float32 rounding, or float64's (a
#: float32 accumulator in the double path is ~1e-7 off and fails the float64 bound).
TOL = {np.float32: 1e-5, np.float64: 1e-12}
ROWS = (1, 7, 8, 31, 32, 33)
WIDTHS = ((1, 1), (3, 3), (784, 3), (3, 784), (784, 33))


def _packed(W):
    packed = np.empty(pk.packed_size(*W.shape, W.dtype), W.dtype)
    pk.dense_pack(W, packed)
    return packed


@pytest.mark.parametrize("n_in,n_out", WIDTHS)
@pytest.mark.parametrize("n", ROWS)
def test_small_batch_kernels_match_numpy_and_gemm(n, n_in, n_out, dtype):
    rng = np.random.default_rng(n * 1000 + n_in + n_out)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    expected = np.maximum(ref.dense_forward(X, W, b), 0)
    gemm, packed, small = (np.empty((n, n_out), dtype) for _ in range(3))
    dense.dense_activation_forward(X, W, b, gemm, RELU, blas=True)
    pk.dense_packed_forward(X, _packed(W), b, packed, RELU)
    dense.dense_activation_forward(X, W, b, small, RELU, threads=1)
    scale = max(np.abs(expected).max(), 1.0)
    for name, out in (("gemm", gemm), ("packed", packed), ("small", small)):
        assert np.abs(out - expected).max() <= TOL[dtype] * scale, name
    np.testing.assert_array_equal(packed, small)  # same micro-kernel, same order of sums


@pytest.mark.parametrize("n_in,n_out", WIDTHS)
@pytest.mark.parametrize("n", ROWS)
def test_weight_products_on_the_micro_kernel_match_numpy(n, n_in, n_out, dtype):
    """dW = Xᵀ dY, dX = dY Wᵀ and the fused update W − lr·Xᵀ dY on the micro-kernel (one
    thread or three), as through the BLAS."""
    rng = np.random.default_rng(n * 7 + n_in + n_out)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    dX_expected, dW_expected, _ = ref.dense_backward(X, W, dY)
    scale = max(np.abs(dW_expected).max(), np.abs(dX_expected).max(), 1.0)
    for micro in (0, 1, 3):
        dW, db, dX = np.empty_like(W), np.empty(n_out, dtype), np.empty_like(X)
        dense.dense_backward(X, W, dY, dW, db, dX, threads=max(micro, 1), blas=micro == 0)
        assert np.abs(dW - dW_expected).max() <= TOL[dtype] * scale
        assert np.abs(dX - dX_expected).max() <= TOL[dtype] * scale
        np.testing.assert_allclose(db, dY.sum(axis=0), rtol=TOL[dtype], atol=TOL[dtype] * scale)
        updated, bias, dX = W.copy(), np.zeros(n_out, dtype), np.empty_like(X)
        dense.dense_sgd_backward(X, updated, dY, bias, dX, 0.5, threads=max(micro, 1), blas=micro == 0)
        assert np.abs(updated - (W - 0.5 * dW_expected)).max() <= TOL[dtype] * scale
        assert np.abs(dX - dX_expected).max() <= TOL[dtype] * scale  # taken with W before the step
        small = np.empty((n, n_out), dtype)
        dense.dense_forward(X, W, None, small, threads=max(micro, 1))
        assert np.abs(small - X @ W).max() <= TOL[dtype] * max(np.abs(X @ W).max(), 1.0)


@pytest.mark.parametrize("n,n_in,n_out", [(300, 1000, 70), (2000, 64, 10), (97, 3000, 45)])
def test_large_products_split_over_row_blocks_and_threads_give_the_same_bits(n, n_in, n_out,
                                                                              dtype):
    """Past one block of rows (about 256 KB of X) the products go block by block, past 1024
    terms k runs in chunks, and with more threads than panels of columns the rows are split
    too; every element is still summed over k in order, so any thread count gives the same
    bits (and the packed path's, which does none of this), and NumPy's values."""
    rng = np.random.default_rng(n + n_in + n_out)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dY = rng.standard_normal((n, n_out)).astype(dtype)
    dX_expected, dW_expected, _ = ref.dense_backward(X, W, dY)
    results = []
    for threads in (1, 2, 3, 16):
        Y, dW, db, dX = (np.empty((n, n_out), dtype), np.empty_like(W), np.empty(n_out, dtype),
                         np.empty_like(X))
        dense.dense_forward(X, W, b, Y, threads=threads)
        dense.dense_backward(X, W, dY, dW, db, dX, threads=threads)
        updated, bias = W.copy(), b.copy()
        dense.dense_sgd_backward(X, updated, dY, bias, np.empty_like(X), 0.5, threads=threads)
        results.append((Y, dW, dX, updated))
    Y, dW, dX, updated = results[0]
    unchunked = np.empty_like(Y)  # the packed path sums all of k in one pass
    pk.dense_packed_forward(X, _packed(W), b, unchunked)
    np.testing.assert_array_equal(Y, unchunked)
    for expected, got in ((ref.dense_forward(X, W, b), Y), (dW_expected, dW), (dX_expected, dX),
                          (W - 0.5 * dW_expected, updated)):
        assert np.abs(got - expected).max() <= TOL[dtype] * max(np.abs(expected).max(), 1.0)
    for threaded in results[1:]:
        for a, b_ in zip(results[0], threaded):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("kind", ["relu", "tanh", "sigmoid", "elu"])
@pytest.mark.parametrize("n,n_in,n_out", [(400, 30, 100), (97, 50, 528), (700, 20, 10)])
def test_training_kernels_elementwise_parts_give_the_same_bits_on_any_threads(n, n_in, n_out,
                                                                              kind, dtype):
    """The activation after the forward product (in each thread's part), the activation
    gradient and the bias step (in blocks of whole 16-column units) run on the products'
    threads: every thread count gives one thread's bits, and NumPy's values."""
    code = activations.KINDS[kind]
    rng = np.random.default_rng(n + n_out)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dA = rng.standard_normal((n, n_out)).astype(dtype)
    results = []
    for threads in (1, 2, 3, 16):
        A = np.empty((n, n_out), dtype)
        dense.dense_activation_forward(X, W, b, A, code, 0.5, threads=threads)
        dZ, dW, db, dX = (np.empty_like(A), np.empty_like(W), np.empty(n_out, dtype),
                          np.empty_like(X))
        dense.dense_activation_backward(X, W, A, dA, dZ, dW, db, dX, code, 0.5, threads=threads)
        stepped, bias = W.copy(), b.copy()
        dense.dense_activation_sgd_backward(X, stepped, A, dA, np.empty_like(A), bias,
                                            np.empty_like(X), code, 0.5, 0.1, threads=threads)
        results.append((A, dZ, dW, db, dX, stepped, bias))
    A, dZ, _, db, _, _, bias = results[0]
    Z = ref.dense_forward(X, W, b)
    expected = {"relu": np.maximum(Z, 0), "tanh": np.tanh(Z), "sigmoid": 1 / (1 + np.exp(-Z)),
                "elu": np.where(Z > 0, Z, 0.5 * np.expm1(np.minimum(Z, 0)))}[kind]
    assert np.abs(A - expected).max() <= TOL[dtype] * max(np.abs(expected).max(), 1.0)
    np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=10 * TOL[dtype], atol=10 * TOL[dtype])
    np.testing.assert_allclose(bias, b - 0.1 * dZ.sum(axis=0), rtol=10 * TOL[dtype], atol=10 * TOL[dtype])
    for threaded in results[1:]:
        for a, b_ in zip(results[0], threaded):
            np.testing.assert_array_equal(a, b_)


def test_a_row_does_not_depend_on_the_batch_around_it(dtype):
    """Same values bit for bit in any order and any batch: scikit-learn checks predictions
    for sample-order and subset invariance."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 19)).astype(dtype)
    W = rng.standard_normal((19, 45)).astype(dtype)
    packed = _packed(W)
    whole = np.empty((40, 45), dtype)
    pk.dense_packed_forward(X, packed, None, whole)
    perm = rng.permutation(40)
    shuffled = np.empty_like(whole)
    pk.dense_packed_forward(X[perm], packed, None, shuffled)
    np.testing.assert_array_equal(shuffled, whole[perm])
    for i in range(0, 40, 7):
        row = np.empty((1, 45), dtype)
        pk.dense_packed_forward(X[i:i + 1], packed, None, row)
        np.testing.assert_array_equal(row[0], whole[i])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "elu"])
def test_a_predicted_row_does_not_depend_on_the_batch_around_it(activation, dtype):
    """The same through a whole network whose activations have vector and scalar code paths,
    at widths that are not whole vectors (45, 9): a row's activations must not move between
    the two with its place in the batch."""
    net = _trained(dict(activation=activation), dtype, sizes=(19, 45, 9, 4))
    X = np.random.default_rng(3).standard_normal((40, 19)).astype(dtype)
    whole = net.predict_proba(X)
    perm = np.random.default_rng(4).permutation(40)
    np.testing.assert_array_equal(net.predict_proba(X[perm]), whole[perm])
    for i in range(0, 40, 7):
        np.testing.assert_array_equal(net.predict_proba(X[i:i + 1])[0], whole[i])


def test_nan_and_inf_propagate_like_gemm(dtype):
    X = np.ones((3, 4), dtype)
    X[1, 2], X[2, 0] = np.nan, np.inf
    W = np.ones((4, 5), dtype)
    expected, packed = np.empty((3, 5), dtype), np.empty((3, 5), dtype)
    dense.dense_forward(X, W, None, expected)
    pk.dense_packed_forward(X, _packed(W), None, packed)
    np.testing.assert_array_equal(packed, expected)
    assert np.isnan(packed[1]).all() and np.isposinf(packed[2]).all()


def test_read_sum_reads_every_value(dtype):
    values = np.arange(1, 1000, dtype=dtype)
    assert pk.read_sum(values) == pytest.approx(values.sum())


def test_packed_size_rounds_up_to_whole_panels(dtype):
    size = pk.packed_size(5, 1, dtype)
    assert size % 5 == 0 and size >= 5
    assert pk.packed_size(5, size // 5, dtype) == size  # exactly one panel
    with pytest.raises(TypeError, match="packed_size: dtype must be float32 or float64"):
        pk.packed_size(5, 1, np.int32)


NETWORKS = {
    "relu": dict(activation="relu"),
    "prelu+bn": dict(activation="prelu", batch_norm=True, dropout=0.2),
    "rrelu+bn-after": dict(activation="rrelu", batch_norm="after"),
    "elu": dict(activation="elu", dropout=0.1),
    "tanh": dict(activation="tanh"),
}


def _trained(options, dtype, sizes=(20, 17, 9, 4), steps=3):
    net = fastnn.mlp(list(sizes), rng=0, dtype=dtype, **options)
    rng = np.random.default_rng(1)
    opt = fastnn.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):  # moves the weights and the running statistics off their start
        net.train_step(rng.standard_normal((16, sizes[0])).astype(dtype),
                       rng.integers(0, sizes[-1], 16), opt)
    return net


def _layer_by_layer(net, X):
    modes = [layer.training for layer in net.layers]
    net.eval()
    try:
        return net.forward(X)
    finally:
        for layer, mode in zip(net.layers, modes):
            layer.train(mode)


@pytest.mark.parametrize("n", (1, 7, 33, 70))
@pytest.mark.parametrize("options", NETWORKS.values(), ids=NETWORKS)
def test_compiled_pass_matches_the_layers(options, n, dtype):
    net = _trained(options, dtype)
    X = np.random.default_rng(2).standard_normal((n, 20)).astype(dtype)
    logits = _layer_by_layer(net, X)
    scale = np.abs(logits).max()
    for head in ("logits", "softmax", "argmax"):
        out = inference.compile_forward(net.layers, net.dtype, head)(X)
        assert out.shape == ((n,) if head == "argmax" else (n, 4))
        assert out.dtype == (np.int64 if head == "argmax" else dtype)
        if head == "logits":
            assert np.abs(out - logits).max() <= TOL[dtype] * scale
        elif head == "softmax":
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            np.testing.assert_allclose(out, p / p.sum(axis=1, keepdims=True), atol=TOL[dtype])
        else:
            margin = np.sort(logits, axis=1)
            clear = margin[:, -1] - margin[:, -2] > 1e-4 * scale  # rows without a near tie
            np.testing.assert_array_equal(out[clear], logits.argmax(axis=1)[clear])


@pytest.mark.parametrize("block_rows,n_threads,stage_threads",
                         [(7, 1, None), (7, 2, None), (3, 4, None), (256, 3, None), (256, 8, None),
                          (256, 1, (3, 1, 2))])
def test_blocks_and_threads_give_the_same_bits(block_rows, n_threads, stage_threads, dtype):
    """Rows split over threads, or (one block) each layer's 3-5 panels of columns."""
    net = _trained(NETWORKS["prelu+bn"], dtype, sizes=(20, 130, 70, 4))
    X = np.random.default_rng(3).standard_normal((50, 20)).astype(dtype)
    stack = inference.compile_forward(net.layers, net.dtype, "softmax").stack
    expected, out = np.empty((50, 4), dtype), np.empty((50, 4), dtype)
    stack(X, expected)
    stack(X, out, block_rows, n_threads, stage_threads)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(net.predict_proba(X), expected)


def test_argmax_head_follows_numpy_on_ties_and_nan():
    W = np.eye(3, dtype=np.float32)
    stack = st.DenseStack([W.shape], [_packed(W)], [None], [None], [0], [0.0], "argmax")
    X = np.array([[1, 1, 0], [0, np.nan, np.nan], [0, 2, 2], [-1, -1, -1]], np.float32)
    out = np.empty(4, np.int64)
    stack(X, out)
    np.testing.assert_array_equal(out, (X @ W).argmax(axis=1))  # NaN rows: the first NaN


@pytest.mark.parametrize("n", (1, 8, 9, 33, 300))
def test_the_schedule_threads_only_work_that_pays(n, monkeypatch):
    net = _trained(NETWORKS["relu"], np.float32, sizes=(20, 130, 70, 4))
    compiled = inference.compile_forward(net.layers, net.dtype, "argmax")
    costs = inference.machine_costs(4, np.float32)
    assert costs.overhead > 0 and costs.rate > 0 and costs.bandwidth > 0
    monkeypatch.setattr(costs, "overhead", 1e9)  # nothing pays for a thread
    block, threads, stage_threads = compiled._schedule(n, 4)
    assert threads == 1 and (stage_threads is None or set(stage_threads) == {1})
    monkeypatch.setattr(costs, "overhead", 1e-12)  # everything does
    block, threads, stage_threads = compiled._schedule(n, 4)
    if n <= inference.COLUMN_SPLIT_ROWS:
        assert block == n and stage_threads == (inference.COLUMN_SPLIT_THREADS,) * 3
    else:
        assert threads == 4 and block == max(inference.MIN_ROWS_PER_THREAD, -(-n // 4))
    X = np.random.default_rng(9).standard_normal((n, 20)).astype(np.float32)
    out = np.empty(n, np.int64)
    compiled.stack(X, out, block, threads, stage_threads)
    np.testing.assert_array_equal(out, net.predict(X))


def test_layers_that_do_not_fold_run_one_by_one(dtype):
    net = fastnn.Sequential([Tanh(), Dense(6, 3, rng=0, dtype=dtype)])
    assert inference.compile_forward(net.layers, net.dtype, "logits") is None
    tail = fastnn.Sequential([Dense(6, 3, rng=0, dtype=dtype), ReLU(), BatchNorm(3, dtype=dtype)],
                             loss="mse")
    assert inference.compile_forward(tail.layers, tail.dtype, "logits") is None
    X = np.random.default_rng(0).standard_normal((5, 6)).astype(dtype)
    np.testing.assert_allclose(net.predict_proba(X).sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(tail.predict(X), _layer_by_layer(tail, X))


def test_batch_norm_before_the_first_dense_layer_folds(dtype):
    bn = BatchNorm(6, dtype=dtype)
    bn.running_mean = np.arange(6)
    bn.running_var = np.arange(1, 7)
    net = fastnn.Sequential([bn, Dense(6, 3, rng=0, dtype=dtype), Dropout(0.5)])
    X = np.random.default_rng(0).standard_normal((5, 6)).astype(dtype)
    assert inference.compile_forward(net.layers, net.dtype, "logits") is not None
    np.testing.assert_allclose(net.evaluate(X, np.zeros(5, np.int64))["loss"],
                               net.loss_fn.value(_layer_by_layer(net, X), np.zeros(5, np.int64)),
                               rtol=1e-5)


def test_every_write_path_moves_the_prediction():
    net = _trained(NETWORKS["relu"], np.float32)
    X = np.random.default_rng(4).standard_normal((6, 20)).astype(np.float32)

    def check():
        np.testing.assert_allclose(net.predict_proba(X),
                                   fastnn.Sequential.predict_proba(net.astype(np.float32), X),
                                   rtol=1e-5, atol=1e-6)

    check()
    opt = fastnn.SGD(net.parameters(), lr=0.5)  # fused plain-SGD step
    net.train_step(X, np.zeros(6, np.int64), opt)
    check()
    fastnn.Adam(net.parameters(), lr=0.5).step()  # unfused optimizer step
    check()
    net.load_state_dict({k: v * 2 for k, v in net.state_dict().items()})
    check()
    dense_layer = net.layers[0]
    dense_layer.max_norm = 0.1
    dense_layer.apply_constraints()
    check()
    dense_layer.weight.data = dense_layer.weight.data * 3  # a new array is noticed by itself
    check()


def test_in_place_writes_are_refused_and_api_writes_show():
    net = _trained(NETWORKS["relu"], np.float32)
    X = np.random.default_rng(5).standard_normal((4, 20)).astype(np.float32)
    before = net.predict_proba(X)
    last = net.layers[-1]
    for p in last.parameters():
        with pytest.raises(ValueError, match=r"p\.copy_\(values\)"):
            p.data[...] = 0
    np.testing.assert_array_equal(net.predict_proba(X), before)  # nothing was written
    for p in last.parameters():
        with p.edit() as w:
            w[...] = 0
    np.testing.assert_allclose(net.predict_proba(X), 0.25, rtol=1e-6)


def test_only_this_networks_writes_build_its_pass_again(monkeypatch):
    net, other = (_trained(NETWORKS[name], np.float32) for name in ("relu", "prelu+bn"))
    X = np.random.default_rng(5).standard_normal((4, 20)).astype(np.float32)
    net.predict(X)
    builds, compile_forward = [], inference.compile_forward
    monkeypatch.setattr(inference, "compile_forward",
                        lambda *args: builds.append(args) or compile_forward(*args))
    other.layers[0].weight.mark_changed()  # a write elsewhere: one version check, no build
    other.train()
    other.forward(X)  # running statistics of another network
    net.predict(X)
    net.predict(X)
    assert builds == []
    net.layers[0].weight.mark_changed()
    net.predict(X)
    net.predict(X)
    assert len(builds) == 1


def test_batch_norm_running_statistics_move_the_prediction():
    net = _trained(NETWORKS["prelu+bn"], np.float32)
    X = np.random.default_rng(6).standard_normal((8, 20)).astype(np.float32)
    before = net.predict_proba(X)
    net.train()
    net.forward(X * 5)  # a training-mode pass updates the running statistics
    after = net.predict_proba(X)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, fastnn.Sequential.predict_proba(net.astype(np.float32), X),
                               rtol=1e-5, atol=1e-6)


def test_concurrent_predictions_are_correct():
    net = _trained(NETWORKS["relu"], np.float32)
    X = np.random.default_rng(7).standard_normal((300, 20)).astype(np.float32)
    expected = net.predict(X)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(np.array_equal(net.predict(X), expected))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and all(results) and len(results) == 80


def test_a_network_with_a_compiled_pass_copies_and_pickles():
    net = _trained(NETWORKS["relu"], np.float32)
    X = np.random.default_rng(8).standard_normal((3, 20)).astype(np.float32)
    expected = net.predict(X)
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        np.testing.assert_array_equal(clone.predict(X), expected)


def test_micro_kernel_threads_follow_the_rule_or_the_environment(monkeypatch):
    from fastnn import _config
    from fastnn_c import SIMD

    wider = SIMD == "avx512"
    threads = fastnn.get_num_threads()
    monkeypatch.setattr(_config, "_micro_kernel_mode", "")  # the rule, whatever CI's leg sets
    try:
        for n in (1, 2):
            fastnn.set_num_threads(n)
            assert micro_kernel_threads() == (n if wider else 0)
        monkeypatch.setattr(_config, "_micro_kernel_mode", "1")  # FASTNN_MICRO_KERNEL=1
        assert micro_kernel_threads() == 2
    finally:
        fastnn.set_num_threads(threads)
    monkeypatch.setattr(_config, "_micro_kernel_mode", "0")
    assert micro_kernel_threads() == 0
    monkeypatch.setattr(_config, "_micro_kernel_mode", "yes")
    with pytest.raises(ValueError, match="FASTNN_MICRO_KERNEL must be 0 or 1"):
        micro_kernel_threads()


def test_the_environment_variable_is_read_at_import():
    code = ("from fastnn import _config; print(_config.micro_kernel_threads())")
    for mode, expected in (("0", "0"), ("1", None)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "FASTNN_MICRO_KERNEL": mode}, check=True)
        assert out.stdout.strip() == expected or (expected is None and int(out.stdout) >= 1)


def test_training_takes_either_kernel_with_the_same_result(monkeypatch, dtype):
    X = np.random.default_rng(10).standard_normal((9, 20)).astype(dtype)
    y = np.arange(9) % 4
    results = []
    from fastnn import _config

    for micro in ("0", "1"):
        monkeypatch.setattr(_config, "_micro_kernel_mode", micro)
        net = _trained(NETWORKS["relu"], dtype, steps=0)
        opt = fastnn.SGD(net.parameters(), lr=0.1)
        losses = [net.train_step(X, y, opt) for _ in range(3)]
        net.loss(X, y)
        net.backward()
        results.append((losses, [p.grad.copy() for p in net.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(a).max())


def test_dense_stack_checks_its_arguments():
    W = np.ones((3, 2), np.float32)
    one = ([W.shape], [_packed(W)], [None], [None], [0], [0.0])
    with pytest.raises(ValueError, match="DenseStack: head must be one of"):
        st.DenseStack(*one, "max")
    with pytest.raises(ValueError, match=r"DenseStack: shapes\[1\] has n_in 3, expected 2"):
        st.DenseStack([W.shape] * 2, [_packed(W)] * 2, [None] * 2, [None] * 2, [0] * 2,
                         [0.0] * 2, "logits")
    with pytest.raises(ValueError, match=r"DenseStack: packed\[0\] has shape"):
        st.DenseStack([W.shape], [np.ones(5, np.float32)], [None], [None], [0], [0.0], "logits")
    with pytest.raises(ValueError, match=r"DenseStack: biases\[0\] has shape"):
        st.DenseStack([W.shape], [_packed(W)], [np.ones(3, np.float32)], [None], [0], [0.0],
                         "logits")
    stack = st.DenseStack(*one, "argmax")
    with pytest.raises(ValueError, match="DenseStack: X has shape"):
        stack(np.ones((2, 4), np.float32), np.empty(2, np.int64))
    with pytest.raises(TypeError, match="DenseStack: out has dtype"):
        stack(np.ones((2, 3), np.float32), np.empty(2, np.int32))
    with pytest.raises(ValueError, match="DenseStack: block_rows and n_threads must be >= 1"):
        stack(np.ones((2, 3), np.float32), np.empty(2, np.int64), 0, 1)
    with pytest.raises(ValueError, match="DenseStack: stage_threads has 2 entries, expected 1"):
        stack(np.ones((2, 3), np.float32), np.empty(2, np.int64), 8, 1, (1, 1))
    with pytest.raises(ValueError, match="parallel_region: n_threads must be >= 1"):
        pk.parallel_region(0)
    assert pk.parallel_region(3) == 3

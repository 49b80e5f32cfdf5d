"""Sequential and mlp: wiring, validation, state, modes, and training on real digits."""
import numpy as np
import pytest

import fastnn
from fastnn import Dense, ReLU, Sequential


def test_mlp_structure_and_default_inits():
    net = fastnn.mlp([784, 30, 10], activation="sigmoid", rng=0)
    assert [type(l).__name__ for l in net.layers] == ["Dense", "Activation", "Dense"]
    assert net.layers[0].init == "glorot_uniform"
    assert fastnn.mlp([4, 3, 2], rng=0).layers[0].init == "he_normal"
    nielsen = fastnn.mlp([784, 30, 10], activation="sigmoid", init="nielsen", rng=0)
    assert abs(nielsen.layers[0].bias.data.std() - 1) < 0.4  # Nielsen's biases are N(0, 1)
    assert net.in_features == 784 and net.out_features == 10


def test_same_seed_same_network():
    a = fastnn.mlp([20, 10, 3], rng=42).state_dict()
    b = fastnn.mlp([20, 10, 3], rng=42).state_dict()
    c = fastnn.mlp([20, 10, 3], rng=43).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_first_layer_skips_input_gradient(rng):
    net = fastnn.mlp([6, 5, 3], rng=0)
    net.loss(rng.standard_normal((4, 6)), [0, 1, 2, 0])
    assert net.backward() is None
    assert not net.layers[0].needs_input_grad and net.layers[2].needs_input_grad


def test_train_step_does_not_allocate_per_layer(rng):
    net = fastnn.mlp([6, 5, 3], rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.1)
    X, y = rng.standard_normal((4, 6)).astype(np.float32), np.array([0, 1, 2, 0])
    net.train_step(X, y, opt)
    buffers = {id(b) for layer in net.layers for b in layer._buffers.values()}
    net.train_step(X, y, opt)
    assert {id(b) for layer in net.layers for b in layer._buffers.values()} == buffers


def test_validation_messages():
    with pytest.raises(TypeError, match=r"layers\[1\] is a str"):
        Sequential([Dense(3, 2), "relu"])
    with pytest.raises(ValueError, match="expects 4 inputs but receives 2"):
        Sequential([Dense(3, 2), ReLU(), Dense(4, 1)])
    with pytest.raises(TypeError, match="share one dtype"):
        Sequential([Dense(3, 2, dtype=np.float32), Dense(2, 2, dtype=np.float64)])
    net = fastnn.mlp([3, 2])
    with pytest.raises(ValueError, match="X has 4 features per row, expected 3"):
        net.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"labels\[0\] = 5 is outside \[0, 2\)"):
        net.loss(np.ones((1, 3)), [5])
    with pytest.raises(TypeError, match="not a fastnn Parameter"):
        fastnn.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="lr must be"):
        fastnn.SGD(net.parameters(), lr=-1)


def test_forward_returns_fresh_arrays_and_chunks_large_inputs(rng):
    net = fastnn.mlp([5, 4, 3], rng=0, dtype=np.float64)
    X = rng.standard_normal((10_000, 5))
    out = net.forward(X)
    first = net.forward(X[:3])
    assert not np.shares_memory(first, out)
    np.testing.assert_allclose(out[:3], first, rtol=1e-12)
    h = np.maximum(X @ net.layers[0].weight.data + net.layers[0].bias.data, 0)
    np.testing.assert_allclose(out, h @ net.layers[2].weight.data + net.layers[2].bias.data, rtol=1e-10)


def test_predict_proba_and_evaluate(rng):
    net = fastnn.mlp([5, 4, 3], rng=0, dtype=np.float64)
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), net.predict(X))
    result = net.evaluate(X, y)
    assert result["accuracy"] == np.mean(net.predict(X) == y)
    assert result["loss"] == pytest.approx(net.loss(X, y))


def test_state_dict_round_trip_and_astype(rng):
    a = fastnn.mlp([5, 4, 3], rng=0)
    b = fastnn.mlp([5, 4, 3], rng=1)
    b.load_state_dict(a.state_dict())
    X = rng.standard_normal((3, 5))
    np.testing.assert_array_equal(a.forward(X), b.forward(X))
    wide = a.astype(np.float64)
    assert wide.dtype == np.float64 and wide.layers[0].weight.data.dtype == np.float64
    np.testing.assert_allclose(wide.forward(X), a.forward(X), rtol=1e-5)
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({"0.weight": a.state_dict()["0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict({**a.state_dict(), "0.bias": np.zeros(7)})


def test_config_round_trip():
    net = fastnn.mlp([5, 4, 3], activation="leaky_relu", alpha=0.2, loss="hinge", rng=0)
    clone = Sequential.from_config(net.get_config())
    assert repr(clone) == repr(net)
    with pytest.raises(ValueError, match="unknown layer class 'Evil'"):
        Sequential.from_config({"layers": [{"class": "Evil", "config": {}}],
                                "loss": {"name": "mse", "config": {}}})


def test_train_and_eval_modes_propagate():
    net = fastnn.mlp([3, 3, 2])
    net.eval()
    assert not net.training and not any(l.training for l in net.layers)
    net.train()
    assert all(l.training for l in net.layers)


@pytest.mark.slow
def test_relu_mlp_reaches_94_percent_on_mnist_small(mnist_small):
    """Done-when of the foundation: 784-100-10 ReLU + plain SGD ≥ 94% on the held-out digits."""
    X, y, X_test, y_test = mnist_small
    net = fastnn.mlp([784, 100, 10], activation="relu", rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        order = rng.permutation(len(X))
        for start in range(0, len(X), 64):
            batch = order[start:start + 64]
            net.train_step(X[batch], y[batch], opt)
    accuracy = net.evaluate(X_test, y_test)["accuracy"]
    assert accuracy >= 0.94, accuracy


@pytest.mark.parametrize("activation,batch_norm", [("relu", False), ("tanh", False), ("selu", False),
                                                   ("relu", True)])
def test_plain_sgd_step_fused_into_gemm_matches_the_unfused_step(dtype, rng, activation, batch_norm):
    """train_step with plain SGD updates W inside the dW GEMM (and batch norm's γ, β right
    after its backward); the result equals loss/backward/step up to rounding."""
    X = rng.standard_normal((17, 6)).astype(dtype)
    y = rng.integers(0, 3, 17)
    fused = fastnn.mlp([6, 7, 5, 3], activation=activation, rng=1, dtype=dtype, batch_norm=batch_norm)
    split = fastnn.mlp([6, 7, 5, 3], activation=activation, rng=1, dtype=dtype, batch_norm=batch_norm)
    opt_fused = fastnn.SGD(fused.parameters(), lr=0.1)
    opt_split = fastnn.SGD(split.parameters(), lr=0.1)
    assert opt_fused.plain_sgd_rate(fused.parameters()) == 0.1
    for _ in range(10):
        loss_fused = fused.train_step(X, y, opt_fused)
        loss_split = split.loss(X, y)
        split.backward()
        opt_split.step()
        assert loss_fused == pytest.approx(loss_split, rel=1e-5 if dtype == np.float32 else 1e-13)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for key, value in split.state_dict().items():
        np.testing.assert_allclose(fused.state_dict()[key], value, rtol=tol, atol=tol, err_msg=key)
    assert opt_fused.step_count == 10 and opt_fused.last_grad_norm is None


@pytest.mark.parametrize("batch_norm", [False, True])
def test_unfused_train_step_is_loss_backward_step_bit_for_bit(rng, batch_norm):
    """train_step(fused=False) is exactly loss, backward, optimizer.step, constraints, and
    leaves this step's gradient in every grad."""
    X = rng.standard_normal((17, 6)).astype(np.float32)
    y = rng.integers(0, 3, 17)
    a = fastnn.mlp([6, 7, 5, 3], rng=1, batch_norm=batch_norm, max_norm=2.0)
    b = fastnn.mlp([6, 7, 5, 3], rng=1, batch_norm=batch_norm, max_norm=2.0)
    opt_a, opt_b = fastnn.SGD(a.parameters(), lr=0.1), fastnn.SGD(b.parameters(), lr=0.1)
    for _ in range(5):
        loss_a = a.train_step(X, y, opt_a, fused=False)
        loss_b = b.loss(X, y)
        b.backward()
        opt_b.step()
        b.apply_constraints()
        assert loss_a == loss_b
        for pa, pb in zip(a.parameters(), b.parameters()):
            np.testing.assert_array_equal(pa.grad, pb.grad)
    for key, value in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[key], value, err_msg=key)
    assert opt_a.last_grad_norm == opt_b.last_grad_norm > 0


def test_fused_step_leaves_dense_gradients_unwritten(rng):
    """The documented cost of the fused step: Dense layers' grad arrays keep their contents."""
    net = fastnn.mlp([6, 5, 3], rng=0)
    for p in net.parameters():
        p.grad.fill(7.0)
    net.train_step(rng.standard_normal((4, 6)), [0, 1, 2, 0], fastnn.SGD(net.parameters(), lr=0.1))
    assert all(np.all(p.grad == 7.0) for p in net.parameters())


def test_plain_sgd_rate_needs_exactly_the_parameters(rng):
    net = fastnn.mlp([6, 5, 3], rng=0)
    opt = fastnn.SGD(net.parameters(), lr=0.25)
    assert opt.plain_sgd_rate(net.parameters()) == 0.25
    assert opt.plain_sgd_rate(list(reversed(net.parameters()))) == 0.25  # a set, not a list
    assert opt.plain_sgd_rate(net.parameters()[:2]) is None
    every, some = tuple(net.parameters()), tuple(net.parameters()[:2])
    assert [opt.plain_sgd_rate(t) for t in (every, some, every, some)] == [0.25, None, 0.25, None]
    opt.lr = 0.5  # the rate is read at each call
    assert opt.plain_sgd_rate(every) == 0.5
    assert fastnn.Adam(net.parameters()).plain_sgd_rate(net.parameters()) is None
    opt.record_fused_step()
    assert opt.step_count == 1 and opt.last_grad_norm is None


@pytest.mark.parametrize("make", [
    lambda net: fastnn.SGD(net.parameters(), lr=0.1, momentum=0.9),
    lambda net: fastnn.SGD(net.parameters(), lr=0.1, weight_decay=1e-3),
    lambda net: fastnn.SGD(net.parameters(), lr=0.1, clip_norm=1.0),
    lambda net: fastnn.SGD(net.parameters()[:2], lr=0.1),
    lambda net: fastnn.Adam(net.parameters()),
], ids=["momentum", "decay", "clip", "subset", "adam"])
def test_other_optimizers_take_the_split_path(rng, make):
    net = fastnn.mlp([6, 5, 3], rng=0)
    opt = make(net)
    net.train_step(rng.standard_normal((4, 6)), [0, 1, 2, 0], opt)
    assert opt.last_grad_norm is not None and opt.last_grad_norm > 0


def test_network_penalties_take_the_split_path(rng):
    l2_net = fastnn.mlp([6, 5, 3], l2=1e-3, rng=0)
    opt = fastnn.SGD(l2_net.parameters(), lr=0.1)
    l2_net.train_step(rng.standard_normal((4, 6)), [0, 1, 2, 0], opt)
    assert opt.last_grad_norm > 0


def test_a_network_knows_neither_files_nor_the_training_loop():
    """Sequential.fit and Sequential.save are gone (fastnn.fit and fastnn.save remain)."""
    assert not hasattr(Sequential, "fit") and not hasattr(Sequential, "save")

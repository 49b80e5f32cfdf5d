"""PReLU and RReLU: kernels against NumPy references, gradients, PyTorch, the random stream."""
import math

import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL
from fastnn import Dense, PReLU, RReLU, Sequential, gradcheck
from fastnn_c import activations as _act

SHAPES = [(1, 1), (1, 7), (5, 3), (33, 17), (64, 129)]
IDS = [f"{n}x{m}" for n, m in SHAPES]


def away_from_zero(rng, shape, dtype, margin=0.05):
    """Normal values with |z| >= margin, so central differences never straddle the kink."""
    z = rng.standard_normal(shape)
    return (np.sign(z) * (np.abs(z) + margin)).astype(dtype)


# -- PReLU kernels ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-unit"])
def test_prelu_kernels_match_reference(shape, shared, dtype, rng):
    Z = rng.standard_normal(shape).astype(dtype)
    Z[0, 0] = 0  # the negative side includes 0, as in PyTorch
    alpha = rng.uniform(-0.5, 0.5, 1 if shared else shape[1]).astype(dtype)
    dA = rng.standard_normal(shape).astype(dtype)
    for array in (Z, alpha, dA):
        array.flags.writeable = False
    A, dZ, dalpha = np.empty_like(Z), np.empty_like(Z), np.full_like(alpha, np.nan)
    _act.prelu_forward(Z, alpha, A)
    _act.prelu_backward(Z, alpha, dA, dZ, dalpha)
    np.testing.assert_array_equal(A, ref.prelu_forward(Z, alpha))
    expected_dZ, expected_dalpha = ref.prelu_backward(Z, alpha, dA)
    np.testing.assert_array_equal(dZ, expected_dZ)
    np.testing.assert_allclose(dalpha, expected_dalpha, rtol=RTOL[dtype],
                               atol=ATOL[dtype] * np.sqrt(Z.size))


def test_prelu_kernels_run_in_place_and_check_alpha(rng):
    Z = rng.standard_normal((4, 3))
    expected = ref.prelu_forward(Z, np.array([0.1, 0.2, 0.3]))
    _act.prelu_forward(Z, np.array([0.1, 0.2, 0.3]), Z)
    np.testing.assert_array_equal(Z, expected)
    with pytest.raises(ValueError,
                       match=r"prelu_forward: alpha has shape \(2,\), expected \(1,\) or \(3,\)"):
        _act.prelu_forward(Z, np.ones(2), np.empty_like(Z))
    with pytest.raises(ValueError,
                       match=r"prelu_backward: dalpha has shape \(3,\), expected \(1,\)"):
        _act.prelu_backward(Z, np.ones(1), Z, np.empty_like(Z), np.empty(3))


def test_prelu_shared_slope_sum_is_accurate_over_many_values():
    # 2²⁰ float32 contributions of −1 each: a float32 running sum would stall at 2²⁴
    # long before; REDUCTION_LANES partial sums in double give the exact count.
    Z = -np.ones((1024, 1024), dtype=np.float32)
    dalpha = np.empty(1, dtype=np.float32)
    _act.prelu_backward(Z, np.full(1, 0.25, np.float32), np.ones_like(Z), np.empty_like(Z), dalpha)
    assert dalpha[0] == -(1024 * 1024)


# -- PReLU layer -----------------------------------------------------------------------------
@pytest.mark.parametrize("num_parameters", [1, 6])
def test_prelu_gradcheck(num_parameters, rng):
    layer = PReLU(num_parameters, dtype=np.float64)
    layer.weight.copy_(rng.uniform(0.05, 0.5, num_parameters))
    result = gradcheck(layer, away_from_zero(rng, (9, 6), np.float64), rng=0, check_input=True)
    assert result.passed and result.max_relative_error < 1e-7, str(result)
    assert {c.name for c in result.checks} == {"input", "PReLU.weight"}


def test_prelu_network_gradcheck(rng):
    net = Sequential([Dense(5, 8, rng=0, dtype=np.float64), PReLU(8, dtype=np.float64),
                      Dense(8, 6, rng=1, dtype=np.float64), PReLU(1, init=0.1, dtype=np.float64),
                      Dense(6, 3, rng=2, dtype=np.float64)])
    result = gradcheck(net, rng.standard_normal((7, 5)), rng.integers(0, 3, 7))
    assert result.passed and result.max_relative_error < 1e-7, str(result)


def test_prelu_layer_defaults_and_config():
    layer = PReLU()
    assert layer.weight.data.tolist() == [0.25] and layer.weight.data.dtype == np.float32
    assert layer.weight.regularize is False and layer.parameters() == [layer.weight]
    assert layer.get_config() == {"num_parameters": 1, "init": 0.25, "dtype": "float32"}
    assert layer.input_features() is None and PReLU(4).input_features() == 4
    with pytest.raises(ValueError, match="X has 3 features per row, expected 4"):
        PReLU(4).forward(np.ones((2, 3), np.float32))


def test_prelu_slope_is_excluded_from_weight_decay_and_l2(rng):
    net = Sequential([Dense(4, 5, rng=0), PReLU(5), Dense(5, 3, rng=1)], l2=0.5)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    prelu = net.layers[1]
    net.penalty()
    before = prelu.weight.data.copy()
    opt = fastnn.SGD(net.parameters(), lr=0.1, weight_decay=0.5)
    net.train_step(X, y, opt)
    # with a zero gradient (no negative inputs would give one) nothing pulls alpha: check the
    # penalty ignores alpha and the step moved it by exactly −lr·grad
    assert math.isclose(net.penalty(), 0.25 * sum(float(np.sum(p.data.astype(np.float64) ** 2))
                                                   for p in net.parameters() if p.regularize))
    np.testing.assert_allclose(prelu.weight.data, before - 0.1 * prelu.weight.grad, rtol=1e-6)


@pytest.mark.parametrize("optimizer", sorted(fastnn.optimizers.OPTIMIZERS))
def test_every_optimizer_updates_the_slope(optimizer, rng):
    net = fastnn.mlp([6, 8, 3], activation="prelu", rng=0)
    opt = fastnn.optimizers.get(optimizer, net.parameters(), lr=0.05)
    before = net.layers[1].weight.data.copy()
    X, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    net.train_step(X, y, opt)
    assert not np.array_equal(net.layers[1].weight.data, before)


# -- RReLU kernels ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("size", [1, 7, 1000, 70001])  # 70001 > one chunk: the threaded path
def test_rrelu_kernels_match_reference(size, n_threads, dtype, rng):
    Z = rng.standard_normal(size).astype(dtype)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    seed, counter = 2 ** 63 + 99, 5
    _act.rrelu_forward(Z, A, 0.125, 1 / 3, seed, counter, n_threads)
    r = ref.rrelu_slopes(Z.shape, 0.125, 1 / 3, seed, counter, dtype)
    np.testing.assert_allclose(A, ref.rrelu_forward(Z, r), rtol=RTOL[dtype], atol=0)
    dA = rng.standard_normal(size).astype(dtype)
    _act.rrelu_backward(A, dA, dZ, 0.125, 1 / 3, seed, counter, n_threads)
    np.testing.assert_allclose(dZ, np.where(Z > 0, dA, r * dA), rtol=RTOL[dtype], atol=0)


def test_rrelu_kernels_check_bounds():
    Z = np.ones(3)
    for lower, upper in ((-0.1, 0.2), (0.3, 0.2), (0.1, math.inf), (math.nan, 0.2)):
        with pytest.raises(ValueError, match="rrelu_forward: needs 0 <= lower <= upper"):
            _act.rrelu_forward(Z, np.empty(3), lower, upper, 1, 0)
        with pytest.raises(ValueError, match="rrelu_backward: needs 0 <= lower <= upper"):
            _act.rrelu_backward(Z, Z, np.empty(3), lower, upper, 1, 0)


# -- RReLU layer -----------------------------------------------------------------------------
def test_rrelu_training_slopes_are_uniform(dtype):
    """Kolmogorov–Smirnov: the slopes drawn on negative inputs against U[lower, upper]."""
    lower, upper = 1 / 8, 1 / 3
    layer = RReLU(lower, upper, rng=2024)
    Z = -np.linspace(0.5, 2.0, 200_000).astype(dtype).reshape(400, 500)
    slopes = np.sort((layer.forward(Z).astype(np.float64) / Z.astype(np.float64)).ravel())
    assert lower <= slopes[0] and slopes[-1] <= upper
    cdf = (slopes - lower) / (upper - lower)
    n = slopes.size
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.63 / math.sqrt(n)  # the 1% critical value: rejected by chance once in 100 seeds
    assert abs(slopes.mean() - (lower + upper) / 2) < 3 * (upper - lower) / math.sqrt(12 * n)


def test_rrelu_checks_its_range():
    assert RReLU().get_config() == {"lower": 0.125, "upper": 1 / 3} and RReLU().slope == 11 / 48
    for lower, upper in ((-0.1, 0.2), (0.3, 0.2)):
        with pytest.raises(ValueError, match="lower|upper"):
            RReLU(lower, upper)


def test_rrelu_positive_side_and_eval_mode(rng):
    layer = RReLU(0.1, 0.3, rng=0)
    Z = rng.standard_normal((50, 20))
    A = layer.forward(Z)
    np.testing.assert_array_equal(A[Z > 0], Z[Z > 0])
    assert np.unique(A[Z < 0] / Z[Z < 0]).size > 400  # a slope per element (~500 negative)
    layer.eval()
    np.testing.assert_allclose(layer.forward(Z), np.where(Z > 0, Z, 0.2 * Z), rtol=1e-15)
    dA = rng.standard_normal(Z.shape)
    np.testing.assert_allclose(layer.backward(dA), np.where(Z > 0, dA, 0.2 * dA), rtol=1e-15)


def test_rrelu_each_call_draws_new_slopes_and_backward_uses_its_forward(rng):
    layer = RReLU(rng=1)
    Z = -np.abs(rng.standard_normal((8, 9))) - 0.1
    first = layer.forward(Z).copy()
    second = layer.forward(Z).copy()
    assert not np.array_equal(first, second)
    dA = rng.standard_normal(Z.shape)
    np.testing.assert_allclose(layer.backward(dA), dA * second / Z, rtol=1e-14)


def test_rrelu_gradcheck(rng):
    layer = RReLU(rng=3)
    result = gradcheck(layer, away_from_zero(rng, (9, 7), np.float64), rng=0, check_input=True)
    assert result.passed and result.max_relative_error < 1e-7, str(result)
    assert int(layer.state_dict()["counter"][0]) == 0  # gradcheck restores the stream


def test_rrelu_network_gradcheck(rng):
    net = fastnn.mlp([5, 8, 6, 3], activation="rrelu", dtype=np.float64, rng=4)
    result = gradcheck(net, rng.standard_normal((7, 5)), rng.integers(0, 3, 7))
    assert result.passed and result.max_relative_error < 1e-7, str(result)


def test_rrelu_frozen_randomness_repeats_the_slopes(rng):
    layer = RReLU(rng=5)
    Z = rng.standard_normal((4, 6))
    with layer.frozen_randomness():
        first = layer.forward(Z).copy()
        np.testing.assert_array_equal(layer.forward(Z), first)
    assert not np.array_equal(layer.forward(Z), first)


def test_rrelu_stream_resumes_from_state_dict(rng):
    a, b = RReLU(rng=6), RReLU(rng=7)
    Z = rng.standard_normal((10, 10))
    a.forward(Z)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(Z), b.forward(Z))
    assert set(a.state_dict()) == {"seed", "counter"}


def test_rrelu_model_file_round_trip_resumes_the_stream(tmp_path, rng):
    net = fastnn.mlp([6, 10, 3], activation="rrelu", rng=8)
    X, y = rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 3, 16)
    net.train_step(X, y, fastnn.SGD(net.parameters(), lr=0.1))
    fastnn.save(tmp_path / "model", net)
    loaded = fastnn.load(tmp_path / "model").net.train()
    assert isinstance(loaded.layers[1], RReLU)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


def test_prelu_model_file_round_trip(tmp_path, rng):
    net = fastnn.mlp([6, 10, 3], activation="prelu", rng=9)
    net.train_step(rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 3, 16),
                   fastnn.Adam(net.parameters(), lr=0.1))
    fastnn.save(tmp_path / "model", net)
    loaded = fastnn.load(tmp_path / "model").net
    np.testing.assert_array_equal(loaded.layers[1].weight.data, net.layers[1].weight.data)
    assert loaded.layers[1].weight.data.shape == (10,)


# -- mlp -------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["prelu", "rrelu"])
def test_mlp_trains_with_each(activation, rng):
    centers = rng.standard_normal((3, 10)) * 3
    y = rng.integers(0, 3, 600)
    X = (centers[y] + rng.standard_normal((600, 10))).astype(np.float32)
    net = fastnn.mlp([10, 32, 32, 3], activation=activation, rng=0)
    assert net.layers[0].init == "he_normal"
    # (lr 0.05 diverges with PReLU here: the slopes grow past 1 within 20 steps)
    fastnn.fit(net, X, y, optimizer=fastnn.SGD(net.parameters(), lr=0.01, momentum=0.9),
               epochs=5, batch_size=32, rng=0)
    assert net.evaluate(X, y)["accuracy"] > 0.95


def test_mlp_layers_and_alpha():
    net = fastnn.mlp([4, 5, 6, 2], activation="prelu", alpha=0.1)
    prelus = [layer for layer in net.layers if isinstance(layer, PReLU)]
    assert [p.weight.data.shape for p in prelus] == [(5,), (6,)]
    assert all(np.all(p.weight.data == np.float32(0.1)) for p in prelus)
    with pytest.raises(ValueError, match="rrelu' takes no alpha"):
        fastnn.mlp([4, 5, 2], activation="rrelu", alpha=0.1)
    with pytest.raises(ValueError, match="unknown activation 'prelux'; choose from .*prelu, rrelu"):
        fastnn.mlp([4, 5, 2], activation="prelux")


# -- PyTorch ---------------------------------------------------------------------------------
@pytest.fixture
def torch():
    return pytest.importorskip("torch",
                               reason="torch is not installed (pip install 'fastnn[torch]')")


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("num_parameters", ["one", "units"])
def test_prelu_matches_torch(torch, shape, num_parameters, rng):
    k = 1 if num_parameters == "one" else shape[1]
    layer = PReLU(k, dtype=np.float64)
    layer.weight.copy_(rng.uniform(-0.3, 0.6, k))
    module = torch.nn.PReLU(k, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
    Z = rng.standard_normal(shape)
    Z[0, 0] = 0
    dA = rng.standard_normal(shape)
    z = torch.from_numpy(Z).requires_grad_()
    out = module(z)
    out.backward(torch.from_numpy(dA))
    A = layer.forward(Z)
    dZ = layer.backward(dA)
    np.testing.assert_array_equal(A, out.detach().numpy())
    np.testing.assert_array_equal(dZ, z.grad.numpy())
    np.testing.assert_allclose(layer.weight.grad, module.weight.grad.numpy(), rtol=1e-13,
                               atol=1e-14 * math.sqrt(Z.size))


def test_rrelu_eval_matches_torch(torch, rng):
    layer = RReLU(0.05, 0.4, rng=0).eval()
    module = torch.nn.RReLU(0.05, 0.4).eval()
    Z = rng.standard_normal((33, 17))
    dA = rng.standard_normal(Z.shape)
    z = torch.from_numpy(Z).requires_grad_()
    out = module(z)
    out.backward(torch.from_numpy(dA))
    np.testing.assert_allclose(layer.forward(Z), out.detach().numpy(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(layer.backward(dA), z.grad.numpy(), rtol=1e-15, atol=0)


def test_rrelu_training_slopes_like_torch(torch):
    """Same distribution as torch's training-mode slopes: range and mean, and a two-sample KS."""
    lower, upper = 1 / 8, 1 / 3
    Z = -np.linspace(0.5, 2.0, 100_000).reshape(200, 500)
    ours = np.sort((RReLU(lower, upper, rng=11).forward(Z) / Z).ravel())
    torch.manual_seed(11)
    drawn = torch.nn.RReLU(lower, upper).train()(torch.from_numpy(Z)).numpy()
    theirs = np.sort((drawn / Z).ravel())
    for slopes in (ours, theirs):
        assert lower <= slopes[0] < lower + 1e-3 and upper - 1e-3 < slopes[-1] <= upper
    assert abs(ours.mean() - theirs.mean()) < 1e-3
    grid = np.linspace(lower, upper, 2001)
    ks = np.max(np.abs(np.searchsorted(ours, grid) - np.searchsorted(theirs, grid))) / ours.size
    assert ks < 1.63 * math.sqrt(2 / ours.size)  # two-sample KS at 1%

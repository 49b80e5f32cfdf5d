"""Optimizers: kernels and 50-step trajectories against textbook NumPy rules (and torch.optim)."""
import json
import math

import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import ATOL, RTOL
from fastnn import optimizers
from fastnn.layers import Parameter
from fastnn_c import optim as _optim

#: Trajectories accumulate rounding over 50 steps: looser than single-kernel tolerances.
TRAJ_RTOL = {np.float32: 2e-4, np.float64: 1e-10}
TRAJ_ATOL = {np.float32: 2e-5, np.float64: 1e-12}


# -- problems: parameters plus a function that fills their gradients ---------------------

def quadratic(dtype):
    """f = Σ ½ a (θ − c)² over a (4, 5) weight and a (5,) bias, with varied curvature."""
    rng = np.random.default_rng(7)
    shapes = [((4, 5), True), ((5,), False)]
    params, consts = [], []
    for shape, regularize in shapes:
        params.append(Parameter(rng.normal(size=shape).astype(dtype), "w" if regularize else "b",
                                regularize))
        consts.append((rng.uniform(0.5, 3.0, shape).astype(dtype),
                       rng.normal(size=shape).astype(dtype)))

    def fill_grads():
        for p, (a, c) in zip(params, consts):
            p.grad[...] = a * (p.data - c)

    return params, fill_grads


def small_network(dtype):
    """A 6-9-4 ReLU net with a fixed batch of 16; gradients from its own backward pass."""
    net = fastnn.mlp([6, 9, 4], rng=3, dtype=dtype)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(16, 6)).astype(dtype)
    y = rng.integers(0, 4, 16)

    def fill_grads():
        net.loss(X, y)
        net.backward()

    return net.parameters(), fill_grads


PROBLEMS = {"quadratic": quadratic, "network": small_network}

CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, weight_decay=0.05, clip_norm=0.5, clip_value=0.1)),
    ("momentum", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("momentum", dict(lr=0.05, momentum=0.8, clip_norm=1.0)),
    ("nesterov", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("adagrad", dict(lr=0.1, weight_decay=0.01, clip_value=0.5)),
    ("rmsprop", dict(lr=0.01, rho=0.9, weight_decay=0.01)),
    ("adam", dict(lr=0.01, weight_decay=0.01)),
    ("adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, clip_norm=0.3)),
    ("adamw", dict(lr=0.01, weight_decay=0.1, clip_value=1.0)),
]
CASE_IDS = [f"{name}-{'-'.join(k for k in hp if k != 'lr') or 'plain'}" for name, hp in CASES]


def run_fastnn(problem, dtype, name, hp, steps=50):
    params, fill_grads = PROBLEMS[problem](dtype)
    opt = optimizers.get(name, params, **hp)
    norms = []
    for _ in range(steps):
        fill_grads()
        opt.step()
        norms.append(opt.last_grad_norm)
    return [p.data.copy() for p in params], norms


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_trajectory_matches_numpy_reference(problem, name, hp, dtype):
    ours, norms = run_fastnn(problem, dtype, name, hp)
    params, fill_grads = PROBLEMS[problem](dtype)
    initial = [p.data.copy() for p in params]
    textbook = ref.Optimizer(name, **hp)
    ref_norms = []
    for _ in range(50):
        fill_grads()
        ref_norms.append(math.sqrt(sum(ref.sum_squares(p.grad) for p in params)))
        textbook.step(params)
    for got, p, start in zip(ours, params, initial):
        assert got.dtype == dtype
        assert np.max(np.abs(got - start)) > 1e-3          # the parameters did move
        np.testing.assert_allclose(got, p.data, rtol=TRAJ_RTOL[dtype], atol=TRAJ_ATOL[dtype])
    np.testing.assert_allclose(norms, ref_norms, rtol=TRAJ_RTOL[dtype])


def torch_optimizer(torch, name, params, hp):
    """The torch.optim equivalent; weight decay only in the group of regularized parameters."""
    hp = dict(hp)
    hp.pop("clip_norm", None), hp.pop("clip_value", None)
    wd = hp.pop("weight_decay", 0.0)
    tensors = [torch.from_numpy(p.values) for p in params]  # torch steps them in place
    for t, p in zip(tensors, params):
        t.grad = torch.from_numpy(p.grad)          # shares memory with p.grad
    groups = [{"params": [t for t, p in zip(tensors, params) if p.regularize], "weight_decay": wd},
              {"params": [t for t, p in zip(tensors, params) if not p.regularize],
               "weight_decay": 0.0}]
    if name in ("sgd", "momentum", "nesterov"):
        mu = hp.pop("momentum", 0.0 if name == "sgd" else 0.9)
        return tensors, torch.optim.SGD(groups, momentum=mu, nesterov=name == "nesterov", **hp)
    if name == "adagrad":
        return tensors, torch.optim.Adagrad(groups, **hp)
    if name == "rmsprop":
        hp["alpha"] = hp.pop("rho", 0.99)
        return tensors, torch.optim.RMSprop(groups, **hp)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return tensors, cls(groups, **hp)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_trajectory_matches_torch(problem, name, hp, dtype):
    """Same trajectory as torch.optim with a constant lr (where torch's momentum form agrees)."""
    torch = pytest.importorskip("torch")
    ours, _ = run_fastnn(problem, dtype, name, hp)
    params, fill_grads = PROBLEMS[problem](dtype)
    tensors, opt = torch_optimizer(torch, name, params, hp)
    for _ in range(50):
        fill_grads()
        if "clip_norm" in hp:
            torch.nn.utils.clip_grad_norm_(tensors, hp["clip_norm"])
        if "clip_value" in hp:
            torch.nn.utils.clip_grad_value_(tensors, hp["clip_value"])
        opt.step()
    for got, p in zip(ours, params):
        np.testing.assert_allclose(got, p.data, rtol=TRAJ_RTOL[dtype], atol=TRAJ_ATOL[dtype])


def test_momentum_differs_from_torch_form_when_lr_changes():
    """Documented difference: here a new lr applies to new gradients only (v = μv − αg)."""
    params, fill = quadratic(np.float64)
    opt = optimizers.Momentum(params, lr=0.1, momentum=0.9)
    fill()
    opt.step()
    velocity = opt.state[0]["velocity"].copy()
    opt.lr = 0.01
    fill()
    before = params[0].data.copy()
    grad = params[0].grad.copy()
    opt.step()
    np.testing.assert_allclose(params[0].data - before, 0.9 * velocity - 0.01 * grad, rtol=1e-12)


# -- kernels --------------------------------------------------------------------------

SIZES = [1, 7, 1000]
OPTIONS = [dict(), dict(weight_decay=0.1, grad_scale=0.5, clip_value=0.3)]


def _kernel_inputs(rng, n, dtype):
    x, g = (rng.normal(size=n).astype(dtype) for _ in range(2))
    s1 = rng.normal(size=n).astype(dtype)
    s2 = rng.uniform(0.1, 1.0, n).astype(dtype)           # second moments are >= 0
    return x, g, s1, s2


def _eff(g, x, opt):
    clip = opt.get("clip_value")
    return ref.effective_grad(g, x, opt.get("grad_scale", 1.0), clip, opt.get("weight_decay", 0.0))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("opt", OPTIONS, ids=["plain", "decay-scale-clip"])
@pytest.mark.parametrize("kernel", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_kernel_matches_reference(kernel, opt, n, dtype, rng):
    x, g, s1, s2 = _kernel_inputs(rng, n, dtype)
    ex, es1, es2 = x.copy(), s1.copy(), np.abs(s1 * s2)
    s2 = es2.copy()
    ge = _eff(g, ex, opt)
    lr, mu, rho, eps = 0.05, 0.9, 0.95, 1e-7
    if kernel == "sgd":
        _optim.sgd_update(x, g, lr, **opt)
        ex -= lr * ge
    elif kernel == "momentum":
        _optim.momentum_update(x, g, s1, lr, mu, **opt)
        es1 = mu * es1 - lr * ge
        ex += es1
    elif kernel == "nesterov":
        _optim.momentum_update(x, g, s1, lr, mu, nesterov=True, **opt)
        v_new = mu * es1 - lr * ge
        ex += -mu * es1 + (1 + mu) * v_new
        es1 = v_new
    elif kernel == "adagrad":
        s1 = np.abs(s1)
        es1 = s1.copy()
        _optim.adagrad_update(x, g, s1, lr, eps, **opt)
        es1 += ge * ge
        ex -= lr * ge / (np.sqrt(es1) + eps)
    elif kernel == "rmsprop":
        s1 = np.abs(s1)
        es1 = s1.copy()
        _optim.rmsprop_update(x, g, s1, lr, rho, eps, **opt)
        es1 = rho * es1 + (1 - rho) * ge * ge
        ex -= lr * ge / (np.sqrt(es1) + eps)
    else:
        t, b1, b2, decay = 3, 0.9, 0.999, 0.99
        _optim.adam_update(x, g, s1, s2, lr / (1 - b1 ** t), b1, b2, eps,
                           1 / math.sqrt(1 - b2 ** t), decay_factor=decay, **opt)
        es1 = b1 * es1 + (1 - b1) * ge
        es2 = b2 * es2 + (1 - b2) * ge * ge
        ex = decay * ex - lr * (es1 / (1 - b1 ** t)) / (np.sqrt(es2 / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(s2, es2, rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_allclose(s1, es1, rtol=RTOL[dtype], atol=ATOL[dtype])
    np.testing.assert_allclose(x, ex, rtol=RTOL[dtype], atol=ATOL[dtype])


def test_kernels_check_sizes_and_layout(dtype):
    x, g, v = np.zeros(5, dtype), np.zeros(4, dtype), np.zeros(5, dtype)
    with pytest.raises(ValueError, match="sgd_update"):
        _optim.sgd_update(x, g, 0.1)
    with pytest.raises(ValueError, match="momentum_update"):
        _optim.momentum_update(x, np.zeros(5, dtype), np.zeros(3, dtype), 0.1, 0.9)
    with pytest.raises(ValueError, match="adam_update"):
        _optim.adam_update(x, np.zeros(5, dtype), v, np.zeros(6, dtype), 0.1, 0.9, 0.9, 1e-8, 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        _optim.sgd_update(np.zeros(10, dtype)[::2], np.zeros(5, dtype), 0.1)
    with pytest.raises(ValueError, match=r"v has shape \(6,\), expected \(5,\)"):
        _optim.adam_update(x, x.copy(), v, np.zeros(6, dtype), 0.1, 0.9, 0.9, 1e-8, 1.0)
    with pytest.raises(ValueError, match=r"grad has shape \(4, 3\), expected \(3, 4\)"):
        _optim.sgd_update(np.zeros((3, 4), dtype), np.zeros((4, 3), dtype), 0.1)
    other = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match="grad has dtype"):
        _optim.sgd_update(x, np.zeros(5, other), 0.1)
    with pytest.raises(TypeError, match="param must be a numpy.ndarray, got list"):
        _optim.sgd_update([0.0] * 5, x, 0.1)
    read_only = np.zeros(5, dtype)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="velocity is read-only"):
        _optim.momentum_update(x, x.copy(), read_only, 0.1, 0.9)


def test_clip_propagates_nan():
    x = np.array([np.nan, 5.0, -5.0, 0.5])
    _optim.clip_inplace(x, 1.0, 1.0)
    np.testing.assert_array_equal(x, [np.nan, 1.0, -1.0, 0.5])


@pytest.mark.parametrize("kernel", ["momentum", "nesterov", "rmsprop", "adam"])
def test_decaying_state_flushes_to_zero_instead_of_going_subnormal(kernel, dtype):
    """With a zero gradient the state decays geometrically; below the smallest normal number
    it becomes exactly 0 (subnormal arithmetic is ~3x slower), and NaN still propagates."""
    tiny = np.finfo(dtype).tiny
    x, g = np.ones(3, dtype), np.zeros(3, dtype)
    s1 = np.array([3 * tiny, -3 * tiny, np.nan], dtype)
    s2 = np.array([3 * tiny, 3 * tiny, 1.0], dtype)
    seen = []
    for _ in range(30):
        if kernel in ("momentum", "nesterov"):
            _optim.momentum_update(x, g, s1, 0.1, 0.5, nesterov=kernel == "nesterov")
        elif kernel == "rmsprop":
            _optim.rmsprop_update(x, g, s2, 0.1, 0.5, 1e-8)
        else:
            _optim.adam_update(x, g, s1, s2, 0.1, 0.5, 0.5, 1e-8, 1.0)
        used = {"rmsprop": [s2], "adam": [s1, s2]}.get(kernel, [s1])
        seen.append(np.concatenate([state[:2] for state in used]))
    seen = np.abs(np.array(seen))
    assert not np.any((seen > 0) & (seen < tiny)), "a state value went subnormal"
    assert np.all(seen[-1] == 0) and np.any(seen[0] > 0)
    assert np.isnan(s1[2]) or kernel == "rmsprop"


@pytest.mark.parametrize("n", [0, 1, 5, 1003])
def test_sum_squares(n, dtype, rng):
    x = rng.normal(size=n).astype(dtype)
    np.testing.assert_allclose(_optim.sum_squares(x), ref.sum_squares(x), rtol=1e-13)


def test_sum_squares_accumulates_in_double():
    x = np.full(1001, 1e20, np.float32)            # x² overflows float32
    assert _optim.sum_squares(x) == pytest.approx(1001 * float(np.float32(1e20)) ** 2, rel=1e-12)


# -- clipping ------------------------------------------------------------------------

def _params_with_grads(dtype, rng, scale=3.0):
    params = [Parameter(np.zeros((3, 4), dtype), "weight"),
              Parameter(np.zeros(4, dtype), "bias", regularize=False)]
    for p in params:
        p.grad[...] = scale * rng.normal(size=p.grad.shape)
    return params


def test_clip_grad_norm(dtype, rng):
    params = _params_with_grads(dtype, rng)
    grads = [p.grad.copy() for p in params]
    norm = math.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
    assert norm > 1
    assert optimizers.clip_grad_norm(params, 1.0) == pytest.approx(norm, rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * (1.0 / (norm + 1e-6)), rtol=RTOL[dtype])
    assert optimizers.global_grad_norm(params) == pytest.approx(1.0, rel=1e-5)
    # Below the limit nothing changes.
    before = [p.grad.copy() for p in params]
    optimizers.clip_grad_norm(params, 10.0)
    for p, g in zip(params, before):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_grad_value(dtype, rng):
    params = _params_with_grads(dtype, rng)
    grads = [p.grad.copy() for p in params]
    assert optimizers.clip_grad_value(params, 0.7) is None
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, np.clip(g, -0.7, 0.7))


def test_clip_option_leaves_grad_and_matches_manual_clip(dtype, rng):
    params = _params_with_grads(dtype, rng)
    grads = [p.grad.copy() for p in params]
    opt = optimizers.SGD(params, lr=0.1, clip_norm=1.0)
    opt.step()
    norm = math.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
    assert opt.last_grad_norm == pytest.approx(norm, rel=1e-12)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)        # the option does not touch p.grad
        np.testing.assert_allclose(p.data, -0.1 * g / (norm + 1e-6), rtol=RTOL[dtype])


def test_step_uses_a_given_grad_norm(dtype, rng):
    """step(grad_norm=...) clips with the norm the caller computed (fit passes its check's)."""
    params = _params_with_grads(dtype, rng)
    grads = [p.grad.copy() for p in params]
    opt = optimizers.SGD(params, lr=0.1, clip_norm=1.0)
    opt.step(grad_norm=4.0)
    assert opt.last_grad_norm == 4.0
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.data, -0.1 * g / (4.0 + 1e-6), rtol=RTOL[dtype])


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_weight_decay_spares_biases(name):
    params = [Parameter(np.ones((2, 3)), "weight"), Parameter(np.ones(3), "bias", regularize=False)]
    opt = optimizers.get(name, params, lr=0.1, weight_decay=0.5)
    opt.step()                                           # zero gradients: only decay acts
    assert np.all(params[0].data < 1)
    np.testing.assert_array_equal(params[1].data, 1.0)


# -- state ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, hp", CASES, ids=CASE_IDS)
def test_state_dict_round_trip_is_bit_identical(name, hp, tmp_path):
    params, fill = small_network(np.float32)
    opt = optimizers.get(name, params, **hp)
    for _ in range(10):
        fill()
        opt.step()
    saved_params = [p.data.copy() for p in params]
    np.savez(tmp_path / "opt.npz", **opt.state_dict())   # the format survives .npz files
    for _ in range(10):
        fill()
        opt.step()
    expected = [p.data.copy() for p in params]

    params2, fill2 = small_network(np.float32)
    for p, saved in zip(params2, saved_params):
        p.copy_(saved)
    opt2 = optimizers.get(name, params2, **opt.get_config())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        opt2.load_state_dict(dict(f))
    assert opt2.step_count == 10
    for _ in range(10):
        fill2()
        opt2.step()
    for a, b in zip(expected, params2):
        np.testing.assert_array_equal(a, b.data)
    assert opt2.state_dict().keys() == opt.state_dict().keys()


def test_state_dict_format():
    params, fill = small_network(np.float64)
    opt = optimizers.Adam(params, lr=1e-3)
    fill()
    opt.step()
    state = opt.state_dict()
    assert state["name"] == "adam" and state["lr"] == 1e-3 and state["step_count"] == 1
    assert set(state) == {"name", "lr", "step_count"} | {
        f"state.{i}.{s}" for i in range(len(params)) for s in ("m", "v")}
    for i, p in enumerate(params):
        assert state[f"state.{i}.m"].shape == p.data.shape
        assert state[f"state.{i}.m"].dtype == p.data.dtype
    for value in state.values():
        assert isinstance(value, (np.ndarray, int, float, str, bool, type(None)))
    state["state.0.m"][...] = 123                        # copies, not views
    assert not np.any(opt.state[0]["m"] == 123)


def test_load_state_dict_rejects_mismatches():
    params, _ = small_network(np.float32)
    opt = optimizers.Adam(params)
    good = opt.state_dict()
    with pytest.raises(ValueError, match="'adam'.*'sgd'"):
        optimizers.SGD(params, lr=0.1).load_state_dict(good)
    bad = dict(good, **{"state.0.m": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=r"state\.0\.m.*\(2, 2\)"):
        opt.load_state_dict(bad)
    bad = dict(good, **{"state.1.v": good["state.1.v"].astype(np.float64)})
    with pytest.raises(ValueError, match="float64.*float32"):
        opt.load_state_dict(bad)
    bad = {k: v for k, v in good.items() if k != "state.2.m"}
    with pytest.raises(ValueError, match="missing.*state.2.m"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected.*state.9.m"):
        opt.load_state_dict(dict(good, **{"state.9.m": np.zeros(3)}))
    with pytest.raises(ValueError, match="step_count"):
        opt.load_state_dict(dict(good, step_count=-1))
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(dict(good, lr=-0.5))
    # A failed load changes nothing.
    assert opt.step_count == 0 and not np.any(opt.state[0]["m"])


# -- validation, registry, config ----------------------------------------------------

def test_registry_and_config_round_trip():
    params, _ = small_network(np.float32)
    assert set(optimizers.OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                          "adam", "adamw"}
    for name, cls in optimizers.OPTIMIZERS.items():
        opt = optimizers.get(name, params, lr=0.03, clip_norm=2.0)
        assert type(opt) is cls and opt.name == name
        config = opt.get_config()
        assert json.loads(json.dumps(config)) == config
        clone = optimizers.get(name, params, **config)
        assert clone.get_config() == config
    assert isinstance(optimizers.get("nesterov", params, lr=0.1), optimizers.SGD)
    assert optimizers.get("nesterov", params, lr=0.1).nesterov is True
    # None means "default", so a command line can pass all its options.
    assert optimizers.get("adam", params, lr=0.1, weight_decay=None).weight_decay == 0.0


def test_get_errors_list_valid_names():
    params, _ = small_network(np.float32)
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'.*sgd, momentum"):
        optimizers.get("adamx", params, lr=0.1)
    with pytest.raises(ValueError, match="'adam' does not take momentum.*betas"):
        optimizers.get("adam", params, lr=0.1, momentum=0.9)


@pytest.mark.parametrize("make, match", [
    (lambda p: optimizers.SGD(p, lr=-0.1), "lr"),
    (lambda p: optimizers.SGD(p, lr=float("nan")), "lr"),
    (lambda p: optimizers.SGD(p, lr="0.1"), "lr"),
    (lambda p: optimizers.SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: optimizers.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optimizers.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optimizers.Nesterov(p, lr=0.1, momentum=0.0), "nesterov"),
    (lambda p: optimizers.SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: optimizers.SGD(p, lr=0.1, clip_norm=0), "clip_norm"),
    (lambda p: optimizers.SGD(p, lr=0.1, clip_value=-1), "clip_value"),
    (lambda p: optimizers.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optimizers.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optimizers.Adam(p, betas=0.9), "pair"),
    (lambda p: optimizers.Adam(p, eps=0), "eps"),
    (lambda p: optimizers.RMSProp(p, rho=1.5), "rho"),
    (lambda p: optimizers.AdaGrad(p, eps=-1e-8), "eps"),
    (lambda p: optimizers.SGD([], lr=0.1), "no parameters"),
    (lambda p: optimizers.SGD(p + p, lr=0.1), "twice"),
])
def test_invalid_hyper_parameters(make, match):
    params, _ = small_network(np.float32)
    with pytest.raises(ValueError, match=match):
        make(params)


def test_invalid_params_types():
    with pytest.raises(TypeError, match=r"params\[0\] is a ndarray, not a fastnn Parameter"):
        optimizers.Adam([np.ones(3)])
    with pytest.raises(TypeError, match="nesterov"):
        optimizers.SGD(small_network(np.float32)[0], lr=0.1, momentum=0.9, nesterov="yes")
    with pytest.raises(TypeError, match="float32 or float64"):
        optimizers.SGD([Parameter(np.ones(3, np.int64), "w")], lr=0.1)
    strided = Parameter(np.ones((4, 6))[:, ::2], "w")  # a parameter copies into C order
    assert strided.values.flags.c_contiguous
    strided.grad = np.ones((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        optimizers.SGD([strided], lr=0.1)


# -- done-when -----------------------------------------------------------------------

@pytest.mark.slow
def test_adam_trains_mnist_small(mnist_small):
    """Adam (lr 1e-3, batch 64, 5 epochs) trains 784-256-128-10 ReLU to >= 95% test accuracy."""
    Xtr, ytr, Xte, yte = mnist_small
    net = fastnn.mlp([784, 256, 128, 10], rng=0)
    opt = optimizers.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = rng.permutation(len(Xtr))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            net.train_step(Xtr[batch], ytr[batch], opt)
        assert np.isfinite(opt.last_grad_norm)
    assert net.evaluate(Xte, yte)["accuracy"] >= 0.95

"""Learning-rate schedules: lr sequences against their formulas, hooks, state and plateau logic."""
import json
import math

import numpy as np
import pytest

import fastnn
from fastnn import optimizers, schedules
from fastnn.layers import Parameter


def make_optimizer(name="sgd", lr=0.5):
    params = [Parameter(np.zeros((3, 2)), "weight"), Parameter(np.zeros(2), "bias", False)]
    return optimizers.get(name, params, lr=lr)


#: name, constructor options, formula α(t) for α₀ = 0.5.
FORMULAS = [
    ("constant", {}, lambda t: 0.5),
    ("step", dict(step_size=3, gamma=0.5), lambda t: 0.5 * 0.5 ** (t // 3)),
    ("exponential", dict(k=0.1), lambda t: 0.5 * math.exp(-0.1 * t)),
    ("inverse_time", dict(tau=4), lambda t: 0.5 * 4 / max(t, 4)),
    ("cosine", dict(t_max=10, min_lr=0.05),
     lambda t: 0.05 if t >= 10 else 0.05 + 0.45 * (1 + math.cos(math.pi * t / 10)) / 2),
    ("cosine", dict(t_max=10, warmup=4),
     lambda t: (0.5 * (t + 1) / 4 if t < 4 else
                0.0 if t >= 10 else 0.5 * (1 + math.cos(math.pi * (t - 4) / 6)) / 2)),
]
FORMULA_IDS = ["constant", "step", "exponential", "inverse_time", "cosine", "cosine-warmup"]


@pytest.mark.parametrize("interval", ["step", "epoch"])
@pytest.mark.parametrize("name, options, formula", FORMULAS, ids=FORMULA_IDS)
def test_lr_sequence_matches_formula(name, options, formula, interval):
    opt = make_optimizer()
    sched = schedules.get(name, opt, interval=interval, **options)
    assert sched.interval == interval
    seen = [opt.lr]
    for _ in range(14):
        sched.on_batch_end()                  # only the hook matching `interval` advances:
        sched.on_epoch_end({"loss": 1.0})     # t counts 14, not 28
        seen.append(opt.lr)
    expected = [formula(t) for t in range(15)]
    np.testing.assert_allclose(seen, expected, rtol=1e-14, atol=1e-15)
    assert sched.t == 14


def test_per_step_and_per_epoch_advance_on_their_hook_only():
    opt_step, opt_epoch = make_optimizer(), make_optimizer()
    per_step = schedules.StepDecay(opt_step, step_size=2, gamma=0.1, interval="step")
    per_epoch = schedules.StepDecay(opt_epoch, step_size=2, gamma=0.1, interval="epoch")
    for _ in range(2):                         # one epoch of 4 batches
        for _ in range(4):
            per_step.on_batch_end()
            per_epoch.on_batch_end()
        per_step.on_epoch_end({"loss": 1.0})
        per_epoch.on_epoch_end({"loss": 1.0})
    assert per_step.t == 8 and opt_step.lr == pytest.approx(0.5 * 0.1 ** 4)
    assert per_epoch.t == 2 and opt_epoch.lr == pytest.approx(0.5 * 0.1)


@pytest.mark.parametrize("opt_name", list(optimizers.OPTIMIZERS))
@pytest.mark.parametrize("name, options", [(n, o) for n, o, _ in FORMULAS] + [("plateau", {})],
                         ids=FORMULA_IDS + ["plateau"])
def test_composes_with_every_optimizer(opt_name, name, options):
    """The schedule's lr is the one the optimizer steps with (checked on a plain SGD step)."""
    net = fastnn.mlp([4, 5, 3], rng=0, dtype=np.float64)
    opt = optimizers.get(opt_name, net.parameters(), lr=0.1)
    sched = schedules.get(name, opt, **options)
    X = np.random.default_rng(0).normal(size=(8, 4))
    y = np.arange(8) % 3
    for epoch in range(3):
        for _ in range(2):
            net.train_step(X, y, opt)
            sched.on_batch_end()
        sched.on_epoch_end({"loss": 1.0, "val_loss": 2.0 - epoch})
    if name != "plateau":
        assert opt.lr == pytest.approx(sched.lr_at(sched.t), rel=1e-14)
    if opt_name == "sgd":
        before = net.parameters()[0].data.copy()
        net.loss(X, y)
        net.backward()
        grad = net.parameters()[0].grad.copy()
        opt.step()
        np.testing.assert_allclose(net.parameters()[0].data, before - opt.lr * grad, rtol=1e-12)


@pytest.mark.parametrize("name, options", [(n, o) for n, o, _ in FORMULAS] + [
    ("plateau", dict(patience=1, cooldown=2))], ids=FORMULA_IDS + ["plateau"])
def test_state_round_trip(name, options):
    metrics = [{"val_loss": v} for v in (5, 4, 4.5, 4.6, 4.7, 4.8, 3, 3.1, 3.2, 3.3, 3.4, 3.5)]
    opt = make_optimizer()
    sched = schedules.get(name, opt, interval="epoch", **options)
    for m in metrics[:5]:
        sched.on_epoch_end(m)
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state           # flat scalars only
    assert state["name"] == name and state["t"] == 5
    for m in metrics[5:]:
        sched.on_epoch_end(m)
    expected = (opt.lr, sched.state_dict())

    opt2 = make_optimizer(lr=0.123)
    sched2 = schedules.get(name, opt2, **sched.get_config())
    sched2.load_state_dict(state)
    assert opt2.lr == state["lr"]
    for m in metrics[5:]:
        sched2.on_epoch_end(m)
    assert (opt2.lr, sched2.state_dict()) == expected


def test_load_state_dict_rejects_mismatches():
    sched = schedules.StepDecay(make_optimizer(), step_size=2)
    state = sched.state_dict()
    with pytest.raises(ValueError, match="'step'.*'cosine'"):
        schedules.CosineAnnealing(make_optimizer(), t_max=5).load_state_dict(state)
    with pytest.raises(ValueError, match="missing.*'t'"):
        sched.load_state_dict({k: v for k, v in state.items() if k != "t"})
    with pytest.raises(ValueError, match="unexpected.*best"):
        sched.load_state_dict(dict(state, best=1.0))
    with pytest.raises(ValueError, match="t"):
        sched.load_state_dict(dict(state, t=-1))
    # Scalars from np.load arrive as 0-d arrays.
    sched.load_state_dict({k: np.asarray(v) for k, v in dict(state, t=3).items()})
    assert sched.t == 3


# -- reduce on plateau ----------------------------------------------------------------

def run_plateau(values, monitor="val_loss", **options):
    opt = make_optimizer(lr=1.0)
    sched = schedules.ReduceLROnPlateau(opt, monitor=monitor, **options)
    lrs = []
    for v in values:
        sched.on_epoch_end({monitor: v, "loss": 0.0})
        lrs.append(opt.lr)
    return lrs


def test_plateau_patience_and_factor():
    # best 1.0 at epoch 0; bad epochs 1, 2, 3 → reduction after the third (> patience 2).
    lrs = run_plateau([1.0, 1.0, 1.1, 1.0, 1.2, 1.3, 1.3, 1.4], patience=2, factor=0.5)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_plateau_improvement_resets_count():
    lrs = run_plateau([3.0, 3.5, 3.5, 2.0, 2.5, 2.5, 2.5], patience=2, factor=0.1)
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1])


def test_plateau_threshold_rel_and_abs():
    # 0.99995 is not a relative improvement of 1e-4 over 1.0 (needs < 0.9999).
    assert run_plateau([1.0, 0.99995, 0.99995], patience=1, factor=0.5)[-1] == 0.5
    assert run_plateau([1.0, 0.9999 - 1e-6, 0.9998 - 1e-6], patience=1, factor=0.5)[-1] == 1.0
    # abs mode: improvements must exceed 0.1.
    lrs = run_plateau([1.0, 0.95, 0.92, 0.85], patience=1, factor=0.5, threshold=0.1,
                      threshold_mode="abs")
    assert lrs == [1.0, 1.0, 0.5, 0.5]


def test_plateau_mode_max_cooldown_min_lr():
    lrs = run_plateau([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], monitor="val_accuracy", mode="max",
                      patience=0, factor=0.5, cooldown=2, min_lr=0.2)
    # reduce at epoch 1; cooldown epochs 2, 3 do not count; reduce again at 4 (clamped), ...
    assert lrs == [1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    lrs = run_plateau([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], monitor="val_accuracy",
                      mode="max", patience=0, factor=0.5, cooldown=2, min_lr=0.2)
    assert lrs[-1] == 0.2


def test_plateau_nan_is_never_better():
    assert run_plateau([float("nan"), 1.0, float("nan"), float("nan")], patience=1,
                       factor=0.5) == [1.0, 1.0, 1.0, 0.5]


def test_plateau_monitor_fallback_and_errors():
    opt = make_optimizer(lr=1.0)
    sched = schedules.ReduceLROnPlateau(opt, patience=0, factor=0.5)    # monitors val_loss
    sched.on_epoch_end({"loss": 2.0})                                   # falls back to loss
    sched.on_epoch_end({"loss": 3.0})
    assert sched.best == 2.0 and opt.lr == 0.5
    sched.on_batch_end()                                                # epoch-based only
    assert opt.lr == 0.5 and sched.t == 2
    with pytest.raises(ValueError, match="'val_accuracy'.*'loss'"):
        schedules.ReduceLROnPlateau(opt, monitor="val_accuracy").on_epoch_end({"loss": 1.0, "x": 1})
    with pytest.raises(ValueError, match="metrics"):
        sched.on_epoch_end(None)
    with pytest.raises(ValueError, match="epoch"):
        schedules.ReduceLROnPlateau(opt, interval="step")


# -- validation and registry ----------------------------------------------------------

def test_registry_and_get():
    assert set(schedules.SCHEDULES) == {"constant", "step", "exponential", "inverse_time",
                                        "cosine", "plateau"}
    opt = make_optimizer()
    for name, cls in schedules.SCHEDULES.items():
        options = {"step": dict(step_size=2), "exponential": dict(k=0.1),
                   "inverse_time": dict(tau=10), "cosine": dict(t_max=10)}.get(name, {})
        sched = schedules.get(name, opt, **options)
        assert type(sched) is cls and sched.name == name
        config = sched.get_config()
        assert json.loads(json.dumps(config)) == config
        assert schedules.get(name, opt, **config).get_config() == config
    with pytest.raises(ValueError, match="unknown schedule 'linear'.*constant, step"):
        schedules.get("linear", opt)
    with pytest.raises(ValueError, match="'step' does not take k.*step_size, gamma"):
        schedules.get("step", opt, step_size=2, k=0.1)
    assert schedules.get("step", opt, step_size=2, gamma=None).gamma == 0.1


@pytest.mark.parametrize("make, error, match", [
    (lambda o: schedules.Constant(o, interval="batch"), ValueError, "interval"),
    (lambda o: schedules.StepDecay(o, step_size=0), ValueError, "step_size"),
    (lambda o: schedules.StepDecay(o, step_size=2, gamma=0), ValueError, "gamma"),
    (lambda o: schedules.StepDecay(o, step_size=2, gamma=1.5), ValueError, "gamma"),
    (lambda o: schedules.ExponentialDecay(o, k=-1), ValueError, "k"),
    (lambda o: schedules.InverseTimeDecay(o, tau=0), ValueError, "tau"),
    (lambda o: schedules.CosineAnnealing(o, t_max=5, warmup=5), ValueError, "warmup"),
    (lambda o: schedules.CosineAnnealing(o, t_max=5, min_lr=1.0), ValueError, "min_lr"),
    (lambda o: schedules.ReduceLROnPlateau(o, mode="best"), ValueError, "mode"),
    (lambda o: schedules.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: schedules.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: schedules.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda o: schedules.ReduceLROnPlateau(o, monitor=3), TypeError, "monitor"),
    (lambda o: schedules.Constant(object()), TypeError, "Optimizer"),
])
def test_invalid_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make(make_optimizer())

"""fastnn.experiments on tiny subsets: structure, the texts' qualitative findings, exports."""
import inspect
import json

import numpy as np
import pytest

from fastnn.experiments import (ACTIVATION_ARMS, EXPERIMENTS, VANISHING_ARMS, NielsenCrossEntropy,
                                activations, vanishing_gradients)
from fastnn.gradcheck import gradcheck


@pytest.fixture(scope="module")
def tiny(mnist_small):
    X_train, y_train, X_test, y_test = mnist_small
    return X_train[:300], y_train[:300], X_test[:100], y_test[:100]


@pytest.fixture(scope="module")
def vanishing(tiny):
    return vanishing_gradients(tiny, rng=0, quiet=True, n_train=100, epochs=4, depths=(1, 4))


@pytest.fixture(scope="module")
def glorot(tiny):
    return activations(tiny, rng=0, quiet=True, hidden=(24, 24, 24, 24), epochs=1, interval=3)


def strict_json(path):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_registry_and_signatures():
    assert EXPERIMENTS == {"vanishing-gradients": vanishing_gradients, "activations": activations}
    for fn in EXPERIMENTS.values():
        params = inspect.signature(fn).parameters
        assert list(params)[0] == "data"
        assert params["rng"].kind is params["quiet"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["rng"].default == 0 and params["quiet"].default is False


def test_nielsen_cross_entropy_matches_numpy(rng):
    z = rng.standard_normal((6, 10))
    t = np.eye(10)[rng.integers(0, 10, 6)]
    loss = NielsenCrossEntropy()
    value = loss.forward(z, t)
    a = 1 / (1 + np.exp(-z))
    expected = np.mean(np.sum(-t * np.log(a) - (1 - t) * np.log(1 - a), axis=1))
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(loss.backward(), (a - t) / 6, rtol=1e-12)  # Nielsen's delta^L / n
    assert gradcheck(loss, z, t).passed


def test_vanishing_gradients_runs_and_shows_nielsens_finding(vanishing, tiny):
    runs = vanishing.runs
    assert [(r["arm"], len(r["sizes"]) - 2) for r in runs] == [
        (arm[0], depth) for arm in VANISHING_ARMS for depth in (1, 4)]
    for run in runs:
        speeds, updates = np.asarray(run["speeds"]), np.asarray(run["update_ratios"])
        assert speeds.shape == updates.shape == (4, len(run["sizes"]) - 2)
        assert np.all(np.isfinite(speeds)) and np.all(speeds > 0)
        assert 0 <= run["test_accuracy"] <= 1
    nielsen = next(r for r in runs if r["arm"] == VANISHING_ARMS[0][0] and len(r["sizes"]) == 6)
    assert nielsen["sizes"] == [784, 30, 30, 30, 30, 10]
    at_init = np.asarray(nielsen["speeds"])[0]
    assert np.all(np.diff(at_init) > 0)       # each hidden layer learns faster than the one before
    assert at_init[-1] / at_init[0] > 10      # and the first one orders of magnitude slower
    relu = next(r for r in runs if r["arm"] == "ReLU, He init" and len(r["sizes"]) == 6)
    relu_init = np.asarray(relu["speeds"])[0]
    assert relu_init[-1] / relu_init[0] < 3   # He init + ReLU: no vanishing at init


def test_vanishing_gradients_speed_is_the_mean_bias_gradient(tiny):
    # One arm, one depth, one epoch: the recorded speed must be the norm of Nielsen's
    # averaged per-example bias gradients, recomputed here example by example in NumPy.
    X, y = tiny[0][:20], tiny[1][:20]
    data = (X, y, tiny[2], tiny[3])
    result = vanishing_gradients(data, quiet=True, n_train=20, epochs=1, depths=(2,),
                                 arms=[VANISHING_ARMS[0]])
    from fastnn.network import mlp
    from fastnn._validation import check_rng
    seed = check_rng(0).integers(2**63)  # the experiment's seed for its first run
    net = mlp([784, 30, 30, 10], "sigmoid", init="nielsen", rng=np.random.default_rng(seed))
    W = [l.weight.data.astype(np.float64) for l in net.layers[::2]]
    b = [l.bias.data.astype(np.float64) for l in net.layers[::2]]
    total = [np.zeros(30), np.zeros(30)]
    for x, label in zip(X.astype(np.float64), y):
        acts = [x]
        for k in range(3):
            acts.append(1 / (1 + np.exp(-(acts[-1] @ W[k] + b[k]))))
        delta = acts[-1] - np.eye(10)[label]               # cross-entropy cost: delta^L = a - y
        for k in (2, 1):
            delta = (W[k] @ delta) * acts[k] * (1 - acts[k])
            total[k - 1] += delta
    expected = [np.linalg.norm(t / len(X)) for t in total]
    np.testing.assert_allclose(result.runs[0]["speeds"][0], expected, rtol=1e-4)


def test_vanishing_gradients_exports(vanishing, tmp_path):
    text = vanishing.table()
    for arm in VANISHING_ARMS:
        assert arm[0] in text
    assert "784-30-30-30-30-10" in text and "at init" in text and "test acc" in text
    vanishing.to_json(tmp_path / "vg.json")
    data = strict_json(tmp_path / "vg.json")
    assert data["experiment"] == "vanishing-gradients" and data["settings"]["epochs"] == 4
    assert len(data["runs"]) == len(vanishing.runs)
    np.testing.assert_allclose(data["runs"][0]["speeds"], vanishing.runs[0]["speeds"])
    vanishing.plot(tmp_path / "vg.png")
    assert (tmp_path / "vg.png").read_bytes()[:4] == b"\x89PNG"


def test_activations_runs_and_shows_glorot_and_bengios_findings(glorot):
    runs = glorot.runs
    assert [(r["activation"], r["init"]) for r in runs] == list(ACTIVATION_ARMS)
    for run in runs:
        assert run["sizes"] == [784, 24, 24, 24, 24, 10]
        assert len(run["mean"]) == len(run["std"]) == len(run["saturated"]) == 4
        assert len(run["mean"][0]) == len(run["steps"]) == 10  # 100 steps, interval 3
        assert 0 <= run["test_accuracy"] <= 1
        start = np.array([m[0] for m in run["mean"]])
        if run["activation"] == "sigmoid":
            assert np.all(np.abs(start - 0.5) < 0.1)   # sigmoid units start around 0.5
        else:
            assert np.all(np.abs(start) < 0.1)         # tanh/softsign around 0
    by_arm = {(r["activation"], r["init"]): r for r in runs}
    for activation in ("tanh", "softsign"):
        standard = [s[0] for s in by_arm[activation, "glorot_standard"]["std"]]
        normalized = [s[0] for s in by_arm[activation, "glorot_uniform"]["std"]]
        # The standard init (n Var[W] = 1/3) shrinks activations layer after layer.
        assert standard[3] < 0.6 * standard[0]
        assert normalized[3] / normalized[0] > standard[3] / standard[0]


def test_activations_exports(glorot, tmp_path):
    text = glorot.table()
    assert text.count("test accuracy") == len(ACTIVATION_ARMS)
    assert "layer 4" in text and "mean start" in text and "std end" in text
    glorot.to_json(tmp_path / "act.json")
    data = strict_json(tmp_path / "act.json")
    assert data["experiment"] == "activations" and len(data["runs"]) == len(ACTIVATION_ARMS)
    glorot.plot(tmp_path / "act.png")
    assert (tmp_path / "act.png").read_bytes()[:4] == b"\x89PNG"


def test_progress_goes_to_stderr_unless_quiet(tiny, capsys):
    vanishing_gradients(tiny, n_train=10, epochs=1, depths=(1,), arms=VANISHING_ARMS[:1])
    out, err = capsys.readouterr()
    assert out == "" and "784-30-10" in err
    vanishing_gradients(tiny, n_train=10, epochs=1, depths=(1,), arms=VANISHING_ARMS[:1], quiet=True)
    assert capsys.readouterr().err == ""


def test_experiments_validate_data(tiny):
    with pytest.raises(ValueError, match="X_train, y_train, X_test, y_test"):
        vanishing_gradients(tiny[:2])
    with pytest.raises(ValueError, match="X_test"):
        activations((tiny[0], tiny[1], tiny[2][:, :10], tiny[3]))
    with pytest.raises(ValueError, match="y_train"):
        activations((tiny[0], tiny[1][:5], tiny[2], tiny[3]))

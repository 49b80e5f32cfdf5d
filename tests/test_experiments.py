"""fastnn.experiments on tiny subsets: structure, the texts' qualitative findings, exports."""
import inspect
import json

import numpy as np
import pytest

from fastnn.experiments import (
    ACTIVATION_ARMS,
    EXPERIMENTS,
    RELU_VARIANT_ARMS,
    VANISHING_ARMS,
    NielsenCrossEntropy,
    activations,
    init_histograms,
    relu_variants,
    vanishing_gradients,
)
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
    assert EXPERIMENTS == {"vanishing-gradients": vanishing_gradients, "activations": activations,
                           "relu-variants": relu_variants, "init-histograms": init_histograms}
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
    from fastnn._validation import check_rng
    from fastnn.network import mlp
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


# -- the long Glorot run's story: top layer and test accuracy over updates -----------------

def test_activations_records_test_accuracy_over_updates(glorot, tiny):
    s = glorot.settings
    for run in glorot.runs:
        steps, curve = run["test_steps"], run["test_curve"]
        assert steps[0] == 0 and steps[-1] == 30 and np.all(np.diff(steps) > 0)  # 1 epoch of 30
        assert np.all(np.diff(steps[:-1]) == s["eval_interval"])
        assert len(curve) == len(steps) and all(0 <= a <= 1 for a in curve)
        # the last point is the final network, on the first n_eval test images (all 100 here)
        assert curve[-1] == pytest.approx(run["test_accuracy"])
    text = glorot.table()
    assert "top layer mean: start -> min -> end" in text and "test acc >= 20% from (update)" in text


def test_top_layer_story_reads_the_series():
    from fastnn.experiments import _top_layer_story

    run = {"steps": [0, 10, 20, 30, 40], "mean": [[0.5] * 5, [0.5, 0.2, 0.05, 0.08, 0.12]],
           "test_steps": [0, 25, 50, 75, 100], "test_curve": [0.1, 0.25, 0.15, 0.3, 0.4]}
    story = _top_layer_story(run)
    # the single evaluation at 25 above 20% is not leaving chance: from 75 on it stays above
    assert story == {"start": 0.5, "min": 0.05, "min_step": 20, "end": 0.12,
                     "doubled_step": 40, "left_chance_step": 75}
    run["mean"][1][-1] = 0.09
    run["test_curve"][-1] = 0.19
    assert _top_layer_story(run)["doubled_step"] is None
    assert _top_layer_story(run)["left_chance_step"] is None


# -- relu-variants (Géron ch. 11) ----------------------------------------------------------

@pytest.fixture(scope="module")
def variants(tiny):
    arms = [a for a in RELU_VARIANT_ARMS if a[0] in ("ReLU", "leaky ReLU 0.2", "SELU", "sigmoid")]
    arms.append(("no such unit", "no_such_unit", None, "he_normal"))
    return relu_variants(tiny, rng=0, quiet=True, arms=arms, hidden=(16,) * 3, n_train=200,
                         epochs=2, batch_size=20, n_seeds=2)


def test_relu_variants_structure_and_skips(variants):
    s = variants.settings
    assert s["updates"] == 2 * 10 and s["sizes"] == [784, 16, 16, 16, 10]
    assert s["skipped"] == ["no such unit"]
    assert [(r["arm"], r["seed"]) for r in variants.runs] == [
        (arm, seed) for arm in ("ReLU", "leaky ReLU 0.2", "SELU", "sigmoid") for seed in s["seeds"]]
    assert len(set(s["seeds"])) == 2
    for run in variants.runs:
        assert 0 <= run["test_accuracy"] <= 1 and 0 <= run["train_accuracy"] <= 1
        assert run["seconds_per_epoch"] > 0 and np.isfinite(run["final_loss"])
    selu = [r for r in variants.runs if r["arm"] == "SELU"]
    assert {r["init"] for r in selu} == {"lecun_normal"}


def test_relu_variants_summary_and_table(variants, tmp_path):
    rows = variants.summary()
    for row in rows:
        runs = [r for r in variants.runs if r["arm"] == row["arm"]]
        test = [r["test_accuracy"] for r in runs]
        assert row["test_mean"] == pytest.approx(np.mean(test))
        assert row["gap_mean"] == pytest.approx(np.mean([r["train_accuracy"] for r in runs]) - np.mean(test))
    text = variants.table()
    assert "not in this build (skipped): no such unit" in text
    best = max(rows, key=lambda r: r["test_mean"])
    first_row = text.splitlines()[4]
    assert first_row.startswith("1 ") and f" {best['arm']} " in first_row  # the best first
    variants.to_json(tmp_path / "rv.json")
    assert strict_json(tmp_path / "rv.json")["settings"]["skipped"] == ["no such unit"]
    variants.plot(tmp_path / "rv.png")
    assert (tmp_path / "rv.png").read_bytes()[:4] == b"\x89PNG"


def test_relu_variants_is_repeatable_and_the_same_draws_serve_every_arm(tiny):
    args = dict(rng=3, quiet=True, hidden=(8, 8), n_train=60, epochs=1, batch_size=20, n_seeds=1)
    relu = relu_variants(tiny, arms=[RELU_VARIANT_ARMS[0]], **args)
    again = relu_variants(tiny, arms=[RELU_VARIANT_ARMS[0]], **args)
    assert relu.runs[0]["final_loss"] == again.runs[0]["final_loss"]
    # leaky ReLU with alpha 0 is ReLU: with the same seed it must give the same run
    zero = relu_variants(tiny, arms=[("leaky 0", "leaky_relu", 0.0, "he_normal")], **args)
    assert zero.runs[0]["final_loss"] == pytest.approx(relu.runs[0]["final_loss"], rel=1e-5)


# -- init-histograms (Glorot & Bengio's figures 6 and 7) -----------------------------------

@pytest.fixture(scope="module")
def histograms(tiny):
    return init_histograms(tiny, rng=0, quiet=True, hidden=(64,) * 5, n_examples=200)


def test_init_histograms_show_figures_6_and_7(histograms):
    standard, normalized = histograms.runs
    assert (standard["init"], normalized["init"]) == ("glorot_standard", "glorot_uniform")
    # fig. 6: with the standard init activations shrink with depth, the 0-peak grows
    assert np.all(np.diff(standard["act_std"]) < 0)
    assert np.all(np.diff(standard["act_zero_peak"]) > 0)
    # fig. 7: and the back-propagated gradients shrink toward the input
    assert np.all(np.diff(standard["grad_std"]) > 0)
    # the normalized init keeps both flatter
    ratio = lambda v: v[-1] / v[0]  # noqa: E731
    assert ratio(normalized["act_std"]) > ratio(standard["act_std"])
    assert ratio(normalized["grad_std"]) < ratio(standard["grad_std"])
    edges = np.asarray(histograms.settings["act_edges"])
    for hist in standard["act_hist"] + normalized["act_hist"]:
        assert np.sum(hist * np.diff(edges)) == pytest.approx(1.0)  # the range holds every value


def test_init_histograms_gradients_match_numpy(histograms, tiny):
    # Recompute the top hidden layer's dC/ds in NumPy from the same initial weights.
    from fastnn.network import mlp

    s = histograms.settings
    net = mlp(histograms.runs[0]["sizes"], "tanh", init="glorot_standard",
              rng=np.random.default_rng(s["seed"]))
    W = [l.weight.data.astype(np.float64) for l in net.layers[::2]]
    b = [l.bias.data.astype(np.float64) for l in net.layers[::2]]
    a = tiny[0][:s["n_examples"]].astype(np.float64)
    acts = []
    for k in range(5):
        a = np.tanh(a @ W[k] + b[k])
        acts.append(a)
    logits = a @ W[5] + b[5]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dlogits = (p - np.eye(10)[tiny[1][:s["n_examples"]]]) / len(a)
    ds5 = (dlogits @ W[5].T) * (1 - acts[4] ** 2)
    np.testing.assert_allclose(histograms.runs[0]["grad_std"][4], ds5.std(), rtol=1e-4)
    np.testing.assert_allclose(histograms.runs[0]["act_std"], [x.std() for x in acts], rtol=1e-4)


def test_init_histograms_exports(histograms, tmp_path):
    text = histograms.table()
    assert "layer 5" in text and "grad std" in text and "last/first" in text
    histograms.to_json(tmp_path / "h.json")
    data = strict_json(tmp_path / "h.json")
    assert len(data["runs"][0]["grad_hist"]) == 5
    histograms.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


# -- the command line: --epochs and --arms -------------------------------------------------

def test_cli_experiment_subprocess_with_arms(mnist_small, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import MNIST_SMALL

    out = tmp_path / "h.json"
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "experiment", "init-histograms", "--data-dir",
         str(MNIST_SMALL), "--arms", "glorot_uniform", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stderr
    assert [r["init"] for r in strict_json(out)["runs"]] == ["glorot_uniform"]
    assert "layer 5" in result.stdout and "init-histograms:" in result.stderr

    refused = subprocess.run(
        [sys.executable, "-m", "fastnn", "experiment", "init-histograms", "--data-dir",
         str(MNIST_SMALL), "--epochs", "3"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "--epochs does not apply" in refused.stderr


def test_cli_experiment_passes_epochs_and_arms(mnist_small, monkeypatch, capsys):
    import fastnn.experiments as experiments
    from conftest import MNIST_SMALL
    from fastnn.cli import main

    seen = {}

    def fake(data, *, rng=0, quiet=False, epochs=4, arms=ACTIVATION_ARMS):
        seen.update(epochs=epochs, arms=arms)
        return experiments.activations(data, rng=rng, quiet=True, hidden=(4,) * 4, epochs=1,
                                       arms=arms[:1], interval=50)

    monkeypatch.setitem(experiments.EXPERIMENTS, "activations", fake)
    assert main(["experiment", "activations", "--data-dir", str(MNIST_SMALL), "--epochs", "7",
                 "--arms", "sigmoid", "-q"]) == 0
    assert seen == {"epochs": 7, "arms": (("sigmoid", "glorot_standard"),
                                          ("sigmoid", "glorot_uniform"))}
    assert main(["experiment", "activations", "--data-dir", str(MNIST_SMALL),
                 "--arms", "gelu"]) == 1
    assert "matches no arm of activations" in capsys.readouterr().err

"""The gradient checker itself: it passes correct gradients, catches wrong ones, reports well."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import GradcheckError, GradcheckWarning, gradcheck, relative_error
from fastnn.gradcheck import band
from fastnn.layers import Layer


class _WrongTanh(Layer):
    """tanh with a deliberately wrong derivative (nnet's bug: returns tanh instead of 1 − tanh²)."""

    def _forward(self, Z):
        self._output = np.tanh(Z)
        return self._output

    def _backward(self, dA):
        return dA * self._output


def test_relative_error_formula():
    a, b = np.array([3.0, 4.0]), np.array([3.0, 4.0 + 1e-6])
    assert relative_error(a, b) == pytest.approx(1e-6 / 10, rel=1e-6)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_catches_a_wrong_derivative(rng):
    result = gradcheck(_WrongTanh(), rng.standard_normal((4, 3)), check_input=True)
    assert not result.passed
    assert result.checks[0].relative_error > 1e-2
    assert "FAIL" in str(result)
    with pytest.raises(GradcheckError, match="input"):
        gradcheck(_WrongTanh(), rng.standard_normal((4, 3)), check_input=True, raise_exception=True)


class _WrongDense(fastnn.Dense):
    """A dense layer whose weight gradient is off by 1e-3 in one entry."""

    def _backward(self, dY):
        dX = super()._backward(dY)
        self.weight.grad[0, 0] += 1e-3
        return dX


def test_catches_a_wrong_parameter_gradient(rng):
    net = fastnn.Sequential([fastnn.Dense(4, 5, rng=0, dtype=np.float64), fastnn.Tanh(),
                             _WrongDense(5, 3, rng=1, dtype=np.float64)])
    result = gradcheck(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
    failing = [c for c in result.checks if not c.passed]
    assert [c.name for c in failing] == ["2._WrongDense.weight"]
    assert failing[0].worst_index == (0, 0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softsign", "elu", "selu", "softplus"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse", "hinge", "binary_cross_entropy"])
def test_whole_networks_pass(rng, activation, loss):
    net = fastnn.mlp([5, 7, 6, 3], activation=activation, loss=loss, rng=3, dtype=np.float64)
    X = rng.standard_normal((8, 5))
    if loss in ("softmax_cross_entropy", "hinge"):
        y = rng.integers(0, 3, 8)
    else:
        y = rng.uniform(0, 1, (8, 3))
    result = gradcheck(net, X, y, check_input=True)
    assert result.passed, str(result)
    assert {c.name for c in result.checks} == {"input", "0.Dense.weight", "0.Dense.bias",
                                               "2.Dense.weight", "2.Dense.bias",
                                               "4.Dense.weight", "4.Dense.bias"}


def test_warns_in_float32(rng):
    net = fastnn.mlp([3, 4, 2], rng=0, dtype=np.float32)
    with pytest.warns(GradcheckWarning, match="float32"):
        gradcheck(net, rng.standard_normal((2, 3)), [0, 1], eps=1e-3, threshold=1e-2)


def test_float64_copy_of_a_float32_net_passes(rng):
    net = fastnn.mlp([3, 4, 2], activation="tanh", rng=0, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = gradcheck(net.astype(np.float64), rng.standard_normal((5, 3)), [0, 1, 1, 0, 1])
    assert result.passed, str(result)


def test_sampled_entries_on_a_large_layer(rng):
    layer = fastnn.Dense(300, 200, rng=0, dtype=np.float64)
    result = gradcheck(layer, rng.standard_normal((4, 300)), max_entries=50)
    assert result.passed and all(c.n_checked == 50 for c in result.checks)


def test_refuses_a_stochastic_layer_without_frozen_randomness(rng):
    class Noisy(_WrongTanh):
        stochastic = True

    with pytest.raises(ValueError, match="meaningless"):
        gradcheck(Noisy(), rng.standard_normal((2, 2)))


def test_leaves_parameters_unchanged(rng):
    net = fastnn.mlp([3, 4, 2], rng=0, dtype=np.float64)
    before = net.state_dict()
    gradcheck(net, rng.standard_normal((2, 3)), [0, 1])
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_bad_targets():
    with pytest.raises(TypeError, match="Sequential, Layer or Loss"):
        gradcheck(object(), np.ones((2, 2)))
    with pytest.raises(ValueError, match="needs targets"):
        gradcheck(fastnn.mlp([2, 2]), np.ones((2, 2)))


# -- the post's bands ---------------------------------------------------------------------

@pytest.mark.parametrize("error, smooth, kinked", [
    (0.0, "fine", "fine"), (1e-7, "fine", "fine"), (1.0001e-7, "look again", "fine with kinks"),
    (1e-5, "look again", "fine with kinks"), (1e-4, "look again", "fine with kinks"),
    (1.0001e-4, "look again", "look again"), (9.99e-4, "look again", "look again"),
    (1e-3, "almost certainly wrong", "almost certainly wrong"),
    (0.5, "almost certainly wrong", "almost certainly wrong"),
    (float("nan"), "almost certainly wrong", "almost certainly wrong")], ids=str)
def test_band_edges_follow_the_post(error, smooth, kinked):
    assert band(error) == smooth
    assert band(error, kinks=True) == kinked


class _SlightlyWrongDense(fastnn.Dense):
    """A dense layer whose weight gradient is scaled by 1 + 2e-5 (a 'look again' error)."""

    def _backward(self, dY):
        dX = super()._backward(dY)
        self.weight.grad *= 1 + 2e-5
        return dX


def _small_net(last):
    return fastnn.Sequential([fastnn.Dense(4, 5, rng=0, dtype=np.float64), fastnn.Tanh(), last])


def test_report_names_each_tensors_band(rng):
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    right = gradcheck(_small_net(fastnn.Dense(5, 3, rng=1, dtype=np.float64)), X, y)
    assert right.passed and {c.band for c in right.checks} == {"fine"}
    assert "FAIL" not in str(right) and "fine" in str(right)

    slightly = gradcheck(_small_net(_SlightlyWrongDense(5, 3, rng=1, dtype=np.float64)), X, y)
    bad = [c for c in slightly.checks if not c.passed]
    assert [c.name for c in bad] == ["2._SlightlyWrongDense.weight"]
    # scaling by 1 + d gives ||d a|| / (2 + d)||a|| = d / 2, the middle of the post's middle band
    assert bad[0].relative_error == pytest.approx(1e-5, rel=0.05)
    assert bad[0].band == "look again"
    assert "above its rule's 1e-7" in str(slightly)

    wrong = gradcheck(_small_net(_WrongDense(5, 3, rng=1, dtype=np.float64)), X, y)
    text = str(wrong)
    assert "almost certainly wrong" in text and "2._WrongDense.weight" in text.splitlines()[-1]


def test_both_steps_land_in_the_fine_band_in_float64(rng):
    # The module docstring's estimate: rounding ~u|L|/eps dominates at these steps, so the
    # post's eps = 1e-7 gives a larger error than the default 1e-6, both inside "fine".
    net = fastnn.mlp([5, 7, 6, 3], activation="tanh", rng=3, dtype=np.float64)
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    default = gradcheck(net, X, y, check_input=True)
    post = gradcheck(net, X, y, eps=1e-7, check_input=True)
    assert default.passed and post.passed, (str(default), str(post))
    assert default.max_relative_error < post.max_relative_error


# -- which rule each tensor is read by ------------------------------------------------------

def _rules(result):
    return {c.name: (c.rule, c.threshold) for c in result.checks}


def test_kinks_rule_for_tensors_upstream_of_a_relu(rng):
    net = fastnn.Sequential([fastnn.Dense(4, 5, rng=0, dtype=np.float64), fastnn.ReLU(),
                             fastnn.Dense(5, 3, rng=1, dtype=np.float64)])
    result = gradcheck(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6), check_input=True)
    assert _rules(result) == {"input": ("kinks (1.relu)", 1e-4),
                              "0.Dense.weight": ("kinks (1.relu)", 1e-4),
                              "0.Dense.bias": ("kinks (1.relu)", 1e-4),
                              "2.Dense.weight": ("smooth", 1e-7), "2.Dense.bias": ("smooth", 1e-7)}
    text = str(result)
    assert "kinks (1.relu) <= 1e-4" in text and "smooth <= 1e-7" in text
    assert "each tensor by its rule: smooth <= 1e-7, kinks <= 1e-4" in text.splitlines()[-1]


@pytest.mark.parametrize("kwargs, last_rule", [
    ({"loss": "hinge"}, "kinks (hinge loss)"), ({"l1": 0.01}, "kinks (l1 penalty)"),
    ({}, "smooth")], ids=["hinge", "l1", "smooth"])
def test_kinks_rule_for_the_loss_and_penalty(rng, kwargs, last_rule):
    net = fastnn.mlp([4, 5, 3], activation="tanh", rng=0, dtype=np.float64, **kwargs)
    rules = _rules(gradcheck(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6)))
    assert rules["2.Dense.weight"][0] == last_rule
    # biases are not penalized, so l1 leaves them smooth
    assert rules["2.Dense.bias"][0] == ("smooth" if "l1" in kwargs else last_rule)


@pytest.mark.parametrize("layer, rule", [
    (fastnn.ReLU(), "kinks (relu)"), (fastnn.LeakyReLU(0.1), "kinks (leaky_relu)"),
    (fastnn.HardTanh(), "kinks (hardtanh)"), (fastnn.SELU(), "kinks (selu)"),
    (fastnn.ELU(0.5), "kinks (elu)"), (fastnn.ELU(1.0), "smooth"), (fastnn.Tanh(), "smooth"),
    (fastnn.Softplus(), "smooth")], ids=repr)
def test_which_activations_have_kinks(rng, layer, rule):
    X = rng.standard_normal((5, 4))
    X[np.abs(X) < 1e-3] = 0.5           # no kink within eps of an entry
    assert _rules(gradcheck(layer, X, check_input=True))["input"][0] == rule


def test_a_given_threshold_replaces_the_rules(rng):
    net = fastnn.mlp([4, 5, 3], activation="relu", rng=0, dtype=np.float64)
    result = gradcheck(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6), threshold=1e-6)
    assert {c.rule for c in result.checks} == {"threshold"}
    assert "threshold 1e-6 for every tensor" in str(result)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        gradcheck(net, np.ones((2, 4)), [0, 1], threshold=-1)


class _OffByOneInAThousand(fastnn.Dense):
    """Weight gradient scaled by 1 + 1e-3: relative error 5e-4, past the kinks rule's 1e-4."""

    def _backward(self, dY):
        dX = super()._backward(dY)
        self.weight.grad *= 1 + 1e-3
        return dX


def test_the_kinks_rule_still_catches_a_bug(rng):
    # (a Dense followed by an activation backpropagates through a fused kernel, so the
    # buggy layer is the last one and the kink is the hinge loss's)
    net = fastnn.Sequential([fastnn.Dense(4, 5, rng=0, dtype=np.float64), fastnn.ReLU(),
                             _OffByOneInAThousand(5, 3, rng=1, dtype=np.float64)], loss="hinge")
    result = gradcheck(net, rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
    bad = [c for c in result.checks if not c.passed]
    assert [(c.name, c.rule) for c in bad] == [("2._OffByOneInAThousand.weight",
                                                "kinks (hinge loss)")]
    assert bad[0].relative_error == pytest.approx(5e-4, rel=0.05) and bad[0].band == "look again"


@pytest.mark.slow
def test_readme_example_passes(mnist_small, seed=0):
    """The README's example as written: a trained ReLU network's
    float64 copy on 8 digits, whose small gradients next to the loss sit near 1e-7 from
    rounding alone; the kinks rule reads them, and the last layer stays on the smooth one."""
    Xtr, ytr = mnist_small[:2]
    net = fastnn.mlp([784, 256, 128, 10], activation="relu", rng=seed)
    fastnn.fit(net, Xtr, ytr, optimizer=fastnn.Adam(net.parameters(), lr=1e-3), epochs=10,
               batch_size=64, validation_split=0.1, rng=seed)
    result = gradcheck(net.astype(np.float64), Xtr[:8], ytr[:8], max_entries=50)
    assert result.passed, str(result)
    assert [c.rule for c in result.checks] == ["kinks (1.relu)"] * 2 + ["kinks (3.relu)"] * 2 + [
        "smooth"] * 2

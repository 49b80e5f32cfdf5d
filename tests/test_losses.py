"""Loss kernels: values and gradients against NumPy, stability, label checks, gradchecks."""
import numpy as np
import pytest

import fastnn
import reference as ref
from conftest import RTOL, layout
from fastnn import losses
from fastnn_c import losses as _losses

SHAPES = [(1, 1), (7, 3), (64, 10), (257, 2)]


def _problem(name, shape, dtype, rng):
    n, k = shape
    z = (2 * rng.standard_normal(shape)).astype(dtype)
    if name in ("softmax_cross_entropy", "hinge"):
        return z, rng.integers(0, k, size=n)
    if name == "binary_cross_entropy":
        return z, rng.uniform(0, 1, size=shape).astype(dtype)
    if name == "poisson":
        return (z / 2).astype(dtype), rng.poisson(2.0, size=shape).astype(dtype)
    return z, rng.standard_normal(shape).astype(dtype)


REFERENCES = {"softmax_cross_entropy": ref.softmax_cross_entropy, "mse": ref.mse,
              "hinge": ref.hinge, "binary_cross_entropy": ref.binary_cross_entropy,
              "poisson": ref.poisson}


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_value_and_gradient_match_reference(dtype, rng, name, shape):
    z, t = _problem(name, shape, dtype, rng)
    loss = losses.get(name)
    value = loss.forward(z, t)
    grad = loss.backward()
    expected_value, expected_grad = REFERENCES[name](z, t)
    assert grad.dtype == dtype
    np.testing.assert_allclose(value, expected_value, rtol=RTOL[dtype] * 10, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] / z.size)
    np.testing.assert_allclose(loss.value(z, t), value, rtol=1e-6)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_gradcheck(rng, name):
    z, t = _problem(name, (6, 4), np.float64, rng)
    result = fastnn.gradcheck(losses.get(name), z, t)
    assert result.passed, str(result)


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_weighted_value_and_gradient_match_reference(dtype, rng, name, shape):
    """sample_weight: the weighted mean of the row losses, scikit-learn's (>= 1.7) definition."""
    z, t = _problem(name, shape, dtype, rng)
    w = rng.uniform(0, 3, size=shape[0]).astype(dtype)
    w[rng.random(shape[0]) < 0.3] = 0  # zero weights leave their rows out
    loss = losses.get(name)
    value = loss.forward(z, t, sample_weight=w)
    grad = loss.backward()
    expected_value, expected_grad = ref.weighted(REFERENCES[name], z, t, w)
    np.testing.assert_allclose(value, expected_value, rtol=RTOL[dtype] * 10, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] / z.size)
    np.testing.assert_allclose(loss.value(z, t, sample_weight=w), value, rtol=1e-6)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_unit_weights_are_the_plain_mean(rng, name):
    z, t = _problem(name, (9, 3), np.float64, rng)
    loss = losses.get(name)
    plain = loss.forward(z, t)
    grad = loss.backward().copy()
    assert loss.forward(z, t, sample_weight=np.ones(9)) == pytest.approx(plain, rel=1e-14)
    np.testing.assert_allclose(loss.backward(), grad, rtol=1e-14)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_weighted_gradcheck(rng, name):
    """float64 central differences of the weighted loss (weights bound, target fixed)."""
    z, t = _problem(name, (6, 4), np.float64, rng)
    w = rng.uniform(0.1, 3, size=6)
    loss = losses.get(name)
    loss.forward(z, t, sample_weight=w)
    grad = loss.backward().copy()
    numeric = np.empty_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = 1e-6
        numeric[index] = (loss.value(z + step, t, sample_weight=w)
                          - loss.value(z - step, t, sample_weight=w)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_sample_weight_is_checked(rng):
    z, t = _problem("mse", (4, 2), np.float64, rng)
    loss = losses.MeanSquaredError()
    with pytest.raises(ValueError, match="sample_weight has shape"):
        loss.forward(z, t, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        loss.forward(z, t, sample_weight=np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="poisson_log: weight has shape"):
        _losses.poisson_log(z, np.abs(t), None, np.ones(5))


def test_poisson_refuses_negative_targets():
    with pytest.raises(ValueError, match="non-negative for the Poisson loss"):
        losses.Poisson().forward(np.zeros((2, 1)), np.array([[1.0], [-1.0]]))


def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    z = np.array([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]], dtype=dtype)
    loss = losses.SoftmaxCrossEntropy()
    with np.errstate(all="raise"):
        value = loss.forward(z, [0, 0])
    np.testing.assert_allclose(value, 800.0, rtol=1e-6)  # (0 + 1600) / 2
    np.testing.assert_allclose(loss.backward(), [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-7)


def test_binary_cross_entropy_is_stable_for_huge_logits(dtype):
    z = np.array([[800.0, -800.0]], dtype=dtype)
    loss = losses.BinaryCrossEntropy()
    with np.errstate(all="raise"):
        assert loss.forward(z, [[1.0, 0.0]]) == 0
        np.testing.assert_allclose(loss.forward(z, [[0.0, 1.0]]), 800.0, rtol=1e-6)


def test_hinge_margin_option(rng):
    z, y = _problem("hinge", (5, 4), np.float64, rng)
    loss = losses.MultiClassHinge(margin=2.5)
    expected_value, expected_grad = ref.hinge(z, y, margin=2.5)
    np.testing.assert_allclose(loss.forward(z, y), expected_value, rtol=1e-12)
    np.testing.assert_allclose(loss.backward(), expected_grad, rtol=1e-12)


@pytest.mark.parametrize("kind", ["F", "strided"])
def test_non_contiguous_output_is_copied(rng, kind):
    z, y = _problem("softmax_cross_entropy", (5, 3), np.float64, rng)
    loss = losses.SoftmaxCrossEntropy()
    np.testing.assert_allclose(loss.forward(layout(z, kind), y), ref.softmax_cross_entropy(z, y)[0],
                               rtol=1e-12)


def test_label_validation():
    loss = losses.SoftmaxCrossEntropy()
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels\[1\] = 4 is outside \[0, 4\)"):
        loss.forward(z, [0, 4, 1])
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        loss.forward(z, [-1, 0, 1])
    with pytest.raises(ValueError, match="has 2 labels, expected 3"):
        loss.forward(z, [0, 1])
    with pytest.raises(ValueError, match="non-integer"):
        loss.forward(z, [0.5, 1, 2])
    with pytest.raises(TypeError, match="integer class labels"):
        loss.forward(z, ["a", "b", "c"])
    with pytest.raises(ValueError, match="empty batch"):
        loss.forward(np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match=r"y has shape \(3, 2\), expected \(3, 4\)"):
        losses.MeanSquaredError().forward(z, np.zeros((3, 2)))


def test_kernels_check_labels_and_shapes_themselves():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="outside"):
        _losses.softmax_cross_entropy(z, np.array([0, 3]), None)
    with pytest.raises(ValueError, match="outside"):
        _losses.multiclass_hinge(z, np.array([7, 0]), None)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels has shape \(1,\), expected \(2,\)"):
        _losses.softmax_cross_entropy(z, np.array([0]), None)
    with pytest.raises(ValueError, match=r"mean_squared_error: grad has shape \(2, 2\), expected \(2, 3\)"):
        _losses.mean_squared_error(z, z, np.empty((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        _losses.binary_cross_entropy_logits(np.zeros((0, 3)), np.zeros((0, 3)), None)


def test_kernels_check_dtypes_layout_and_missing_arrays():
    z, labels = np.zeros((2, 3)), np.array([0, 2])
    with pytest.raises(TypeError, match="labels has dtype int32, expected int64"):
        _losses.softmax_cross_entropy(z, labels.astype(np.int32), None)
    # any integer type the platform makes 64-bit is accepted (longlong vs long on Linux)
    assert _losses.softmax_cross_entropy(z, labels.astype(np.longlong), None) == pytest.approx(np.log(3))
    with pytest.raises(TypeError, match="logits has dtype >f8"):
        _losses.softmax_cross_entropy(z.astype(">f8"), labels, None)
    with pytest.raises(TypeError, match="grad has dtype float32, expected float64"):
        _losses.softmax_cross_entropy(z, labels, np.empty((2, 3), np.float32))
    read_only = np.empty((2, 3))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="grad is read-only"):
        _losses.multiclass_hinge(z, labels, read_only)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _losses.softmax_cross_entropy(np.zeros((3, 2)).T, labels, None)
    for kernel in (_losses.mean_squared_error, _losses.binary_cross_entropy_logits):
        with pytest.raises(TypeError, match="target must be a numpy.ndarray, got NoneType"):
            kernel(z, None, None)
        with pytest.raises(ValueError, match=r"target has shape \(3, 2\), expected \(2, 3\)"):
            kernel(z, np.zeros((3, 2)), None)


def test_unknown_loss_lists_the_valid_names():
    with pytest.raises(ValueError, match="choose from softmax_cross_entropy, mse, hinge"):
        losses.get("l1")


def test_huge_equal_logits_do_not_cancel(dtype):
    """Regression (found by hypothesis): 1e15 + log 2 − 1e15 rounded log 2 away in float32."""
    z = np.full((1, 2), 1e15, dtype=dtype)
    np.testing.assert_allclose(losses.SoftmaxCrossEntropy().forward(z, [0]), np.log(2), rtol=1e-6)
    np.testing.assert_allclose(losses.MultiClassHinge().forward(z, [0]), 1.0, rtol=1e-6)

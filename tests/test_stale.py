"""No stale prediction: every way to change what a network computes shows in the next
prediction, or is refused with an error that says how to write instead (issue 29).

Each case builds the compiled prediction pass first (one call of the head under test), then
writes, then compares the head's answer with a NumPy forward pass over the layers' current
state (``reference``): a stale pass answers from the weights it packed before the write.
"""
import pickle

import numpy as np
import pytest

import fastnn
import reference
from fastnn.layers import (
    Activation,
    BatchNorm,
    Dense,
    Dropout,
    Parameter,
    ParameterView,
    ParameterWriteError,
    PReLU,
    RReLU,
)
from fastnn.network import Sequential

HEADS = ("predict", "predict_proba", "decision_function", "evaluate")
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def reference_logits(net, X):
    """The evaluation-mode output of ``net`` for X, in float64 NumPy, from the layers' state."""
    A = X.astype(np.float64)
    for layer in net.layers:
        if isinstance(layer, Dense):
            b = None if layer.bias is None else layer.bias.data.astype(np.float64)
            A = A @ layer.weight.data.astype(np.float64) + (0 if b is None else b)
        elif isinstance(layer, Activation):
            A = reference.activation(layer.name, A, layer.alpha)[0]
        elif isinstance(layer, BatchNorm):
            A = reference.batchnorm_forward(A, layer.gamma.data.astype(np.float64),
                                            layer.beta.data.astype(np.float64), layer.eps,
                                            layer.running_mean.astype(np.float64),
                                            layer.running_var.astype(np.float64))[0]
        elif isinstance(layer, PReLU):
            A = reference.prelu_forward(A, layer.weight.data.astype(np.float64))
        elif isinstance(layer, RReLU):
            A = np.where(A >= 0, A, (layer.lower + layer.upper) / 2 * A)
        elif isinstance(layer, Dropout):
            pass
        else:  # pragma: no cover
            raise TypeError(layer)
    return A


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_head(net, head, X, y):
    if head == "evaluate":
        return net.evaluate(X, y)
    return getattr(net, head)(X)


def expected_head(net, head, X, y):
    z = reference_logits(net, X)
    if head == "predict":
        return z.argmax(axis=1)
    if head == "predict_proba":
        return softmax(z)
    if head == "decision_function":
        return z
    m = z.max(axis=1)
    log_sum = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return {"loss": float(np.mean(log_sum - z[np.arange(len(y)), y])),
            "accuracy": float(np.mean(z.argmax(axis=1) == y))}


def assert_current(net, head, X, y):
    """The head's answer equals the reference over the current weights."""
    got, want = run_head(net, head, X, y), expected_head(net, head, X, y)
    tol = TOL[net.dtype.type]
    if head == "evaluate":
        assert got["accuracy"] == want["accuracy"]
        np.testing.assert_allclose(got["loss"], want["loss"], **tol)
    elif head == "predict":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **tol)


def networks(dtype=np.float32):
    return {
        "relu": fastnn.mlp([20, 16, 3], rng=0, dtype=dtype),
        "leaky+bn": fastnn.mlp([20, 16, 12, 3], activation="leaky_relu", batch_norm=True,
                               rng=1, dtype=dtype),
        "prelu+bn-after+dropout": fastnn.mlp([20, 16, 3], activation="prelu", batch_norm="after",
                                             dropout=0.3, rng=2, dtype=dtype),
        "rrelu": fastnn.mlp([20, 16, 3], activation="rrelu", rng=3, dtype=dtype),
        "elu": fastnn.mlp([20, 16, 3], activation="elu", rng=4, dtype=dtype),
    }


def data(n=16, seed=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 20)).astype(dtype), rng.integers(0, 3, n)


def new_values(p, seed=9):
    """Values far from p's (a sign flip plus noise): a stale pass is off by much more than
    the tolerance."""
    noise = np.random.default_rng(seed).standard_normal(p.data.shape)
    return (-2 * p.data + noise).astype(p.data.dtype)


# -- the write forms of the table ----------------------------------------------

def _item_all(p, v):
    p.data[...] = v


def _item_row(p, v):
    p.data[0] = v[0]


def _copyto(p, v):
    np.copyto(p.data, v)


def _ufunc_out(p, v):
    np.multiply(p.data, -1, out=p.data)


def _augmented(p, v):
    w = p.data
    w += v


def _fill(p, v):
    p.data.fill(0)


def _flat(p, v):
    p.data.flat[0] = 1


def _put(p, v):
    np.put(p.data, [0], [1])


def _slice_view(p, v):
    p.data.reshape(-1)[:1] = 1  # a view of the view


REFUSED = {"p.data[...] = v": _item_all, "p.data[0] = v[0]": _item_row,
           "np.copyto(p.data, v)": _copyto, "np.multiply(.., out=p.data)": _ufunc_out,
           "w = p.data; w += v": _augmented, "p.data.fill": _fill, "p.data.flat[0] =": _flat,
           "np.put": _put, "reshape view": _slice_view}


def _bind(p, v):
    p.data = v


def _copy_(p, v):
    p.copy_(v)


def _edit(p, v):
    with p.edit() as w:
        w[...] = v


def _edit_row(p, v):
    with p.edit() as w:
        w[0] = v[0]


def _edit_ufunc(p, v):
    with p.edit() as w:
        np.add(w, v, out=w)


def _bind_then_write_source(p, v):
    p.data = v
    v *= 3  # the parameter copied v: the caller's array is not an alias


WRITES = {"p.data = v": _bind, "p.copy_(v)": _copy_, "p.edit() all": _edit,
          "p.edit() row": _edit_row, "p.edit() ufunc": _edit_ufunc,
          "p.data = v, then v *= 3": _bind_then_write_source}


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("form", REFUSED)
@pytest.mark.parametrize("name", ["relu", "leaky+bn", "prelu+bn-after+dropout"])
def test_in_place_writes_are_refused_and_predictions_stay_current(name, form, head):
    net = networks()[name]
    X, y = data()
    for p in net.parameters():
        run_head(net, head, X, y)  # the compiled pass exists
        before = p.data.copy()
        version = p.version
        with pytest.raises(ParameterWriteError, match=r"p\.copy_\(values\).*p\.edit\(\)") as info:
            REFUSED[form](p, new_values(p))
        assert isinstance(info.value, ValueError)  # what numpy raises for read-only arrays
        np.testing.assert_array_equal(p.data, before)  # nothing was written
        assert p.version == version
        assert_current(net, head, X, y)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("form", WRITES)
@pytest.mark.parametrize("name", ["relu", "leaky+bn", "prelu+bn-after+dropout"])
def test_api_writes_show_in_the_next_prediction(name, form, head):
    net = networks()[name]
    X, y = data()
    for p in net.parameters():
        run_head(net, head, X, y)
        version, before = p.version, p.data.copy()
        v = new_values(p)
        WRITES[form](p, v)
        assert p.version == version + 1  # exactly one step, as mark_changed
        assert not np.array_equal(p.data, before)
        assert_current(net, head, X, y)


@pytest.mark.parametrize("head", HEADS)
def test_load_state_dict_shows(head):
    net = networks()["leaky+bn"]
    X, y = data()
    run_head(net, head, X, y)
    net.load_state_dict({k: 1.5 * v + 0.1 for k, v in net.state_dict().items()})
    assert_current(net, head, X, y)


def test_float64_network_is_current_to_float64_tolerance():
    net = networks(np.float64)["leaky+bn"]
    X, y = data(dtype=np.float64)
    for head in HEADS:
        run_head(net, head, X, y)
        p = net.parameters()[0]
        p.copy_(new_values(p))
        assert_current(net, head, X, y)


def test_edit_marks_the_change_also_when_the_block_raises():
    net = networks()["relu"]
    X, y = data()
    net.predict_proba(X)
    p = net.layers[0].weight
    version = p.version
    with pytest.raises(RuntimeError, match="half way"):
        with p.edit() as w:
            w[0] = 7
            raise RuntimeError("half way")
    assert p.version == version + 1
    assert_current(net, "predict_proba", X, y)


def test_copy_checks_shape_and_dtype():
    p = fastnn.mlp([4, 3], rng=0).layers[0].weight
    version = p.version
    with pytest.raises(ValueError, match=r"values of shape \(3, 4\), expected \(4, 3\)"):
        p.copy_(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="expected"):
        p.data = np.zeros(12, np.float32)
    with pytest.raises(TypeError, match="cannot copy complex128 values into a float32"):
        p.copy_(np.zeros((4, 3), complex))
    assert p.version == version
    p.copy_(np.ones((4, 3)))  # float64 into float32: same_kind
    assert p.data.dtype == np.float32 and np.all(p.data == 1)


def test_reads_are_plain_arrays():
    p = fastnn.mlp([4, 3], rng=0).layers[0].weight
    for result in (p.data.copy(), p.data + 1, p.data * p.data, np.array(p.data), p.data[[0, 1]],
                   p.data.astype(np.float64), np.concatenate([p.data, p.data]), p.data.flatten(),
                   np.sort(p.data), p.data.dot(np.ones(3, np.float32)), p.data @ p.data.T,
                   pickle.loads(pickle.dumps(p.data)), np.abs(p.data)):
        assert type(result) is np.ndarray and result.flags.writeable
        result[...] = 0  # writable, and not the parameter
    assert np.any(p.data != 0)
    assert type(np.asarray(p.data)) is np.ndarray  # a read-only view, as numpy gives them
    assert isinstance(p.data.sum(), np.floating)
    assert p.data.tolist() == p.values.tolist()
    assert isinstance(p.data, ParameterView) and isinstance(p.data[0], ParameterView)
    state = pickle.loads(pickle.dumps(fastnn.mlp([4, 3], rng=0).state_dict()))
    assert all(type(v) is np.ndarray for v in state.values())


def test_parameter_owns_its_values():
    source = np.ones((2, 3), np.float32)
    p = Parameter(source, "w")
    source[...] = 5  # the constructor copied
    assert np.all(p.data == 1)
    clone = pickle.loads(pickle.dumps(p))
    assert isinstance(clone.data, ParameterView) and not clone.data.flags.writeable
    assert np.shares_memory(clone.data, clone.values) and clone.values.flags.writeable


# -- layer settings --------------------------------------------------------------------

def _set_alpha(net):
    act = next(l for l in net.layers if isinstance(l, Activation) and l.name in ("leaky_relu", "elu"))
    act.alpha = 0.7


def _set_eps(net):
    next(l for l in net.layers if isinstance(l, BatchNorm)).eps = 0.5


def _set_running_mean(net):
    bn = next(l for l in net.layers if isinstance(l, BatchNorm))
    bn.running_mean = np.linspace(-1, 1, bn.n_features)


def _set_running_var(net):
    bn = next(l for l in net.layers if isinstance(l, BatchNorm))
    bn.running_var = np.linspace(0.2, 4, bn.n_features)


def _reset_running(net):
    bn = next(l for l in net.layers if isinstance(l, BatchNorm))
    bn.running_mean = np.ones(bn.n_features)
    net.predict(data()[0])
    bn.reset_running_stats()


def _train_running(net):
    net.train()
    net.forward(data(seed=8)[0] * 3 + 1)  # a training-mode pass moves the running statistics
    net.eval()


def _set_rrelu_lower(net):
    next(l for l in net.layers if isinstance(l, RReLU)).lower = 0.3


def _set_rrelu_upper(net):
    next(l for l in net.layers if isinstance(l, RReLU)).upper = 0.9


def _set_momentum(net):  # training only: the prediction does not change, and stays current
    next(l for l in net.layers if isinstance(l, BatchNorm)).momentum = 0.5


def _set_dropout_p(net):  # evaluation mode is the identity whatever p is
    next(l for l in net.layers if isinstance(l, Dropout)).p = 0.9


def _set_max_norm(net):
    layer = net.layers[0]
    layer.max_norm = 0.05
    layer.apply_constraints()


def _train_step(net):
    net.train_step(*data(seed=6), fastnn.SGD(net.parameters(), lr=0.5))


def _adam_step(net):
    X, y = data(seed=6)
    opt = fastnn.Adam(net.parameters(), lr=0.1)
    net.loss(X, y)
    net.backward()
    opt.step()


SETTINGS = {
    "activation alpha": ("leaky+bn", _set_alpha),
    "elu alpha": ("elu", _set_alpha),
    "batch norm eps": ("leaky+bn", _set_eps),
    "batch norm eps (after)": ("prelu+bn-after+dropout", _set_eps),
    "running_mean =": ("leaky+bn", _set_running_mean),
    "running_var =": ("prelu+bn-after+dropout", _set_running_var),
    "reset_running_stats": ("leaky+bn", _reset_running),
    "training-mode forward": ("leaky+bn", _train_running),
    "rrelu lower": ("rrelu", _set_rrelu_lower),
    "rrelu upper": ("rrelu", _set_rrelu_upper),
    "batch norm momentum": ("leaky+bn", _set_momentum),
    "dropout p": ("prelu+bn-after+dropout", _set_dropout_p),
    "max_norm": ("relu", _set_max_norm),
    "fused sgd step": ("relu", _train_step),
    "adam step": ("prelu+bn-after+dropout", _adam_step),
}


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("setting", SETTINGS)
def test_layer_settings_show_in_the_next_prediction(setting, head):
    name, change = SETTINGS[setting]
    net = networks()[name]
    X, y = data()
    run_head(net, head, X, y)
    change(net)
    assert_current(net, head, X, y)


def test_settings_are_validated():
    net = networks()["leaky+bn"]
    act = next(l for l in net.layers if isinstance(l, Activation))
    bn = next(l for l in net.layers if isinstance(l, BatchNorm))
    with pytest.raises(ValueError, match="alpha >= 0"):
        act.alpha = -1
    with pytest.raises(ValueError, match="eps must be > 0"):
        bn.eps = 0
    with pytest.raises(ValueError, match="momentum must be <= 1"):
        bn.momentum = 2
    with pytest.raises(ValueError, match="takes no alpha"):
        Activation("relu").alpha = 0.5
    r = RReLU()
    with pytest.raises(ValueError, match="lower must be <="):
        r.lower = 0.9
    with pytest.raises(ValueError, match="upper must be >="):
        r.upper = 0.01
    with pytest.raises(ValueError, match="p must be < 1"):
        Dropout().p = 1


def test_running_statistics_refuse_in_place_writes():
    net = networks()["leaky+bn"]
    X, y = data()
    net.predict(X)
    bn = next(l for l in net.layers if isinstance(l, BatchNorm))
    for write in (lambda: bn.running_mean.__setitem__(slice(None), 3),
                  lambda: np.copyto(bn.running_var, 3), lambda: bn.running_var.fill(2)):
        with pytest.raises(ParameterWriteError, match=r"bn\.running_mean = values"):
            write()
    assert_current(net, "predict_proba", X, y)


@pytest.mark.parametrize("layer, attribute, value", [
    (lambda: Activation("relu"), "name", "tanh"),
    (lambda: Activation("relu"), "kind", 1),
    (lambda: Dense(3, 2), "weight", None),
    (lambda: Dense(3, 2), "bias", None),
    (lambda: Dense(3, 2), "out_features", 4),
    (lambda: BatchNorm(3), "gamma", None),
    (lambda: BatchNorm(3), "n_features", 4),
    (lambda: PReLU(3), "weight", None),
])
def test_structure_is_fixed_once_built(layer, attribute, value):
    layer = layer()
    with pytest.raises(AttributeError, match=f"{attribute} is fixed once built"):
        setattr(layer, attribute, value)


def test_sequential_layers_cannot_change_behind_the_pass():
    net = networks()["relu"]
    assert isinstance(net.layers, tuple)
    with pytest.raises(AttributeError):
        net.layers.append(Activation("relu"))
    with pytest.raises(AttributeError):
        net.layers = []
    with pytest.raises(TypeError):
        net.layers[0] = Dense(20, 16)
    clone = pickle.loads(pickle.dumps(net))
    assert isinstance(clone.layers, tuple)
    X, y = data()
    np.testing.assert_array_equal(clone.predict_proba(X), net.predict_proba(X))


def test_a_network_of_the_former_pickle_layout_loads():
    net = networks()["leaky+bn"]
    X, _ = data()
    expected = net.predict_proba(X)
    state = net.__getstate__()
    state["layers"] = list(state.pop("_layers"))
    old = Sequential.__new__(Sequential)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict_proba(X), expected)


# -- estimators --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    X, y = data(n=60, seed=11)
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    reg = fastnn.MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
        X, X[:, :2].sum(axis=1))
    return clf, reg


def _estimator_reference(est, X):
    z = reference_logits(est.net_, X.astype(est.net_.dtype))
    return z


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_coefs_refuse_in_place_writes_and_assignment_shows(fitted):
    clf, reg = fitted
    X, y = data(seed=12)
    for est in (clf, reg):
        head = est.predict_proba if est is clf else est.predict
        head(X)
        with pytest.raises(ParameterWriteError, match=r"est\.coefs_"):
            est.coefs_[0][...] = 0
        with pytest.raises(ParameterWriteError):
            np.copyto(est.intercepts_[0], 1)
        with pytest.raises(ParameterWriteError):
            w = est.coefs_[-1]
            w *= 2
        est.coefs_ = [-2 * w for w in est.coefs_]
        est.intercepts_ = [b + 0.5 for b in est.intercepts_]
        z = _estimator_reference(est, X)
        if est is clf:
            np.testing.assert_allclose(clf.predict_proba(X), softmax(z), rtol=2e-4, atol=2e-5)
            np.testing.assert_array_equal(clf.predict(X), clf.classes_[z.argmax(axis=1)])
            assert clf.score(X, y) == pytest.approx(np.mean(clf.classes_[z.argmax(axis=1)] == y))
        else:
            np.testing.assert_allclose(reg.predict(X), z.ravel(), rtol=2e-4, atol=2e-5)
        p = est.net_.parameters()[0]
        p.copy_(new_values(p))
        z = _estimator_reference(est, X)
        got = clf.predict_proba(X) if est is clf else reg.predict(X)
        want = softmax(z) if est is clf else z.ravel()
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)

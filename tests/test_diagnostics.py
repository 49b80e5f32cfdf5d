"""fastnn.diagnostics: the compiled stats kernel, the Monitor's figures, exports and warnings."""
import csv
import json
import math
import sys

import numpy as np
import pytest

import fastnn
import reference
from conftest import layout
from fastnn.diagnostics import COLUMNS, PERCENTILES, DiagnosticsRecord, Monitor, saturation_bounds
from fastnn.layers import Activation, BatchNorm, Dense
from fastnn.network import Sequential
from fastnn_c import diagnostics as _diagnostics_kernels

activation_stats = _diagnostics_kernels.activation_stats
copy_sum_squares = _diagnostics_kernels.copy_sum_squares
diff_sum_squares = _diagnostics_kernels.diff_sum_squares

SHAPES = [(1, 1), (1, 7), (7, 1), (64, 33), (257, 5)]


# -- NumPy references -------------------------------------------------------------------

def ref_forward_backward(layers, X, y):
    """NumPy forward and backward of Dense/Activation stacks with softmax cross-entropy.

    Returns the activations of every Activation layer and the bias/weight gradients of
    every Dense layer, keyed by layer index.
    """
    outputs, caches = {}, []
    h = X.astype(np.float64)
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense):
            caches.append(("dense", i, h))
            h = reference.dense_forward(h, layer.weight.data.astype(np.float64),
                                        layer.bias.data.astype(np.float64))
        else:
            a, da_dz = reference.activation(layer.name, h)
            caches.append(("act", i, da_dz))
            h = outputs[i] = a
    _, g = reference.softmax_cross_entropy(h, y)
    grads = {}
    for kind, i, cache in reversed(caches):
        if kind == "act":
            g = g * cache
        else:
            W = layers[i].weight.data.astype(np.float64)
            dX, dW, db = reference.dense_backward(cache, W, g)
            grads[i] = (dW, db)
            g = dX
    return outputs, grads


def train_steps(net, monitor, X, y, optimizer, steps, batch=64, start=0):
    for step in range(start, start + steps):
        rows = np.arange(step * batch, (step + 1) * batch) % X.shape[0]
        net.loss(X[rows], y[rows])
        net.backward()
        monitor.after_backward(step)
        optimizer.step()
        monitor.after_update(step)


def rows_at(monitor, step):
    return {r["layer"]: r for r in monitor.rows if r["step"] == step}


# -- kernel -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{m}" for n, m in SHAPES])
def test_activation_stats_matches_numpy(dtype, shape, rng):
    A = rng.uniform(-1.2, 1.2, size=shape).astype(dtype)
    A[:, ::3] = np.maximum(A[:, ::3], 0)            # ReLU-like columns with exact zeros
    if shape[1] > 1:
        A[:, 1] = 0                                 # a dead column
    lower, upper = -0.99, 0.99
    mean, var = np.empty(shape[1]), np.empty(shape[1])
    nonpositive = np.empty(shape[1], dtype=np.intp)
    saturated = activation_stats(A, lower, upper, mean, var, nonpositive)
    ref_mean, ref_var, ref_nonpositive, ref_saturated = reference.activation_stats(A, lower, upper)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(nonpositive, ref_nonpositive)
    assert saturated == ref_saturated


def test_activation_stats_optional_counts(dtype, rng):
    A = np.maximum(rng.standard_normal((9, 4)), 0).astype(dtype)
    mean, var = np.empty(4), np.empty(4)
    assert activation_stats(A, -math.inf, math.inf, mean, var, None) == 0  # nothing counted
    np.testing.assert_allclose(mean, A.astype(np.float64).mean(axis=0), rtol=1e-12)
    assert activation_stats(A, 0.0, math.inf, mean, var, None) == np.count_nonzero(A <= 0)
    assert activation_stats(np.zeros((3, 0), dtype), 0, 1, np.empty(0), np.empty(0), None) == 0


def test_activation_stats_variance_is_accurate_for_large_means(dtype, rng):
    # One-pass sums of squares would lose every digit here; the shifted sums do not.
    A = (1e4 + 1e-2 * rng.standard_normal((500, 3))).astype(dtype)
    mean, var = np.empty(3), np.empty(3)
    activation_stats(A, -math.inf, math.inf, mean, var, np.empty(3, dtype=np.intp))
    np.testing.assert_allclose(var, A.astype(np.float64).var(axis=0), rtol=1e-8)


def test_activation_stats_saturation_thresholds_are_inclusive():
    A = np.array([[0.01, 0.99, 0.5, 0.0100001]])
    counts = activation_stats(A, 0.01, 0.99, np.empty(4), np.empty(4), np.empty(4, dtype=np.intp))
    assert counts == 2


def test_activation_stats_nan_propagates_to_its_column():
    A = np.array([[1.0, 2.0], [np.nan, 3.0], [0.0, 4.0]])
    mean, var, nonpositive = np.empty(2), np.empty(2), np.empty(2, dtype=np.intp)
    saturated = activation_stats(A, 0.5, 3.5, mean, var, nonpositive)
    assert np.isnan(mean[0]) and np.isnan(var[0])
    np.testing.assert_allclose([mean[1], var[1]], [3.0, 2 / 3])
    assert list(nonpositive) == [1, 0] and saturated == 2  # 0.0 <= 0.5 and 4.0 >= 3.5; NaN neither


def test_activation_stats_checks_shapes():
    A = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"activation_stats: col_mean has shape \(2,\), expected \(3,\)"):
        activation_stats(A, 0, 1, np.empty(2), np.empty(3), np.empty(3, dtype=np.intp))
    with pytest.raises(ValueError, match="no rows"):
        activation_stats(np.zeros((0, 3)), 0, 1, np.empty(3), np.empty(3),
                         np.empty(3, dtype=np.intp))


@pytest.mark.parametrize("kind", ["F", "strided"])
def test_activation_stats_refuses_non_contiguous_input(kind, rng):
    A = layout(rng.standard_normal((6, 5)), kind)
    with pytest.raises(ValueError):
        activation_stats(A, 0, 1, np.empty(5), np.empty(5), np.empty(5, dtype=np.intp))


@pytest.mark.parametrize("n", [1, 7, 32, 33, 1000])
def test_copy_and_diff_sum_squares_match_numpy(dtype, n, rng):
    a = (rng.standard_normal(n) * 3).astype(dtype)
    b = (a + rng.standard_normal(n)).astype(dtype)
    dst = np.full(n, np.nan, dtype=dtype)
    total = copy_sum_squares(a, dst)
    np.testing.assert_array_equal(dst, a)
    np.testing.assert_allclose(total, reference.sum_squares(a), rtol=1e-13)
    np.testing.assert_allclose(diff_sum_squares(a, b), reference.sum_squares(a, b), rtol=1e-13)


def test_sum_squares_kernels_do_not_overflow_float32():
    big = np.full(40, 1e30, dtype=np.float32)  # squares overflow float32, not double
    assert copy_sum_squares(big, np.empty_like(big)) == pytest.approx(40 * 1e60, rel=1e-6)
    assert diff_sum_squares(big, -big) == pytest.approx(40 * 4e60, rel=1e-6)


def test_sum_squares_kernels_check_shapes(rng):
    a = rng.standard_normal(5)
    with pytest.raises(ValueError, match=r"copy_sum_squares: dst has shape \(4,\), expected \(5,\)"):
        copy_sum_squares(a, np.empty(4))
    with pytest.raises(ValueError, match=r"diff_sum_squares: b has shape \(6,\), expected \(5,\)"):
        diff_sum_squares(a, np.empty(6))
    with pytest.raises(ValueError):
        diff_sum_squares(a, rng.standard_normal(10)[::2])  # strided: refused, not misread


# -- the Monitor's figures against NumPy --------------------------------------------------

def small_net(dtype, rng_seed=3):
    rng = np.random.default_rng(rng_seed)
    layers = [Dense(11, 9, init="nielsen_large", rng=rng, dtype=dtype), Activation("sigmoid"),
              Dense(9, 7, rng=rng, dtype=dtype), Activation("relu"),
              Dense(7, 5, rng=rng, dtype=dtype), Activation("tanh"),
              Dense(5, 3, rng=rng, dtype=dtype)]
    with layers[2].bias.edit() as b:
        b[:3] = -50  # three ReLU units that are dead on every input
    return Sequential(layers)


@pytest.mark.parametrize("batch", [1, 13])
def test_monitor_figures_match_numpy(dtype, batch, rng):
    net = small_net(dtype)
    X = rng.uniform(0, 1, size=(batch, 11)).astype(dtype)
    y = rng.integers(0, 3, size=batch)
    monitor = Monitor(net, interval=1, saturation_tol=0.05)
    before = {i: net.layers[i].weight.data.astype(np.float64) for i in (0, 2, 4, 6)}
    outputs, grads = ref_forward_backward(net.layers, X, y)
    net.loss(X, y)
    net.backward()
    monitor.after_backward(0)
    fastnn.SGD(net.parameters(), lr=0.3).step()
    monitor.after_update(0)
    rows = rows_at(monitor, 0)
    assert sorted(rows) == list(range(7))
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for i, (dW, db) in grads.items():
        row = rows[i]
        assert row["kind"] == "dense" and row["units"] == db.shape[0]
        np.testing.assert_allclose(row["grad_norm_bias"], np.linalg.norm(db), rtol=rtol)
        np.testing.assert_allclose(row["delta_norm"], np.linalg.norm(db), rtol=rtol)
        np.testing.assert_allclose(row["grad_norm_weight"], np.linalg.norm(dW), rtol=rtol)
        np.testing.assert_allclose(row["weight_norm"], np.linalg.norm(before[i]), rtol=rtol)
        change = np.linalg.norm(net.layers[i].weight.data.astype(np.float64) - before[i])
        np.testing.assert_allclose(row["update_ratio"], change / np.linalg.norm(before[i]),
                                   rtol=10 * rtol)
    for i in outputs:
        row = rows[i]
        A = net.layers[i]._output.astype(np.float64)  # the values the monitor saw
        np.testing.assert_allclose(A, outputs[i], rtol=rtol, atol=1e-6)
        assert row["kind"] == "activation" and row["units"] == A.shape[1]
        np.testing.assert_allclose(row["act_mean"], A.mean(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(row["act_std"], A.std(), rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose([row[f"act_p{q}"] for q in PERCENTILES],
                                   np.percentile(A, PERCENTILES), rtol=rtol)
    sig, relu, tanh = (net.layers[i]._output.astype(np.float64) for i in (1, 3, 5))
    assert rows[1]["saturated_frac"] == np.mean((sig <= 0.05) | (sig >= 0.95))
    assert rows[5]["saturated_frac"] == np.mean(np.abs(tanh) >= 0.95)
    assert rows[3]["dead_frac"] == np.mean(np.all(relu == 0, axis=0))
    assert rows[3]["dead_frac"] >= 3 / 7
    assert rows[1]["dead_frac"] is None and rows[3]["saturated_frac"] is None


def test_saturation_rules():
    tol = 0.01
    assert saturation_bounds("sigmoid", tol) == (0.01, 0.99)
    assert saturation_bounds("tanh", tol) == saturation_bounds("softsign", tol) == (-0.99, 0.99)
    assert saturation_bounds("hardtanh", tol) == (-1.0, 1.0)
    assert saturation_bounds("relu", tol) == (-math.inf, math.inf)
    net = Sequential([Dense(1, 4, rng=0, dtype=np.float64), Activation("hardtanh"),
                      Dense(4, 2, rng=0, dtype=np.float64)])
    net.layers[0].weight.copy_([[3.0, 1.0, 0.999, -2.0]])
    net.layers[0].bias.copy_(0)
    monitor = Monitor(net, interval=1)
    net.loss(np.ones((1, 1)), [0])
    net.backward()
    monitor.after_backward(0)
    assert rows_at(monitor, 0)[1]["saturated_frac"] == 0.75  # 1, 1 (clipped 3) and -1 (clipped -2)


def test_percentiles_use_whole_rows_at_a_stride(rng):
    net = Sequential([Dense(6, 50, rng=0), Activation("elu"), Dense(50, 2, rng=0)])
    monitor = Monitor(net, interval=1, max_percentile_sample=400)  # 8 rows of 50 units
    X = rng.standard_normal((100, 6)).astype(np.float32)
    net.loss(X, rng.integers(0, 2, 100))
    net.backward()
    monitor.after_backward(0)
    A = net.layers[1]._output
    expected = np.percentile(A[::13], PERCENTILES)  # ceil(100 / 8) = 13
    got = [rows_at(monitor, 0)[1][f"act_p{q}"] for q in PERCENTILES]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert abs(got[2] - np.median(A)) < 0.2 * A.std()


def test_monitor_records_only_every_interval_steps(mnist_small):
    X, y = mnist_small[0][:640], mnist_small[1][:640]
    net = fastnn.mlp([784, 16, 10], "relu", rng=0)
    monitor = Monitor(net, interval=3)
    train_steps(net, monitor, X, y, fastnn.SGD(net.parameters(), lr=0.05), 7)
    assert sorted({r["step"] for r in monitor.rows}) == [0, 3, 6]
    assert len(monitor.rows) == 3 * 3
    assert all(r["update_ratio"] is not None for r in monitor.rows if r["kind"] == "dense")


def test_monitor_works_inside_fit(mnist_small):
    from fastnn.training import fit

    X, y = mnist_small[0][:256], mnist_small[1][:256]
    net = fastnn.mlp([784, 16, 10], "sigmoid", rng=0)
    monitor = Monitor(net, interval=2)
    fit(net, X, y, optimizer=fastnn.SGD(net.parameters(), lr=0.1), epochs=1, batch_size=64,
        diagnostics=monitor, rng=0)
    assert sorted({r["step"] for r in monitor.rows}) == [0, 2]
    assert all(r["update_ratio"] > 0 for r in monitor.rows if r["kind"] == "dense")


def test_batchnorm_statistics_match_numpy(dtype, rng):
    net = fastnn.mlp([6, 8, 5, 3], "sigmoid", rng=0, dtype=dtype, batch_norm=True)
    assert isinstance(net.layers[1], BatchNorm)
    X = rng.standard_normal((20, 6)).astype(dtype)
    y = rng.integers(0, 3, 20)
    monitor = Monitor(net, interval=1)
    for step in range(2):
        net.loss(X + step, y)
        net.backward()
        monitor.after_backward(step)
        fastnn.SGD(net.parameters(), lr=0.1).step()
        monitor.after_update(step)
    bn = net.layers[1]
    Z = bn._input.astype(np.float64)  # this step's batch: the Dense output
    mu, var = Z.mean(axis=0), Z.var(axis=0)
    run_mu, run_var = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    row = rows_at(monitor, 1)[1]
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    assert row["kind"] == "batchnorm" and row["units"] == 8
    np.testing.assert_allclose(row["bn_batch_mean"], mu.mean(), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(row["bn_batch_var"], var.mean(), rtol=rtol)
    np.testing.assert_allclose(row["bn_running_mean"], run_mu.mean(), rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(row["bn_running_var"], run_var.mean(), rtol=rtol)
    np.testing.assert_allclose(row["bn_mean_shift"],
                               np.mean(np.abs(mu - run_mu) / np.sqrt(run_var + bn.eps)), rtol=rtol)
    np.testing.assert_allclose(row["bn_var_ratio"], np.mean(var / run_var), rtol=rtol)
    np.testing.assert_allclose(row["grad_norm_bias"], np.linalg.norm(bn.beta.grad), rtol=1e-6)
    np.testing.assert_allclose(row["grad_norm_weight"], np.linalg.norm(bn.gamma.grad), rtol=1e-6)
    dense = rows_at(monitor, 1)[0]
    assert dense["grad_norm_bias"] is None  # the Dense before batch norm has no bias
    assert dense["delta_norm"] == row["grad_norm_bias"]  # delta of that block is beta's gradient


# -- exports ----------------------------------------------------------------------------

@pytest.fixture
def recorded(mnist_small):
    X, y = mnist_small[0][:512], mnist_small[1][:512]
    net = fastnn.mlp([784, 20, 12, 10], "relu", rng=1, batch_norm="after")
    monitor = Monitor(net, interval=2)
    train_steps(net, monitor, X, y, fastnn.SGD(net.parameters(), lr=0.1), 6)
    monitor.rows[0]["grad_norm_weight"] = math.nan  # non-finite values must round-trip too
    monitor.rows[1]["act_p98"] = math.inf
    return monitor


def assert_same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert list(ra) == list(COLUMNS) == list(rb)
        for key in COLUMNS:
            if isinstance(ra[key], float) and math.isnan(ra[key]):
                assert isinstance(rb[key], float) and math.isnan(rb[key]), key
            else:
                assert ra[key] == rb[key] and type(ra[key]) is type(rb[key]), key


def test_json_round_trip_is_strict_json(recorded, tmp_path):
    path = tmp_path / "diag.json"
    recorded.to_json(path)

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["columns"] == list(COLUMNS) and data["meta"]["interval"] == 2
    loaded = DiagnosticsRecord.read_json(path)
    assert_same_rows(recorded.rows, loaded.rows)
    assert loaded.meta == {"interval": 2, "saturation_tol": 0.01}


def test_csv_round_trip(recorded, tmp_path):
    path = tmp_path / "diag.csv"
    recorded.to_csv(path)
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert tuple(lines[0]) == COLUMNS and len(lines) == len(recorded.rows) + 1
    assert_same_rows(recorded.rows, DiagnosticsRecord.read_csv(path).rows)
    assert {r["kind"] for r in recorded.rows} == {"dense", "activation", "batchnorm"}


def test_read_json_refuses_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a fastnn diagnostics file"):
        DiagnosticsRecord.read_json(path)


def test_table_shows_first_and_last_values_per_layer(recorded):
    text = recorded.table()
    lines = text.splitlines()
    assert "step 0" in lines[0] and "step 4" in lines[0]
    for _, name, _ in recorded.record.layers():
        assert name in text
    speed = next(line for line in lines if line.startswith("0 ") and "speed" in line)
    first = [r for r in recorded.rows if r["layer"] == 0][0]["delta_norm"]
    last = [r for r in recorded.rows if r["layer"] == 0][-1]["delta_norm"]
    assert speed.split()[-2:] == [f"{first:.4g}", f"{last:.4g}"]
    assert "dead" in text and "saturated" not in text  # ReLU network: no saturation rule
    assert DiagnosticsRecord().table() == "(no steps recorded)"


def test_plot_writes_png(recorded, tmp_path):
    path = tmp_path / "diag.png"
    recorded.plot(path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_titles_fit_their_panels(recorded, tmp_path, monkeypatch):
    # Each panel's title is no wider than its panel (one ran past it and was clipped at the
    # figure's edge), and norms are typeset, not spelled ||x||.
    from matplotlib.figure import Figure

    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), savefig(fig, *a, **k)))
    recorded.plot(tmp_path / "diag.png", title="test")
    (fig,) = drawn
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 5  # speed, update, activation, fraction, batch norm
    for ax in axes:
        title = ax.title
        assert title.get_window_extent(renderer).width <= ax.get_window_extent(renderer).width, \
            title.get_text()
        assert "||" not in title.get_text() and "||" not in ax.get_ylabel()


def test_plot_without_matplotlib_names_the_extra(recorded, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[plot\]"'):
        recorded.plot(tmp_path / "diag.png")


# -- warnings ---------------------------------------------------------------------------

def run_monitored(mnist_small, sizes, activation, init, lr=0.1, steps=125, interval=5):
    X, y = mnist_small[0], mnist_small[1]
    net = fastnn.mlp(sizes, activation, init=init, rng=0)
    monitor = Monitor(net, interval=interval)
    train_steps(net, monitor, X, y, fastnn.SGD(net.parameters(), lr=lr), steps)
    return monitor


def test_warnings_fire_on_a_vanishing_sigmoid_network(mnist_small):
    monitor = run_monitored(mnist_small, [784] + [30] * 8 + [10], "sigmoid", "nielsen_large")
    warnings = monitor.warnings()
    vanishing = [w for w in warnings if w.startswith("Vanishing gradients")]
    assert len(vanishing) == 1
    assert "dense1" in vanishing[0] and "dense8" in vanishing[0] and "x slower" in vanishing[0]
    assert "He" in vanishing[0] and "batch normalization" in vanishing[0]
    saturation = [w for w in warnings if w.startswith("Saturation")]
    assert len(saturation) == 1 and "sigmoid1" in saturation[0]


def test_no_warnings_on_a_healthy_relu_network(mnist_small):
    assert run_monitored(mnist_small, [784, 256, 128, 10], "relu", "he_normal").warnings() == []


def test_warnings_on_exploding_and_dead_relu_network(mnist_small):
    # whether gradients explode before every unit dies depends on the draw: lr 3 and 4 show both
    warnings = run_monitored(mnist_small, [784, 64, 32, 10], "relu", "he_normal", lr=3.0,
                             steps=60).warnings()
    assert any(w.startswith("Exploding gradients") and "learning rate" in w for w in warnings)
    assert any(w.startswith("Dead units") and "relu1" in w for w in warnings)


def test_non_finite_gradients_warn_of_divergence(mnist_small):
    X, y = mnist_small[0][:64], mnist_small[1][:64]
    net = fastnn.mlp([784, 8, 8, 10], "tanh", rng=0)
    monitor = Monitor(net, interval=1)
    train_steps(net, monitor, X, y, fastnn.SGD(net.parameters(), lr=0.1), 2)
    with net.layers[2].weight.edit() as w:
        w[0, 0] = np.nan
    train_steps(net, monitor, X, y, fastnn.SGD(net.parameters(), lr=0.1), 1, start=2)
    warnings = monitor.warnings()
    assert any("non-finite" in w and "step 2" in w and "diverged" in w for w in warnings)


# -- validation -------------------------------------------------------------------------

def test_monitor_validates_arguments():
    net = fastnn.mlp([4, 3, 2], rng=0)
    with pytest.raises(TypeError, match="Sequential"):
        Monitor(object())
    with pytest.raises(ValueError, match="interval"):
        Monitor(net, interval=0)
    with pytest.raises(ValueError, match="saturation_tol"):
        Monitor(net, saturation_tol=0.7)
    monitor = Monitor(net, interval=1)
    with pytest.raises(ValueError, match="step"):
        monitor.after_backward(-1)
    with pytest.raises(RuntimeError, match="forward"):
        monitor.after_backward(0)


@pytest.mark.parametrize("activation", ["prelu", "rrelu"])
def test_negative_fraction_of_prelu_and_rrelu_units(activation, dtype, rng):
    net = fastnn.mlp([6, 9, 3], activation=activation, dtype=dtype, rng=0)
    with net.layers[0].bias.edit() as b:
        b[:3] = -100  # units 0-2 on the negative side for every example
        b[3:] = 100
    monitor = Monitor(net, interval=1)
    X, y = rng.standard_normal((16, 6)).astype(dtype), rng.integers(0, 3, 16)
    net.loss(X, y)
    net.backward()
    monitor.after_backward(0)
    row = rows_at(monitor, 0)[1]
    assert (row["kind"], row["name"], row["units"]) == ("activation", f"{activation}1", 9)
    assert row["negative_frac"] == 3 / 9 and row["dead_frac"] is None
    assert row["act_mean"] is not None and row["saturated_frac"] is None
    assert "negative" in monitor.table()


def test_negative_fraction_reads_the_input_when_a_prelu_slope_is_negative(rng):
    net = fastnn.mlp([6, 4, 3], activation="prelu", rng=0)
    net.layers[0].bias.copy_([-100, -100, 100, 100])
    net.layers[1].weight.copy_([-0.5, 0.25, -0.5, 0.25])  # unit 0's outputs are all > 0
    monitor = Monitor(net, interval=1)
    net.loss(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
    net.backward()
    monitor.after_backward(0)
    assert rows_at(monitor, 0)[1]["negative_frac"] == 0.5


def test_monitor_warns_of_negative_side_units_not_dead_ones(rng):
    net = fastnn.mlp([6, 8, 3], activation="rrelu", rng=0)
    with net.layers[0].bias.edit() as b:
        b[:6] = -100
    monitor = Monitor(net, interval=1)
    for step in range(3):
        net.loss(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8))
        net.backward()
        monitor.after_backward(step)
    (message,) = [m for m in monitor.warnings() if "units" in m.split(":")[0]]
    assert message.startswith("Negative-side units") and "rrelu1 75%" in message


def test_after_update_without_after_backward_records_nothing():
    net = fastnn.mlp([4, 3, 2], rng=0)
    monitor = Monitor(net, interval=1)
    monitor.after_update(0)
    assert monitor.rows == []


# -- warning rules, one at a time on hand-made records ------------------------------------

def make_record(*rows, saturation_tol=0.01):
    """A DiagnosticsRecord of rows given as (step, layer, name, kind, {column: value})."""
    built = []
    for step, layer, name, kind, values in rows:
        row = dict.fromkeys(COLUMNS)
        row.update(step=step, layer=layer, name=name, kind=kind, units=4, **values)
        built.append(row)
    return DiagnosticsRecord(built, {"saturation_tol": saturation_tol})


def dense_rows(step, relative_gradients, delta=1.0):
    """Rows of Dense layers 0, 2, 4, ... with ‖∂C/∂W‖/‖W‖ as given (‖W‖ = 1)."""
    return [(step, 2 * k, f"dense{k + 1}", "dense",
             {"grad_norm_weight": g, "weight_norm": 1.0, "delta_norm": delta * g})
            for k, g in enumerate(relative_gradients)]


def test_rule_nonfinite_names_the_first_step_and_layer():
    from fastnn import diagnostic_rules

    record = make_record(*dense_rows(0, [1.0, 1.0]), *dense_rows(5, [math.nan, 1.0]))
    (message,) = diagnostic_rules.nonfinite(record)
    assert message.startswith("Exploding gradients: non-finite delta_norm, grad_norm_weight in "
                              "dense1 (layer 0) at step 5")
    assert diagnostic_rules.REMEDIES["exploding"] in message
    zero_weights = make_record((0, 0, "dense1", "dense", {"weight_norm": 0.0,
                                                          "update_ratio": math.inf}))
    assert diagnostic_rules.nonfinite(zero_weights) == []  # ΔW of zero weights is not divergence


@pytest.mark.parametrize("first, kind", [(0.01, "Vanishing"), (100.0, "Exploding"), (0.5, None)])
def test_rule_depth_compares_the_first_and_last_hidden_layer(first, kind):
    from fastnn import diagnostic_rules

    # hidden layers dense1, dense2 (and the output layer dense3, never compared)
    record = make_record(*(row for step in range(4) for row in dense_rows(step, [first, 1.0, 5.0])))
    messages = diagnostic_rules.depth(record)
    if kind is None:
        assert messages == []
        return
    (message,) = messages
    assert message.startswith(f"{kind} gradients: the first hidden layer (dense1, layer 0)")
    assert "(dense2, layer 2)" in message and "median over 4 recorded steps" in message
    assert diagnostic_rules.depth(make_record(*dense_rows(0, [first, 1.0]))) == []  # one hidden


def test_rule_gradient_growth():
    from fastnn import diagnostic_rules

    grows = make_record(*dense_rows(0, [1.0]), *dense_rows(1, [150.0]))
    (message,) = diagnostic_rules.gradient_growth(grows)
    assert "dense1 150x (1 -> 150)" in message
    assert diagnostic_rules.gradient_growth(make_record(*dense_rows(0, [1.0]),
                                                       *dense_rows(1, [99.0]))) == []


@pytest.mark.parametrize("rule, column, threshold, label", [
    ("saturation", "saturated_frac", "SATURATION_WARN", "Saturation: outputs within 0.05"),
    ("dead_units", "dead_frac", "DEAD_WARN", "Dead units: ReLU units"),
    ("negative_units", "negative_frac", "NEGATIVE_WARN", "Negative-side units: PReLU/RReLU units"),
])
def test_rules_on_the_last_third_of_the_records(rule, column, threshold, label):
    from fastnn import diagnostic_rules

    limit = getattr(diagnostic_rules, threshold)
    early_high = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # last third: 0, no warning
    late_high = [0.0, 0.0, 0.0, 0.0, limit, limit]
    for values, warns in ((early_high, False), (late_high, True)):
        record = make_record(*((s, 1, "act1", "activation", {column: v})
                               for s, v in enumerate(values)), saturation_tol=0.05)
        messages = getattr(diagnostic_rules, rule)(record)
        assert bool(messages) == warns
        if warns:
            assert messages[0].startswith(label) and f"act1 {limit:.0%}" in messages[0]


def test_record_warnings_run_the_rules_in_order():
    from fastnn import diagnostic_rules

    rows = [*dense_rows(0, [0.01, 1.0, 1.0]), *dense_rows(1, [math.inf, 1.0, 1.0]),
            (0, 1, "sigmoid1", "activation", {"saturated_frac": 0.9})]
    record = make_record(*rows)
    messages = record.warnings()
    assert messages == diagnostic_rules.warnings(record)
    assert [m.split(":")[0] for m in messages] == ["Exploding gradients", "Vanishing gradients",
                                                   "Saturation"]
    assert diagnostic_rules.warnings(record, rules=(diagnostic_rules.saturation,)) == messages[2:]

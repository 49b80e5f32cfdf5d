"""The shared helpers of fastnn's modules: the scalar validator, the JSON policy, tables, seeds."""
import json
import math

import numpy as np
import pytest

import fastnn
from fastnn import _json, _seeding
from fastnn._table import format_number, format_table
from fastnn._validation import check_number, describe_interval

# -- the one scalar validator -----------------------------------------------------------

@pytest.mark.parametrize("value, bounds, message", [
    ("0.1", {}, "x must be a finite number, got '0.1'"),
    (True, {}, "x must be a finite number, got True"),
    (math.nan, {}, "x must be a finite number, got nan"),
    (math.inf, {"low": 0}, "x must be a finite number, got inf"),
    (-1, {"low": 0}, "x must be >= 0, got -1.0"),
    (0, {"low": 0, "low_open": True}, "x must be > 0, got 0.0"),
    (1, {"high": 1, "high_open": True}, "x must be < 1, got 1.0"),
    (1.5, {"high": 1}, "x must be <= 1, got 1.5"),
])
def test_check_number_messages(value, bounds, message):
    with pytest.raises(ValueError) as info:
        check_number(value, "x", **bounds)
    assert str(info.value) == message


def test_check_number_accepts_and_converts():
    assert check_number(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert type(check_number(np.int64(3), "x")) is float
    assert check_number(0, "x", low=0) == 0.0 and check_number(1, "x", high=1) == 1.0
    assert describe_interval(0.0, 1.0, high_open=True) == "[0.0, 1.0)"
    assert describe_interval(0.0, None, low_open=True) == "(0.0, inf)"


@pytest.mark.parametrize("call, message", [
    (lambda: fastnn.Dropout(p=1.0), "p must be < 1, got 1.0"),
    (lambda: fastnn.BatchNorm(3, eps=0), "eps must be > 0, got 0.0"),
    (lambda: fastnn.Dense(3, 2, max_norm=-1), "max_norm must be > 0, got -1.0"),
    (lambda: fastnn.mlp([3, 2], l2=-0.1), "l2 must be >= 0, got -0.1"),
    (lambda: fastnn.SGD(fastnn.mlp([3, 2]).parameters(), lr=-1), "lr must be >= 0, got -1.0"),
    (lambda: fastnn.initializers.normal((2, 2), std=-1), "std must be >= 0, got -1.0"),
    (lambda: fastnn.initializers.variance_scaling((2, 2), scale=0), "scale must be > 0, got 0.0"),
    (lambda: fastnn.Monitor(fastnn.mlp([3, 2]), saturation_tol=0.5),
     "saturation_tol must be < 0.5, got 0.5"),
], ids=["layers", "batchnorm", "dense", "network", "optimizers", "initializers", "scale",
        "diagnostics"])
def test_every_module_uses_the_one_validator(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


# -- the one JSON policy ----------------------------------------------------------------

def test_json_policy_is_strict_and_round_trips():
    value = {"a": [math.nan, math.inf, -math.inf, 1.5], "b": np.float32(0.5),
             "c": np.arange(3), "d": (True, None, "x"), 4: np.int64(7)}
    text = _json.dumps(value)

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    plain = json.loads(text, parse_constant=refuse)
    assert plain["a"][:3] == ["NaN", "Infinity", "-Infinity"]
    assert plain["c"] == [0, 1, 2] and plain["4"] == 7 and plain["d"] == [True, None, "x"]
    back = _json.loads(text)
    assert math.isnan(back["a"][0]) and back["a"][1:] == [math.inf, -math.inf, 1.5]
    assert back["b"] == 0.5
    with pytest.raises(TypeError, match=r"metadata\['k'\] holds a complex"):
        _json.to_json_data({"k": 1j}, "metadata")


def test_model_files_and_metric_logs_follow_the_policy(tmp_path):
    net = fastnn.mlp([3, 2], rng=0)
    fastnn.save(tmp_path / "m.npz", net, metadata={"loss": math.nan, "best": math.inf})
    with np.load(tmp_path / "m.npz") as archive:
        header = archive["__header__"].tobytes().decode()
    assert '"NaN"' in header and "NaN," not in header.replace('"NaN"', "")
    metadata = fastnn.load(tmp_path / "m.npz").metadata
    assert math.isnan(metadata["loss"]) and metadata["best"] == math.inf

    logger = fastnn.MetricsLogger(tmp_path / "log.jsonl")
    logger.on_train_begin(None)
    logger.on_epoch_end(None, 1, {"epoch": 1, "loss": math.nan})
    logger.on_train_end(None)
    line = (tmp_path / "log.jsonl").read_text().strip()
    assert json.loads(line) == {"epoch": 1, "loss": "NaN"}


# -- the one table formatter -------------------------------------------------------------

@pytest.mark.parametrize("value, digits, text", [
    (None, 4, "-"), (math.nan, 4, "nan"), (math.inf, 4, "inf"), (-math.inf, 3, "-inf"),
    (0, 4, "0"), (0.012345, 4, "0.01235"), (12345.0, 4, "1.234e+04"), (1e-5, 3, "1.00e-05"),
    (0.5, 2, "0.5"),
])
def test_format_number(value, digits, text):
    assert format_number(value, digits) == text


def test_format_table_aligns_and_groups():
    text = format_table(("layer", "name", "value"), [(0, "a", 1), (0, "a", 22), (1, "bb", 3)],
                        group=2)
    assert text.splitlines() == ["layer  name  value", "-----  ----  -----",
                                 "0      a     1", "             22", "1      bb    3"]
    assert format_table(("x",), []) == "x\n-"


# -- named random streams ----------------------------------------------------------------

def test_streams_are_named_and_shared_by_fit_and_the_command_line():
    assert (_seeding.VALIDATION_SPLIT, _seeding.SHUFFLE, _seeding.INITIAL_WEIGHTS) == (0, 1, 2)
    a = _seeding.stream(7, _seeding.SHUFFLE, 3).integers(1 << 30, size=4)
    b = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(1, 3))).integers(1 << 30, size=4)
    np.testing.assert_array_equal(a, b)
    assert _seeding.seed_from(5) == 5
    with pytest.raises(TypeError, match="rng"):
        _seeding.seed_from(-1)

"""The one JSON policy of fastnn's files (model headers, diagnostics, experiment results, logs).

Strict JSON (RFC 8259): what fastnn writes parses with any JSON reader. Strict JSON has no
literal for NaN or infinity, so a non-finite float is written as one of the strings
"NaN", "Infinity", "-Infinity" (the spellings of JavaScript and of Python's ``float``), and
``from_json_data`` reads those three strings back as floats. The price: a string that is
exactly one of them reads back as a float too.
"""
import json
import math
import numbers

import numpy as np

NONFINITE_STRINGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_json_data(value, where="value"):
    """``value`` as plain JSON data: NumPy scalars and arrays as Python numbers and lists,
    tuples as lists, dict keys as str, non-finite floats as strings (see the module docstring).

    Raises TypeError naming ``where`` for anything else (objects, bytes, complex numbers).
    """
    if isinstance(value, dict):
        return {str(k): to_json_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return to_json_data(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    raise TypeError(f"{where} holds a {type(value).__name__}, which JSON cannot hold")


def from_json_data(value):
    """Inverse of ``to_json_data`` for what JSON keeps: "NaN", "Infinity", "-Infinity" → float."""
    if isinstance(value, dict):
        return {k: from_json_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_data(v) for v in value]
    if isinstance(value, str):
        return NONFINITE_STRINGS.get(value, value)
    return value


def dumps(value, where="value", **kwargs):
    """``json.dumps(to_json_data(value))``, refusing any NaN literal that slipped through."""
    return json.dumps(to_json_data(value, where), allow_nan=False, **kwargs)


def dump(value, file, where="value", **kwargs):
    """``json.dump`` of ``to_json_data(value)`` to an open text file."""
    json.dump(to_json_data(value, where), file, allow_nan=False, **kwargs)


def loads(text):
    """``from_json_data(json.loads(text))``."""
    return from_json_data(json.loads(text))

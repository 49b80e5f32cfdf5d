"""The AVX2 and AVX-512 kernel builds agree with the portable builds (which run on any x86-64)."""
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn_c
from fastnn_c import _blas

SCRIPT = r"""
import json, sys
import numpy as np
import fastnn_c
from fastnn_c import activations, losses
rng = np.random.default_rng(0)
out = {"simd": fastnn_c.SIMD}
for dtype in ("float32", "float64"):
    Z = (4 * rng.standard_normal(1001)).astype(dtype)
    for name, code in activations.KINDS.items():
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        activations.activation_forward(code, Z, A, 0.3, 1)
        activations.activation_backward(code, A, Z, dZ, 0.3, 1)
        out[f"{name}-{dtype}"] = [A.tolist(), dZ.tolist()]
    logits = (4 * rng.standard_normal((33, 7))).astype(dtype)
    grad = np.empty_like(logits)
    value = losses.softmax_cross_entropy(logits, rng.integers(0, 7, 33), grad)
    out[f"ce-{dtype}"] = [[value], grad.ravel().tolist()]
json.dump(out, sys.stdout)
"""


def _run(simd):
    env = dict(os.environ, FASTNN_SIMD=simd)
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


CPU_LEVELS = fastnn_c.SIMD_LEVELS[1:fastnn_c.SIMD_LEVELS.index(_blas.cpu_simd_level()) + 1]


def _built(variant):
    try:
        importlib.import_module(f"fastnn_c.activations_{variant}")
    except ImportError:
        return False
    return True


def test_widest_variant_the_cpu_runs_is_selected():
    """The widest level that the CPU runs, FASTNN_SIMD allows and the compiler built."""
    allowed = [level for level in CPU_LEVELS
               if fastnn_c.SIMD_LEVELS.index(level) <= fastnn_c.SIMD_LEVELS.index(
                   os.environ.get("FASTNN_SIMD") or "avx512")]
    expected = next((level for level in reversed(allowed) if _built(level)), "generic")
    assert fastnn_c.SIMD == expected
    suffix = "" if expected == "generic" else f"_{expected}"
    assert fastnn_c.activations.__name__ == f"fastnn_c.activations{suffix}"


def test_unknown_simd_level_is_refused():
    env = dict(os.environ, FASTNN_SIMD="sse9")
    result = subprocess.run([sys.executable, "-c", "import fastnn_c"], env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "FASTNN_SIMD must be one of" in result.stderr


@pytest.mark.parametrize("level", CPU_LEVELS or [pytest.param("avx2", marks=pytest.mark.skip(
    reason="this CPU has no AVX2/FMA"))])
def test_simd_and_portable_builds_agree(level):
    generic, simd = _run("generic"), _run(level)
    assert generic.pop("simd") == "generic" and simd.pop("simd") == level
    for key in generic:
        rtol = 1e-6 if "float32" in key else 1e-14
        # dZ = dA * f'(A) with |dA| up to ~16: one ulp of A near +-1 (tanh, sigmoid) moves
        # 1 - A^2 by ~1e-7, so the absolute tolerance scales with dA
        for a, b in zip(generic[key], simd[key]):
            np.testing.assert_allclose(np.array(b), np.array(a), rtol=rtol, atol=16 * rtol,
                                       err_msg=key)

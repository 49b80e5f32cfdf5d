"""The AVX2+FMA kernel builds agree with the portable builds (which run on any x86-64)."""
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


@pytest.mark.skipif(not _blas.cpu_has_avx2_fma(), reason="this CPU has no AVX2/FMA")
def test_avx2_variants_are_built_and_selected():
    assert fastnn_c.SIMD == "avx2"
    assert fastnn_c.activations.__name__ == "fastnn_c.activations_avx2"


@pytest.mark.skipif(not _blas.cpu_has_avx2_fma(), reason="this CPU has no AVX2/FMA")
def test_avx2_and_portable_builds_agree():
    generic, avx2 = _run("generic"), _run("")
    assert generic.pop("simd") == "generic" and avx2.pop("simd") == "avx2"
    for key in generic:
        rtol = 1e-6 if "float32" in key else 1e-14
        for a, b in zip(generic[key], avx2[key]):
            np.testing.assert_allclose(np.array(b), np.array(a), rtol=rtol, atol=rtol, err_msg=key)

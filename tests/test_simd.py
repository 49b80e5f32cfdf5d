"""The SIMD builds: what the manifest names is what is built, selected and run.

Every kernel family is built once per level (fastnn_c/_manifest.py) as
``fastnn_c.<level>.<family>``; fastnn_c binds ``fastnn_c.<family>`` to the widest level the
CPU runs. The AVX2 and AVX-512 builds must agree with the generic one (which runs on any
x86-64).
"""
import importlib
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn_c
from fastnn_c import _blas
from fastnn_c._manifest import CYTHON_SHARED, FAMILIES, LEVELS, PLAIN

PACKAGE_DIR = Path(fastnn_c.__file__).parent
CPU = _blas.cpu_features()
CAP = os.environ.get("FASTNN_SIMD") or fastnn_c.SIMD_LEVELS[-1]


def _module_files(folder):
    """{module name: file} of the extension modules in ``folder``."""
    found = {}
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    for path in folder.iterdir():
        suffix = next((s for s in suffixes if path.name.endswith(s)), None)
        if suffix:
            found[path.name[:-len(suffix)]] = path
    return found


def _built_levels():
    return [level for level in LEVELS if (PACKAGE_DIR / level.name).is_dir()
            and _module_files(PACKAGE_DIR / level.name)]


def _runs_here(level):
    return set(level.cpu_features) <= CPU


def _run(script, simd):
    env = dict(os.environ, FASTNN_SIMD=simd)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def test_manifest_names_only_features_the_cpu_test_knows():
    assert [level.name for level in LEVELS] == list(fastnn_c.SIMD_LEVELS)
    assert LEVELS[0].cpu_features == ()
    for level in LEVELS:
        assert set(level.cpu_features) <= set(_blas.CPU_FEATURES), level.name


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="compares with /proc/cpuinfo")
def test_cpu_features_agree_with_the_kernel():
    """cpuid + xgetbv report what Linux reports (Linux also hides what the OS does not save)."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert CPU == set(_blas.CPU_FEATURES) & flags


def test_every_built_module_is_in_the_manifest():
    """No module is built without being selected: a built level has every family, and
    nothing else lies in the package (an old ``fastnn_c/dense.*.so`` would be found by
    ``import fastnn_c.dense``)."""
    assert set(_module_files(PACKAGE_DIR)) == {*PLAIN, CYTHON_SHARED}
    built = _built_levels()
    assert built and built[0].name == "generic"
    for level in built:
        assert set(_module_files(PACKAGE_DIR / level.name)) == set(FAMILIES), level.name


def test_the_widest_level_the_cpu_runs_is_selected():
    """The widest level that the CPU runs, FASTNN_SIMD allows and the build has."""
    allowed = fastnn_c.SIMD_LEVELS[:fastnn_c.SIMD_LEVELS.index(CAP) + 1]
    expected = [level.name for level in _built_levels()
                if _runs_here(level) and level.name in allowed][-1]
    assert fastnn_c.SIMD == expected
    for family in FAMILIES:
        module = getattr(fastnn_c, family)
        assert module.__name__ == f"fastnn_c.{expected}.{family}"
        assert sys.modules[module.__name__] is module
        assert f"fastnn_c.{family}" not in sys.modules  # no alias under another name


def test_importing_a_family_as_a_submodule_does_not_rebind_it():
    selected = fastnn_c.activations
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fastnn_c.activations")
    assert fastnn_c.activations is selected


SELECT = """
import json, fastnn_c
print(json.dumps([fastnn_c.SIMD] + [getattr(fastnn_c, f).__name__ for f in fastnn_c._manifest.FAMILIES]))
"""


@pytest.mark.parametrize("level", LEVELS, ids=[level.name for level in LEVELS])
def test_every_built_level_is_selectable(level):
    if level not in _built_levels():
        pytest.skip(f"the {level.name} level was not built (compiler or build switches)")
    if not _runs_here(level):
        pytest.skip(f"this CPU lacks {sorted(set(level.cpu_features) - CPU)}")
    selected, *names = _run(SELECT, level.name)
    assert selected == level.name
    assert names == [f"fastnn_c.{level.name}.{family}" for family in FAMILIES]


def test_unknown_simd_level_is_refused():
    env = dict(os.environ, FASTNN_SIMD="sse9")
    result = subprocess.run([sys.executable, "-c", "import fastnn_c"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "FASTNN_SIMD must be one of" in result.stderr


KERNELS = r"""
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


@pytest.mark.parametrize("level", LEVELS[1:], ids=[level.name for level in LEVELS[1:]])
def test_simd_and_generic_builds_agree(level):
    if level not in _built_levels() or not _runs_here(level):
        pytest.skip(f"the {level.name} level is not built or this CPU does not run it")
    generic, simd = _run(KERNELS, "generic"), _run(KERNELS, level.name)
    assert generic.pop("simd") == "generic" and simd.pop("simd") == level.name
    for key in generic:
        rtol = 1e-6 if "float32" in key else 1e-14
        # dZ = dA * f'(A) with |dA| up to ~16: one ulp of A near +-1 (tanh, sigmoid) moves
        # 1 - A^2 by ~1e-7, so the absolute tolerance scales with dA
        for a, b in zip(generic[key], simd[key], strict=True):
            np.testing.assert_allclose(np.array(b), np.array(a), rtol=rtol, atol=16 * rtol,
                                       err_msg=key)

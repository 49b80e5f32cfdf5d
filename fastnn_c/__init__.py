"""Compiled kernels of fastnn.

Kernels are stateless functions writing into caller-owned output arrays. They check
dtype, contiguity and shapes, so a wrong call raises instead of reading out of bounds; the
validated, user-facing entry points live in the ``fastnn`` package.

Every kernel family of ``_manifest.FAMILIES`` is built once per SIMD level of
``_manifest.LEVELS``, as the module ``fastnn_c.<level>.<family>``. Importing fastnn_c binds
``fastnn_c.<family>`` to the build of the widest level that this CPU runs, that
``FASTNN_SIMD=generic|avx2|avx512`` allows (a cap, for testing each path) and that the build
has; ``fastnn_c.SIMD`` names it. The families are attributes, not submodules: write
``from fastnn_c import dense``. ``import fastnn_c.dense`` finds no module of that name, so it
cannot rebind ``fastnn_c.dense`` to another build.
"""
import importlib
import os

# Loads libscipy_openblas with RTLD_GLOBAL so the extensions below resolve their CBLAS.
import scipy_openblas32  # noqa: F401

from fastnn_c import _blas
from fastnn_c._manifest import FAMILIES, LEVELS

#: The SIMD levels, narrowest first.
SIMD_LEVELS = tuple(level.name for level in LEVELS)

__all__ = ["SIMD", "SIMD_LEVELS", *FAMILIES]


def _import_level(level):
    """{family: module} of one level, or None where that level was not built."""
    modules, missing = {}, []
    for family in FAMILIES:
        name = f"{__name__}.{level}.{family}"
        try:
            modules[family] = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name not in (name, f"{__name__}.{level}"):
                raise
            missing.append(family)
    if not modules:
        return None
    if missing:  # a partial build would silently mix levels
        raise ImportError(f"fastnn_c's {level} build lacks {', '.join(missing)}; "
                          f"rebuild fastnn (pip install .)")
    return modules


def _select():
    """(level, {family: module}) for the widest level the CPU runs, FASTNN_SIMD allows and
    the build has."""
    requested = os.environ.get("FASTNN_SIMD", "").lower() or SIMD_LEVELS[-1]
    if requested not in SIMD_LEVELS:
        raise ValueError(f"FASTNN_SIMD must be one of {SIMD_LEVELS}, got {requested!r}")
    cpu = _blas.cpu_features()
    for level in reversed(LEVELS[:SIMD_LEVELS.index(requested) + 1]):
        if set(level.cpu_features) <= cpu:
            modules = _import_level(level.name)
            if modules is not None:
                return level.name, modules
    raise ImportError(f"fastnn_c has no kernel build for this machine (levels {SIMD_LEVELS}); "
                      f"rebuild fastnn (pip install .)")


SIMD, _modules = _select()
globals().update(_modules)
del _modules

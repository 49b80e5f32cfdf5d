"""Compiled kernels of fastnn.

Kernels are stateless functions writing into caller-owned output arrays. They check
dtype, contiguity and shapes, so a wrong call raises instead of reading out of bounds; the
validated, user-facing entry points live in the ``fastnn`` package. The kernels every
training step calls (dense, losses, optim) take NumPy arrays and check them with
``_arrays.pxd``, which costs a few ns per array against ~110 ns for a typed memoryview;
the others (activations, batchnorm, dropout, regularization, diagnostics) take typed
memoryviews, whose signatures enforce dtype and contiguity.
"""
import os

# Spinning OpenMP workers starve OpenBLAS's threads on small machines (measured 7-130x
# slowdowns on 2 cores); idle workers should sleep. Must be set before libgomp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Loads libscipy_openblas with RTLD_GLOBAL so the extensions below resolve their CBLAS.
import scipy_openblas32  # noqa: E402,F401

import importlib as _importlib  # noqa: E402
import sys as _sys  # noqa: E402

from fastnn_c import _blas  # noqa: E402

#: Kernel families built in SIMD variants; the widest the CPU runs replaces the portable one.
SIMD_FAMILIES = ("activations", "batchnorm", "dense", "diagnostics", "dropout", "losses", "optim",
                 "regularization")
SIMD_LEVELS = _blas.SIMD_LEVELS


def _select_simd_variants():
    """Make each ``fastnn_c.<family>`` its widest build that this CPU runs; return the level.

    FASTNN_SIMD=generic|avx2|avx512 caps the level (for testing each path).
    """
    requested = os.environ.get("FASTNN_SIMD", "").lower() or SIMD_LEVELS[-1]
    if requested not in SIMD_LEVELS:
        raise ValueError(f"FASTNN_SIMD must be one of {SIMD_LEVELS}, got {requested!r}")
    level = min(SIMD_LEVELS.index(requested), SIMD_LEVELS.index(_blas.cpu_simd_level()))
    for variant in reversed(SIMD_LEVELS[1:level + 1]):
        try:
            modules = {family: _importlib.import_module(f"{__name__}.{family}_{variant}")
                       for family in SIMD_FAMILIES}
        except ImportError:  # this variant was not built (compiler without the flags)
            continue
        for family, module in modules.items():
            _sys.modules[f"{__name__}.{family}"] = module
            globals()[family] = module
        return variant
    return "generic"


SIMD = _select_simd_variants()

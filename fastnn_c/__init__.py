"""Compiled kernels of fastnn.

Kernels are stateless functions writing into caller-owned output arrays. They check
shapes (so a wrong call raises instead of reading out of bounds) but assume the
dtype/contiguity that their typed-memoryview signatures enforce; the validated,
user-facing entry points live in the ``fastnn`` package.
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

#: Kernel families that have an AVX2+FMA build; each replaces its portable twin when usable.
SIMD_FAMILIES = ("activations", "batchnorm", "dense", "diagnostics", "dropout", "losses", "optim",
                 "regularization")


def _select_simd_variants():
    """Make ``fastnn_c.<family>`` the ``<family>_avx2`` build when the CPU supports it.

    FASTNN_SIMD=generic keeps the portable builds (for testing both paths).
    """
    if os.environ.get("FASTNN_SIMD", "").lower() == "generic" or not _blas.cpu_has_avx2_fma():
        return "generic"
    for family in SIMD_FAMILIES:
        try:
            module = _importlib.import_module(f"{__name__}.{family}_avx2")
        except ImportError:
            continue
        _sys.modules[f"{__name__}.{family}"] = module
        globals()[family] = module
    return "avx2"


SIMD = _select_simd_variants()

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

"""Optimizer update kernels: one fused, in-place pass over a parameter and its state.

Contract: arrays are validated, C-contiguous and flattened, of one dtype; sizes are
checked here.
"""
from cython cimport floating


def sgd_update(floating[::1] param,        # IN/OUT
               const floating[::1] grad,   # IN
               double lr):
    """θ := θ − α g."""
    cdef Py_ssize_t n = param.shape[0], i
    cdef floating step = <floating>lr
    if grad.shape[0] != n:
        raise ValueError(f"sgd_update: param has {n} elements, grad has {grad.shape[0]}")
    with nogil:
        for i in range(n):
            param[i] -= step * grad[i]

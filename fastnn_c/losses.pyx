"""Loss kernels: value (mean over the batch) and gradient in one pass.

Design: one loop over rows; per row the value and the gradient are computed together
(the softmax is written straight into the gradient buffer). Sums accumulate in double.
Contract: inputs are validated, C-contiguous, one float dtype, labels int64; shapes and
label ranges are checked here so a wrong call raises instead of reading out of bounds.
Pass grad=None to compute the value only.
"""
from cython cimport floating
from libc.stdint cimport int64_t

import numpy as np

from fastnn_c._math cimport REDUCTION_LANES as LANES, fexp, flog, sigmoid, softplus


cdef int _check_labels(const int64_t[::1] labels, Py_ssize_t n, Py_ssize_t k) except -1:
    cdef Py_ssize_t i
    if labels.shape[0] != n:
        raise ValueError(f"labels has {labels.shape[0]} entries, expected {n} (one per row)")
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            raise ValueError(f"labels[{i}] = {labels[i]} is outside [0, {k}) for {k} classes")
    return 0


cdef int _check_same(Py_ssize_t n, Py_ssize_t k, object grad, str name) except -1:
    if n == 0:
        raise ValueError(f"{name}: the batch is empty")
    if grad is not None and (grad.shape[0] != n or grad.shape[1] != k):
        raise ValueError(f"{name}: grad is {tuple(grad.shape[:2])}, expected {(n, k)}")
    return 0


cdef inline floating _row_max(const floating* z, Py_ssize_t k) noexcept nogil:
    """max_j z_j over LANES lanes (NaN entries are skipped here and propagate through exp)."""
    cdef floating lanes[LANES]
    cdef Py_ssize_t b, j, l, body = k - k % LANES
    cdef floating best = z[0]
    for l in range(LANES):
        lanes[l] = z[0]
    for b in range(body // LANES):
        j = b * LANES
        for l in range(LANES):
            lanes[l] = z[j + l] if z[j + l] > lanes[l] else lanes[l]
    for l in range(LANES):
        best = lanes[l] if lanes[l] > best else best
    for j in range(body, k):
        best = z[j] if z[j] > best else best
    return best


cdef inline floating _exp_shifted_sum(const floating* z, floating shift, floating* out,
                                      Py_ssize_t k) noexcept nogil:
    """out_j := e^{z_j − shift} (a vectorised loop), then Σ_j out_j over LANES lanes."""
    cdef floating lanes[LANES]
    cdef Py_ssize_t b, j, l, body = k - k % LANES
    cdef floating total = 0
    for j in range(k):
        out[j] = fexp(z[j] - shift)
    for l in range(LANES):
        lanes[l] = 0
    for b in range(body // LANES):
        j = b * LANES
        for l in range(LANES):
            lanes[l] += out[j + l]
    for l in range(LANES):
        total += lanes[l]
    for j in range(body, k):
        total += out[j]
    return total


def softmax_cross_entropy(const floating[:, ::1] logits,    # IN  (n, k)
                          const int64_t[::1] labels,        # IN  (n,) in [0, k)
                          floating[:, ::1] grad=None):      # OUT (n, k) or None
    """L = (1/n) Σ_i [log Σ_j e^{z_ij} − z_{i,y_i}];  ∂L/∂z_ij = (softmax(z_i)_j − [j = y_i]) / n.

    The log-sum-exp is shifted by the row maximum, so no logit overflows. Per row: a max,
    an exp pass written into the gradient (or a scratch row), a sum and a scaling pass.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef double total = 0
    cdef floating row_max, row_sum, scale
    cdef floating* out
    cdef floating[::1] scratch
    _check_same(n, k, grad, "softmax_cross_entropy")
    _check_labels(labels, n, k)
    if grad is None:
        scratch = np.empty(k, dtype=np.float32 if floating is float else np.float64)
    with nogil:
        for i in range(n):
            out = &scratch[0] if grad is None else &grad[i, 0]
            row_max = _row_max(&logits[i, 0], k)
            row_sum = _exp_shifted_sum(&logits[i, 0], row_max, out, k)
            if grad is not None:
                scale = 1 / (row_sum * n)
                for j in range(k):
                    out[j] = out[j] * scale
                out[labels[i]] -= <floating>1.0 / n
            # (max − z_y) first: adding log(sum) to a huge max would round it away
            total += (row_max - logits[i, labels[i]]) + <double>flog(row_sum)
    return total / n


def mean_squared_error(const floating[:, ::1] pred,     # IN  (n, k)
                       const floating[:, ::1] target,   # IN  (n, k)
                       floating[:, ::1] grad=None):     # OUT (n, k) or None
    """L = (1/(n k)) Σ_ij (p_ij − t_ij)²;  ∂L/∂p_ij = 2 (p_ij − t_ij) / (n k)."""
    cdef Py_ssize_t n = pred.shape[0], k = pred.shape[1], i, j
    cdef double total = 0
    cdef floating d, scale
    _check_same(n, k, grad, "mean_squared_error")
    if target.shape[0] != n or target.shape[1] != k:
        raise ValueError(f"mean_squared_error: target is {target.shape[0], target.shape[1]}, "
                         f"expected {n, k}")
    if k == 0:
        raise ValueError("mean_squared_error: prediction has no columns")
    scale = <floating>(2.0 / (n * k))
    with nogil:
        for i in range(n):
            for j in range(k):
                d = pred[i, j] - target[i, j]
                total += d * d
                if grad is not None:
                    grad[i, j] = scale * d
    return total / (n * k)


def multiclass_hinge(const floating[:, ::1] scores,   # IN  (n, k)
                     const int64_t[::1] labels,       # IN  (n,)
                     floating[:, ::1] grad=None,      # OUT (n, k) or None
                     double margin=1.0):
    """L = (1/n) Σ_i Σ_{j≠y_i} max(0, Δ + s_ij − s_{i,y_i}) (Weston-Watkins max-margin, Δ = margin).

    ∂L/∂s_ij = [Δ + s_ij − s_iy > 0] / n for j ≠ y_i, and minus the count of active
    margins / n for j = y_i. Unlike PyTorch's MultiMarginLoss, there is no division by k.
    """
    cdef Py_ssize_t n = scores.shape[0], k = scores.shape[1], i, j
    cdef double total = 0
    cdef floating m, correct, inv_n = <floating>(1.0 / max(n, 1)), delta = <floating>margin
    cdef Py_ssize_t active
    _check_same(n, k, grad, "multiclass_hinge")
    _check_labels(labels, n, k)
    with nogil:
        for i in range(n):
            correct = scores[i, labels[i]]
            active = 0
            for j in range(k):
                if j == labels[i]:
                    continue
                m = delta + (scores[i, j] - correct)  # difference first, as above
                if m > 0:
                    total += m
                    active += 1
                if grad is not None:
                    grad[i, j] = inv_n if m > 0 else 0
            if grad is not None:
                grad[i, labels[i]] = -active * inv_n
    return total / n


def binary_cross_entropy_logits(const floating[:, ::1] logits,   # IN  (n, k)
                                const floating[:, ::1] target,   # IN  (n, k) in [0, 1]
                                floating[:, ::1] grad=None):     # OUT (n, k) or None
    """L = (1/(n k)) Σ_ij [softplus(z_ij) − t_ij z_ij];  ∂L/∂z_ij = (σ(z_ij) − t_ij) / (n k).

    softplus(z) = max(z, 0) + log1p(e^−|z|), so no logit overflows.
    """
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j
    cdef double total = 0
    cdef floating z, scale
    _check_same(n, k, grad, "binary_cross_entropy_logits")
    if target.shape[0] != n or target.shape[1] != k:
        raise ValueError(f"binary_cross_entropy_logits: target is "
                         f"{target.shape[0], target.shape[1]}, expected {n, k}")
    if k == 0:
        raise ValueError("binary_cross_entropy_logits: logits have no columns")
    scale = <floating>(1.0 / (n * k))
    with nogil:
        for i in range(n):
            for j in range(k):
                z = logits[i, j]
                total += softplus(z) - target[i, j] * z
                if grad is not None:
                    grad[i, j] = scale * (sigmoid(z) - target[i, j])
    return total / (n * k)

"""Loss kernels: value (mean over the batch) and gradient in one pass.

Design: one loop over rows; per row the value and the gradient are computed together
(the softmax is written straight into the gradient buffer). Sums accumulate in double.
Labels are int64 and checked to lie in [0, k). Pass grad=None to compute the value only.
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t

from fastnn_c._arrays cimport array_data, dim, float_type, matrix_data, vector_data
from fastnn_c._math cimport REDUCTION_LANES as LANES, fexp, flog, sigmoid, softplus

cnp.import_array()


cdef const int64_t* _checked_labels(object labels, str kernel, Py_ssize_t n,
                                    Py_ssize_t k) except NULL:
    """The labels' data after checking there is one per row, each in [0, k)."""
    cdef const int64_t* y = <const int64_t*>vector_data(labels, kernel, "labels", cnp.NPY_INT64, n)
    cdef Py_ssize_t i
    for i in range(n):
        if y[i] < 0 or y[i] >= k:
            raise ValueError(f"{kernel}: labels[{i}] = {y[i]} is outside [0, {k}) for {k} classes")
    return y


cdef void* _checked_matrices(str kernel, object values, str name, int typenum, object other,
                             str other_name, void** other_data, object grad,
                             void** grad_data) except NULL:
    """Data of the (n, k) ``values`` (n > 0); of ``other`` (same shape) when ``other_data`` is
    not NULL, and of ``grad`` (same shape, writable; NULL when grad is None)."""
    cdef void* data = array_data(values, kernel, name, typenum, 2)
    cdef Py_ssize_t n = dim(values, 0), k = dim(values, 1)
    if n == 0:
        raise ValueError(f"{kernel}: the batch is empty")
    if other_data != NULL:
        other_data[0] = matrix_data(other, kernel, other_name, typenum, n, k)
        if k == 0:
            raise ValueError(f"{kernel}: {name} has no columns")
    grad_data[0] = NULL
    if grad is not None:
        grad_data[0] = matrix_data(grad, kernel, "grad", typenum, n, k, writable=True)
    return data


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


# -- loops on checked arrays: (n, k) row-major, n > 0 ----------------------------------------
cdef double _softmax_cross_entropy(floating zero, const void* logits_, const int64_t* labels,
                                   void* grad_, void* scratch_, Py_ssize_t n,
                                   Py_ssize_t k) noexcept nogil:
    cdef const floating* logits = <const floating*>logits_
    cdef floating* grad = <floating*>grad_
    cdef floating* scratch = <floating*>scratch_
    cdef Py_ssize_t i, j
    cdef double total = 0
    cdef floating row_max, row_sum, scale
    cdef const floating* z
    cdef floating* out
    for i in range(n):
        z = &logits[i * k]
        out = scratch if grad == NULL else &grad[i * k]
        row_max = _row_max(z, k)
        row_sum = _exp_shifted_sum(z, row_max, out, k)
        if grad != NULL:
            scale = 1 / (row_sum * n)
            for j in range(k):
                out[j] = out[j] * scale
            out[labels[i]] -= <floating>1.0 / n
        # (max − z_y) first: adding log(sum) to a huge max would round it away
        total += (row_max - z[labels[i]]) + <double>flog(row_sum)
    return total / n


cdef double _mean_squared_error(floating zero, const void* pred_, const void* target_,
                                void* grad_, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    cdef const floating* pred = <const floating*>pred_
    cdef const floating* target = <const floating*>target_
    cdef floating* grad = <floating*>grad_
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating d, scale = <floating>(2.0 / (n * k))
    for i in range(n * k):
        d = pred[i] - target[i]
        total += d * d
        if grad != NULL:
            grad[i] = scale * d
    return total / (n * k)


cdef double _multiclass_hinge(floating zero, const void* scores_, const int64_t* labels,
                              void* grad_, Py_ssize_t n, Py_ssize_t k,
                              double margin) noexcept nogil:
    cdef const floating* scores = <const floating*>scores_
    cdef floating* grad = <floating*>grad_
    cdef floating delta = <floating>margin
    cdef Py_ssize_t i, j, active
    cdef double total = 0
    cdef floating m, correct, inv_n = <floating>(1.0 / n)
    for i in range(n):
        correct = scores[i * k + labels[i]]
        active = 0
        for j in range(k):
            if j == labels[i]:
                continue
            m = delta + (scores[i * k + j] - correct)  # difference first, as above
            if m > 0:
                total += m
                active += 1
            if grad != NULL:
                grad[i * k + j] = inv_n if m > 0 else 0
        if grad != NULL:
            grad[i * k + labels[i]] = -active * inv_n
    return total / n


cdef double _binary_cross_entropy_logits(floating zero, const void* logits_,
                                         const void* target_, void* grad_, Py_ssize_t n,
                                         Py_ssize_t k) noexcept nogil:
    cdef const floating* logits = <const floating*>logits_
    cdef const floating* target = <const floating*>target_
    cdef floating* grad = <floating*>grad_
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating z, scale = <floating>(1.0 / (n * k))
    for i in range(n * k):
        z = logits[i]
        total += softplus(z) - target[i] * z
        if grad != NULL:
            grad[i] = scale * (sigmoid(z) - target[i])
    return total / (n * k)


# -- checked entry points --------------------------------------------------------------------
def softmax_cross_entropy(logits, labels, grad=None):
    """L = (1/n) Σ_i [log Σ_j e^{z_ij} − z_{i,y_i}];  ∂L/∂z_ij = (softmax(z_i)_j − [j = y_i]) / n.

    ``logits`` (n, k), ``labels`` (n,) int64 in [0, k), ``grad`` (n, k) or None.
    The log-sum-exp is shifted by the row maximum, so no logit overflows. Per row: a max,
    an exp pass written into the gradient (or a scratch row), a sum and a scaling pass.
    """
    cdef str kernel = "softmax_cross_entropy"
    cdef int t = float_type(logits, kernel, "logits")
    cdef void* g
    cdef void* z = _checked_matrices(kernel, logits, "logits", t, None, "", NULL, grad, &g)
    cdef Py_ssize_t n = dim(logits, 0), k = dim(logits, 1)
    cdef const int64_t* y = _checked_labels(labels, kernel, n, k)
    cdef cnp.npy_intp row = k
    cdef cnp.ndarray scratch = cnp.PyArray_EMPTY(1, &row, t, 0) if grad is None else None
    cdef void* s = NULL if scratch is None else cnp.PyArray_DATA(scratch)
    cdef double value
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _softmax_cross_entropy(<float>0, z, y, g, s, n, k)
        else:
            value = _softmax_cross_entropy(<double>0, z, y, g, s, n, k)
    return value


def mean_squared_error(pred, target, grad=None):
    """L = (1/(n k)) Σ_ij (p_ij − t_ij)²;  ∂L/∂p_ij = 2 (p_ij − t_ij) / (n k).

    ``pred`` and ``target`` (n, k), ``grad`` (n, k) or None.
    """
    cdef str kernel = "mean_squared_error"
    cdef int t = float_type(pred, kernel, "pred")
    cdef void* g
    cdef void* target_data = NULL
    cdef void* p = _checked_matrices(kernel, pred, "pred", t, target, "target", &target_data,
                                     grad, &g)
    cdef Py_ssize_t n = dim(pred, 0), k = dim(pred, 1)
    cdef double value
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _mean_squared_error(<float>0, p, target_data, g, n, k)
        else:
            value = _mean_squared_error(<double>0, p, target_data, g, n, k)
    return value


def multiclass_hinge(scores, labels, grad=None, double margin=1.0):
    """L = (1/n) Σ_i Σ_{j≠y_i} max(0, Δ + s_ij − s_{i,y_i}) (Weston-Watkins max-margin, Δ = margin).

    ∂L/∂s_ij = [Δ + s_ij − s_iy > 0] / n for j ≠ y_i, and minus the count of active
    margins / n for j = y_i. Unlike PyTorch's MultiMarginLoss, there is no division by k.
    ``scores`` (n, k), ``labels`` (n,) int64 in [0, k), ``grad`` (n, k) or None.
    """
    cdef str kernel = "multiclass_hinge"
    cdef int t = float_type(scores, kernel, "scores")
    cdef void* g
    cdef void* s = _checked_matrices(kernel, scores, "scores", t, None, "", NULL, grad, &g)
    cdef Py_ssize_t n = dim(scores, 0), k = dim(scores, 1)
    cdef const int64_t* y = _checked_labels(labels, kernel, n, k)
    cdef double value
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _multiclass_hinge(<float>0, s, y, g, n, k, margin)
        else:
            value = _multiclass_hinge(<double>0, s, y, g, n, k, margin)
    return value


def binary_cross_entropy_logits(logits, target, grad=None):
    """L = (1/(n k)) Σ_ij [softplus(z_ij) − t_ij z_ij];  ∂L/∂z_ij = (σ(z_ij) − t_ij) / (n k).

    ``logits`` and ``target`` (n, k), target in [0, 1]; ``grad`` (n, k) or None.
    softplus(z) = max(z, 0) + log1p(e^−|z|), so no logit overflows.
    """
    cdef str kernel = "binary_cross_entropy_logits"
    cdef int t = float_type(logits, kernel, "logits")
    cdef void* g
    cdef void* target_data = NULL
    cdef void* z = _checked_matrices(kernel, logits, "logits", t, target, "target", &target_data,
                                     grad, &g)
    cdef Py_ssize_t n = dim(logits, 0), k = dim(logits, 1)
    cdef double value
    with nogil:
        if t == cnp.NPY_FLOAT:
            value = _binary_cross_entropy_logits(<float>0, z, target_data, g, n, k)
        else:
            value = _binary_cross_entropy_logits(<double>0, z, target_data, g, n, k)
    return value

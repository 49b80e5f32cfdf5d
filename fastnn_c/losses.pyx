"""Loss kernels: value (mean over the batch) and gradient in one pass.

Design: one loop over rows; per row the value and the gradient are computed together
(the softmax is written straight into the gradient buffer). Sums accumulate in double.
Labels are int64 and checked to lie in [0, k). Pass grad=None to compute the value only.
``weight`` (n,) or None gives each row's weight w_i: the value is the weighted mean
Σ_i w_i ℓ_i / Σ_i w_i of the row losses ℓ_i and the gradient w_i ∇ℓ_i / Σ_i w_i (None: every
w_i = 1, the plain mean; scikit-learn >= 1.7's ``sample_weight``). Rows of zero total
weight carry no information: their value and gradient are 0.
Each kernel takes typed memoryviews (fastnn_c/_kernel.pyx), checks the shapes and labels
and indexes them; the vectorised runs are handed raw rows, as a BLAS is: the softmax's row
max and exp-and-sum pass get ``&logits[i, 0]``, and the elementwise losses (squared error,
logistic) one run over all n k values, ``&pred[0, 0]`` (a loop per row would split the
vectorised exp at every row's end: slower at narrow k, and other last bits in float64).
"""
from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastnn_c._arrays cimport check_matrix, check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport REDUCTION_LANES as LANES, fexp, flog, sigmoid, softplus


cdef int check_batch(str kernel, Py_ssize_t n) except -1:
    """ValueError for an empty batch (the mean over it is undefined)."""
    if n == 0:
        raise ValueError(f"{kernel}: the batch is empty")
    return 0


cdef int check_columns(str kernel, str name, Py_ssize_t k) except -1:
    if k == 0:
        raise ValueError(f"{kernel}: {name} has no columns")
    return 0


cdef int check_labels(str kernel, const int64_t[::1] labels, Py_ssize_t n,
                      Py_ssize_t k) except -1:
    """ValueError unless there is one label per row, each in [0, k)."""
    check_vector(kernel, "labels", labels.shape[0], n)
    cdef Py_ssize_t i
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            raise ValueError(f"{kernel}: labels[{i}] = {labels[i]} is outside [0, {k}) "
                             f"for {k} classes")
    return 0


cdef double check_weight(str kernel, const floating[::1] weight, Py_ssize_t n) except? -1:
    """Σ_i w_i (n without weights); ValueError unless there is one weight per row."""
    if weight is None:
        return <double>n
    check_vector(kernel, "weight", weight.shape[0], n)
    cdef double total = 0
    cdef Py_ssize_t i
    for i in range(n):
        total += weight[i]
    return total


cdef enum:  # the elementwise losses, for the weighted row loop
    SQUARED_ERROR, LOGISTIC, POISSON_LOG


cdef double _weighted_rows(int run, const floating[:, ::1] pred, const floating[:, ::1] target,
                           floating[:, ::1] grad, bint has_grad, const floating[::1] weight,
                           double weight_sum) noexcept nogil:
    """Σ_i w_i Σ_j ℓ_ij / (k Σ w) from the elementwise loss ``run`` called per row; grad := w_i/(k Σ w)
    times the run's ∂ℓ_ij/∂p_ij (the run scales by 1/k, its row's size; this by k w_i/Σ w)."""
    cdef Py_ssize_t i, j, n = pred.shape[0], k = pred.shape[1]
    cdef double total = 0
    cdef floating scale
    for i in range(n):
        if has_grad:
            total += weight[i] * _run(run, &pred[i, 0], &target[i, 0], &grad[i, 0], k)
            scale = <floating>(weight[i] / weight_sum)
            for j in range(k):
                grad[i, j] = grad[i, j] * scale
        else:
            total += weight[i] * _run(run, &pred[i, 0], &target[i, 0], <floating*>NULL, k)
    return total / (weight_sum * k)


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



# -- elementwise losses: the (n, k) values read as one run of n k (n, k > 0) ----------------
# One loop over the whole run, not one per row: the compiler vectorises it across row ends,
# so at narrow k (10 classes) most values take the vector path, and each value falls on the
# vector or the scalar path (libmvec's exp or the scalar one, whose last bits can differ)
# independently of k. The loop is written twice, with and without grad, rather than testing
# grad in it: GCC unswitched the test in the old pointer kernels but not in these, and the
# loop with the test in it does not vectorise.
cdef double _squared_error_run(const floating* pred, const floating* target,
                               floating* grad, Py_ssize_t size) noexcept nogil:
    """Σ (p − t)² in double; grad := 2 (p − t) / size unless grad is NULL."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating d, scale = <floating>(2.0 / size)
    if grad == NULL:
        for i in range(size):
            d = pred[i] - target[i]
            total += d * d
    else:
        for i in range(size):
            d = pred[i] - target[i]
            total += d * d
            grad[i] = scale * d
    return total


cdef double _logistic_run(const floating* logits, const floating* target,
                          floating* grad, Py_ssize_t size) noexcept nogil:
    """Σ softplus(z) − t z in double; grad := (σ(z) − t) / size unless grad is NULL."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating z, scale = <floating>(1.0 / size)
    if grad == NULL:
        for i in range(size):
            z = logits[i]
            total += softplus(z) - target[i] * z
    else:
        for i in range(size):
            z = logits[i]
            total += softplus(z) - target[i] * z
            grad[i] = scale * (sigmoid(z) - target[i])
    return total


cdef double _poisson_log_run(const floating* raw, const floating* target,
                             floating* grad, Py_ssize_t size) noexcept nogil:
    """Σ e^r − t r in double; grad := (e^r − t) / size unless grad is NULL."""
    cdef Py_ssize_t i
    cdef double total = 0
    cdef floating r, scale = <floating>(1.0 / size)
    if grad == NULL:
        for i in range(size):
            r = raw[i]
            total += fexp(r) - target[i] * r
    else:
        for i in range(size):
            r = raw[i]
            total += fexp(r) - target[i] * r
            grad[i] = scale * (fexp(r) - target[i])
    return total


cdef inline double _run(int run, const floating* pred, const floating* target, floating* grad,
                        Py_ssize_t size) noexcept nogil:
    if run == SQUARED_ERROR:
        return _squared_error_run(pred, target, grad, size)
    if run == LOGISTIC:
        return _logistic_run(pred, target, grad, size)
    return _poisson_log_run(pred, target, grad, size)


def _softmax_cross_entropy(const floating[:, ::1] logits,  # IN (n, k)
                           const int64_t[::1] labels,      # IN (n,), in [0, k)
                           floating[:, ::1] grad=None,     # OUT like logits, or None
                           const floating[::1] weight=None):  # IN (n,), or None
    """L = (1/W) Σ_i w_i [log Σ_j e^{z_ij} − z_{i,y_i}];
    ∂L/∂z_ij = w_i (softmax(z_i)_j − [j = y_i]) / W, W = Σ_i w_i (w_i = 1 without weights).

    ``logits`` (n, k), ``labels`` (n,) int64 in [0, k), ``grad`` (n, k) or None,
    ``weight`` (n,) or None.
    The log-sum-exp is shifted by the row maximum, so no logit overflows. Per row: a max,
    an exp pass written into the gradient (or a scratch row), a sum and a scaling pass.
    """
    cdef str kernel = "softmax_cross_entropy"
    cdef Py_ssize_t i, j, n = logits.shape[0], k = logits.shape[1]
    cdef bint has_grad = grad is not None
    check_batch(kernel, n)
    if has_grad:
        check_matrix(kernel, "grad", grad.shape[0], grad.shape[1], n, k)
    check_labels(kernel, labels, n, k)  # k > 0 from here: no label lies in [0, 0)
    cdef bint weighted = weight is not None
    cdef double weight_sum = check_weight(kernel, weight, n)
    if weight_sum == 0:
        if has_grad:
            grad[:, :] = 0
        return 0.0
    cdef floating* scratch = NULL
    if not has_grad:
        scratch = <floating*>malloc(k * sizeof(floating))
        if scratch == NULL:
            raise MemoryError(f"{kernel}: no memory for a scratch row of {k} values")
    cdef double total = 0, row_loss
    cdef floating row_max, row_sum, scale, w = 1
    cdef floating* out
    try:
        with nogil:
            for i in range(n):
                out = scratch if not has_grad else &grad[i, 0]
                if weighted:
                    w = weight[i]
                row_max = _row_max(&logits[i, 0], k)
                row_sum = _exp_shifted_sum(&logits[i, 0], row_max, out, k)
                if has_grad:
                    scale = <floating>(w / (row_sum * weight_sum))
                    for j in range(k):
                        grad[i, j] = grad[i, j] * scale
                    grad[i, labels[i]] -= <floating>(w / weight_sum)
                # (max − z_y) first: adding log(sum) to a huge max would round it away
                row_loss = (row_max - logits[i, labels[i]]) + <double>flog(row_sum)
                total += w * row_loss if weighted else row_loss
    finally:
        free(scratch)
    return total / weight_sum


def _mean_squared_error(const floating[:, ::1] pred,    # IN (n, k)
                        const floating[:, ::1] target,  # IN like pred
                        floating[:, ::1] grad=None,     # OUT like pred, or None
                        const floating[::1] weight=None):  # IN (n,), or None
    """L = (1/(W k)) Σ_ij w_i (p_ij − t_ij)²;  ∂L/∂p_ij = 2 w_i (p_ij − t_ij) / (W k),
    W = Σ_i w_i (w_i = 1 without weights).

    ``pred`` and ``target`` (n, k), ``grad`` (n, k) or None, ``weight`` (n,) or None.
    """
    cdef str kernel = "mean_squared_error"
    cdef Py_ssize_t n = pred.shape[0], k = pred.shape[1]
    cdef bint has_grad = grad is not None
    check_batch(kernel, n)
    check_matrix(kernel, "target", target.shape[0], target.shape[1], n, k)
    check_columns(kernel, "pred", k)
    if has_grad:
        check_matrix(kernel, "grad", grad.shape[0], grad.shape[1], n, k)
    cdef double total
    if weight is not None:
        return _weighted_elementwise(kernel, SQUARED_ERROR, pred, target, grad, weight)
    with nogil:
        total = _squared_error_run(&pred[0, 0], &target[0, 0],
                                   &grad[0, 0] if has_grad else <floating*>NULL, n * k)
    return total / (n * k)


def _multiclass_hinge(const floating[:, ::1] scores,  # IN (n, k)
                      const int64_t[::1] labels,      # IN (n,), in [0, k)
                      floating[:, ::1] grad=None,     # OUT like scores, or None
                      const floating[::1] weight=None,  # IN (n,), or None
                      double margin=1.0):
    """L = (1/W) Σ_i w_i Σ_{j≠y_i} max(0, Δ + s_ij − s_{i,y_i}) (Weston-Watkins max-margin,
    Δ = margin; W = Σ_i w_i, w_i = 1 without weights).

    ∂L/∂s_ij = w_i [Δ + s_ij − s_iy > 0] / W for j ≠ y_i, and minus w_i times the count of
    active margins / W for j = y_i. Unlike PyTorch's MultiMarginLoss, there is no division
    by k. ``scores`` (n, k), ``labels`` (n,) int64 in [0, k), ``grad`` (n, k) or None,
    ``weight`` (n,) or None.
    """
    cdef str kernel = "multiclass_hinge"
    cdef Py_ssize_t i, j, active, n = scores.shape[0], k = scores.shape[1]
    cdef bint has_grad = grad is not None
    check_batch(kernel, n)
    if has_grad:
        check_matrix(kernel, "grad", grad.shape[0], grad.shape[1], n, k)
    check_labels(kernel, labels, n, k)
    cdef bint weighted = weight is not None
    cdef double weight_sum = check_weight(kernel, weight, n), row_total
    if weight_sum == 0:
        if has_grad:
            grad[:, :] = 0
        return 0.0
    cdef floating delta = <floating>margin
    cdef double total = 0
    cdef floating m, correct, inv_n = <floating>(1.0 / weight_sum)
    with nogil:
        for i in range(n):
            if weighted:
                inv_n = <floating>(weight[i] / weight_sum)
            correct = scores[i, labels[i]]
            active = 0
            row_total = 0
            for j in range(k):
                if j == labels[i]:
                    continue
                m = delta + (scores[i, j] - correct)  # difference first, as above
                if m > 0:
                    row_total += m
                    active += 1
                if has_grad:
                    grad[i, j] = inv_n if m > 0 else 0
            total += weight[i] * row_total if weighted else row_total
            if has_grad:
                grad[i, labels[i]] = -active * inv_n
    return total / weight_sum


def _binary_cross_entropy_logits(const floating[:, ::1] logits,  # IN (n, k)
                                 const floating[:, ::1] target,  # IN like logits, in [0, 1]
                                 floating[:, ::1] grad=None,     # OUT like logits, or None
                                 const floating[::1] weight=None):  # IN (n,), or None
    """L = (1/(W k)) Σ_ij w_i [softplus(z_ij) − t_ij z_ij];
    ∂L/∂z_ij = w_i (σ(z_ij) − t_ij) / (W k), W = Σ_i w_i (w_i = 1 without weights).

    ``logits`` and ``target`` (n, k), target in [0, 1]; ``grad`` (n, k) or None; ``weight``
    (n,) or None.
    softplus(z) = max(z, 0) + log1p(e^−|z|), so no logit overflows.
    """
    cdef str kernel = "binary_cross_entropy_logits"
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1]
    cdef bint has_grad = grad is not None
    check_batch(kernel, n)
    check_matrix(kernel, "target", target.shape[0], target.shape[1], n, k)
    check_columns(kernel, "logits", k)
    if has_grad:
        check_matrix(kernel, "grad", grad.shape[0], grad.shape[1], n, k)
    cdef double total
    if weight is not None:
        return _weighted_elementwise(kernel, LOGISTIC, logits, target, grad, weight)
    with nogil:
        total = _logistic_run(&logits[0, 0], &target[0, 0],
                              &grad[0, 0] if has_grad else <floating*>NULL, n * k)
    return total / (n * k)


def _poisson_log(const floating[:, ::1] raw,     # IN (n, k), the log of the prediction
                 const floating[:, ::1] target,  # IN like raw, ≥ 0
                 floating[:, ::1] grad=None,     # OUT like raw, or None
                 const floating[::1] weight=None):  # IN (n,), or None
    """L = (1/(W k)) Σ_ij w_i [e^{r_ij} − t_ij r_ij];  ∂L/∂r_ij = w_i (e^{r_ij} − t_ij) / (W k).

    Half the Poisson deviance with the log link, ŷ = e^r, less its terms free of r
    (scikit-learn's ``HalfPoissonLoss``); W = Σ_i w_i (w_i = 1 without weights).
    ``raw`` and ``target`` (n, k); ``grad`` (n, k) or None; ``weight`` (n,) or None.
    """
    cdef str kernel = "poisson_log"
    cdef Py_ssize_t n = raw.shape[0], k = raw.shape[1]
    cdef bint has_grad = grad is not None
    check_batch(kernel, n)
    check_matrix(kernel, "target", target.shape[0], target.shape[1], n, k)
    check_columns(kernel, "raw", k)
    if has_grad:
        check_matrix(kernel, "grad", grad.shape[0], grad.shape[1], n, k)
    cdef double total
    if weight is not None:
        return _weighted_elementwise(kernel, POISSON_LOG, raw, target, grad, weight)
    with nogil:
        total = _poisson_log_run(&raw[0, 0], &target[0, 0],
                                 &grad[0, 0] if has_grad else <floating*>NULL, n * k)
    return total / (n * k)


cdef double _weighted_elementwise(str kernel, int run, const floating[:, ::1] pred, const floating[:, ::1] target,
                                  floating[:, ::1] grad, const floating[::1] weight) except? -1:
    """An elementwise loss weighted per row (the shapes checked by the caller)."""
    cdef double weight_sum = check_weight(kernel, weight, pred.shape[0]), total
    cdef bint has_grad = grad is not None
    if weight_sum == 0:
        if has_grad:
            grad[:, :] = 0
        return 0.0
    with nogil:
        total = _weighted_rows(run, pred, target, grad, has_grad, weight, weight_sum)
    return total


softmax_cross_entropy = Kernel(_softmax_cross_entropy, "softmax_cross_entropy", "logits:2",
                               "labels:1:int64", "grad:2?!", "weight:1?")
mean_squared_error = Kernel(_mean_squared_error, "mean_squared_error", "pred:2", "target:2",
                            "grad:2?!", "weight:1?")
multiclass_hinge = Kernel(_multiclass_hinge, "multiclass_hinge", "scores:2", "labels:1:int64",
                          "grad:2?!", "weight:1?")
binary_cross_entropy_logits = Kernel(_binary_cross_entropy_logits, "binary_cross_entropy_logits",
                                     "logits:2", "target:2", "grad:2?!", "weight:1?")
poisson_log = Kernel(_poisson_log, "poisson_log", "raw:2", "target:2", "grad:2?!", "weight:1?")

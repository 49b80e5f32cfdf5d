"""Batch-normalization kernels over the batch axis of (batch, features) input.

Design: every pass walks X row by row with the feature loop innermost (contiguous,
row-major reads, vectorised across features). Element arithmetic is in the input dtype;
what makes float32 accurate is where the subtraction happens:
- μ is found with a shift: Σ(x − x₀)/n with x₀ the first row, accumulated in double.
- Every later pass works on dev = x − μ̃, μ̃ = μ rounded to the input dtype (the variance
  pass also refines μ = μ̃ + Σdev/n, since dev is exact where x − x₀ may not be). When |μ| ≫ σ
  (where a float32 μ can be off by a sizeable fraction of σ) x and μ̃ are within a factor of
  2, so dev is exact (Sterbenz), and the rounding δ = μ − μ̃, known in double, is folded
  into the per-feature coefficients: x − μ = dev − δ.
- Variance is the corrected two-pass σ² = (Σdev² − (Σdev)²/n)/n (Chan, Golub & LeVeque
  1983), no catastrophic cancellation.
- Sums over rows run in the input dtype over blocks of BLOCK_ROWS rows and are added into
  double accumulators per block, so rounding stays that of a 64-term sum at any batch size.
- Outputs are one FMA-shaped expression per element with per-feature coefficients computed
  in double: Y = a·dev + c in the forward pass; dX = p·dY + q·dev + r in the backward pass
  (the compact closed form (γ/(nσ))(n dY − dβ − x̂ dγ), rearranged).
The training forward pass updates the running statistics in the same call and caches only
μ and 1/√(σ² + ε) per feature (float64); backward recomputes dev. No (batch, features)
temporaries are allocated. With n_threads > 1 the features are split into one block per
thread, each running every pass on its columns with scratch of its own (one parallel region
per call; results bit-identical to one thread's).
Shapes: X, Y, dY, dX (n, d); γ, β, running statistics (d,) in the input dtype; μ and 1/σ
(d,) in float64.
Convention (fastnn_c/_kernel.pyx): each kernel takes typed memoryviews and is published as a
``Kernel``; the column loops index them (``X[i, j]``) over a block [j0, j1) of features, so a
``FASTNN_DEBUG_CYTHON=1`` build bounds-checks every access (the loops are ``noexcept``, as
``prange`` bodies are: an IndexError there is reported as unraisable, which fails the tests).
Only the per-thread scratch (partial sums, μ̃, coefficients) is a raw, 64-byte-aligned buffer.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free

from fastnn_c._arrays cimport (COLUMN_UNIT, aligned_scratch, check_matrix, check_vector,
                               column_parts, column_start)
from fastnn_c._kernel import Kernel


cdef enum:
    # Rows summed in the input dtype before a block's sums go into double accumulators.
    BLOCK_ROWS = 64
    # Per-feature scratch of a block of features, in doubles: 2 rows of double accumulators,
    # then up to 6 rows of the input dtype (partial sums, μ̃, output coefficients).
    SCRATCH_ROWS = 8


cdef Py_ssize_t _width(Py_ssize_t d, Py_ssize_t parts) noexcept nogil:
    """The widest block of ``column_start``'s (whole COLUMN_UNITs): a thread's scratch row
    length, so that each thread's scratch starts on a cache line of its own."""
    cdef Py_ssize_t units = (d + COLUMN_UNIT - 1) // COLUMN_UNIT
    return (units + parts - 1) // parts * COLUMN_UNIT


cdef double* _scratch(Py_ssize_t d, Py_ssize_t parts) except NULL:
    """Each block's SCRATCH_ROWS rows of _width doubles, 64-byte aligned (free() it)."""
    cdef void* p = aligned_scratch(parts * SCRATCH_ROWS * _width(d, parts) * sizeof(double))
    if p == NULL:
        raise MemoryError()
    return <double*>p


# -- loops on checked views: X and friends (n, d), vectors (d,); one block of features -------
cdef void _forward_train_columns(const floating[:, ::1] X, const floating[::1] gamma,
                                const floating[::1] beta, floating[::1] running_mean,
                                floating[::1] running_var, double m, double eps,
                                floating[:, ::1] Y, double[::1] mean, double[::1] inv_std,
                                double* scratch, Py_ssize_t ws, Py_ssize_t j0,
                                Py_ssize_t j1) noexcept nogil:
    """The training forward pass for features [j0, j1); ``scratch``: SCRATCH_ROWS rows of
    ``ws`` >= j1 − j0 doubles (indexed from 0 for feature j0)."""
    cdef Py_ssize_t i, j, r0, r1, blk, n = X.shape[0], w = j1 - j0
    cdef double* acc1 = scratch
    cdef double* acc2 = scratch + ws
    cdef floating* part1 = <floating*>(scratch + 2 * ws)
    cdef floating* part2 = part1 + ws
    cdef floating* center = part1 + 2 * ws  # μ̃ = μ rounded to the input dtype
    cdef floating* coef_a = part1 + 3 * ws  # Y = a·dev + c
    cdef floating* coef_c = part1 + 4 * ws
    cdef floating dev
    cdef double var, a
    for j in range(w):
        acc1[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
        for i in range(r0, r1):
            for j in range(w):
                part1[j] += X[i, j0 + j] - X[0, j0 + j]
        for j in range(w):
            acc1[j] += part1[j]
    for j in range(w):
        mean[j0 + j] = X[0, j0 + j] + acc1[j] / n
        center[j] = <floating>mean[j0 + j]
        acc1[j] = 0
        acc2[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            for j in range(w):
                dev = X[i, j0 + j] - center[j]
                part1[j] += dev
                part2[j] += dev * dev
        for j in range(w):
            acc1[j] += part1[j]
            acc2[j] += part2[j]
    for j in range(w):
        # refined: dev = x − μ̃ is exact, the first shift was not
        mean[j0 + j] = center[j] + acc1[j] / n
        var = (acc2[j] - acc1[j] * acc1[j] / n) / n
        if var < 0:
            var = 0
        inv_std[j0 + j] = 1 / sqrt(var + eps)
        running_mean[j0 + j] = <floating>((1 - m) * running_mean[j0 + j] + m * mean[j0 + j])
        running_var[j0 + j] = <floating>((1 - m) * running_var[j0 + j] + m * var * n / (n - 1))
        a = gamma[j0 + j] * inv_std[j0 + j]
        coef_a[j] = <floating>a
        coef_c[j] = <floating>(beta[j0 + j] - a * (mean[j0 + j] - center[j]))  # β − a·δ
    for i in range(n):
        for j in range(w):
            Y[i, j0 + j] = coef_a[j] * (X[i, j0 + j] - center[j]) + coef_c[j]


cdef void _backward_columns(const floating[:, ::1] X, const double[::1] mean,
                           const double[::1] inv_std, const floating[::1] gamma,
                           const floating[:, ::1] dY, floating[::1] dgamma,
                           floating[::1] dbeta, floating[:, ::1] dX, bint with_dX,
                           bint batch_stats, double* scratch, Py_ssize_t ws, Py_ssize_t j0,
                           Py_ssize_t j1) noexcept nogil:
    """The backward pass for features [j0, j1) (dX only when ``with_dX``); ``scratch``:
    SCRATCH_ROWS rows of ``ws`` >= j1 − j0 doubles (indexed from 0 for feature j0).

    With x − μ = dev − δ (dev = x − μ̃, see the module docstring): dβ = Σ dY,
    dγ = (Σ dY·dev − δ dβ)/σ, and dX = p·dY + q·dev + r with p = γ/σ, q = −γ dγ/(nσ²),
    r = −(γ/(nσ)) dβ − q δ.
    """
    cdef Py_ssize_t i, j, r0, r1, blk, n = X.shape[0], w = j1 - j0
    cdef double* sdy = scratch
    cdef double* sdydev = scratch + ws
    cdef floating* part1 = <floating*>(scratch + 2 * ws)
    cdef floating* part2 = part1 + ws
    cdef floating* center = part1 + 2 * ws
    cdef floating* coef_p = part1 + 3 * ws
    cdef floating* coef_q = part1 + 4 * ws
    cdef floating* coef_r = part1 + 5 * ws
    cdef double delta, dgam, p, q
    for j in range(w):
        sdy[j] = 0
        sdydev[j] = 0
        center[j] = <floating>mean[j0 + j]
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            for j in range(w):
                part1[j] += dY[i, j0 + j]
                part2[j] += dY[i, j0 + j] * (X[i, j0 + j] - center[j])
        for j in range(w):
            sdy[j] += part1[j]
            sdydev[j] += part2[j]
    for j in range(w):
        delta = mean[j0 + j] - center[j]
        dgam = (sdydev[j] - delta * sdy[j]) * inv_std[j0 + j]
        dbeta[j0 + j] = <floating>sdy[j]
        dgamma[j0 + j] = <floating>dgam
        p = gamma[j0 + j] * inv_std[j0 + j]
        if batch_stats:
            q = -p * dgam * inv_std[j0 + j] / n
            coef_p[j] = <floating>p
            coef_q[j] = <floating>q
            coef_r[j] = <floating>(-p * sdy[j] / n - q * delta)
        else:
            coef_p[j] = <floating>p
    if not with_dX:
        return
    if batch_stats:
        for i in range(n):
            for j in range(w):
                dX[i, j0 + j] = (coef_p[j] * dY[i, j0 + j]
                                 + coef_q[j] * (X[i, j0 + j] - center[j]) + coef_r[j])
    else:
        for i in range(n):
            for j in range(w):
                dX[i, j0 + j] = coef_p[j] * dY[i, j0 + j]


# -- kernels ---------------------------------------------------------------------------------
def _batchnorm_forward_train(const floating[:, ::1] X,       # IN (n, d), n >= 2
                             const floating[::1] gamma,      # IN (d,)
                             const floating[::1] beta,       # IN (d,)
                             floating[::1] running_mean,     # IN/OUT (d,), updated in place
                             floating[::1] running_var,      # IN/OUT (d,), updated in place
                             double momentum, double eps,
                             floating[:, ::1] Y,             # OUT (n, d), may be X
                             double[::1] mean,               # OUT (d,) float64, the batch μ
                             double[::1] inv_std,            # OUT (d,) float64, 1/√(σ² + ε)
                             int n_threads=1):
    """Y := γ (X − μ)/√(σ² + ε) + β with batch μ, biased σ²;
    running_mean := (1 − m) running_mean + m μ;  running_var := (1 − m) running_var + m σ² n/(n − 1).

    ``X`` (n, d), n >= 2; ``gamma``, ``beta`` (d,); ``running_mean``, ``running_var`` (d,)
    updated in place; ``Y`` (n, d) out; ``mean`` (d,) float64 out, the batch μ; ``inv_std``
    (d,) float64 out, 1/√(σ² + ε).
    """
    cdef str kernel = "batchnorm_forward_train"
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    check_vector(kernel, "gamma", gamma.shape[0], d)
    check_vector(kernel, "beta", beta.shape[0], d)
    check_vector(kernel, "running_mean", running_mean.shape[0], d)
    check_vector(kernel, "running_var", running_var.shape[0], d)
    check_matrix(kernel, "Y", Y.shape[0], Y.shape[1], n, d)
    check_vector(kernel, "mean", mean.shape[0], d)
    check_vector(kernel, "inv_std", inv_std.shape[0], d)
    cdef Py_ssize_t block, parts = column_parts(d, n_threads)
    cdef Py_ssize_t ws = _width(d, parts)
    cdef double* scratch
    if n < 2:
        raise ValueError(f"{kernel}: X has {n} rows, expected at least 2 rows (batch statistics)")
    scratch = _scratch(d, parts)
    with nogil:
        if parts > 1:
            for block in prange(parts, num_threads=n_threads, schedule="static"):  # the whole team
                _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps,
                                       Y, mean, inv_std, scratch + block * SCRATCH_ROWS * ws, ws,
                                       column_start(d, parts, block),
                                       column_start(d, parts, block + 1))
        else:
            _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                   mean, inv_std, scratch, ws, 0, d)
    free(scratch)


def _batchnorm_forward_eval(const floating[:, ::1] X,          # IN (n, d)
                            const floating[::1] gamma,         # IN (d,)
                            const floating[::1] beta,          # IN (d,)
                            const floating[::1] running_mean,  # IN (d,)
                            const floating[::1] running_var,   # IN (d,)
                            double eps,
                            floating[:, ::1] Y,                # OUT (n, d), may be X
                            double[::1] mean,                  # OUT (d,) float64
                            double[::1] inv_std):              # OUT (d,) float64
    """Y := γ (X − running_mean)/√(running_var + ε) + β.

    ``X`` (n, d); ``gamma``, ``beta``, ``running_mean``, ``running_var`` (d,); ``Y`` (n, d)
    out; ``mean`` (d,) float64 out, running_mean for backward; ``inv_std`` (d,) float64 out,
    1/√(running_var + ε).
    """
    cdef str kernel = "batchnorm_forward_eval"
    cdef Py_ssize_t i, j, n = X.shape[0], d = X.shape[1]
    check_vector(kernel, "gamma", gamma.shape[0], d)
    check_vector(kernel, "beta", beta.shape[0], d)
    check_vector(kernel, "running_mean", running_mean.shape[0], d)
    check_vector(kernel, "running_var", running_var.shape[0], d)
    check_matrix(kernel, "Y", Y.shape[0], Y.shape[1], n, d)
    check_vector(kernel, "mean", mean.shape[0], d)
    check_vector(kernel, "inv_std", inv_std.shape[0], d)
    with nogil:
        for j in range(d):
            mean[j] = running_mean[j]
            inv_std[j] = 1 / sqrt(<double>running_var[j] + eps)
        for i in range(n):
            for j in range(d):
                Y[i, j] = <floating>(gamma[j] * ((X[i, j] - mean[j]) * inv_std[j]) + beta[j])


def _batchnorm_backward(const floating[:, ::1] X,     # IN (n, d), the forward input
                        const double[::1] mean,       # IN (d,) float64, μ of the forward pass
                        const double[::1] inv_std,    # IN (d,) float64, 1/σ of the forward pass
                        const floating[::1] gamma,    # IN (d,)
                        const floating[:, ::1] dY,    # IN (n, d)
                        floating[::1] dgamma,         # OUT (d,)
                        floating[::1] dbeta,          # OUT (d,)
                        floating[:, ::1] dX,          # OUT (n, d), or None to skip it
                        bint batch_stats, int n_threads=1):
    """dβ := Σ_rows dY;  dγ := Σ_rows dY x̂;  with x̂ = (X − μ)/σ and
    dX := (γ/(nσ)) (n dY − dβ − x̂ dγ) when μ, σ are batch statistics (training mode),
    dX := (γ/σ) dY when they are constants (running statistics, evaluation mode).

    ``X`` (n, d), the forward input; ``mean``, ``inv_std`` (d,) float64, μ and 1/σ of the
    forward pass; ``gamma`` (d,); ``dY`` (n, d); ``dgamma``, ``dbeta`` (d,) out; ``dX`` (n, d)
    out, or None to skip it.
    """
    cdef str kernel = "batchnorm_backward"
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef bint with_dX = dX is not None
    check_vector(kernel, "mean", mean.shape[0], d)
    check_vector(kernel, "inv_std", inv_std.shape[0], d)
    check_vector(kernel, "gamma", gamma.shape[0], d)
    check_matrix(kernel, "dY", dY.shape[0], dY.shape[1], n, d)
    check_vector(kernel, "dgamma", dgamma.shape[0], d)
    check_vector(kernel, "dbeta", dbeta.shape[0], d)
    if with_dX:
        check_matrix(kernel, "dX", dX.shape[0], dX.shape[1], n, d)
    cdef Py_ssize_t block, parts = column_parts(d, n_threads)
    cdef Py_ssize_t ws = _width(d, parts)
    cdef double* scratch = _scratch(d, parts)
    with nogil:
        if parts > 1:
            for block in prange(parts, num_threads=n_threads, schedule="static"):  # the whole team
                _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, with_dX,
                                  batch_stats, scratch + block * SCRATCH_ROWS * ws, ws,
                                  column_start(d, parts, block),
                                  column_start(d, parts, block + 1))
        else:
            _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, with_dX,
                              batch_stats, scratch, ws, 0, d)
    free(scratch)


batchnorm_forward_train = Kernel(_batchnorm_forward_train, "batchnorm_forward_train", "X:2",
                                 "gamma:1", "beta:1", "running_mean:1!", "running_var:1!",
                                 "momentum", "eps", "Y:2!", "mean:1:float64!",
                                 "inv_std:1:float64!")
batchnorm_forward_eval = Kernel(_batchnorm_forward_eval, "batchnorm_forward_eval", "X:2",
                                "gamma:1", "beta:1", "running_mean:1", "running_var:1", "eps",
                                "Y:2!", "mean:1:float64!", "inv_std:1:float64!")
batchnorm_backward = Kernel(_batchnorm_backward, "batchnorm_backward", "X:2", "mean:1:float64",
                            "inv_std:1:float64", "gamma:1", "dY:2", "dgamma:1!", "dbeta:1!",
                            "dX:2?!")

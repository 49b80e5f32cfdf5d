"""Batch-normalization kernels over the batch axis of (batch, features) input.

Design: every pass walks X row by row with the feature loop innermost (contiguous,
row-major reads, vectorised across features). Element arithmetic is in the input dtype;
what makes float32 accurate is where the subtraction happens:
- μ is found with a shift: Σ(x − x₀)/n with x₀ the first row, accumulated in double.
- Every later pass works on dev = x − μ̃, μ̃ = μ rounded to the input dtype (the variance
  pass also refines μ = μ̃ + Σdev/n, since dev is exact where x − x₀ may not be). When |μ| ≫ σ
  (where a float32 μ would be off by up to 5% of σ at μ = 1e4, σ = 1e-2) x and μ̃ are within
  a factor of 2, so dev is exact (Sterbenz), and the rounding δ = μ − μ̃, known in double,
  is folded into the per-feature coefficients: x − μ = dev − δ.
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
thread, each running every pass on its columns (one parallel region per call).
Contract: inputs are validated, C-contiguous and of one float dtype; shapes are checked
here so that a wrong call raises ValueError instead of reading out of bounds.
Shapes: X, Y, dY, dX (n, d); γ, β, running statistics (d,) in the input dtype; μ and 1/σ
(d,) in float64.
"""
from cython cimport floating
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc
from cython.parallel cimport prange


cdef enum:
    # Rows summed in the input dtype before a block's sums go into double accumulators.
    BLOCK_ROWS = 64
    # Per-feature scratch of a call, in doubles: 2 rows of double accumulators, then up to
    # 6 rows of the input dtype (partial sums, μ̃, output coefficients).
    SCRATCH_ROWS = 8


cdef double* _scratch(Py_ssize_t n) except NULL:
    """n doubles of scratch (free() it)."""
    cdef double* p = <double*>malloc((n if n > 0 else 1) * sizeof(double))
    if p == NULL:
        raise MemoryError()
    return p


def _check_rows(name, X, Y, Py_ssize_t n, Py_ssize_t d):
    if Y.shape[0] != n or Y.shape[1] != d:
        raise ValueError(f"{name}: X is {n, d} but the output is {Y.shape[0], Y.shape[1]}")


def _check_vectors(name, Py_ssize_t d, **vectors):
    for key, v in vectors.items():
        if v.shape[0] != d:
            raise ValueError(f"{name}: {key} has {v.shape[0]} entries, expected {d} (one per feature)")


def batchnorm_forward_train(const floating[:, ::1] X,          # IN  (n, d), n >= 2
                            const floating[::1] gamma,         # IN  (d,)
                            const floating[::1] beta,          # IN  (d,)
                            floating[::1] running_mean,        # IN/OUT (d,)
                            floating[::1] running_var,         # IN/OUT (d,)
                            double momentum, double eps,
                            floating[:, ::1] Y,                # OUT (n, d)
                            double[::1] mean,                  # OUT (d,) batch mean μ
                            double[::1] inv_std,               # OUT (d,) 1/√(σ² + ε)
                            int n_threads=1):
    """Y := γ (X − μ)/√(σ² + ε) + β with batch μ, biased σ²;
    running_mean := (1 − m) running_mean + m μ;  running_var := (1 − m) running_var + m σ² n/(n − 1).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], block
    cdef double* scratch
    _check_rows("batchnorm_forward_train", X, Y, n, d)
    _check_vectors("batchnorm_forward_train", d, gamma=gamma, beta=beta, running_mean=running_mean,
                   running_var=running_var, mean=mean, inv_std=inv_std)
    if n < 2:
        raise ValueError(f"batchnorm_forward_train needs at least 2 rows for batch statistics, got {n}")
    scratch = _scratch(SCRATCH_ROWS * d)
    try:
        if n_threads > 1 and d >= 2 * n_threads:
            for block in prange(n_threads, nogil=True, num_threads=n_threads, schedule="static"):
                _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                       mean, inv_std, scratch, block * d // n_threads,
                                       (block + 1) * d // n_threads)
        else:
            with nogil:
                _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                       mean, inv_std, scratch, 0, d)
    finally:
        free(scratch)


cdef void _forward_train_columns(const floating[:, ::1] X, const floating[::1] gamma,
                                 const floating[::1] beta, floating[::1] running_mean,
                                 floating[::1] running_var, double m, double eps,
                                 floating[:, ::1] Y, double[::1] mean, double[::1] inv_std,
                                 double* scratch, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The training forward pass for features [j0, j1); ``scratch`` holds SCRATCH_ROWS·d doubles."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j, r0, r1, blk
    cdef double* acc1 = scratch
    cdef double* acc2 = scratch + d
    cdef floating* part1 = <floating*>(scratch + 2 * d)
    cdef floating* part2 = part1 + d
    cdef floating* center = part1 + 2 * d  # μ̃ = μ rounded to the input dtype
    cdef floating* coef_a = part1 + 3 * d  # Y = a·dev + c
    cdef floating* coef_c = part1 + 4 * d
    cdef floating dev
    cdef double var, a
    for j in range(j0, j1):
        acc1[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(j0, j1):
            part1[j] = 0
        for i in range(r0, r1):
            for j in range(j0, j1):
                part1[j] += X[i, j] - X[0, j]
        for j in range(j0, j1):
            acc1[j] += part1[j]
    for j in range(j0, j1):
        mean[j] = X[0, j] + acc1[j] / n
        center[j] = <floating>mean[j]
        acc1[j] = 0
        acc2[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(j0, j1):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            for j in range(j0, j1):
                dev = X[i, j] - center[j]
                part1[j] += dev
                part2[j] += dev * dev
        for j in range(j0, j1):
            acc1[j] += part1[j]
            acc2[j] += part2[j]
    for j in range(j0, j1):
        mean[j] = center[j] + acc1[j] / n  # refined: dev = x − μ̃ is exact, the first shift was not
        var = (acc2[j] - acc1[j] * acc1[j] / n) / n
        if var < 0:
            var = 0
        inv_std[j] = 1 / sqrt(var + eps)
        running_mean[j] = <floating>((1 - m) * running_mean[j] + m * mean[j])
        running_var[j] = <floating>((1 - m) * running_var[j] + m * var * n / (n - 1))
        a = gamma[j] * inv_std[j]
        coef_a[j] = <floating>a
        coef_c[j] = <floating>(beta[j] - a * (mean[j] - center[j]))  # β − a·δ
    for i in range(n):
        for j in range(j0, j1):
            Y[i, j] = coef_a[j] * (X[i, j] - center[j]) + coef_c[j]


def batchnorm_forward_eval(const floating[:, ::1] X,           # IN  (n, d)
                           const floating[::1] gamma,          # IN  (d,)
                           const floating[::1] beta,           # IN  (d,)
                           const floating[::1] running_mean,   # IN  (d,)
                           const floating[::1] running_var,    # IN  (d,)
                           double eps,
                           floating[:, ::1] Y,                 # OUT (n, d)
                           double[::1] mean,                   # OUT (d,) running_mean, for backward
                           double[::1] inv_std):               # OUT (d,) 1/√(running_var + ε)
    """Y := γ (X − running_mean)/√(running_var + ε) + β."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j
    _check_rows("batchnorm_forward_eval", X, Y, n, d)
    _check_vectors("batchnorm_forward_eval", d, gamma=gamma, beta=beta, running_mean=running_mean,
                   running_var=running_var, mean=mean, inv_std=inv_std)
    with nogil:
        for j in range(d):
            mean[j] = running_mean[j]
            inv_std[j] = 1 / sqrt(<double>running_var[j] + eps)
        for i in range(n):
            for j in range(d):
                Y[i, j] = <floating>(gamma[j] * ((X[i, j] - mean[j]) * inv_std[j]) + beta[j])


def batchnorm_backward(const floating[:, ::1] X,       # IN  (n, d) forward input
                       const double[::1] mean,         # IN  (d,) μ used by the forward pass
                       const double[::1] inv_std,      # IN  (d,) 1/σ used by the forward pass
                       const floating[::1] gamma,      # IN  (d,)
                       const floating[:, ::1] dY,      # IN  (n, d)
                       floating[::1] dgamma,           # OUT (d,)
                       floating[::1] dbeta,            # OUT (d,)
                       floating[:, ::1] dX,            # OUT (n, d) or None
                       bint batch_stats, int n_threads=1):
    """dβ := Σ_rows dY;  dγ := Σ_rows dY x̂;  with x̂ = (X − μ)/σ and
    dX := (γ/(nσ)) (n dY − dβ − x̂ dγ) when μ, σ are batch statistics (training mode),
    dX := (γ/σ) dY when they are constants (running statistics, evaluation mode).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], block
    cdef double* sdy
    _check_rows("batchnorm_backward", X, dY, n, d)
    if dX is not None:
        _check_rows("batchnorm_backward", X, dX, n, d)
    _check_vectors("batchnorm_backward", d, mean=mean, inv_std=inv_std, gamma=gamma,
                   dgamma=dgamma, dbeta=dbeta)
    sdy = _scratch(SCRATCH_ROWS * d)
    try:
        if n_threads > 1 and d >= 2 * n_threads:
            for block in prange(n_threads, nogil=True, num_threads=n_threads, schedule="static"):
                _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, batch_stats, sdy,
                                  block * d // n_threads, (block + 1) * d // n_threads)
        else:
            with nogil:
                _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, batch_stats, sdy,
                                  0, d)
    finally:
        free(sdy)


cdef void _backward_columns(const floating[:, ::1] X, const double[::1] mean,
                            const double[::1] inv_std, const floating[::1] gamma,
                            const floating[:, ::1] dY, floating[::1] dgamma, floating[::1] dbeta,
                            floating[:, ::1] dX, bint batch_stats, double* scratch,
                            Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The backward pass for features [j0, j1); ``scratch`` holds SCRATCH_ROWS·d doubles.

    With x − μ = dev − δ (dev = x − μ̃, see the module docstring): dβ = Σ dY,
    dγ = (Σ dY·dev − δ dβ)/σ, and dX = p·dY + q·dev + r with p = γ/σ, q = −γ dγ/(nσ²),
    r = −(γ/(nσ)) dβ − q δ.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j, r0, r1, blk
    cdef double* sdy = scratch
    cdef double* sdydev = scratch + d
    cdef floating* part1 = <floating*>(scratch + 2 * d)
    cdef floating* part2 = part1 + d
    cdef floating* center = part1 + 2 * d
    cdef floating* coef_p = part1 + 3 * d
    cdef floating* coef_q = part1 + 4 * d
    cdef floating* coef_r = part1 + 5 * d
    cdef double delta, dgam, p, q
    for j in range(j0, j1):
        sdy[j] = 0
        sdydev[j] = 0
        center[j] = <floating>mean[j]
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(j0, j1):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            for j in range(j0, j1):
                part1[j] += dY[i, j]
                part2[j] += dY[i, j] * (X[i, j] - center[j])
        for j in range(j0, j1):
            sdy[j] += part1[j]
            sdydev[j] += part2[j]
    for j in range(j0, j1):
        delta = mean[j] - center[j]
        dgam = (sdydev[j] - delta * sdy[j]) * inv_std[j]
        dbeta[j] = <floating>sdy[j]
        dgamma[j] = <floating>dgam
        p = gamma[j] * inv_std[j]
        if batch_stats:
            q = -p * dgam * inv_std[j] / n
            coef_p[j] = <floating>p
            coef_q[j] = <floating>q
            coef_r[j] = <floating>(-p * sdy[j] / n - q * delta)
        else:
            coef_p[j] = <floating>p
    if dX is None:
        return
    if batch_stats:
        for i in range(n):
            for j in range(j0, j1):
                dX[i, j] = coef_p[j] * dY[i, j] + coef_q[j] * (X[i, j] - center[j]) + coef_r[j]
    else:
        for i in range(n):
            for j in range(j0, j1):
                dX[i, j] = coef_p[j] * dY[i, j]

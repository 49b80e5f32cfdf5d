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
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free

from fastnn_c._arrays cimport (COLUMN_UNIT, aligned_scratch, array_data, column_parts,
                               column_start, dim, float_type, matrix_data, vector_data)

cnp.import_array()


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


# -- loops on checked arrays: X and friends (n, d) row-major, vectors (d,) -------------------
cdef void _forward_train_columns(const floating* X, const floating* gamma, const floating* beta,
                                 floating* running_mean, floating* running_var, double m,
                                 double eps, floating* Y, double* mean, double* inv_std,
                                 double* scratch, Py_ssize_t ws, Py_ssize_t n, Py_ssize_t d,
                                 Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The training forward pass for features [j0, j1); ``scratch``: SCRATCH_ROWS rows of
    ``ws`` >= j1 − j0 doubles."""
    cdef Py_ssize_t i, j, r0, r1, blk, w = j1 - j0
    cdef double* acc1 = scratch
    cdef double* acc2 = scratch + ws
    cdef floating* part1 = <floating*>(scratch + 2 * ws)
    cdef floating* part2 = part1 + ws
    cdef floating* center = part1 + 2 * ws  # μ̃ = μ rounded to the input dtype
    cdef floating* coef_a = part1 + 3 * ws  # Y = a·dev + c
    cdef floating* coef_c = part1 + 4 * ws
    cdef const floating* x
    cdef floating* y
    cdef floating dev
    cdef double var, a
    # The block as a (n, w) matrix of row stride d.
    X += j0
    Y += j0
    gamma += j0
    beta += j0
    running_mean += j0
    running_var += j0
    mean += j0
    inv_std += j0
    for j in range(w):
        acc1[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
        for i in range(r0, r1):
            x = X + i * d
            for j in range(w):
                part1[j] += x[j] - X[j]
        for j in range(w):
            acc1[j] += part1[j]
    for j in range(w):
        mean[j] = X[j] + acc1[j] / n
        center[j] = <floating>mean[j]
        acc1[j] = 0
        acc2[j] = 0
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            x = X + i * d
            for j in range(w):
                dev = x[j] - center[j]
                part1[j] += dev
                part2[j] += dev * dev
        for j in range(w):
            acc1[j] += part1[j]
            acc2[j] += part2[j]
    for j in range(w):
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
        x = X + i * d
        y = Y + i * d
        for j in range(w):
            y[j] = coef_a[j] * (x[j] - center[j]) + coef_c[j]


cdef void _backward_columns(const floating* X, const double* mean, const double* inv_std,
                            const floating* gamma, const floating* dY, floating* dgamma,
                            floating* dbeta, floating* dX, bint batch_stats, double* scratch,
                            Py_ssize_t ws, Py_ssize_t n, Py_ssize_t d, Py_ssize_t j0,
                            Py_ssize_t j1) noexcept nogil:
    """The backward pass for features [j0, j1); ``scratch``: SCRATCH_ROWS rows of ``ws`` >=
    j1 − j0 doubles.

    With x − μ = dev − δ (dev = x − μ̃, see the module docstring): dβ = Σ dY,
    dγ = (Σ dY·dev − δ dβ)/σ, and dX = p·dY + q·dev + r with p = γ/σ, q = −γ dγ/(nσ²),
    r = −(γ/(nσ)) dβ − q δ.
    """
    cdef Py_ssize_t i, j, r0, r1, blk, w = j1 - j0
    cdef double* sdy = scratch
    cdef double* sdydev = scratch + ws
    cdef floating* part1 = <floating*>(scratch + 2 * ws)
    cdef floating* part2 = part1 + ws
    cdef floating* center = part1 + 2 * ws
    cdef floating* coef_p = part1 + 3 * ws
    cdef floating* coef_q = part1 + 4 * ws
    cdef floating* coef_r = part1 + 5 * ws
    cdef const floating* x
    cdef const floating* dy
    cdef floating* dx
    cdef double delta, dgam, p, q
    # The block as a (n, w) matrix of row stride d.
    X += j0
    dY += j0
    mean += j0
    inv_std += j0
    gamma += j0
    dgamma += j0
    dbeta += j0
    if dX != NULL:
        dX += j0
    for j in range(w):
        sdy[j] = 0
        sdydev[j] = 0
        center[j] = <floating>mean[j]
    for blk in range((n + BLOCK_ROWS - 1) // BLOCK_ROWS):
        r0 = blk * BLOCK_ROWS
        r1 = min(r0 + BLOCK_ROWS, n)
        for j in range(w):
            part1[j] = 0
            part2[j] = 0
        for i in range(r0, r1):
            x = X + i * d
            dy = dY + i * d
            for j in range(w):
                part1[j] += dy[j]
                part2[j] += dy[j] * (x[j] - center[j])
        for j in range(w):
            sdy[j] += part1[j]
            sdydev[j] += part2[j]
    for j in range(w):
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
    if dX == NULL:
        return
    if batch_stats:
        for i in range(n):
            x = X + i * d
            dy = dY + i * d
            dx = dX + i * d
            for j in range(w):
                dx[j] = coef_p[j] * dy[j] + coef_q[j] * (x[j] - center[j]) + coef_r[j]
    else:
        for i in range(n):
            dy = dY + i * d
            dx = dX + i * d
            for j in range(w):
                dx[j] = coef_p[j] * dy[j]


# -- implementations on the checked pointers: one block of features per thread ---------------
cdef void _forward_train(floating zero, const void* X_, const void* gamma_, const void* beta_,
                         void* running_mean_, void* running_var_, double momentum, double eps,
                         void* Y_, double* mean, double* inv_std, double* scratch, Py_ssize_t n,
                         Py_ssize_t d, Py_ssize_t parts, int team) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef const floating* gamma = <const floating*>gamma_
    cdef const floating* beta = <const floating*>beta_
    cdef floating* running_mean = <floating*>running_mean_
    cdef floating* running_var = <floating*>running_var_
    cdef floating* Y = <floating*>Y_
    cdef Py_ssize_t block, ws = _width(d, parts)
    if parts > 1:
        for block in prange(parts, num_threads=team, schedule="static"):  # the whole team
            _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                   mean, inv_std, scratch + block * SCRATCH_ROWS * ws, ws, n, d,
                                   column_start(d, parts, block),
                                   column_start(d, parts, block + 1))
    else:
        _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                               mean, inv_std, scratch, ws, n, d, 0, d)


cdef void _forward_eval(floating zero, const void* X_, const void* gamma_, const void* beta_,
                        const void* running_mean_, const void* running_var_, double eps,
                        void* Y_, double* mean, double* inv_std, Py_ssize_t n,
                        Py_ssize_t d) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef const floating* gamma = <const floating*>gamma_
    cdef const floating* beta = <const floating*>beta_
    cdef const floating* running_mean = <const floating*>running_mean_
    cdef const floating* running_var = <const floating*>running_var_
    cdef floating* Y = <floating*>Y_
    cdef Py_ssize_t i, j
    for j in range(d):
        mean[j] = running_mean[j]
        inv_std[j] = 1 / sqrt(<double>running_var[j] + eps)
    for i in range(n):
        for j in range(d):
            Y[i * d + j] = <floating>(gamma[j] * ((X[i * d + j] - mean[j]) * inv_std[j]) + beta[j])


cdef void _backward(floating zero, const void* X_, const double* mean, const double* inv_std,
                    const void* gamma_, const void* dY_, void* dgamma_, void* dbeta_, void* dX_,
                    bint batch_stats, double* scratch, Py_ssize_t n, Py_ssize_t d,
                    Py_ssize_t parts, int team) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef const floating* gamma = <const floating*>gamma_
    cdef const floating* dY = <const floating*>dY_
    cdef floating* dgamma = <floating*>dgamma_
    cdef floating* dbeta = <floating*>dbeta_
    cdef floating* dX = <floating*>dX_
    cdef Py_ssize_t block, ws = _width(d, parts)
    if parts > 1:
        for block in prange(parts, num_threads=team, schedule="static"):  # the whole team
            _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, batch_stats,
                              scratch + block * SCRATCH_ROWS * ws, ws, n, d,
                              column_start(d, parts, block), column_start(d, parts, block + 1))
    else:
        _backward_columns(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, batch_stats, scratch,
                          ws, n, d, 0, d)


# -- checked entry points --------------------------------------------------------------------
def batchnorm_forward_train(X, gamma, beta, running_mean, running_var, double momentum,
                            double eps, Y, mean, inv_std, int n_threads=1):
    """Y := γ (X − μ)/√(σ² + ε) + β with batch μ, biased σ²;
    running_mean := (1 − m) running_mean + m μ;  running_var := (1 − m) running_var + m σ² n/(n − 1).

    ``X`` (n, d), n >= 2; ``gamma``, ``beta`` (d,); ``running_mean``, ``running_var`` (d,)
    updated in place; ``Y`` (n, d) out; ``mean`` (d,) float64 out, the batch μ; ``inv_std``
    (d,) float64 out, 1/√(σ² + ε).
    """
    cdef str kernel = "batchnorm_forward_train"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef Py_ssize_t n = dim(X, 0), d = dim(X, 1)
    cdef void* g = vector_data(gamma, kernel, "gamma", t, d)
    cdef void* b = vector_data(beta, kernel, "beta", t, d)
    cdef void* rm = vector_data(running_mean, kernel, "running_mean", t, d, writable=True)
    cdef void* rv = vector_data(running_var, kernel, "running_var", t, d, writable=True)
    cdef void* y = matrix_data(Y, kernel, "Y", t, n, d, writable=True)
    cdef double* mu = <double*>vector_data(mean, kernel, "mean", cnp.NPY_DOUBLE, d,
                                           writable=True)
    cdef double* inv = <double*>vector_data(inv_std, kernel, "inv_std", cnp.NPY_DOUBLE, d,
                                            writable=True)
    cdef Py_ssize_t parts = column_parts(d, n_threads)
    cdef double* scratch
    if n < 2:
        raise ValueError(f"{kernel}: X has {n} rows, expected at least 2 rows (batch statistics)")
    scratch = _scratch(d, parts)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward_train(<float>0, x, g, b, rm, rv, momentum, eps, y, mu, inv, scratch, n, d,
                           parts, n_threads)
        else:
            _forward_train(<double>0, x, g, b, rm, rv, momentum, eps, y, mu, inv, scratch, n, d,
                           parts, n_threads)
    free(scratch)


def batchnorm_forward_eval(X, gamma, beta, running_mean, running_var, double eps, Y, mean,
                           inv_std):
    """Y := γ (X − running_mean)/√(running_var + ε) + β.

    ``X`` (n, d); ``gamma``, ``beta``, ``running_mean``, ``running_var`` (d,); ``Y`` (n, d)
    out; ``mean`` (d,) float64 out, running_mean for backward; ``inv_std`` (d,) float64 out,
    1/√(running_var + ε).
    """
    cdef str kernel = "batchnorm_forward_eval"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef Py_ssize_t n = dim(X, 0), d = dim(X, 1)
    cdef void* g = vector_data(gamma, kernel, "gamma", t, d)
    cdef void* b = vector_data(beta, kernel, "beta", t, d)
    cdef void* rm = vector_data(running_mean, kernel, "running_mean", t, d)
    cdef void* rv = vector_data(running_var, kernel, "running_var", t, d)
    cdef void* y = matrix_data(Y, kernel, "Y", t, n, d, writable=True)
    cdef double* mu = <double*>vector_data(mean, kernel, "mean", cnp.NPY_DOUBLE, d,
                                           writable=True)
    cdef double* inv = <double*>vector_data(inv_std, kernel, "inv_std", cnp.NPY_DOUBLE, d,
                                            writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward_eval(<float>0, x, g, b, rm, rv, eps, y, mu, inv, n, d)
        else:
            _forward_eval(<double>0, x, g, b, rm, rv, eps, y, mu, inv, n, d)


def batchnorm_backward(X, mean, inv_std, gamma, dY, dgamma, dbeta, dX, bint batch_stats,
                       int n_threads=1):
    """dβ := Σ_rows dY;  dγ := Σ_rows dY x̂;  with x̂ = (X − μ)/σ and
    dX := (γ/(nσ)) (n dY − dβ − x̂ dγ) when μ, σ are batch statistics (training mode),
    dX := (γ/σ) dY when they are constants (running statistics, evaluation mode).

    ``X`` (n, d), the forward input; ``mean``, ``inv_std`` (d,) float64, μ and 1/σ of the
    forward pass; ``gamma`` (d,); ``dY`` (n, d); ``dgamma``, ``dbeta`` (d,) out; ``dX`` (n, d)
    out, or None to skip it.
    """
    cdef str kernel = "batchnorm_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef Py_ssize_t n = dim(X, 0), d = dim(X, 1)
    cdef const double* mu = <const double*>vector_data(mean, kernel, "mean", cnp.NPY_DOUBLE,
                                                       d)
    cdef const double* inv = <const double*>vector_data(inv_std, kernel, "inv_std",
                                                        cnp.NPY_DOUBLE, d)
    cdef void* g = vector_data(gamma, kernel, "gamma", t, d)
    cdef void* dy = matrix_data(dY, kernel, "dY", t, n, d)
    cdef void* dg = vector_data(dgamma, kernel, "dgamma", t, d, writable=True)
    cdef void* db = vector_data(dbeta, kernel, "dbeta", t, d, writable=True)
    cdef void* dx = NULL if dX is None else matrix_data(dX, kernel, "dX", t, n, d,
                                                        writable=True)
    cdef Py_ssize_t parts = column_parts(d, n_threads)
    cdef double* scratch = _scratch(d, parts)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _backward(<float>0, x, mu, inv, g, dy, dg, db, dx, batch_stats, scratch, n, d, parts,
                      n_threads)
        else:
            _backward(<double>0, x, mu, inv, g, dy, dg, db, dx, batch_stats, scratch, n, d, parts,
                      n_threads)
    free(scratch)

"""Batch-normalization kernels over the batch axis of (batch, features) input.

Design: every pass walks X row by row with the feature loop innermost (contiguous,
row-major reads) and keeps one accumulator per feature in a small double scratch row;
per-feature statistics (μ, 1/σ) and the per-element arithmetic are in double, so float32
input is summed in double and its mean is not rounded to float32 (at μ = 1e4 that rounding
alone would shift x̂ by up to 5% of σ = 1e-2). Statistics are two-pass: μ = Σx/n first, then the
"corrected two-pass" variance σ² = (Σd² − (Σd)²/n)/n with d = x − μ (Chan, Golub &
LeVeque 1983), which has no catastrophic cancellation when |μ| ≫ σ (a one-pass Σx² − nμ²
loses every digit at μ = 1e4, σ = 1e-2 in float32). The training forward pass updates
the running statistics in the same call and caches only μ and 1/√(σ² + ε) per feature;
backward recomputes x̂ = (x − μ)/√(σ² + ε) on the fly: one pass accumulates dβ = Σ dY and
dγ = Σ dY x̂, a second writes dX from the compact closed form. No (batch, features)
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


cdef double* _scratch(Py_ssize_t n) except NULL:
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
    cdef double* s1
    cdef double* s2
    _check_rows("batchnorm_forward_train", X, Y, n, d)
    _check_vectors("batchnorm_forward_train", d, gamma=gamma, beta=beta, running_mean=running_mean,
                   running_var=running_var, mean=mean, inv_std=inv_std)
    if n < 2:
        raise ValueError(f"batchnorm_forward_train needs at least 2 rows for batch statistics, got {n}")
    s1 = _scratch(2 * d)
    s2 = s1 + d
    try:
        if n_threads > 1 and d >= 2 * n_threads:
            for block in prange(n_threads, nogil=True, num_threads=n_threads, schedule="static"):
                _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                       mean, inv_std, s1, s2, block * d // n_threads,
                                       (block + 1) * d // n_threads)
        else:
            with nogil:
                _forward_train_columns(X, gamma, beta, running_mean, running_var, momentum, eps, Y,
                                       mean, inv_std, s1, s2, 0, d)
    finally:
        free(s1)


cdef void _forward_train_columns(const floating[:, ::1] X, const floating[::1] gamma,
                                 const floating[::1] beta, floating[::1] running_mean,
                                 floating[::1] running_var, double m, double eps,
                                 floating[:, ::1] Y, double[::1] mean, double[::1] inv_std,
                                 double* s1, double* s2, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The training forward pass for features [j0, j1) (the scratch rows s1, s2 have d entries)."""
    cdef Py_ssize_t n = X.shape[0], i, j
    cdef double dev, var
    for j in range(j0, j1):
        s1[j] = 0
    for i in range(n):
        for j in range(j0, j1):
            s1[j] += X[i, j]
    for j in range(j0, j1):
        mean[j] = s1[j] / n
        s1[j] = 0
        s2[j] = 0
    for i in range(n):
        for j in range(j0, j1):
            dev = X[i, j] - mean[j]
            s1[j] += dev
            s2[j] += dev * dev
    for j in range(j0, j1):
        var = (s2[j] - s1[j] * s1[j] / n) / n
        if var < 0:
            var = 0
        inv_std[j] = 1 / sqrt(var + eps)
        running_mean[j] = <floating>((1 - m) * running_mean[j] + m * mean[j])
        running_var[j] = <floating>((1 - m) * running_var[j] + m * var * n / (n - 1))
    for i in range(n):
        for j in range(j0, j1):
            Y[i, j] = <floating>(gamma[j] * ((X[i, j] - mean[j]) * inv_std[j]) + beta[j])


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
    sdy = _scratch(3 * d)
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
    """The backward pass for features [j0, j1); ``scratch`` holds 3 rows of d doubles."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j
    cdef double* sdy = scratch
    cdef double* sdyx = scratch + d
    cdef double* coef = scratch + 2 * d
    cdef double xhat
    for j in range(j0, j1):
        sdy[j] = 0
        sdyx[j] = 0
    for i in range(n):
        for j in range(j0, j1):
            xhat = (X[i, j] - mean[j]) * inv_std[j]
            sdy[j] += dY[i, j]
            sdyx[j] += dY[i, j] * xhat
    for j in range(j0, j1):
        dbeta[j] = <floating>sdy[j]
        dgamma[j] = <floating>sdyx[j]
    if dX is None:
        return
    if batch_stats:
        for j in range(j0, j1):
            coef[j] = gamma[j] * inv_std[j] / n
        for i in range(n):
            for j in range(j0, j1):
                xhat = (X[i, j] - mean[j]) * inv_std[j]
                dX[i, j] = <floating>(coef[j] * (n * <double>dY[i, j] - sdy[j] - xhat * sdyx[j]))
    else:
        for j in range(j0, j1):
            coef[j] = gamma[j] * inv_std[j]
        for i in range(n):
            for j in range(j0, j1):
                dX[i, j] = <floating>(coef[j] * dY[i, j])

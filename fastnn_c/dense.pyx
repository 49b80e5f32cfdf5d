"""Dense (fully-connected) layer kernels for training: Y = X W + b and its gradients.

Design: each kernel's products run on one of two backends. ``blas=False`` (the default):
fastnn's micro-kernel (``_packed_gemm.h``), W read where it is, its panels of columns and
then its rows split over ``threads`` OpenMP threads, which also run the elementwise passes
between the products. ``blas=True``: the BLAS's GEMM (row-major, no copies) on its own
threads, the elementwise passes on the calling thread (two busy pools starve each other;
fastnn._config picks the backend). On the BLAS the bias is written into Y first so that
GEMM accumulates onto it (beta = 1). The dense+activation kernels fuse a following
activation: bias and f run on each block of output rows right after its product, while it
is in cache, and backward forms dA ⊙ f' and its column sum db in one pass. If the
micro-kernel's scratch cannot be allocated, the product falls back to the BLAS.

Convention (fastnn_c/_kernel.pyx): fused kernels on typed memoryviews, published as
``Kernel`` objects that check NumPy arguments; the loops below index the memoryviews, and
the micro-kernel and the BLAS are handed ``&X[0, 0]``. Shapes: X (n, in), W (in, out),
b (out,), Y (n, out).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_backward_run, activation_forward_run
from fastnn_c._arrays cimport aligned_scratch, check_matrix, check_vector, column_parts, column_start
from fastnn_c._blas cimport gemm
from fastnn_c._kernel import Kernel
from fastnn_c._micro cimport (FNN_MR, FNN_NR_DOUBLE, FNN_NR_FLOAT, activate_rows,
                              fnn_rowmajor_gemm_columns_double, fnn_rowmajor_gemm_columns_float,
                              fnn_rowmajor_scratch_double, fnn_rowmajor_scratch_float)


cdef enum:
    # Fewest multiply-adds worth a thread of the micro-kernel's products: about 1 µs of work
    # on one core, the cost of a parallel region on a 2-core VM (benchmarks/README.md).
    MIN_THREAD_WORK = 131072
    # Fewest values of a training kernel's elementwise pass (activation gradient, bias
    # update) worth the threads of its products, whose pool is awake then (as
    # fastnn._config.SPINNING_MIN_ELEMENTS); the pass splits columns (column_parts).
    MIN_SPLIT_VALUES = 32768


# -- the micro-kernel's products ---------------------------------------------------------------
cdef void _product_part(const floating* X, Py_ssize_t xr, Py_ssize_t xk, const floating* W,
                        const floating* bias, floating alpha, floating beta, floating* Y,
                        Py_ssize_t m, Py_ssize_t K, Py_ssize_t N, floating* tail, floating* part,
                        Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    if floating is float:
        fnn_rowmajor_gemm_columns_float(m, K, N, X, xr, xk, W, bias, alpha, beta, Y, tail, part,
                                        begin, end)
    else:
        fnn_rowmajor_gemm_columns_double(m, K, N, X, xr, xk, W, bias, alpha, beta, Y, tail,
                                         part, begin, end)


cdef int _micro_product(const floating* X, Py_ssize_t xr, Py_ssize_t xk, const floating* W,
                        const floating* bias, floating alpha, floating beta, floating* Y,
                        Py_ssize_t m, Py_ssize_t K, Py_ssize_t N, int n_threads, int kind,
                        floating act_alpha) noexcept nogil:
    """Y (m x N) := f(alpha X W + beta Y (+ bias)) on the micro-kernel, f the activation
    ``kind`` (IDENTITY: none), W (K x N) read in place, X[i, k] at X[i * xr + k * xk]; up to
    ``n_threads`` threads (each at least MIN_THREAD_WORK multiply-adds) split the panels of
    columns, then, when there are more threads than panels, the rows (at least FNN_MR each),
    each applying f to its part while it is in cache. -1, with nothing written, if its
    scratch cannot be allocated."""
    cdef Py_ssize_t nr = FNN_NR_FLOAT if floating is float else FNN_NR_DOUBLE
    cdef Py_ssize_t part, c, r, r0, j0, j1, panels = (N + nr - 1) // nr
    cdef Py_ssize_t threads = min(<Py_ssize_t>n_threads, max(1, m * K * N // MIN_THREAD_WORK))
    cdef Py_ssize_t col_parts = min(threads, panels)
    cdef Py_ssize_t row_parts = max(1, min(threads // col_parts, m // FNN_MR))
    cdef Py_ssize_t parts = col_parts * row_parts
    # A part that ends at a partial last panel packs it (one scratch panel per row part);
    # long products keep partial sums (scratch per part). Both sizes are whole panels, so
    # on aligned scratch no two parts write one cache line.
    cdef Py_ssize_t tail_size = K * nr if N % nr else 0
    cdef Py_ssize_t part_size = (fnn_rowmajor_scratch_float(K, N) if floating is float
                                 else fnn_rowmajor_scratch_double(K, N))
    cdef floating* scratch = NULL
    if tail_size or part_size:
        scratch = <floating*>aligned_scratch((row_parts * tail_size + parts * part_size)
                                             * sizeof(floating))
        if scratch == NULL:
            return -1
    if parts == 1:
        _product_part(X, xr, xk, W, bias, alpha, beta, Y, m, K, N, scratch, scratch + tail_size,
                      0, N)
        activate_rows(Y, N, m, N, kind, act_alpha)
    else:
        for part in prange(parts, num_threads=n_threads, schedule="static"):  # the whole team
            c = part % col_parts
            r = part // col_parts
            r0 = r * m // row_parts
            j0 = c * panels // col_parts * nr
            j1 = min((c + 1) * panels // col_parts * nr, N)
            _product_part(X + r0 * xr, xr, xk, W, bias, alpha, beta, Y + r0 * N,
                          (r + 1) * m // row_parts - r0, K, N,
                          scratch + r * tail_size if scratch != NULL else NULL,
                          scratch + row_parts * tail_size + part * part_size
                          if scratch != NULL else NULL, j0, j1)
            activate_rows(Y + r0 * N + j0, N, (r + 1) * m // row_parts - r0, j1 - j0, kind,
                          act_alpha)
    free(scratch)
    return 0


cdef int _micro_dx(const floating[:, ::1] dY, const floating[:, ::1] W, floating[:, ::1] dX,
                   int threads) noexcept nogil:
    """dX := dY Wᵀ on the micro-kernel, through a transposed copy of W (-1 if out of memory)."""
    cdef Py_ssize_t n = dY.shape[0], n_in = W.shape[0], n_out = W.shape[1]
    cdef floating* Wt = <floating*>malloc(n_in * n_out * sizeof(floating) + 1)
    cdef Py_ssize_t i, j, i0, j0
    cdef int status
    if Wt == NULL:
        return -1
    for i0 in range(0, n_in, 16):  # in 16 x 16 blocks, so that reads and writes stay in cache
        for j0 in range(0, n_out, 16):
            for i in range(i0, min(i0 + 16, n_in)):
                for j in range(j0, min(j0 + 16, n_out)):
                    Wt[j * n_in + i] = W[i, j]
    status = _micro_product(&dY[0, 0], n_out, 1, Wt, NULL, 1, 0, &dX[0, 0], n, n_out, n_in,
                            threads, IDENTITY, 0)
    free(Wt)
    return status


# -- the loops around the products -------------------------------------------------------------
cdef Py_ssize_t _pass_parts(Py_ssize_t n, Py_ssize_t n_out, int threads) noexcept nogil:
    """Blocks of columns for an elementwise pass over n x n_out values between products."""
    return 1 if n * n_out < MIN_SPLIT_VALUES else column_parts(n_out, threads)


cdef void _gradient_columns(const floating[:, ::1] A, const floating[:, ::1] dA,
                            floating[:, ::1] dZ, floating[::1] db, bint with_db, int kind,
                            floating alpha, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j
    if with_db:
        for j in range(j0, j1):
            db[j] = 0
    for i in range(A.shape[0]):
        activation_backward_run(kind, &A[i, j0], &dA[i, j0], &dZ[i, j0], j1 - j0, alpha)
        if with_db:
            for j in range(j0, j1):
                db[j] += dZ[i, j]


cdef void _activation_gradient(const floating[:, ::1] A, const floating[:, ::1] dA,
                               floating[:, ::1] dZ, floating[::1] db, bint with_db, int kind,
                               floating alpha, int threads) noexcept nogil:
    """dZ := dA ⊙ f'(Z) row by row, and db := Σ_rows dZ while each row is in L1; blocks of
    columns over up to ``threads`` threads (the same bits as one)."""
    cdef Py_ssize_t part, n_out = A.shape[1], parts = _pass_parts(A.shape[0], n_out, threads)
    if parts == 1:
        _gradient_columns(A, dA, dZ, db, with_db, kind, alpha, 0, n_out)
        return
    for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
        _gradient_columns(A, dA, dZ, db, with_db, kind, alpha, column_start(n_out, parts, part),
                          column_start(n_out, parts, part + 1))


cdef void _column_sums(const floating[:, ::1] dY, floating[::1] db) noexcept nogil:
    """db := Σ_rows dY."""
    cdef Py_ssize_t i, j
    for j in range(dY.shape[1]):
        db[j] = 0
    for i in range(dY.shape[0]):
        for j in range(dY.shape[1]):
            db[j] += dY[i, j]


cdef void _bias_step_columns(floating[::1] b, const floating[:, ::1] dY, floating lr,
                             Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(dY.shape[0]):
        for j in range(j0, j1):
            b[j] -= lr * dY[i, j]


cdef void _bias_step(floating[::1] b, const floating[:, ::1] dY, floating lr,
                     int threads) noexcept nogil:
    """b −= lr dY[i] for each row i in turn; blocks of columns over up to ``threads`` threads."""
    cdef Py_ssize_t part, n_out = dY.shape[1], parts = _pass_parts(dY.shape[0], n_out, threads)
    if parts == 1:
        _bias_step_columns(b, dY, lr, 0, n_out)
        return
    for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
        _bias_step_columns(b, dY, lr, column_start(n_out, parts, part),
                           column_start(n_out, parts, part + 1))


cdef void _weight_gradient(const floating[:, ::1] X, const floating[:, ::1] dY,
                           floating[:, ::1] dW, floating alpha, floating beta, int threads,
                           bint blas) noexcept nogil:
    """dW := alpha Xᵀ dY + beta dW (X read as its transpose: rows 1 apart, k n_in apart)."""
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = dY.shape[1]
    if blas or _micro_product(&X[0, 0], 1, n_in, &dY[0, 0], NULL, alpha, beta, &dW[0, 0],
                              n_in, n, n_out, threads, IDENTITY, 0) != 0:
        gemm(True, False, n_in, n_out, n, alpha, &X[0, 0], n_in, &dY[0, 0], n_out, beta,
             &dW[0, 0], n_out)


cdef void _input_gradient(const floating[:, ::1] dY, const floating[:, ::1] W,
                          floating[:, ::1] dX, int threads, bint blas) noexcept nogil:
    """dX := dY Wᵀ."""
    cdef Py_ssize_t n = dY.shape[0], n_in = W.shape[0], n_out = W.shape[1]
    if blas or _micro_dx(dY, W, dX, threads) != 0:
        gemm(False, True, n, n_in, n_out, <floating>1.0, &dY[0, 0], n_out, &W[0, 0], n_out,
             <floating>0.0, &dX[0, 0], n_in)


cdef void _fill(floating[:, ::1] Y) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = 0


cdef void _layer_forward(const floating[:, ::1] X, const floating[:, ::1] W,
                         const floating[::1] b, bint with_b, floating[:, ::1] A, int kind,
                         floating alpha, int threads, bint blas) noexcept nogil:
    """A := f(X W + b) (f = IDENTITY: Y := X W + b)."""
    cdef Py_ssize_t i, j, n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if n == 0 or n_out == 0:
        return
    if n_in == 0:  # no product: A := f(0 + b)
        _fill(A)
        if with_b:
            for i in range(n):
                for j in range(n_out):
                    A[i, j] = b[j] if kind == IDENTITY else A[i, j] + b[j]
        for i in range(n):
            activation_forward_run(kind, &A[i, 0], &A[i, 0], n_out, alpha)
        return
    if not blas and _micro_product(&X[0, 0], n_in, 1, &W[0, 0], &b[0] if with_b else NULL, 1,
                                   0, &A[0, 0], n, n_in, n_out, threads, kind, alpha) == 0:
        return
    if kind == IDENTITY and with_b:  # GEMM accumulates onto the bias (beta = 1)
        for i in range(n):
            for j in range(n_out):
                A[i, j] = b[j]
        gemm(False, False, n, n_out, n_in, <floating>1.0, &X[0, 0], n_in, &W[0, 0], n_out,
             <floating>1.0, &A[0, 0], n_out)
        return
    gemm(False, False, n, n_out, n_in, <floating>1.0, &X[0, 0], n_in, &W[0, 0], n_out,
         <floating>0.0, &A[0, 0], n_out)
    for i in range(n):
        if with_b:
            for j in range(n_out):
                A[i, j] += b[j]
        activation_forward_run(kind, &A[i, 0], &A[i, 0], n_out, alpha)


cdef void _layer_backward(const floating[:, ::1] X, const floating[:, ::1] W,
                          const floating[:, ::1] dY, floating[:, ::1] dW, floating[:, ::1] dX,
                          bint with_dx, int threads, bint blas) noexcept nogil:
    """dW := Xᵀ dY and dX := dY Wᵀ (dX when asked); zeros where a dimension is empty."""
    if X.shape[0] == 0 or X.shape[1] == 0 or W.shape[1] == 0:
        _fill(dW)
        if with_dx:
            _fill(dX)
        return
    _weight_gradient(X, dY, dW, 1, 0, threads, blas)
    if with_dx:
        _input_gradient(dY, W, dX, threads, blas)


cdef void _layer_sgd_backward(const floating[:, ::1] X, floating[:, ::1] W,
                              const floating[:, ::1] dY, floating[::1] b, bint with_b,
                              floating[:, ::1] dX, bint with_dx, floating lr, int threads,
                              bint blas) noexcept nogil:
    """dX := dY Wᵀ (W before the step), W −= lr Xᵀ dY, b −= lr Σ_rows dY."""
    if with_dx:
        _input_gradient(dY, W, dX, threads, blas)
    _weight_gradient(X, dY, W, -lr, 1, threads, blas)
    if with_b:
        _bias_step(b, dY, lr, 0 if blas else threads)


# -- kernels -----------------------------------------------------------------------------------
cdef int _check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    return 0


cdef int _check_layer(str kernel, const floating[:, ::1] X, const floating[:, ::1] W,
                      int threads) except -1:
    """W must be (in, out) for X (n, in), with dimensions that fit the BLAS's int."""
    check_matrix(kernel, "W", W.shape[0], W.shape[1], X.shape[1], W.shape[1])
    if X.shape[0] > INT_MAX or X.shape[1] > INT_MAX or W.shape[1] > INT_MAX:
        raise ValueError(f"{kernel}: X {(X.shape[0], X.shape[1])} and W "
                         f"{(W.shape[0], W.shape[1])} must have at most {INT_MAX} entries "
                         f"along each axis (the BLAS's int)")
    if threads < 1:
        raise ValueError(f"{kernel}: threads must be >= 1, got {threads}")
    return 0


def _dense_forward(const floating[:, ::1] X,  # IN (n, in)
                   const floating[:, ::1] W,  # IN (in, out)
                   const floating[::1] b,     # IN (out,), or None
                   floating[:, ::1] Y,        # OUT (n, out)
                   int threads=1, bint blas=False):
    """Y := X W + b."""
    cdef str kernel = "dense_forward"
    _check_layer(kernel, X, W, threads)
    cdef bint with_b = b is not None
    if with_b:
        check_vector(kernel, "b", b.shape[0], W.shape[1])
    check_matrix(kernel, "Y", Y.shape[0], Y.shape[1], X.shape[0], W.shape[1])
    with nogil:
        _layer_forward(X, W, b, with_b, Y, IDENTITY, 0, threads, blas)


def _dense_activation_forward(const floating[:, ::1] X,  # IN (n, in)
                              const floating[:, ::1] W,  # IN (in, out)
                              const floating[::1] b,     # IN (out,), or None
                              floating[:, ::1] A,        # OUT (n, out)
                              int kind, double alpha=0.0, int threads=1, bint blas=False):
    """A := f(X W + b): each block of rows gets its bias and f right after its product."""
    cdef str kernel = "dense_activation_forward"
    _check_layer(kernel, X, W, threads)
    _check_kind(kind, kernel)
    cdef bint with_b = b is not None
    if with_b:
        check_vector(kernel, "b", b.shape[0], W.shape[1])
    check_matrix(kernel, "A", A.shape[0], A.shape[1], X.shape[0], W.shape[1])
    with nogil:
        _layer_forward(X, W, b, with_b, A, kind, <floating>alpha, threads, blas)


cdef int _check_gradients(str kernel, const floating[:, ::1] X, const floating[:, ::1] W,
                          str dy_name, const floating[:, ::1] dY, floating[:, ::1] dX) except -1:
    check_matrix(kernel, dy_name, dY.shape[0], dY.shape[1], X.shape[0], W.shape[1])
    if dX is not None:
        check_matrix(kernel, "dX", dX.shape[0], dX.shape[1], X.shape[0], X.shape[1])
    return 0


def _dense_backward(const floating[:, ::1] X,   # IN (n, in)
                    const floating[:, ::1] W,   # IN (in, out)
                    const floating[:, ::1] dY,  # IN (n, out)
                    floating[:, ::1] dW,        # OUT (in, out)
                    floating[::1] db,           # OUT (out,), or None
                    floating[:, ::1] dX,        # OUT (n, in), or None (skipped)
                    int threads=1, bint blas=False):
    """dW := Xᵀ dY;  db := Σ_rows dY;  dX := dY Wᵀ."""
    cdef str kernel = "dense_backward"
    _check_layer(kernel, X, W, threads)
    _check_gradients(kernel, X, W, "dY", dY, dX)
    check_matrix(kernel, "dW", dW.shape[0], dW.shape[1], W.shape[0], W.shape[1])
    cdef bint with_db = db is not None, with_dx = dX is not None
    if with_db:
        check_vector(kernel, "db", db.shape[0], W.shape[1])
    with nogil:
        if with_db:
            _column_sums(dY, db)
        _layer_backward(X, W, dY, dW, dX, with_dx, threads, blas)


def _dense_activation_backward(const floating[:, ::1] X,   # IN (n, in)
                               const floating[:, ::1] W,   # IN (in, out)
                               const floating[:, ::1] A,   # IN (n, out): f(X W + b)
                               const floating[:, ::1] dA,  # IN (n, out)
                               floating[:, ::1] dZ,        # OUT (n, out), scratch
                               floating[:, ::1] dW,        # OUT (in, out)
                               floating[::1] db,           # OUT (out,), or None
                               floating[:, ::1] dX,        # OUT (n, in), or None
                               int kind, double alpha=0.0, int threads=1, bint blas=False):
    """dZ := dA ⊙ f'(Z) and db := Σ_rows dZ in one pass; then dW := Xᵀ dZ, dX := dZ Wᵀ."""
    cdef str kernel = "dense_activation_backward"
    _check_layer(kernel, X, W, threads)
    _check_kind(kind, kernel)
    check_matrix(kernel, "A", A.shape[0], A.shape[1], X.shape[0], W.shape[1])
    _check_gradients(kernel, X, W, "dA", dA, dX)
    check_matrix(kernel, "dZ", dZ.shape[0], dZ.shape[1], X.shape[0], W.shape[1])
    check_matrix(kernel, "dW", dW.shape[0], dW.shape[1], W.shape[0], W.shape[1])
    cdef bint with_db = db is not None, with_dx = dX is not None
    if with_db:
        check_vector(kernel, "db", db.shape[0], W.shape[1])
    with nogil:
        _activation_gradient(A, dA, dZ, db, with_db, kind, <floating>alpha,
                             0 if blas else threads)
        _layer_backward(X, W, dZ, dW, dX, with_dx, threads, blas)


def _dense_sgd_backward(const floating[:, ::1] X,   # IN (n, in)
                        floating[:, ::1] W,         # IN/OUT (in, out), stepped
                        const floating[:, ::1] dY,  # IN (n, out)
                        floating[::1] b,            # IN/OUT (out,), stepped, or None
                        floating[:, ::1] dX,        # OUT (n, in), or None
                        double lr, int threads=1, bint blas=False):
    """Backward fused with a plain SGD step: dX := dY Wᵀ (old W), W −= lr Xᵀ dY,
    b −= lr Σ_rows dY. The weight update is the dW product itself (alpha = −lr, beta = 1),
    so the gradient is never stored and no separate update pass runs."""
    cdef str kernel = "dense_sgd_backward"
    _check_layer(kernel, X, W, threads)
    _check_gradients(kernel, X, W, "dY", dY, dX)
    cdef bint with_b = b is not None, with_dx = dX is not None
    if with_b:
        check_vector(kernel, "b", b.shape[0], W.shape[1])
    if X.shape[0] == 0 or X.shape[1] == 0 or W.shape[1] == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    with nogil:
        _layer_sgd_backward(X, W, dY, b, with_b, dX, with_dx, <floating>lr, threads, blas)


def _dense_activation_sgd_backward(const floating[:, ::1] X,   # IN (n, in)
                                   floating[:, ::1] W,         # IN/OUT (in, out), stepped
                                   const floating[:, ::1] A,   # IN (n, out): f(X W + b)
                                   const floating[:, ::1] dA,  # IN (n, out)
                                   floating[:, ::1] dZ,        # OUT (n, out), scratch
                                   floating[::1] b,            # IN/OUT (out,), or None
                                   floating[:, ::1] dX,        # OUT (n, in), or None
                                   int kind, double alpha, double lr, int threads=1,
                                   bint blas=False):
    """dZ := dA ⊙ f'(Z) (one pass), then ``dense_sgd_backward`` with dZ."""
    cdef str kernel = "dense_activation_sgd_backward"
    _check_layer(kernel, X, W, threads)
    _check_kind(kind, kernel)
    check_matrix(kernel, "A", A.shape[0], A.shape[1], X.shape[0], W.shape[1])
    _check_gradients(kernel, X, W, "dA", dA, dX)
    check_matrix(kernel, "dZ", dZ.shape[0], dZ.shape[1], X.shape[0], W.shape[1])
    cdef bint with_b = b is not None, with_dx = dX is not None
    if with_b:
        check_vector(kernel, "b", b.shape[0], W.shape[1])
    if X.shape[0] == 0 or X.shape[1] == 0 or W.shape[1] == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    with nogil:
        _activation_gradient(A, dA, dZ, dZ[0], False, kind, <floating>alpha,
                             0 if blas else threads)
        _layer_sgd_backward(X, W, dZ, b, with_b, dX, with_dx, <floating>lr, threads, blas)


dense_forward = Kernel(_dense_forward, "dense_forward", "X:2", "W:2", "b:1?", "Y:2!")
dense_activation_forward = Kernel(_dense_activation_forward, "dense_activation_forward",
                                  "X:2", "W:2", "b:1?", "A:2!")
dense_backward = Kernel(_dense_backward, "dense_backward", "X:2", "W:2", "dY:2", "dW:2!",
                        "db:1?!", "dX:2?!")
dense_activation_backward = Kernel(_dense_activation_backward, "dense_activation_backward",
                                   "X:2", "W:2", "A:2", "dA:2", "dZ:2!", "dW:2!", "db:1?!",
                                   "dX:2?!")
dense_sgd_backward = Kernel(_dense_sgd_backward, "dense_sgd_backward", "X:2", "W:2!", "dY:2",
                            "b:1?!", "dX:2?!")
dense_activation_sgd_backward = Kernel(_dense_activation_sgd_backward,
                                       "dense_activation_sgd_backward", "X:2", "W:2!", "A:2",
                                       "dA:2", "dZ:2!", "b:1?!", "dX:2?!")

"""Dense (fully-connected) layer kernels: Y = X W + b and its gradients.

Design: the matrix products go to CBLAS GEMM (row-major, no copies); the bias is written
into Y first so that GEMM accumulates onto it (beta = 1), which makes the bias add free;
db is a column sum done in one pass over dY. The dense+activation kernels fuse a following
activation: bias and f run on each output row right after GEMM while the row is in L1,
and backward forms dA ⊙ f' and its column sum in one pass.
Shapes: X (n, in), W (in, out), b (out,), Y (n, out).

Small batches: below a few dozen rows a GEMM call re-packs all of W every time and its
threads cost more than they bring, so ``dense_pack`` packs W once into column panels
(``_packed_gemm.h``) and ``dense_packed_forward`` runs the product from them on one
thread. ``DenseStack`` runs a whole evaluation-mode network (Dense layers with their
activations, batch norm folded in) and its head (logits, argmax or softmax) in one call.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport isnan
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_backward_run, activation_forward_run
from fastnn_c._arrays cimport (COLUMN_UNIT, aligned_scratch, array_data, blas_sized, check_shape,
                               column_parts, column_start, dim, float_type, matrix_data,
                               vector_data)
from fastnn_c._blas cimport gemm
from fastnn_c._math cimport fexp

cdef extern from "_packed_gemm.h" nogil:
    const int FNN_MR
    const int FNN_NR_FLOAT
    const int FNN_NR_DOUBLE
    size_t fnn_packed_size_float(size_t K, size_t N)
    size_t fnn_packed_size_double(size_t K, size_t N)
    void fnn_pack_float(const float* W, ptrdiff_t K, ptrdiff_t N, float* packed)
    void fnn_pack_double(const double* W, ptrdiff_t K, ptrdiff_t N, double* packed)
    void fnn_packed_gemm_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                               const float* packed, const float* bias, float* Y)
    void fnn_packed_gemm_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                const double* packed, const double* bias, double* Y)
    void fnn_packed_gemm_columns_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                                       const float* packed, const float* bias, float* Y,
                                       ptrdiff_t begin, ptrdiff_t end)
    void fnn_packed_gemm_columns_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                        const double* packed, const double* bias, double* Y,
                                        ptrdiff_t begin, ptrdiff_t end)
    void fnn_rowmajor_gemm_columns_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                                         ptrdiff_t xr, ptrdiff_t xk, const float* W,
                                         const float* bias, float alpha, float beta, float* Y,
                                         float* tail, float* part, ptrdiff_t begin,
                                         ptrdiff_t end)
    void fnn_rowmajor_gemm_columns_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                          ptrdiff_t xr, ptrdiff_t xk, const double* W,
                                          const double* bias, double alpha, double beta,
                                          double* Y, double* tail, double* part,
                                          ptrdiff_t begin, ptrdiff_t end)
    size_t fnn_rowmajor_scratch_float(ptrdiff_t K, ptrdiff_t N)
    size_t fnn_rowmajor_scratch_double(ptrdiff_t K, ptrdiff_t N)
    float fnn_read_sum_float(const float* values, ptrdiff_t n)
    double fnn_read_sum_double(const double* values, ptrdiff_t n)

cnp.import_array()


# -- loops on checked arrays -----------------------------------------------------------------
cdef enum:
    # Fewest multiply-adds worth a thread of the micro-kernel's products: about 1 µs of work
    # on one core, the cost of a parallel region on a 2-core VM (benchmarks/README.md).
    MIN_THREAD_WORK = 131072
    # Fewest values of a training kernel's elementwise pass (activation gradient, bias
    # update) worth the threads of its products, whose pool is awake then (as
    # fastnn._config.SPINNING_MIN_ELEMENTS); the pass splits columns (column_parts).
    MIN_SPLIT_VALUES = 32768


cdef Py_ssize_t _column_parts(Py_ssize_t n, Py_ssize_t n_out, int threads) noexcept nogil:
    """Blocks of columns for an elementwise pass over n x n_out values."""
    return 1 if n * n_out < MIN_SPLIT_VALUES else column_parts(n_out, threads)


cdef void _activate_rows(floating* Y, Py_ssize_t ldy, Py_ssize_t m, Py_ssize_t width, int kind,
                         floating alpha) noexcept nogil:
    """Y[i, 0:width] := f(Y[i, 0:width]) for the m rows of Y (ldy apart). Whole rows of whole
    COLUMN_UNITs go in one run (a call per row cost ~2% of a small-batch prediction): each
    value then takes the vector code path it takes in its row's own run, whatever the rows
    around it; a row with a scalar tail keeps a run of its own."""
    cdef Py_ssize_t i
    if kind == IDENTITY:
        return
    if width == ldy and width % COLUMN_UNIT == 0:
        activation_forward_run(kind, Y, Y, m * width, alpha)
        return
    for i in range(m):
        activation_forward_run(kind, &Y[i * ldy], &Y[i * ldy], width, alpha)


cdef void _gemm_part(const floating* X, Py_ssize_t xr, Py_ssize_t xk, const floating* W,
                     const floating* bias, floating alpha, floating beta, floating* Y,
                     Py_ssize_t m, Py_ssize_t K, Py_ssize_t N, floating* tail, floating* part,
                     Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    if floating is float:
        fnn_rowmajor_gemm_columns_float(m, K, N, X, xr, xk, W, bias, alpha, beta, Y, tail, part,
                                        begin, end)
    else:
        fnn_rowmajor_gemm_columns_double(m, K, N, X, xr, xk, W, bias, alpha, beta, Y, tail,
                                         part, begin, end)


cdef int _small_gemm(const floating* X, Py_ssize_t xr, Py_ssize_t xk, const floating* W,
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
        _gemm_part(X, xr, xk, W, bias, alpha, beta, Y, m, K, N, scratch, scratch + tail_size,
                   0, N)
        _activate_rows(Y, N, m, N, kind, act_alpha)
    else:
        for part in prange(parts, num_threads=n_threads, schedule="static"):  # the whole team
            c = part % col_parts
            r = part // col_parts
            r0 = r * m // row_parts
            j0 = c * panels // col_parts * nr
            j1 = min((c + 1) * panels // col_parts * nr, N)
            _gemm_part(X + r0 * xr, xr, xk, W, bias, alpha, beta, Y + r0 * N,
                       (r + 1) * m // row_parts - r0, K, N,
                       scratch + r * tail_size if scratch != NULL else NULL,
                       scratch + row_parts * tail_size + part * part_size
                       if scratch != NULL else NULL, j0, j1)
            _activate_rows(Y + r0 * N + j0, N, (r + 1) * m // row_parts - r0, j1 - j0, kind,
                           act_alpha)
    free(scratch)
    return 0


cdef int _small_dx(const floating* dY, const floating* W, floating* dX, Py_ssize_t n,
                   Py_ssize_t n_in, Py_ssize_t n_out, int n_threads) noexcept nogil:
    """dX (n x n_in) := dY Wᵀ on the micro-kernel, through a transposed copy of W."""
    cdef floating* Wt = <floating*>malloc(n_in * n_out * sizeof(floating) + 1)
    cdef Py_ssize_t i, j, i0, j0
    cdef int status
    if Wt == NULL:
        return -1
    for i0 in range(0, n_in, 16):  # in 16 x 16 blocks, so that reads and writes stay in cache
        for j0 in range(0, n_out, 16):
            for i in range(i0, min(i0 + 16, n_in)):
                for j in range(j0, min(j0 + 16, n_out)):
                    Wt[j * n_in + i] = W[i * n_out + j]
    status = _small_gemm(dY, n_out, 1, Wt, NULL, 1, 0, dX, n, n_out, n_in, n_threads, IDENTITY,
                         0)
    free(Wt)
    return status


cdef void _backward_rows(const floating* X, const floating* W, const floating* dY, floating* dW,
                         floating* db, floating* dX, int n, int n_in, int n_out,
                         int micro) noexcept nogil:
    cdef Py_ssize_t i, j
    if db != NULL:
        for j in range(n_out):
            db[j] = 0
        for i in range(n):
            for j in range(n_out):
                db[j] += dY[i * n_out + j]
    if n == 0 or n_out == 0 or n_in == 0:
        for i in range(<Py_ssize_t>n_in * n_out):
            dW[i] = 0
        if dX != NULL:
            for i in range(<Py_ssize_t>n * n_in):
                dX[i] = 0
        return
    # dW = Xᵀ dY: X read as its transpose (rows 1 apart, k n_in apart)
    if micro == 0 or _small_gemm(X, 1, n_in, dY, NULL, 1, 0, dW, n_in, n, n_out, micro,
                                 IDENTITY, 0) != 0:
        gemm(True, False, n_in, n_out, n, <floating>1.0, X, n_in, dY, n_out, <floating>0.0,
             dW, n_out)
    # dX = dY Wᵀ on the micro-kernel, through a transposed copy of W
    if dX != NULL and (micro == 0 or _small_dx(dY, W, dX, n, n_in, n_out, micro) != 0):
        gemm(False, True, n, n_in, n_out, <floating>1.0, dY, n_out, W, n_out, <floating>0.0, dX, n_in)


cdef void _gradient_columns(const floating* A, const floating* dA, floating* dZ, floating* db,
                            Py_ssize_t n, Py_ssize_t n_out, int kind, floating alpha,
                            Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j, at
    if db != NULL:
        for j in range(j0, j1):
            db[j] = 0
    for i in range(n):
        at = i * n_out + j0
        activation_backward_run(kind, &A[at], &dA[at], &dZ[at], j1 - j0, alpha)
        if db != NULL:
            for j in range(j0, j1):
                db[j] += dZ[i * n_out + j]


cdef void _activation_gradient(const floating* A, const floating* dA, floating* dZ,
                               floating* db, int n, int n_out, int kind, floating alpha,
                               int threads) noexcept nogil:
    """dZ := dA ⊙ f'(Z) row by row, and db := Σ_rows dZ while each row is in L1; blocks of
    columns over up to ``threads`` threads (the same bits as one)."""
    cdef Py_ssize_t part, parts = _column_parts(n, n_out, threads)
    if parts == 1:
        _gradient_columns(A, dA, dZ, db, n, n_out, kind, alpha, 0, n_out)
        return
    for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
        _gradient_columns(A, dA, dZ, db, n, n_out, kind, alpha, column_start(n_out, parts, part),
                          column_start(n_out, parts, part + 1))


cdef void _bias_step_columns(floating* b, const floating* dY, Py_ssize_t n, Py_ssize_t n_out,
                             floating lr, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(j0, j1):
            b[j] -= lr * dY[i * n_out + j]


cdef void _bias_step(floating* b, const floating* dY, Py_ssize_t n, Py_ssize_t n_out, floating lr,
                     int threads) noexcept nogil:
    """b −= lr dY[i] for each row i in turn; blocks of columns over up to ``threads`` threads."""
    cdef Py_ssize_t part, parts = _column_parts(n, n_out, threads)
    if parts == 1:
        _bias_step_columns(b, dY, n, n_out, lr, 0, n_out)
        return
    for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
        _bias_step_columns(b, dY, n, n_out, lr, column_start(n_out, parts, part),
                           column_start(n_out, parts, part + 1))


cdef void _sgd_backward_rows(const floating* X, floating* W, const floating* dY, floating* b,
                             floating* dX, int n, int n_in, int n_out, floating lr,
                             int micro) noexcept nogil:
    # dX = dY Wᵀ (with W before the step) on the micro-kernel, through a transposed copy of W
    if dX != NULL and (micro == 0 or _small_dx(dY, W, dX, n, n_in, n_out, micro) != 0):
        gemm(False, True, n, n_in, n_out, <floating>1.0, dY, n_out, W, n_out,
             <floating>0.0, dX, n_in)
    if micro == 0 or _small_gemm(X, 1, n_in, dY, NULL, -lr, 1, W, n_in, n, n_out, micro,
                                 IDENTITY, 0) != 0:
        gemm(True, False, n_in, n_out, n, -lr, X, n_in, dY, n_out, <floating>1.0, W, n_out)
    if b != NULL:
        _bias_step(b, dY, n, n_out, lr, micro)


# -- implementations on the checked pointers -------------------------------------------------
cdef void _forward(floating zero, const void* X_, const void* W_, const void* b_, void* Y_,
                   int n, int n_in, int n_out) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef const floating* W = <const floating*>W_
    cdef const floating* b = <const floating*>b_
    cdef floating* Y = <floating*>Y_
    cdef Py_ssize_t i, j
    if n == 0 or n_out == 0:
        return
    if b != NULL:
        for i in range(n):
            for j in range(n_out):
                Y[i * n_out + j] = b[j]
    elif n_in == 0:
        for i in range(<Py_ssize_t>n * n_out):
            Y[i] = 0
    if n_in > 0:
        gemm(False, False, n, n_out, n_in, <floating>1.0, X, n_in, W, n_out,
             <floating>(1.0 if b != NULL else 0.0), Y, n_out)


cdef void _backward(floating zero, const void* X, const void* W, const void* dY, void* dW,
                    void* db, void* dX, int n, int n_in, int n_out, int micro) noexcept nogil:
    _backward_rows(<const floating*>X, <const floating*>W, <const floating*>dY, <floating*>dW,
                   <floating*>db, <floating*>dX, n, n_in, n_out, micro)


cdef void _activation_forward(floating zero, const void* X_, const void* W_, const void* b_,
                              void* A_, int n, int n_in, int n_out, int kind,
                              double alpha) noexcept nogil:
    cdef const floating* X = <const floating*>X_
    cdef const floating* W = <const floating*>W_
    cdef const floating* b = <const floating*>b_
    cdef floating* A = <floating*>A_
    cdef Py_ssize_t i, j
    if n == 0 or n_out == 0:
        return
    if n_in > 0:
        gemm(False, False, n, n_out, n_in, <floating>1.0, X, n_in, W, n_out,
             <floating>0.0, A, n_out)
    for i in range(n):
        if n_in == 0:
            for j in range(n_out):
                A[i * n_out + j] = 0
        if b != NULL:
            for j in range(n_out):
                A[i * n_out + j] += b[j]
        activation_forward_run(kind, &A[i * n_out], &A[i * n_out], n_out, <floating>alpha)


cdef void _activation_backward(floating zero, const void* X, const void* W, const void* A,
                               const void* dA, void* dZ, void* dW, void* db, void* dX, int n,
                               int n_in, int n_out, int kind, double alpha,
                               int micro) noexcept nogil:
    _activation_gradient(<const floating*>A, <const floating*>dA, <floating*>dZ, <floating*>db,
                         n, n_out, kind, <floating>alpha, micro)
    _backward_rows(<const floating*>X, <const floating*>W, <const floating*>dZ, <floating*>dW,
                   NULL, <floating*>dX, n, n_in, n_out, micro)


cdef void _sgd_backward(floating zero, const void* X, void* W, const void* dY, void* b,
                        void* dX, int n, int n_in, int n_out, double lr, int micro) noexcept nogil:
    _sgd_backward_rows(<const floating*>X, <floating*>W, <const floating*>dY, <floating*>b,
                       <floating*>dX, n, n_in, n_out, <floating>lr, micro)


cdef void _activation_sgd_backward(floating zero, const void* X, void* W, const void* A,
                                   const void* dA, void* dZ, void* b, void* dX, int n, int n_in,
                                   int n_out, int kind, double alpha, double lr,
                                   int micro) noexcept nogil:
    _activation_gradient(<const floating*>A, <const floating*>dA, <floating*>dZ, NULL, n, n_out,
                         kind, <floating>alpha, micro)
    _sgd_backward_rows(<const floating*>X, <floating*>W, <const floating*>dZ, <floating*>b,
                       <floating*>dX, n, n_in, n_out, <floating>lr, micro)


# -- checked entry points --------------------------------------------------------------------
cdef int _check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    return 0


cdef int _check_micro(int micro, str kernel) except -1:
    if micro < 0:
        raise ValueError(f"{kernel}: micro must be >= 0, got {micro}")
    return 0


cdef int _check_layer(str kernel, X, W, Py_ssize_t* n, Py_ssize_t* n_in,
                      Py_ssize_t* n_out) except -1:
    """Read n, n_in from the checked X (n, in) and n_out from W, which must be (in, out); X
    and W's dimensions must fit the BLAS's int."""
    blas_sized(X, kernel, "X")
    blas_sized(W, kernel, "W")
    n[0], n_in[0], n_out[0] = dim(X, 0), dim(X, 1), dim(W, 1)
    check_shape(W, kernel, "W", n_in[0], n_out[0])
    return 0


def dense_forward(X, W, b, Y, int micro=0):
    """Y := X W + b.  ``X`` (n, in), ``W`` (in, out), ``b`` (out,) or None, ``Y`` (n, out).

    ``micro`` > 0: on fastnn's micro-kernel (W read where it is, its panels of columns over
    up to ``micro`` threads) instead of the BLAS's GEMM; 0: the BLAS.
    """
    cdef str kernel = "dense_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out)
    cdef void* y = matrix_data(Y, kernel, "Y", t, n, n_out, writable=True)
    _check_micro(micro, kernel)
    with nogil:
        if micro:
            if t == cnp.NPY_FLOAT:
                _small_forward(<float>0, x, w, bias, y, n, n_in, n_out, IDENTITY, 0, micro)
            else:
                _small_forward(<double>0, x, w, bias, y, n, n_in, n_out, IDENTITY, 0, micro)
        elif t == cnp.NPY_FLOAT:
            _forward(<float>0, x, w, bias, y, n, n_in, n_out)
        else:
            _forward(<double>0, x, w, bias, y, n, n_in, n_out)


def dense_backward(X, W, dY, dW, db, dX, int micro=0):
    """dW := Xᵀ dY;  db := Σ_rows dY;  dX := dY Wᵀ.

    ``X`` (n, in), ``W`` (in, out), ``dY`` (n, out); ``dW`` (in, out), ``db`` (out,) or
    None, ``dX`` (n, in) or None (skipped). ``micro`` > 0: dW and dX on the micro-kernel (as
    in ``dense_forward``; dX through a transposed copy of W) over up to that many threads
    instead of the BLAS.
    """
    cdef str kernel = "dense_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* dy = matrix_data(dY, kernel, "dY", t, n, n_out)
    cdef void* dw = matrix_data(dW, kernel, "dW", t, n_in, n_out, writable=True)
    cdef void* dbias = NULL if db is None else vector_data(db, kernel, "db", t, n_out, writable=True)
    cdef void* dx = NULL if dX is None else matrix_data(dX, kernel, "dX", t, n, n_in, writable=True)
    _check_micro(micro, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _backward(<float>0, x, w, dy, dw, dbias, dx, n, n_in, n_out, micro)
        else:
            _backward(<double>0, x, w, dy, dw, dbias, dx, n, n_in, n_out, micro)


def dense_activation_forward(X, W, b, A, int kind, double alpha=0.0, int micro=0):
    """A := f(X W + b): GEMM, then bias and activation in one pass per row (row stays in L1).

    ``X`` (n, in), ``W`` (in, out), ``b`` (out,) or None, ``A`` (n, out); ``micro`` as in
    ``dense_forward``.
    """
    cdef str kernel = "dense_activation_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out)
    cdef void* a = matrix_data(A, kernel, "A", t, n, n_out, writable=True)
    _check_kind(kind, kernel)
    _check_micro(micro, kernel)
    with nogil:
        if micro:
            if t == cnp.NPY_FLOAT:
                _small_forward(<float>0, x, w, bias, a, n, n_in, n_out, kind, alpha, micro)
            else:
                _small_forward(<double>0, x, w, bias, a, n, n_in, n_out, kind, alpha, micro)
        elif t == cnp.NPY_FLOAT:
            _activation_forward(<float>0, x, w, bias, a, n, n_in, n_out, kind, alpha)
        else:
            _activation_forward(<double>0, x, w, bias, a, n, n_in, n_out, kind, alpha)


def dense_activation_backward(X, W, A, dA, dZ, dW, db, dX, int kind, double alpha=0.0,
                              int micro=0):
    """dZ := dA ⊙ f'(Z) and db := Σ_rows dZ in one pass; then dW := Xᵀ dZ, dX := dZ Wᵀ.

    ``X`` (n, in), ``W`` (in, out); ``A`` (n, out), the forward output f(X W + b); ``dA``
    (n, out); ``dZ`` (n, out) scratch; ``dW`` (in, out), ``db`` (out,) or None, ``dX`` (n, in)
    or None. ``micro`` as in ``dense_backward``.
    """
    cdef str kernel = "dense_activation_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* a = matrix_data(A, kernel, "A", t, n, n_out)
    cdef void* da = matrix_data(dA, kernel, "dA", t, n, n_out)
    cdef void* dz = matrix_data(dZ, kernel, "dZ", t, n, n_out, writable=True)
    cdef void* dw = matrix_data(dW, kernel, "dW", t, n_in, n_out, writable=True)
    cdef void* dbias = NULL if db is None else vector_data(db, kernel, "db", t, n_out, writable=True)
    cdef void* dx = NULL if dX is None else matrix_data(dX, kernel, "dX", t, n, n_in, writable=True)
    _check_kind(kind, kernel)
    _check_micro(micro, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_backward(<float>0, x, w, a, da, dz, dw, dbias, dx, n, n_in, n_out, kind,
                                 alpha, micro)
        else:
            _activation_backward(<double>0, x, w, a, da, dz, dw, dbias, dx, n, n_in, n_out, kind,
                                 alpha, micro)


def dense_sgd_backward(X, W, dY, b, dX, double lr, int micro=0):
    """Backward fused with a plain SGD step: dX := dY Wᵀ (old W), W −= lr Xᵀ dY, b −= lr Σ_rows dY.

    ``X`` (n, in); ``W`` (in, out) and ``b`` (out,) or None, updated in place; ``dY`` (n, out);
    ``dX`` (n, in) or None. The weight update is the dW GEMM itself (alpha = −lr, beta = 1),
    so the gradient is never stored and no separate update pass runs. ``micro`` as in
    ``dense_backward`` (the update with alpha = −lr, beta = 1 there too).
    """
    cdef str kernel = "dense_sgd_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2, writable=True)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* dy = matrix_data(dY, kernel, "dY", t, n, n_out)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out, writable=True)
    cdef void* dx = NULL if dX is None else matrix_data(dX, kernel, "dX", t, n, n_in, writable=True)
    if n == 0 or n_out == 0 or n_in == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    _check_micro(micro, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _sgd_backward(<float>0, x, w, dy, bias, dx, n, n_in, n_out, lr, micro)
        else:
            _sgd_backward(<double>0, x, w, dy, bias, dx, n, n_in, n_out, lr, micro)


def dense_activation_sgd_backward(X, W, A, dA, dZ, b, dX, int kind, double alpha, double lr,
                                  int micro=0):
    """dZ := dA ⊙ f'(Z) (one pass), then ``dense_sgd_backward`` with dZ.

    Shapes as in ``dense_activation_backward``; ``W`` and ``b`` are updated in place.
    """
    cdef str kernel = "dense_activation_sgd_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2, writable=True)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* a = matrix_data(A, kernel, "A", t, n, n_out)
    cdef void* da = matrix_data(dA, kernel, "dA", t, n, n_out)
    cdef void* dz = matrix_data(dZ, kernel, "dZ", t, n, n_out, writable=True)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out, writable=True)
    cdef void* dx = NULL if dX is None else matrix_data(dX, kernel, "dX", t, n, n_in, writable=True)
    _check_kind(kind, kernel)
    if n == 0 or n_out == 0 or n_in == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    _check_micro(micro, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_sgd_backward(<float>0, x, w, a, da, dz, bias, dx, n, n_in, n_out, kind,
                                     alpha, lr, micro)
        else:
            _activation_sgd_backward(<double>0, x, w, a, da, dz, bias, dx, n, n_in, n_out, kind,
                                     alpha, lr, micro)


# -- small batches: packed weights -----------------------------------------------------------
cdef enum Head:
    LOGITS = 0
    ARGMAX = 1
    SOFTMAX = 2

#: The outputs ``DenseStack`` can end in, by name.
HEADS = {"logits": LOGITS, "argmax": ARGMAX, "softmax": SOFTMAX}


cdef void _pack(floating zero, const void* W, void* packed, Py_ssize_t K, Py_ssize_t N) noexcept nogil:
    if floating is float:
        fnn_pack_float(<const float*>W, K, N, <float*>packed)
    else:
        fnn_pack_double(<const double*>W, K, N, <double*>packed)


cdef void _packed_forward(floating zero, const void* X_, const void* packed_, const void* b_,
                          void* A_, Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int kind,
                          double alpha) noexcept nogil:
    cdef floating* A = <floating*>A_
    if floating is float:
        fnn_packed_gemm_float(n, n_in, n_out, <const float*>X_, <const float*>packed_,
                              <const float*>b_, A)
    else:
        fnn_packed_gemm_double(n, n_in, n_out, <const double*>X_, <const double*>packed_,
                               <const double*>b_, A)
    _activate_rows(A, n_out, n, n_out, kind, <floating>alpha)


cdef void _small_forward(floating zero, const void* X_, const void* W_, const void* b_, void* A_,
                         Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int kind,
                         double alpha, int n_threads) noexcept nogil:
    if _small_gemm(<const floating*>X_, n_in, 1, <const floating*>W_, <const floating*>b_, 1, 0,
                   <floating*>A_, n, n_in, n_out, n_threads, kind, <floating>alpha) != 0:
        _activation_forward(<floating>0, X_, W_, b_, A_, n, n_in, n_out, kind, alpha)


cdef Py_ssize_t _packed_size(int t, Py_ssize_t n_in, Py_ssize_t n_out) noexcept:
    if t == cnp.NPY_FLOAT:
        return fnn_packed_size_float(n_in, n_out)
    return fnn_packed_size_double(n_in, n_out)


def packed_size(Py_ssize_t n_in, Py_ssize_t n_out, dtype):
    """Length of the packed form of an (n_in, n_out) weight matrix of ``dtype`` (float32 or
    float64): n_in times n_out rounded up to whole panels of this build's width."""
    if n_in < 0 or n_out < 0:
        raise ValueError(f"packed_size: n_in and n_out must be >= 0, got {n_in}, {n_out}")
    t = cnp.dtype(dtype).num
    if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE:
        raise TypeError(f"packed_size: dtype must be float32 or float64, got {cnp.dtype(dtype)}")
    return _packed_size(t, n_in, n_out)


cdef void* _packed_data(object packed, str kernel, str name, int t, Py_ssize_t n_in,
                        Py_ssize_t n_out, bint writable=False) except NULL:
    return vector_data(packed, kernel, name, t, _packed_size(t, n_in, n_out), writable)


def dense_pack(W, packed):
    """packed := W (in, out) in the column panels ``dense_packed_forward`` reads; ``packed``
    is 1-D of ``packed_size(in, out, W.dtype)``. Repack whenever W changes."""
    cdef str kernel = "dense_pack"
    cdef int t = float_type(W, kernel, "W")
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n_in = dim(W, 0), n_out = dim(W, 1)
    cdef void* p = _packed_data(packed, kernel, "packed", t, n_in, n_out, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _pack(<float>0, w, p, n_in, n_out)
        else:
            _pack(<double>0, w, p, n_in, n_out)


def dense_packed_forward(X, packed, b, A, int kind=IDENTITY, double alpha=0.0):
    """A := f(X W + b) from W packed by ``dense_pack``, on the calling thread.

    ``X`` (n, in), ``packed`` (packed_size(in, out),), ``b`` (out,) or None, ``A`` (n, out);
    ``kind`` an activation code (IDENTITY: none). Fast at few rows, where it beats a GEMM call.
    """
    cdef str kernel = "dense_packed_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* a = array_data(A, kernel, "A", t, 2, writable=True)
    cdef Py_ssize_t n = dim(X, 0), n_in = dim(X, 1), n_out = dim(A, 1)
    check_shape(A, kernel, "A", n, n_out)
    cdef void* p = _packed_data(packed, kernel, "packed", t, n_in, n_out)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out)
    _check_kind(kind, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _packed_forward(<float>0, x, p, bias, a, n, n_in, n_out, kind, alpha)
        else:
            _packed_forward(<double>0, x, p, bias, a, n, n_in, n_out, kind, alpha)


def parallel_region(int n_threads):
    """Run an empty OpenMP parallel region of ``n_threads`` threads: what waking and joining
    them costs on this machine (``fastnn.inference`` measures it to decide when to thread)."""
    cdef int i
    cdef int done = 0
    if n_threads < 1:
        raise ValueError(f"parallel_region: n_threads must be >= 1, got {n_threads}")
    with nogil:
        for i in prange(n_threads, num_threads=n_threads, schedule="static"):
            done += 1
    return done


def read_sum(values):
    """Σ values in one vectorised pass: the time of reading an array once (the floor a
    batch-1 forward pass is measured against)."""
    cdef str kernel = "read_sum"
    cdef int t = float_type(values, kernel, "values")
    cdef void* v = array_data(values, kernel, "values", t, -1)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>values)
    cdef double total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = fnn_read_sum_float(<const float*>v, n)
        else:
            total = fnn_read_sum_double(<const double*>v, n)
    return total


# -- a whole evaluation-mode network in one call ---------------------------------------------
cdef struct Stage:
    const void* packed     # W (n_in, n_out) packed
    const void* bias       # (n_out,) or NULL
    const void* slopes     # (n_out,) per-unit slopes of negative values (PReLU), or NULL
    Py_ssize_t n_in, n_out
    int kind
    double alpha


cdef void _stage_columns(const Stage* s, const floating* X, floating* Y, Py_ssize_t n,
                         Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Columns begin .. end of one stage's output for n rows: product, bias, activation,
    PReLU slopes. ``begin`` is a multiple of the panel width."""
    cdef Py_ssize_t i, j
    cdef floating* y
    cdef const floating* slopes = <const floating*>s.slopes
    cdef floating zero = 0
    if floating is float:
        fnn_packed_gemm_columns_float(n, s.n_in, s.n_out, X, <const float*>s.packed,
                                      <const float*>s.bias, Y, begin, end)
    else:
        fnn_packed_gemm_columns_double(n, s.n_in, s.n_out, X, <const double*>s.packed,
                                       <const double*>s.bias, Y, begin, end)
    _activate_rows(Y + begin, s.n_out, n, end - begin, s.kind, <floating>s.alpha)
    if slopes != NULL:
        for i in range(n):
            y = &Y[i * s.n_out]
            for j in range(begin, end):
                y[j] = slopes[j] * y[j] if y[j] < zero else y[j]


cdef inline void _stage_run(const Stage* s, const floating* X, floating* Y,
                            Py_ssize_t n) noexcept nogil:
    _stage_columns(s, X, Y, n, 0, s.n_out)


cdef void _head_run(floating zero, int head, const floating* Z, void* out_, Py_ssize_t n,
                    Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i, j, best
    cdef const floating* z
    cdef floating* p
    cdef floating top, total
    cdef int64_t* labels = <int64_t*>out_
    cdef floating* out = <floating*>out_
    for i in range(n):
        z = &Z[i * k]
        if head == ARGMAX:  # numpy.argmax's answer: the first maximum, or the first NaN
            best = 0
            for j in range(k):
                if isnan(z[j]):
                    best = j
                    break
                if z[j] > z[best]:
                    best = j
            labels[i] = best
        elif head == SOFTMAX:  # exp(z − max z) / Σ, as Sequential.predict_proba computes it
            p = &out[i * k]
            top = z[0]
            for j in range(k):
                top = z[j] if z[j] > top else top
            total = 0
            for j in range(k):
                p[j] = fexp(z[j] - top)
                total = total + p[j]
            for j in range(k):
                p[j] = p[j] / total
        else:
            for j in range(k):
                out[i * k + j] = z[j]


cdef void _block_run(const Stage* stages, int n_stages, int head, const floating* X,
                     void* out_, Py_ssize_t start, Py_ssize_t rows,
                     floating* buffer) noexcept nogil:
    """Rows start .. start + rows through every stage (two buffers of rows x width in turn),
    then the head."""
    cdef floating* buffers[2]
    cdef const floating* source = &X[start * stages[0].n_in]
    cdef Py_ssize_t width = 0, n_out = stages[n_stages - 1].n_out
    cdef int l
    for l in range(n_stages):
        width = max(width, stages[l].n_out)
    buffers[0], buffers[1] = buffer, buffer + rows * width
    for l in range(n_stages):
        _stage_run(&stages[l], source, buffers[l % 2], rows)
        source = buffers[l % 2]
    if head == ARGMAX:
        _head_run(<floating>0, head, source, &(<int64_t*>out_)[start], rows, n_out)
    else:
        _head_run(<floating>0, head, source, &(<floating*>out_)[start * n_out], rows, n_out)


cdef void _stack_run_columns(const Stage* stages, int n_stages, int head, const floating* X,
                             void* out, Py_ssize_t n, int team, const int* stage_threads,
                             floating* buffer, Py_ssize_t width) noexcept nogil:
    """The whole batch through each stage in turn, the stage's panels of columns split over
    ``stage_threads[l]`` of the ``team``'s threads: each reads only its share of the weights
    (which stays in its core's cache from call to call)."""
    cdef floating* buffers[2]
    cdef const floating* source = X
    cdef Py_ssize_t c, panels, nr = FNN_NR_FLOAT if floating is float else FNN_NR_DOUBLE
    cdef int l, threads
    cdef const Stage* s
    buffers[0], buffers[1] = buffer, buffer + n * width
    for l in range(n_stages):
        s = &stages[l]
        panels = (s.n_out + nr - 1) // nr
        threads = <int>min(stage_threads[l], panels)
        if threads <= 1:
            _stage_columns(s, source, buffers[l % 2], n, 0, s.n_out)
        else:
            for c in prange(threads, num_threads=team, schedule="static"):  # the whole team
                _stage_columns(s, source, buffers[l % 2], n, c * panels // threads * nr,
                               min((c + 1) * panels // threads * nr, s.n_out))
        source = buffers[l % 2]
    _head_run(<floating>0, head, source, out, n, stages[n_stages - 1].n_out)


cdef void _stack_run(floating zero, const Stage* stages, int n_stages, int head, const void* X,
                     void* out, Py_ssize_t n, Py_ssize_t block, int n_threads,
                     const int* stage_threads, void* scratch, Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t b, n_blocks = (n + block - 1) // block
    cdef floating* buffers = <floating*>scratch
    if n_blocks == 1:
        _stack_run_columns(stages, n_stages, head, <const floating*>X, out, n, n_threads,
                           stage_threads, buffers, width)
        return
    if n_threads <= 1:
        for b in range(n_blocks):
            _block_run(stages, n_stages, head, <const floating*>X, out, b * block,
                       min(block, n - b * block), buffers)
        return
    # Scratch slot: the block's own while there are no more blocks than threads, else the
    # thread's (DenseStack.__call__ allocates min(threads, blocks) slots).
    for b in prange(n_blocks, num_threads=n_threads, schedule="static"):  # the whole team
        _block_run(stages, n_stages, head, <const floating*>X, out, b * block,
                   min(block, n - b * block),
                   &buffers[(b if n_blocks <= n_threads else threadid()) * 2 * block * width])


cdef enum:
    STAGES_MAX = 64

#: Most layers a ``DenseStack`` runs (its per-call thread counts live in a fixed array).
MAX_STAGES = STAGES_MAX


cdef class DenseStack:
    """Dense layers run back to back in one compiled call: A_l = f_l(A_{l−1} W_l + b_l), then
    a head (the logits, their argmax, or their softmax).

    Built once from the packed weights of an evaluation-mode network (``fastnn.inference``
    folds batch norm into W and b); the arrays are kept by reference and must not change
    afterwards (build a new stack instead). Every batch runs on the packed micro-kernel, in
    blocks of rows, one block per thread, or for a single block with each layer's columns
    split over the threads: a row's result is the same bit for bit whatever the batch
    around it and the thread count (scikit-learn checks predictions for sample
    order and subset invariance). Concurrent calls are safe: a call that finds the buffers in
    use allocates its own.

    Parameters
    ----------
    shapes : list of (n_in, n_out)
        The Dense layers' weight shapes, each n_in the previous n_out.
    packed : list of arrays
        Each W packed by ``dense_pack``; one float dtype.
    biases, slopes : lists of (n_out,) arrays or None
        ``slopes`` (PReLU's per-unit α): negative outputs are multiplied by them after f.
    kinds : list of activation codes; alphas : list of float
    head : "logits", "argmax" or "softmax"
    """
    cdef list _arrays
    cdef Stage* _stages
    cdef int _n_stages, _typenum, _head
    cdef Py_ssize_t _width
    cdef void* _scratch
    cdef Py_ssize_t _scratch_size
    cdef bint _busy
    cdef readonly Py_ssize_t n_in, n_out

    def __cinit__(self):
        self._stages = NULL
        self._scratch = NULL

    def __init__(self, shapes, packed, biases, slopes, kinds, alphas, str head):
        cdef str kernel = "DenseStack"
        cdef Py_ssize_t l, n_layers = len(shapes)
        if not 1 <= n_layers <= STAGES_MAX:
            raise ValueError(f"{kernel}: shapes has {n_layers} layers, expected 1 to {STAGES_MAX}")
        for name, values in (("packed", packed), ("biases", biases), ("slopes", slopes),
                             ("kinds", kinds), ("alphas", alphas)):
            if len(values) != n_layers:
                raise ValueError(f"{kernel}: {name} has {len(values)} entries, expected {n_layers}")
        if head not in HEADS:
            raise ValueError(f"{kernel}: head must be one of {sorted(HEADS)}, got {head!r}")
        self._typenum = float_type(packed[0], kernel, "packed[0]")
        self._stages = <Stage*>malloc(n_layers * sizeof(Stage))
        if self._stages == NULL:
            raise MemoryError()
        self._n_stages = <int>n_layers
        self._arrays = []
        self._width = 0
        cdef Stage* s
        cdef int t = self._typenum
        for l in range(n_layers):
            s = &self._stages[l]
            s.n_in, s.n_out = shapes[l]
            if s.n_in < 1 or s.n_out < 1:
                raise ValueError(f"{kernel}: shapes[{l}] must be two positive widths, got {shapes[l]}")
            if l > 0 and s.n_in != self._stages[l - 1].n_out:
                raise ValueError(f"{kernel}: shapes[{l}] has n_in {s.n_in}, expected "
                                 f"{self._stages[l - 1].n_out} (the n_out of shapes[{l - 1}])")
            s.packed = _packed_data(packed[l], kernel, f"packed[{l}]", t, s.n_in, s.n_out)
            s.bias = NULL if biases[l] is None else vector_data(biases[l], kernel, f"biases[{l}]",
                                                                 t, s.n_out)
            s.slopes = NULL if slopes[l] is None else vector_data(slopes[l], kernel,
                                                                   f"slopes[{l}]", t, s.n_out)
            s.kind = kinds[l]
            _check_kind(s.kind, kernel)
            s.alpha = alphas[l]
            self._width = max(self._width, s.n_out)
            self._arrays += [packed[l], biases[l], slopes[l]]
        self._head = HEADS[head]
        self.n_in, self.n_out = self._stages[0].n_in, self._stages[n_layers - 1].n_out
        self._scratch_size = 0
        self._busy = False

    def __dealloc__(self):
        free(self._stages)
        free(self._scratch)

    @property
    def dtype(self):
        return cnp.PyArray_DescrFromType(self._typenum)

    @property
    def head(self):
        return next(name for name, code in HEADS.items() if code == self._head)

    def __call__(self, X, out=None, Py_ssize_t block_rows=256, int n_threads=1,
                 stage_threads=None):
        """out := head(network(X)), returned; ``X`` (n, n_in); ``out`` (n,) int64 for
        "argmax", else (n, n_out) of the stack's dtype, or None for a new array. The rows run
        in blocks of at most ``block_rows``, one block per thread, on up to ``n_threads``
        threads; a batch of one block splits each layer's columns over the threads instead:
        over ``stage_threads[l]`` threads for layer l (a sequence, one count per layer), or
        ``n_threads`` for every layer. Every parallel region has ``n_threads`` threads, the
        threads without a block or columns idle (``_arrays.pxd``, "teams")."""
        cdef str kernel = "DenseStack"
        cdef int t = self._typenum
        cdef void* x = array_data(X, kernel, "X", t, 2)
        cdef Py_ssize_t n = dim(X, 0)
        check_shape(X, kernel, "X", n, self.n_in)
        cdef cnp.npy_intp shape[2]
        shape[0], shape[1] = n, self.n_out
        if out is None:
            out = (cnp.PyArray_EMPTY(1, shape, cnp.NPY_INT64, 0) if self._head == ARGMAX
                   else cnp.PyArray_EMPTY(2, shape, t, 0))
        cdef void* o
        if self._head == ARGMAX:
            o = vector_data(out, kernel, "out", cnp.NPY_INT64, n, writable=True)
        else:
            o = matrix_data(out, kernel, "out", t, n, self.n_out, writable=True)
        if block_rows < 1 or n_threads < 1:
            raise ValueError(f"{kernel}: block_rows and n_threads must be >= 1, got "
                             f"{block_rows}, {n_threads}")
        cdef int per_stage[STAGES_MAX]
        cdef int l
        if stage_threads is not None and len(stage_threads) != self._n_stages:
            raise ValueError(f"{kernel}: stage_threads has {len(stage_threads)} entries, "
                             f"expected {self._n_stages}")
        for l in range(self._n_stages):
            per_stage[l] = n_threads if stage_threads is None else stage_threads[l]
            if per_stage[l] < 1:
                raise ValueError(f"{kernel}: stage_threads must be >= 1, got {stage_threads}")
        if n == 0:
            return out
        # Blocks of rows over the threads (a scratch slot each, see _stack_run), or a single
        # block whose layers split their columns; the team is n_threads either way.
        cdef Py_ssize_t block = min(n, block_rows), n_blocks = (n + block - 1) // block
        cdef Py_ssize_t slots = min(n_threads, n_blocks) if n_blocks > 1 else 1
        cdef Py_ssize_t size = (slots * 2 * block * self._width
                                * (4 if t == cnp.NPY_FLOAT else 8))
        cdef void* scratch
        cdef bint own = self._busy or size > self._scratch_size
        if own:
            scratch = malloc(size)
            if scratch == NULL:
                raise MemoryError()
            if not self._busy:  # keep the larger buffer for the next calls
                free(self._scratch)
                self._scratch, self._scratch_size, own = scratch, size, False
        else:
            scratch = self._scratch
        if not own:
            self._busy = True
        try:
            with nogil:
                if t == cnp.NPY_FLOAT:
                    _stack_run(<float>0, self._stages, self._n_stages, self._head, x, o, n,
                               block, n_threads, per_stage, scratch, self._width)
                else:
                    _stack_run(<double>0, self._stages, self._n_stages, self._head, x, o, n,
                               block, n_threads, per_stage, scratch, self._width)
        finally:
            if own:
                free(scratch)
            else:
                self._busy = False
        return out

"""Dense (fully-connected) layer kernels: Y = X W + b and its gradients.

Design: the matrix products go to CBLAS GEMM (row-major, no copies); the bias is written
into Y first so that GEMM accumulates onto it (beta = 1), which makes the bias add free;
db is a column sum done in one pass over dY. The dense+activation kernels fuse a following
activation: bias and f run on each output row right after GEMM while the row is in L1,
and backward forms dA ⊙ f' and its column sum in one pass.
Shapes: X (n, in), W (in, out), b (out,), Y (n, out).
"""
cimport numpy as cnp
from cython cimport floating

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_backward_run, activation_forward_run
from fastnn_c._arrays cimport (array_data, blas_sized, check_shape, dim, float_type, matrix_data,
                               vector_data)
from fastnn_c._blas cimport gemm

cnp.import_array()


# -- loops on checked arrays -----------------------------------------------------------------
cdef void _backward_rows(const floating* X, const floating* W, const floating* dY, floating* dW,
                         floating* db, floating* dX, int n, int n_in, int n_out) noexcept nogil:
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
    gemm(True, False, n_in, n_out, n, <floating>1.0, X, n_in, dY, n_out, <floating>0.0, dW, n_out)
    if dX != NULL:
        gemm(False, True, n, n_in, n_out, <floating>1.0, dY, n_out, W, n_out, <floating>0.0, dX, n_in)


cdef void _activation_gradient(const floating* A, const floating* dA, floating* dZ,
                               floating* db, int n, int n_out, int kind,
                               floating alpha) noexcept nogil:
    """dZ := dA ⊙ f'(Z) row by row, and db := Σ_rows dZ while each row is in L1."""
    cdef Py_ssize_t i, j
    if db != NULL:
        for j in range(n_out):
            db[j] = 0
    for i in range(n):
        activation_backward_run(kind, &A[i * n_out], &dA[i * n_out], &dZ[i * n_out], n_out, alpha)
        if db != NULL:
            for j in range(n_out):
                db[j] += dZ[i * n_out + j]


cdef void _sgd_backward_rows(const floating* X, floating* W, const floating* dY, floating* b,
                             floating* dX, int n, int n_in, int n_out, floating lr) noexcept nogil:
    cdef Py_ssize_t i, j
    if dX != NULL:
        gemm(False, True, n, n_in, n_out, <floating>1.0, dY, n_out, W, n_out,
             <floating>0.0, dX, n_in)
    gemm(True, False, n_in, n_out, n, -lr, X, n_in, dY, n_out, <floating>1.0, W, n_out)
    if b != NULL:
        for i in range(n):
            for j in range(n_out):
                b[j] -= lr * dY[i * n_out + j]


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
                    void* db, void* dX, int n, int n_in, int n_out) noexcept nogil:
    _backward_rows(<const floating*>X, <const floating*>W, <const floating*>dY, <floating*>dW,
                   <floating*>db, <floating*>dX, n, n_in, n_out)


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
                               int n_in, int n_out, int kind, double alpha) noexcept nogil:
    _activation_gradient(<const floating*>A, <const floating*>dA, <floating*>dZ, <floating*>db,
                         n, n_out, kind, <floating>alpha)
    _backward_rows(<const floating*>X, <const floating*>W, <const floating*>dZ, <floating*>dW,
                   NULL, <floating*>dX, n, n_in, n_out)


cdef void _sgd_backward(floating zero, const void* X, void* W, const void* dY, void* b,
                        void* dX, int n, int n_in, int n_out, double lr) noexcept nogil:
    _sgd_backward_rows(<const floating*>X, <floating*>W, <const floating*>dY, <floating*>b,
                       <floating*>dX, n, n_in, n_out, <floating>lr)


cdef void _activation_sgd_backward(floating zero, const void* X, void* W, const void* A,
                                   const void* dA, void* dZ, void* b, void* dX, int n, int n_in,
                                   int n_out, int kind, double alpha, double lr) noexcept nogil:
    _activation_gradient(<const floating*>A, <const floating*>dA, <floating*>dZ, NULL, n, n_out,
                         kind, <floating>alpha)
    _sgd_backward_rows(<const floating*>X, <floating*>W, <const floating*>dZ, <floating*>b,
                       <floating*>dX, n, n_in, n_out, <floating>lr)


# -- checked entry points --------------------------------------------------------------------
cdef int _check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
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


def dense_forward(X, W, b, Y):
    """Y := X W + b.  ``X`` (n, in), ``W`` (in, out), ``b`` (out,) or None, ``Y`` (n, out)."""
    cdef str kernel = "dense_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef Py_ssize_t n, n_in, n_out
    _check_layer(kernel, X, W, &n, &n_in, &n_out)
    cdef void* bias = NULL if b is None else vector_data(b, kernel, "b", t, n_out)
    cdef void* y = matrix_data(Y, kernel, "Y", t, n, n_out, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward(<float>0, x, w, bias, y, n, n_in, n_out)
        else:
            _forward(<double>0, x, w, bias, y, n, n_in, n_out)


def dense_backward(X, W, dY, dW, db, dX):
    """dW := Xᵀ dY;  db := Σ_rows dY;  dX := dY Wᵀ.

    ``X`` (n, in), ``W`` (in, out), ``dY`` (n, out); ``dW`` (in, out), ``db`` (out,) or
    None, ``dX`` (n, in) or None (skipped).
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
    with nogil:
        if t == cnp.NPY_FLOAT:
            _backward(<float>0, x, w, dy, dw, dbias, dx, n, n_in, n_out)
        else:
            _backward(<double>0, x, w, dy, dw, dbias, dx, n, n_in, n_out)


def dense_activation_forward(X, W, b, A, int kind, double alpha=0.0):
    """A := f(X W + b): GEMM, then bias and activation in one pass per row (row stays in L1).

    ``X`` (n, in), ``W`` (in, out), ``b`` (out,) or None, ``A`` (n, out).
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
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_forward(<float>0, x, w, bias, a, n, n_in, n_out, kind, alpha)
        else:
            _activation_forward(<double>0, x, w, bias, a, n, n_in, n_out, kind, alpha)


def dense_activation_backward(X, W, A, dA, dZ, dW, db, dX, int kind, double alpha=0.0):
    """dZ := dA ⊙ f'(Z) and db := Σ_rows dZ in one pass; then dW := Xᵀ dZ, dX := dZ Wᵀ.

    ``X`` (n, in), ``W`` (in, out); ``A`` (n, out), the forward output f(X W + b); ``dA``
    (n, out); ``dZ`` (n, out) scratch; ``dW`` (in, out), ``db`` (out,) or None, ``dX`` (n, in)
    or None.
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
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_backward(<float>0, x, w, a, da, dz, dw, dbias, dx, n, n_in, n_out, kind,
                                 alpha)
        else:
            _activation_backward(<double>0, x, w, a, da, dz, dw, dbias, dx, n, n_in, n_out, kind,
                                 alpha)


def dense_sgd_backward(X, W, dY, b, dX, double lr):
    """Backward fused with a plain SGD step: dX := dY Wᵀ (old W), W −= lr Xᵀ dY, b −= lr Σ_rows dY.

    ``X`` (n, in); ``W`` (in, out) and ``b`` (out,) or None, updated in place; ``dY`` (n, out);
    ``dX`` (n, in) or None. The weight update is the dW GEMM itself (alpha = −lr, beta = 1),
    so the gradient is never stored and no separate update pass runs.
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
    with nogil:
        if t == cnp.NPY_FLOAT:
            _sgd_backward(<float>0, x, w, dy, bias, dx, n, n_in, n_out, lr)
        else:
            _sgd_backward(<double>0, x, w, dy, bias, dx, n, n_in, n_out, lr)


def dense_activation_sgd_backward(X, W, A, dA, dZ, b, dX, int kind, double alpha, double lr):
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
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_sgd_backward(<float>0, x, w, a, da, dz, bias, dx, n, n_in, n_out, kind,
                                     alpha, lr)
        else:
            _activation_sgd_backward(<double>0, x, w, a, da, dz, bias, dx, n, n_in, n_out, kind,
                                     alpha, lr)

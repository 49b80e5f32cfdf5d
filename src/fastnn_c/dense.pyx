"""Dense (fully-connected) layer kernels: Y = X W + b and its gradients.

Design: the matrix products go to CBLAS GEMM (row-major, no copies); the bias is written
into Y first so that GEMM accumulates onto it (beta = 1), which makes the bias add free;
db is a column sum done in one pass over dY. The dense+activation kernels fuse a following
activation: bias and f run on each output row right after GEMM while the row is in L1,
and backward forms dA ⊙ f' and its column sum in one pass.
Contract: the def functions take NumPy arrays and check dtype, layout and shapes
(_arrays.pxd: cheaper per call than typed memoryviews, which matters at small batches), so
a wrong call raises instead of reading out of bounds; the cdef kernels below them assume
checked, C-contiguous arrays of one dtype. Outputs must not overlap the inputs.
Shapes: X (n, in), W (in, out), b (out,), Y (n, out).
"""
cimport numpy as cnp
from cython cimport floating

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_backward_run, activation_forward_run
from fastnn_c._arrays cimport array_data, blas_sized, dim, float_type
from fastnn_c._blas cimport gemm

cnp.import_array()


# -- kernels on checked arrays ---------------------------------------------------------------
cdef void _forward(const floating* X, const floating* W, const floating* b, floating* Y,
                   int n, int n_in, int n_out) noexcept nogil:
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


cdef void _backward(const floating* X, const floating* W, const floating* dY, floating* dW,
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


cdef void _activation_forward(const floating* X, const floating* W, const floating* b,
                              floating* A, int n, int n_in, int n_out, int kind,
                              floating alpha) noexcept nogil:
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
        activation_forward_run(kind, &A[i * n_out], &A[i * n_out], n_out, alpha)


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


cdef void _sgd_backward(const floating* X, floating* W, const floating* dY, floating* b,
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


# -- checked entry points --------------------------------------------------------------------
cdef int _check_kind(int kind, str kernel) except -1:
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    return 0


cdef int _check_layer(str kernel, X, W, int n, int n_in, int n_out, Y, str y_name, b,
                      str b_name) except -1:
    """W is (in, out) for X's in; Y is (n, out); b, if given, has out entries. X and W's
    dimensions fit the BLAS's int (n, n_in and n_out were read as ints: checked here first)."""
    blas_sized(X, kernel, "X")
    blas_sized(W, kernel, "W")
    if dim(W, 0) != n_in or dim(Y, 0) != n or dim(Y, 1) != n_out:
        raise ValueError(f"{kernel}: X {X.shape}, W {W.shape} and {y_name} {Y.shape} do not agree")
    if b is not None and dim(b, 0) != n_out:
        raise ValueError(f"{kernel}: {b_name} has {dim(b, 0)} entries, expected {n_out}")
    return 0


cdef int _check_activation_grads(str kernel, A, dA, dZ) except -1:
    if (dim(dA, 0) != dim(A, 0) or dim(dA, 1) != dim(A, 1)
            or dim(dZ, 0) != dim(A, 0) or dim(dZ, 1) != dim(A, 1)):
        raise ValueError(f"{kernel}: A, dA and dZ must be {A.shape}, got {dA.shape} and {dZ.shape}")
    return 0


cdef int _check_input_grad(str kernel, dX, int n, int n_in) except -1:
    if dX is not None and (dim(dX, 0) != n or dim(dX, 1) != n_in):
        raise ValueError(f"{kernel}: dX is {dX.shape}, expected {n, n_in}")
    return 0


def dense_forward(X, W, b, Y):
    """Y := X W + b (b may be None)."""
    cdef str kernel = "dense_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef void* bias = NULL if b is None else array_data(b, kernel, "b", t, 1)
    cdef void* y = array_data(Y, kernel, "Y", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, Y, "Y", b, "b")
    with nogil:
        if t == cnp.NPY_FLOAT:
            _forward(<float*>x, <float*>w, <float*>bias, <float*>y, n, n_in, n_out)
        else:
            _forward(<double*>x, <double*>w, <double*>bias, <double*>y, n, n_in, n_out)


def dense_backward(X, W, dY, dW, db, dX):
    """dW := Xᵀ dY;  db := Σ_rows dY (db may be None);  dX := dY Wᵀ (skipped when dX is None)."""
    cdef str kernel = "dense_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef void* dy = array_data(dY, kernel, "dY", t, 2)
    cdef void* dw = array_data(dW, kernel, "dW", t, 2, writable=True)
    cdef void* dbias = NULL if db is None else array_data(db, kernel, "db", t, 1, writable=True)
    cdef void* dx = NULL if dX is None else array_data(dX, kernel, "dX", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, dY, "dY", db, "db")
    if dim(dW, 0) != n_in or dim(dW, 1) != n_out:
        raise ValueError(f"{kernel}: dW is {dW.shape}, expected {n_in, n_out}")
    _check_input_grad(kernel, dX, n, n_in)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _backward(<float*>x, <float*>w, <float*>dy, <float*>dw, <float*>dbias, <float*>dx,
                      n, n_in, n_out)
        else:
            _backward(<double*>x, <double*>w, <double*>dy, <double*>dw, <double*>dbias,
                      <double*>dx, n, n_in, n_out)


def dense_activation_forward(X, W, b, A, int kind, double alpha=0.0):
    """A := f(X W + b): GEMM, then bias and activation in one pass per row (row stays in L1)."""
    cdef str kernel = "dense_activation_forward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef void* bias = NULL if b is None else array_data(b, kernel, "b", t, 1)
    cdef void* a = array_data(A, kernel, "A", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, A, "A", b, "b")
    _check_kind(kind, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_forward(<float*>x, <float*>w, <float*>bias, <float*>a, n, n_in, n_out,
                                kind, <float>alpha)
        else:
            _activation_forward(<double*>x, <double*>w, <double*>bias, <double*>a, n, n_in,
                                n_out, kind, alpha)


def dense_activation_backward(X, W, A, dA, dZ, dW, db, dX, int kind, double alpha=0.0):
    """dZ := dA ⊙ f'(Z) and db := Σ_rows dZ in one pass; then dW := Xᵀ dZ, dX := dZ Wᵀ.

    A is the forward output f(X W + b) and dZ a scratch array of its shape.
    """
    cdef str kernel = "dense_activation_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2)
    cdef void* a = array_data(A, kernel, "A", t, 2)
    cdef void* da = array_data(dA, kernel, "dA", t, 2)
    cdef void* dz = array_data(dZ, kernel, "dZ", t, 2, writable=True)
    cdef void* dw = array_data(dW, kernel, "dW", t, 2, writable=True)
    cdef void* dbias = NULL if db is None else array_data(db, kernel, "db", t, 1, writable=True)
    cdef void* dx = NULL if dX is None else array_data(dX, kernel, "dX", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, A, "A", db, "db")
    _check_activation_grads(kernel, A, dA, dZ)
    if dim(dW, 0) != n_in or dim(dW, 1) != n_out:
        raise ValueError(f"{kernel}: dW is {dW.shape}, expected {n_in, n_out}")
    _check_input_grad(kernel, dX, n, n_in)
    _check_kind(kind, kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_gradient(<float*>a, <float*>da, <float*>dz, <float*>dbias, n, n_out,
                                 kind, <float>alpha)
            _backward(<float*>x, <float*>w, <float*>dz, <float*>dw, <float*>NULL, <float*>dx,
                      n, n_in, n_out)
        else:
            _activation_gradient(<double*>a, <double*>da, <double*>dz, <double*>dbias, n, n_out,
                                 kind, alpha)
            _backward(<double*>x, <double*>w, <double*>dz, <double*>dw, <double*>NULL,
                      <double*>dx, n, n_in, n_out)


def dense_sgd_backward(X, W, dY, b, dX, double lr):
    """Backward fused with a plain SGD step: dX := dY Wᵀ (old W), W −= lr Xᵀ dY, b −= lr Σ_rows dY.

    W and b (which may be None) are updated in place; dX may be None. The weight update is
    the dW GEMM itself (alpha = −lr, beta = 1), so the gradient is never stored and no
    separate update pass runs.
    """
    cdef str kernel = "dense_sgd_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2, writable=True)
    cdef void* dy = array_data(dY, kernel, "dY", t, 2)
    cdef void* bias = NULL if b is None else array_data(b, kernel, "b", t, 1, writable=True)
    cdef void* dx = NULL if dX is None else array_data(dX, kernel, "dX", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, dY, "dY", b, "b")
    _check_input_grad(kernel, dX, n, n_in)
    if n == 0 or n_out == 0 or n_in == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    with nogil:
        if t == cnp.NPY_FLOAT:
            _sgd_backward(<float*>x, <float*>w, <float*>dy, <float*>bias, <float*>dx,
                          n, n_in, n_out, <float>lr)
        else:
            _sgd_backward(<double*>x, <double*>w, <double*>dy, <double*>bias, <double*>dx,
                          n, n_in, n_out, lr)


def dense_activation_sgd_backward(X, W, A, dA, dZ, b, dX, int kind, double alpha, double lr):
    """dZ := dA ⊙ f'(Z) (one pass), then ``dense_sgd_backward`` with dZ."""
    cdef str kernel = "dense_activation_sgd_backward"
    cdef int t = float_type(X, kernel, "X")
    cdef void* x = array_data(X, kernel, "X", t, 2)
    cdef void* w = array_data(W, kernel, "W", t, 2, writable=True)
    cdef void* a = array_data(A, kernel, "A", t, 2)
    cdef void* da = array_data(dA, kernel, "dA", t, 2)
    cdef void* dz = array_data(dZ, kernel, "dZ", t, 2, writable=True)
    cdef void* bias = NULL if b is None else array_data(b, kernel, "b", t, 1, writable=True)
    cdef void* dx = NULL if dX is None else array_data(dX, kernel, "dX", t, 2, writable=True)
    cdef int n = dim(X, 0), n_in = dim(X, 1), n_out = dim(W, 1)
    _check_layer(kernel, X, W, n, n_in, n_out, A, "A", b, "b")
    _check_activation_grads(kernel, A, dA, dZ)
    _check_input_grad(kernel, dX, n, n_in)
    _check_kind(kind, kernel)
    if n == 0 or n_out == 0 or n_in == 0:
        raise ValueError(f"{kernel}: empty batch or layer")
    with nogil:
        if t == cnp.NPY_FLOAT:
            _activation_gradient(<float*>a, <float*>da, <float*>dz, <float*>NULL, n, n_out,
                                 kind, <float>alpha)
            _sgd_backward(<float*>x, <float*>w, <float*>dz, <float*>bias, <float*>dx,
                          n, n_in, n_out, <float>lr)
        else:
            _activation_gradient(<double*>a, <double*>da, <double*>dz, <double*>NULL, n, n_out,
                                 kind, alpha)
            _sgd_backward(<double*>x, <double*>w, <double*>dz, <double*>bias, <double*>dx,
                          n, n_in, n_out, lr)

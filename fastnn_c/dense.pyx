"""Dense (fully-connected) layer kernels: Y = X W + b and its gradients.

Design: the matrix products go to CBLAS GEMM (row-major, no copies); the bias is written
into Y first so that GEMM accumulates onto it (beta = 1), which makes the bias add free;
db is a column sum done in one pass over dY. The dense+activation kernels fuse a following
activation: bias and f run on each output row right after GEMM while the row is in L1,
and backward forms dA ⊙ f' and its column sum in one pass.
Contract: inputs are validated, C-contiguous and of one float dtype; shapes are checked
here so that a wrong call raises instead of reading out of bounds.
Shapes: X (n, in), W (in, out), b (out,), Y (n, out).
"""
from cython cimport floating

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_backward_run, activation_forward_run
from fastnn_c._blas cimport gemm


cdef inline void _fill_rows(floating[:, ::1] y, const floating[::1] b) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = b[j]


def dense_forward(const floating[:, ::1] X,   # IN  (n, in)
                  const floating[:, ::1] W,   # IN  (in, out)
                  const floating[::1] b,      # IN  (out,) or None
                  floating[:, ::1] Y):        # OUT (n, out)
    """Y := X W + b."""
    cdef int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    cdef Py_ssize_t i, j
    if W.shape[0] != n_in or Y.shape[0] != n or Y.shape[1] != n_out:
        raise ValueError(f"dense_forward: X {X.shape[0], X.shape[1]}, W {W.shape[0], W.shape[1]}"
                         f" and Y {Y.shape[0], Y.shape[1]} do not agree")
    if b is not None and b.shape[0] != n_out:
        raise ValueError(f"dense_forward: b has {b.shape[0]} entries, expected {n_out}")
    if n == 0 or n_out == 0:
        return
    with nogil:
        if b is not None:
            _fill_rows(Y, b)
        elif n_in == 0:
            for i in range(n):
                for j in range(n_out):
                    Y[i, j] = 0
        if n_in > 0:
            gemm(False, False, n, n_out, n_in, <floating>1.0, &X[0, 0], n_in, &W[0, 0], n_out,
                 <floating>(1.0 if b is not None else 0.0), &Y[0, 0], n_out)


def dense_backward(const floating[:, ::1] X,    # IN  (n, in)
                   const floating[:, ::1] W,    # IN  (in, out)
                   const floating[:, ::1] dY,   # IN  (n, out)
                   floating[:, ::1] dW,         # OUT (in, out)
                   floating[::1] db,            # OUT (out,) or None
                   floating[:, ::1] dX):        # OUT (n, in) or None (first layer)
    """dW := Xᵀ dY;  db := Σ_rows dY;  dX := dY Wᵀ (skipped when dX is None)."""
    cdef int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    cdef Py_ssize_t i, j
    if (W.shape[0] != n_in or dY.shape[0] != n or dY.shape[1] != n_out
            or dW.shape[0] != n_in or dW.shape[1] != n_out):
        raise ValueError(f"dense_backward: X {X.shape[0], X.shape[1]}, W {W.shape[0], W.shape[1]},"
                         f" dY {dY.shape[0], dY.shape[1]} and dW {dW.shape[0], dW.shape[1]}"
                         " do not agree")
    if db is not None and db.shape[0] != n_out:
        raise ValueError(f"dense_backward: db has {db.shape[0]} entries, expected {n_out}")
    if dX is not None and (dX.shape[0] != n or dX.shape[1] != n_in):
        raise ValueError(f"dense_backward: dX is {dX.shape[0], dX.shape[1]}, expected {n, n_in}")
    with nogil:
        if db is not None:
            for j in range(n_out):
                db[j] = 0
            for i in range(n):
                for j in range(n_out):
                    db[j] += dY[i, j]
        if n_out == 0:
            if dX is not None:
                for i in range(n):
                    for j in range(n_in):
                        dX[i, j] = 0
        elif n_in > 0:
            if n == 0:
                for i in range(n_in):
                    for j in range(n_out):
                        dW[i, j] = 0
            else:
                gemm(True, False, n_in, n_out, n, <floating>1.0, &X[0, 0], n_in, &dY[0, 0], n_out,
                     <floating>0.0, &dW[0, 0], n_out)
                if dX is not None:
                    gemm(False, True, n, n_in, n_out, <floating>1.0, &dY[0, 0], n_out,
                         &W[0, 0], n_out, <floating>0.0, &dX[0, 0], n_in)


def dense_activation_forward(const floating[:, ::1] X,   # IN  (n, in)
                             const floating[:, ::1] W,   # IN  (in, out)
                             const floating[::1] b,      # IN  (out,) or None
                             floating[:, ::1] A,         # OUT (n, out)
                             int kind, double alpha=0.0):
    """A := f(X W + b): GEMM, then bias and activation in one pass per row (row stays in L1)."""
    cdef int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    cdef Py_ssize_t i, j
    if W.shape[0] != n_in or A.shape[0] != n or A.shape[1] != n_out:
        raise ValueError(f"dense_activation_forward: X {X.shape[0], X.shape[1]}, W "
                         f"{W.shape[0], W.shape[1]} and A {A.shape[0], A.shape[1]} do not agree")
    if b is not None and b.shape[0] != n_out:
        raise ValueError(f"dense_activation_forward: b has {b.shape[0]} entries, expected {n_out}")
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"dense_activation_forward: unknown activation code {kind}")
    if n == 0 or n_out == 0:
        return
    with nogil:
        if n_in > 0:
            gemm(False, False, n, n_out, n_in, <floating>1.0, &X[0, 0], n_in, &W[0, 0], n_out,
                 <floating>0.0, &A[0, 0], n_out)
        for i in range(n):
            if n_in == 0:
                for j in range(n_out):
                    A[i, j] = 0
            if b is not None:
                for j in range(n_out):
                    A[i, j] += b[j]
            activation_forward_run(kind, &A[i, 0], &A[i, 0], n_out, <floating>alpha)


def dense_activation_backward(const floating[:, ::1] X,    # IN  (n, in)
                              const floating[:, ::1] W,    # IN  (in, out)
                              const floating[:, ::1] A,    # IN  (n, out) forward output f(XW + b)
                              const floating[:, ::1] dA,   # IN  (n, out)
                              floating[:, ::1] dZ,         # OUT (n, out) scratch: dA ⊙ f'
                              floating[:, ::1] dW,         # OUT (in, out)
                              floating[::1] db,            # OUT (out,) or None
                              floating[:, ::1] dX,         # OUT (n, in) or None
                              int kind, double alpha=0.0):
    """dZ := dA ⊙ f'(Z) and db := Σ_rows dZ in one pass; then dW := Xᵀ dZ, dX := dZ Wᵀ."""
    cdef int n = X.shape[0], n_out = W.shape[1]
    cdef Py_ssize_t i, j
    if (A.shape[0] != n or A.shape[1] != n_out or dA.shape[0] != n or dA.shape[1] != n_out
            or dZ.shape[0] != n or dZ.shape[1] != n_out):
        raise ValueError(f"dense_activation_backward: A, dA and dZ must be {n, n_out}")
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"dense_activation_backward: unknown activation code {kind}")
    if db is not None:
        if db.shape[0] != n_out:
            raise ValueError(f"dense_activation_backward: db has {db.shape[0]} entries, "
                             f"expected {n_out}")
        db[:] = 0
    with nogil:
        for i in range(n):
            activation_backward_run(kind, &A[i, 0], &dA[i, 0], &dZ[i, 0], n_out, <floating>alpha)
            if db is not None:
                for j in range(n_out):
                    db[j] += dZ[i, j]
    dense_backward(X, W, dZ, dW, None, dX)


def dense_sgd_backward(const floating[:, ::1] X,    # IN  (n, in)
                       floating[:, ::1] W,          # IN/OUT (in, out), updated in place
                       const floating[:, ::1] dY,   # IN  (n, out)
                       floating[::1] b,             # IN/OUT (out,) or None
                       floating[:, ::1] dX,         # OUT (n, in) or None
                       double lr):
    """Backward fused with a plain SGD step: dX := dY Wᵀ (old W), W −= lr Xᵀ dY, b −= lr Σ_rows dY.

    The weight update is the dW GEMM itself (alpha = −lr, beta = 1), so the gradient is
    never stored and no separate update pass runs.
    """
    cdef int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    cdef Py_ssize_t i, j
    cdef floating step = <floating>lr
    if (W.shape[0] != n_in or dY.shape[0] != n or dY.shape[1] != n_out):
        raise ValueError(f"dense_sgd_backward: X {X.shape[0], X.shape[1]}, W "
                         f"{W.shape[0], W.shape[1]} and dY {dY.shape[0], dY.shape[1]} do not agree")
    if b is not None and b.shape[0] != n_out:
        raise ValueError(f"dense_sgd_backward: b has {b.shape[0]} entries, expected {n_out}")
    if dX is not None and (dX.shape[0] != n or dX.shape[1] != n_in):
        raise ValueError(f"dense_sgd_backward: dX is {dX.shape[0], dX.shape[1]}, expected {n, n_in}")
    if n == 0 or n_out == 0 or n_in == 0:
        raise ValueError("dense_sgd_backward: empty batch or layer")
    with nogil:
        if dX is not None:
            gemm(False, True, n, n_in, n_out, <floating>1.0, &dY[0, 0], n_out, &W[0, 0], n_out,
                 <floating>0.0, &dX[0, 0], n_in)
        gemm(True, False, n_in, n_out, n, -step, &X[0, 0], n_in, &dY[0, 0], n_out,
             <floating>1.0, &W[0, 0], n_out)
        if b is not None:
            for i in range(n):
                for j in range(n_out):
                    b[j] -= step * dY[i, j]


def dense_activation_sgd_backward(const floating[:, ::1] X,    # IN  (n, in)
                                  floating[:, ::1] W,          # IN/OUT (in, out)
                                  const floating[:, ::1] A,    # IN  (n, out) forward output
                                  const floating[:, ::1] dA,   # IN  (n, out)
                                  floating[:, ::1] dZ,         # OUT (n, out) scratch: dA ⊙ f'
                                  floating[::1] b,             # IN/OUT (out,) or None
                                  floating[:, ::1] dX,         # OUT (n, in) or None
                                  int kind, double alpha, double lr):
    """dZ := dA ⊙ f'(Z) (one pass), then ``dense_sgd_backward`` with dZ."""
    cdef int n = X.shape[0], n_out = W.shape[1]
    cdef Py_ssize_t i
    if (A.shape[0] != n or A.shape[1] != n_out or dA.shape[0] != n or dA.shape[1] != n_out
            or dZ.shape[0] != n or dZ.shape[1] != n_out):
        raise ValueError(f"dense_activation_sgd_backward: A, dA and dZ must be {n, n_out}")
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"dense_activation_sgd_backward: unknown activation code {kind}")
    with nogil:
        for i in range(n):
            activation_backward_run(kind, &A[i, 0], &dA[i, 0], &dZ[i, 0], n_out, <floating>alpha)
    dense_sgd_backward(X, W, dZ, b, dX, lr)

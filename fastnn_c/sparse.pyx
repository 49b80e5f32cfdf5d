"""Dense layer kernels on a CSR input batch: Y = f(X W + b), Xᵀ dY, and the plain SGD step.

Design: X (n, in) arrives as its CSR arrays, ``indptr`` (n + 1,), ``indices`` and ``data``
(nnz,), the first two int64 (the caller converts SciPy's int32); nothing is densified. Row i
of the product is b + Σ_k data[k] W[indices[k], :] over k in [indptr[i], indptr[i + 1]): a
run of axpys over rows of W, split by rows of X over the threads. The transposed product
dW = Xᵀ dY scatters data[k] dY[i, :] into row indices[k] of dW; threads split dW's columns
(``column_parts``), so no two threads write one value and each value's sum runs in the same
order on any thread count (the same bits). Duplicate indices add up and unsorted indices
are read as they come, as SciPy defines a CSR matrix. ``sparse_sgd_backward`` is that
scatter with α = −lr straight into W: it touches only the rows of W whose feature occurs
in the batch, which is all a plain SGD step without penalty changes.

Convention (fastnn_c/_kernel.pyx): inputs are C-contiguous and of one float dtype; before
the loops, which run without the GIL and without bounds checks, each kernel checks the CSR
structure (indptr of n + 1 entries, which sets n, starting at 0 and non-decreasing;
indices and data of indptr[-1] values; every index in [0, n_features)) and the shapes, and
raises ValueError naming itself and the argument. ``n_features``, X's width, is passed
because the CSR arrays do not carry it.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

from fastnn_c._activation cimport IDENTITY, SOFTPLUS, activation_forward_run
from fastnn_c._arrays cimport check_matrix, check_vector, column_parts, column_start
from fastnn_c._kernel import Kernel


cdef enum:
    # Fewest multiply-adds worth a thread: about 1 µs of work on one core, the cost of a
    # parallel region on a 2-core VM (as fastnn_c/dense.pyx's MIN_THREAD_WORK).
    MIN_THREAD_WORK = 131072
    # Fewest values of dW worth a thread for its zero fill (a memset of 256 KiB and more).
    MIN_FILL_VALUES = 65536


cdef Py_ssize_t _check_csr(str kernel, const int64_t[::1] indptr,
                           const int64_t[::1] indices, Py_ssize_t nnz,
                           Py_ssize_t n_features) except -1:
    """The rows n of the CSR structure (indptr, indices) over n_features columns with nnz
    stored values (data's length); ValueError naming the argument where it is not one."""
    cdef Py_ssize_t i, k, bad = -1, n = indptr.shape[0] - 1
    cdef int64_t last
    if n < 0:
        raise ValueError(f"{kernel}: indptr is empty, expected rows + 1 entries")
    if n_features < 0:
        raise ValueError(f"{kernel}: n_features must be >= 0, got {n_features}")
    if indptr[0] != 0:
        raise ValueError(f"{kernel}: indptr[0] is {indptr[0]}, expected 0")
    with nogil:
        last = 0
        for i in range(1, n + 1):
            if indptr[i] < last:
                bad = i
                break
            last = indptr[i]
    if bad >= 0:
        raise ValueError(f"{kernel}: indptr decreases at position {bad} "
                         f"({indptr[bad - 1]} then {indptr[bad]})")
    # indptr[-1] stored values: SciPy's arrays may be longer; the caller passes that prefix
    check_vector(kernel, "indices", indices.shape[0], indptr[n])
    check_vector(kernel, "data", nnz, indptr[n])
    with nogil:
        for k in range(indices.shape[0]):
            if indices[k] < 0 or indices[k] >= n_features:
                bad = k
                break
    if bad >= 0:
        raise ValueError(f"{kernel}: indices[{bad}] is {indices[bad]}, expected a column in "
                         f"[0, {n_features}) (n_features)")
    return n


cdef int _check_threads(str kernel, int threads) except -1:
    if threads < 1:
        raise ValueError(f"{kernel}: threads must be >= 1, got {threads}")
    return 0


cdef inline void _axpy(floating a, const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    """y += a x."""
    cdef Py_ssize_t j
    for j in range(n):
        y[j] += a * x[j]


cdef void _forward_row(const int64_t[::1] indptr, const int64_t[::1] indices,
                       const floating[::1] data, const floating[:, ::1] W,
                       const floating[::1] b, bint with_b, floating[:, ::1] A, Py_ssize_t i,
                       int kind, floating alpha) noexcept nogil:
    cdef Py_ssize_t j, k, n_out = W.shape[1]
    if with_b:
        for j in range(n_out):
            A[i, j] = b[j]
    else:
        for j in range(n_out):
            A[i, j] = 0
    for k in range(indptr[i], indptr[i + 1]):
        _axpy(data[k], &W[indices[k], 0], &A[i, 0], n_out)
    activation_forward_run(kind, &A[i, 0], &A[i, 0], n_out, alpha)


cdef int _team(int threads, Py_ssize_t work) noexcept nogil:
    """Threads that ``work`` multiply-adds pay for (at least 1)."""
    return <int>min(<Py_ssize_t>threads, max(<Py_ssize_t>1, work // MIN_THREAD_WORK))


def _sparse_forward(const int64_t[::1] indptr,   # IN (n + 1,)
                    const int64_t[::1] indices,  # IN (nnz,)
                    const floating[::1] data,    # IN (nnz,)
                    Py_ssize_t n_features,       # X's columns
                    const floating[:, ::1] W,    # IN (n_features, out)
                    const floating[::1] b,       # IN (out,), or None
                    floating[:, ::1] A,          # OUT (n, out)
                    int kind=IDENTITY, double alpha=0.0, int threads=1):
    """A := f(X W + b) for the CSR batch X = (indptr, indices, data) of n_features columns;
    f the activation ``kind`` (IDENTITY: A := X W + b)."""
    cdef str kernel = "sparse_forward"
    cdef Py_ssize_t i, n = _check_csr(kernel, indptr, indices, data.shape[0], n_features)
    cdef Py_ssize_t n_out = W.shape[1]
    cdef bint with_b = b is not None
    _check_threads(kernel, threads)
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    check_matrix(kernel, "W", W.shape[0], W.shape[1], n_features, n_out)
    if with_b:
        check_vector(kernel, "b", b.shape[0], n_out)
    check_matrix(kernel, "A", A.shape[0], A.shape[1], n, n_out)
    if n == 0 or n_out == 0:
        return
    cdef Py_ssize_t part, parts = min(<Py_ssize_t>_team(threads, indptr[n] * n_out + n * n_out), n)
    with nogil:
        if parts == 1:
            for i in range(n):
                _forward_row(indptr, indices, data, W, b, with_b, A, i, kind, <floating>alpha)
        else:
            for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
                for i in range(part * n // parts, (part + 1) * n // parts):
                    _forward_row(indptr, indices, data, W, b, with_b, A, i, kind,
                                 <floating>alpha)


cdef void _scatter_columns(const int64_t[::1] indptr, const int64_t[::1] indices,
                           const floating[::1] data, const floating[:, ::1] dY,
                           floating[:, ::1] out, floating scale, Py_ssize_t j0,
                           Py_ssize_t j1) noexcept nogil:
    """out[indices[k], j0:j1] += scale data[k] dY[i, j0:j1] for every stored value (i, k)."""
    cdef Py_ssize_t i, k
    for i in range(dY.shape[0]):
        for k in range(indptr[i], indptr[i + 1]):
            _axpy(scale * data[k], &dY[i, j0], &out[indices[k], j0], j1 - j0)


cdef void _scatter(const int64_t[::1] indptr, const int64_t[::1] indices,
                   const floating[::1] data, const floating[:, ::1] dY, floating[:, ::1] out,
                   floating scale, int threads) noexcept nogil:
    """out += scale Xᵀ dY; blocks of columns over the threads its work pays for."""
    cdef Py_ssize_t part, n_out = dY.shape[1]
    cdef Py_ssize_t parts = column_parts(n_out, _team(threads, indptr[dY.shape[0]] * n_out))
    if parts == 1:
        _scatter_columns(indptr, indices, data, dY, out, scale, 0, n_out)
        return
    for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
        _scatter_columns(indptr, indices, data, dY, out, scale, column_start(n_out, parts, part),
                         column_start(n_out, parts, part + 1))


cdef void _column_sums(const floating[:, ::1] dY, floating[::1] db, floating scale,
                       bint accumulate) noexcept nogil:
    """db := scale Σ_rows dY (db += … when ``accumulate``)."""
    cdef Py_ssize_t i, j
    if not accumulate:
        for j in range(dY.shape[1]):
            db[j] = 0
    for i in range(dY.shape[0]):
        for j in range(dY.shape[1]):
            db[j] += scale * dY[i, j]


def _sparse_backward(const int64_t[::1] indptr,   # IN (n + 1,)
                     const int64_t[::1] indices,  # IN (nnz,)
                     const floating[::1] data,    # IN (nnz,)
                     Py_ssize_t n_features,       # X's columns
                     const floating[:, ::1] dY,   # IN (n, out)
                     floating[:, ::1] dW,         # OUT (n_features, out)
                     floating[::1] db,            # OUT (out,), or None
                     int threads=1):
    """dW := Xᵀ dY;  db := Σ_rows dY, for the CSR batch X = (indptr, indices, data).

    dW is dense: every row is written (zero where no row of the batch has the feature).
    """
    cdef str kernel = "sparse_backward"
    cdef Py_ssize_t i, n = _check_csr(kernel, indptr, indices, data.shape[0], n_features)
    cdef Py_ssize_t n_in = n_features, n_out = dY.shape[1]
    cdef bint with_db = db is not None
    _check_threads(kernel, threads)
    check_matrix(kernel, "dY", dY.shape[0], dY.shape[1], n, n_out)
    check_matrix(kernel, "dW", dW.shape[0], dW.shape[1], n_in, n_out)
    if with_db:
        check_vector(kernel, "db", db.shape[0], n_out)
    cdef Py_ssize_t part, parts = min(<Py_ssize_t>threads,
                                      max(<Py_ssize_t>1, n_in * n_out // MIN_FILL_VALUES))
    if with_db:
        with nogil:
            _column_sums(dY, db, 1, False)
    if n_out == 0 or n_in == 0:
        return
    with nogil:
        if parts == 1:
            memset(&dW[0, 0], 0, n_in * n_out * sizeof(floating))
        else:
            for part in prange(parts, num_threads=threads, schedule="static"):  # the whole team
                i = part * n_in // parts
                memset(&dW[i, 0], 0, ((part + 1) * n_in // parts - i) * n_out * sizeof(floating))
        _scatter(indptr, indices, data, dY, dW, 1, threads)


def _sparse_sgd_backward(const int64_t[::1] indptr,   # IN (n + 1,)
                         const int64_t[::1] indices,  # IN (nnz,)
                         const floating[::1] data,    # IN (nnz,)
                         Py_ssize_t n_features,       # X's columns
                         const floating[:, ::1] dY,   # IN (n, out)
                         floating[:, ::1] W,          # IN/OUT (n_features, out), stepped
                         floating[::1] b,             # IN/OUT (out,), stepped, or None
                         double lr, int threads=1):
    """W −= lr Xᵀ dY;  b −= lr Σ_rows dY: a plain SGD step that writes only the rows of W
    whose feature is stored in the batch (the gradient's other rows are zero)."""
    cdef str kernel = "sparse_sgd_backward"
    cdef Py_ssize_t n = _check_csr(kernel, indptr, indices, data.shape[0], n_features)
    cdef Py_ssize_t n_out = dY.shape[1]
    cdef bint with_b = b is not None
    _check_threads(kernel, threads)
    check_matrix(kernel, "dY", dY.shape[0], dY.shape[1], n, n_out)
    check_matrix(kernel, "W", W.shape[0], W.shape[1], n_features, n_out)
    if with_b:
        check_vector(kernel, "b", b.shape[0], n_out)
    with nogil:
        if with_b:
            _column_sums(dY, b, <floating>-lr, True)
        if n_out > 0 and W.shape[0] > 0:
            _scatter(indptr, indices, data, dY, W, <floating>-lr, threads)


sparse_forward = Kernel(_sparse_forward, "sparse_forward", "indptr:1:int64", "indices:1:int64",
                        "data:1", "n_features", "W:2", "b:1?", "A:2!")
sparse_backward = Kernel(_sparse_backward, "sparse_backward", "indptr:1:int64",
                         "indices:1:int64", "data:1", "n_features", "dY:2", "dW:2!", "db:1?!")
sparse_sgd_backward = Kernel(_sparse_sgd_backward, "sparse_sgd_backward", "indptr:1:int64",
                             "indices:1:int64", "data:1", "n_features", "dY:2", "W:2!",
                             "b:1?!")

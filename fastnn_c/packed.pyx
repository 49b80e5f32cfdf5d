"""Dense layers at small batches from weights packed once, and the probes that time them.

Design: below a few dozen rows a GEMM call re-packs all of W every time and its threads cost
more than they bring, so ``dense_pack`` packs W once into the micro-kernel's column panels
(``_packed_gemm.h``) and ``dense_packed_forward`` runs the product from them on the calling
thread, the bias added as each tile is stored and the activation run over the rows after
it. The layout depends on the SIMD level of the module that packed it: pack and run with
one build. ``parallel_region`` and ``read_sum`` time what a parallel region and one read of
an array cost on this machine (fastnn.inference decides when to thread from them).

Convention (fastnn_c/_kernel.pyx): fused kernels on typed memoryviews, published as
``Kernel`` objects; the micro-kernel is handed ``&X[0, 0]``.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange

from fastnn_c._activation cimport IDENTITY, SOFTPLUS
from fastnn_c._arrays cimport check_matrix, check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._micro cimport (activate_rows, fnn_pack_double, fnn_pack_float,
                              fnn_packed_gemm_double, fnn_packed_gemm_float,
                              fnn_packed_size_double, fnn_packed_size_float,
                              fnn_read_sum_double, fnn_read_sum_float)

cnp.import_array()


def packed_size(Py_ssize_t n_in, Py_ssize_t n_out, dtype):
    """Length of the packed form of an (n_in, n_out) weight matrix of ``dtype`` (float32 or
    float64): n_in times n_out rounded up to whole panels of this build's width."""
    if n_in < 0 or n_out < 0:
        raise ValueError(f"packed_size: n_in and n_out must be >= 0, got {n_in}, {n_out}")
    t = cnp.dtype(dtype).num
    if t == cnp.NPY_FLOAT:
        return fnn_packed_size_float(n_in, n_out)
    if t == cnp.NPY_DOUBLE:
        return fnn_packed_size_double(n_in, n_out)
    raise TypeError(f"packed_size: dtype must be float32 or float64, got {cnp.dtype(dtype)}")


cdef int _check_packed(str kernel, Py_ssize_t length, Py_ssize_t n_in, Py_ssize_t n_out,
                       bint single) except -1:
    check_vector(kernel, "packed", length,
                 fnn_packed_size_float(n_in, n_out) if single
                 else fnn_packed_size_double(n_in, n_out))
    return 0


def _dense_pack(const floating[:, ::1] W,  # IN (in, out)
                floating[::1] packed):     # OUT (packed_size(in, out),)
    """packed := W in the column panels ``dense_packed_forward`` reads. Repack whenever W
    changes."""
    cdef Py_ssize_t n_in = W.shape[0], n_out = W.shape[1]
    _check_packed("dense_pack", packed.shape[0], n_in, n_out, floating is float)
    if packed.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fnn_pack_float(&W[0, 0] if n_in * n_out else NULL, n_in, n_out, &packed[0])
        else:
            fnn_pack_double(&W[0, 0] if n_in * n_out else NULL, n_in, n_out, &packed[0])


def _dense_packed_forward(const floating[:, ::1] X,       # IN (n, in)
                          const floating[::1] packed,     # IN (packed_size(in, out),)
                          const floating[::1] b,          # IN (out,), or None
                          floating[:, ::1] A,             # OUT (n, out)
                          int kind=IDENTITY, double alpha=0.0):
    """A := f(X W + b) from W packed by ``dense_pack``, on the calling thread: fast at few
    rows, where it beats a GEMM call."""
    cdef str kernel = "dense_packed_forward"
    cdef Py_ssize_t n = X.shape[0], n_in = X.shape[1], n_out = A.shape[1]
    check_matrix(kernel, "A", A.shape[0], A.shape[1], n, n_out)
    _check_packed(kernel, packed.shape[0], n_in, n_out, floating is float)
    if b is not None:
        check_vector(kernel, "b", b.shape[0], n_out)
    if not IDENTITY <= kind <= SOFTPLUS:
        raise ValueError(f"{kernel}: unknown activation code {kind}")
    if n == 0 or n_out == 0:
        return
    cdef const floating* bias = &b[0] if b is not None else NULL
    with nogil:
        if floating is float:
            fnn_packed_gemm_float(n, n_in, n_out, &X[0, 0] if n_in else NULL,
                                  &packed[0] if n_in else NULL, bias, &A[0, 0])
        else:
            fnn_packed_gemm_double(n, n_in, n_out, &X[0, 0] if n_in else NULL,
                                   &packed[0] if n_in else NULL, bias, &A[0, 0])
        activate_rows(&A[0, 0], n_out, n, n_out, kind, <floating>alpha)


def _read_sum(const floating[::1] values):  # IN, any shape read as one run
    """Σ values in one vectorised pass: the time of reading an array once (the floor a
    batch-1 forward pass is measured against)."""
    cdef Py_ssize_t n = values.shape[0]
    cdef double total = 0
    if n == 0:
        return total
    with nogil:
        if floating is float:
            total = fnn_read_sum_float(&values[0], n)
        else:
            total = fnn_read_sum_double(&values[0], n)
    return total


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


dense_pack = Kernel(_dense_pack, "dense_pack", "W:2", "packed:1!")
dense_packed_forward = Kernel(_dense_packed_forward, "dense_packed_forward", "X:2", "packed:1",
                              "b:1?", "A:2!")
read_sum = Kernel(_read_sum, "read_sum", "values:*")

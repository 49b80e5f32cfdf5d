"""The whole-network inference pass: Dense layers back to back in one compiled call.

Design: ``DenseStack`` is built once from an evaluation-mode network's packed weights
(``fastnn.inference`` folds batch norm into W and b, ``packed.dense_pack`` packs each W),
and runs every batch on the micro-kernel (``_packed_gemm.h``): in blocks of rows, one block
per thread, or for a single block with each layer's columns split over the threads; then
the head (logits, argmax or softmax). A row's result is the same bit for bit whatever the
batch around it and the thread count.

Convention: the stack binds its weights once, when it is built, and keeps their data in C
stages; each call checks its input X and its output as NumPy arrays and hands their data to
the micro-kernel, as a BLAS call is handed pointers. Acquiring a typed memoryview for X
would cost about 0.4 µs a call, 15% of a batch-1 prediction on an AVX-512 core
(benchmarks/README.md, "One kernel convention").
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport isnan
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fastnn_c._activation cimport IDENTITY, SOFTPLUS
from fastnn_c._math cimport fexp
from fastnn_c._micro cimport (FNN_NR_DOUBLE, FNN_NR_FLOAT, activate_rows,
                              fnn_packed_gemm_columns_double, fnn_packed_gemm_columns_float,
                              fnn_packed_size_double, fnn_packed_size_float)

cnp.import_array()


# -- checks of the arrays a call brings --------------------------------------------------------
cdef void* _data(object array, str name, int typenum, Py_ssize_t rows, Py_ssize_t cols,
                 bint writable=False) except NULL:
    """The data of a C-contiguous, aligned ``array`` of ``typenum`` in native byte order and
    shape (rows, cols), or (rows,) when cols < 0; errors name the argument."""
    cdef int ndim = 1 if cols < 0 else 2
    if not cnp.PyArray_Check(array):
        raise TypeError(f"DenseStack: {name} must be a numpy.ndarray, got {type(array).__name__}")
    if not (cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(<cnp.ndarray>array), typenum)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>array)):
        raise TypeError(f"DenseStack: {name} has dtype {array.dtype}, "
                        f"expected {cnp.PyArray_DescrFromType(typenum)}")
    if cnp.PyArray_NDIM(<cnp.ndarray>array) != ndim:
        raise ValueError(f"DenseStack: {name} has {cnp.PyArray_NDIM(<cnp.ndarray>array)} "
                         f"dimensions, expected {ndim}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>array)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>array)):
        raise ValueError(f"DenseStack: {name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>array):
        raise ValueError(f"DenseStack: {name} is read-only")
    if (cnp.PyArray_DIM(<cnp.ndarray>array, 0) != rows
            or (cols >= 0 and cnp.PyArray_DIM(<cnp.ndarray>array, 1) != cols)):
        expected = <object>(rows,) if cols < 0 else <object>(rows, cols)
        raise ValueError(f"DenseStack: {name} has shape {array.shape}, expected {expected}")
    return cnp.PyArray_DATA(<cnp.ndarray>array)


cdef int _float_type(object array, str name) except -1:
    if not cnp.PyArray_Check(array):
        raise TypeError(f"DenseStack: {name} must be a numpy.ndarray, got {type(array).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>array)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"DenseStack: {name} must be float32 or float64, got {array.dtype}")
    return typenum


cdef enum Head:
    LOGITS = 0
    ARGMAX = 1
    SOFTMAX = 2

#: The outputs ``DenseStack`` can end in, by name.
HEADS = {"logits": LOGITS, "argmax": ARGMAX, "softmax": SOFTMAX}


# -- the pass ----------------------------------------------------------------------------------
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
    activate_rows(Y + begin, s.n_out, n, end - begin, s.kind, <floating>s.alpha)
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
        self._typenum = _float_type(packed[0], "packed[0]")
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
            s.packed = _data(packed[l], f"packed[{l}]", t,
                             fnn_packed_size_float(s.n_in, s.n_out) if t == cnp.NPY_FLOAT
                             else fnn_packed_size_double(s.n_in, s.n_out), -1)
            s.bias = NULL if biases[l] is None else _data(biases[l], f"biases[{l}]", t, s.n_out, -1)
            s.slopes = NULL if slopes[l] is None else _data(slopes[l], f"slopes[{l}]", t, s.n_out, -1)
            s.kind = kinds[l]
            if not IDENTITY <= s.kind <= SOFTPLUS:
                raise ValueError(f"{kernel}: unknown activation code {s.kind}")
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
        if not cnp.PyArray_Check(X) or cnp.PyArray_NDIM(<cnp.ndarray>X) != 2:
            _data(X, "X", t, 0, self.n_in)  # raises the error that names what is wrong
        cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
        cdef void* x = _data(X, "X", t, n, self.n_in)
        cdef cnp.npy_intp shape[2]
        shape[0], shape[1] = n, self.n_out
        if out is None:
            out = (cnp.PyArray_EMPTY(1, shape, cnp.NPY_INT64, 0) if self._head == ARGMAX
                   else cnp.PyArray_EMPTY(2, shape, t, 0))
        cdef void* o
        if self._head == ARGMAX:
            o = _data(out, "out", cnp.NPY_INT64, n, -1, writable=True)
        else:
            o = _data(out, "out", t, n, self.n_out, writable=True)
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

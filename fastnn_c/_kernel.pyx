"""The kernel convention of every family, and the checked entry point each kernel has.

A kernel is a ``def`` function fused over ``floating`` whose arrays are typed memoryviews,
marked as scikit-learn's ``_cython_blas.pyx`` marks them::

    def _dense_forward(const floating[:, ::1] X,   # IN
                       const floating[:, ::1] W,   # IN
                       const floating[::1] b,      # IN, or None
                       floating[:, ::1] Y,         # OUT
                       int threads, bint blas):

Its loops index the memoryviews (``Y[i, j]``), so a build with ``FASTNN_DEBUG_CYTHON=1``
bounds-checks every index; the GEMM micro-kernel, the BLAS and the vectorised elementwise
runs of ``_activation.pxd``/``_math.pxd`` are handed ``&X[i, 0]``, as a BLAS is. A kernel
checks what the types cannot say (shapes that must agree, scalar ranges) and raises naming
itself and the argument (``check_matrix``/``check_vector`` of ``_arrays.pxd``), then runs
without the GIL. Cython picks the float32 or float64 specialization from the arrays: there
is no hand-written dispatch.

Each family publishes every kernel as a ``Kernel``::

    dense_forward = Kernel(_dense_forward, "dense_forward", "X:2", "W:2", "b:1?", "Y:2!")

Calling ``dense_forward(X, W, b, Y, threads, blas)`` with NumPy arrays first checks each
array it names (a numpy.ndarray, the call's float dtype or a fixed one, native byte order,
the rank, C-contiguous and aligned, writable if written), with errors that name the kernel
and the argument instead of Cython's "Buffer dtype mismatch" or "No matching signature
found", then runs the kernel. Specs are ``name:rank`` with, in this order, an optional
``:dtype`` (fixed, e.g. ``int64``; otherwise the call's float dtype, set by the first such
array), ``?`` (None allowed) and ``!`` (written); a spec without a rank (``"kind"``) is
a leading parameter that is not an array. Rank ``*``: any shape, read as one run of values
(the kernel takes ``[::1]``); every ``*`` array has the shape of the first.

``dense_forward.typed(dtype)`` is the kernel's specialization itself. fastnn's layers call
it with memoryviews they acquired once, when they bound their parameters and buffers
(``as_view``): converting a NumPy array costs about 0.4 µs an array, passing an acquired
memoryview about 0.08 µs (benchmarks/README.md, "One kernel convention").
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t, uint8_t

cnp.import_array()

ctypedef fused view_item:
    float
    double
    int64_t
    uint8_t


cdef enum:
    ANY_RANK = -1
    NOT_ARRAY = -2


cdef class _Spec:
    cdef readonly str name
    cdef int rank  # ANY_RANK: any shape, passed flattened; NOT_ARRAY: passed as it is
    cdef object dtype  # numpy.dtype, or None for the call's float dtype
    cdef bint optional, output

    def __init__(self, str spec):
        text = spec
        if ":" not in text:
            self.name, self.rank, self.dtype = text, NOT_ARRAY, None
            self.optional = self.output = False
            return
        self.output = text.endswith("!")
        text = text.rstrip("!")
        self.optional = text.endswith("?")
        text = text.rstrip("?")
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"argument spec {spec!r}: expected name or name:rank[:dtype][?][!]")
        self.name = parts[0]
        self.rank = ANY_RANK if parts[1] == "*" else int(parts[1])
        self.dtype = cnp.dtype(parts[2]) if len(parts) == 3 else None


cdef class Kernel:
    """A typed-memoryview kernel and the checks that come before it when it is called with
    NumPy arrays (module docstring).

    Parameters
    ----------
    function : fused def function
        The kernel; its first parameters are the ones ``specs`` names, in order.
    name : str
        The kernel's public name, which every error message starts with.
    *specs : str
        One per leading parameter: ``name:rank[:dtype][?][!]`` for an array, ``name`` for
        anything else (passed as it is).
    """
    cdef readonly str name
    cdef object _function
    cdef tuple _specs
    cdef object _float32, _float64

    def __init__(self, function, str name, *specs):
        self._function = function
        self.name = name
        self._specs = tuple(_Spec(spec) for spec in specs)
        self._float32 = function["float"]
        self._float64 = function["double"]

    def typed(self, dtype):
        """The kernel's specialization for float ``dtype``, to call with typed memoryviews
        (``as_view``) or arrays that are known to be right: no checks beyond the kernel's."""
        t = cnp.dtype(dtype).num
        if t == cnp.NPY_FLOAT:
            return self._float32
        if t == cnp.NPY_DOUBLE:
            return self._float64
        raise TypeError(f"{self.name}: dtype must be float32 or float64, got {cnp.dtype(dtype)}")

    @property
    def __doc__(self):
        return self._function.__doc__

    @property
    def arrays(self):
        """The names of the array arguments, in order."""
        return tuple(spec.name for spec in self._specs if spec.rank != NOT_ARRAY)

    def __repr__(self):
        return f"<fastnn kernel {self.name}>"

    def __call__(self, *args, **kwargs):
        cdef Py_ssize_t i, n = len(self._specs)
        cdef _Spec spec
        cdef object call_dtype = None, first_flat = None
        arrays = list(args)
        for i in range(len(args), n):  # a leading parameter given by keyword, or left out
            spec = <_Spec>self._specs[i]
            if spec.name in kwargs:
                arrays.append(kwargs.pop(spec.name))
            elif spec.optional:
                arrays.append(None)
            else:
                raise TypeError(f"{self.name}() missing argument {spec.name!r}")
        for i in range(n):
            spec = <_Spec>self._specs[i]
            array = arrays[i]
            if spec.rank == NOT_ARRAY or (array is None and spec.optional):
                continue
            if not cnp.PyArray_Check(array):
                raise TypeError(f"{self.name}: {spec.name} must be a numpy.ndarray, "
                                f"got {type(array).__name__}")
            expected = spec.dtype if spec.dtype is not None else call_dtype
            if expected is None:
                typenum = cnp.PyArray_TYPE(<cnp.ndarray>array)
                if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
                    raise TypeError(f"{self.name}: {spec.name} must be float32 or float64, "
                                    f"got {array.dtype}")
                call_dtype = expected = array.dtype
            if not (cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(<cnp.ndarray>array),
                                              (<cnp.dtype>expected).type_num)
                    and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>array)):
                raise TypeError(f"{self.name}: {spec.name} has dtype {array.dtype}, "
                                f"expected {expected}")
            if spec.rank != ANY_RANK and cnp.PyArray_NDIM(<cnp.ndarray>array) != spec.rank:
                raise ValueError(f"{self.name}: {spec.name} has "
                                 f"{cnp.PyArray_NDIM(<cnp.ndarray>array)} dimensions, "
                                 f"expected {spec.rank}")
            if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>array)
                    and cnp.PyArray_ISALIGNED(<cnp.ndarray>array)):
                raise ValueError(f"{self.name}: {spec.name} must be C-contiguous and aligned")
            if spec.output and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>array):
                raise ValueError(f"{self.name}: {spec.name} is read-only")
            if spec.rank == ANY_RANK:
                if first_flat is None:
                    first_flat = array
                elif not cnp.PyArray_SAMESHAPE(<cnp.ndarray>array, <cnp.ndarray>first_flat):
                    raise ValueError(f"{self.name}: {spec.name} has shape {array.shape}, "
                                     f"expected {first_flat.shape}")
                arrays[i] = array.reshape(-1)
        if call_dtype is None:
            raise TypeError(f"{self.name}: no float array given")
        function = self._float32 if call_dtype.num == cnp.NPY_FLOAT else self._float64
        return function(*arrays, **kwargs)


def _view_2d(view_item[:, ::1] array):
    return array


def _view_1d(view_item[::1] array):
    return array


def _const_view_2d(const view_item[:, ::1] array):
    return array


def _const_view_1d(const view_item[::1] array):
    return array


def as_view(array, bint flat=False):
    """A typed memoryview of a C-contiguous float32, float64, int64 or uint8 ``array`` of one
    or two dimensions (of any shape, read as one run, when ``flat``): what a layer binds once
    and passes to ``Kernel.typed`` kernels. Read-only arrays give read-only views, which
    kernels refuse as outputs."""
    if flat:
        array = array.reshape(-1)
    if array.ndim == 2:
        return _view_2d(array) if array.flags.writeable else _const_view_2d(array)
    return _view_1d(array) if array.flags.writeable else _const_view_1d(array)

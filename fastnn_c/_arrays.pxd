# Helpers of the kernel convention (written out in fastnn_c/_kernel.pyx): shape checks that
# kernels run on their typed memoryviews, and the column split and scratch of threaded loops.
cimport numpy as cnp
from libc.limits cimport INT_MAX


cdef inline int float_type(object array, str kernel, str name) except -1:
    """NPY_FLOAT or NPY_DOUBLE: the type of a float32/float64 ``array``; TypeError otherwise."""
    if not cnp.PyArray_Check(array):
        raise TypeError(f"{kernel}: {name} must be a numpy.ndarray, got {type(array).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>array)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"{kernel}: {name} must be float32 or float64, got {array.dtype}")
    return typenum


cdef inline void* array_data(object array, str kernel, str name, int typenum, int ndim,
                             bint writable=False) except NULL:
    """The data of ``array`` after checking that it is an aligned, C-contiguous ndarray of
    ``typenum`` (or an equivalent type) in native byte order with ``ndim`` dimensions (any
    number if ndim < 0), and writable if asked."""
    # Casts in place rather than a typed local, and messages built only on failure: these
    # checks run for every array of every call.
    if not cnp.PyArray_Check(array):
        raise TypeError(f"{kernel}: {name} must be a numpy.ndarray, got {type(array).__name__}")
    if not (cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(<cnp.ndarray>array), typenum)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>array)):
        raise TypeError(f"{kernel}: {name} has dtype {array.dtype}, "
                        f"expected {cnp.PyArray_DescrFromType(typenum)}")
    if ndim >= 0 and cnp.PyArray_NDIM(<cnp.ndarray>array) != ndim:
        raise ValueError(f"{kernel}: {name} has {cnp.PyArray_NDIM(<cnp.ndarray>array)} "
                         f"dimensions, expected {ndim}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>array)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>array)):
        raise ValueError(f"{kernel}: {name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>array):
        raise ValueError(f"{kernel}: {name} is read-only")
    return cnp.PyArray_DATA(<cnp.ndarray>array)


cdef inline tuple _shape(Py_ssize_t d0, Py_ssize_t d1):
    if d1 < 0:
        return (d0,)
    return (d0, d1)


cdef inline int check_shape(object array, str kernel, str name, Py_ssize_t d0,
                            Py_ssize_t d1) except -1:
    """ValueError unless the checked ``array`` is (d0, d1), or (d0,) when d1 < 0."""
    if (cnp.PyArray_DIM(<cnp.ndarray>array, 0) != d0
            or (d1 >= 0 and cnp.PyArray_DIM(<cnp.ndarray>array, 1) != d1)):
        raise ValueError(f"{kernel}: {name} has shape {array.shape}, expected {_shape(d0, d1)}")
    return 0


cdef inline void* vector_data(object array, str kernel, str name, int typenum, Py_ssize_t length,
                              bint writable=False) except NULL:
    """``array_data`` for an array of shape (length,)."""
    cdef void* data = array_data(array, kernel, name, typenum, 1, writable)
    check_shape(array, kernel, name, length, -1)
    return data


cdef inline void* matrix_data(object array, str kernel, str name, int typenum, Py_ssize_t rows,
                              Py_ssize_t cols, bint writable=False) except NULL:
    """``array_data`` for an array of shape (rows, cols)."""
    cdef void* data = array_data(array, kernel, name, typenum, 2, writable)
    check_shape(array, kernel, name, rows, cols)
    return data


cdef inline void* flat_data(object array, str kernel, str name, int typenum, object like,
                            Py_ssize_t* size, bint writable=False) except NULL:
    """``array_data`` for an array of any shape read as one run of ``size[0]`` values; unless
    ``like`` (a checked array) is None, the array must have its shape."""
    cdef void* data = array_data(array, kernel, name, typenum, -1, writable)
    if like is not None and not cnp.PyArray_SAMESHAPE(<cnp.ndarray>array, <cnp.ndarray>like):
        raise ValueError(f"{kernel}: {name} has shape {array.shape}, expected {like.shape}")
    size[0] = cnp.PyArray_SIZE(<cnp.ndarray>array)
    return data


cdef inline int blas_sized(object array, str kernel, str name) except -1:
    """Check that every dimension of a checked ``array`` fits the BLAS's int."""
    cdef int k
    for k in range(cnp.PyArray_NDIM(<cnp.ndarray>array)):
        if cnp.PyArray_DIM(<cnp.ndarray>array, k) > INT_MAX:
            raise ValueError(f"{kernel}: {name} has {cnp.PyArray_DIM(<cnp.ndarray>array, k)} "
                             f"entries along axis {k}, more than the BLAS's {INT_MAX}")
    return 0


cdef inline Py_ssize_t dim(object array, int axis) noexcept:
    """Length of a checked ``array`` along ``axis``."""
    return cnp.PyArray_DIM(<cnp.ndarray>array, axis)




cdef inline int check_matrix(str kernel, str name, Py_ssize_t rows, Py_ssize_t cols,
                             Py_ssize_t expected_rows, Py_ssize_t expected_cols) except -1:
    """ValueError unless a matrix argument's shape (rows, cols) is the expected one."""
    if rows != expected_rows or cols != expected_cols:
        raise ValueError(f"{kernel}: {name} has shape {(rows, cols)}, "
                         f"expected {(expected_rows, expected_cols)}")
    return 0


cdef inline int check_vector(str kernel, str name, Py_ssize_t length,
                             Py_ssize_t expected) except -1:
    """ValueError unless a vector argument's length is the expected one."""
    if length != expected:
        raise ValueError(f"{kernel}: {name} has shape {(length,)}, expected {(expected,)}")
    return 0


cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)


# Teams: every parallel region of fastnn's kernels has the caller's whole thread count as its
# team (``prange(parts, num_threads=n_threads)``), and a kernel with fewer parts than threads
# leaves the rest idle. GCC's OpenMP ends the pool's threads that a smaller team leaves out
# and creates them again for the next larger team (tens of µs each on a 16-core VM): a team
# size that changed from region to region did that in every training step.

cdef enum:
    # Threads split a row's columns at multiples of this many values: 64 bytes of float32
    # (on aligned rows no cache line is written by two threads) and a multiple of every
    # build's vector width (a value falls in a vector or the scalar tail as in one thread's
    # pass, so it gets the same bits).
    COLUMN_UNIT = 16


cdef inline Py_ssize_t column_parts(Py_ssize_t d, int threads) noexcept nogil:
    """Blocks of whole COLUMN_UNITs of d columns for up to ``threads`` threads."""
    return max(1, min(<Py_ssize_t>threads, d // COLUMN_UNIT))


cdef inline Py_ssize_t column_start(Py_ssize_t d, Py_ssize_t parts,
                                    Py_ssize_t part) noexcept nogil:
    """First column of block ``part`` of ``parts`` (block ``parts`` starts at d)."""
    cdef Py_ssize_t units = (d + COLUMN_UNIT - 1) // COLUMN_UNIT
    return min(d, part * units // parts * COLUMN_UNIT)


cdef inline void* aligned_scratch(size_t nbytes) noexcept nogil:
    """``nbytes`` of scratch starting on a 64-byte cache line (NULL if out of memory; free()
    it): threads given parts at separate multiples of 64 bytes never write one line."""
    cdef void* p = NULL
    if posix_memalign(&p, 64, nbytes if nbytes > 0 else 1) != 0:
        return NULL
    return p

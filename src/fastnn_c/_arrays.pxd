# Argument checks for kernels that take NumPy arrays and work on their data pointers.
# A typed-memoryview argument costs about 110 ns to acquire, and a fused def function about
# 130 ns more to pick its specialization: about 5 us of a 160 us batch-32 training step went
# there. These checks cost a few ns per array. A kernel using them calls `float_type` on its
# first array and `array_data` on each array, then reads shapes with `dim`; its module
# calls `cnp.import_array()`. Outputs must not overlap inputs unless a kernel says so.
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
    ``typenum`` (NPY_FLOAT, NPY_DOUBLE or NPY_INT64, or an equivalent type) in native byte
    order with ``ndim`` dimensions (any number if ndim < 0), and writable if asked."""
    if not cnp.PyArray_Check(array):
        raise TypeError(f"{kernel}: {name} must be a numpy.ndarray, got {type(array).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>array
    if not (cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(a), typenum)
            and cnp.PyArray_ISNOTSWAPPED(a)):
        expected = {cnp.NPY_FLOAT: "float32", cnp.NPY_DOUBLE: "float64"}.get(typenum, "int64")
        raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected {expected}")
    if ndim >= 0 and cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{kernel}: {name} has {cnp.PyArray_NDIM(a)} dimensions, expected {ndim}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)):
        raise ValueError(f"{kernel}: {name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{kernel}: {name} is read-only")
    return cnp.PyArray_DATA(a)


cdef inline int blas_sized(object array, str kernel, str name) except -1:
    """Check that every dimension of a checked ``array`` fits the BLAS's int."""
    cdef int k
    for k in range(cnp.PyArray_NDIM(<cnp.ndarray>array)):
        if cnp.PyArray_DIM(<cnp.ndarray>array, k) > INT_MAX:
            raise ValueError(f"{kernel}: {name} has {cnp.PyArray_DIM(<cnp.ndarray>array, k)} "
                             f"entries along axis {k}, more than the BLAS's {INT_MAX}")
    return 0


cdef inline void* flat_data(object array, str kernel, str name, int typenum, object like,
                            Py_ssize_t* size, bint writable=False) except NULL:
    """``array_data`` for an array of any shape read as one run of ``size[0]`` values; unless
    ``like`` (a checked array) is None, the array must have its shape."""
    cdef void* data = array_data(array, kernel, name, typenum, -1, writable)
    if like is not None and not cnp.PyArray_SAMESHAPE(<cnp.ndarray>array, <cnp.ndarray>like):
        raise ValueError(f"{kernel}: {name} has shape {array.shape}, expected {like.shape}")
    size[0] = cnp.PyArray_SIZE(<cnp.ndarray>array)
    return data


cdef inline Py_ssize_t dim(object array, int axis) noexcept:
    """Length of a checked ``array`` along ``axis``."""
    return cnp.PyArray_DIM(<cnp.ndarray>array, axis)

# Helpers of the kernel convention (written out in fastnn_c/_kernel.pyx): shape checks that
# kernels run on their typed memoryviews, and the column split and scratch of threaded loops.
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

# The micro-kernel's C interface (_packed_gemm.h) and the one loop every user of it shares:
# the activation applied to whole rows of a product's output. Imported by the three dense
# families: dense.pyx (training products), packed.pyx (packed small batches) and stack.pyx
# (the whole-network inference pass).
from cython cimport floating

from fastnn_c._activation cimport IDENTITY, activation_forward_run
from fastnn_c._arrays cimport COLUMN_UNIT

cdef extern from "_packed_gemm.h" nogil:
    const int FNN_MR
    const int FNN_NR_FLOAT
    const int FNN_NR_DOUBLE
    size_t fnn_packed_size_float(size_t K, size_t N)
    size_t fnn_packed_size_double(size_t K, size_t N)
    void fnn_pack_float(const float* W, ptrdiff_t K, ptrdiff_t N, float* packed)
    void fnn_pack_double(const double* W, ptrdiff_t K, ptrdiff_t N, double* packed)
    void fnn_packed_gemm_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                               const float* packed, const float* bias, float* Y)
    void fnn_packed_gemm_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                const double* packed, const double* bias, double* Y)
    void fnn_packed_gemm_columns_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                                       const float* packed, const float* bias, float* Y,
                                       ptrdiff_t begin, ptrdiff_t end)
    void fnn_packed_gemm_columns_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                        const double* packed, const double* bias, double* Y,
                                        ptrdiff_t begin, ptrdiff_t end)
    void fnn_rowmajor_gemm_columns_float(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const float* X,
                                         ptrdiff_t xr, ptrdiff_t xk, const float* W,
                                         const float* bias, float alpha, float beta, float* Y,
                                         float* tail, float* part, ptrdiff_t begin,
                                         ptrdiff_t end)
    void fnn_rowmajor_gemm_columns_double(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const double* X,
                                          ptrdiff_t xr, ptrdiff_t xk, const double* W,
                                          const double* bias, double alpha, double beta,
                                          double* Y, double* tail, double* part,
                                          ptrdiff_t begin, ptrdiff_t end)
    size_t fnn_rowmajor_scratch_float(ptrdiff_t K, ptrdiff_t N)
    size_t fnn_rowmajor_scratch_double(ptrdiff_t K, ptrdiff_t N)
    float fnn_read_sum_float(const float* values, ptrdiff_t n)
    double fnn_read_sum_double(const double* values, ptrdiff_t n)


cdef inline void activate_rows(floating* Y, Py_ssize_t ldy, Py_ssize_t m, Py_ssize_t width,
                               int kind, floating alpha) noexcept nogil:
    """Y[i, 0:width] := f(Y[i, 0:width]) for the m rows of a product's output (ldy apart),
    inside the micro-kernel's drivers. Whole rows of whole COLUMN_UNITs go in one run (a call
    per row cost ~2% of a small-batch prediction): each value then takes the vector code
    path it takes in its row's own run, whatever the rows around it; a row with a scalar
    tail keeps a run of its own."""
    cdef Py_ssize_t i
    if kind == IDENTITY:
        return
    if width == ldy and width % COLUMN_UNIT == 0:
        activation_forward_run(kind, Y, Y, m * width, alpha)
        return
    for i in range(m):
        activation_forward_run(kind, &Y[i * ldy], &Y[i * ldy], width, alpha)

/* fastnn's GEMM micro-kernel: every product of a dense layer that does not go to the BLAS.
 *
 * Three callers: the packed small-batch product (fastnn_c/packed.pyx: W packed once into
 * column panels, each call streams them once per block of MR rows, on the calling thread),
 * the inference pass (fastnn_c/stack.pyx: the same packed panels, blocks of rows or panels
 * of columns over OpenMP threads), and the training products (fastnn_c/dense.pyx, through
 * fnn_rowmajor_gemm_columns: W, Xᵀ or dY read where they are, the panels packed as they
 * are read, columns and rows split over OpenMP threads by the caller). A BLAS GEMM re-packs
 * all of W on every call; at the MLP shapes this one keeps level with it per core and needs
 * no second thread pool. benchmarks/README.md has the measurements behind the layout.
 *
 * Packed layout: panels of NR = two SIMD vectors of columns (32 float32 columns with
 * AVX-512, 16 with AVX2, 8 with SSE2; half as many float64 columns); panel p holds
 * W[k, p*NR + j] at packed[p*K*NR + k*NR + j], and the last panel is zero-padded. The layout
 * depends on the SIMD level of the module that packed it.
 *
 * Micro-kernel: an MR x NR tile of Y held in registers (MR = 12 rows with AVX-512, 6 below),
 * one pass over k with two panel loads and MR broadcasts per step, so a batch of up to MR
 * rows reads the weights once; batches of up to MR2 rows take tiles two panels wide, so
 * that a single row still has four independent FMA chains in flight, and a panel whose
 * valid columns fit one vector (a 10-class output layer) takes tiles one vector wide. A
 * block's last two row tiles are evened out (16 rows as 8 + 8). Every element is
 * summed over k in order whatever the tile it falls in, so a row's result does not depend
 * on the batch around it (scikit-learn checks that predictions are invariant to sample
 * order and to batching). The bias is added as the tile is stored.
 *
 * Written with GCC/Clang vector extensions, compiled at each SIMD level of the build; other
 * compilers get a plain loop with the same layout.
 */
#ifndef FNN_PACKED_GEMM_H
#define FNN_PACKED_GEMM_H

#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#define FNN_VBYTES 64
#elif defined(__AVX__)
#define FNN_VBYTES 32
#else
#define FNN_VBYTES 16
#endif

/* Rows per tile: MR rows x 2 vectors of accumulators, plus 3 more registers, must fit the
 * register file (32 vector registers with AVX-512, 16 below it); MR2 rows x 4 vectors (two
 * panels) likewise, for the smallest batches. */
#if defined(__AVX512F__)
#define FNN_MR 12
#define FNN_MR2 3
#else
#define FNN_MR 6
#define FNN_MR2 2
#endif
/* Bytes of X a block of rows of the row-major product keeps in cache while every panel of
 * the call's columns passes over it (fnn_rowmajor_gemm_columns): well inside one core's L2. */
#define FNN_BLOCK_BYTES (256 * 1024)
/* Length of the chunks of k a long product runs in (fnn_rowmajor_gemm_columns): a panel's
 * chunk is FNN_KC x FNN_NR values (64 KB of float32 with AVX-512). */
#define FNN_KC 512
#define FNN_NR_FLOAT (2 * FNN_VBYTES / 4)
#define FNN_NR_DOUBLE (2 * FNN_VBYTES / 8)

/* Every module includes all of it and uses a part (dense.pyx the row-major products,
 * packed.pyx and stack.pyx the packed ones): unused functions are not worth a warning. */
#if defined(__GNUC__)
#define FNN_API static __attribute__((unused))
#else
#define FNN_API static
#endif

#if defined(__GNUC__)
#define FNN_VECTOR_EXTENSIONS 1
#define FNN_ALWAYS_INLINE static inline __attribute__((always_inline))
typedef float fnn_vfloat __attribute__((vector_size(FNN_VBYTES)));
typedef double fnn_vdouble __attribute__((vector_size(FNN_VBYTES)));
#else
#define FNN_ALWAYS_INLINE static inline
#endif

#if defined(__FMA__) && defined(__GNUC__)
#define FNN_FMA_FLOAT(a, b, c) __builtin_fmaf(a, b, c)
#define FNN_FMA_DOUBLE(a, b, c) __builtin_fma(a, b, c)
#else
#define FNN_FMA_FLOAT(a, b, c) ((a) * (b) + (c))
#define FNN_FMA_DOUBLE(a, b, c) ((a) * (b) + (c))
#endif

#define FNN_T float
#define FNN_VT fnn_vfloat
#define FNN_NR FNN_NR_FLOAT
#define FNN_FMA FNN_FMA_FLOAT
#define FNN_NAME(name) name##_float
#include "_packed_gemm_body.h"
#undef FNN_T
#undef FNN_VT
#undef FNN_NR
#undef FNN_FMA
#undef FNN_NAME

#define FNN_T double
#define FNN_VT fnn_vdouble
#define FNN_NR FNN_NR_DOUBLE
#define FNN_FMA FNN_FMA_DOUBLE
#define FNN_NAME(name) name##_double
#include "_packed_gemm_body.h"
#undef FNN_T
#undef FNN_VT
#undef FNN_NR
#undef FNN_FMA
#undef FNN_NAME

#endif

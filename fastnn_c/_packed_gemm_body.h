/* One float type's packing and products; included by _packed_gemm.h once per
 * type with FNN_T (the scalar), FNN_VT (its SIMD vector), FNN_NR (panel width) and
 * FNN_NAME (the name suffix) defined. */

/* Elements of W (K x N) packed: K * N rounded up to whole panels. */
static inline size_t FNN_NAME(fnn_packed_size)(size_t K, size_t N) {
    return K * ((N + FNN_NR - 1) / FNN_NR) * FNN_NR;
}

/* packed := W (K x N, row-major) in panels of FNN_NR columns, the last one zero-padded. */
FNN_API void FNN_NAME(fnn_pack)(const FNN_T* W, ptrdiff_t K, ptrdiff_t N, FNN_T* packed) {
    for (ptrdiff_t j0 = 0; j0 < N; j0 += FNN_NR) {
        ptrdiff_t width = N - j0 < FNN_NR ? N - j0 : FNN_NR;
        for (ptrdiff_t k = 0; k < K; k++) {
            FNN_T* row = packed + j0 * K + k * FNN_NR;
            memcpy(row, W + k * N + j0, (size_t)width * sizeof(FNN_T));
            for (ptrdiff_t j = width; j < FNN_NR; j++)
                row[j] = 0;
        }
    }
}

/* alpha a + beta y (y unread when beta = 0) with one rounding order wherever it is
 * inlined: where the build has FMA, fma(alpha, a, beta y) by name; without it the compiler
 * cannot fuse. (Left to the compiler, it fused in one inlined copy of this code and not in
 * another, and the fused SGD step W - lr X^T dY differed in the last bit between one
 * thread and two.) */
static inline FNN_T FNN_NAME(fnn_scaled_sum)(FNN_T alpha, FNN_T a, FNN_T beta, FNN_T y) {
    if (beta == 0)
        return alpha * a;
    return FNN_FMA(alpha, a, beta * y);
}

/* Partial sums of a product whose k runs in chunks (fnn_rowmajor_gemm_columns): a tile
 * starts from its sums in ``part`` (row r at part + r * ld) when ``resume``, and when
 * ``suspend`` stores them there, whole panels wide, instead of finishing into Y. The
 * accumulators go through memory in their own type, so the sums are those of one pass. */
typedef struct {
    FNN_T* part;
    ptrdiff_t ld;
    int resume, suspend;
} FNN_NAME(fnn_chunk);

static inline FNN_NAME(fnn_chunk) FNN_NAME(fnn_chunk_rows)(FNN_NAME(fnn_chunk) c, ptrdiff_t i) {
    if (c.part != NULL)
        c.part += i * c.ld;
    return c;
}

#ifdef FNN_VECTOR_EXTENSIONS
#define FNN_V ((int)(sizeof(FNN_VT) / sizeof(FNN_T)))

FNN_ALWAYS_INLINE FNN_VT FNN_NAME(fnn_load)(const FNN_T* p) {
    FNN_VT v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Y[0:mr, 0:cols] := bias + X[0:mr, :] times nv SIMD vectors of packed columns: the first
 * half of one panel (nv = 1), one panel (2) or two (4), panels of K rows of FNN_NR columns
 * (rows ldp apart, panels pstride apart), the last panel's first ``width`` columns valid;
 * X[r, k] is X[r * xr + k * xk]. With alpha != 1 or beta != 0 (and no bias) the tile is
 * stored as Y := alpha (X P) + beta Y instead. mr and nv are constants after inlining, so
 * the accumulators live in registers. Every element is summed over k in order, whatever the
 * tile's shape: a row's result does not depend on the rows or panels computed beside it. */
FNN_ALWAYS_INLINE void FNN_NAME(fnn_tile)(int mr, int nv, ptrdiff_t K, const FNN_T* X,
                                          ptrdiff_t xr, ptrdiff_t xk, const FNN_T* P,
                                          ptrdiff_t ldp, ptrdiff_t pstride, const FNN_T* bias,
                                          FNN_T alpha, FNN_T beta, FNN_T* Y, ptrdiff_t ldy,
                                          int width, FNN_NAME(fnn_chunk) c) {
    FNN_VT acc[FNN_MR][4];
    FNN_VT zero = {0};
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = c.resume ? FNN_NAME(fnn_load)(c.part + r * c.ld + v * FNN_V) : zero;
    for (ptrdiff_t k = 0; k < K; k++) {
        FNN_VT b[4];
        for (int v = 0; v < nv; v++)
            b[v] = FNN_NAME(fnn_load)(P + v / 2 * pstride + k * ldp + v % 2 * FNN_V);
        for (int r = 0; r < mr; r++) {
            FNN_T a = X[r * xr + k * xk];
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * b[v];
        }
    }
    if (c.suspend) {
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++)
                memcpy(c.part + r * c.ld + v * FNN_V, &acc[r][v], sizeof(FNN_VT));
        return;
    }
    int cols = (nv - 1) / 2 * FNN_NR + width;
    FNN_T out[4 * FNN_V] = {0};  /* only the first cols are read */
    for (int r = 0; r < mr; r++) {
        FNN_T* y = Y + r * ldy;
        if (cols == nv * FNN_V && alpha == 1 && beta == 0) {  /* whole vectors, as they are */
            for (int v = 0; v < nv; v++) {
                FNN_VT sum = acc[r][v];
                if (bias != NULL)
                    sum += FNN_NAME(fnn_load)(bias + v * FNN_V);
                memcpy(y + v * FNN_V, &sum, sizeof sum);
            }
            continue;
        }
        for (int v = 0; v < nv; v++)
            memcpy(out + v * FNN_V, &acc[r][v], sizeof(FNN_VT));
        if (alpha != 1 || beta != 0) {
            for (int j = 0; j < cols; j++)
                y[j] = FNN_NAME(fnn_scaled_sum)(alpha, out[j], beta, y[j]);
            continue;
        }
        if (bias != NULL)
            for (int j = 0; j < cols; j++)
                out[j] += bias[j];
        memcpy(y, out, (size_t)cols * sizeof(FNN_T));
    }
}

#define FNN_TILE_CASE(rows, nv) \
    case rows: FNN_NAME(fnn_tile)(rows, nv, K, X, xr, xk, P, ldp, pstride, bias, alpha, beta, \
                                  Y, N, width, c); break;
#define FNN_TILE_CASES(nv) \
    FNN_TILE_CASE(1, nv) FNN_TILE_CASE(2, nv) FNN_TILE_CASE(3, nv) FNN_TILE_CASE(4, nv) \
    FNN_TILE_CASE(5, nv) FNN_TILE_CASE(6, nv)
#define FNN_TILE_CASES_MR(nv) \
    FNN_TILE_CASE(7, nv) FNN_TILE_CASE(8, nv) FNN_TILE_CASE(9, nv) FNN_TILE_CASE(10, nv) \
    FNN_TILE_CASE(11, nv) FNN_TILE_CASE(12, nv)

/* One tile of m <= FNN_MR rows and nv vectors (m and nv constants per case, so each call
 * specializes; nv = 4 for at most FNN_MR2 rows). */
FNN_API void FNN_NAME(fnn_tile_rows)(int m, int nv, ptrdiff_t K, const FNN_T* X, ptrdiff_t xr,
                                    ptrdiff_t xk, const FNN_T* P, ptrdiff_t ldp,
                                    ptrdiff_t pstride, const FNN_T* bias, FNN_T alpha,
                                    FNN_T beta, FNN_T* Y, ptrdiff_t N, int width,
                                    FNN_NAME(fnn_chunk) c) {
    if (nv == 4) {
        switch (m) {
            FNN_TILE_CASE(1, 4)
            FNN_TILE_CASE(2, 4)
#if FNN_MR2 > 2
            FNN_TILE_CASE(3, 4)
#endif
            default: break;
        }
    } else if (nv == 2) {
        switch (m) {
            FNN_TILE_CASES(2)
#if FNN_MR > 6
            FNN_TILE_CASES_MR(2)
#endif
            default: break;
        }
    } else {
        switch (m) {
            FNN_TILE_CASES(1)
#if FNN_MR > 6
            FNN_TILE_CASES_MR(1)
#endif
            default: break;
        }
    }
}
#undef FNN_TILE_CASES_MR
#undef FNN_TILE_CASES
#undef FNN_TILE_CASE

/* Y[0:m, 0:width] of one panel (Y's rows N apart): tiles of FNN_MR rows, the last two
 * evened out (16 rows as 8 + 8, not 12 + 4: a short tile has too few FMA chains to hide
 * their latency); half a panel's vectors where ``width`` fits in one. */
FNN_API void FNN_NAME(fnn_panel_rows)(ptrdiff_t m, ptrdiff_t K, const FNN_T* X, ptrdiff_t xr,
                                     ptrdiff_t xk, const FNN_T* P, ptrdiff_t ldp,
                                     const FNN_T* bias, FNN_T alpha, FNN_T beta, FNN_T* Y,
                                     ptrdiff_t N, int width, FNN_NAME(fnn_chunk) c) {
    int nv = width <= FNN_V ? 1 : 2;
    ptrdiff_t i = 0;
    while (i < m) {
        int rows = m - i < FNN_MR ? (int)(m - i) : FNN_MR;
        if (m - i > FNN_MR && m - i < 2 * FNN_MR)
            rows = (int)(m - i + 1) / 2;
        if (rows == FNN_MR && nv == 2)
            FNN_NAME(fnn_tile)(FNN_MR, 2, K, X + i * xr, xr, xk, P, ldp, 0, bias, alpha, beta,
                               Y + i * N, N, width, FNN_NAME(fnn_chunk_rows)(c, i));
        else
            FNN_NAME(fnn_tile_rows)(rows, nv, K, X + i * xr, xr, xk, P, ldp, 0, bias, alpha,
                                    beta, Y + i * N, N, width, FNN_NAME(fnn_chunk_rows)(c, i));
        i += rows;
    }
}
/* Σ values: one pass reading n values, four vector accumulators (the weight-read floor). */
FNN_API FNN_T FNN_NAME(fnn_read_sum)(const FNN_T* values, ptrdiff_t n) {
    FNN_VT acc[4] = {{0}};
    ptrdiff_t i = 0;
    for (; i + 4 * FNN_V <= n; i += 4 * FNN_V)
        for (int s = 0; s < 4; s++)
            acc[s] += FNN_NAME(fnn_load)(values + i + s * FNN_V);
    FNN_T lanes[FNN_V], total = 0;
    acc[0] += acc[1] + acc[2] + acc[3];
    memcpy(lanes, &acc[0], sizeof lanes);
    for (int l = 0; l < FNN_V; l++)
        total += lanes[l];
    for (; i < n; i++)
        total += values[i];
    return total;
}
#undef FNN_V

#else  /* no vector extensions: the same layout, plain loops */
FNN_API void FNN_NAME(fnn_panel_rows)(ptrdiff_t m, ptrdiff_t K, const FNN_T* X, ptrdiff_t xr,
                                     ptrdiff_t xk, const FNN_T* P, ptrdiff_t ldp,
                                     const FNN_T* bias, FNN_T alpha, FNN_T beta, FNN_T* Y,
                                     ptrdiff_t N, int width, FNN_NAME(fnn_chunk) c) {
    for (ptrdiff_t i = 0; i < m; i++) {
        FNN_T out[FNN_NR];
        for (int j = 0; j < FNN_NR; j++)
            out[j] = c.resume ? c.part[i * c.ld + j] : 0;
        for (ptrdiff_t k = 0; k < K; k++)
            for (int j = 0; j < width; j++)
                out[j] += X[i * xr + k * xk] * P[k * ldp + j];
        if (c.suspend) {
            memcpy(c.part + i * c.ld, out, sizeof out);
            continue;
        }
        for (int j = 0; j < width; j++) {
            FNN_T v = FNN_NAME(fnn_scaled_sum)(alpha, out[j], beta, Y[i * N + j]);
            Y[i * N + j] = bias != NULL ? v + bias[j] : v;
        }
    }
}

FNN_API FNN_T FNN_NAME(fnn_read_sum)(const FNN_T* values, ptrdiff_t n) {
    FNN_T total = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        total += values[i];
    return total;
}
#endif

/* Rows per block of a product over K: about FNN_BLOCK_BYTES of X, whole tiles. Each block
 * meets every panel before the next starts, so that X is read from memory once rather than
 * once per panel; the tiles and their sums are the same as without blocks. */
FNN_API ptrdiff_t FNN_NAME(fnn_block_rows)(ptrdiff_t K) {
    ptrdiff_t block = FNN_BLOCK_BYTES / ((K > 0 ? K : 1) * (ptrdiff_t)sizeof(FNN_T)) / FNN_MR;
    return (block > 1 ? block : 1) * FNN_MR;
}

/* Y[:, begin:end] (Y is m x N) := X (m x K) W + bias on those columns, W packed by fnn_pack;
 * begin is a multiple of FNN_NR; bias may be NULL. Up to FNN_MR2 rows take two panels per
 * tile, so that a single row still has four independent chains of FMAs; more go in blocks
 * of rows (fnn_block_rows). */
FNN_API void FNN_NAME(fnn_packed_gemm_columns)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N,
                                              const FNN_T* X, const FNN_T* packed,
                                              const FNN_T* bias, FNN_T* Y, ptrdiff_t begin,
                                              ptrdiff_t end) {
#ifdef FNN_VECTOR_EXTENSIONS
    if (m <= FNN_MR2) {
        for (ptrdiff_t j0 = begin; j0 < end; j0 += 2 * FNN_NR) {
            int np = end - j0 > FNN_NR ? 2 : 1;
            ptrdiff_t last = j0 + (np - 1) * FNN_NR;
            int width = end - last < FNN_NR ? (int)(end - last) : FNN_NR;
            int nv = np == 2 ? 4 : width <= FNN_NR / 2 ? 1 : 2;
            FNN_NAME(fnn_tile_rows)((int)m, nv, K, X, K, 1, packed + j0 * K, FNN_NR, K * FNN_NR,
                                    bias == NULL ? NULL : bias + j0, 1, 0, Y + j0, N, width,
                                    (FNN_NAME(fnn_chunk)){0});
        }
        return;
    }
#endif
    ptrdiff_t block = FNN_NAME(fnn_block_rows)(K);
    for (ptrdiff_t i0 = 0; i0 < m; i0 += block) {
        ptrdiff_t rows = m - i0 < block ? m - i0 : block;
        for (ptrdiff_t j0 = begin; j0 < end; j0 += FNN_NR) {
            int width = end - j0 < FNN_NR ? (int)(end - j0) : FNN_NR;
            FNN_NAME(fnn_panel_rows)(rows, K, X + i0 * K, K, 1, packed + j0 * K, FNN_NR,
                                     bias == NULL ? NULL : bias + j0, 1, 0, Y + i0 * N + j0, N,
                                     width, (FNN_NAME(fnn_chunk)){0});
        }
    }
}

/* Y (m x N) := X (m x K) W + bias, W packed by fnn_pack; bias may be NULL. */
FNN_API void FNN_NAME(fnn_packed_gemm)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const FNN_T* X,
                                      const FNN_T* packed, const FNN_T* bias, FNN_T* Y) {
    FNN_NAME(fnn_packed_gemm_columns)(m, K, N, X, packed, bias, Y, 0, N);
}

/* Scratch (elements) fnn_rowmajor_gemm_columns needs for partial sums, besides ``tail``:
 * none unless K is long enough to run in chunks of FNN_KC. */
FNN_API size_t FNN_NAME(fnn_rowmajor_scratch)(ptrdiff_t K, ptrdiff_t N) {
    if (K <= 2 * FNN_KC)
        return 0;
    return (size_t)(FNN_NAME(fnn_block_rows)(FNN_KC) * ((N + FNN_NR - 1) / FNN_NR * FNN_NR));
}

/* Columns begin .. end (begin a multiple of FNN_NR) of Y (m x N, rows N apart) :=
 * alpha X W + beta Y (+ bias when alpha = 1 and beta = 0), from W as it is (K x N,
 * row-major), X[i, k] at X[i * xr + k * xk]: whole panels are read in place, FNN_NR columns
 * of each row; a last, partial panel is packed into ``tail`` (K * FNN_NR values). With
 * xr = K, xk = 1 this is X W; with X = A (K x m) and xr = 1, xk = m it is A^T W, the weight
 * gradient X^T dY of a dense layer. The rows go in blocks (fnn_block_rows); past 2 FNN_KC,
 * k runs in chunks of FNN_KC, each block of rows keeping its partial sums in ``part``
 * (fnn_rowmajor_scratch elements), so that the chunk of X and the panels' chunks stay in
 * cache; every element is still summed over k in order. */
FNN_API void FNN_NAME(fnn_rowmajor_gemm_columns)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N,
                                                const FNN_T* X, ptrdiff_t xr, ptrdiff_t xk,
                                                const FNN_T* W, const FNN_T* bias, FNN_T alpha,
                                                FNN_T beta, FNN_T* Y, FNN_T* tail, FNN_T* part,
                                                ptrdiff_t begin, ptrdiff_t end) {
    ptrdiff_t full_end = begin + (end - begin) / FNN_NR * FNN_NR;
    ptrdiff_t kc = K > 2 * FNN_KC ? FNN_KC : K;
    ptrdiff_t block = FNN_NAME(fnn_block_rows)(kc);
    ptrdiff_t ld = (end - begin + FNN_NR - 1) / FNN_NR * FNN_NR;
    if (full_end < end)
        for (ptrdiff_t k = 0; k < K; k++) {
            memcpy(tail + k * FNN_NR, W + k * N + full_end,
                   (size_t)(end - full_end) * sizeof(FNN_T));
            for (ptrdiff_t j = end - full_end; j < FNN_NR; j++)
                tail[k * FNN_NR + j] = 0;
        }
    for (ptrdiff_t i0 = 0; i0 < m; i0 += block) {
        ptrdiff_t rows = m - i0 < block ? m - i0 : block;
        const FNN_T* Xb = X + i0 * xr;
        FNN_T* Yb = Y + i0 * N;
        for (ptrdiff_t k0 = 0; k0 < K; k0 += kc) {
            ptrdiff_t kn = K - k0 < kc ? K - k0 : kc;
            FNN_NAME(fnn_chunk) c = {kc < K ? part : NULL, ld, k0 > 0, k0 + kn < K};
            for (ptrdiff_t j0 = begin; j0 < full_end; j0 += FNN_NR) {
                FNN_NAME(fnn_chunk) cj = c;
                if (cj.part != NULL)
                    cj.part += j0 - begin;
                FNN_NAME(fnn_panel_rows)(rows, kn, Xb + k0 * xk, xr, xk, W + k0 * N + j0, N,
                                         bias == NULL ? NULL : bias + j0, alpha, beta, Yb + j0,
                                         N, FNN_NR, cj);
            }
            if (full_end < end) {
                if (c.part != NULL)
                    c.part += full_end - begin;
                FNN_NAME(fnn_panel_rows)(rows, kn, Xb + k0 * xk, xr, xk, tail + k0 * FNN_NR,
                                         FNN_NR, bias == NULL ? NULL : bias + full_end, alpha,
                                         beta, Yb + full_end, N, (int)(end - full_end), c);
            }
        }
    }
}

/* One float type's packing and small-batch product; included by _packed_gemm.h once per
 * type with FNN_T (the scalar), FNN_VT (its SIMD vector), FNN_NR (panel width) and
 * FNN_NAME (the name suffix) defined. */

/* Elements of W (K x N) packed: K * N rounded up to whole panels. */
static inline size_t FNN_NAME(fnn_packed_size)(size_t K, size_t N) {
    return K * ((N + FNN_NR - 1) / FNN_NR) * FNN_NR;
}

/* packed := W (K x N, row-major) in panels of FNN_NR columns, the last one zero-padded. */
static void FNN_NAME(fnn_pack)(const FNN_T* W, ptrdiff_t K, ptrdiff_t N, FNN_T* packed) {
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

#ifdef FNN_VECTOR_EXTENSIONS
#define FNN_V ((int)(sizeof(FNN_VT) / sizeof(FNN_T)))

FNN_ALWAYS_INLINE FNN_VT FNN_NAME(fnn_load)(const FNN_T* p) {
    FNN_VT v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Y[0:mr, 0:width] := bias + X[0:mr, :] P, P one panel (K rows of FNN_NR columns, ldp
 * apart); mr is a constant after inlining, so the accumulators live in registers. */
FNN_ALWAYS_INLINE void FNN_NAME(fnn_tile)(int mr, ptrdiff_t K, const FNN_T* X,
                                          ptrdiff_t ldx, const FNN_T* P, ptrdiff_t ldp,
                                          const FNN_T* bias,
                                          FNN_T* Y, ptrdiff_t ldy, int width) {
    enum { splits = FNN_SPLITS };
    FNN_VT acc[FNN_SPLITS][FNN_MR][2];
    FNN_VT zero = {0};
    for (int s = 0; s < splits; s++)
        for (int r = 0; r < mr; r++)
            acc[s][r][0] = acc[s][r][1] = zero;
    ptrdiff_t k = 0;
    for (; k + splits <= K; k += splits) {
        for (int s = 0; s < splits; s++) {
            FNN_VT b0 = FNN_NAME(fnn_load)(P + (k + s) * ldp);
            FNN_VT b1 = FNN_NAME(fnn_load)(P + (k + s) * ldp + FNN_V);
            for (int r = 0; r < mr; r++) {
                FNN_T a = X[r * ldx + k + s];
                acc[s][r][0] += a * b0;
                acc[s][r][1] += a * b1;
            }
        }
    }
    for (; k < K; k++) {
        FNN_VT b0 = FNN_NAME(fnn_load)(P + k * ldp);
        FNN_VT b1 = FNN_NAME(fnn_load)(P + k * ldp + FNN_V);
        for (int r = 0; r < mr; r++) {
            FNN_T a = X[r * ldx + k];
            acc[0][r][0] += a * b0;
            acc[0][r][1] += a * b1;
        }
    }
    for (int s = 1; s < splits; s++)
        for (int r = 0; r < mr; r++) {
            acc[0][r][0] += acc[s][r][0];
            acc[0][r][1] += acc[s][r][1];
        }
    FNN_T out[2 * FNN_V];
    for (int r = 0; r < mr; r++) {
        memcpy(out, &acc[0][r][0], sizeof(FNN_VT));
        memcpy(out + FNN_V, &acc[0][r][1], sizeof(FNN_VT));
        if (bias != NULL)
            for (int j = 0; j < width; j++)
                out[j] += bias[j];
        memcpy(Y + r * ldy, out, (size_t)width * sizeof(FNN_T));
    }
}

static void FNN_NAME(fnn_panel_rows)(ptrdiff_t m, ptrdiff_t K, const FNN_T* X, const FNN_T* P,
                                     ptrdiff_t ldp, const FNN_T* bias, FNN_T* Y, ptrdiff_t N,
                                     int width) {
    ptrdiff_t i = 0;
    for (; i + FNN_MR <= m; i += FNN_MR)
        FNN_NAME(fnn_tile)(FNN_MR, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width);
    switch (m - i) {  /* the constants let each call specialize */
        case 1: FNN_NAME(fnn_tile)(1, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width); break;
        case 2: FNN_NAME(fnn_tile)(2, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width); break;
#if FNN_MR > 3
        case 3: FNN_NAME(fnn_tile)(3, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width); break;
        case 4: FNN_NAME(fnn_tile)(4, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width); break;
        case 5: FNN_NAME(fnn_tile)(5, K, X + i * K, K, P, ldp, bias, Y + i * N, N, width); break;
#endif
        default: break;
    }
}
/* Σ values: one pass reading n values, four vector accumulators (the weight-read floor). */
static FNN_T FNN_NAME(fnn_read_sum)(const FNN_T* values, ptrdiff_t n) {
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
static void FNN_NAME(fnn_panel_rows)(ptrdiff_t m, ptrdiff_t K, const FNN_T* X, const FNN_T* P,
                                     ptrdiff_t ldp, const FNN_T* bias, FNN_T* Y, ptrdiff_t N,
                                     int width) {
    for (ptrdiff_t i = 0; i < m; i++) {
        FNN_T out[FNN_NR];
        for (int j = 0; j < FNN_NR; j++)
            out[j] = bias != NULL && j < width ? bias[j] : 0;
        for (ptrdiff_t k = 0; k < K; k++)
            for (int j = 0; j < width; j++)
                out[j] += X[i * K + k] * P[k * ldp + j];
        memcpy(Y + i * N, out, (size_t)width * sizeof(FNN_T));
    }
}

static FNN_T FNN_NAME(fnn_read_sum)(const FNN_T* values, ptrdiff_t n) {
    FNN_T total = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        total += values[i];
    return total;
}
#endif

/* Y[:, begin:end] (Y is m x N) := X (m x K) W + bias on those columns, W packed by fnn_pack;
 * begin is a multiple of FNN_NR; bias may be NULL. */
static void FNN_NAME(fnn_packed_gemm_columns)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N,
                                              const FNN_T* X, const FNN_T* packed,
                                              const FNN_T* bias, FNN_T* Y, ptrdiff_t begin,
                                              ptrdiff_t end) {
    for (ptrdiff_t j0 = begin; j0 < end; j0 += FNN_NR) {
        int width = end - j0 < FNN_NR ? (int)(end - j0) : FNN_NR;
        FNN_NAME(fnn_panel_rows)(m, K, X, packed + j0 * K, FNN_NR,
                                 bias == NULL ? NULL : bias + j0, Y + j0, N, width);
    }
}

/* Y (m x N) := X (m x K) W + bias, W packed by fnn_pack; bias may be NULL. */
static void FNN_NAME(fnn_packed_gemm)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const FNN_T* X,
                                      const FNN_T* packed, const FNN_T* bias, FNN_T* Y) {
    FNN_NAME(fnn_packed_gemm_columns)(m, K, N, X, packed, bias, Y, 0, N);
}

/* The same product from W as it is (K x N, row-major): whole panels are read in place, FNN_NR
 * columns of each row; the last, partial panel is packed into ``tail`` (K * FNN_NR values). */
static void FNN_NAME(fnn_rowmajor_gemm)(ptrdiff_t m, ptrdiff_t K, ptrdiff_t N, const FNN_T* X,
                                        const FNN_T* W, const FNN_T* bias, FNN_T* Y,
                                        FNN_T* tail) {
    ptrdiff_t j0 = 0;
    for (; j0 + FNN_NR <= N; j0 += FNN_NR)
        FNN_NAME(fnn_panel_rows)(m, K, X, W + j0, N, bias == NULL ? NULL : bias + j0, Y + j0, N,
                                 FNN_NR);
    if (j0 < N) {
        for (ptrdiff_t k = 0; k < K; k++) {
            memcpy(tail + k * FNN_NR, W + k * N + j0, (size_t)(N - j0) * sizeof(FNN_T));
            for (ptrdiff_t j = N - j0; j < FNN_NR; j++)
                tail[k * FNN_NR + j] = 0;
        }
        FNN_NAME(fnn_panel_rows)(m, K, X, tail, FNN_NR, bias == NULL ? NULL : bias + j0, Y + j0,
                                 N, (int)(N - j0));
    }
}

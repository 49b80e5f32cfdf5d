/* The micro-kernel's products against one core's FMA peak, in C (no Python around them).
 *
 *   gcc -O3 -fno-math-errno -fno-trapping-math -mavx2 -mfma -mavx512f -mavx512dq \
 *       -mavx512bw -mavx512vl -mprefer-vector-width=512 -I fastnn_c \
 *       benchmarks/micro_kernel.c -o /tmp/micro_kernel              (the avx512 level)
 *   gcc -O3 -fno-math-errno -fno-trapping-math -mavx2 -mfma -I fastnn_c \
 *       benchmarks/micro_kernel.c -o /tmp/micro_kernel              (the avx2 level)
 *   /tmp/micro_kernel 16 784 256 128 10
 *
 * Arguments: rows, then the widths of a chain of layers (784 256 128 10 is three products,
 * each layer's output the next one's input, no bias or activation). Prints the FMA peak of
 * one core (independent chains of FMAs in registers: 24 of AVX-512's 32, 12 of the 16
 * below it), then each product's time and rate and the chain's, best of 7 blocks. One
 * thread; the flags are the levels' (fastnn_c/_manifest.py). benchmarks/README.md quotes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "_packed_gemm.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Multiply-adds per second of independent FMA chains, one SIMD vector each, named one by
 * one and kept live across each step (else the compiler runs the chains one after another,
 * bound by the FMA latency). Enough chains to cover latency x throughput (4 x 2 on recent
 * cores), and few enough to stay in the registers: 24 chains on AVX2's 16 registers were
 * spilled and measured a third of the peak. */
#define FNN_CHAINS_A(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#if defined(__AVX512F__)
#define FNN_N_CHAINS 24
#define FNN_CHAINS_B(X) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#define FNN_CHAINS(X) FNN_CHAINS_A(X) FNN_CHAINS_B(X)
#else
#define FNN_N_CHAINS 12
#define FNN_CHAINS(X) FNN_CHAINS_A(X)
#endif
#define FNN_DECLARE(c) fnn_vfloat a##c = y * (float)(c);
#define FNN_STEP(c) a##c = a##c * x + y;
#define FNN_SUM(c) sum += a##c;
#define FNN_LIVE(c) "+v"(a##c),

static double fma_peak(void) {
    fnn_vfloat x, y;
    for (int i = 0; i < FNN_NR_FLOAT / 2; i++) {
        x[i] = 0.9999f;
        y[i] = 1e-5f;
    }
    FNN_CHAINS(FNN_DECLARE)
    const long steps = 20000000;
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        double t = now();
        for (long s = 0; s < steps; s++) {
            FNN_CHAINS(FNN_STEP)
            __asm__ volatile("" : FNN_CHAINS_A(FNN_LIVE) "+r"(s));  /* at most 30 operands */
#ifdef FNN_CHAINS_B
            __asm__ volatile("" : FNN_CHAINS_B(FNN_LIVE) "+r"(s));
#endif
        }
        t = now() - t;
        best = t < best ? t : best;
    }
    fnn_vfloat sum = {0};
    FNN_CHAINS(FNN_SUM)
    if (sum[0] == 1234.5f)  /* keeps the chains live */
        printf("%f\n", sum[0]);
    return (double)steps * FNN_N_CHAINS * (FNN_NR_FLOAT / 2) / best;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s ROWS WIDTH WIDTH [WIDTH ...]\n", argv[0]);
        return 2;
    }
    long m = atol(argv[1]);
    int layers = argc - 3;
    long* width = malloc((size_t)(layers + 1) * sizeof *width);
    float** packed = malloc((size_t)layers * sizeof *packed);
    long widest = 0;
    for (int l = 0; l <= layers; l++) {
        width[l] = atol(argv[l + 2]);
        widest = width[l] > widest ? width[l] : widest;
    }
    for (int l = 0; l < layers; l++) {
        long K = width[l], N = width[l + 1];
        float* W = malloc((size_t)(K * N) * sizeof *W);
        for (long i = 0; i < K * N; i++)
            W[i] = (float)(i % 7) * 0.01f - 0.03f;
        packed[l] = malloc(fnn_packed_size_float((size_t)K, (size_t)N) * sizeof(float));
        fnn_pack_float(W, K, N, packed[l]);
        free(W);
    }
    /* X stays as it is; each product writes one of two buffers, the next reads it. */
    float* X = malloc((size_t)(m * width[0]) * sizeof(float));
    float* buffer[2] = {malloc((size_t)(m * widest) * sizeof(float)),
                        malloc((size_t)(m * widest) * sizeof(float))};
    for (long i = 0; i < m * width[0]; i++)
        X[i] = (float)(i % 5) * 0.1f;

    double peak = fma_peak();
    printf("FMA peak of one core: %.1f G multiply-adds/s\n", peak / 1e9);
    double total_fma = 0, total_best = 0;
    for (int l = 0; l <= layers; l++) {
        int all = l == layers;  /* the last line: the whole chain */
        long reps = 20000;
        double best = 1e30, fma = 0;
        for (int round = 0; round < 7; round++) {
            double t = now();
            for (long r = 0; r < reps; r++)
                for (int k = all ? 0 : l; k < (all ? layers : l + 1); k++)
                    fnn_packed_gemm_float(m, width[k], width[k + 1],
                                          k == 0 ? X : buffer[(k + 1) % 2], packed[k], NULL,
                                          buffer[k % 2]);
            t = (now() - t) / reps;
            best = t < best ? t : best;
        }
        for (int k = all ? 0 : l; k < (all ? layers : l + 1); k++)
            fma += (double)m * width[k] * width[k + 1];
        if (!all) {
            total_fma += fma;
            total_best += best;
            printf("%ld x %ld x %ld: %.2f us, %.1f G/s (%.0f%% of peak)\n", m, width[l],
                   width[l + 1], best * 1e6, fma / best / 1e9, 100 * fma / best / peak);
        } else {
            printf("the chain: %.2f us, %.1f G/s (%.0f%% of peak)\n", best * 1e6,
                   fma / best / 1e9, 100 * fma / best / peak);
        }
    }
    return 0;
}

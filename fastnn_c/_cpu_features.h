/* The x86-64 features that fastnn's SIMD builds need, as this CPU and its operating system
 * offer them: cpuid says what the CPU implements, xgetbv (XCR0) which register state the OS
 * saves on a context switch; a feature counts only when both say yes.
 *
 * GCC and Clang: <cpuid.h> and one xgetbv instruction (their _xgetbv needs -mxsave).
 * MSVC: __cpuidex and _xgetbv from <intrin.h> (written to its documentation, untested).
 * Elsewhere (not x86-64) no feature is reported and only the generic build runs.
 *
 * Bit i of fnn_cpu_features() is fnn_cpu_feature_names[i].
 */
#ifndef FNN_CPU_FEATURES_H
#define FNN_CPU_FEATURES_H

#define FNN_CPU_N_FEATURES 6
static const char *const fnn_cpu_feature_names[FNN_CPU_N_FEATURES] = {
    "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"};

#if defined(__x86_64__) || defined(_M_X64)

#if defined(_MSC_VER)
#include <intrin.h>
static void fnn_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int r[4]) {
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)subleaf);
    for (int i = 0; i < 4; i++) r[i] = (unsigned int)regs[i];
}
static unsigned long long fnn_xcr0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void fnn_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int r[4]) {
    __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}
static unsigned long long fnn_xcr0(void) {
    unsigned int eax, edx;
    __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static int fnn_cpu_features(void) {
    unsigned int r[4];
    fnn_cpuid(0, 0, r);
    if (r[0] < 7) return 0;                       /* no leaf 7: no AVX2 */
    fnn_cpuid(1, 0, r);
    const int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!(osxsave && avx)) return 0;              /* no xgetbv, or no AVX at all */
    const unsigned long long xcr0 = fnn_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0;            /* OS saves no XMM/YMM state */
    fnn_cpuid(7, 0, r);
    const unsigned int ebx = r[1];
    int features = ((ebx >> 5) & 1) | fma << 1;   /* avx2, fma */
    if ((xcr0 & 0xe0) == 0xe0)                    /* opmask, ZMM0-15 high halves, ZMM16-31 */
        features |= ((ebx >> 16) & 1) << 2        /* avx512f */
                  | ((ebx >> 17) & 1) << 3        /* avx512dq */
                  | ((ebx >> 30) & 1) << 4        /* avx512bw */
                  | ((ebx >> 31) & 1) << 5;       /* avx512vl */
    return features;
}

#else
static int fnn_cpu_features(void) { return 0; }
#endif

#endif

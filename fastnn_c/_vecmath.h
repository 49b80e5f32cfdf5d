/* Vectorisable math for the kernels' elementwise loops.
 *
 * 1. glibc's libmvec: GCC may call its SIMD forms of libm functions. glibc declares them
 *    SIMD-callable only under -ffast-math, which would also let the compiler assume there
 *    are no NaNs or infinities. fastnn keeps IEEE semantics, so it declares them itself
 *    when setup.py found libmvec (FNN_LIBMVEC) and builds with -fno-math-errno
 *    -fno-trapping-math, which lets loops calling them vectorise.
 *
 * 2. fnn_expf, fnn_expm1f, fnn_log1pf_unit: float32 functions written branch-free
 *    so that a loop calling them vectorises inline, at any vector width the build targets
 *    (fnn_tanhf is inline only in the AVX2 build, see there); they beat libmvec's
 *    (benchmarks/README.md, "Inline float32 exp"). Largest error against double precision,
 *    found by a C sweep of every 7e-5 step over the whole finite range (and every 1.3e-9
 *    near 0): exp 1.0 ulp, expm1 1.5 ulp, log1p on [0, 1] 1.9 ulp (tests/test_activations.py checks the activations built on
 *    them to 2-3 ulp). NaN propagates; +-inf, overflow to inf and underflow through the
 *    subnormals to 0 come out as libm's.
 */
#ifndef FNN_VECMATH_H
#define FNN_VECMATH_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(FNN_LIBMVEC) && defined(__GNUC__) && defined(__x86_64__)
#define FNN_VECTOR_VARIANT __attribute__((__simd__("notinbranch")))
#else
#define FNN_VECTOR_VARIANT
#endif

FNN_VECTOR_VARIANT float logf(float);
FNN_VECTOR_VARIANT float log1pf(float);
FNN_VECTOR_VARIANT float tanhf(float);
FNN_VECTOR_VARIANT double exp(double);
FNN_VECTOR_VARIANT double expm1(double);
FNN_VECTOR_VARIANT double log(double);
FNN_VECTOR_VARIANT double log1p(double);
FNN_VECTOR_VARIANT double tanh(double);

static inline float fnn_float_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t fnn_bits_from_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then e^r - 1 = r + r^2 P(r) with
 * Cephes' expf minimax coefficients. Adding 1.5 * 2^23 rounds x / ln2 to an integer, which
 * is read as n from the low bits of that sum (no float-to-int conversion, so a NaN x is no
 * undefined behaviour; it gives some n and a NaN result). Needs |x| < 2^21. */
static inline float fnn_expm1_reduced(float x, uint32_t *n) {
    const float round_to_integer = 12582912.0f;
    float shifted = x * 1.44269504088896341f + round_to_integer;
    float k = shifted - round_to_integer;
    float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;  /* ln2 split in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    *n = fnn_bits_from_float(shifted) - fnn_bits_from_float(round_to_integer);
    return p * (r * r) + r;
}

/* e^x. 2^n is applied as two normal powers of two, so results that overflow become inf and
 * results in the subnormal range round correctly. Comparisons are written so NaN passes. */
static inline float fnn_expf(float x) {
    uint32_t n, half;
    float q;
    x = x < -104.0f ? -104.0f : x;  /* e^-104 < the smallest subnormal / 2 */
    x = x > 89.0f ? 89.0f : x;      /* e^89 > FLT_MAX */
    q = fnn_expm1_reduced(x, &n);
    half = (uint32_t)((int32_t)n >> 1);  /* n in [-150, 129]: both halves are normal powers */
    return (q + 1.0f) * fnn_float_from_bits((half + 127u) << 23)
                      * fnn_float_from_bits((n - half + 127u) << 23);
}

/* e^x - 1 = 2^n (q + 1) - 1, evaluated as 2 (t q + (t - 1/2)) with t = 2^(n-1), which is
 * exact for n = 0 (so tiny x keep full relative precision). Valid for x <= 88 and NaN;
 * fastnn calls it only where x <= 0 (ELU, SELU, softplus backward, tanh), so it has no
 * overflow clamp, which would slow those passes (benchmarks/README.md). */
static inline float fnn_expm1f(float x) {
    uint32_t n;
    float q;
    x = x < -26.0f ? -26.0f : x;  /* e^-26 - 1 rounds to -1 */
    q = fnn_expm1_reduced(x, &n);
    float t = fnn_float_from_bits((n + 126u) << 23);
    return 2.0f * (t * q + (t - 0.5f));
}

/* tanh(x) = sign(x) (-e / (e + 2)) with e = expm1(-2|x|) in [-1, 0]: no overflow, full
 * relative precision near 0, 2.5 ulp. Used where it beats libmvec's tanhf, which is the AVX2
 * build only (benchmarks/README.md); the AVX-512 build's arrays go through fnn_tanhf_run
 * below. */
static inline float fnn_tanhf(float x) {
#if defined(__AVX2__) && !defined(__AVX512F__)
    float e = fnn_expm1f(-2.0f * fabsf(x));
    return copysignf(-e / (e + 2.0f), x);
#else
    return tanhf(x);
#endif
}

/* a[i] = tanh(z[i]) for float32, z == a allowed. In the AVX-512 build: piecewise degree-6
 * polynomials on 16 intervals of |z| (fastnn_c/_tanh_table.h, written and explained by
 * scripts/tanh_table.py), each coefficient fetched with one in-register permute. At most
 * 1.55 ulp over every float32 (scripts/tanh_table.py --check); faster than libmvec's and
 * NumPy's (benchmarks/README.md, "tanh"). Elsewhere a loop over fnn_tanhf. */
#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#include "_tanh_table.h"

static inline __m512 fnn_tanh_lookup(const float *table, __m512i interval) {
    return _mm512_permutexvar_ps(interval, _mm512_load_ps(table));
}

static inline __m512 fnn_tanh16(__m512 z) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 az = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(z)));
    az = _mm512_min_ps(_mm512_set1_ps(FNN_TANH_CLAMP), az);  /* a NaN az passes */
    /* interval index from the bits; the 16-bit saturating subtract sends [0, 1/16) to 0 */
    __m512i interval = _mm512_subs_epu16(
        _mm512_srli_epi32(_mm512_castps_si512(az), FNN_TANH_INDEX_SHIFT),
        _mm512_set1_epi32(FNN_TANH_INDEX_OFFSET));
    __m512 t = _mm512_sub_ps(az, fnn_tanh_lookup(fnn_tanh_start, interval));
    __m512 p = fnn_tanh_lookup(fnn_tanh_coefficients[FNN_TANH_DEGREE], interval);
    for (int k = FNN_TANH_DEGREE - 1; k >= 0; k--)
        p = _mm512_fmadd_ps(p, t, fnn_tanh_lookup(fnn_tanh_coefficients[k], interval));
    /* p >= 0: put z's sign back (0xf8 = p | (z & sign)) */
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(p), _mm512_castps_si512(z), sign, 0xf8));
}

static inline void fnn_tanhf_run(const float *z, float *a, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(a + i, fnn_tanh16(_mm512_loadu_ps(z + i)));
    if (i < n) {
        __mmask16 tail = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(a + i, tail, fnn_tanh16(_mm512_maskz_loadu_ps(tail, z + i)));
    }
}
#else
static inline void fnn_tanhf_run(const float *z, float *a, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++)
        a[i] = fnn_tanhf(z[i]);
}
#endif

/* log(1 + u) for u in [0, 1] (softplus's log1p(e^-|z|)): 2 atanh(s) with s = u / (2 + u)
 * in [0, 1/3], whose odd series to s^13 is within 2e-8 relative. */
static inline float fnn_log1pf_unit(float u) {
    float s = u / (2.0f + u), w = s * s;
    float p = 1.0f / 13.0f;
    p = p * w + 1.0f / 11.0f;
    p = p * w + 1.0f / 9.0f;
    p = p * w + 1.0f / 7.0f;
    p = p * w + 1.0f / 5.0f;
    p = p * w + 1.0f / 3.0f;
    return 2.0f * s + (2.0f * s) * (w * p);
}

#endif

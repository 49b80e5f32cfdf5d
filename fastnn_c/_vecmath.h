/* libm functions that GCC may call in SIMD form from glibc's libmvec.
 *
 * glibc declares these SIMD-callable only under -ffast-math, which would also let the
 * compiler assume there are no NaNs or infinities. fastnn keeps IEEE semantics, so it
 * declares them itself when setup.py found libmvec (FASTNN_LIBMVEC) and builds with
 * -fno-math-errno -fno-trapping-math, which lets loops calling them vectorise.
 */
#ifndef FASTNN_VECMATH_H
#define FASTNN_VECMATH_H
#include <math.h>

#if defined(FASTNN_LIBMVEC) && defined(__GNUC__) && defined(__x86_64__)
#define FASTNN_SIMD __attribute__((__simd__("notinbranch")))
#else
#define FASTNN_SIMD
#endif

FASTNN_SIMD float expf(float);
FASTNN_SIMD float expm1f(float);
FASTNN_SIMD float logf(float);
FASTNN_SIMD float log1pf(float);
FASTNN_SIMD float tanhf(float);
FASTNN_SIMD double exp(double);
FASTNN_SIMD double expm1(double);
FASTNN_SIMD double log(double);
FASTNN_SIMD double log1p(double);
FASTNN_SIMD double tanh(double);

#endif

/* kiln_ops.h: the k_* functions that the op registry's c_expr templates call, for every
 * dtype Kiln's C backend computes in (float, double, int64_t, int32_t), with NumPy's
 * semantics:
 *
 *   k_max / k_min     NaN in either operand gives NaN (np.maximum / np.minimum)
 *   k_relu            max(x, 0) with NaN propagating
 *   k_round           half to even (np.round): rint in the default rounding mode
 *   k_sign            -1, 0, 1; NaN stays NaN
 *   k_pow             powf/pow for floats; exact integer power by squaring for ints
 *                     (a negative integer exponent gives 0; Kiln's eager kernel refuses it)
 *   k_rsqrt           1 / sqrt(x), two roundings like the NumPy reference
 *   kiln_fdiv/fmod    floor division and modulo of int64 (index arithmetic)
 *
 * Transcendentals come from kiln_math.h (vectorizable float versions). Everything is
 * static inline so loops calling it vectorize.
 */
#ifndef KILN_OPS_H
#define KILN_OPS_H

/* clock_gettime is POSIX, which -std=c11 hides unless asked for. This must come before the
 * first system header (generated programs include this file first); kiln_now below falls
 * back to C11's timespec_get where it still is not declared. */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln_math.h"
#include "kiln_math_fast.h"

#ifdef _OPENMP
#include <omp.h>
static inline double kiln_now(void) { return omp_get_wtime(); }
#else
#include <time.h>
static inline double kiln_now(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    timespec_get(&ts, TIME_UTC);
#endif
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
#endif

/* Elements of size `esize` before `p + k` is 64-byte aligned (at most n; 0 if it never is):
 * a streaming loop peels them so its main part loads whole cache lines (NumPy arrays are
 * only 16-byte aligned, and split loads halved the speed of compute-bound loops here). */
static inline int64_t kiln_peel(const void *p, int64_t esize, int64_t n)
{
    const int64_t k = (int64_t)((64 - ((uintptr_t)p & 63)) & 63);
    if (k % esize) return 0;
    return k / esize < n ? k / esize : n;
}
#if defined(__GNUC__)
#define KILN_ALIGNED(p) __builtin_assume_aligned((p), 64)
#define KILN_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define KILN_ALIGNED(p) (p)
#define KILN_PREFETCH(p) ((void)(p))
#endif

/* Non-temporal ("streaming") stores of a block a loop computed in registers, for outputs
 * too large to stay in cache: the store goes to memory without first reading the line
 * (a normal store misses, fetches the line, then writes it back later). The compiler's own
 * builtins, not <immintrin.h>, which would add ~0.15 s to every compile. `src` is a
 * 64-byte-aligned block of `n` elements; an unaligned `dst` falls back to plain stores.
 * kiln_sfence orders the streamed stores before the kernel returns. */
#if defined(__GNUC__)
typedef float kiln_vf32 __attribute__((vector_size(64)));
typedef double kiln_vf64 __attribute__((vector_size(64)));
#endif
#if defined(__clang__)
#define KILN_STREAM64(dst, src, T) __builtin_nontemporal_store(*(const T *)(src), (T *)(dst))
#elif defined(__GNUC__) && defined(__AVX512F__)
#define KILN_STREAM64(dst, src, T) KILN_NT512_##T(dst, src)
#define KILN_NT512_kiln_vf32(d, s) __builtin_ia32_movntps512((d), *(const kiln_vf32 *)(s))
#define KILN_NT512_kiln_vf64(d, s) __builtin_ia32_movntpd512((d), *(const kiln_vf64 *)(s))
#elif defined(__GNUC__) && defined(__SSE2__)
typedef float kiln_vf32x4 __attribute__((vector_size(16)));
typedef double kiln_vf64x2 __attribute__((vector_size(16)));
#define KILN_STREAM64(dst, src, T) KILN_NT128_##T(dst, src)
#define KILN_NT128_kiln_vf32(d, s) do { for (int q_ = 0; q_ < 4; ++q_) \
    __builtin_ia32_movntps((d) + 4 * q_, *(const kiln_vf32x4 *)((s) + 4 * q_)); } while (0)
#define KILN_NT128_kiln_vf64(d, s) do { for (int q_ = 0; q_ < 4; ++q_) \
    __builtin_ia32_movntpd((d) + 2 * q_, *(const kiln_vf64x2 *)((s) + 2 * q_)); } while (0)
#endif

#ifdef KILN_STREAM64
#define KILN__STREAM_BODY(V, lanes)                                                      \
    if (((uintptr_t)dst & 63) == 0) {                                                     \
        int64_t i = 0;                                                                    \
        for (; i + (lanes) <= n; i += (lanes)) KILN_STREAM64(dst + i, src + i, V);        \
        for (; i < n; ++i) dst[i] = src[i];                                               \
        return;                                                                           \
    }
#else
#define KILN__STREAM_BODY(V, lanes)
#endif
#define KILN__DEFINE_STREAM(name, T, V, lanes)                                            \
    static inline void name(T *restrict dst, const T *restrict src, int64_t n)            \
    {                                                                                     \
        KILN__STREAM_BODY(V, lanes)                                                       \
        memcpy(dst, src, (size_t)n * sizeof(T));                                          \
    }
KILN__DEFINE_STREAM(kiln_stream_f32, float, kiln_vf32, 16)
KILN__DEFINE_STREAM(kiln_stream_f64, double, kiln_vf64, 8)

static inline void kiln_sfence(void)
{
#if defined(__GNUC__) && (defined(__SSE__) || defined(__x86_64__))
    __builtin_ia32_sfence();
#endif
}

static inline int64_t kiln_fdiv(int64_t a, int64_t b)
{
    const int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static inline int64_t kiln_fmod(int64_t a, int64_t b)
{
    const int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

/* float -> int conversions that are defined everywhere: NaN and out-of-range values give the
 * minimum, as x86's conversion instructions (and so NumPy) do; a plain C cast is UB. */
static inline int64_t kiln_f2i(double x)
{
    return (x >= -0x1p63 && x < 0x1p63) ? (int64_t)x : INT64_MIN;
}
static inline int32_t kiln_f2i32(double x)
{
    return (x > -0x1p31 - 1.0 && x < 0x1p31) ? (int32_t)x : INT32_MIN;
}

#define KILN__GEN(name, x)                                                                   \
    _Generic((x), float: name##_f, double: name##_d, int64_t: name##_l, int32_t: name##_i)(x)
#define KILN__GENF(name, x) _Generic((x), float: name##_f, double: name##_d)(x)
#define KILN__GEN2(name, x, y)                                                               \
    _Generic((x), float: name##_f, double: name##_d, int64_t: name##_l, int32_t: name##_i)(x, y)

/* float-only unary functions */
static inline float k_exp_f(float x) { return kiln_fast_expf(x); }
static inline double k_exp_d(double x) { return kiln_exp(x); }
static inline float k_exp_nonpos_f(float x) { return kiln_fast_expf_nonpos(x); }
static inline double k_exp_nonpos_d(double x) { return kiln_exp(x); }
static inline float k_log_f(float x) { return kiln_fast_logf(x); }
static inline double k_log_d(double x) { return kiln_log(x); }
static inline float k_log1p_f(float x) { return kiln_log1pf(x); }
static inline double k_log1p_d(double x) { return kiln_log1p(x); }
static inline float k_expm1_f(float x) { return kiln_expm1f(x); }
static inline double k_expm1_d(double x) { return kiln_expm1(x); }
static inline float k_sin_f(float x) { return kiln_sinf(x); }
static inline double k_sin_d(double x) { return kiln_sin(x); }
static inline float k_cos_f(float x) { return kiln_cosf(x); }
static inline double k_cos_d(double x) { return kiln_cos(x); }
static inline float k_tanh_f(float x) { return kiln_fast_tanhf(x); }
static inline double k_tanh_d(double x) { return kiln_tanh(x); }
static inline float k_sigmoid_f(float x) { return kiln_fast_sigmoidf(x); }
static inline double k_sigmoid_d(double x) { return kiln_sigmoid(x); }
static inline float k_erf_f(float x) { return kiln_fast_erff(x); }
static inline double k_erf_d(double x) { return kiln_erf(x); }
static inline float k_sqrt_f(float x) { return sqrtf(x); }
static inline double k_sqrt_d(double x) { return sqrt(x); }
static inline float k_rsqrt_f(float x) { return 1.0f / sqrtf(x); }
static inline double k_rsqrt_d(double x) { return 1.0 / sqrt(x); }
static inline float k_reciprocal_f(float x) { return 1.0f / x; }
static inline double k_reciprocal_d(double x) { return 1.0 / x; }
#define k_exp(x) KILN__GENF(k_exp, x)
#define k_exp_nonpos(x) KILN__GENF(k_exp_nonpos, x)
#define k_log(x) KILN__GENF(k_log, x)
#define k_log1p(x) KILN__GENF(k_log1p, x)
#define k_expm1(x) KILN__GENF(k_expm1, x)
#define k_sin(x) KILN__GENF(k_sin, x)
#define k_cos(x) KILN__GENF(k_cos, x)
#define k_tanh(x) KILN__GENF(k_tanh, x)
#define k_sigmoid(x) KILN__GENF(k_sigmoid, x)
#define k_erf(x) KILN__GENF(k_erf, x)
#define k_sqrt(x) KILN__GENF(k_sqrt, x)
#define k_rsqrt(x) KILN__GENF(k_rsqrt, x)
#define k_reciprocal(x) KILN__GENF(k_reciprocal, x)

/* numeric unary functions */
static inline float k_abs_f(float x) { return fabsf(x); }
static inline double k_abs_d(double x) { return fabs(x); }
static inline int64_t k_abs_l(int64_t x) { return x < 0 ? -x : x; }
static inline int32_t k_abs_i(int32_t x) { return x < 0 ? -x : x; }
static inline float k_relu_f(float x) { return (x > 0 || x != x) ? x : 0.0f; }
static inline double k_relu_d(double x) { return (x > 0 || x != x) ? x : 0.0; }
static inline int64_t k_relu_l(int64_t x) { return x > 0 ? x : 0; }
static inline int32_t k_relu_i(int32_t x) { return x > 0 ? x : 0; }
static inline float k_floor_f(float x) { return floorf(x); }
static inline double k_floor_d(double x) { return floor(x); }
static inline int64_t k_floor_l(int64_t x) { return x; }
static inline int32_t k_floor_i(int32_t x) { return x; }
static inline float k_ceil_f(float x) { return ceilf(x); }
static inline double k_ceil_d(double x) { return ceil(x); }
static inline int64_t k_ceil_l(int64_t x) { return x; }
static inline int32_t k_ceil_i(int32_t x) { return x; }
static inline float k_round_f(float x) { return rintf(x); }
static inline double k_round_d(double x) { return rint(x); }
static inline int64_t k_round_l(int64_t x) { return x; }
static inline int32_t k_round_i(int32_t x) { return x; }
static inline float k_sign_f(float x) { return x != x ? x : (float)((x > 0) - (x < 0)); }
static inline double k_sign_d(double x) { return x != x ? x : (double)((x > 0) - (x < 0)); }
static inline int64_t k_sign_l(int64_t x) { return (x > 0) - (x < 0); }
static inline int32_t k_sign_i(int32_t x) { return (x > 0) - (x < 0); }
#define k_abs(x) KILN__GEN(k_abs, x)
#define k_relu(x) KILN__GEN(k_relu, x)
#define k_floor(x) KILN__GEN(k_floor, x)
#define k_ceil(x) KILN__GEN(k_ceil, x)
#define k_round(x) KILN__GEN(k_round, x)
#define k_sign(x) KILN__GEN(k_sign, x)

/* binary functions */
static inline float k_div_f(float a, float b) { return a / b; }
static inline double k_div_d(double a, double b) { return a / b; }
static inline int64_t k_div_l(int64_t a, int64_t b) { return b ? kiln_fdiv(a, b) : 0; }
static inline int32_t k_div_i(int32_t a, int32_t b) { return b ? (int32_t)kiln_fdiv(a, b) : 0; }
/* floor_divide on integers: b == 0 gives 0 (the kernel's check reports it), and
 * INT_MIN / -1 wraps like NumPy instead of trapping (it is SIGFPE on x86). */
static inline int64_t k_floordiv_l(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    return kiln_fdiv(a, b);
}
static inline int32_t k_floordiv_i(int32_t a, int32_t b)
{
    if (b == 0) return 0;
    if (b == -1) return (int32_t)(0 - (uint32_t)a);
    return (int32_t)kiln_fdiv(a, b);
}
static inline float k_max_f(float a, float b) { return (a > b || a != a) ? a : b; }
static inline double k_max_d(double a, double b) { return (a > b || a != a) ? a : b; }
static inline int64_t k_max_l(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int32_t k_max_i(int32_t a, int32_t b) { return a > b ? a : b; }
static inline float k_min_f(float a, float b) { return (a < b || a != a) ? a : b; }
static inline double k_min_d(double a, double b) { return (a < b || a != a) ? a : b; }
static inline int64_t k_min_l(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int32_t k_min_i(int32_t a, int32_t b) { return a < b ? a : b; }
static inline float k_pow_f(float a, float b) { return b == 2.0f ? a * a : powf(a, b); }
static inline double k_pow_d(double a, double b) { return b == 2.0 ? a * a : pow(a, b); }
static inline int64_t k_pow_l(int64_t a, int64_t b)
{
    if (b < 0) return 0;
    uint64_t r = 1, base = (uint64_t)a; /* wraps like NumPy's int64 power */
    while (b) {
        if (b & 1) r *= base;
        base *= base;
        b >>= 1;
    }
    return (int64_t)r;
}
static inline int32_t k_pow_i(int32_t a, int32_t b) { return (int32_t)k_pow_l(a, b); }
#define k_div(a, b) KILN__GEN2(k_div, a, b)
#define k_floordiv(a, b) _Generic((a), int32_t: k_floordiv_i, default: k_floordiv_l)((a), (b))
#define k_max(a, b) KILN__GEN2(k_max, a, b)
#define k_min(a, b) KILN__GEN2(k_min, a, b)
#define k_pow(a, b) KILN__GEN2(k_pow, a, b)

/* the C library's functions for kiln.core.prims.pointwise_math (accurate, not vectorized) */
static inline float k_asin_f(float x) { return asinf(x); }
static inline double k_asin_d(double x) { return asin(x); }
static inline float k_acos_f(float x) { return acosf(x); }
static inline double k_acos_d(double x) { return acos(x); }
static inline float k_atan_f(float x) { return atanf(x); }
static inline double k_atan_d(double x) { return atan(x); }
static inline float k_sinh_f(float x) { return sinhf(x); }
static inline double k_sinh_d(double x) { return sinh(x); }
static inline float k_cosh_f(float x) { return coshf(x); }
static inline double k_cosh_d(double x) { return cosh(x); }
static inline float k_asinh_f(float x) { return asinhf(x); }
static inline double k_asinh_d(double x) { return asinh(x); }
static inline float k_acosh_f(float x) { return acoshf(x); }
static inline double k_acosh_d(double x) { return acosh(x); }
static inline float k_atanh_f(float x) { return atanhf(x); }
static inline double k_atanh_d(double x) { return atanh(x); }
static inline float k_tan_f(float x) { return tanf(x); }
static inline double k_tan_d(double x) { return tan(x); }
static inline float k_log2_f(float x) { return log2f(x); }
static inline double k_log2_d(double x) { return log2(x); }
static inline float k_log10_f(float x) { return log10f(x); }
static inline double k_log10_d(double x) { return log10(x); }
static inline float k_trunc_f(float x) { return truncf(x); }
static inline double k_trunc_d(double x) { return trunc(x); }
static inline int64_t k_trunc_l(int64_t x) { return x; }
static inline int32_t k_trunc_i(int32_t x) { return x; }
static inline int k_signbit_f(float x) { return signbit(x) != 0; }
static inline int k_signbit_d(double x) { return signbit(x) != 0; }
static inline int k_signbit_l(int64_t x) { return x < 0; }
static inline int k_signbit_i(int32_t x) { return x < 0; }
static inline float k_atan2_f(float a, float b) { return atan2f(a, b); }
static inline double k_atan2_d(double a, double b) { return atan2(a, b); }
static inline float k_hypot_f(float a, float b) { return hypotf(a, b); }
static inline double k_hypot_d(double a, double b) { return hypot(a, b); }
static inline float k_copysign_f(float a, float b) { return copysignf(a, b); }
static inline double k_copysign_d(double a, double b) { return copysign(a, b); }
#define k_asin(x) KILN__GENF(k_asin, x)
#define k_acos(x) KILN__GENF(k_acos, x)
#define k_atan(x) KILN__GENF(k_atan, x)
#define k_sinh(x) KILN__GENF(k_sinh, x)
#define k_cosh(x) KILN__GENF(k_cosh, x)
#define k_asinh(x) KILN__GENF(k_asinh, x)
#define k_acosh(x) KILN__GENF(k_acosh, x)
#define k_atanh(x) KILN__GENF(k_atanh, x)
#define k_tan(x) KILN__GENF(k_tan, x)
#define k_log2(x) KILN__GENF(k_log2, x)
#define k_log10(x) KILN__GENF(k_log10, x)
#define k_trunc(x) KILN__GEN(k_trunc, x)
#define k_signbit(x) KILN__GEN(k_signbit, x)
#define k_atan2(a, b) _Generic((a), float: k_atan2_f, double: k_atan2_d)((a), (b))
#define k_hypot(a, b) _Generic((a), float: k_hypot_f, double: k_hypot_d)((a), (b))
#define k_copysign(a, b) _Generic((a), float: k_copysign_f, double: k_copysign_d)((a), (b))

/* special functions for kiln.core.prims.pointwise_special: the C library's where it has them
   (j0..y1 are XSI, so declared here), and digamma / trigamma as recurrence to x >= 6 then
   the asymptotic series, with reflection below zero (the NumPy kernels' algorithm) */
extern double j0(double);
extern double j1(double);
extern double y0(double);
extern double y1(double);
static inline float k_erfc_f(float x) { return erfcf(x); }
static inline double k_erfc_d(double x) { return erfc(x); }
static inline double k_lgamma_d(double x) {
    if (x <= 0 && x == floor(x)) return INFINITY;
    return lgamma(x);
}
static inline float k_lgamma_f(float x) { return (float)k_lgamma_d((double)x); }
static inline double k_digamma_d(double x) {
    if (x == 0) return copysign(INFINITY, -x);
    if (x < 0 && x == floor(x)) return NAN;
    double shift = 0.0, y = x < 0 ? 1.0 - x : x;
    for (int i = 0; i < 6 && y < 6.0; ++i) { shift -= 1.0 / y; y += 1.0; }
    double f = 1.0 / (y * y);
    double r = shift + log(y) - 0.5 / y
        - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))));
    return x < 0 ? r - 3.14159265358979323846 / tan(3.14159265358979323846 * x) : r;
}
static inline float k_digamma_f(float x) { return (float)k_digamma_d((double)x); }
static inline double k_trigamma_d(double x) {
    if (x <= 0 && x == floor(x)) return INFINITY;
    double shift = 0.0, y = x < 0 ? 1.0 - x : x;
    for (int i = 0; i < 6 && y < 6.0; ++i) { shift += 1.0 / (y * y); y += 1.0; }
    double f = 1.0 / (y * y);
    double r = shift + 1.0 / y + 0.5 * f
        + (1.0 / y) * f * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (1.0 / 30))));
    if (x < 0) {
        double s = 3.14159265358979323846 / sin(3.14159265358979323846 * x);
        return s * s - r;
    }
    return r;
}
static inline float k_trigamma_f(float x) { return (float)k_trigamma_d((double)x); }
static inline float k_bessel_j0_f(float x) { return (float)j0((double)x); }
static inline double k_bessel_j0_d(double x) { return j0(x); }
static inline float k_bessel_j1_f(float x) { return (float)j1((double)x); }
static inline double k_bessel_j1_d(double x) { return j1(x); }
static inline float k_bessel_y0_f(float x) { return (float)y0((double)x); }
static inline double k_bessel_y0_d(double x) { return y0(x); }
static inline float k_bessel_y1_f(float x) { return (float)y1((double)x); }
static inline double k_bessel_y1_d(double x) { return y1(x); }
/* psi^(n)(x) = (-1)^(n+1) n! zeta(n + 1, x), n >= 1: the zeta sum shifted until x + k >= 10,
   then Euler-Maclaurin with six Bernoulli terms; NaN below -1e4 */
static inline double k_polygamma_d(double nd, double x) {
    static const double em[6] = {1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600,
                                 1.0 / 47900160, -691.0 / 1307674368000.0};
    int n = (int)nd;
    if (isnan(x)) return NAN;
    if (x <= 0 && x == floor(x)) return n % 2 == 1 ? INFINITY : -INFINITY;
    if (x < -1e4) return NAN;  /* the upward shift would take too many steps (as the NumPy kernel) */
    double s = nd + 1.0, acc = 0.0, w = x;
    while (w < 10.0) { acc += pow(w, -s); w += 1.0; }
    double tail = pow(w, 1.0 - s) / (s - 1.0) + 0.5 * pow(w, -s);
    double rising = s, power = pow(w, -s - 1.0);
    for (int j = 0; j < 6; ++j) {
        tail += em[j] * rising * power;
        rising *= (s + 2 * j + 1) * (s + 2 * j + 2);
        power /= w * w;
    }
    double fact = 1.0;
    for (int k = 2; k <= n; ++k) fact *= k;
    return (n % 2 == 1 ? 1.0 : -1.0) * fact * (acc + tail);
}
static inline float k_polygamma_f(double n, float x) { return (float)k_polygamma_d(n, (double)x); }
#define k_polygamma(n, x) _Generic((x), float: k_polygamma_f, double: k_polygamma_d)((double)(n), (x))
#define k_erfc(x) KILN__GENF(k_erfc, x)
#define k_lgamma(x) KILN__GENF(k_lgamma, x)
#define k_digamma(x) KILN__GENF(k_digamma, x)
#define k_trigamma(x) KILN__GENF(k_trigamma, x)
#define k_bessel_j0(x) KILN__GENF(k_bessel_j0, x)
#define k_bessel_j1(x) KILN__GENF(k_bessel_j1, x)
#define k_bessel_y0(x) KILN__GENF(k_bessel_y0, x)
#define k_bessel_y1(x) KILN__GENF(k_bessel_y1, x)

#endif /* KILN_OPS_H */

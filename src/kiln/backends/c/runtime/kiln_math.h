/* kiln_math.h: vectorizable float32 math for Kiln's generated C.
 *
 *   float kiln_expf(float)   kiln_logf   kiln_log1pf   kiln_expm1f   kiln_tanhf
 *         kiln_sigmoidf      kiln_sinf   kiln_cosf     kiln_erff
 *   double kiln_exp(double) ... the same names without the f (these call libm; link -lm).
 *
 * The float functions are static inline, branch-free (selects, no calls, no lookup tables
 * except one small gather in sin/cos), so gcc -O3 vectorizes loops that call them, with or
 * without `#pragma omp simd`. They compute in double: a float argument is exact in double,
 * a double polynomial is good to ~1e-10, and the single rounding back to float makes the
 * results nearly correctly rounded. Working in double also absorbs the edge cases: float
 * subnormals are normal doubles, results that overflow or underflow float round once, in the
 * final conversion. Float-only code would be ~1.6x faster per element but would need a path
 * per edge case to stay within NumPy's error, and memory traffic bounds fused loops anyway.
 *
 * Accuracy over 1M+ arguments (special values, a log-uniform sweep of the whole float range,
 * the regions near 0, 1 and the overflow points; tests/c/test_native_math.py), max ulp:
 *
 *   function   vs float64 rounded   vs NumPy float32    NumPy float32 vs float64 rounded
 *   expf              1                   2                    2
 *   logf              1                   3                    3
 *   log1pf            1                   2                    2
 *   expm1f            1                   3                    3
 *   tanhf             1                   1                    1
 *   sigmoidf          1                   (no NumPy op: reference is float64 rounded)
 *   sinf              1                   1                    1
 *   cosf              1                   1                    1
 *   erff              1                   (no NumPy op: reference is math.erf)
 *
 * "1 ulp vs float64 rounded" means a few arguments whose exact value lies near the midpoint
 * of two floats round the other way; every other result is the correctly rounded one.
 *
 * Special values follow C99 Annex F and NumPy: NaN in -> NaN out; exp(-inf) = 0, exp(inf) =
 * inf; log(0) = -inf, log(x<0) = NaN, log(inf) = inf; log1p(-1) = -inf; expm1(-inf) = -1;
 * tanh(+-inf) = +-1; sigmoid(-inf) = 0, sigmoid(inf) = 1; sin/cos(+-inf) = NaN;
 * erf(+-inf) = +-1; +-0 keeps its sign where the function is odd. Overflow gives inf and
 * underflow gives subnormals or 0, rounded once. Compile with -fno-math-errno and without
 * -ffast-math (Kiln's flags): fast-math would let the compiler drop the NaN handling.
 */
#ifndef KILN_MATH_H
#define KILN_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Bit casts; memcpy is the portable spelling, and compilers vectorize it as a no-op. */
static inline uint64_t kiln__d2u(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline double kiln__u2d(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
static inline uint32_t kiln__f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }

/* Integers <-> doubles through the 1.5 * 2^52 trick: exact for |n| < 2^51, and unlike a
 * cast it vectorizes without AVX-512DQ. */
#define KILN__MAGIC 0x1.8p52
static inline double kiln__i2d(int64_t n) { return kiln__u2d(kiln__d2u(KILN__MAGIC) + (uint64_t)n) - KILN__MAGIC; }

/* Comparison-based clamp: NaN fails both tests and comes out unchanged. */
static inline double kiln__clamp(double x, double lo, double hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* e^x in double for |x| <= 700: x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^8
 * (truncation 2e-10 relative, 0.003 float ulp), times 2^n built in the exponent field. */
static inline double kiln__exp_d(double x)
{
    const double t = x * 0x1.71547652b82fep0 + KILN__MAGIC; /* log2(e) */
    const double n = t - KILN__MAGIC;
    const double r = x - n * 0x1.62e42fefa39efp-1; /* ln 2; n ln2 rounds by < 1e-14 */
    double p = 1.0 / 40320;
    p = p * r + 1.0 / 5040;
    p = p * r + 1.0 / 720;
    p = p * r + 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const double scale = kiln__u2d((kiln__d2u(t) + 1023) << 52); /* 2^n, n in [-1022, 1023] */
    return p * scale;
}

/* e^x - 1 in double for |x| <= 700, accurate relative to the result also near 0:
 * 2^n (e^r - 1) + (2^n - 1), with e^r - 1 = r (1 + r/2 + ... + r^9/10!). */
static inline double kiln__expm1_d(double x)
{
    const double t = x * 0x1.71547652b82fep0 + KILN__MAGIC;
    const double n = t - KILN__MAGIC;
    const double r = x - n * 0x1.62e42fefa39efp-1;
    double q = 1.0 / 3628800;
    q = q * r + 1.0 / 362880;
    q = q * r + 1.0 / 40320;
    q = q * r + 1.0 / 5040;
    q = q * r + 1.0 / 720;
    q = q * r + 1.0 / 120;
    q = q * r + 1.0 / 24;
    q = q * r + 1.0 / 6;
    q = q * r + 0.5;
    q = q * r + 1.0;
    const double em1 = r * q; /* keeps the sign of r = -0 */
    const double scale = kiln__u2d((kiln__d2u(t) + 1023) << 52);
    return n == 0 ? em1 : scale * em1 + (scale - 1.0);
}

/* log(d) in double for finite d > 0: d = 2^k m with m in [sqrt(1/2), sqrt(2)), and
 * log m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716, series to s^11 (5e-11 relative). */
static inline double kiln__log_d(double d)
{
    const uint64_t u = kiln__d2u(d);
    const uint64_t t = u - 0x3fe6a09e667f3bcdULL; /* bits of sqrt(1/2) */
    const uint64_t kbits = t >> 52;               /* k + 0 or k + 4096 when negative */
    double k = kiln__u2d(0x4330000000000000ULL | kbits) - 0x1p52;
    k = k >= 2048 ? k - 4096 : k;
    const double m = kiln__u2d(u - (t & 0xfff0000000000000ULL));
    const double f = m - 1.0; /* exact */
    const double s = f / (2.0 + f);
    const double z = s * s;
    double p = 1.0 / 11;
    p = p * z + 1.0 / 9;
    p = p * z + 1.0 / 7;
    p = p * z + 1.0 / 5;
    p = p * z + 1.0 / 3;
    p = p * z + 1.0;
    return k * 0x1.62e42fefa39efp-1 + 2.0 * s * p;
}

static inline float kiln_expf(float x)
{
    /* e^-150 and e^100 are far outside float's range; clamping keeps 2^n a normal double. */
    return (float)kiln__exp_d(kiln__clamp(x, -150.0, 100.0));
}

static inline float kiln_expm1f(float x)
{
    return (float)kiln__expm1_d(kiln__clamp(x, -40.0, 100.0)); /* e^-40 - 1 rounds to -1 */
}

static inline float kiln_logf(float x)
{
    const int ok = x > 0 && x < INFINITY;
    const float r = (float)kiln__log_d(ok ? (double)x : 1.0);
    /* 0 -> -inf, negative -> NaN, +inf and NaN -> themselves */
    return ok ? r : x == 0 ? -INFINITY : x < 0 ? NAN : x;
}

static inline float kiln_log1pf(float x)
{
    /* 1 + x is exact in double for every float x > -1 that matters: |x| >= 2^-29 keeps the
     * sum's bits within 53, and below that log1p(x) rounds to x itself. */
    const int ok = x > -1 && x < INFINITY;
    const float r = (float)kiln__log_d(ok ? 1.0 + (double)x : 1.0);
    const float big = x == -1 ? -INFINITY : x < -1 ? NAN : x;
    return ok ? (fabsf(x) < 0x1p-29f ? x : r) : big;
}

static inline float kiln_tanhf(float x)
{
    /* tanh|x| = e / (e + 2) with e = expm1(2|x|): no cancellation near 0; |x| > 9.02 is 1. */
    const double a = kiln__clamp(fabs((double)x), 0.0, 20.0);
    const double e = kiln__expm1_d(2.0 * a);
    return copysignf((float)(e / (e + 2.0)), x);
}

static inline float kiln_sigmoidf(float x)
{
    /* 1 / (1 + e^-x); for x << 0 this is e^x to full relative precision, subnormals too. */
    return (float)(1.0 / (1.0 + kiln__exp_d(-kiln__clamp(x, -120.0, 120.0))));
}

static inline float kiln_erff(float x)
{
    /* |x| < 1: x P(x^2); 1 <= |x| <= 4: 1 - e^{-x^2} Q(x) with Q ~ erfcx, both Chebyshev fits
     * (P to 4e-11 relative, Q to 8e-9 relative, i.e. < 2e-9 absolute in erf); erf = 1 beyond
     * 3.92 in float. x^2 of a float is exact in double. */
    const double a = kiln__clamp(fabs((double)x), 0.0, 4.0);
    const double a2 = a * a;
    const double u = 2.0 * (a2 < 1.0 ? a2 : 1.0) - 1.0;
    double p = -0x1.449783a750122p-24;
    p = p * u + 0x1.4a9dab0d16156p-20;
    p = p * u - 0x1.263816a7c8793p-16;
    p = p * u + 0x1.c827dc3d75fd8p-13;
    p = p * u - 0x1.2b902c4de002bp-9;
    p = p * u + 0x1.4543691da5e53p-6;
    p = p * u - 0x1.1fd16291d5e66p-3;
    p = p * u + 0x1.ee51eb23846dep-1;
    const double v = ((a > 1.0 ? a : 1.0) - 2.5) * (1.0 / 1.5);
    double q = 0x1.cfb1124a9a712p-17;
    q = q * v - 0x1.35c7d47fc7985p-15;
    q = q * v + 0x1.ccee5104f5c80p-15;
    q = q * v - 0x1.2de1d0a33dd67p-13;
    q = q * v + 0x1.b2a4ab9b12b9ep-12;
    q = q * v - 0x1.0aa19e4efd0e2p-10;
    q = q * v + 0x1.3acbbc78ed984p-9;
    q = q * v - 0x1.6cdc58c5b11adp-8;
    q = q * v + 0x1.99433a67254fep-7;
    q = q * v - 0x1.ba7638bb265ebp-6;
    q = q * v + 0x1.cba83096cd9c1p-5;
    q = q * v - 0x1.c8ca3fbfbd58ap-4;
    q = q * v + 0x1.afbb3f42d4a48p-3;
    const double r = a < 1.0 ? a * p : 1.0 - kiln__exp_d(-a2) * q;
    return copysignf((float)r, x);
}

/* Bits of 2/pi for the reduction of sin/cos: row E - 126 (E the biased float exponent,
 * 126..254) holds the 96-bit window of 2/pi, as 32-bit words low to high, that multiplies
 * the 24-bit mantissa into x * 2/pi mod 4 with 62 fraction bits. Generated with mpmath:
 * F = floor(2/pi * 2^256); row = (F >> (312 - E)) mod 2^96. */
static const uint64_t kiln__inv_pio2[129 * 3] = { /* 32-bit words, held in 64: gathers */
    0x91054a7f, 0xbe60db93, 0x00000028, 0x220a94fe, 0x7cc1b727, 0x00000051,
    0x441529fc, 0xf9836e4e, 0x000000a2, 0x882a53f8, 0xf306dc9c, 0x00000145,
    0x1054a7f0, 0xe60db939, 0x0000028b, 0x20a94fe1, 0xcc1b7272, 0x00000517,
    0x41529fc2, 0x9836e4e4, 0x00000a2f, 0x82a53f84, 0x306dc9c8, 0x0000145f,
    0x054a7f09, 0x60db9391, 0x000028be, 0x0a94fe13, 0xc1b72722, 0x0000517c,
    0x1529fc27, 0x836e4e44, 0x0000a2f9, 0x2a53f84e, 0x06dc9c88, 0x000145f3,
    0x54a7f09d, 0x0db93910, 0x00028be6, 0xa94fe13a, 0x1b727220, 0x000517cc,
    0x529fc275, 0x36e4e441, 0x000a2f98, 0xa53f84ea, 0x6dc9c882, 0x00145f30,
    0x4a7f09d5, 0xdb939105, 0x0028be60, 0x94fe13ab, 0xb727220a, 0x00517cc1,
    0x29fc2757, 0x6e4e4415, 0x00a2f983, 0x53f84eaf, 0xdc9c882a, 0x0145f306,
    0xa7f09d5f, 0xb9391054, 0x028be60d, 0x4fe13abe, 0x727220a9, 0x0517cc1b,
    0x9fc2757d, 0xe4e44152, 0x0a2f9836, 0x3f84eafa, 0xc9c882a5, 0x145f306d,
    0x7f09d5f4, 0x9391054a, 0x28be60db, 0xfe13abe8, 0x27220a94, 0x517cc1b7,
    0xfc2757d1, 0x4e441529, 0xa2f9836e, 0xf84eafa3, 0x9c882a53, 0x45f306dc,
    0xf09d5f47, 0x391054a7, 0x8be60db9, 0xe13abe8f, 0x7220a94f, 0x17cc1b72,
    0xc2757d1f, 0xe441529f, 0x2f9836e4, 0x84eafa3e, 0xc882a53f, 0x5f306dc9,
    0x09d5f47d, 0x91054a7f, 0xbe60db93, 0x13abe8fa, 0x220a94fe, 0x7cc1b727,
    0x2757d1f5, 0x441529fc, 0xf9836e4e, 0x4eafa3ea, 0x882a53f8, 0xf306dc9c,
    0x9d5f47d4, 0x1054a7f0, 0xe60db939, 0x3abe8fa9, 0x20a94fe1, 0xcc1b7272,
    0x757d1f53, 0x41529fc2, 0x9836e4e4, 0xeafa3ea6, 0x82a53f84, 0x306dc9c8,
    0xd5f47d4d, 0x054a7f09, 0x60db9391, 0xabe8fa9a, 0x0a94fe13, 0xc1b72722,
    0x57d1f534, 0x1529fc27, 0x836e4e44, 0xafa3ea69, 0x2a53f84e, 0x06dc9c88,
    0x5f47d4d3, 0x54a7f09d, 0x0db93910, 0xbe8fa9a6, 0xa94fe13a, 0x1b727220,
    0x7d1f534d, 0x529fc275, 0x36e4e441, 0xfa3ea69b, 0xa53f84ea, 0x6dc9c882,
    0xf47d4d37, 0x4a7f09d5, 0xdb939105, 0xe8fa9a6e, 0x94fe13ab, 0xb727220a,
    0xd1f534dd, 0x29fc2757, 0x6e4e4415, 0xa3ea69bb, 0x53f84eaf, 0xdc9c882a,
    0x47d4d377, 0xa7f09d5f, 0xb9391054, 0x8fa9a6ee, 0x4fe13abe, 0x727220a9,
    0x1f534ddc, 0x9fc2757d, 0xe4e44152, 0x3ea69bb8, 0x3f84eafa, 0xc9c882a5,
    0x7d4d3770, 0x7f09d5f4, 0x9391054a, 0xfa9a6ee0, 0xfe13abe8, 0x27220a94,
    0xf534ddc0, 0xfc2757d1, 0x4e441529, 0xea69bb81, 0xf84eafa3, 0x9c882a53,
    0xd4d37703, 0xf09d5f47, 0x391054a7, 0xa9a6ee06, 0xe13abe8f, 0x7220a94f,
    0x534ddc0d, 0xc2757d1f, 0xe441529f, 0xa69bb81b, 0x84eafa3e, 0xc882a53f,
    0x4d377036, 0x09d5f47d, 0x91054a7f, 0x9a6ee06d, 0x13abe8fa, 0x220a94fe,
    0x34ddc0db, 0x2757d1f5, 0x441529fc, 0x69bb81b6, 0x4eafa3ea, 0x882a53f8,
    0xd377036d, 0x9d5f47d4, 0x1054a7f0, 0xa6ee06db, 0x3abe8fa9, 0x20a94fe1,
    0x4ddc0db6, 0x757d1f53, 0x41529fc2, 0x9bb81b6c, 0xeafa3ea6, 0x82a53f84,
    0x377036d8, 0xd5f47d4d, 0x054a7f09, 0x6ee06db1, 0xabe8fa9a, 0x0a94fe13,
    0xddc0db62, 0x57d1f534, 0x1529fc27, 0xbb81b6c5, 0xafa3ea69, 0x2a53f84e,
    0x77036d8a, 0x5f47d4d3, 0x54a7f09d, 0xee06db14, 0xbe8fa9a6, 0xa94fe13a,
    0xdc0db629, 0x7d1f534d, 0x529fc275, 0xb81b6c52, 0xfa3ea69b, 0xa53f84ea,
    0x7036d8a5, 0xf47d4d37, 0x4a7f09d5, 0xe06db14a, 0xe8fa9a6e, 0x94fe13ab,
    0xc0db6295, 0xd1f534dd, 0x29fc2757, 0x81b6c52b, 0xa3ea69bb, 0x53f84eaf,
    0x036d8a56, 0x47d4d377, 0xa7f09d5f, 0x06db14ac, 0x8fa9a6ee, 0x4fe13abe,
    0x0db62959, 0x1f534ddc, 0x9fc2757d, 0x1b6c52b3, 0x3ea69bb8, 0x3f84eafa,
    0x36d8a566, 0x7d4d3770, 0x7f09d5f4, 0x6db14acc, 0xfa9a6ee0, 0xfe13abe8,
    0xdb629599, 0xf534ddc0, 0xfc2757d1, 0xb6c52b32, 0xea69bb81, 0xf84eafa3,
    0x6d8a5664, 0xd4d37703, 0xf09d5f47, 0xdb14acc9, 0xa9a6ee06, 0xe13abe8f,
    0xb6295993, 0x534ddc0d, 0xc2757d1f, 0x6c52b327, 0xa69bb81b, 0x84eafa3e,
    0xd8a5664f, 0x4d377036, 0x09d5f47d, 0xb14acc9e, 0x9a6ee06d, 0x13abe8fa,
    0x6295993c, 0x34ddc0db, 0x2757d1f5, 0xc52b3278, 0x69bb81b6, 0x4eafa3ea,
    0x8a5664f1, 0xd377036d, 0x9d5f47d4, 0x14acc9e2, 0xa6ee06db, 0x3abe8fa9,
    0x295993c4, 0x4ddc0db6, 0x757d1f53, 0x52b32788, 0x9bb81b6c, 0xeafa3ea6,
    0xa5664f10, 0x377036d8, 0xd5f47d4d, 0x4acc9e21, 0x6ee06db1, 0xabe8fa9a,
    0x95993c43, 0xddc0db62, 0x57d1f534, 0x2b327887, 0xbb81b6c5, 0xafa3ea69,
    0x5664f10e, 0x77036d8a, 0x5f47d4d3, 0xacc9e21c, 0xee06db14, 0xbe8fa9a6,
    0x5993c439, 0xdc0db629, 0x7d1f534d, 0xb3278872, 0xb81b6c52, 0xfa3ea69b,
    0x664f10e4, 0x7036d8a5, 0xf47d4d37, 0xcc9e21c8, 0xe06db14a, 0xe8fa9a6e,
    0x993c4390, 0xc0db6295, 0xd1f534dd, 0x32788720, 0x81b6c52b, 0xa3ea69bb,
    0x64f10e41, 0x036d8a56, 0x47d4d377, 0xc9e21c82, 0x06db14ac, 0x8fa9a6ee,
    0x93c43904, 0x0db62959, 0x1f534ddc, 0x27887208, 0x1b6c52b3, 0x3ea69bb8,
    0x4f10e410, 0x36d8a566, 0x7d4d3770, 0x9e21c820, 0x6db14acc, 0xfa9a6ee0,
    0x3c439041, 0xdb629599, 0xf534ddc0, 0x78872083, 0xb6c52b32, 0xea69bb81,
    0xf10e4107, 0x6d8a5664, 0xd4d37703, 0xe21c820f, 0xdb14acc9, 0xa9a6ee06,
    0xc439041f, 0xb6295993, 0x534ddc0d, 0x8872083f, 0x6c52b327, 0xa69bb81b,
    0x10e4107f, 0xd8a5664f, 0x4d377036,
};

/* |x| = (n + y) pi/2 with n mod 4 and y in [-1/2, 1/2), exact for every float (Payne-Hanek
 * with one table row: m * window is < 2^120, and the bits of the product below 2^-62 and
 * above 2^2 do not matter). Returns r = y pi/2 in double; |x| < pi/4 returns x, n = 0. */
static inline double kiln__reduce_pio2(float ax, uint32_t *quadrant)
{
    const uint32_t bits = kiln__f2u(ax);
    uint64_t e = bits >> 23;
    e = e < 126 ? 126 : e > 254 ? 254 : e; /* small: unused below; inf/NaN: result is NaN */
    const uint64_t *w = kiln__inv_pio2 + 3 * (e - 126);
    const uint64_t m = (bits & 0x7fffff) | 0x800000;
    const uint64_t y = ((m * w[2]) << 32) + m * w[1] + ((m * w[0]) >> 32);
    const uint64_t n = (y + (1ULL << 61)) >> 62;
    const int64_t frac = (int64_t)(y - (n << 62)); /* in [-2^61, 2^61) */
    /* frac to double in two exact halves (see kiln__i2d), then scale by pi/2 * 2^-62. */
    const double fd = kiln__i2d(frac >> 32) * 0x1p32 + kiln__i2d((int64_t)(frac & 0xffffffff));
    /* |x| < pi/4: r = x, n = 0. Blended with bit masks, not ?:, because gcc would sink the
     * table loads into a branch and then refuse to vectorize the masked (emulated) gather. */
    const uint64_t small = -(uint64_t)(ax < 0x1.921fb6p-1f);
    *quadrant = (uint32_t)(n & ~small) & 3;
    return kiln__u2d((kiln__d2u((double)ax) & small) |
                     (kiln__d2u(fd * 0x1.921fb54442d18p-62) & ~small));
}

/* sin r and cos r for |r| <= pi/4: Taylor to r^13 and r^14 (errors < 1e-11). */
static inline double kiln__sin_poly(double r)
{
    const double z = r * r;
    double p = -1.0 / 39916800;
    p = p * z + 1.0 / 362880;
    p = p * z - 1.0 / 5040;
    p = p * z + 1.0 / 120;
    p = p * z - 1.0 / 6;
    return r + r * z * p;
}

static inline double kiln__cos_poly(double r)
{
    const double z = r * r;
    double p = 1.0 / 479001600;
    p = p * z - 1.0 / 3628800;
    p = p * z + 1.0 / 40320;
    p = p * z - 1.0 / 720;
    p = p * z + 1.0 / 24;
    p = p * z - 0.5;
    return 1.0 + z * p;
}

static inline float kiln_sinf(float x)
{
    uint32_t q;
    const double r = kiln__reduce_pio2(fabsf(x), &q);
    const double v = (q & 1) ? kiln__cos_poly(r) : kiln__sin_poly(r);
    const uint32_t neg = ((q >> 1) ^ (kiln__f2u(x) >> 31)) & 1; /* odd: sin(-x) = -sin(x) */
    const float s = (float)(neg ? -v : v);
    return x - x != 0 ? x - x : s; /* inf - inf and NaN give NaN */
}

static inline float kiln_cosf(float x)
{
    uint32_t q;
    const double r = kiln__reduce_pio2(fabsf(x), &q);
    const double v = (q & 1) ? kiln__sin_poly(r) : kiln__cos_poly(r);
    const float c = (float)(((q + 1) & 2) ? -v : v);
    return x - x != 0 ? x - x : c;
}

/* double versions: libm, which gcc does not vectorize without -ffast-math; fine for the
 * rare float64 network. */
static inline double kiln_exp(double x) { return exp(x); }
static inline double kiln_log(double x) { return log(x); }
static inline double kiln_log1p(double x) { return log1p(x); }
static inline double kiln_expm1(double x) { return expm1(x); }
static inline double kiln_tanh(double x) { return tanh(x); }
static inline double kiln_sin(double x) { return sin(x); }
static inline double kiln_cos(double x) { return cos(x); }
static inline double kiln_erf(double x) { return erf(x); }
static inline double kiln_sigmoid(double x)
{
    /* 1 / (1 + e^-x) overflows to 1/inf = 0 for x < -709, which is the right answer */
    return 1.0 / (1.0 + exp(-x));
}

#endif /* KILN_MATH_H */

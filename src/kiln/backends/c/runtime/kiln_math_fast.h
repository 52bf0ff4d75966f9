/* kiln_math_fast.h: float32 math computed in float32, for loops that must run at the speed of
 * the vector units (kiln_math.h computes float math in double: accurate everywhere, but ~5x
 * slower per element, which made exp-, tanh- and cos-heavy kernels compute-bound).
 *
 *   float kiln_fast_expf(float)   kiln_fast_logf   kiln_fast_tanhf   kiln_fast_sigmoidf
 *         kiln_fast_erff          kiln_fast_sinf   kiln_fast_cosf
 *
 * Branch-free (selects only), no tables, no calls: gcc vectorizes loops calling them 16 lanes
 * wide with AVX-512. Polynomials are minimax-style fits (tools: a reweighted least-squares fit
 * in long double, coefficients rounded to float), evaluated with fmaf when the target has FMA
 * (-march=native here) and with a*b+c otherwise (portable builds: the same results to within
 * the bounds below).
 *
 * Accuracy, max error in ulp (exhaustive C sweep over float32 with stride 97, and the sampled
 * sweep of tests/c/test_native_math.py), against the correctly rounded result and against
 * NumPy's own float32 functions (which are themselves up to 2-3 ulp from correctly rounded:
 * np.exp(-0.3444f) is 2.3 ulp off, so "vs NumPy" adds the two errors):
 *
 *   function   vs correctly rounded   vs NumPy float32     notes
 *   expf            1                     3
 *   logf            1                     3
 *   tanhf           1.5                   2.5
 *   sigmoidf        2.3                   -                 (reference: float64 rounded)
 *   erff            2                     -                 (reference: math.erf)
 *   sinf, cosf      2.5                   2                 |x| <= 2^12 only, see below
 *
 * Special values as kiln_math.h and NumPy: NaN in -> NaN out; exp(-inf) = 0, exp(inf) = inf,
 * results below float's range underflow to subnormals and 0 with one rounding; log(0) = -inf,
 * log(x < 0) = NaN, log(inf) = inf, subnormal inputs are exact; tanh/erf(+-inf) = +-1;
 * sigmoid(-inf) = 0.
 *
 * sin and cos reduce the argument in float (see kiln_fast_sinf), accurate for |x| <= 2^12;
 * beyond that, and for inf and NaN, they return garbage. Generated code checks |x| <=
 * KILN_FAST_TRIG_LIMIT per block of elements and recomputes a block that has a larger argument
 * with the accurate kiln_sinf/kiln_cosf of kiln_math.h (Payne-Hanek reduction).
 */
#ifndef KILN_MATH_FAST_H
#define KILN_MATH_FAST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __FMA__
#define KILN__FMAF(a, b, c) fmaf((a), (b), (c))
#else
#define KILN__FMAF(a, b, c) ((a) * (b) + (c))
#endif

#define KILN_FAST_TRIG_LIMIT 0x1p12f

static inline uint32_t kiln__fbits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float kiln__bitsf(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* Comparison clamp: NaN fails both tests and stays NaN. */
static inline float kiln__clampf(float x, float lo, float hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* e^x: x = n ln2 + r (Cody-Waite, ln2 in two parts), e^r by Horner, times 2^n by
 * adding n to the exponent field. Results below FLT_MIN take a second path through 2^(n+64)
 * and one rounding multiply by 2^-64 (subnormals, correctly scaled); outside [-104, 88.73] the
 * result is 0 or inf, selected last (so no clamp is needed), and NaN is passed through. */
static inline float kiln__expf_core(float x)
{
    const float t = KILN__FMAF(x, 0x1.715476p+0f, 0x1.8p23f);
    const float n = t - 0x1.8p23f;
    float r = KILN__FMAF(n, -0x1.62e400p-1f, x);
    r = KILN__FMAF(n, -0x1.7f7d1cp-20f, r);
    float p = 0x1.6a243ep-10f;
    p = KILN__FMAF(p, r, 0x1.1239d6p-7f);
    p = KILN__FMAF(p, r, 0x1.5558f2p-5f);
    p = KILN__FMAF(p, r, 0x1.555492p-3f);
    p = KILN__FMAF(p, r, 0x1.fffffcp-2f);
    p = KILN__FMAF(p, r, 1.0f);
    p = KILN__FMAF(p, r, 1.0f);
    const uint32_t shift = (kiln__fbits(t) - kiln__fbits(0x1.8p23f)) << 23;
    const uint32_t pb = kiln__fbits(p);
    const float normal = kiln__bitsf(pb + shift);
    const float tiny = kiln__bitsf(pb + shift + (64u << 23)) * 0x1p-64f;
    const float v = x < -87.3f ? tiny : normal;
    return x < -104.0f ? 0.0f : v;
}

static inline float kiln_fast_expf(float x)
{
    const float w = kiln__expf_core(x);
    return x != x ? x : (x > 88.72283f ? INFINITY : w);
}

/* e^x for x <= 0 or NaN (softmax's exp(x - max)): no overflow select, ~13% faster there. */
static inline float kiln_fast_expf_nonpos(float x)
{
    const float w = kiln__expf_core(x);
    return x != x ? x : w;
}

/* log x: x = 2^k m, m in [sqrt(1/2), sqrt(2)), f = m - 1 exactly, s = f / (2 + f),
 * log m = f - (f^2/2 - s (f^2/2 + R)) with R = s^2 L(s^2) (the fdlibm arrangement). */
static inline float kiln_fast_logf(float x)
{
    const int sub = x < 0x1p-126f;
    const float xs = sub ? x * 0x1p23f : x;
    const uint32_t u = kiln__fbits(xs);
    const uint32_t t = u - 0x3f3504f3u;
    const int32_t k = ((int32_t)t >> 23) - (sub ? 23 : 0);
    const float m = kiln__bitsf(u - (t & 0xff800000u));
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s;
    float l = 0x1.e2f2bep-3f;
    l = KILN__FMAF(l, z, 0x1.2438f2p-2f);
    l = KILN__FMAF(l, z, 0x1.999a7ap-2f);
    l = KILN__FMAF(l, z, 0x1.555554p-1f);
    const float R = z * l;
    const float hfsq = 0.5f * f * f;
    const float kf = (float)k;
    const float lo = KILN__FMAF(s, hfsq + R, kf * 0x1.7f7d1cp-20f);
    const float r = KILN__FMAF(kf, 0x1.62e400p-1f, f - (hfsq - lo));
    const int ok = x > 0.0f && x < INFINITY;
    return ok ? r : (x == 0.0f ? -INFINITY : (x < 0.0f ? NAN : x));
}

/* tanh: x + x^3 P(x^2) below 0.625; above, 1 - 2e/(1 + e) with e = exp(-2|x|). */
static inline float kiln_fast_tanhf(float x)
{
    const float z = x * x;
    float p = 0x1.18e218p-9f;
    p = KILN__FMAF(p, z, -0x1.0bf50ep-7f);
    p = KILN__FMAF(p, z, 0x1.638b5cp-6f);
    p = KILN__FMAF(p, z, -0x1.b9ee90p-5f);
    p = KILN__FMAF(p, z, 0x1.111066p-3f);
    p = KILN__FMAF(p, z, -0x1.555554p-2f);
    const float a = fabsf(x);
    const float small = KILN__FMAF(a * z, p, a);
    const float e = kiln_fast_expf(-2.0f * a);
    const float big = 1.0f - 2.0f * e / (1.0f + e);
    return copysignf(a < 0.625f ? small : big, x); /* odd: also keeps the sign of -0 */
}

/* 1 / (1 + e^-x) from e = exp(-|x|): 1/(1 + e) for x >= 0, e/(1 + e) below (no overflow,
 * full relative precision down to the subnormals). */
static inline float kiln_fast_sigmoidf(float x)
{
    const float e = kiln_fast_expf(-fabsf(x));
    const float d = 1.0f + e;
    return x >= 0.0f ? 1.0f / d : e / d;
}

/* erf: x P(x^2) below 0.9; 1 - exp(-x^2) R(x) up to 4, R a fit of erfc(x) e^{x^2}; 1 beyond
 * (erf(3.92) already rounds to 1 in float). */
static inline float kiln_fast_erff(float x)
{
    const float z = x * x;
    float p = 0x1.78ab90p-14f;
    p = KILN__FMAF(p, z, -0x1.b258dep-11f);
    p = KILN__FMAF(p, z, 0x1.55a7f6p-8f);
    p = KILN__FMAF(p, z, -0x1.b8248ep-6f);
    p = KILN__FMAF(p, z, 0x1.ce2efep-4f);
    p = KILN__FMAF(p, z, -0x1.812746p-2f);
    /* 2/sqrt(pi) in two parts: x * c0 is the leading term and must not lose its last bit */
    const float ax = fabsf(x);
    const float small = KILN__FMAF(ax, 0x1.20dd76p+0f, ax * KILN__FMAF(z, p, -0x1.f7ac92p-25f));
    const float a = kiln__clampf(ax, 0.9f, 4.0f);
    const float t = (a - 2.45f) * (1.0f / 1.55f);
    float q = 0x1.5cdf6ap-13f;
    q = KILN__FMAF(q, t, -0x1.98c478p-12f);
    q = KILN__FMAF(q, t, 0x1.0b0e3cp-11f);
    q = KILN__FMAF(q, t, -0x1.495b48p-10f);
    q = KILN__FMAF(q, t, 0x1.ae32d0p-9f);
    q = KILN__FMAF(q, t, -0x1.d9bf00p-8f);
    q = KILN__FMAF(q, t, 0x1.f65cbcp-7f);
    q = KILN__FMAF(q, t, -0x1.039e22p-5f);
    q = KILN__FMAF(q, t, 0x1.0198aap-4f);
    q = KILN__FMAF(q, t, -0x1.e83da2p-4f);
    q = KILN__FMAF(q, t, 0x1.b7796cp-3f);
    const float big = 1.0f - kiln_fast_expf(-a * a) * q;
    return copysignf(ax < 0.9f ? small : big, x); /* odd: also keeps the sign of -0 */
}

/* sin(r) for |r| <= pi/2: r + r^3 p(r^2), p a degree-4 fit of (sin(r) - r) / r^3 for
 * minimal relative error of sin (max 2.4e-11 before rounding the coefficients to float). */
static inline float kiln__fast_sin_poly(float r)
{
    const float s = r * r;
    float u = -0x1.9a6752p-26f;
    u = KILN__FMAF(u, s, 0x1.717072p-19f);
    u = KILN__FMAF(u, s, -0x1.a017dap-13f);
    u = KILN__FMAF(u, s, 0x1.11110cp-7f);
    u = KILN__FMAF(u, s, -0x1.555556p-3f);
    return KILN__FMAF(r * s, u, r);
}

/* Both functions reduce in float, by multiples of pi (sin) or odd multiples of pi/2 (cos),
 * so that one polynomial serves every quadrant: 16 lanes and one polynomial instead of the
 * 8 double lanes and two polynomials of a pi/2 reduction in double (2.7x faster on
 * x.cos().cos()). The constant is split into three 12-bit parts and a 24-bit tail: n times
 * each 12-bit part is exact for |n| < 2^12, hence KILN_FAST_TRIG_LIMIT = 2^12, and the
 * subtractions are exact or lose bits below the tail's. */
static inline float kiln_fast_sinf(float x)
{
    const float n = rintf(x * 0x1.45f306p-2f); /* x / pi */
    float r = KILN__FMAF(n, -0x1.922p+1f, x);
    r = KILN__FMAF(n, 0x1.2aep-17f, r);
    r = KILN__FMAF(n, 0x1.deap-30f, r);
    r = KILN__FMAF(n, -0x1.184698p-43f, r);
    const float v = kiln__fast_sin_poly(r); /* sin(x) = (-1)^n sin(r) */
    const float s = ((int32_t)n & 1) ? -v : v;
    return x == 0.0f ? x : s; /* sin(-0) = -0 */
}

static inline float kiln_fast_cosf(float x)
{
    const float m = rintf(KILN__FMAF(x, 0x1.45f306p-2f, -0.5f)); /* x/pi - 1/2 */
    const float q = KILN__FMAF(2.0f, m, 1.0f);                   /* x = q pi/2 + r */
    float r = KILN__FMAF(q, -0x1.922p+0f, x);
    r = KILN__FMAF(q, 0x1.2aep-18f, r);
    r = KILN__FMAF(q, 0x1.deap-31f, r);
    r = KILN__FMAF(q, -0x1.184698p-44f, r);
    const float v = kiln__fast_sin_poly(r); /* cos(x) = (-1)^(m+1) sin(r) */
    return ((int32_t)m & 1) ? v : -v;
}

/* Whether kiln_fast_sinf/cosf are exact to their bound for x (false for inf and NaN too). */
static inline int kiln_fast_trig_ok(float x) { return fabsf(x) <= KILN_FAST_TRIG_LIMIT; }

#endif /* KILN_MATH_FAST_H */

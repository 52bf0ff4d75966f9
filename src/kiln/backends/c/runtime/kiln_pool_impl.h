/* One precision of kiln_conv.h's 2-D pooling; included twice. Needs KILN_T and KILN_X.
 *
 * Threads take whole (n, c) planes. Forward kernels run one pass per window tap over an output
 * row (vectorizable for stride 1); backward kernels scatter window by window inside a plane,
 * which is race-free because a plane belongs to one thread. */

#define KILN__PL(name) KILN__CAT(KILN__CAT(kiln__pool_, KILN_X), name)
#define KILN__PL_API(name) KILN__CAT(KILN__CAT(kiln_, name), KILN__CAT(_, KILN_X))

/* Valid arguments for pooling N x C planes of H x W into OH x OW. */
static inline int KILN__PL(_check)(int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH,
                                   int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                   int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
    const int64_t big = (int64_t)1 << 40;
    if (N < 0 || C < 0 || H < 0 || W < 0 || OH < 0 || OW < 0 || kh < 1 || kw < 1 || sh < 1 ||
        sw < 1 || ph < 0 || pw < 0 || dh < 1 || dw < 1)
        return -1;
    if (N > big || C > big || H > big || W > big || OH > big || OW > big || kh > big ||
        kw > big || sh > big || sw > big || ph > big || pw > big || dh > big || dw > big)
        return -1;
    return 0;
}

static KILN__MAYBE_UNUSED int KILN__PL_API(max_pool2d)(
    const KILN_T *x, KILN_T *out, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH,
    int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
    int64_t dh, int64_t dw)
{
    if (KILN__PL(_check)(N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw)) return -1;
    const int64_t planes = N * C;
    const int nt = kiln__conv_threads((double)planes * OH * OW * kh * kw);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const KILN_T *xp = x + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
            KILN_T *restrict orow = out + (pl * OH + oh) * OW;
            for (int64_t ow = 0; ow < OW; ++ow) orow[ow] = -(KILN_T)INFINITY;
            for (int64_t i = 0; i < kh; ++i) {
                const int64_t ih = oh * sh - ph + i * dh;
                if (ih < 0 || ih >= H) continue;
                for (int64_t j = 0; j < kw; ++j) {
                    int64_t lo, hi;
                    KILN__CAT(KILN__CAT(kiln__conv_, KILN_X), _valid_cols)(0, OW, sw, j * dw - pw,
                                                                          W, &lo, &hi);
                    const KILN_T *restrict src = xp + ih * W + j * dw - pw;
                    /* NaN wins and stays: once m is NaN, v > m is false for every v. */
                    for (int64_t ow = lo; ow < hi; ++ow) {
                        const KILN_T v = src[ow * sw], m = orow[ow];
                        orow[ow] = (v > m || v != v) ? v : m;
                    }
                }
            }
        }
    }
    return 0;
}

static KILN__MAYBE_UNUSED int KILN__PL_API(max_pool2d_backward)(
    const KILN_T *gy, const KILN_T *x, KILN_T *dx, int64_t N, int64_t C, int64_t H, int64_t W,
    int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
    int64_t pw, int64_t dh, int64_t dw)
{
    if (KILN__PL(_check)(N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw)) return -1;
    const int64_t planes = N * C;
    const int nt = kiln__conv_threads((double)planes * OH * OW * kh * kw);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const KILN_T *xp = x + pl * H * W;
        const KILN_T *gp = gy + pl * OH * OW;
        KILN_T *dp = dx + pl * H * W;
        for (int64_t t = 0; t < H * W; ++t) dp[t] = 0;
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                /* np.argmax over the window in row-major order, positions outside x being
                 * -inf: the first NaN, else the first maximum (possibly a padding slot). */
                KILN_T best = 0;
                int64_t at = -1; /* -1: the winner is outside the input */
                int started = 0, done = 0;
                for (int64_t i = 0; i < kh && !done; ++i) {
                    const int64_t ih = oh * sh - ph + i * dh;
                    for (int64_t j = 0; j < kw; ++j) {
                        const int64_t iw = ow * sw - pw + j * dw;
                        const int inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
                        const KILN_T v = inside ? xp[ih * W + iw] : -(KILN_T)INFINITY;
                        if (!started || v > best || v != v) {
                            best = v, at = inside ? ih * W + iw : -1, started = 1;
                            if (v != v) {
                                done = 1;
                                break;
                            }
                        }
                    }
                }
                if (at >= 0) dp[at] += gp[oh * OW + ow];
            }
    }
    return 0;
}

/* Per-dimension window sizes for the divisor: avg_divisors() of ops/pool.py. */
static inline int64_t KILN__PL(_span)(int64_t o, int64_t k, int64_t s, int64_t p, int64_t size,
                                      int count_include_pad)
{
    const int64_t start = o * s - p;
    const int64_t end = start + k < size + p ? start + k : size + p;
    if (count_include_pad) return end - start;
    return (end < size ? end : size) - (start > 0 ? start : 0);
}

static inline KILN_T KILN__PL(_divisor)(int64_t oh, int64_t ow, int64_t H, int64_t W,
                                        int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                        int64_t ph, int64_t pw, int count_include_pad,
                                        int64_t divisor_override)
{
    if (divisor_override > 0) return (KILN_T)divisor_override;
    const int64_t d = KILN__PL(_span)(oh, kh, sh, ph, H, count_include_pad) *
                      KILN__PL(_span)(ow, kw, sw, pw, W, count_include_pad);
    return (KILN_T)(d > 1 ? d : 1);
}

static KILN__MAYBE_UNUSED int KILN__PL_API(avg_pool2d)(
    const KILN_T *x, KILN_T *out, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH,
    int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
    int count_include_pad, int64_t divisor_override)
{
    if (KILN__PL(_check)(N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1)) return -1;
    const int64_t planes = N * C;
    const int nt = kiln__conv_threads((double)planes * OH * OW * kh * kw);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const KILN_T *xp = x + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
            KILN_T *restrict orow = out + (pl * OH + oh) * OW;
            for (int64_t ow = 0; ow < OW; ++ow) orow[ow] = 0;
            for (int64_t i = 0; i < kh; ++i) {
                const int64_t ih = oh * sh - ph + i;
                if (ih < 0 || ih >= H) continue;
                for (int64_t j = 0; j < kw; ++j) {
                    int64_t lo, hi;
                    KILN__CAT(KILN__CAT(kiln__conv_, KILN_X), _valid_cols)(0, OW, sw, j - pw, W,
                                                                          &lo, &hi);
                    const KILN_T *restrict src = xp + ih * W + j - pw;
                    for (int64_t ow = lo; ow < hi; ++ow) orow[ow] += src[ow * sw];
                }
            }
            for (int64_t ow = 0; ow < OW; ++ow)
                orow[ow] /= KILN__PL(_divisor)(oh, ow, H, W, kh, kw, sh, sw, ph, pw,
                                               count_include_pad, divisor_override);
        }
    }
    return 0;
}

static KILN__MAYBE_UNUSED int KILN__PL_API(avg_pool2d_backward)(
    const KILN_T *gy, KILN_T *dx, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH,
    int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
    int count_include_pad, int64_t divisor_override)
{
    if (KILN__PL(_check)(N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1)) return -1;
    const int64_t planes = N * C;
    const int nt = kiln__conv_threads((double)planes * OH * OW * kh * kw);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const KILN_T *gp = gy + pl * OH * OW;
        KILN_T *dp = dx + pl * H * W;
        for (int64_t t = 0; t < H * W; ++t) dp[t] = 0;
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                const KILN_T share =
                    gp[oh * OW + ow] / KILN__PL(_divisor)(oh, ow, H, W, kh, kw, sh, sw, ph, pw,
                                                          count_include_pad, divisor_override);
                for (int64_t i = 0; i < kh; ++i) {
                    const int64_t ih = oh * sh - ph + i;
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t j = 0; j < kw; ++j) {
                        const int64_t iw = ow * sw - pw + j;
                        if (iw >= 0 && iw < W) dp[ih * W + iw] += share;
                    }
                }
            }
    }
    return 0;
}

#undef KILN__PL
#undef KILN__PL_API

/* One precision of kiln_conv.h's convolutions; included twice. Needs KILN_T (float or double),
 * KILN_X (f32 or f64), KILN_GEMM_FN (kiln_sgemm or kiln_dgemm) and, with AVX-512, the vector
 * vocabulary defined in kiln_conv.h. */

#define KILN__CV(name) KILN__CAT(KILN__CAT(kiln__conv_, KILN_X), name)
#define KILN__CV_API(name) KILN__CAT(KILN__CAT(kiln_, name), KILN__CAT(_, KILN_X))

/* Output columns q in [0, run) of one output row whose input column (ow0 + q) * s + off lies
 * in [0, size): [*lo, *hi). */
static inline void KILN__CV(_valid_cols)(int64_t ow0, int64_t run, int64_t s, int64_t off,
                                         int64_t size, int64_t *lo, int64_t *hi)
{
    /* (ow0 + q) * s + off >= 0  <=>  q >= ceil((-off) / s) - ow0 */
    int64_t a, b; /* b: the first q with column >= size */
    if (s == 1) {
        a = -off - ow0, b = size - off - ow0;
    } else {
        a = -kiln__floordiv(off, s) - ow0;
        b = -kiln__floordiv(off - size, s) - ow0;
    }
    a = a < 0 ? 0 : a > run ? run : a;
    b = b < a ? a : b > run ? run : b;
    *lo = a, *hi = b;
}

/* dst[q] = im2col(x)[k, p0 + q] for q < pc; x is one image's group of channels. */
static void KILN__CV(_im2col_row)(const KILN_T *x, const kiln__conv_geom *g, int64_t k,
                                  int64_t p0, int64_t pc, KILN_T *restrict dst)
{
    const int64_t c = k / (g->KH * g->KW), i = (k / g->KW) % g->KH, j = k % g->KW;
    int64_t oh = p0 / g->OW, ow = p0 % g->OW, row_lo, row_hi;
    KILN__CV(_valid_cols)(0, g->OW, g->sw, j * g->dw - g->pw, g->W, &row_lo, &row_hi);
    for (int64_t q = 0; q < pc;) {
        const int64_t run = g->OW - ow < pc - q ? g->OW - ow : pc - q;
        const int64_t ih = oh * g->sh - g->ph + i * g->dh;
        int64_t lo = 0, hi = 0;
        if (ih >= 0 && ih < g->H) {
            if (ow == 0 && run == g->OW) /* whole output rows: the common case */
                lo = row_lo, hi = row_hi;
            else
                KILN__CV(_valid_cols)(ow, run, g->sw, j * g->dw - g->pw, g->W, &lo, &hi);
        }
        KILN_T *restrict d = dst + q;
        for (int64_t t = 0; t < lo; ++t) d[t] = 0;
        if (hi > lo) {
            /* Index of column ow + t is at + t * sw, >= 0 for the valid t. */
            const int64_t at = c * g->HW + ih * g->W + j * g->dw - g->pw + ow * g->sw;
            const KILN_T *restrict src = x + at;
            if (g->sw == 1) /* runs are short (7 to 56): a loop beats a memcpy call */
                for (int64_t t = lo; t < hi; ++t) d[t] = src[t];
            else if (g->sw == 2)
                for (int64_t t = lo; t < hi; ++t) d[t] = src[2 * t];
            else
                for (int64_t t = lo; t < hi; ++t) d[t] = src[t * g->sw];
        }
        for (int64_t t = hi; t < run; ++t) d[t] = 0;
        q += run, ow = 0, ++oh;
    }
}

/* col[k * ldcol + q] = im2col(x)[k, p0 + q] for q < pc. */
static void KILN__CV(_im2col)(const KILN_T *x, const kiln__conv_geom *g, int64_t p0,
                              int64_t pc, KILN_T *col, int64_t ldcol, int nt)
{
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t k = 0; k < g->Kg; ++k) KILN__CV(_im2col_row)(x, g, k, p0, pc, col + k * ldcol);
}

/* dx += col2im(col) for columns p0 .. p0 + pc; threads own whole channels, so nothing races. */
static void KILN__CV(_col2im_add)(const KILN_T *col, int64_t ldcol, const kiln__conv_geom *g,
                                  int64_t p0, int64_t pc, KILN_T *dx, int nt)
{
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t c = 0; c < g->cg; ++c)
        for (int64_t i = 0; i < g->KH; ++i)
            for (int64_t j = 0; j < g->KW; ++j) {
                const KILN_T *src = col + ((c * g->KH + i) * g->KW + j) * ldcol;
                int64_t oh = p0 / g->OW, ow = p0 % g->OW;
                for (int64_t q = 0; q < pc;) {
                    const int64_t run = g->OW - ow < pc - q ? g->OW - ow : pc - q;
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih >= 0 && ih < g->H) {
                        int64_t lo, hi;
                        KILN__CV(_valid_cols)(ow, run, g->sw, j * g->dw - g->pw, g->W, &lo, &hi);
                        KILN_T *d = dx + c * g->HW + ih * g->W + j * g->dw - g->pw;
                        const KILN_T *s = src + q;
                        for (int64_t t = lo; t < hi; ++t) d[(ow + t) * g->sw] += s[t];
                    }
                    q += run, ow = 0, ++oh;
                }
            }
}

#ifdef KILN__CONV_AVX512
#include "kiln_conv_avx512_impl.h"
#endif

/* out = act(out + bias[o] + residual) over all N x O rows of P values. */
static void KILN__CV(_epilogue)(KILN_T *out, const KILN_T *bias, const KILN_T *res,
                                const kiln__conv_geom *g, int act)
{
    if (!bias && !res && act == KILN_ACT_NONE) return;
    const int64_t rows = g->N * g->O, P = g->P;
    const int nt = kiln__conv_threads((double)rows * P / 8);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        KILN_T *o = out + r * P;
        const KILN_T b = bias ? bias[r % g->O] : (KILN_T)0;
        const KILN_T *rr = res ? res + r * P : NULL;
        for (int64_t p = 0; p < P; ++p) {
            KILN_T v = o[p] + b;
            if (rr) v += rr[p];
            if (act == KILN_ACT_RELU) v = v < 0 ? (KILN_T)0 : v; /* NaN stays NaN */
            o[p] = v;
        }
    }
}

/* Direct convolution, for few channels per group (depthwise): per output row, one vector pass
 * per kernel tap. Threads take whole (n, o) planes. */
static void KILN__CV(_fwd_direct)(const KILN_T *x, const KILN_T *w, const KILN_T *bias,
                                  const KILN_T *res, KILN_T *out, const kiln__conv_geom *g,
                                  int act)
{
    const int64_t planes = g->N * g->O;
    const int nt = kiln__conv_threads((double)planes * g->P * (g->Kg + 4));
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t pl = 0; pl < planes; ++pl) {
        const int64_t n = pl / g->O, o = pl % g->O, grp = o / g->og;
        const KILN_T *xg = x + (n * g->C + grp * g->cg) * g->HW;
        const KILN_T *wo = w + o * g->Kg;
        const KILN_T b = bias ? bias[o] : (KILN_T)0;
        for (int64_t oh = 0; oh < g->OH; ++oh) {
            KILN_T *restrict orow = out + pl * g->P + oh * g->OW;
            for (int64_t ow = 0; ow < g->OW; ++ow) orow[ow] = 0;
            for (int64_t c = 0; c < g->cg; ++c)
                for (int64_t i = 0; i < g->KH; ++i) {
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    const int row_in = ih >= 0 && ih < g->H;
                    for (int64_t j = 0; j < g->KW; ++j) {
                        const KILN_T wv = wo[(c * g->KH + i) * g->KW + j];
                        int64_t lo = 0, hi = 0;
                        if (row_in)
                            KILN__CV(_valid_cols)(0, g->OW, g->sw, j * g->dw - g->pw, g->W, &lo,
                                                  &hi);
                        if (!isfinite(wv)) {
                            /* Padding is zeros, and 0 * inf or 0 * NaN is NaN, as in the
                             * reference (and torch): skipping padded taps would hide it. */
                            const KILN_T poison = wv * (KILN_T)0;
                            for (int64_t ow = 0; ow < lo; ++ow) orow[ow] += poison;
                            for (int64_t ow = hi; ow < g->OW; ++ow) orow[ow] += poison;
                        }
                        if (!row_in) continue;
                        const KILN_T *restrict src = xg + c * g->HW + ih * g->W + j * g->dw - g->pw;
                        if (g->sw == 1)
                            for (int64_t ow = lo; ow < hi; ++ow) orow[ow] += wv * src[ow];
                        else
                            for (int64_t ow = lo; ow < hi; ++ow) orow[ow] += wv * src[ow * g->sw];
                    }
                }
            const KILN_T *rrow = res ? res + pl * g->P + oh * g->OW : NULL;
            for (int64_t ow = 0; ow < g->OW; ++ow) {
                KILN_T v = orow[ow] + b;
                if (rrow) v += rrow[ow];
                if (act == KILN_ACT_RELU) v = v < 0 ? (KILN_T)0 : v;
                orow[ow] = v;
            }
        }
    }
}

/* im2col chunks (or x itself for 1x1 convolutions) through kiln_gemm, then the epilogue. */
static void KILN__CV(_fwd_gemm)(const KILN_T *x, const KILN_T *w, const KILN_T *bias,
                                const KILN_T *res, KILN_T *out, const kiln__conv_geom *g,
                                int act, KILN_T *col)
{
    const int64_t P = g->P, og = g->og, Kg = g->Kg;
    if (kiln__conv_is_pointwise(g)) {
        for (int64_t grp = 0; grp < g->G; ++grp)
            KILN__CAT(KILN_GEMM_FN, _batched)(g->N, 0, 0, og, P, Kg, 1, w + grp * og * Kg, Kg, 0,
                                              x + grp * g->cg * g->HW, P, g->C * g->HW, 0,
                                              out + grp * og * P, P, g->O * P);
    } else {
        const int64_t pc = kiln__conv_chunk_cols(Kg, P);
        const int nt = kiln__conv_threads((double)Kg * pc);
        for (int64_t n = 0; n < g->N; ++n)
            for (int64_t grp = 0; grp < g->G; ++grp)
                for (int64_t p0 = 0; p0 < P; p0 += pc) {
                    const int64_t cur = P - p0 < pc ? P - p0 : pc;
                    KILN__CV(_im2col)(x + (n * g->C + grp * g->cg) * g->HW, g, p0, cur, col, cur,
                                      nt);
                    KILN_GEMM_FN(0, 0, og, cur, Kg, 1, w + grp * og * Kg, Kg, col, cur, 0,
                                 out + (n * g->O + grp * og) * P + p0, P);
                }
    }
    KILN__CV(_epilogue)(out, bias, res, g, act);
}

/* Few multiply-adds per output row of the GEMM: the direct kernel wins (see native_conv.py). */
static inline int KILN__CV(_use_direct)(const kiln__conv_geom *g)
{
    return g->og * g->cg <= 16 && g->og <= 4;
}

/* Runs the forward if it can do so without scratch memory; returns 0 if it did. */
static int KILN__CV(_fwd_nows)(const KILN_T *x, const KILN_T *w, const KILN_T *bias,
                               const KILN_T *res, KILN_T *out, const kiln__conv_geom *g, int act)
{
    if (KILN__CV(_use_direct)(g)) {
        KILN__CV(_fwd_direct)(x, w, bias, res, out, g, act);
        return 0;
    }
#ifdef KILN__CONV_AVX512
    if (KILN__CV(_avx512_fits)(g)) {
        KILN__CV(_fwd_avx512)(x, w, bias, res, out, g, act);
        return 0;
    }
#endif
    return -1;
}

static void KILN__CV(_fill)(KILN_T *p, int64_t n, KILN_T v)
{
    for (int64_t i = 0; i < n; ++i) p[i] = v;
}

static KILN__MAYBE_UNUSED int KILN__CV_API(conv2d)(
    const KILN_T *x, const KILN_T *w, const KILN_T *bias, const KILN_T *residual, KILN_T *out,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t sh,
    int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups, int act,
    void *ws)
{
    kiln__conv_geom g;
    if (kiln__conv_geom_init(&g, N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups) ||
        (act != KILN_ACT_NONE && act != KILN_ACT_RELU))
        return KILN_CONV_EARG;
    if (N == 0 || O == 0) return KILN_CONV_OK;
    if (g.Kg == 0) { /* no input channels: the convolution is zero */
        KILN__CV(_fill)(out, N * O * g.P, 0);
        KILN__CV(_epilogue)(out, bias, residual, &g, act);
        return KILN_CONV_OK;
    }
    if (KILN__CV(_fwd_nows)(x, w, bias, residual, out, &g, act) == 0) return KILN_CONV_OK;
    int owned;
    KILN_T *col = (KILN_T *)kiln__conv_ws_take(
        ws, kiln__conv_ws_elems(KILN_CONV_FORWARD, &g) * (int64_t)sizeof(KILN_T), &owned);
    if (owned && !col) return KILN_CONV_ENOMEM;
    KILN__CV(_fwd_gemm)(x, w, bias, residual, out, &g, act, col);
    kiln__conv_ws_release(col, owned);
    return KILN_CONV_OK;
}

static int KILN__CV(_all_finite)(const KILN_T *v, int64_t n)
{
    KILN_T acc = 0; /* v * 0 is 0 for finite v, NaN for inf and NaN: one branch at the end */
    for (int64_t i = 0; i < n; ++i) acc += v[i] * (KILN_T)0;
    return acc == 0;
}

/* wt (C, og, KH, KW) = w (O, cg, KH, KW) with each group's two channel axes swapped and the
 * kernel rotated by 180 degrees: conv2d_input_grad of a stride-1 conv is conv2d(g, wt). */
static void KILN__CV(_flip_weight)(const KILN_T *w, KILN_T *wt, const kiln__conv_geom *g)
{
    /* In 16 x 16 (o, c) tiles: reads and writes both run over 16 * KH * KW contiguous values. */
    const int64_t khw = g->KH * g->KW, ob = (g->og + 15) / 16, cb = (g->cg + 15) / 16;
    const int nt = kiln__conv_threads((double)g->O * g->Kg / 4);
    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t tile = 0; tile < g->G * cb * ob; ++tile) {
        const int64_t grp = tile / (cb * ob), c0 = tile / ob % cb * 16, o0 = tile % ob * 16;
        for (int64_t c = c0; c < c0 + 16 && c < g->cg; ++c)
            for (int64_t o = o0; o < o0 + 16 && o < g->og; ++o) {
                const KILN_T *src = w + ((grp * g->og + o) * g->cg + c) * khw;
                KILN_T *dst = wt + ((grp * g->cg + c) * g->og + o) * khw;
                for (int64_t t = 0; t < khw; ++t) dst[t] = src[khw - 1 - t];
            }
    }
}

static KILN__MAYBE_UNUSED int KILN__CV_API(conv2d_input_grad)(
    const KILN_T *gy, const KILN_T *w, KILN_T *dx, int64_t N, int64_t C, int64_t H, int64_t W,
    int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
    int64_t dh, int64_t dw, int64_t groups, void *ws)
{
    kiln__conv_geom g;
    if (kiln__conv_geom_init(&g, N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups))
        return KILN_CONV_EARG;
    if (N == 0 || C == 0) return KILN_CONV_OK;
    if (O == 0) {
        KILN__CV(_fill)(dx, N * C * g.HW, 0);
        return KILN_CONV_OK;
    }
    int owned;
    KILN_T *buf = (KILN_T *)kiln__conv_ws_take(
        ws, kiln__conv_ws_elems(KILN_CONV_INPUT_GRAD, &g) * (int64_t)sizeof(KILN_T), &owned);
    if (owned && !buf) return KILN_CONV_ENOMEM;
    const int64_t fph = (KH - 1) * dh - ph, fpw = (KW - 1) * dw - pw;
    kiln__conv_geom ft;
    /* The flipped forward pads g with zeros, but the reference has no such terms: a
     * non-finite weight would make NaN (0 * inf) where col2im below adds nothing. */
    if (sh == 1 && sw == 1 && fph >= 0 && fpw >= 0 && KILN__CV(_all_finite)(w, O * g.Kg) &&
        kiln__conv_geom_init(&ft, N, O, g.OH, g.OW, C, KH, KW, 1, 1, fph, fpw, dh, dw,
                             groups) == 0 &&
        ft.OH == H && ft.OW == W) {
        KILN__CV(_flip_weight)(w, buf, &g);
        if (KILN__CV(_fwd_nows)(gy, buf, NULL, NULL, dx, &ft, KILN_ACT_NONE) == 0) {
            kiln__conv_ws_release(buf, owned);
            return KILN_CONV_OK;
        }
    }
    const int64_t P = g.P, og = g.og, Kg = g.Kg;
    if (kiln__conv_is_pointwise(&g)) {
        for (int64_t grp = 0; grp < groups; ++grp)
            KILN__CAT(KILN_GEMM_FN, _batched)(N, 1, 0, g.cg, P, og, 1, w + grp * og * Kg, Kg, 0,
                                              gy + grp * og * P, P, O * P, 0,
                                              dx + grp * g.cg * g.HW, P, C * g.HW);
    } else {
        KILN_T *col = buf + O * Kg;
        const int64_t pc = kiln__conv_chunk_cols(Kg, P);
        const int nt = kiln__conv_threads((double)Kg * pc);
        KILN__CV(_fill)(dx, N * C * g.HW, 0);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t grp = 0; grp < groups; ++grp)
                for (int64_t p0 = 0; p0 < P; p0 += pc) {
                    const int64_t cur = P - p0 < pc ? P - p0 : pc;
                    KILN_GEMM_FN(1, 0, Kg, cur, og, 1, w + grp * og * Kg, Kg,
                                 gy + (n * O + grp * og) * P + p0, P, 0, col, cur);
                    KILN__CV(_col2im_add)(col, cur, &g, p0, cur,
                                          dx + (n * C + grp * g.cg) * g.HW, nt);
                }
    }
    kiln__conv_ws_release(buf, owned);
    return KILN_CONV_OK;
}

static KILN__MAYBE_UNUSED int KILN__CV_API(conv2d_weight_grad)(
    const KILN_T *x, const KILN_T *gy, KILN_T *dwt, int64_t N, int64_t C, int64_t H, int64_t W,
    int64_t O, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
    int64_t dh, int64_t dw, int64_t groups, void *ws)
{
    kiln__conv_geom g;
    if (kiln__conv_geom_init(&g, N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups))
        return KILN_CONV_EARG;
    const int64_t P = g.P, og = g.og, Kg = g.Kg, NP = N * g.P;
    if (O == 0 || Kg == 0) return KILN_CONV_OK;
    if (NP == 0) {
        KILN__CV(_fill)(dwt, O * Kg, 0);
        return KILN_CONV_OK;
    }
    if (kiln__conv_is_pointwise(&g)) { /* dW[g] = sum_n G[n, g] @ x[n, g]^T, no copy */
        for (int64_t grp = 0; grp < groups; ++grp)
            for (int64_t n = 0; n < N; ++n)
                KILN_GEMM_FN(0, 1, og, Kg, P, 1, gy + (n * O + grp * og) * P, P,
                             x + (n * C + grp * g.cg) * g.HW, P, n ? 1 : 0,
                             dwt + grp * og * Kg, Kg);
        return KILN_CONV_OK;
    }
    int owned;
    KILN_T *col = (KILN_T *)kiln__conv_ws_take(
        ws, kiln__conv_ws_elems(KILN_CONV_WEIGHT_GRAD, &g) * (int64_t)sizeof(KILN_T), &owned);
    if (owned && !col) return KILN_CONV_ENOMEM;
#ifdef KILN__CONV_AVX512
    if (!KILN__CV(_use_direct)(&g) && KILN__CV(_wgrad_fits)(&g)) {
        KILN__CV(_wgrad_avx512)(x, gy, dwt, &g, col);
        kiln__conv_ws_release(col, owned);
        return KILN_CONV_OK;
    }
#endif
    /* Chunks of K rows x batch positions (n, p), so small maps still make long GEMMs; a chunk
     * within one image reads g in place, others gather it beside the im2col rows. */
    int64_t kch, jc;
    kiln__conv_wgrad_chunks(&g, &kch, &jc);
    KILN_T *gbuf = col + kch * jc;
    const int nt = kiln__conv_threads((double)kch * jc);
    for (int64_t grp = 0; grp < groups; ++grp)
        for (int64_t kc0 = 0; kc0 < Kg; kc0 += kch) {
            const int64_t kn = Kg - kc0 < kch ? Kg - kc0 : kch;
            for (int64_t j0 = 0; j0 < NP; j0 += jc) {
                const int64_t cur = NP - j0 < jc ? NP - j0 : jc;
                const int64_t n0 = j0 / P, n1 = (j0 + cur - 1) / P;
                for (int64_t n = n0; n <= n1; ++n) {
                    const int64_t lo = n == n0 ? j0 - n * P : 0;
                    const int64_t hi = n == n1 ? j0 + cur - n * P : P;
                    const int64_t at = n * P + lo - j0;
                    const KILN_T *xg = x + (n * C + grp * g.cg) * g.HW;
                    (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
                    for (int64_t k = 0; k < kn; ++k)
                        KILN__CV(_im2col_row)(xg, &g, kc0 + k, lo, hi - lo, col + k * cur + at);
                    if (n0 != n1)
                        for (int64_t o = 0; o < og; ++o)
                            memcpy(gbuf + o * cur + at, gy + (n * O + grp * og + o) * P + lo,
                                   (size_t)(hi - lo) * sizeof(KILN_T));
                }
                const KILN_T *a = n0 == n1 ? gy + (n0 * O + grp * og) * P + (j0 - n0 * P) : gbuf;
                KILN_GEMM_FN(0, 1, og, kn, cur, 1, a, n0 == n1 ? P : cur, col, cur, j0 ? 1 : 0,
                             dwt + grp * og * Kg + kc0, Kg);
            }
        }
    kiln__conv_ws_release(col, owned);
    return KILN_CONV_OK;
}

#undef KILN__CV
#undef KILN__CV_API

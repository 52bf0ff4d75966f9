/* AVX-512 implicit-GEMM conv2d forward, one precision; included by kiln_conv_impl.h.
 *
 * Needs KILN_T, KILN_X and the vector vocabulary of kiln_conv.h (KILN_VL lanes per vector,
 * KILN_VT/KILN_IT/KILN_MT and the KILN_V_* / KILN_I_* macros).
 *
 * out[n, g] (og x P) = W[g] (og x Kg) @ B,  B = im2col(x[n, g]) (Kg x P), never materialized:
 *   for each K slice of at most KILN__CV_KC rows
 *     for each panel of NR = 2 vectors of output columns
 *       pack B[slice, panel] from x into a stack buffer that stays in L1
 *       for each micro-row block of at most 14 output channels
 *         14 x NR register tile += W rows (broadcast, unpacked) x panel
 * The first K slice stores, later ones accumulate, the last one applies bias, residual and
 * relu. Padding and ragged edges are lane masks: the packer loads zeros, the kernel stores
 * only valid lanes.
 */

#define KILN__CV_NR (2 * KILN_VL)
#define KILN__CV_MR 14 /* 28 accumulators + 2 panel vectors + 1 broadcast = 31 of 32 zmm */
#define KILN__CV_KC 256
#define KILN__CV_ACC 1  /* micro-kernel mode bits: add to what is stored, ... */
#define KILN__CV_LAST 2 /* ... and apply the epilogue */
#define KILN__CV_GATHER 0
#define KILN__CV_DENSE 1
#define KILN__CV_EVEN 2

/* Per panel of output columns j0 .. j0 + valid - 1 of the batch (j = n * P + p): where each
 * column's window starts, relative to x[n0, g, 0, 0]. A panel may run from image n0 into
 * n0 + 1 (its first `split` columns are in n0). */
typedef struct {
    int32_t ih0[KILN__CV_NR], iw0[KILN__CV_NR], base[KILN__CV_NR];
    int kind[2]; /* how vector v loads: KILN__CV_GATHER, or its valid lanes read addresses
                    1 (KILN__CV_DENSE) or 2 (KILN__CV_EVEN) apart */
    int64_t valid, split, n0, p0;
} KILN__CV(_panel_t);

/* Where a micro-kernel's output tile goes: row i of the tile is c + i * ldc (lanes m0, m1)
 * and, for a panel that crosses into the next image, c2 + i * ldc (lanes m0b, m1b); residual
 * rows likewise. */
typedef struct {
    KILN_T *c, *c2;
    const KILN_T *res, *res2, *bias;
    int64_t ldc;
    KILN_MT m0, m1, m0b, m1b;
    int mode, act;
} KILN__CV(_tile_t);

/* The lane offsets fit int32 (gather indices, masks by unsigned compare). */
static int KILN__CV(_avx512_fits)(const kiln__conv_geom *g)
{
    const int64_t lim = (int64_t)1 << 30;
    const int64_t hmax = g->OH * g->sh + g->KH * g->dh + g->ph + 1;
    const int64_t wmax = g->OW * g->sw + g->KW * g->dw + g->pw + 1;
    return hmax < lim && wmax < lim && g->W < lim && g->cg * g->HW + hmax * (g->W + 1) + wmax < lim;
}

/* Batch columns may share a panel: offsets up to the second image fit int32 too. */
static int KILN__CV(_span_fits)(const kiln__conv_geom *g)
{
    const int64_t lim = (int64_t)1 << 30;
    const int64_t hmax = g->OH * g->sh + g->KH * g->dh + g->ph + 1;
    const int64_t wmax = g->OW * g->sw + g->KW * g->dw + g->pw + 1;
    return 2 * g->C * g->HW + hmax * (g->W + 1) + wmax < lim;
}

/* Panel of batch columns j0 .. min(j0 + NR, end) - 1, which span at most two images. */
static void KILN__CV(_panel_setup)(const kiln__conv_geom *g, int64_t j0, int64_t end,
                                   KILN__CV(_panel_t) *pm)
{
    int64_t n = j0 / g->P, p = j0 % g->P;
    int64_t oh = p / g->OW, ow = p % g->OW;
    pm->valid = end - j0 < KILN__CV_NR ? end - j0 : KILN__CV_NR;
    pm->split = g->P - p < pm->valid ? g->P - p : pm->valid;
    pm->n0 = n, pm->p0 = p;
    for (int l = 0; l < KILN__CV_NR; ++l) {
        if (l < pm->valid) {
            pm->ih0[l] = (int32_t)(oh * g->sh - g->ph);
            pm->iw0[l] = (int32_t)(ow * g->sw - g->pw);
            pm->base[l] = (int32_t)((n - pm->n0) * g->C * g->HW +
                                    (oh * g->sh - g->ph) * g->W + ow * g->sw - g->pw);
            if (++ow == g->OW) {
                ow = 0;
                if (++oh == g->OH) oh = 0, ++n;
            }
        } else { /* a row far below zero: never valid, whatever the kernel row */
            pm->ih0[l] = -(1 << 30);
            pm->iw0[l] = 0;
            pm->base[l] = 0;
        }
    }
    for (int v = 0; v < 2; ++v) {
        int dense = 1, even = 1;
        for (int l = v * KILN_VL + 1; l < (v + 1) * KILN_VL && l < pm->valid; ++l) {
            dense &= pm->base[l] == pm->base[v * KILN_VL] + (l - v * KILN_VL);
            even &= pm->base[l] == pm->base[v * KILN_VL] + 2 * (l - v * KILN_VL);
        }
        pm->kind[v] = dense ? KILN__CV_DENSE : even ? KILN__CV_EVEN : KILN__CV_GATHER;
    }
}

/* One vector of a panel row: lanes m of p[0], p[1], ... (DENSE), p[0], p[2], ... (EVEN), or
 * x[base + off] (GATHER); zero elsewhere. Masked-off lanes are never accessed, so their
 * addresses may lie outside x. */
static inline __attribute__((always_inline)) KILN_VT KILN__CV(_load)(
    int kind, KILN_MT m, const KILN_T *p, KILN_IT base, int32_t off, const KILN_T *x)
{
    if (kind == KILN__CV_DENSE) return KILN_V_MASKZ_LOADU(m, p);
    if (kind == KILN__CV_EVEN)
        return KILN_V_EVENS(m, KILN_V_MASKZ_LOADU(KILN_SPREAD_LO(m), p),
                            KILN_V_MASKZ_LOADU(KILN_SPREAD_HI(m), p + KILN_VL));
    return KILN_V_GATHER(m, KILN_I_ADD(base, KILN_I_SET1(off)), x);
}

/* dst[t][0:NR] = B[k0 + t, panel columns], zero where the window is in the padding. */
static void KILN__CV(_pack)(const KILN_T *x, const kiln__conv_geom *g,
                            const KILN__CV(_panel_t) *pm, int64_t k0, int64_t kc,
                            KILN_T *restrict dst)
{
    const int64_t khw = g->KH * g->KW;
    int64_t c = k0 / khw, i = (k0 % khw) / g->KW, j = k0 % g->KW;
    const KILN_IT ih0a = KILN_I_LOADU(pm->ih0), ih0b = KILN_I_LOADU(pm->ih0 + KILN_VL);
    const KILN_IT iw0a = KILN_I_LOADU(pm->iw0), iw0b = KILN_I_LOADU(pm->iw0 + KILN_VL);
    const KILN_IT basea = KILN_I_LOADU(pm->base), baseb = KILN_I_LOADU(pm->base + KILN_VL);
    const KILN_IT hv = KILN_I_SET1((int32_t)g->H), wv = KILN_I_SET1((int32_t)g->W);
    const KILN_MT all = (KILN_MT)-1;
    /* Column masks per kernel column, row masks per kernel row: the masks of a tap are the
     * AND of the two. Wide kernels fall back to computing them per tap. */
    enum { TAB = 16 };
    KILN_MT cma[TAB], cmb[TAB];
    const int tab = g->KW <= TAB;
    for (int64_t jj = 0; tab && jj < g->KW; ++jj) {
        const KILN_IT dxv = KILN_I_SET1((int32_t)(jj * g->dw));
        cma[jj] = KILN_I_CMPLTU(all, KILN_I_ADD(iw0a, dxv), wv);
        cmb[jj] = KILN_I_CMPLTU(all, KILN_I_ADD(iw0b, dxv), wv);
    }
    const int ka = pm->kind[0], kb = pm->kind[1];
    const KILN_T *xa = x + pm->base[0], *xb = x + pm->base[KILN_VL];
    const int32_t step_i = (int32_t)(g->dh * g->W - g->KW * g->dw);
    const int32_t step_c = (int32_t)(g->HW - g->KH * g->dh * g->W);
    int32_t off = (int32_t)(c * g->HW + i * g->dh * g->W + j * g->dw);
    KILN_IT dyv = KILN_I_SET1((int32_t)(i * g->dh));
    KILN_MT rma = KILN_I_CMPLTU(all, KILN_I_ADD(ih0a, dyv), hv);
    KILN_MT rmb = KILN_I_CMPLTU(all, KILN_I_ADD(ih0b, dyv), hv);
    for (int64_t t = 0; t < kc; ++t) {
        KILN_MT ma, mb;
        if (tab) {
            ma = rma & cma[j], mb = rmb & cmb[j];
        } else {
            const KILN_IT dxv = KILN_I_SET1((int32_t)(j * g->dw));
            ma = KILN_I_CMPLTU(rma, KILN_I_ADD(iw0a, dxv), wv);
            mb = KILN_I_CMPLTU(rmb, KILN_I_ADD(iw0b, dxv), wv);
        }
        KILN_V_STORE(dst + t * KILN__CV_NR, KILN__CV(_load)(ka, ma, xa + off, basea, off, x));
        KILN_V_STORE(dst + t * KILN__CV_NR + KILN_VL,
                     KILN__CV(_load)(kb, mb, xb + off, baseb, off, x));
        off += (int32_t)g->dw;
        if (++j == g->KW) {
            j = 0, off += step_i;
            if (++i == g->KH) i = 0, ++c, off += step_c;
            dyv = KILN_I_SET1((int32_t)(i * g->dh));
            rma = KILN_I_CMPLTU(all, KILN_I_ADD(ih0a, dyv), hv);
            rmb = KILN_I_CMPLTU(all, KILN_I_ADD(ih0b, dyv), hv);
        }
    }
}

/* tile (=|+=) A[0:MR, 0:kc] @ panel; A rows are lda apart. MR is a constant after inlining,
 * so the accumulators live in registers. */
static inline __attribute__((always_inline)) void KILN__CV(_ukr_body)(
    const int MR, int64_t kc, const KILN_T *restrict a, int64_t lda, const KILN_T *restrict b,
    const KILN__CV(_tile_t) *t)
{
    KILN_VT acc0[KILN__CV_MR], acc1[KILN__CV_MR];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = KILN_V_ZERO();
    for (int64_t k = 0; k < kc; ++k) {
        const KILN_VT b0 = KILN_V_LOAD(b + k * KILN__CV_NR);
        const KILN_VT b1 = KILN_V_LOAD(b + k * KILN__CV_NR + KILN_VL);
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
            const KILN_VT ai = KILN_V_SET1(a[i * lda + k]);
            acc0[i] = KILN_V_FMA(ai, b0, acc0[i]);
            acc1[i] = KILN_V_FMA(ai, b1, acc1[i]);
        }
    }
    const int64_t ldc = t->ldc;
    const KILN_MT m0 = t->m0, m1 = t->m1, m0b = t->m0b, m1b = t->m1b;
    KILN_T *c2 = t->c2;
    const KILN_T *res = t->res, *res2 = t->res2;
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
        KILN_T *ci = t->c + i * ldc, *c2i = c2 ? c2 + i * ldc : NULL;
        KILN_VT v0 = acc0[i], v1 = acc1[i];
        if (t->mode & KILN__CV_ACC) {
            KILN_VT o0 = KILN_V_MASKZ_LOADU(m0, ci), o1 = KILN_V_MASKZ_LOADU(m1, ci + KILN_VL);
            if (c2i) {
                o0 = KILN_V_MASK_LOADU(o0, m0b, c2i);
                o1 = KILN_V_MASK_LOADU(o1, m1b, c2i + KILN_VL);
            }
            v0 = KILN_V_ADD(v0, o0);
            v1 = KILN_V_ADD(v1, o1);
        }
        if (t->mode & KILN__CV_LAST) {
            if (t->bias) {
                const KILN_VT bi = KILN_V_SET1(t->bias[i]);
                v0 = KILN_V_ADD(v0, bi);
                v1 = KILN_V_ADD(v1, bi);
            }
            if (res) {
                KILN_VT r0 = KILN_V_MASKZ_LOADU(m0, res + i * ldc);
                KILN_VT r1 = KILN_V_MASKZ_LOADU(m1, res + i * ldc + KILN_VL);
                if (res2) {
                    r0 = KILN_V_MASK_LOADU(r0, m0b, res2 + i * ldc);
                    r1 = KILN_V_MASK_LOADU(r1, m1b, res2 + i * ldc + KILN_VL);
                }
                v0 = KILN_V_ADD(v0, r0);
                v1 = KILN_V_ADD(v1, r1);
            }
            if (t->act == KILN_ACT_RELU) { /* max(0, v) returns v when v is NaN */
                v0 = KILN_V_MAX(KILN_V_ZERO(), v0);
                v1 = KILN_V_MAX(KILN_V_ZERO(), v1);
            }
        }
        KILN_V_MASK_STOREU(ci, m0, v0);
        KILN_V_MASK_STOREU(ci + KILN_VL, m1, v1);
        if (c2i) {
            KILN_V_MASK_STOREU(c2i, m0b, v0);
            KILN_V_MASK_STOREU(c2i + KILN_VL, m1b, v1);
        }
    }
}

#define KILN__CV_UKR_ARGS                                                                    \
    int64_t kc, const KILN_T *restrict a, int64_t lda, const KILN_T *restrict b,            \
        const KILN__CV(_tile_t) *t
#define KILN__CV_UKR(R)                                                                      \
    static void KILN__CV(_ukr##R)(KILN__CV_UKR_ARGS)                                         \
    {                                                                                        \
        KILN__CV(_ukr_body)(R, kc, a, lda, b, t);                                            \
    }
KILN__CV_UKR(1)
KILN__CV_UKR(2)
KILN__CV_UKR(3)
KILN__CV_UKR(4)
KILN__CV_UKR(5)
KILN__CV_UKR(6)
KILN__CV_UKR(7)
KILN__CV_UKR(8)
KILN__CV_UKR(9)
KILN__CV_UKR(10)
KILN__CV_UKR(11)
KILN__CV_UKR(12)
KILN__CV_UKR(13)
KILN__CV_UKR(14)
#undef KILN__CV_UKR

typedef void (*KILN__CV(_ukr_fn))(KILN__CV_UKR_ARGS);
#undef KILN__CV_UKR_ARGS

static const KILN__CV(_ukr_fn) KILN__CV(_ukrs)[KILN__CV_MR + 1] = {
    0,               KILN__CV(_ukr1),  KILN__CV(_ukr2),  KILN__CV(_ukr3),  KILN__CV(_ukr4),
    KILN__CV(_ukr5), KILN__CV(_ukr6),  KILN__CV(_ukr7),  KILN__CV(_ukr8),  KILN__CV(_ukr9),
    KILN__CV(_ukr10), KILN__CV(_ukr11), KILN__CV(_ukr12), KILN__CV(_ukr13), KILN__CV(_ukr14),
};

static inline KILN_MT KILN__CV(_lanes)(int64_t n)
{
    return n <= 0 ? (KILN_MT)0 : n >= KILN_VL ? (KILN_MT)-1 : (KILN_MT)((1u << n) - 1u);
}

/* Panels per run: a run's output block stays in L2 while the K slices pass over it. */
static int64_t KILN__CV(_run_panels)(int64_t rows)
{
    const int64_t n = ((int64_t)1 << 19) / (rows * KILN__CV_NR * (int64_t)sizeof(KILN_T));
    return n < 1 ? 1 : n;
}

/* How many blocks to cut each group's output channels into. Every block repacks the panels
 * of B; a run over a block streams that block of W once (from L3 or memory when W is larger
 * than L2). The estimate is in cycles of the busiest thread at full FMA rate. */
static int64_t KILN__CV(_row_blocks)(const kiln__conv_geom *g, int64_t panels, int64_t npan,
                                     int64_t micro_rows, int threads)
{
    if (threads <= 1) return 1;
    const double kg = (double)g->Kg, wbytes = (double)g->og * kg * sizeof(KILN_T);
    const double per_elem = wbytes > 1e6 ? 0.5 : 0.05; /* cycles to stream one weight */
    const double pack = 8.0 * (KILN_VL == 16 ? 1.0 : 2.0); /* cycles per packed K row */
    int64_t best = 1;
    double best_cost = 0;
    for (int64_t nb = 1; nb <= 8 && nb <= micro_rows; ++nb) {
        const double rows = (double)g->og / (double)nb;
        const int64_t per_thread = (panels * nb + threads - 1) / threads;
        int64_t span = KILN__CV(_run_panels)((int64_t)rows + KILN__CV_MR);
        if (span > panels) span = panels;
        const double runs = (double)((per_thread + span - 1) / span) + (npan < panels ? 0 : 0);
        const double cost = (double)per_thread * (rows * kg * (KILN_VL == 16 ? 1.0 : 2.0) +
                                                  pack * kg) + runs * rows * kg * per_elem;
        if (nb == 1 || cost < 0.95 * best_cost) best = nb, best_cost = cost;
    }
    return best;
}

static void KILN__CV(_fwd_avx512)(const KILN_T *x, const KILN_T *w, const KILN_T *bias,
                                  const KILN_T *res, KILN_T *out, const kiln__conv_geom *g,
                                  int act)
{
    const int64_t P = g->P, og = g->og, Kg = g->Kg, N = g->N;
    /* Panels run across image boundaries when that fills lanes a per-image panel would waste
     * (7x7 maps: 392 of 416 lanes at batch 8 instead of 49 of 64). */
    const int span = N > 1 && P >= KILN__CV_NR && P % KILN__CV_NR && KILN__CV(_span_fits)(g);
    const int64_t npan = ((span ? N * P : P) + KILN__CV_NR - 1) / KILN__CV_NR;
    const int64_t panels = span ? npan : N * npan; /* per group and row block */
    const int64_t nk = (Kg + KILN__CV_KC - 1) / KILN__CV_KC, kcs = (Kg + nk - 1) / nk;
    int64_t nmr = (og + KILN__CV_MR - 1) / KILN__CV_MR;
    int nt = kiln__conv_threads((double)N * g->O * P * Kg);
    const int64_t nob = KILN__CV(_row_blocks)(g, panels, npan, nmr, nt);
    /* Equal micro-rows per block (slightly lower ones rather than a block with an extra). */
    if (nmr % nob && (nmr + nob - 1) / nob * nob <= og) nmr = (nmr + nob - 1) / nob * nob;
    const int64_t mr_base = og / nmr, mr_extra = og % nmr; /* micro-rows of equal height */
    /* Units, outermost first: group, row block, panel (image-major). A run is a stretch of one
     * thread's units with the same group and row block, so it reuses that block of W across
     * images too. */
    const int64_t units = g->G * nob * panels;
    if (units < nt) nt = (int)units;
    const int64_t ncp = KILN__CV(_run_panels)((nmr + nob - 1) / nob * KILN__CV_MR);
    (void)nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        KILN_T panel[KILN__CV_KC * KILN__CV_NR] __attribute__((aligned(64)));
        KILN__CV(_panel_t) pm;
        KILN__CV(_tile_t) tile;
        tile.ldc = P, tile.act = act;
        const int64_t u1 = units * (tid + 1) / nth;
        for (int64_t u = units * tid / nth; u < u1;) {
            const int64_t first = u % panels, ob = (u / panels) % nob, grp = u / panels / nob;
            int64_t len = u1 - u < panels - first ? u1 - u : panels - first;
            if (len > ncp) len = ncp;
            const int64_t r0 = nmr * ob / nob, r1 = nmr * (ob + 1) / nob;
            const KILN_T *wg = w + grp * og * Kg;
            for (int64_t k0 = 0; k0 < Kg; k0 += kcs) {
                const int64_t kc = Kg - k0 < kcs ? Kg - k0 : kcs;
                tile.mode = (k0 > 0 ? KILN__CV_ACC : 0) | (k0 + kc >= Kg ? KILN__CV_LAST : 0);
                for (int64_t q = first; q < first + len; ++q) {
                    if (span) {
                        KILN__CV(_panel_setup)(g, q * KILN__CV_NR, N * P, &pm);
                    } else {
                        const int64_t n = q / npan;
                        KILN__CV(_panel_setup)(g, n * P + q % npan * KILN__CV_NR, (n + 1) * P, &pm);
                    }
                    KILN__CV(_pack)(x + (pm.n0 * g->C + grp * g->cg) * g->HW, g, &pm, k0, kc,
                                    panel);
                    const int64_t at = (pm.n0 * g->O + grp * og) * P + pm.p0;
                    const int64_t at2 = ((pm.n0 + 1) * g->O + grp * og) * P - pm.split;
                    const int two = pm.split < pm.valid;
                    tile.m0 = KILN__CV(_lanes)(pm.split);
                    tile.m1 = KILN__CV(_lanes)(pm.split - KILN_VL);
                    tile.m0b = (KILN_MT)(KILN__CV(_lanes)(pm.valid) & ~tile.m0);
                    tile.m1b = (KILN_MT)(KILN__CV(_lanes)(pm.valid - KILN_VL) & ~tile.m1);
                    for (int64_t r = r0; r < r1; ++r) {
                        const int64_t row = r * mr_base + (r < mr_extra ? r : mr_extra);
                        tile.c = out + at + row * P;
                        tile.c2 = two ? out + at2 + row * P : NULL;
                        tile.res = res ? res + at + row * P : NULL;
                        tile.res2 = res && two ? res + at2 + row * P : NULL;
                        tile.bias = bias ? bias + grp * og + row : NULL;
                        KILN__CV(_ukrs)[mr_base + (r < mr_extra)](kc, wg + row * Kg + k0, Kg,
                                                                   panel, &tile);
                    }
                }
            }
            u += len;
        }
    }
}

#include "kiln_conv_avx512_wgrad_impl.h"

#undef KILN__CV_NR
#undef KILN__CV_MR
#undef KILN__CV_KC
#undef KILN__CV_ACC
#undef KILN__CV_LAST
#undef KILN__CV_GATHER
#undef KILN__CV_DENSE
#undef KILN__CV_EVEN

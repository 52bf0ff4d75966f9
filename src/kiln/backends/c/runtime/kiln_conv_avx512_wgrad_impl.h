/* AVX-512 conv2d weight gradient, one precision; included by kiln_conv_avx512_impl.h, whose
 * micro-kernel it reuses. */

/* ---- weight gradient ----------------------------------------------------------------------
 * dW[g]^T (Kg x og) = sum over (n, p) of im2col(x[n, g]) (Kg x NP) @ G[n, g]^T (NP x og), in
 * chunks of kch K rows x jc positions (kiln__conv_wgrad_chunks). Per chunk the team packs G^T
 * into og-wide panels once (ws); then each thread builds the im2col rows of its own micro-rows
 * (ws) and accumulates them into its own rows of dW^T (ws, og-contiguous): the micro-kernel
 * broadcasts im2col values against G^T vectors. Finished rows are transposed into dW. */

#define KILN__CV_WG_BLOCK 16 /* micro-rows per K block: 224 im2col rows stay in L2 */

static int KILN__CV(_wgrad_fits)(const kiln__conv_geom *g)
{
    return g->P < ((int64_t)1 << 25);
}

/* dst[j * ldd + i] = src[i * lds + j] for i, j < VL. Stage b swaps the off-diagonal b x b
 * blocks of every 2b x 2b block (bit b of the row with bit b of the column); all stages
 * together transpose. VL * log2(VL) two-source permutes. */
static inline __attribute__((always_inline)) void KILN__CV(_transpose)(
    const KILN_T *src, int64_t lds, KILN_T *dst, int64_t ldd)
{
    KILN_VT r[KILN_VL];
#pragma GCC unroll 16
    for (int i = 0; i < KILN_VL; ++i) r[i] = KILN_V_LOAD(src + i * lds);
#pragma GCC unroll 4
    for (int b = 1; b < KILN_VL; b <<= 1) {
        KILN_PIDX_T lo[KILN_VL], hi[KILN_VL];
        for (int l = 0; l < KILN_VL; ++l) {
            lo[l] = (KILN_PIDX_T)((l & b) ? KILN_VL + l - b : l);
            hi[l] = (KILN_PIDX_T)((l & b) ? KILN_VL + l : l + b);
        }
        const __m512i ilo = _mm512_loadu_si512((const void *)lo);
        const __m512i ihi = _mm512_loadu_si512((const void *)hi);
#pragma GCC unroll 16
        for (int i = 0; i < KILN_VL; ++i) {
            if (i & b) continue;
            const KILN_VT a = r[i], c = r[i + b];
            r[i] = KILN_V_PERM2(a, ilo, c);
            r[i + b] = KILN_V_PERM2(a, ihi, c);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < KILN_VL; ++i) KILN_V_STORE(dst + i * ldd, r[i]);
}

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols (full VL blocks in registers). */
static void KILN__CV(_transpose_any)(const KILN_T *src, int64_t lds, int64_t rows,
                                     int64_t cols, KILN_T *dst, int64_t ldd)
{
    for (int64_t i0 = 0; i0 < rows; i0 += KILN_VL)
        for (int64_t j0 = 0; j0 < cols; j0 += KILN_VL) {
            if (rows - i0 >= KILN_VL && cols - j0 >= KILN_VL) {
                KILN__CV(_transpose)(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
                continue;
            }
            for (int64_t j = j0; j < cols && j < j0 + KILN_VL; ++j)
                for (int64_t i = i0; i < rows && i < i0 + KILN_VL; ++i)
                    dst[j * ldd + i] = src[i * lds + j];
        }
}

/* gt[t][0:NR] = G[n, grp * og + o0 + lane, p] for t < cur, positions j0 + t = n * P + p (zero
 * for lanes past og): transposes of G blocks that never cross an image. */
static void KILN__CV(_pack_gt)(const KILN_T *gy, const kiln__conv_geom *g, int64_t grp,
                               int64_t o0, int64_t j0, int64_t cur, KILN_T *restrict dst)
{
    const int64_t nv = g->og - o0 < KILN__CV_NR ? g->og - o0 : KILN__CV_NR;
    int64_t n = j0 / g->P, p = j0 % g->P;
    for (int64_t t0 = 0; t0 < cur;) {
        const int64_t len = cur - t0 < g->P - p ? cur - t0 : g->P - p;
        const KILN_T *src = gy + (n * g->O + grp * g->og + o0) * g->P + p;
        KILN__CV(_transpose_any)(src, g->P, nv, len, dst + t0 * KILN__CV_NR, KILN__CV_NR);
        for (int64_t t = 0; nv < KILN__CV_NR && t < len; ++t)
            for (int64_t l = nv; l < KILN__CV_NR; ++l) dst[(t0 + t) * KILN__CV_NR + l] = 0;
        t0 += len, p += len;
        if (p == g->P) p = 0, ++n;
    }
}

static void KILN__CV(_wgrad_avx512)(const KILN_T *x, const KILN_T *gy, KILN_T *dwt,
                                    const kiln__conv_geom *g, KILN_T *ws)
{
    const int64_t Kg = g->Kg, og = g->og, P = g->P, NP = g->N * g->P;
    int64_t kch, jc;
    kiln__conv_wgrad_chunks(g, &kch, &jc);
    const int64_t ld = jc + 16, nop = (og + KILN__CV_NR - 1) / KILN__CV_NR;
    KILN_T *col = ws, *acc = ws + kch * ld, *gt = acc + kch * og;
    int nt = kiln__conv_threads((double)og * Kg * NP);
    (void)nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        for (int64_t grp = 0; grp < g->G; ++grp)
            for (int64_t kc0 = 0; kc0 < Kg; kc0 += kch) {
                /* Rows change owners between chunks: wait until the last chunk is written. */
#pragma omp barrier
                const int64_t kn = Kg - kc0 < kch ? Kg - kc0 : kch;
                const int64_t nmr = (kn + KILN__CV_MR - 1) / KILN__CV_MR;
                const int64_t mr_base = kn / nmr, mr_extra = kn % nmr;
                const int64_t r0 = nmr * tid / nth, r1 = nmr * (tid + 1) / nth;
                const int64_t k0 = r0 * mr_base + (r0 < mr_extra ? r0 : mr_extra);
                const int64_t k1 = r1 * mr_base + (r1 < mr_extra ? r1 : mr_extra);
                for (int64_t t = k0 * og; t < k1 * og; ++t) acc[t] = 0;
                for (int64_t j0 = 0; j0 < NP; j0 += jc) {
                    const int64_t cur = NP - j0 < jc ? NP - j0 : jc;
#pragma omp barrier
#pragma omp for schedule(static)
                    for (int64_t op = 0; op < nop; ++op)
                        KILN__CV(_pack_gt)(gy, g, grp, op * KILN__CV_NR, j0, cur,
                                           gt + op * jc * KILN__CV_NR);
                    for (int64_t n = j0 / P; n * P < j0 + cur; ++n) {
                        const int64_t lo = n * P < j0 ? j0 - n * P : 0;
                        const int64_t hi = (n + 1) * P < j0 + cur ? P : j0 + cur - n * P;
                        const KILN_T *xg = x + (n * g->C + grp * g->cg) * g->HW;
                        for (int64_t k = k0; k < k1; ++k)
                            KILN__CV(_im2col_row)(xg, g, kc0 + k, lo, hi - lo,
                                                  col + k * ld + n * P + lo - j0);
                    }
                    for (int64_t rb = r0; rb < r1; rb += KILN__CV_WG_BLOCK) {
                        const int64_t re = rb + KILN__CV_WG_BLOCK < r1 ? rb + KILN__CV_WG_BLOCK : r1;
                        for (int64_t op = 0; op < nop; ++op) {
                            const int64_t o0 = op * KILN__CV_NR;
                            KILN__CV(_tile_t) tile = {NULL, NULL, NULL, NULL, NULL, og,
                                                      KILN__CV(_lanes)(og - o0),
                                                      KILN__CV(_lanes)(og - o0 - KILN_VL),
                                                      0, 0, KILN__CV_ACC, KILN_ACT_NONE};
                            for (int64_t s0 = 0; s0 < cur; s0 += KILN__CV_KC) {
                                const int64_t kc = cur - s0 < KILN__CV_KC ? cur - s0 : KILN__CV_KC;
                                const KILN_T *b = gt + (op * jc + s0) * KILN__CV_NR;
                                for (int64_t r = rb; r < re; ++r) {
                                    const int64_t row = r * mr_base + (r < mr_extra ? r : mr_extra);
                                    tile.c = acc + row * og + o0;
                                    KILN__CV(_ukrs)[mr_base + (r < mr_extra)](
                                        kc, col + row * ld + s0, ld, b, &tile);
                                }
                            }
                        }
                    }
                }
                KILN__CV(_transpose_any)(acc + k0 * og, og, k1 - k0, og,
                                         dwt + grp * og * Kg + kc0 + k0, Kg);
            }
    }
}

#undef KILN__CV_WG_BLOCK

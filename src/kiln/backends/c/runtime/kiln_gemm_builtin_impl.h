/* One precision of Kiln's built-in packed GEMM; included twice by kiln_gemm_builtin.h.
 *
 * Before including, define KILN_T (float or double), KILN_X (name suffix s or d), KILN_MR
 * (rows of the micro-tile) and, unless KILN__GENERIC, the vector vocabulary KILN_VT,
 * KILN_VZERO, KILN_VLOAD (aligned), KILN_VBCAST, KILN_VFMA, KILN_VSTORE (unaligned).
 *
 * The scheme is the BLIS/Goto one, reduced to what our shapes need: for each K slice of
 * KILN_GB_KC, pack all of op(A) into MR-row micro-panels and all of op(B) into NR-column
 * micro-panels (zero padded, so the micro-kernel never sees a ragged edge), then hand
 * (NR panel, MR panel) tiles to the threads. A B micro-panel (KC x NR) stays in L1 while the
 * A micro-panels stream past it from L2.
 */

#define KILN__FN(name) KILN__CAT(KILN__CAT(kiln__, KILN_X), name)

#ifdef KILN__GENERIC
#define KILN_NR 8
#else
#define KILN_VW ((int)(sizeof(KILN_VT) / sizeof(KILN_T)))
#define KILN_NR (2 * KILN_VW)
#endif

/* The micro-kernel: C[0:mr, 0:nr] = alpha * (a-panel @ b-panel) + beta * C, where the packed
 * panels are a[kc][MR] and b[kc][NR]. beta == 0 never reads C (BLAS semantics: NaN in C must
 * not leak into the result). */
static void KILN__FN(_ukr)(long kc, const KILN_T *restrict a, const KILN_T *restrict b,
                           KILN_T *restrict c, long ldc, long mr, long nr, KILN_T alpha,
                           KILN_T beta)
{
    KILN_T tile[KILN_MR][KILN_NR] __attribute__((aligned(64)));
#ifdef KILN__GENERIC
    KILN_T acc[KILN_MR][KILN_NR] = {{0}};
    for (long p = 0; p < kc; ++p, a += KILN_MR, b += KILN_NR)
        for (int i = 0; i < KILN_MR; ++i)
            for (int j = 0; j < KILN_NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < KILN_MR; ++i)
        for (int j = 0; j < KILN_NR; ++j) tile[i][j] = acc[i][j];
#else
    /* Fully unrolled, so the accumulator array lives in registers. */
    KILN_VT acc0[KILN_MR], acc1[KILN_MR];
#pragma GCC unroll 16
    for (int i = 0; i < KILN_MR; ++i) acc0[i] = acc1[i] = KILN_VZERO();
    for (long p = 0; p < kc; ++p, a += KILN_MR, b += KILN_NR) {
        const KILN_VT b0 = KILN_VLOAD(b), b1 = KILN_VLOAD(b + KILN_VW);
#pragma GCC unroll 16
        for (int i = 0; i < KILN_MR; ++i) {
            const KILN_VT ai = KILN_VBCAST(a + i);
            acc0[i] = KILN_VFMA(ai, b0, acc0[i]);
            acc1[i] = KILN_VFMA(ai, b1, acc1[i]);
        }
    }
    if (mr == KILN_MR && nr == KILN_NR && alpha == 1 && beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < KILN_MR; ++i) {
            KILN_VSTORE(c + i * ldc, acc0[i]);
            KILN_VSTORE(c + i * ldc + KILN_VW, acc1[i]);
        }
        return;
    }
#pragma GCC unroll 16
    for (int i = 0; i < KILN_MR; ++i) {
        KILN_VSTORE(&tile[i][0], acc0[i]);
        KILN_VSTORE(&tile[i][KILN_VW], acc1[i]);
    }
#endif
    for (long i = 0; i < mr; ++i)
        for (long j = 0; j < nr; ++j)
            c[i * ldc + j] = alpha * tile[i][j] + (beta == 0 ? (KILN_T)0 : beta * c[i * ldc + j]);
}

static void KILN__FN(_pack_a)(int transA, long m0, long mr, long p0, long kc,
                              const KILN_T *A, long lda, KILN_T *restrict dst)
{
    if (transA) { /* op(A)(i, p) = A[p * lda + i]: rows of the panel are contiguous */
        for (long p = 0; p < kc; ++p) {
            const KILN_T *src = A + (p0 + p) * lda + m0;
            long i = 0;
            for (; i < mr; ++i) dst[p * KILN_MR + i] = src[i];
            for (; i < KILN_MR; ++i) dst[p * KILN_MR + i] = 0;
        }
    } else {
        for (long i = 0; i < KILN_MR; ++i) {
            if (i < mr) {
                const KILN_T *src = A + (m0 + i) * lda + p0;
                for (long p = 0; p < kc; ++p) dst[p * KILN_MR + i] = src[p];
            } else {
                for (long p = 0; p < kc; ++p) dst[p * KILN_MR + i] = 0;
            }
        }
    }
}

static void KILN__FN(_pack_b)(int transB, long n0, long nr, long p0, long kc,
                              const KILN_T *B, long ldb, KILN_T *restrict dst)
{
    if (transB) { /* op(B)(p, j) = B[j * ldb + p] */
        for (long j = 0; j < KILN_NR; ++j) {
            if (j < nr) {
                const KILN_T *src = B + (n0 + j) * ldb + p0;
                for (long p = 0; p < kc; ++p) dst[p * KILN_NR + j] = src[p];
            } else {
                for (long p = 0; p < kc; ++p) dst[p * KILN_NR + j] = 0;
            }
        }
    } else {
        for (long p = 0; p < kc; ++p) {
            const KILN_T *src = B + (p0 + p) * ldb + n0;
            long j = 0;
            for (; j < nr; ++j) dst[p * KILN_NR + j] = src[j];
            for (; j < KILN_NR; ++j) dst[p * KILN_NR + j] = 0;
        }
    }
}

/* C = beta * C, where beta == 0 writes zeros without reading C (BLAS semantics: NaN in C
 * must not leak into the result). */
static void KILN__FN(_scale)(long M, long N, KILN_T beta, KILN_T *C, long ldc)
{
    for (long i = 0; i < M; ++i)
        for (long j = 0; j < N; ++j)
            C[i * ldc + j] = beta == 0 ? (KILN_T)0 : beta * C[i * ldc + j];
}

/* Unblocked reference used when the packing buffers cannot be allocated. */
static void KILN__FN(_naive)(int transA, int transB, long M, long N, long K, KILN_T alpha,
                             const KILN_T *A, long lda, const KILN_T *B, long ldb,
                             KILN_T beta, KILN_T *C, long ldc)
{
    for (long i = 0; i < M; ++i)
        for (long j = 0; j < N; ++j) {
            KILN_T acc = 0;
            for (long p = 0; p < K; ++p)
                acc += (transA ? A[p * lda + i] : A[i * lda + p]) *
                       (transB ? B[j * ldb + p] : B[p * ldb + j]);
            KILN_T old = beta == 0 ? (KILN_T)0 : beta * C[i * ldc + j];
            C[i * ldc + j] = alpha * acc + old;
        }
}

static KILN__MAYBE_UNUSED void KILN__CAT(KILN__CAT(kiln_, KILN_X), gemm_builtin)(
    int transA, int transB, long M, long N, long K, KILN_T alpha, const KILN_T *A, long lda,
    const KILN_T *B, long ldb, KILN_T beta, KILN_T *C, long ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        KILN__FN(_scale)(M, N, beta, C, ldc);
        return;
    }
    if (M <= 4 && !transA && transB) {
        /* A few rows times a transposed B (x @ W^T of a linear layer at batch 1-4): dot
         * products of contiguous rows. Packing would copy all of B for M rows of work: at
         * M = 1 that was 40x slower than this. 16 partial sums vectorize without -ffast-math. */
        const int nt = kiln__gemm_threads((double)M * N * K);
        (void)nt;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (long j = 0; j < N; ++j) {
            const KILN_T *b = B + j * ldb;
            for (long i = 0; i < M; ++i) {
                const KILN_T *a = A + i * lda;
                KILN_T acc[16] = {0};
                long p = 0;
                for (; p + 16 <= K; p += 16)
                    for (int u = 0; u < 16; ++u) acc[u] += a[p + u] * b[p + u];
                KILN_T sum = 0;
                for (int u = 0; u < 16; ++u) sum += acc[u];
                for (; p < K; ++p) sum += a[p] * b[p];
                KILN_T old = beta == 0 ? (KILN_T)0 : beta * C[i * ldc + j];
                C[i * ldc + j] = alpha * sum + old;
            }
        }
        return;
    }
    const long mp = (M + KILN_MR - 1) / KILN_MR, np = (N + KILN_NR - 1) / KILN_NR;
    const long kcmax = K < KILN_GB_KC ? K : KILN_GB_KC;
    KILN_T *abuf = (KILN_T *)kiln__aligned_alloc(sizeof(KILN_T) * mp * KILN_MR * kcmax);
    KILN_T *bbuf = (KILN_T *)kiln__aligned_alloc(sizeof(KILN_T) * np * KILN_NR * kcmax);
    if (!abuf || !bbuf) {
        free(abuf);
        free(bbuf);
        KILN__FN(_naive)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int nthreads = kiln__gemm_threads((double)M * N * K);
    for (long p0 = 0; p0 < K; p0 += KILN_GB_KC) {
        const long kc = K - p0 < KILN_GB_KC ? K - p0 : KILN_GB_KC;
        const KILN_T beta_k = p0 == 0 ? beta : (KILN_T)1;
        const long ntiles = mp * np;
        (void)nthreads;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
        {
#pragma omp for schedule(static)
            for (long jr = 0; jr < np; ++jr) {
                long nr = N - jr * KILN_NR < KILN_NR ? N - jr * KILN_NR : KILN_NR;
                KILN__FN(_pack_b)(transB, jr * KILN_NR, nr, p0, kc, B, ldb,
                                  bbuf + jr * KILN_NR * kc);
            }
#pragma omp for schedule(static)
            for (long ir = 0; ir < mp; ++ir) {
                long mr = M - ir * KILN_MR < KILN_MR ? M - ir * KILN_MR : KILN_MR;
                KILN__FN(_pack_a)(transA, ir * KILN_MR, mr, p0, kc, A, lda,
                                  abuf + ir * KILN_MR * kc);
            }
            /* Tiles go column-panel-major: consecutive tiles of one thread share B's panel. */
#pragma omp for schedule(static)
            for (long t = 0; t < ntiles; ++t) {
                const long jr = t / mp, ir = t % mp;
                const long mr = M - ir * KILN_MR < KILN_MR ? M - ir * KILN_MR : KILN_MR;
                const long nr = N - jr * KILN_NR < KILN_NR ? N - jr * KILN_NR : KILN_NR;
                KILN__FN(_ukr)(kc, abuf + ir * KILN_MR * kc, bbuf + jr * KILN_NR * kc,
                         C + ir * KILN_MR * ldc + jr * KILN_NR, ldc, mr, nr, alpha, beta_k);
            }
        }
    }
    free(abuf);
    free(bbuf);
}

#undef KILN__FN
#undef KILN_NR
#undef KILN_VW

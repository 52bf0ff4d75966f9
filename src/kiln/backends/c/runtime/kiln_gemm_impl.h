/* One precision of the kiln_gemm.h API; included twice. Needs KILN_T (float or double),
 * KILN_X (s or d), KILN_BLAS (the cblas ?gemm it may call when KILN__HAVE_BLAS) and, for MKL,
 * KILN_BLAS_BATCH (cblas_?gemm_batch_strided). */

#define KILN__G(name) KILN__CAT(KILN__CAT(kiln_, KILN_X), name)

/* One BLAS call for the whole GEMM, or the built-in kernel where BLAS cannot take the shape.
 * Threads: MKL forks the OpenMP team itself unless called inside a parallel region; OpenBLAS
 * is single-threaded when OpenMP is on; the built-in kernel sees omp_in_parallel(). */
static KILN__MAYBE_UNUSED void KILN__G(gemm_one)(int tA, int tB, long M, long N, long K,
                                                 KILN_T alpha, const KILN_T *A, long lda,
                                                 const KILN_T *B, long ldb, KILN_T beta,
                                                 KILN_T *C, long ldc)
{
#ifdef KILN__HAVE_BLAS
    if (M > 0 && N > 0 && K > 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX &&
        kiln__fix_ld(tA ? K : M, tA ? M : K, &lda) && kiln__fix_ld(tB ? N : K, tB ? K : N, &ldb) &&
        kiln__fix_ld(M, N, &ldc)) {
        KILN_BLAS(101, tA ? 112 : 111, tB ? 112 : 111, (int)M, (int)N, (int)K, alpha, A, (int)lda,
                  B, (int)ldb, beta, C, (int)ldc);
        return;
    }
#endif
    KILN__G(gemm_builtin)(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static KILN__MAYBE_UNUSED void KILN__G(gemm)(int transA, int transB, long M, long N, long K,
                                             KILN_T alpha, const KILN_T *A, long lda,
                                             const KILN_T *B, long ldb, KILN_T beta, KILN_T *C,
                                             long ldc)
{
    if (M <= 0 || N <= 0) return;
#if defined(KILN__HAVE_BLAS) && defined(_OPENMP)
    const int nt = K > 0 ? kiln__gemm_threads((double)M * N * K) : 1;
#ifdef KILN_GEMM_MKL
    /* MKL threads a GEMM better than our split does, except a skinny one (M or N < 16, the
     * MLP's 10 logits), which it runs on one thread: 2x slower than the split. */
    if (nt > 1 && (M < 16 || N < 16) && (M >= 32 || N >= 32)) {
#else
    if (nt > 1) {
#endif
        /* Split the larger of M and N: the best of the two on every workload shape we measured
         * (benchmarks/native_gemm.py), and as fast as OpenBLAS's own threading. */
        const int split_m = M >= N;
        const long len = split_m ? M : N;
        const long step = ((len + nt - 1) / nt + 15) / 16 * 16;
        const int chunks = (int)((len + step - 1) / step);
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
        for (int t = 0; t < chunks; ++t) {
            const long lo = t * step, n = (lo + step < len ? lo + step : len) - lo;
            if (split_m)
                KILN__G(gemm_one)(transA, transB, n, N, K, alpha, transA ? A + lo : A + lo * lda,
                                  lda, B, ldb, beta, C + lo * ldc, ldc);
            else
                KILN__G(gemm_one)(transA, transB, M, n, K, alpha, A, lda,
                                  transB ? B + lo * ldb : B + lo, ldb, beta, C + lo, ldc);
        }
        return;
    }
#endif
    KILN__G(gemm_one)(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static KILN__MAYBE_UNUSED void KILN__G(gemm_batched)(
    long batch, int transA, int transB, long M, long N, long K, KILN_T alpha, const KILN_T *A,
    long lda, long strideA, const KILN_T *B, long ldb, long strideB, KILN_T beta, KILN_T *C,
    long ldc, long strideC)
{
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (batch > 1 && strideB == 0 && !transA && strideA == M * lda && strideC == M * ldc) {
        /* A shared B (a Linear over (B, T, C) input) with A's and C's batches stacked row
         * after row: one GEMM of batch * M rows packs B once and splits better (transformer
         * block forward: the four projections ~10% faster than 8 GEMMs of 128 rows). */
        KILN__G(gemm)(transA, transB, batch * M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#ifdef KILN_GEMM_MKL
    /* One call: MKL spreads the batch over the OpenMP team (~10% faster than whole GEMMs per
     * thread on 32 x 128x64@64x128). It rejects C blocks closer than ldc * M (it prints and
     * returns), and ints must hold every size and stride. */
    if (batch > 1 && K > 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && batch <= INT_MAX &&
        strideA >= 0 && strideA <= INT_MAX && strideB >= 0 && strideB <= INT_MAX &&
        strideC <= INT_MAX && kiln__fix_ld(transA ? K : M, transA ? M : K, &lda) &&
        kiln__fix_ld(transB ? N : K, transB ? K : N, &ldb) && kiln__fix_ld(M, N, &ldc) &&
        strideC >= ldc * M) {
        KILN_BLAS_BATCH(101, transA ? 112 : 111, transB ? 112 : 111, (int)M, (int)N, (int)K, alpha,
                        A, (int)lda, (int)strideA, B, (int)ldb, (int)strideB, beta, C, (int)ldc,
                        (int)strideC, (int)batch);
        return;
    }
#endif
#ifdef _OPENMP
    /* Small GEMMs split badly (each half repacks B); whole GEMMs per thread scale instead. */
    const double work = (double)M * N * (K > 0 ? K : 1);
    if (batch > 1 && work < 4e6 && kiln__gemm_threads(work * batch) > 1) {
#pragma omp parallel for schedule(static)
        for (long b = 0; b < batch; ++b)
            KILN__G(gemm_one)(transA, transB, M, N, K, alpha, A + b * strideA, lda,
                              B + b * strideB, ldb, beta, C + b * strideC, ldc);
        return;
    }
#endif
    for (long b = 0; b < batch; ++b)
        KILN__G(gemm)(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb,
                      beta, C + b * strideC, ldc);
}

#undef KILN__G

/* kiln_gemm.h: the GEMM that Kiln's generated C calls. Row-major throughout:
 *
 *   C = alpha * op(A) @ op(B) + beta * C      op(A) is M x K, op(B) is K x N, C is M x N
 *   op(X) = X if transX == 0, X^T otherwise; ldX is the row stride of X as stored.
 *   beta == 0 never reads C (NaN in an uninitialised C does not leak); M, N or K == 0 is fine.
 *
 *   void kiln_sgemm(int transA, int transB, long M, long N, long K, float alpha,
 *                   const float *A, long lda, const float *B, long ldb,
 *                   float beta, float *C, long ldc);
 *   void kiln_dgemm(... the same with double ...);
 *   void kiln_sgemm_batched(long batch, int transA, int transB, long M, long N, long K,
 *                           float alpha, const float *A, long lda, long strideA,
 *                           const float *B, long ldb, long strideB,
 *                           float beta, float *C, long ldc, long strideC);
 *   void kiln_dgemm_batched(... the same with double ...);
 *     batch i uses A + i*strideA, B + i*strideB, C + i*strideC. strideA or strideB may be 0
 *     (broadcast); C blocks of different batches must not overlap.
 *
 * Backend (chosen by kiln.backends.c.blas, which also gives the flags and libraries):
 *   -DKILN_GEMM_OPENBLAS  scipy_cblas_[sd]gemm from the scipy-openblas32 wheel, linked by path
 *                         (DT_NEEDED libscipy_openblas.so) and loaded into the process before
 *                         any kernel library. Shapes or strides beyond 32-bit ints, and
 *                         strides OpenBLAS would reject, go to the built-in kernel instead.
 *   otherwise             the built-in packed kernel of kiln_gemm_builtin.h.
 *
 * Threads: there is ONE pool, OpenMP's. OpenBLAS is set to 1 thread (blas.py does it when the
 * kernels are built with OpenMP) and kiln_sgemm splits the larger of M and N over the OpenMP
 * team; kiln_sgemm_batched gives whole small GEMMs to threads. Called inside a parallel region,
 * everything runs serially on the calling thread. Letting OpenBLAS's own pthreads pool run
 * beside OpenMP-parallel kernels is what we measured to avoid: on 2 cores a pointwise OpenMP
 * loop followed by an OpenBLAS-threaded GEMM took 8 ms instead of 1.5 ms (the idle OpenMP
 * threads spin on the cores the BLAS threads wait for).
 *
 * Functions are static: include this header in every translation unit that needs it.
 */
#ifndef KILN_GEMM_H
#define KILN_GEMM_H

#include <limits.h>

#include "kiln_gemm_builtin.h"

#ifdef KILN_GEMM_OPENBLAS
/* Declared here, not via the wheel's cblas.h, so generated code needs no include path into
 * the wheel. The enums are ints in the C ABI: RowMajor 101, NoTrans 111, Trans 112. */
void scipy_cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);
void scipy_cblas_dgemm(int order, int transa, int transb, int m, int n, int k, double alpha,
                       const double *a, int lda, const double *b, int ldb, double beta,
                       double *c, int ldc);
#endif

/* Strides OpenBLAS accepts: it checks ld >= max(1, columns stored) even where a single stored
 * row makes ld meaningless, so such lds are raised; a genuinely smaller ld (overlapping rows,
 * ld == 0 broadcasting) is legal for us but not for BLAS and goes to the built-in kernel. */
static inline int kiln__fix_ld(long rows, long cols, long *ld)
{
    long need = cols > 1 ? cols : 1;
    if (*ld >= need) return *ld <= INT_MAX;
    if (rows <= 1) {
        *ld = need;
        return need <= INT_MAX;
    }
    return 0;
}

#define KILN_T float
#define KILN_X s
#define KILN_BLAS scipy_cblas_sgemm
#include "kiln_gemm_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_BLAS

#define KILN_T double
#define KILN_X d
#define KILN_BLAS scipy_cblas_dgemm
#include "kiln_gemm_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_BLAS

#endif /* KILN_GEMM_H */

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
 *   -DKILN_GEMM_MKL       cblas_[sd]gemm[_batch_strided] of Intel MKL from the `mkl` wheel:
 *                         libmkl_intel_lp64 linked by path (32-bit ints); it and the
 *                         libmkl_gnu_thread + libmkl_core layers (GNU OpenMP) are loaded
 *                         RTLD_LOCAL before any kernel library (kiln/backends/c/mkl.py says
 *                         how, and why not libmkl_rt).
 *   -DKILN_GEMM_OPENBLAS  scipy_cblas_[sd]gemm from the scipy-openblas32 wheel, linked by path
 *                         (DT_NEEDED libscipy_openblas.so) and loaded into the process before
 *                         any kernel library.
 *   otherwise             the built-in packed kernel of kiln_gemm_builtin.h.
 *   With either BLAS, shapes or strides beyond 32-bit ints, and strides BLAS would reject, go
 *   to the built-in kernel instead.
 *
 * Threads: there is ONE pool, OpenMP's (libgomp).
 *   MKL: its GNU threading layer runs on the very libgomp the kernels use, so kiln_sgemm calls
 *   MKL once and MKL forks the OpenMP team itself (omp_get_max_threads threads), except for
 *   skinny GEMMs (M or N < 16) that MKL would run on one thread: those are split like
 *   OpenBLAS's. kiln_sgemm_batched is one cblas_sgemm_batch_strided call. Inside a parallel
 *   region MKL sees omp_in_parallel() and runs on the calling thread.
 *   OpenBLAS: set to 1 thread (blas.py does it when the kernels are built with OpenMP) and
 *   kiln_sgemm splits the larger of M and N over the OpenMP team.
 *   OpenBLAS and built-in: kiln_sgemm_batched gives whole small GEMMs to threads.
 *   All: called inside a parallel region, everything runs serially on the calling thread.
 *   Letting a BLAS's own thread pool (OpenBLAS pthreads, MKL's Intel OpenMP) run beside
 *   OpenMP-parallel kernels is what we measured to avoid: on 2 cores a pointwise OpenMP loop
 *   followed by an OpenBLAS-threaded GEMM took 8 ms instead of 1.5 ms (the idle OpenMP
 *   threads spin on the cores the BLAS threads wait for).
 *
 * Functions are static: include this header in every translation unit that needs it.
 */
#ifndef KILN_GEMM_H
#define KILN_GEMM_H

#include <limits.h>

#include "kiln_gemm_builtin.h"

/* BLAS functions are declared here, not via the wheel's cblas.h, so generated code needs no
 * include path into a wheel. The enums are ints in the C ABI: RowMajor 101, NoTrans 111,
 * Trans 112; MKL's MKL_INT is int because we link its LP64 interface layer. */
#if defined(KILN_GEMM_MKL)
void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void cblas_dgemm(int order, int transa, int transb, int m, int n, int k, double alpha,
                 const double *a, int lda, const double *b, int ldb, double beta, double *c,
                 int ldc);
void cblas_sgemm_batch_strided(int order, int transa, int transb, int m, int n, int k,
                               float alpha, const float *a, int lda, int stridea, const float *b,
                               int ldb, int strideb, float beta, float *c, int ldc, int stridec,
                               int batch);
void cblas_dgemm_batch_strided(int order, int transa, int transb, int m, int n, int k,
                               double alpha, const double *a, int lda, int stridea,
                               const double *b, int ldb, int strideb, double beta, double *c,
                               int ldc, int stridec, int batch);
#define KILN__BLAS_S cblas_sgemm
#define KILN__BLAS_D cblas_dgemm
#define KILN__BLAS_BATCH_S cblas_sgemm_batch_strided
#define KILN__BLAS_BATCH_D cblas_dgemm_batch_strided
#define KILN__HAVE_BLAS 1
#elif defined(KILN_GEMM_OPENBLAS)
void scipy_cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);
void scipy_cblas_dgemm(int order, int transa, int transb, int m, int n, int k, double alpha,
                       const double *a, int lda, const double *b, int ldb, double beta,
                       double *c, int ldc);
#define KILN__BLAS_S scipy_cblas_sgemm
#define KILN__BLAS_D scipy_cblas_dgemm
#define KILN__HAVE_BLAS 1
#endif

/* Strides a BLAS accepts: it checks ld >= max(1, columns stored) even where a single stored
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
#define KILN_BLAS KILN__BLAS_S
#define KILN_BLAS_BATCH KILN__BLAS_BATCH_S
#include "kiln_gemm_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_BLAS
#undef KILN_BLAS_BATCH

#define KILN_T double
#define KILN_X d
#define KILN_BLAS KILN__BLAS_D
#define KILN_BLAS_BATCH KILN__BLAS_BATCH_D
#include "kiln_gemm_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_BLAS
#undef KILN_BLAS_BATCH

#endif /* KILN_GEMM_H */

/* Kiln's built-in GEMM: packed, register-blocked, OpenMP-parallel, no dependencies.
 *
 * kiln_gemm.h uses this when OpenBLAS (the scipy-openblas32 wheel) is not available; it is
 * also what benchmarks/native_gemm.py measures as the "hand-written" option. Row-major:
 *   C = alpha * op(A) @ op(B) + beta * C,   op(X) = X or X^T,   C is M x N.
 *
 * Micro-tiles: AVX-512F 12 x 32 floats / 12 x 16 doubles, AVX2+FMA 6 x 16 / 6 x 8, and
 * portable C 4 x 8 that the compiler vectorizes as it can. FMAs are explicit intrinsics, so
 * -ffp-contract=off does not slow the kernel down.
 */
#ifndef KILN_GEMM_BUILTIN_H
#define KILN_GEMM_BUILTIN_H

#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define KILN__CAT2(a, b) a##b
#define KILN__CAT(a, b) KILN__CAT2(a, b)
#if defined(__GNUC__)
#define KILN__MAYBE_UNUSED __attribute__((unused))
#else
#define KILN__MAYBE_UNUSED
#endif

#define KILN_GB_KC 256 /* K slice: a 256 x 32 float B micro-panel is 32 KiB, one L1 */

static inline void *kiln__aligned_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* Threads for one GEMM call. Inside a parallel region the caller already owns the cores, so
 * run serially; below ~0.25 MFLOP a fork/join costs more than the second core gives back. */
static inline int kiln__gemm_threads(double mnk)
{
#ifdef _OPENMP
    if (omp_in_parallel() || mnk < 128.0 * 1024) return 1;
    return omp_get_max_threads();
#else
    (void)mnk;
    return 1;
#endif
}

/* Per-ISA vector vocabulary; kiln_gemm_builtin_impl.h writes the micro-kernel with it. The
 * micro-tile is KILN_MR rows by two vectors; 2 * MR accumulators stay in registers. */
#if defined(__AVX512F__)
#define KILN__SMR 12 /* 24 zmm accumulators + 2 B vectors + 1 broadcast of 32 registers */
#define KILN__DMR 12
#define KILN__SV __m512
#define KILN__DV __m512d
#define KILN__S_ZERO() _mm512_setzero_ps()
#define KILN__S_LOAD(p) _mm512_load_ps(p)
#define KILN__S_BCAST(p) _mm512_set1_ps(*(p))
#define KILN__S_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define KILN__S_STORE(p, v) _mm512_storeu_ps(p, v)
#define KILN__D_ZERO() _mm512_setzero_pd()
#define KILN__D_LOAD(p) _mm512_load_pd(p)
#define KILN__D_BCAST(p) _mm512_set1_pd(*(p))
#define KILN__D_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define KILN__D_STORE(p, v) _mm512_storeu_pd(p, v)
#elif defined(__AVX2__) && defined(__FMA__)
#define KILN__SMR 6 /* 12 ymm accumulators + 2 B vectors + 1 broadcast of 16 registers */
#define KILN__DMR 6
#define KILN__SV __m256
#define KILN__DV __m256d
#define KILN__S_ZERO() _mm256_setzero_ps()
#define KILN__S_LOAD(p) _mm256_load_ps(p)
#define KILN__S_BCAST(p) _mm256_broadcast_ss(p)
#define KILN__S_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define KILN__S_STORE(p, v) _mm256_storeu_ps(p, v)
#define KILN__D_ZERO() _mm256_setzero_pd()
#define KILN__D_LOAD(p) _mm256_load_pd(p)
#define KILN__D_BCAST(p) _mm256_broadcast_sd(p)
#define KILN__D_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define KILN__D_STORE(p, v) _mm256_storeu_pd(p, v)
#else
/* Portable: scalars, 4 x 8 tiles the compiler may vectorize. */
#define KILN__SMR 4
#define KILN__DMR 4
#define KILN__GENERIC 1
#endif

#define KILN_T float
#define KILN_X s
#define KILN_MR KILN__SMR
#ifndef KILN__GENERIC
#define KILN_VT KILN__SV
#define KILN_VZERO KILN__S_ZERO
#define KILN_VLOAD KILN__S_LOAD
#define KILN_VBCAST KILN__S_BCAST
#define KILN_VFMA KILN__S_FMA
#define KILN_VSTORE KILN__S_STORE
#endif
#include "kiln_gemm_builtin_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_MR
#undef KILN_VT
#undef KILN_VZERO
#undef KILN_VLOAD
#undef KILN_VBCAST
#undef KILN_VFMA
#undef KILN_VSTORE

#define KILN_T double
#define KILN_X d
#define KILN_MR KILN__DMR
#ifndef KILN__GENERIC
#define KILN_VT KILN__DV
#define KILN_VZERO KILN__D_ZERO
#define KILN_VLOAD KILN__D_LOAD
#define KILN_VBCAST KILN__D_BCAST
#define KILN_VFMA KILN__D_FMA
#define KILN_VSTORE KILN__D_STORE
#endif
#include "kiln_gemm_builtin_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_MR
#undef KILN_VT
#undef KILN_VZERO
#undef KILN_VLOAD
#undef KILN_VBCAST
#undef KILN_VFMA
#undef KILN_VSTORE

#endif /* KILN_GEMM_BUILTIN_H */

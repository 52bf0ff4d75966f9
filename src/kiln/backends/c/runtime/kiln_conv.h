/* kiln_conv.h: native conv2d and 2-D pooling for Kiln's generated C. NCHW, contiguous, row-major.
 *
 * Semantics are exactly those of the primitives in kiln/ops/conv.py and kiln/ops/pool.py (the
 * NumPy reference kernels), with an optional fused epilogue on the forward convolution.
 * Python mirror (names, argument order, workspace formula): kiln/backends/c/conv_kernels.py.
 *
 * Every size is a runtime int64_t; nothing is baked in. One geometry list, written GEOM below,
 * is shared by the three convolution kernels and the workspace query:
 *
 *   GEOM = int64_t N, int64_t C, int64_t H, int64_t W,  input  (N, C, H, W)
 *          int64_t O, int64_t KH, int64_t KW,           weight (O, C / groups, KH, KW)
 *          int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
 *          int64_t groups                               output (N, O, OH, OW), OH/OW derived:
 *   OH = (H + 2*ph - dh*(KH - 1) - 1) / sh + 1          (and OW likewise)
 *
 *   int kiln_conv2d_f32(const float *x, const float *w, const float *bias,
 *                       const float *residual, float *out, GEOM, int act, void *ws);
 *       out = act(conv2d(x, w) + bias[o] + residual). bias (O values) and residual (the shape
 *       of out) may be NULL. act: KILN_ACT_NONE (0) or KILN_ACT_RELU (1; NaN propagates, like
 *       np.maximum(v, 0)). The ResNet inference case conv -> folded BN -> (+ skip) -> relu is
 *       one call.
 *   int kiln_conv2d_input_grad_f32(const float *g, const float *w, float *dx, GEOM, void *ws);
 *       conv2d_input_grad(g, w, input_hw=(H, W), ...): g is (N, O, OH, OW), dx is (N, C, H, W).
 *   int kiln_conv2d_weight_grad_f32(const float *x, const float *g, float *dweight, GEOM,
 *                                   void *ws);
 *       conv2d_weight_grad(x, g, kernel_hw=(KH, KW), ...): dweight is (O, C / groups, KH, KW).
 *   int64_t kiln_conv2d_workspace_bytes(int op, GEOM, int64_t elem_size);
 *       op: KILN_CONV_FORWARD (0), KILN_CONV_INPUT_GRAD (1), KILN_CONV_WEIGHT_GRAD (2);
 *       elem_size 4 or 8. Bytes of scratch `ws` must hold (no alignment needed); -1 for bad
 *       geometry. The formula is independent of ISA and thread count (conv_kernels.py has the
 *       same one for static memory planning). ws == NULL makes the kernel malloc what it needs.
 *
 *   int kiln_max_pool2d_f32(const float *x, float *out, int64_t N, int64_t C, int64_t H,
 *                           int64_t W, int64_t OH, int64_t OW, int64_t kh, int64_t kw,
 *                           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
 *                           int64_t dw);
 *   int kiln_max_pool2d_backward_f32(const float *g, const float *x, float *dx, <same sizes>);
 *       Window positions outside the input count as -inf; NaN counts as the maximum; the
 *       backward routes each gradient to the FIRST maximum in row-major window order, exactly
 *       like np.argmax (a window whose first maximum is padding feeds nothing).
 *   int kiln_avg_pool2d_f32(const float *x, float *out, int64_t N, int64_t C, int64_t H,
 *                           int64_t W, int64_t OH, int64_t OW, int64_t kh, int64_t kw,
 *                           int64_t sh, int64_t sw, int64_t ph, int64_t pw,
 *                           int count_include_pad, int64_t divisor_override);
 *   int kiln_avg_pool2d_backward_f32(const float *g, float *dx, <same sizes as forward>);
 *       divisor_override <= 0 means None. The divisor rule is avg_divisors() in ops/pool.py.
 *       OH and OW are passed (ceil_mode is folded into them; kiln_pool_out_size computes them).
 *   int64_t kiln_pool_out_size(int64_t size, int64_t k, int64_t s, int64_t p, int64_t d,
 *                              int ceil_mode);                  pool_out_size() of ops/pool.py
 *
 *   Every kernel also exists as _f64 with double. Return: KILN_CONV_OK (0), KILN_CONV_EARG (-1,
 *   inconsistent sizes: nothing written) or KILN_CONV_ENOMEM (-2, ws == NULL and malloc failed).
 *   Pointers must not alias each other (out != residual). Outputs are fully overwritten; their
 *   prior contents are never read (NaN garbage cannot leak).
 *
 * Strategy (measured by benchmarks/native_conv.py):
 *   - Forward on AVX-512: implicit GEMM, out[n] (O x OH*OW) = W (O x K) @ im2col(x[n]). No im2col
 *     buffer: each thread packs a K-slice x 32-column panel of im2col straight from x into an
 *     L1-sized stack buffer (masked loads where the lanes read consecutive input, two masked
 *     loads + a permute for stride 2, masked gathers otherwise; padding is a mask, never a
 *     branch) and runs a 14 x 32 (f32) / 14 x 16 (f64) register-blocked micro-kernel over the
 *     output channels, weights broadcast unpacked. Bias, residual and relu are applied as the
 *     last K slice is stored. Threads split column panels, and output channels when there are
 *     too few panels (a cost model weighs repacking against streaming W). At batch > 1 panels
 *     run across image boundaries when that fills lanes (7x7 maps).
 *   - Input gradient of a stride-1 convolution: the forward kernel on g with the flipped,
 *     transposed weight (in ws). Weight gradient on AVX-512: threads own blocks of K rows,
 *     build those rows of an explicit im2col chunk (ws) and accumulate dW^T (ws) with the same
 *     micro-kernel against panels of g^T; chunks run along K when K > N*OH*OW.
 *   - Depthwise and other convs with few channels per group: a direct kernel (no GEMM).
 *   - Without AVX-512 (portable builds, other ISAs), and for strided input gradients: explicit
 *     im2col / col2im over bounded chunks (the workspace) + kiln_gemm.h; 1x1/stride-1/no-pad
 *     convolutions go to GEMM with no copy.
 *   - Pooling: direct loops, OpenMP over (n, c) planes, one plane per thread at a time so the
 *     scatter of the backward kernels never races.
 *
 * Threads: OpenMP, like kiln_gemm.h. Called inside a parallel region a kernel runs serially on
 * the calling thread. Needs kiln_gemm.h's flags and libraries (kiln.backends.c.blas).
 *
 * Functions are static: include this header in every translation unit that needs it.
 */
#ifndef KILN_CONV_H
#define KILN_CONV_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln_gemm.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__BMI2__) && \
    !defined(KILN_CONV_GENERIC)
#define KILN__CONV_AVX512 1
#include <immintrin.h>
#endif

#define KILN_ACT_NONE 0
#define KILN_ACT_RELU 1

#define KILN_CONV_FORWARD 0
#define KILN_CONV_INPUT_GRAD 1
#define KILN_CONV_WEIGHT_GRAD 2

#define KILN_CONV_OK 0
#define KILN_CONV_EARG (-1)
#define KILN_CONV_ENOMEM (-2)

/* Elements of one explicit im2col chunk: big enough for efficient GEMMs, small enough to stay
 * in L2/L3. Mirrored as IM2COL_CHUNK in conv_kernels.py. */
#define KILN__CONV_CHUNK ((int64_t)1 << 19)

#ifdef _OPENMP
#include <omp.h>
#endif

/* Threads a kernel may use for `work` multiply-adds (1 inside a parallel region or when the
 * fork/join would cost more than the second core gives back). */
static inline int kiln__conv_threads(double work)
{
#ifdef _OPENMP
    if (omp_in_parallel() || work < 32768.0) return 1;
    return omp_get_max_threads();
#else
    (void)work;
    return 1;
#endif
}

typedef struct {
    int64_t N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, G;
    int64_t OH, OW, P, HW, cg, og, Kg;
} kiln__conv_geom;

/* Fills g; returns 0, or -1 if the sizes cannot describe a convolution. */
static inline int kiln__conv_geom_init(kiln__conv_geom *g, int64_t N, int64_t C, int64_t H,
                                       int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t sh,
                                       int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                       int64_t dw, int64_t groups)
{
    const int64_t big = (int64_t)1 << 40; /* keeps every product below 2^63 */
    if (N < 0 || C < 0 || H < 0 || W < 0 || O < 0 || KH < 1 || KW < 1 || sh < 1 || sw < 1 ||
        ph < 0 || pw < 0 || dh < 1 || dw < 1 || groups < 1)
        return -1;
    if (N > big || C > big || H > big || W > big || O > big || KH > big || KW > big ||
        sh > big || sw > big || ph > big || pw > big || dh > big || dw > big)
        return -1;
    if (C % groups || O % groups) return -1;
    const int64_t spanh = H + 2 * ph - dh * (KH - 1) - 1, spanw = W + 2 * pw - dw * (KW - 1) - 1;
    if (spanh < 0 || spanw < 0) return -1;
    g->N = N, g->C = C, g->H = H, g->W = W, g->O = O, g->KH = KH, g->KW = KW;
    g->sh = sh, g->sw = sw, g->ph = ph, g->pw = pw, g->dh = dh, g->dw = dw, g->G = groups;
    g->OH = spanh / sh + 1, g->OW = spanw / sw + 1;
    g->P = g->OH * g->OW, g->HW = H * W;
    g->cg = C / groups, g->og = O / groups, g->Kg = g->cg * KH * KW;
    return 0;
}

static inline int kiln__conv_is_pointwise(const kiln__conv_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Columns of one explicit im2col chunk of `rows` rows over `cols` columns in all. */
static inline int64_t kiln__conv_chunk_cols(int64_t rows, int64_t cols)
{
    int64_t c = rows > 0 ? KILN__CONV_CHUNK / rows : cols;
    if (c < 1) c = 1;
    return c < cols ? c : cols;
}

/* Weight-gradient chunks: kch rows of K by jc columns of the batch's output positions. Few
 * positions per K row (7x7 maps): chunk K, so each dW^T accumulator row is finished in one
 * pass; otherwise chunk the positions. */
static inline void kiln__conv_wgrad_chunks(const kiln__conv_geom *g, int64_t *kch, int64_t *jc)
{
    const int64_t np = g->N * g->P;
    if (g->Kg <= np) {
        *kch = g->Kg;
        *jc = kiln__conv_chunk_cols(g->Kg, np);
    } else {
        const int64_t rows = KILN__CONV_CHUNK / (np > 0 ? np : 1);
        *jc = np;
        *kch = rows < 64 ? 64 : rows > g->Kg ? g->Kg : rows;
    }
}

/* Workspace elements per op; see kiln_conv2d_workspace_bytes. */
static inline int64_t kiln__conv_ws_elems(int op, const kiln__conv_geom *g)
{
    if (g->N == 0 || g->O == 0 || g->Kg == 0) return 0;
    const int64_t im2col = kiln__conv_is_pointwise(g) ? 0
                                                      : g->Kg * kiln__conv_chunk_cols(g->Kg, g->P);
    if (op == KILN_CONV_FORWARD) return im2col;
    if (op == KILN_CONV_INPUT_GRAD) return g->O * g->Kg + im2col;
    /* an im2col chunk (rows padded by 16), its dW^T rows, and g^T in 32-wide panels */
    int64_t kch, jc;
    kiln__conv_wgrad_chunks(g, &kch, &jc);
    return kch * (jc + 16) + kch * g->og + (g->og + 31) / 32 * 32 * jc;
}

static KILN__MAYBE_UNUSED int64_t kiln_conv2d_workspace_bytes(
    int op, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups,
    int64_t elem_size)
{
    kiln__conv_geom g;
    if (op < 0 || op > 2 || (elem_size != 4 && elem_size != 8) ||
        kiln__conv_geom_init(&g, N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, groups))
        return -1;
    return kiln__conv_ws_elems(op, &g) * elem_size;
}

static inline int64_t kiln__floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* pool_out_size() of ops/pool.py, Python's floor division included (ceil_mode can make a
 * window from a negative span); a result < 1 means no window fits (the op rejects it). */
static KILN__MAYBE_UNUSED int64_t kiln_pool_out_size(int64_t size, int64_t k, int64_t s,
                                                     int64_t p, int64_t d, int ceil_mode)
{
    if (size < 0 || k < 1 || s < 1 || p < 0 || d < 1) return -1;
    const int64_t span = size + 2 * p - d * (k - 1) - 1;
    if (!ceil_mode) return kiln__floordiv(span, s) + 1;
    int64_t out = -kiln__floordiv(-span, s) + 1;
    if ((out - 1) * s >= size + p) out -= 1; /* the last window would start in the padding */
    return out;
}

/* Scratch: the caller's, or a malloc'ed block released by kiln__conv_ws_release. */
static inline void *kiln__conv_ws_take(void *ws, int64_t bytes, int *owned)
{
    *owned = 0;
    if (bytes <= 0 || ws != NULL) return ws;
    *owned = 1;
    return malloc((size_t)bytes);
}

static inline void kiln__conv_ws_release(void *p, int owned)
{
    if (owned) free(p);
}

#define KILN_T float
#define KILN_X f32
#define KILN_GEMM_FN kiln_sgemm
#ifdef KILN__CONV_AVX512
#define KILN_VL 16
#define KILN_VT __m512
#define KILN_IT __m512i
#define KILN_MT __mmask16
#define KILN_V_ZERO() _mm512_setzero_ps()
#define KILN_V_SET1(x) _mm512_set1_ps(x)
#define KILN_V_LOAD(p) _mm512_loadu_ps(p)
#define KILN_V_STORE(p, v) _mm512_storeu_ps(p, v)
#define KILN_V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define KILN_V_ADD(a, b) _mm512_add_ps(a, b)
#define KILN_V_MAX(a, b) _mm512_max_ps(a, b)
#define KILN_V_MASKZ_LOADU(m, p) _mm512_maskz_loadu_ps(m, p)
#define KILN_V_MASK_LOADU(src, m, p) _mm512_mask_loadu_ps(src, m, p)
#define KILN_V_MASK_STOREU(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define KILN_V_GATHER(m, idx, base) \
    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, sizeof(float))
#define KILN_I_LOADU(p) _mm512_loadu_si512((const void *)(p))
#define KILN_I_SET1(x) _mm512_set1_epi32(x)
#define KILN_I_ADD(a, b) _mm512_add_epi32(a, b)
#define KILN_I_CMPLTU(m, a, b) _mm512_mask_cmplt_epu32_mask(m, a, b)
/* Stride-2 lanes: the even elements of two consecutive vectors, and the load masks they need. */
#define KILN_V_EVENS(m, lo, hi) \
    _mm512_maskz_permutex2var_ps(m, lo, _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, \
                                                         12, 10, 8, 6, 4, 2, 0), hi)
#define KILN_SPREAD_LO(m) ((__mmask16)_pdep_u32((unsigned)(m) & 0xFFu, 0x5555u))
#define KILN_SPREAD_HI(m) ((__mmask16)_pdep_u32(((unsigned)(m) >> 8) & 0xFFu, 0x5555u))
#define KILN_PIDX_T int32_t /* lane indices of KILN_V_PERM2 */
#define KILN_V_PERM2(a, idx, b) _mm512_permutex2var_ps(a, idx, b)
#endif
#include "kiln_conv_impl.h"
#include "kiln_pool_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_GEMM_FN
#undef KILN_VL
#undef KILN_VT
#undef KILN_IT
#undef KILN_MT
#undef KILN_V_ZERO
#undef KILN_V_SET1
#undef KILN_V_LOAD
#undef KILN_V_STORE
#undef KILN_V_FMA
#undef KILN_V_ADD
#undef KILN_V_MAX
#undef KILN_V_MASKZ_LOADU
#undef KILN_V_MASK_LOADU
#undef KILN_V_MASK_STOREU
#undef KILN_V_GATHER
#undef KILN_I_LOADU
#undef KILN_I_SET1
#undef KILN_I_ADD
#undef KILN_I_CMPLTU
#undef KILN_V_EVENS
#undef KILN_SPREAD_LO
#undef KILN_SPREAD_HI
#undef KILN_PIDX_T
#undef KILN_V_PERM2

#define KILN_T double
#define KILN_X f64
#define KILN_GEMM_FN kiln_dgemm
#ifdef KILN__CONV_AVX512
#define KILN_VL 8
#define KILN_VT __m512d
#define KILN_IT __m256i
#define KILN_MT __mmask8
#define KILN_V_ZERO() _mm512_setzero_pd()
#define KILN_V_SET1(x) _mm512_set1_pd(x)
#define KILN_V_LOAD(p) _mm512_loadu_pd(p)
#define KILN_V_STORE(p, v) _mm512_storeu_pd(p, v)
#define KILN_V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define KILN_V_ADD(a, b) _mm512_add_pd(a, b)
#define KILN_V_MAX(a, b) _mm512_max_pd(a, b)
#define KILN_V_MASKZ_LOADU(m, p) _mm512_maskz_loadu_pd(m, p)
#define KILN_V_MASK_LOADU(src, m, p) _mm512_mask_loadu_pd(src, m, p)
#define KILN_V_MASK_STOREU(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define KILN_V_GATHER(m, idx, base) \
    _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, base, sizeof(double))
#define KILN_I_LOADU(p) _mm256_loadu_si256((const __m256i *)(p))
#define KILN_I_SET1(x) _mm256_set1_epi32(x)
#define KILN_I_ADD(a, b) _mm256_add_epi32(a, b)
#define KILN_I_CMPLTU(m, a, b) _mm256_mask_cmplt_epu32_mask(m, a, b)
#define KILN_V_EVENS(m, lo, hi) \
    _mm512_maskz_permutex2var_pd(m, lo, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), hi)
#define KILN_SPREAD_LO(m) ((__mmask8)_pdep_u32((unsigned)(m) & 0xFu, 0x55u))
#define KILN_SPREAD_HI(m) ((__mmask8)_pdep_u32(((unsigned)(m) >> 4) & 0xFu, 0x55u))
#define KILN_PIDX_T int64_t
#define KILN_V_PERM2(a, idx, b) _mm512_permutex2var_pd(a, idx, b)
#endif
#include "kiln_conv_impl.h"
#include "kiln_pool_impl.h"
#undef KILN_T
#undef KILN_X
#undef KILN_GEMM_FN
#undef KILN_VL
#undef KILN_VT
#undef KILN_IT
#undef KILN_MT
#undef KILN_V_ZERO
#undef KILN_V_SET1
#undef KILN_V_LOAD
#undef KILN_V_STORE
#undef KILN_V_FMA
#undef KILN_V_ADD
#undef KILN_V_MAX
#undef KILN_V_MASKZ_LOADU
#undef KILN_V_MASK_LOADU
#undef KILN_V_MASK_STOREU
#undef KILN_V_GATHER
#undef KILN_I_LOADU
#undef KILN_I_SET1
#undef KILN_I_ADD
#undef KILN_I_CMPLTU
#undef KILN_V_EVENS
#undef KILN_SPREAD_LO
#undef KILN_SPREAD_HI
#undef KILN_PIDX_T
#undef KILN_V_PERM2

#endif /* KILN_CONV_H */

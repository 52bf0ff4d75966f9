/* Fused optimizer steps: one call updates every tensor of a parameter group.
 *
 * Built and loaded by kiln/optim/fused.py (toolchain.compile_shared with Kiln's flags; the
 * one that matters here is -ffp-contract=off: a*b+c stays two roundings, like NumPy).
 *
 * Each element goes through the very operations of the NumPy fast path (sgd.py and adam.py,
 * `_fast_update`), in the same order and the same precision: every scalar arrives as a
 * double computed by Python exactly as the fast path computes it, and is rounded once to the
 * element type, which is what NumPy does with a Python float next to a float32 array. So the
 * results are bit for bit those of the fast path (NaN payloads aside: when two NaNs meet in
 * one operation, which one propagates depends on the operand order the compiler picked).
 *
 * Work split: the tensors' elements are taken as one concatenated range, cut into one slice
 * per OpenMP thread (one parallel region per step); small steps run on the calling thread.
 * Every worker first adopts the calling thread's floating-point environment (rounding mode,
 * flush-to-zero), the one NumPy would have computed in.
 *
 * Descriptor of tensor i: desc[i * KO_W + column], columns below (uint64: pointers, counts).
 * Group scalars: h[] (doubles, per algorithm below); flags: bits per algorithm below.
 * Per-tensor scalars (Adam): ts[i * 2 + 0] = -step_size, ts[i * 2 + 1] = sqrt(bias_corr2).
 */
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define KO_ABI 1
enum { KO_P, KO_G, KO_S0, KO_S1, KO_S2, KO_N, KO_FIRST, KO_W };

/* SGD: h = {weight_decay, momentum, 1 - dampening, -lr} */
#define SGD_MAXIMIZE 1
#define SGD_DECAY 2     /* weight_decay != 0 */
#define SGD_MOMENTUM 4  /* momentum != 0: S0 is the momentum buffer; FIRST: fill it */
#define SGD_DAMP_ONE 8  /* 1 - dampening == 1: add the gradient without multiplying */
#define SGD_NESTEROV 16

/* Adam: h = {weight_decay, 1 - lr * weight_decay, w = 1 - beta1, 1 - w, beta2, 1 - beta2,
 *            eps}, each computed in Python double arithmetic as written;
 * S0 exp_avg, S1 exp_avg_sq, S2 max_exp_avg_sq */
#define ADAM_MAXIMIZE 1
#define ADAM_DECAY 2      /* weight_decay != 0 */
#define ADAM_DECOUPLED 4  /* AdamW: p *= 1 - lr * wd, instead of g += wd * p */
#define ADAM_LERP_LOW 8   /* lerp weight (1 - beta1) < 0.5 */
#define ADAM_AMSGRAD 16

/* Below this many elements a step runs on one thread (a fork/join costs more). */
#define KO_PARALLEL_MIN 32768

int kiln_optim_abi(void) { return KO_ABI; }

/* np.maximum: a NaN in either operand wins (the first one if both are NaN); on ties
 * (+0 vs -0) the second operand. */
#define KO_MAXIMUM(a, b) (isnan(a) ? (a) : (isnan(b) ? (b) : ((a) > (b) ? (a) : (b))))

/* ---------------------------------------------------------------------------------------
 * The parallel driver. */

/* Start of thread t's slice of [0, total), on a 64-element boundary (no false sharing). */
static int64_t ko_split(int64_t total, int64_t t, int64_t nt) {
    if (t >= nt) return total;
    const int64_t x = (total / nt) * t + ((total % nt) * t) / nt;
    return x & ~(int64_t)63;
}

static int ko_threads(int64_t total, int64_t nthreads) {
#ifdef _OPENMP
    int64_t nt = nthreads > 0 ? nthreads : omp_get_max_threads();
    if (total < KO_PARALLEL_MIN) return 1;
    const int64_t most = total / (KO_PARALLEL_MIN / 2);  /* keep every slice worth a thread */
    if (nt > most) nt = most;
    return nt < 1 ? 1 : (int)nt;
#else
    (void)total;
    (void)nthreads;
    return 1;
#endif
}

typedef void (*ko_range_fn)(const uint64_t *, const double *, int64_t, const double *, int64_t,
                            int64_t, int64_t);

static void ko_run(ko_range_fn fn, const uint64_t *desc, const double *ts, int64_t count,
                   const double *h, int64_t flags, int64_t nthreads) {
    int64_t total = 0;
    for (int64_t k = 0; k < count; k++) total += (int64_t)desc[k * KO_W + KO_N];
    const int nt = ko_threads(total, nthreads);
    if (nt <= 1) {
        fn(desc, ts, count, h, flags, 0, total);
        return;
    }
#ifdef _OPENMP
    fenv_t env;
    fegetenv(&env);
#pragma omp parallel num_threads(nt)
    {
        const int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
        fenv_t own;
        if (t != 0) {
            fegetenv(&own);
            fesetenv(&env);
        }
        fn(desc, ts, count, h, flags, ko_split(total, t, k), ko_split(total, t + 1, k));
        if (t != 0) fesetenv(&own);
    }
#endif
}

/* ---------------------------------------------------------------------------------------
 * The kernels, once per element type. */

#define KO_FN2(name, sfx) name##_##sfx
#define KO_FN1(name, sfx) KO_FN2(name, sfx)
#define KO_FN(name) KO_FN1(name, KO_SFX)

#define T float
#define KO_SFX f32
#define KO_SQRT sqrtf /* never sqrt: the float would take a trip through double */
#include "kiln_optim_impl.h"
#undef T
#undef KO_SFX
#undef KO_SQRT

#define T double
#define KO_SFX f64
#define KO_SQRT sqrt
#include "kiln_optim_impl.h"
#undef T
#undef KO_SFX
#undef KO_SQRT

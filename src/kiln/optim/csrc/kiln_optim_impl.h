/* The kernels of kiln_optim.c for one element type: included with T (float or double),
 * KO_SFX (f32 or f64) and KO_SQRT (sqrtf or sqrt) defined.
 *
 * Every line mirrors a ufunc of the NumPy fast path (sgd.py / adam.py, `_fast_update`):
 * the same operation on the same operands in the same order, so with -ffp-contract=off
 * each rounds exactly as NumPy's does. Options that decide which arrays exist (momentum,
 * first step, amsgrad) get loops of their own, so no load from an absent array is ever
 * speculated; the others are loop-invariant conditions that become selects in the vector
 * loop: each element still takes exactly the operations of its branch. */

static void KO_FN(sgd_span)(T *restrict p, const T *restrict g, T *restrict b, int64_t n,
                            const double *h, int64_t flags, int first) {
    const T wd = (T)h[0], mom = (T)h[1], damp = (T)h[2], neg_lr = (T)h[3];
    const int maximize = (flags & SGD_MAXIMIZE) != 0, decay = (flags & SGD_DECAY) != 0;
    const int damp_one = (flags & SGD_DAMP_ONE) != 0;
    const int nesterov = (flags & SGD_NESTEROV) != 0;
    if (!(flags & SGD_MOMENTUM)) {
        for (int64_t i = 0; i < n; i++) {
            const T gi = g[i];
            T x = maximize ? -gi : gi;
            if (decay) x = x + p[i] * wd;
            p[i] = p[i] + x * neg_lr;
        }
    } else if (first) {
        for (int64_t i = 0; i < n; i++) {
            const T gi = g[i];
            T x = maximize ? -gi : gi;
            if (decay) x = x + p[i] * wd;
            const T m = x; /* as torch: the first buffer is a clone of the gradient */
            b[i] = m;
            x = nesterov ? x + m * mom : m;
            p[i] = p[i] + x * neg_lr;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const T gi = g[i];
            T x = maximize ? -gi : gi;
            if (decay) x = x + p[i] * wd;
            T m = b[i] * mom;
            m = damp_one ? m + x : m + x * damp;
            b[i] = m;
            x = nesterov ? x + m * mom : m;
            p[i] = p[i] + x * neg_lr;
        }
    }
}

/* The body of Adam's loop over i; `best` is a null pointer constant without amsgrad. */
#define KO_ADAM_ELEM(best)                                                                 \
    {                                                                                      \
        const T gi = g[i];                                                                 \
        T x = maximize ? -gi : gi;                                                         \
        T pv = p[i];                                                                       \
        const T x_decayed = x + pv * wd, p_decayed = pv * decay_factor;                    \
        x = decay_grad ? x_decayed : x; /* selects: a nested if stops the vectorizer */    \
        pv = decay_param ? p_decayed : pv;                                                 \
        const T m0 = ma[i];                                                                \
        const T d = x - m0; /* lerp: m + d * w below w = 0.5, else g - d * (1 - w) */     \
        const T m = lerp_low ? m0 + d * weight : x - d * one_minus_weight;                 \
        ma[i] = m;                                                                         \
        const T v = va[i] * beta2 + (x * one_minus_beta2) * x;                             \
        va[i] = v;                                                                         \
        T src = v;                                                                         \
        if (best) {                                                                        \
            const T a = (best)[i];                                                         \
            src = KO_MAXIMUM(a, v);                                                        \
            (best)[i] = src;                                                               \
        }                                                                                  \
        const T den = KO_SQRT(src) / bc2 + eps;                                           \
        p[i] = pv + (m * neg_step) / den;                                                  \
    }

static void KO_FN(adam_span)(T *restrict p, const T *restrict g, T *restrict ma,
                             T *restrict va, T *restrict best, int64_t n, const double *h,
                             int64_t flags, const double *ts) {
    const T wd = (T)h[0], decay_factor = (T)h[1], weight = (T)h[2];
    const T one_minus_weight = (T)h[3], beta2 = (T)h[4], one_minus_beta2 = (T)h[5];
    const T eps = (T)h[6], neg_step = (T)ts[0], bc2 = (T)ts[1];
    const int maximize = (flags & ADAM_MAXIMIZE) != 0, decay = (flags & ADAM_DECAY) != 0;
    const int decay_param = decay && (flags & ADAM_DECOUPLED); /* AdamW: p *= 1 - lr * wd */
    const int decay_grad = decay && !(flags & ADAM_DECOUPLED); /* Adam: g += wd * p */
    const int lerp_low = (flags & ADAM_LERP_LOW) != 0;
    if (flags & ADAM_AMSGRAD) {
        for (int64_t i = 0; i < n; i++) KO_ADAM_ELEM(best)
    } else {
        for (int64_t i = 0; i < n; i++) KO_ADAM_ELEM((T *)0)
    }
}
#undef KO_ADAM_ELEM

/* Elements [lo, hi) of the concatenation of all tensors, tensor by tensor. */
static void KO_FN(sgd_range)(const uint64_t *desc, const double *ts, int64_t count,
                             const double *h, int64_t flags, int64_t lo, int64_t hi) {
    (void)ts;
    int64_t off = 0;
    for (int64_t k = 0; k < count && off < hi; k++) {
        const uint64_t *d = desc + k * KO_W;
        const int64_t n = (int64_t)d[KO_N];
        const int64_t a = lo > off ? lo - off : 0, z = (hi < off + n ? hi : off + n) - off;
        if (a < z)
            KO_FN(sgd_span)((T *)(uintptr_t)d[KO_P] + a, (const T *)(uintptr_t)d[KO_G] + a,
                            d[KO_S0] ? (T *)(uintptr_t)d[KO_S0] + a : (T *)0, z - a, h, flags,
                            d[KO_FIRST] != 0);
        off += n;
    }
}

static void KO_FN(adam_range)(const uint64_t *desc, const double *ts, int64_t count,
                              const double *h, int64_t flags, int64_t lo, int64_t hi) {
    int64_t off = 0;
    for (int64_t k = 0; k < count && off < hi; k++) {
        const uint64_t *d = desc + k * KO_W;
        const int64_t n = (int64_t)d[KO_N];
        const int64_t a = lo > off ? lo - off : 0, z = (hi < off + n ? hi : off + n) - off;
        if (a < z)
            KO_FN(adam_span)((T *)(uintptr_t)d[KO_P] + a, (const T *)(uintptr_t)d[KO_G] + a,
                             (T *)(uintptr_t)d[KO_S0] + a, (T *)(uintptr_t)d[KO_S1] + a,
                             d[KO_S2] ? (T *)(uintptr_t)d[KO_S2] + a : (T *)0, z - a, h,
                             flags, ts + 2 * k);
        off += n;
    }
}

int KO_FN(kiln_optim_sgd)(const uint64_t *desc, const double *ts, int64_t count,
                          const double *h, int64_t flags, int64_t nthreads) {
    if (count < 0 || (count > 0 && (!desc || !h))) return 1;
    ko_run(KO_FN(sgd_range), desc, ts, count, h, flags, nthreads);
    return 0;
}

int KO_FN(kiln_optim_adam)(const uint64_t *desc, const double *ts, int64_t count,
                           const double *h, int64_t flags, int64_t nthreads) {
    if (count < 0 || (count > 0 && (!desc || !h || !ts))) return 1;
    ko_run(KO_FN(adam_range), desc, ts, count, h, flags, nthreads);
    return 0;
}

/* Fused update kernels of gdcore's optimizers (see optim_kernels.h for the interface).
 *
 * Reads p, g and the state buffers of a kind, writes p and the state, once per element.
 * The update rules are those documented by torch.optim (SGD, Adam/AdamW, RMSprop, Adagrad).
 * Scalars that depend only on the step (bias corrections, decayed lr) are computed once in
 * double and rounded to the element type, exactly as the NumPy reference does, so both
 * backends perform the same IEEE operations in the same order.
 *
 * Parallelism: one OpenMP region per call; every segment is split over the threads with a
 * static schedule, and the loop body is element-wise, so results are bitwise identical for
 * any thread count. The only cross-thread combination is the OR of the "non-finite value
 * written to p" flag, which is order independent.
 *
 * Limitation: the static schedule makes every step wait for its slowest thread, so on an
 * oversubscribed machine (more runnable threads than cores) a parallel step can stall for a
 * scheduler time slice; dynamic scheduling would avoid that only by giving up the fixed
 * element-to-thread mapping. Use gdcore.set_num_threads(1) on a busy machine.
 * The build turns off the contraction of a*b+c into FMA (CMakeLists.txt), so even a
 * GDCORE_NATIVE build matches the reference bit for bit.
 */
#include <math.h>

#include "optim_kernels.h"
#include "threads.h"

/* Below this many elements a step runs on the calling thread only. Measured on the 2-core
 * x86-64 development machine (gcc 12, -O3) from Python, float32, with OMP_WAIT_POLICY=PASSIVE
 * as gdcore sets it (idle workers sleep, so waking the team costs tens of microseconds):
 * two threads against one were 0.95x at 262144 elements for Adam and SGD-momentum, 1.27x and
 * 1.15x at 393216, 1.53x and 1.22x at 524288. Below the threshold waking the team costs more
 * than it saves. Override with -DGD_OMP_MIN=... to re-measure. */
#ifndef GD_OMP_MIN
#define GD_OMP_MIN ((size_t)393216)
#endif

size_t gd_optim_parallel_threshold(void) { return GD_OMP_MIN; }

/* Non-finite test that vectorizes: x - x is 0 for finite x and NaN for Inf or NaN. */
#define GD_NONFINITE(x) (!((x) - (x) == 0))

/* Step-dependent scalars, computed once per call in double. */
typedef struct {
    double lr, wd, mom, omd, b1, omb1, b2, omb2, step_size, inv_bc2_sqrt, eps, decay;
    double alpha, omalpha, clr;
    int first, nesterov, amsgrad, decoupled, centered;
} gd_consts;

static gd_consts gd_prepare(const gd_hyper *h)
{
    gd_consts c = {0};
    const double t = (double)(h->step + 1);
    c.lr = h->lr;
    c.wd = h->weight_decay;
    c.mom = h->momentum;
    c.omd = 1.0 - h->dampening;
    c.first = h->step == 0;
    c.nesterov = h->nesterov;
    c.b1 = h->beta1;
    c.omb1 = 1.0 - h->beta1;
    c.b2 = h->beta2;
    c.omb2 = 1.0 - h->beta2;
    if (h->kind == GD_ADAM) {
        c.step_size = h->lr / (1.0 - pow(h->beta1, t));
        c.inv_bc2_sqrt = 1.0 / sqrt(1.0 - pow(h->beta2, t));
    }
    c.eps = h->eps;
    c.decay = 1.0 - h->lr * h->weight_decay;
    c.amsgrad = h->amsgrad;
    c.decoupled = h->decoupled;
    c.alpha = h->alpha;
    c.omalpha = 1.0 - h->alpha;
    c.centered = h->centered;
    c.clr = h->lr / (1.0 + (double)h->step * h->lr_decay);
    return c;
}

static size_t gd_total(size_t nseg, const gd_segment *seg)
{
    size_t total = 0;
    for (size_t k = 0; k < nseg; k++) {
        total += seg[k].n;
    }
    return total;
}

/* Typed pointers of segment k, for the loop bodies. */
#define GD_SEGMENT_POINTERS(T)                                                             \
        const ptrdiff_t n = (ptrdiff_t)seg[k].n;                                           \
        T *p = (T *)seg[k].p;                                                              \
        const T *g = (const T *)seg[k].g;                                                  \
        T *s0 = (T *)seg[k].s0;                                                            \
        T *s1 = (T *)seg[k].s1;                                                            \
        T *s2 = (T *)seg[k].s2;                                                            \
        (void)s0; (void)s1; (void)s2;

/* The loop over segments shared by every kernel: BODY updates element i of segment k, whose
 * typed pointers are p, g, s0, s1, s2; `bad` collects the non-finite flag. Small steps take
 * a serial loop that never enters the OpenMP runtime (saves ~0.2 us per call); it performs
 * the same operations per element, so both loops give the same bits. */
#define GD_SEGMENT_LOOP(T, BODY)                                                           \
    do {                                                                                   \
    int bad = 0;                                                                           \
    const size_t total = gd_total(nseg, seg);                                              \
    if (total < GD_OMP_MIN || gd_num_threads() == 1) {                                     \
        for (size_t k = 0; k < nseg; k++) {                                                \
            GD_SEGMENT_POINTERS(T)                                                         \
            _Pragma("omp simd reduction(|:bad)")                                           \
            for (ptrdiff_t i = 0; i < n; i++) {                                            \
                BODY                                                                       \
            }                                                                              \
        }                                                                                  \
        return bad;                                                                        \
    }                                                                                      \
    _Pragma("omp parallel num_threads(gd_num_threads()) if(total >= GD_OMP_MIN)")          \
    for (size_t k = 0; k < nseg; k++) {                                                    \
        GD_SEGMENT_POINTERS(T)                                                             \
        _Pragma("omp for simd schedule(static) nowait reduction(|:bad)")                   \
        for (ptrdiff_t i = 0; i < n; i++) {                                                \
            BODY                                                                           \
        }                                                                                  \
    }                                                                                      \
    return bad;                                                                            \
    } while (0)

/* Element updates. The flags (WD, MOM, ...) are literal 0 or 1 at every use, so each
 * combination of options compiles to its own branch-free loop that vectorizes. */

/* SGD: d = g (+ wd p); b = d on the first step, else mom b + (1 - dampening) d;
 * d = b, or d + mom b with Nesterov; p -= lr d. s0 = momentum_buffer. */
#define GD_SGD_BODY(T, WD, MOM, FIRST, NESTEROV)                                         \
    T d = g[i];                                                                          \
    if (WD) d = d + wd * p[i];                                                           \
    if (MOM) {                                                                           \
        const T b = (FIRST) ? d : mom * s0[i] + omd * d;                                 \
        s0[i] = b;                                                                       \
        d = (NESTEROV) ? d + mom * b : b;                                                \
    }                                                                                    \
    const T pn = p[i] - lr * d;                                                          \
    p[i] = pn;                                                                           \
    bad |= GD_NONFINITE(pn);

/* Cost: Adam, RMSprop and Adagrad take one square root and one IEEE division per element.
 * Adam multiplies by 1 / sqrt(1 - b2^t), computed once per step, instead of dividing by
 * sqrt(1 - b2^t) as torch does (a difference of at most an ulp in the denominator); the
 * reference does the same. That division was the cost of small steps, which run from the
 * L1 cache: a 1e3-element float32 step took 0.60 us instead of 0.82 us in the compiled
 * call. Large steps are memory-bound: on the 2-core development machine a copy of Adam's
 * loop with no square root or division ran no faster, from memory at 1e7 elements or from
 * the L3 cache at 5e5. */

/* Adam / AdamW: m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d d; (vmax = max(vmax, v));
 * p -= step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps), after p *= 1 - lr wd for AdamW.
 * s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq. */
#define GD_ADAM_BODY(T, SQRT, AMSGRAD, COUPLED, DECOUPLED)                               \
    T pi = p[i];                                                                         \
    T d = g[i];                                                                          \
    if (DECOUPLED) pi = pi * decay;                                                      \
    if (COUPLED) d = d + wd * pi;                                                        \
    const T m = b1 * s0[i] + omb1 * d;                                                   \
    T v = b2 * s1[i] + omb2 * d * d;                                                     \
    s0[i] = m;                                                                           \
    s1[i] = v;                                                                           \
    if (AMSGRAD) {                                                                       \
        /* A NaN in either propagates, as with numpy.maximum. */                       \
        const T vm_old = s2[i];                                                          \
        v = (vm_old >= v || vm_old != vm_old) ? vm_old : v;                              \
        s2[i] = v;                                                                       \
    }                                                                                    \
    const T denom = SQRT(v) * inv_bc2_sqrt + eps;                                        \
    const T pn = pi - step_size * m / denom;                                             \
    p[i] = pn;                                                                           \
    bad |= GD_NONFINITE(pn);

/* RMSprop: sq = alpha sq + (1 - alpha) d d; (ga = alpha ga + (1 - alpha) d, var = sq - ga^2);
 * avg = sqrt(var) + eps; p -= lr d / avg, or b = mom b + d / avg, p -= lr b.
 * s0 = square_avg, s1 = momentum_buffer, s2 = grad_avg. */
#define GD_RMSPROP_BODY(T, SQRT, WD, CENTERED, MOM)                                      \
    T d = g[i];                                                                          \
    if (WD) d = d + wd * p[i];                                                           \
    const T sq = alpha * s0[i] + omalpha * d * d;                                        \
    s0[i] = sq;                                                                          \
    T var = sq;                                                                          \
    if (CENTERED) {                                                                      \
        const T ga = alpha * s2[i] + omalpha * d;                                        \
        s2[i] = ga;                                                                      \
        var = sq - ga * ga;                                                              \
    }                                                                                    \
    const T avg = SQRT(var) + eps;                                                       \
    T pn;                                                                                \
    if (MOM) {                                                                           \
        const T b = mom * s1[i] + d / avg;                                               \
        s1[i] = b;                                                                       \
        pn = p[i] - lr * b;                                                              \
    } else {                                                                             \
        pn = p[i] - lr * d / avg;                                                        \
    }                                                                                    \
    p[i] = pn;                                                                           \
    bad |= GD_NONFINITE(pn);

/* Adagrad: sum += d d; p -= clr d / (sqrt(sum) + eps), clr = lr / (1 + (t - 1) lr_decay).
 * s0 = sum. */
#define GD_ADAGRAD_BODY(T, SQRT, WD)                                                     \
    T d = g[i];                                                                          \
    if (WD) d = d + wd * p[i];                                                           \
    const T sum = s0[i] + d * d;                                                         \
    s0[i] = sum;                                                                         \
    const T pn = p[i] - clr * d / (SQRT(sum) + eps);                                     \
    p[i] = pn;                                                                           \
    bad |= GD_NONFINITE(pn);

/* One flag chosen at run time out of two compiled loops. */
#define GD_BRANCH(flag, LOOP1, LOOP0)                                                    \
    if (flag) {                                                                          \
        LOOP1;                                                                           \
    } else {                                                                             \
        LOOP0;                                                                           \
    }

/* The kernels of one element type T with square root SQRT. */
#define GD_DEFINE_KERNELS(T, SFX, SQRT)                                                  \
                                                                                         \
static int sgd_##SFX(const gd_consts *c, size_t nseg, const gd_segment *seg)            \
{                                                                                        \
    const T lr = (T)c->lr, wd = (T)c->wd, mom = (T)c->mom, omd = (T)c->omd;              \
    const int has_wd = c->wd != 0.0;                                                     \
    if (c->mom == 0.0) {                                                                 \
        GD_BRANCH(has_wd, GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 1, 0, 0, 0)),                \
                  GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 0, 0, 0, 0)))                        \
    }                                                                                    \
    if (c->first && c->nesterov) {                                                       \
        GD_BRANCH(has_wd, GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 1, 1, 1, 1)),                \
                  GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 0, 1, 1, 1)))                        \
    }                                                                                    \
    if (c->first) {                                                                      \
        GD_BRANCH(has_wd, GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 1, 1, 1, 0)),                \
                  GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 0, 1, 1, 0)))                        \
    }                                                                                    \
    if (c->nesterov) {                                                                   \
        GD_BRANCH(has_wd, GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 1, 1, 0, 1)),                \
                  GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 0, 1, 0, 1)))                        \
    }                                                                                    \
    GD_BRANCH(has_wd, GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 1, 1, 0, 0)),                    \
              GD_SEGMENT_LOOP(T, GD_SGD_BODY(T, 0, 1, 0, 0)))                            \
}                                                                                        \
                                                                                         \
static int adam_##SFX(const gd_consts *c, size_t nseg, const gd_segment *seg)           \
{                                                                                        \
    const T wd = (T)c->wd, decay = (T)c->decay, b1 = (T)c->b1, omb1 = (T)c->omb1;        \
    const T b2 = (T)c->b2, omb2 = (T)c->omb2, step_size = (T)c->step_size;               \
    const T inv_bc2_sqrt = (T)c->inv_bc2_sqrt, eps = (T)c->eps;                          \
    const int has_wd = c->wd != 0.0;                                                     \
    if (has_wd && c->decoupled) {                                                        \
        GD_BRANCH(c->amsgrad, GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 1, 0, 1)),        \
                  GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 0, 0, 1)))                    \
    }                                                                                    \
    if (has_wd) {                                                                        \
        GD_BRANCH(c->amsgrad, GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 1, 1, 0)),        \
                  GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 0, 1, 0)))                    \
    }                                                                                    \
    GD_BRANCH(c->amsgrad, GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 1, 0, 0)),            \
              GD_SEGMENT_LOOP(T, GD_ADAM_BODY(T, SQRT, 0, 0, 0)))                        \
}                                                                                        \
                                                                                         \
static int rmsprop_##SFX(const gd_consts *c, size_t nseg, const gd_segment *seg)        \
{                                                                                        \
    const T lr = (T)c->lr, wd = (T)c->wd, mom = (T)c->mom, eps = (T)c->eps;              \
    const T alpha = (T)c->alpha, omalpha = (T)c->omalpha;                                \
    const int has_wd = c->wd != 0.0, has_mom = c->mom != 0.0;                            \
    if (has_wd && c->centered) {                                                         \
        GD_BRANCH(has_mom, GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 1, 1, 1)),        \
                  GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 1, 1, 0)))                 \
    }                                                                                    \
    if (has_wd) {                                                                        \
        GD_BRANCH(has_mom, GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 1, 0, 1)),        \
                  GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 1, 0, 0)))                 \
    }                                                                                    \
    if (c->centered) {                                                                   \
        GD_BRANCH(has_mom, GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 0, 1, 1)),        \
                  GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 0, 1, 0)))                 \
    }                                                                                    \
    GD_BRANCH(has_mom, GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 0, 0, 1)),            \
              GD_SEGMENT_LOOP(T, GD_RMSPROP_BODY(T, SQRT, 0, 0, 0)))                     \
}                                                                                        \
                                                                                         \
static int adagrad_##SFX(const gd_consts *c, size_t nseg, const gd_segment *seg)        \
{                                                                                        \
    const T clr = (T)c->clr, wd = (T)c->wd, eps = (T)c->eps;                             \
    GD_BRANCH(c->wd != 0.0, GD_SEGMENT_LOOP(T, GD_ADAGRAD_BODY(T, SQRT, 1)),             \
              GD_SEGMENT_LOOP(T, GD_ADAGRAD_BODY(T, SQRT, 0)))                           \
}                                                                                        \
                                                                                         \
static int step_segments_##SFX(const gd_hyper *h, size_t nseg, const gd_segment *seg)    \
{                                                                                        \
    const gd_consts c = gd_prepare(h);                                                   \
    switch (h->kind) {                                                                   \
    case GD_SGD:                                                                         \
        return sgd_##SFX(&c, nseg, seg);                                                 \
    case GD_ADAM:                                                                        \
        return adam_##SFX(&c, nseg, seg);                                                \
    case GD_RMSPROP:                                                                     \
        return rmsprop_##SFX(&c, nseg, seg);                                             \
    case GD_ADAGRAD:                                                                     \
        return adagrad_##SFX(&c, nseg, seg);                                             \
    }                                                                                    \
    return 0;                                                                            \
}

GD_DEFINE_KERNELS(float, f32, sqrtf)
GD_DEFINE_KERNELS(double, f64, sqrt)

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
/* The same kernels compiled for AVX2 (8 floats per instruction instead of 4), chosen at run
 * time. Without FMA: a*b+c stays two roundings, so both variants give identical bits. */
#define GD_HAVE_AVX2_VARIANT 1
#pragma GCC push_options
#pragma GCC target("avx2")
GD_DEFINE_KERNELS(float, f32_avx2, sqrtf)
GD_DEFINE_KERNELS(double, f64_avx2, sqrt)
#pragma GCC pop_options
#else
#define GD_HAVE_AVX2_VARIANT 0
#endif

static int gd_baseline_only = 0;

void gd_optim_force_baseline(int on) { gd_baseline_only = on != 0; }

int gd_optim_uses_avx2(void)
{
#if GD_HAVE_AVX2_VARIANT
    static int cached = -1;
    if (gd_baseline_only) {
        return 0;
    }
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

int gd_step_segments_f32(const gd_hyper *h, size_t nseg, const gd_segment *seg)
{
#if GD_HAVE_AVX2_VARIANT
    if (gd_optim_uses_avx2()) {
        return step_segments_f32_avx2(h, nseg, seg);
    }
#endif
    return step_segments_f32(h, nseg, seg);
}

int gd_step_segments_f64(const gd_hyper *h, size_t nseg, const gd_segment *seg)
{
#if GD_HAVE_AVX2_VARIANT
    if (gd_optim_uses_avx2()) {
        return step_segments_f64_avx2(h, nseg, seg);
    }
#endif
    return step_segments_f64(h, nseg, seg);
}

int gd_step_f32(const gd_hyper *h, size_t n, float *p, const float *g, float *s0, float *s1,
                float *s2)
{
    const gd_segment seg = {n, p, g, s0, s1, s2};
    return gd_step_segments_f32(h, 1, &seg);
}

int gd_step_f64(const gd_hyper *h, size_t n, double *p, const double *g, double *s0,
                double *s1, double *s2)
{
    const gd_segment seg = {n, p, g, s0, s1, s2};
    return gd_step_segments_f64(h, 1, &seg);
}

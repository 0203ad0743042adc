/* Fused update kernels of gdcore's optimizers.
 *
 * One call updates n parameter elements in one pass over memory: it reads p, g and the state
 * buffers and writes p and the state. Element-wise work only, so the result is bitwise the
 * same whatever the thread count. Update rules follow the ones documented by torch.optim.
 */
#ifndef GDCORE_OPTIM_KERNELS_H
#define GDCORE_OPTIM_KERNELS_H

#include <stddef.h>

typedef enum { GD_SGD = 0, GD_ADAM = 1, GD_RMSPROP = 2, GD_ADAGRAD = 3 } gd_optim_kind;

/* Hyperparameters of one step. Fields that a kind does not use are ignored. */
typedef struct {
    gd_optim_kind kind;
    double lr;
    double weight_decay;
    double momentum;      /* SGD, RMSprop */
    double dampening;     /* SGD */
    int nesterov;         /* SGD */
    double beta1, beta2;  /* Adam */
    double eps;           /* Adam, RMSprop, Adagrad */
    int amsgrad;          /* Adam */
    int decoupled;        /* Adam: 1 for AdamW's decoupled weight decay */
    double alpha;         /* RMSprop */
    int centered;         /* RMSprop */
    double lr_decay;      /* Adagrad */
    long long step;       /* steps already taken; this call performs step + 1 */
} gd_hyper;

/* State buffers, n elements each, NULL where a kind or option does not use them:
 *   SGD      s0 = momentum_buffer
 *   Adam     s0 = exp_avg,     s1 = exp_avg_sq,       s2 = max_exp_avg_sq
 *   RMSprop  s0 = square_avg,  s1 = momentum_buffer,  s2 = grad_avg
 *   Adagrad  s0 = sum
 * The caller increments h->step after the call. Returns 0, or 1 when a non-finite value was
 * written to p.
 */
int gd_step_f32(const gd_hyper *h, size_t n, float *p, const float *g,
                float *s0, float *s1, float *s2);
int gd_step_f64(const gd_hyper *h, size_t n, double *p, const double *g,
                double *s0, double *s1, double *s2);

/* One contiguous piece of the parameters: n elements of p, g and the state buffers in use
 * (element type float for the _f32 kernel, double for _f64; unused state pointers NULL). */
typedef struct {
    size_t n;
    void *p;
    const void *g;
    void *s0, *s1, *s2;
} gd_segment;

/* The same update over nseg segments in one parallel region: each segment is split evenly
 * over the threads. Same return value as gd_step_f32/gd_step_f64. */
int gd_step_segments_f32(const gd_hyper *h, size_t nseg, const gd_segment *seg);
int gd_step_segments_f64(const gd_hyper *h, size_t nseg, const gd_segment *seg);

/* 1 when the kernels run their AVX2 variant (x86-64 CPUs that have it), else 0. */
int gd_optim_uses_avx2(void);

/* Test hook: on != 0 makes the kernels use the baseline (SSE2) variant only. */
void gd_optim_force_baseline(int on);

/* Element count from which the kernels start a parallel region (measured; see the .c). */
size_t gd_optim_parallel_threshold(void);

#endif

/* Forward and backward passes of gdcore's multilayer perceptron (MLP).
 *
 * All matrices are row-major. Layer l = 1..L maps a_{l-1} (n x fan_in) to
 *     z_l = a_{l-1} W_l + b_l,   a_l = f(z_l) for hidden layers,
 * with W_l (fan_in x fan_out) and b_l (fan_out) stored one after the other in ONE flat
 * parameter buffer [W_1, b_1, W_2, b_2, ...]; the gradient buffer has the same layout. The
 * output is softmax(z_L) (cross entropy) or z_L (mean squared error).
 *
 * Matrix products go through the BLAS gemm of scipy.linalg.cython_blas, whose function
 * pointers the Cython module passes once to gd_nn_set_gemm(). Bias, activation, softmax and
 * their derivatives are fused element-wise loops, parallel with OpenMP above a size threshold.
 * A call holds no Python object and may run without the GIL.
 */
#ifndef GDCORE_NN_KERNELS_H
#define GDCORE_NN_KERNELS_H

#include <stddef.h>

#include "optim_kernels.h"

enum { GD_RELU = 0, GD_TANH = 1, GD_SIGMOID = 2, GD_IDENTITY = 3 };
enum { GD_CROSS_ENTROPY = 0, GD_MSE = 1 };

/* Status codes of the kernels. */
enum { GD_NN_OK = 0, GD_NN_NONFINITE_LOSS = 1, GD_NN_NONFINITE_PARAMS = 2, GD_NN_NO_BLAS = -1 };

/* Signatures of scipy.linalg.cython_blas sgemm and dgemm (column-major Fortran BLAS). */
typedef void (*gd_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                            float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                            int *ldc);
typedef void (*gd_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                            double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                            int *ldc);

/* Register the gemm implementations; called once when the module is imported. */
void gd_nn_set_gemm(gd_sgemm_fn sgemm, gd_dgemm_fn dgemm);

/* Shape of a network. Widths must be >= 1 and every dimension below 2^31 (BLAS ints). */
typedef struct {
    int n_layers;      /* L, number of weight layers (>= 1) */
    const int *sizes;  /* L + 1 widths: inputs, hidden layers, outputs */
    int activation;    /* GD_RELU, GD_TANH, GD_SIGMOID or GD_IDENTITY (hidden layers) */
    int loss;          /* GD_CROSS_ENTROPY or GD_MSE */
} gd_mlp;

/* Bytes of workspace needed for batches of up to n rows of the given element size (4 or 8),
 * including the gathered input rows of gd_mlp_epoch. The workspace must be 8-byte aligned. */
size_t gd_mlp_work_bytes(const gd_mlp *net, size_t n, size_t real_size);

/* out (n x k) = network output for x (n x sizes[0]). */
int gd_mlp_forward_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                       void *work, float *out);
int gd_mlp_forward_f64(const gd_mlp *net, size_t n, const double *params, const double *x,
                       void *work, double *out);

/* *loss = mean loss of x (n x sizes[0]); grads (n_params) = its gradient unless grads is NULL.
 * Targets: labels (int64, cross entropy) or targets (n x k, mse); the unused one is NULL.
 * Row r of the batch uses target row rows[r] (rows may be NULL: row r). */
int gd_mlp_loss_grad_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                         const long long *labels, const float *targets, const long long *rows,
                         float *grads, void *work, double *loss);
int gd_mlp_loss_grad_f64(const gd_mlp *net, size_t n, const double *params, const double *x,
                         const long long *labels, const double *targets, const long long *rows,
                         double *grads, void *work, double *loss);

/* jac (n*k x n_params): row i*k + j is d out[i, j] / d params, by one backward pass per output
 * unit j over the batch. */
int gd_mlp_jacobian_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                        void *work, float *jac);
int gd_mlp_jacobian_f64(const gd_mlp *net, size_t n, const double *params, const double *x,
                        void *work, double *jac);

/* One epoch of minibatch training. Batch b holds the rows order[b*batch_size ...] of x
 * (n_rows x sizes[0]) and of labels or targets (the last batch may be shorter). For every
 * batch: gather, forward, backward, then one optimizer step gd_step(h with step = h->step + b)
 * on the flat params/grads/state buffers. batch_losses[b] receives the batch loss before its
 * update. Returns GD_NN_OK; GD_NN_NONFINITE_LOSS when a batch loss is not finite (its update is
 * not applied); GD_NN_NONFINITE_PARAMS when an update wrote non-finite parameters (that update
 * counts as done). *n_done = number of updates applied. The workspace must hold batch_size
 * rows. */
int gd_mlp_epoch_f32(const gd_mlp *net, const float *x, const long long *labels,
                     const float *targets, const long long *order, size_t n_order,
                     size_t batch_size, float *params, float *grads, const gd_hyper *h,
                     float *s0, float *s1, float *s2, void *work, double *batch_losses,
                     size_t *n_done);
int gd_mlp_epoch_f64(const gd_mlp *net, const double *x, const long long *labels,
                     const double *targets, const long long *order, size_t n_order,
                     size_t batch_size, double *params, double *grads, const gd_hyper *h,
                     double *s0, double *s1, double *s2, void *work, double *batch_losses,
                     size_t *n_done);

/* Element count from which the element-wise loops run in parallel. */
size_t gd_nn_parallel_threshold(void);
void gd_nn_set_parallel_threshold(size_t n);

#endif

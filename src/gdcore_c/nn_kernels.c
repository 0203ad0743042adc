/* Forward pass, loss, gradient, Jacobian and whole-epoch training of gdcore's MLP.
 *
 * See nn_kernels.h for the layouts. Reads the flat parameter buffer, the inputs and the
 * targets; writes the outputs, the flat gradient buffer, the Jacobian, and a caller-owned
 * workspace. gd_mlp_epoch also updates the parameters and the optimizer state in place.
 *
 * The file is written once for a generic element type `real` and compiled twice: the first
 * pass (GD_NN_REAL undefined) holds the type-independent code and then includes this file
 * again with real = float and real = double.
 *
 * Workspace of a batch of n rows, in this order:
 *   rowloss  n doubles      per-row loss, summed serially so the sum is thread-independent
 *   ones     n reals        a vector of ones: bias gradients as a gemm, ones^T delta
 *   act_l    n x sizes[l]   for l = 1..L: hidden activations a_l, then the logits z_L
 *   delta    2 x n x wmax   ping-pong buffers of d loss / d z_l, wmax = max(sizes[1..L])
 *   xbatch   n x sizes[0]   input rows gathered by gd_mlp_epoch
 */
#ifndef GD_NN_REAL

#include "nn_kernels.h"

#include <math.h>
#include <string.h>

#include "threads.h"

static gd_sgemm_fn gd_sgemm = NULL;
static gd_dgemm_fn gd_dgemm = NULL;

/* Element count from which a fused element-wise loop runs in parallel.
 * Limitation: the loops of typical batches run on one thread. With libgomp's default wait
 * policy its workers keep spinning after a region and starve OpenBLAS's gemm threads: on a
 * 2-core machine one 784-256-128-10 float32 pass of 128 rows took 12-16 ms with parallel
 * loops against 0.73 ms serial. With OMP_WAIT_POLICY=PASSIVE both took 0.74 ms, since gemm
 * dominates; 2^20 elements keeps the regions to sizes where the loop itself is costly. */
static size_t gd_nn_threshold = (size_t)1 << 20;

void gd_nn_set_gemm(gd_sgemm_fn sgemm, gd_dgemm_fn dgemm)
{
    gd_sgemm = sgemm;
    gd_dgemm = dgemm;
}

size_t gd_nn_parallel_threshold(void) { return gd_nn_threshold; }

void gd_nn_set_parallel_threshold(size_t n) { gd_nn_threshold = n; }

/* Widest layer after the input: the width of the largest delta matrix. */
static size_t gd_nn_max_width(const gd_mlp *net)
{
    size_t wmax = 1;
    for (int l = 1; l <= net->n_layers; l++) {
        if ((size_t)net->sizes[l] > wmax) {
            wmax = (size_t)net->sizes[l];
        }
    }
    return wmax;
}

/* Sum of the widths of layers 1..L: columns of the activation storage. */
static size_t gd_nn_act_width(const gd_mlp *net)
{
    size_t total = 0;
    for (int l = 1; l <= net->n_layers; l++) {
        total += (size_t)net->sizes[l];
    }
    return total;
}

size_t gd_mlp_work_bytes(const gd_mlp *net, size_t n, size_t real_size)
{
    size_t reals = n * (1 + gd_nn_act_width(net) + 2 * gd_nn_max_width(net)
                        + (size_t)net->sizes[0]);
    return n * sizeof(double) + reals * real_size;
}

/* Offset of W_l (l = 1..L) in the flat parameter buffer; b_l follows W_l. */
static size_t gd_nn_weight_offset(const gd_mlp *net, int l)
{
    size_t offset = 0;
    for (int m = 1; m < l; m++) {
        offset += (size_t)net->sizes[m - 1] * net->sizes[m] + net->sizes[m];
    }
    return offset;
}

/* Total number of parameters. */
static size_t gd_nn_n_params(const gd_mlp *net)
{
    return gd_nn_weight_offset(net, net->n_layers + 1);
}

#define GD_NN_REAL float
#define GD_NN_SFX(name) name##_f32
#define GD_NN_GEMM gd_sgemm
#define GD_NN_EXP expf
#define GD_NN_TANH tanhf
#define GD_NN_STEP gd_step_f32
#include "nn_kernels.c"
#undef GD_NN_REAL
#undef GD_NN_SFX
#undef GD_NN_GEMM
#undef GD_NN_EXP
#undef GD_NN_TANH
#undef GD_NN_STEP

#define GD_NN_REAL double
#define GD_NN_SFX(name) name##_f64
#define GD_NN_GEMM gd_dgemm
#define GD_NN_EXP exp
#define GD_NN_TANH tanh
#define GD_NN_STEP gd_step_f64
#include "nn_kernels.c"

#else /* GD_NN_REAL: the type-generic part */

#define real GD_NN_REAL

/* Pointers into the workspace of a batch of n rows. */
typedef struct {
    double *rowloss;
    real *ones;
    real *act;       /* act_1 .. act_L, consecutive */
    real *delta[2];
    real *xbatch;
} GD_NN_SFX(gd_nn_work);

static GD_NN_SFX(gd_nn_work) GD_NN_SFX(carve)(const gd_mlp *net, size_t n, void *work)
{
    GD_NN_SFX(gd_nn_work) w;
    size_t wmax = gd_nn_max_width(net);
    w.rowloss = (double *)work;
    w.ones = (real *)(w.rowloss + n);
    w.act = w.ones + n;
    w.delta[0] = w.act + n * gd_nn_act_width(net);
    w.delta[1] = w.delta[0] + n * wmax;
    w.xbatch = w.delta[1] + n * wmax;
    return w;
}

/* a_l (n x sizes[l]) inside the activation storage, l = 1..L. */
static real *GD_NN_SFX(act_ptr)(const gd_mlp *net, size_t n, real *act, int l)
{
    size_t cols = 0;
    for (int m = 1; m < l; m++) {
        cols += (size_t)net->sizes[m];
    }
    return act + n * cols;
}

/* Row-major c (m x n) = alpha op(a) op(b) + beta c with op(a) m x k and op(b) k x n.
 * A row-major matrix is its transpose in column-major order, so this is the column-major
 * product c^T = op(b)^T op(a)^T: same transpose flags, operands swapped. */
static void GD_NN_SFX(mm)(char ta, char tb, int m, int n, int k, real alpha, const real *a,
                          int lda, const real *b, int ldb, real beta, real *c, int ldc)
{
    GD_NN_GEMM(&tb, &ta, &n, &m, &k, &alpha, (real *)b, &ldb, (real *)a, &lda, &beta, c, &ldc);
}

/* Numerically stable logistic function: exp() only of a non-positive argument. */
static inline real GD_NN_SFX(sigmoid)(real z)
{
    if (z >= 0) {
        return 1 / (1 + GD_NN_EXP(-z));
    }
    real e = GD_NN_EXP(z);
    return e / (1 + e);
}

/* z (n x m) <- f(z + b), b broadcast over the rows. NaN propagates through every f. */
static void GD_NN_SFX(bias_act)(size_t n, size_t m, const real *b, real *z, int act)
{
    size_t thr = gd_nn_threshold;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * m >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        real *row = z + i * m;
        for (size_t j = 0; j < m; j++) {
            real v = row[j] + b[j];
            if (act == GD_RELU) {
                v = v < 0 ? 0 : v;
            } else if (act == GD_TANH) {
                v = GD_NN_TANH(v);
            } else if (act == GD_SIGMOID) {
                v = GD_NN_SFX(sigmoid)(v);
            }
            row[j] = v;
        }
    }
}

/* d (len) <- d * f'(z), with f'(z) written in terms of a = f(z). */
static void GD_NN_SFX(slope_mul)(size_t len, const real *a, real *d, int act)
{
    size_t thr = gd_nn_threshold;
    if (act == GD_IDENTITY) {
        return;
    }
#pragma omp parallel for num_threads(gd_num_threads()) if(len >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)len; i++) {
        if (act == GD_RELU) {
            d[i] = a[i] > 0 ? d[i] : 0;
        } else if (act == GD_TANH) {
            d[i] *= 1 - a[i] * a[i];
        } else {
            d[i] *= a[i] * (1 - a[i]);
        }
    }
}

/* Row maximum and log(sum(exp(z - max))) of a row of k logits. */
static void GD_NN_SFX(row_lse)(size_t k, const real *z, real *zmax, real *log_sum)
{
    real mx = z[0];
    double s = 0.0;
    for (size_t j = 1; j < k; j++) {
        /* written so that a NaN logit becomes the maximum and propagates */
        mx = (z[j] > mx || z[j] != z[j]) ? z[j] : mx;
    }
    for (size_t j = 0; j < k; j++) {
        s += (double)GD_NN_EXP(z[j] - mx);
    }
    *zmax = mx;
    *log_sum = (real)log(s);
}

/* out (n x k) <- softmax of the rows of z; out may equal z. */
static void GD_NN_SFX(softmax)(size_t n, size_t k, const real *z, real *out)
{
    size_t thr = gd_nn_threshold;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * k >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        real mx, log_sum;
        GD_NN_SFX(row_lse)(k, z + i * k, &mx, &log_sum);
        for (size_t j = 0; j < k; j++) {
            out[i * k + j] = GD_NN_EXP((z[i * k + j] - mx) - log_sum);
        }
    }
}

/* Cross entropy of softmax(z) (n x k) with labels: rowloss[i] = logsumexp(z_i) - z_i[y_i];
 * unless dz is NULL, dz = (softmax(z) - onehot(y)) / n. */
static void GD_NN_SFX(ce_delta)(size_t n, size_t k, const real *z, const long long *labels,
                                const long long *rows, double *rowloss, real *dz)
{
    size_t thr = gd_nn_threshold;
    real scale = (real)n;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * k >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        const real *zi = z + i * k;
        long long y = labels[rows ? rows[i] : i];
        real mx, log_sum;
        GD_NN_SFX(row_lse)(k, zi, &mx, &log_sum);
        rowloss[i] = -(double)((zi[y] - mx) - log_sum);
        if (dz) {
            for (size_t j = 0; j < k; j++) {
                real p = GD_NN_EXP((zi[j] - mx) - log_sum);
                dz[i * k + j] = ((long long)j == y ? p - 1 : p) / scale;
            }
        }
    }
}

/* Squared error of z (n x k) against targets: rowloss[i] = sum_j (z_ij - t_ij)^2;
 * unless dz is NULL, dz = 2 (z - t) / (n k). */
static void GD_NN_SFX(mse_delta)(size_t n, size_t k, const real *z, const real *targets,
                                 const long long *rows, double *rowloss, real *dz)
{
    size_t thr = gd_nn_threshold;
    real scale = (real)(n * k);
#pragma omp parallel for num_threads(gd_num_threads()) if(n * k >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        const real *t = targets + (rows ? rows[i] : i) * k;
        double s = 0.0;
        for (size_t j = 0; j < k; j++) {
            real r = z[i * k + j] - t[j];
            s += (double)r * (double)r;
            if (dz) {
                dz[i * k + j] = 2 * r / scale;
            }
        }
        rowloss[i] = s;
    }
}

/* Forward pass of the hidden layers and the last linear layer: act_l for l = 1..L, with
 * act_L = z_L (logits, no activation). */
static void GD_NN_SFX(forward_logits)(const gd_mlp *net, size_t n, const real *params,
                                      const real *x, real *act)
{
    const real *a = x;
    size_t offset = 0;
    for (int l = 1; l <= net->n_layers; l++) {
        int fi = net->sizes[l - 1], fo = net->sizes[l];
        int act_kind = l < net->n_layers ? net->activation : GD_IDENTITY;
        const real *W = params + offset, *b = W + (size_t)fi * fo;
        real *z = GD_NN_SFX(act_ptr)(net, n, act, l);
        GD_NN_SFX(mm)('N', 'N', (int)n, fo, fi, 1, a, fi, W, fo, 0, z, fo);
        GD_NN_SFX(bias_act)(n, (size_t)fo, b, z, act_kind);
        a = z;
        offset += (size_t)fi * fo + fo;
    }
}

int GD_NN_SFX(gd_mlp_forward)(const gd_mlp *net, size_t n, const real *params, const real *x,
                              void *work, real *out)
{
    if (GD_NN_GEMM == NULL) {
        return GD_NN_NO_BLAS;
    }
    GD_NN_SFX(gd_nn_work) w = GD_NN_SFX(carve)(net, n, work);
    size_t k = (size_t)net->sizes[net->n_layers];
    real *z = GD_NN_SFX(act_ptr)(net, n, w.act, net->n_layers);

    GD_NN_SFX(forward_logits)(net, n, params, x, w.act);
    if (net->loss == GD_CROSS_ENTROPY) {
        GD_NN_SFX(softmax)(n, k, z, out);
    } else {
        memcpy(out, z, n * k * sizeof(real));
    }
    return GD_NN_OK;
}

/* Backward pass from the output delta w.delta[0] (n x k): the gradient of every layer. */
static void GD_NN_SFX(backward)(const gd_mlp *net, size_t n, const real *params,
                                const real *x, GD_NN_SFX(gd_nn_work) *w, real *grads)
{
    int cur = 0;
    for (int l = net->n_layers; l >= 1; l--) {
        int fi = net->sizes[l - 1], fo = net->sizes[l], rows = (int)n;
        size_t offset = gd_nn_weight_offset(net, l);
        const real *W = params + offset;
        real *dW = grads + offset, *db = dW + (size_t)fi * fo, *d = w->delta[cur];
        const real *a = l > 1 ? GD_NN_SFX(act_ptr)(net, n, w->act, l - 1) : x;

        /* dW = a^T d and db = ones^T d (column sums) */
        GD_NN_SFX(mm)('T', 'N', fi, fo, rows, 1, a, fi, d, fo, 0, dW, fo);
        GD_NN_SFX(mm)('N', 'N', 1, fo, rows, 1, w->ones, rows, d, fo, 0, db, fo);

        /* d_{l-1} = (d W^T) * f'(a_{l-1}) */
        if (l > 1) {
            real *dprev = w->delta[1 - cur];
            GD_NN_SFX(mm)('N', 'T', rows, fi, fo, 1, d, fo, W, fo, 0, dprev, fi);
            GD_NN_SFX(slope_mul)(n * (size_t)fi, a, dprev, net->activation);
            cur = 1 - cur;
        }
    }
}

/* Loss and gradient of a batch of n rows in a carved workspace (see gd_mlp_loss_grad). */
static void GD_NN_SFX(loss_grad)(const gd_mlp *net, size_t n, const real *params,
                                 const real *x, const long long *labels, const real *targets,
                                 const long long *rows, real *grads, GD_NN_SFX(gd_nn_work) *w,
                                 double *loss)
{
    size_t k = (size_t)net->sizes[net->n_layers];
    real *z = GD_NN_SFX(act_ptr)(net, n, w->act, net->n_layers);
    real *dz = grads ? w->delta[0] : NULL;
    double total = 0.0;

    /* forward pass, per-row losses and the output delta */
    GD_NN_SFX(forward_logits)(net, n, params, x, w->act);
    if (net->loss == GD_CROSS_ENTROPY) {
        GD_NN_SFX(ce_delta)(n, k, z, labels, rows, w->rowloss, dz);
    } else {
        GD_NN_SFX(mse_delta)(n, k, z, targets, rows, w->rowloss, dz);
    }
    for (size_t i = 0; i < n; i++) {
        total += w->rowloss[i];
    }
    *loss = total / (double)(net->loss == GD_CROSS_ENTROPY ? n : n * k);

    /* backward pass */
    if (grads) {
        for (size_t i = 0; i < n; i++) {
            w->ones[i] = 1;
        }
        GD_NN_SFX(backward)(net, n, params, x, w, grads);
    }
}

int GD_NN_SFX(gd_mlp_loss_grad)(const gd_mlp *net, size_t n, const real *params,
                                const real *x, const long long *labels, const real *targets,
                                const long long *rows, real *grads, void *work, double *loss)
{
    if (GD_NN_GEMM == NULL) {
        return GD_NN_NO_BLAS;
    }
    GD_NN_SFX(gd_nn_work) w = GD_NN_SFX(carve)(net, n, work);
    GD_NN_SFX(loss_grad)(net, n, params, x, labels, targets, rows, grads, &w, loss);
    return GD_NN_OK;
}

/* Output delta of unit j for the Jacobian: d out[:, j] / d z_L (n x k). */
static void GD_NN_SFX(unit_delta)(const gd_mlp *net, size_t n, size_t k, size_t j,
                                  const real *out, real *d)
{
    size_t thr = gd_nn_threshold;
    int softmax = net->loss == GD_CROSS_ENTROPY;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * k >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        for (size_t c = 0; c < k; c++) {
            real unit = c == j ? 1 : 0;
            /* softmax: d p_j / d z_c = p_j (delta_jc - p_c) */
            d[i * k + c] = softmax ? out[i * k + j] * (unit - out[i * k + c]) : unit;
        }
    }
}

/* Jacobian rows of unit j, layer l: row i gets the outer product a_i d_i and d_i. */
static void GD_NN_SFX(jac_fill)(size_t n, size_t k, size_t j, size_t n_params,
                                size_t offset, size_t fi, size_t fo, const real *a,
                                const real *d, real *jac)
{
    size_t thr = gd_nn_threshold;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * fi * fo >= thr) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        real *row = jac + ((size_t)i * k + j) * n_params + offset;
        const real *ai = a + i * fi, *di = d + i * fo;
        for (size_t p = 0; p < fi; p++) {
            for (size_t q = 0; q < fo; q++) {
                row[p * fo + q] = ai[p] * di[q];
            }
        }
        memcpy(row + fi * fo, di, fo * sizeof(real));
    }
}

int GD_NN_SFX(gd_mlp_jacobian)(const gd_mlp *net, size_t n, const real *params,
                               const real *x, void *work, real *jac)
{
    if (GD_NN_GEMM == NULL) {
        return GD_NN_NO_BLAS;
    }
    GD_NN_SFX(gd_nn_work) w = GD_NN_SFX(carve)(net, n, work);
    size_t k = (size_t)net->sizes[net->n_layers], n_params = gd_nn_n_params(net);
    real *out = GD_NN_SFX(act_ptr)(net, n, w.act, net->n_layers);

    GD_NN_SFX(forward_logits)(net, n, params, x, w.act);
    if (net->loss == GD_CROSS_ENTROPY) {
        GD_NN_SFX(softmax)(n, k, out, out);
    }
    for (size_t j = 0; j < k; j++) {
        int cur = 0;
        GD_NN_SFX(unit_delta)(net, n, k, j, out, w.delta[0]);
        for (int l = net->n_layers; l >= 1; l--) {
            int fi = net->sizes[l - 1], fo = net->sizes[l];
            size_t offset = gd_nn_weight_offset(net, l);
            const real *a = l > 1 ? GD_NN_SFX(act_ptr)(net, n, w.act, l - 1) : x;
            real *d = w.delta[cur];
            GD_NN_SFX(jac_fill)(n, k, j, n_params, offset, (size_t)fi, (size_t)fo, a, d, jac);
            if (l > 1) {
                real *dprev = w.delta[1 - cur];
                GD_NN_SFX(mm)('N', 'T', (int)n, fi, fo, 1, d, fo, params + offset, fo, 0,
                              dprev, fi);
                GD_NN_SFX(slope_mul)(n * (size_t)fi, a, dprev, net->activation);
                cur = 1 - cur;
            }
        }
    }
    return GD_NN_OK;
}

/* x rows order[0..n) gathered into xb (n x n_in). */
static void GD_NN_SFX(gather)(size_t n, size_t n_in, const real *x, const long long *order,
                              real *xb)
{
    size_t thr = gd_nn_threshold;
#pragma omp parallel for num_threads(gd_num_threads()) if(n * n_in >= thr) schedule(static)
    for (ptrdiff_t r = 0; r < (ptrdiff_t)n; r++) {
        memcpy(xb + r * n_in, x + (size_t)order[r] * n_in, n_in * sizeof(real));
    }
}

int GD_NN_SFX(gd_mlp_epoch)(const gd_mlp *net, const real *x, const long long *labels,
                            const real *targets, const long long *order, size_t n_order,
                            size_t batch_size, real *params, real *grads, const gd_hyper *h,
                            real *s0, real *s1, real *s2, void *work, double *batch_losses,
                            size_t *n_done)
{
    *n_done = 0;
    if (GD_NN_GEMM == NULL) {
        return GD_NN_NO_BLAS;
    }
    /* Carved for batch_size rows; a shorter last batch uses the front of each region. */
    GD_NN_SFX(gd_nn_work) w = GD_NN_SFX(carve)(net, batch_size, work);
    size_t n_in = (size_t)net->sizes[0], n_params = gd_nn_n_params(net);
    size_t n_batches = (n_order + batch_size - 1) / batch_size;
    gd_hyper step = *h;

    for (size_t b = 0; b < n_batches; b++) {
        size_t start = b * batch_size;
        size_t n = n_order - start < batch_size ? n_order - start : batch_size;
        const long long *rows = order + start;

        /* gather, forward, backward */
        GD_NN_SFX(gather)(n, n_in, x, rows, w.xbatch);
        GD_NN_SFX(loss_grad)(net, n, params, w.xbatch, labels, targets, rows, grads, &w,
                             &batch_losses[b]);
        if (!isfinite(batch_losses[b])) {
            return GD_NN_NONFINITE_LOSS;
        }

        /* fused optimizer update of the flat buffers */
        step.step = h->step + (long long)b;
        int bad = GD_NN_STEP(&step, n_params, params, grads, s0, s1, s2);
        *n_done = b + 1;
        if (bad) {
            return GD_NN_NONFINITE_PARAMS;
        }
    }
    return GD_NN_OK;
}

#undef real

#endif /* GD_NN_REAL */

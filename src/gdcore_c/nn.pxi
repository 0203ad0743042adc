# Wrappers of the nn kernels (nn_kernels.h): forward pass, loss and gradient, Jacobian.
# Arguments are checked by gdcore._mlp / gdcore.nn; these wrappers only release the GIL.

from libc.stdint cimport int64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

from cython cimport floating


cdef extern from "nn_kernels.h":
    ctypedef void (*gd_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                                 float *, int *, float *, float *, int *) noexcept nogil
    ctypedef void (*gd_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *,
                                 int *, double *, int *, double *, double *, int *) noexcept nogil

    ctypedef struct gd_mlp:
        int n_layers
        const int *sizes
        int activation
        int loss

    void gd_nn_set_gemm(gd_sgemm_fn sgemm, gd_dgemm_fn dgemm) noexcept nogil
    size_t gd_mlp_work_bytes(const gd_mlp *net, size_t n, size_t real_size) noexcept nogil
    size_t gd_nn_parallel_threshold() noexcept nogil
    void gd_nn_set_parallel_threshold(size_t n) noexcept nogil

    int gd_mlp_forward_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                           void *work, float *out) noexcept nogil
    int gd_mlp_forward_f64(const gd_mlp *net, size_t n, const double *params, const double *x,
                           void *work, double *out) noexcept nogil
    int gd_mlp_loss_grad_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                             const long long *labels, const float *targets,
                             const long long *rows, float *grads, void *work,
                             double *loss) noexcept nogil
    int gd_mlp_loss_grad_f64(const gd_mlp *net, size_t n, const double *params,
                             const double *x, const long long *labels, const double *targets,
                             const long long *rows, double *grads, void *work,
                             double *loss) noexcept nogil
    int gd_mlp_jacobian_f32(const gd_mlp *net, size_t n, const float *params, const float *x,
                            void *work, float *jac) noexcept nogil
    int gd_mlp_jacobian_f64(const gd_mlp *net, size_t n, const double *params,
                            const double *x, void *work, double *jac) noexcept nogil


gd_nn_set_gemm(<gd_sgemm_fn>sgemm, <gd_dgemm_fn>dgemm)


cdef gd_mlp _mlp_shape(const int[::1] sizes, int activation, int loss) noexcept:
    """The C description of a network; `sizes` must outlive its use."""
    cdef gd_mlp net
    net.n_layers = <int>sizes.shape[0] - 1
    net.sizes = &sizes[0]
    net.activation = activation
    net.loss = loss
    return net


cdef int _check_status(int status) except -1:
    """Raise for a kernel status that signals a setup error."""
    if status < 0:
        raise RuntimeError(f"nn kernel failed with status {status}: BLAS not registered")
    return 0


def _mlp_work_bytes(const int[::1] sizes, Py_ssize_t n, Py_ssize_t real_size):
    """Workspace bytes for batches of up to `n` rows."""
    cdef gd_mlp net = _mlp_shape(sizes, 0, 0)
    return gd_mlp_work_bytes(&net, <size_t>n, <size_t>real_size)


def _nn_parallel_threshold():
    """Element count from which the nn element-wise loops run in parallel."""
    return gd_nn_parallel_threshold()


def _set_nn_parallel_threshold(Py_ssize_t n):
    """Set the element count from which the nn element-wise loops run in parallel."""
    gd_nn_set_parallel_threshold(<size_t>n)


def _mlp_forward(const int[::1] sizes, int activation, int loss,
                 const floating[::1] params, const floating[:, ::1] x,
                 double[::1] work, floating[:, ::1] out):
    """out = network output for the rows of x."""
    cdef gd_mlp net = _mlp_shape(sizes, activation, loss)
    cdef size_t n = <size_t>x.shape[0]
    cdef int status
    with nogil:
        if floating is float:
            status = gd_mlp_forward_f32(&net, n, &params[0], &x[0, 0], &work[0], &out[0, 0])
        else:
            status = gd_mlp_forward_f64(&net, n, &params[0], &x[0, 0], &work[0], &out[0, 0])
    _check_status(status)


def _mlp_loss_grad(const int[::1] sizes, int activation, int loss,
                   const floating[::1] params, const floating[:, ::1] x,
                   const int64_t[::1] labels, const floating[:, ::1] targets,
                   floating[::1] grads, double[::1] work):
    """Mean loss of the batch; fills grads unless it is None. One of labels/targets is None."""
    cdef gd_mlp net = _mlp_shape(sizes, activation, loss)
    cdef size_t n = <size_t>x.shape[0]
    cdef const long long *lab = NULL
    cdef const floating *tgt = NULL
    cdef floating *g = NULL
    cdef double value = 0.0
    cdef int status
    if labels is not None:
        lab = <const long long *>&labels[0]
    if targets is not None:
        tgt = &targets[0, 0]
    if grads is not None:
        g = &grads[0]
    with nogil:
        if floating is float:
            status = gd_mlp_loss_grad_f32(&net, n, &params[0], &x[0, 0], lab, tgt, NULL, g,
                                          &work[0], &value)
        else:
            status = gd_mlp_loss_grad_f64(&net, n, &params[0], &x[0, 0], lab, tgt, NULL, g,
                                          &work[0], &value)
    _check_status(status)
    return value


def _mlp_jacobian(const int[::1] sizes, int activation, int loss,
                  const floating[::1] params, const floating[:, ::1] x,
                  double[::1] work, floating[:, ::1] jac):
    """jac = d output / d params, row i*k + j for output unit j of row i."""
    cdef gd_mlp net = _mlp_shape(sizes, activation, loss)
    cdef size_t n = <size_t>x.shape[0]
    cdef int status
    with nogil:
        if floating is float:
            status = gd_mlp_jacobian_f32(&net, n, &params[0], &x[0, 0], &work[0], &jac[0, 0])
        else:
            status = gd_mlp_jacobian_f64(&net, n, &params[0], &x[0, 0], &work[0], &jac[0, 0])
    _check_status(status)


# Whole-epoch training. gd_hyper and the update kernels it feeds are declared in optim.pxi,
# which _core.pyx includes before this file.
cdef extern from "nn_kernels.h":
    int gd_mlp_epoch_f32(const gd_mlp *net, const float *x, const long long *labels,
                         const float *targets, const long long *order, size_t n_order,
                         size_t batch_size, float *params, float *grads, const gd_hyper *h,
                         float *s0, float *s1, float *s2, void *work, double *batch_losses,
                         size_t *n_done) noexcept nogil
    int gd_mlp_epoch_f64(const gd_mlp *net, const double *x, const long long *labels,
                         const double *targets, const long long *order, size_t n_order,
                         size_t batch_size, double *params, double *grads, const gd_hyper *h,
                         double *s0, double *s1, double *s2, void *work, double *batch_losses,
                         size_t *n_done) noexcept nogil


cdef floating *_nn_data_or_null(floating[::1] buf) noexcept:
    """Pointer to the first element, NULL for None."""
    return NULL if buf is None else &buf[0]


def _mlp_epoch(const int[::1] sizes, int activation, int loss,
               const floating[:, ::1] x, const int64_t[::1] labels,
               const floating[:, ::1] targets, const int64_t[::1] order, Py_ssize_t batch_size,
               floating[::1] params, floating[::1] grads, dict hyper,
               floating[::1] s0, floating[::1] s1, floating[::1] s2,
               double[::1] work, double[::1] batch_losses):
    """Train one epoch; returns (updates applied, status). Arguments checked by the caller."""
    cdef gd_mlp net = _mlp_shape(sizes, activation, loss)
    cdef gd_hyper h = hyper
    cdef const long long *lab = NULL
    cdef const floating *tgt = NULL
    cdef floating *p0 = _nn_data_or_null(s0)
    cdef floating *p1 = _nn_data_or_null(s1)
    cdef floating *p2 = _nn_data_or_null(s2)
    cdef size_t n_order = <size_t>order.shape[0], n_done = 0
    cdef int status
    if labels is not None:
        lab = <const long long *>&labels[0]
    if targets is not None:
        tgt = &targets[0, 0]
    with nogil:
        if floating is float:
            status = gd_mlp_epoch_f32(&net, &x[0, 0], lab, tgt, <const long long *>&order[0],
                                      n_order, <size_t>batch_size, &params[0], &grads[0], &h,
                                      p0, p1, p2, &work[0], &batch_losses[0], &n_done)
        else:
            status = gd_mlp_epoch_f64(&net, &x[0, 0], lab, tgt, <const long long *>&order[0],
                                      n_order, <size_t>batch_size, &params[0], &grads[0], &h,
                                      p0, p1, p2, &work[0], &batch_losses[0], &n_done)
    _check_status(status)
    return n_done, status

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

# Wrappers of the optim kernels: one compiled call per optimizer step.

cimport numpy as cnp
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

cnp.import_array()


cdef extern from "optim_kernels.h":
    ctypedef enum gd_optim_kind:
        GD_SGD
        GD_ADAM
        GD_RMSPROP
        GD_ADAGRAD

    ctypedef struct gd_hyper:
        gd_optim_kind kind
        double lr
        double weight_decay
        double momentum
        double dampening
        int nesterov
        double beta1
        double beta2
        double eps
        int amsgrad
        int decoupled
        double alpha
        int centered
        double lr_decay
        long long step

    ctypedef struct gd_segment:
        size_t n
        void *p
        const void *g
        void *s0
        void *s1
        void *s2

    int gd_step_f32(const gd_hyper *h, size_t n, float *p, const float *g,
                    float *s0, float *s1, float *s2) noexcept nogil
    int gd_step_f64(const gd_hyper *h, size_t n, double *p, const double *g,
                    double *s0, double *s1, double *s2) noexcept nogil
    int gd_step_segments_f32(const gd_hyper *h, size_t nseg,
                             const gd_segment *seg) noexcept nogil
    int gd_step_segments_f64(const gd_hyper *h, size_t nseg,
                             const gd_segment *seg) noexcept nogil
    size_t gd_optim_parallel_threshold() noexcept nogil
    int gd_optim_uses_avx2() noexcept nogil
    void gd_optim_force_baseline(int on) noexcept nogil


_HYPER_FIELDS = (
    "kind", "lr", "weight_decay", "momentum", "dampening", "nesterov", "beta1", "beta2",
    "eps", "amsgrad", "decoupled", "alpha", "centered", "lr_decay", "step",
)


cdef gd_hyper _hyper_from_dict(dict d) except *:
    """Fill a gd_hyper from a dict with its field names (all fields required)."""
    cdef gd_hyper h
    missing = [name for name in _HYPER_FIELDS if name not in d]
    if missing:
        raise KeyError(f"hyperparameter dict lacks {missing}")
    h.kind = <gd_optim_kind><int>d["kind"]
    h.lr = d["lr"]
    h.weight_decay = d["weight_decay"]
    h.momentum = d["momentum"]
    h.dampening = d["dampening"]
    h.nesterov = d["nesterov"]
    h.beta1 = d["beta1"]
    h.beta2 = d["beta2"]
    h.eps = d["eps"]
    h.amsgrad = d["amsgrad"]
    h.decoupled = d["decoupled"]
    h.alpha = d["alpha"]
    h.centered = d["centered"]
    h.lr_decay = d["lr_decay"]
    h.step = d["step"]
    return h


cdef inline char *_data_or_null(object arr):
    """Data pointer of a state array, NULL for None."""
    if arr is None:
        return NULL
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef class _FusedStep:
    """Per-optimizer step engine: cached param layout, state pointers and hyperparameters.

    Built once by a `gdcore.optim` optimizer (which has already validated `params` and
    allocated the flat state). Each call checks the grads cheaply, gathers their pointers,
    merges arrays that are adjacent in memory into one segment, and runs one kernel call
    without the GIL. A return value of -1 means an input failed a check and nothing was
    written; the caller then rebuilds the precise error message.
    """

    cdef gd_hyper h
    cdef int typenum
    cdef size_t itemsize
    cdef Py_ssize_t nparams
    cdef tuple params
    cdef tuple flat_state
    cdef int *ndims
    cdef cnp.npy_intp *dims
    cdef Py_ssize_t *dim_start
    cdef gd_segment *template
    # Byte ranges of the params and the state, sorted and merged: no grad may overlap them.
    cdef uintptr_t *span_lo
    cdef uintptr_t *span_hi
    cdef Py_ssize_t nspans

    def __cinit__(self, tuple params, tuple flat_state, bint double_precision,
                  tuple span_lo, tuple span_hi):
        cdef Py_ssize_t i, j, ndim_total = 0, offset = 0
        cdef cnp.ndarray arr
        cdef char *s[3]
        self.params = params
        self.flat_state = flat_state
        self.nparams = len(params)
        self.typenum = cnp.NPY_FLOAT64 if double_precision else cnp.NPY_FLOAT32
        self.itemsize = 8 if double_precision else 4
        for i in range(self.nparams):
            ndim_total += cnp.PyArray_NDIM(<cnp.ndarray>params[i])
        n = self.nparams
        self.ndims = <int *>malloc(n * sizeof(int) + 1)
        self.dims = <cnp.npy_intp *>malloc(ndim_total * sizeof(cnp.npy_intp) + 1)
        self.dim_start = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t) + 1)
        self.template = <gd_segment *>malloc(n * sizeof(gd_segment) + 1)
        if (self.ndims == NULL or self.dims == NULL or self.dim_start == NULL
                or self.template == NULL):
            raise MemoryError()
        for j in range(3):
            s[j] = _data_or_null(flat_state[j])
        ndim_total = 0
        for i in range(self.nparams):
            arr = <cnp.ndarray>params[i]
            self.ndims[i] = cnp.PyArray_NDIM(arr)
            self.dim_start[i] = ndim_total
            for j in range(self.ndims[i]):
                self.dims[ndim_total + j] = cnp.PyArray_DIMS(arr)[j]
            ndim_total += self.ndims[i]
            self.template[i].n = <size_t>cnp.PyArray_SIZE(arr)
            self.template[i].p = cnp.PyArray_DATA(arr)
            self.template[i].g = NULL
            self.template[i].s0 = s[0] + offset if s[0] != NULL else NULL
            self.template[i].s1 = s[1] + offset if s[1] != NULL else NULL
            self.template[i].s2 = s[2] + offset if s[2] != NULL else NULL
            offset += <Py_ssize_t>(self.template[i].n * self.itemsize)
        self._copy_spans(span_lo, span_hi)

    cdef void _copy_spans(self, tuple span_lo, tuple span_hi) except *:
        """Keep the sorted, merged byte ranges [lo, hi) that no grad may overlap: those of
        the params and their state, as the optimizer's layout records them."""
        cdef Py_ssize_t i
        self.nspans = len(span_lo)
        self.span_lo = <uintptr_t *>malloc(self.nspans * sizeof(uintptr_t) + 1)
        self.span_hi = <uintptr_t *>malloc(self.nspans * sizeof(uintptr_t) + 1)
        if self.span_lo == NULL or self.span_hi == NULL:
            raise MemoryError()
        for i in range(self.nspans):
            self.span_lo[i] = span_lo[i]
            self.span_hi[i] = span_hi[i]

    cdef bint _overlaps_params(self, uintptr_t lo, uintptr_t hi) noexcept:
        """Whether the byte range [lo, hi) overlaps a param or the state (binary search)."""
        cdef Py_ssize_t a = 0, b = self.nspans, mid
        while a < b:  # first span whose end lies beyond lo
            mid = (a + b) // 2
            if self.span_hi[mid] <= lo:
                a = mid + 1
            else:
                b = mid
        return a < self.nspans and self.span_lo[a] < hi

    def __dealloc__(self):
        free(self.ndims)
        free(self.dims)
        free(self.dim_start)
        free(self.template)
        free(self.span_lo)
        free(self.span_hi)

    def set_hyper(self, dict hyper):
        """Replace the hyperparameters (a dict with the gd_hyper field names)."""
        self.h = _hyper_from_dict(hyper)

    def step(self, grads, long long step):
        """One update of all params; 0, 1 if a non-finite value was written, -1 if rejected."""
        cdef tuple gt
        cdef Py_ssize_t nseg
        cdef int bad = 0
        cdef size_t item = self.itemsize
        cdef gd_hyper h = self.h
        # Segments live on this call's stack (or heap), so concurrent calls cannot race.
        cdef gd_segment local[16]
        cdef gd_segment *merged = local
        if type(grads) is tuple:
            gt = <tuple>grads
        elif isinstance(grads, (list, tuple)):
            gt = tuple(grads)
        else:
            return -1
        if len(gt) != self.nparams:
            return -1
        if self.nparams > 16:
            merged = <gd_segment *>malloc(self.nparams * sizeof(gd_segment))
            if merged == NULL:
                raise MemoryError()
        try:
            nseg = self._gather(gt, merged)
            if nseg < 0:
                return -1
            h.step = step
            with nogil:
                if item == 4:
                    bad = gd_step_segments_f32(&h, <size_t>nseg, merged)
                else:
                    bad = gd_step_segments_f64(&h, <size_t>nseg, merged)
        finally:
            if merged != local:
                free(merged)
        return bad

    cdef Py_ssize_t _gather(self, tuple gt, gd_segment *merged) except -2:
        """Check the grads and fill `merged`; the segment count, or -1 if rejected."""
        cdef object obj
        cdef cnp.ndarray arr
        cdef Py_ssize_t i, j, nseg = 0
        cdef cnp.npy_intp *dims
        cdef gd_segment *last
        cdef void *g
        cdef size_t item = self.itemsize
        for i in range(self.nparams):
            obj = gt[i]
            if not cnp.PyArray_Check(obj):
                return -1
            arr = <cnp.ndarray>obj
            if (cnp.PyArray_TYPE(arr) != self.typenum or cnp.PyArray_ISBYTESWAPPED(arr)
                    or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr)
                    or cnp.PyArray_NDIM(arr) != self.ndims[i]):
                return -1
            dims = cnp.PyArray_DIMS(arr)
            for j in range(self.ndims[i]):
                if dims[j] != self.dims[self.dim_start[i] + j]:
                    return -1
            arr = <cnp.ndarray>self.params[i]
            if (not cnp.PyArray_ISWRITEABLE(arr)
                    or cnp.PyArray_DATA(arr) != self.template[i].p):
                return -1
            if self.template[i].n == 0:
                continue
            g = cnp.PyArray_DATA(<cnp.ndarray>obj)
            if self._overlaps_params(<uintptr_t>g,
                                     <uintptr_t>g + self.template[i].n * item):
                return -1
            # Merge with the previous segment when every array continues it in memory.
            if nseg > 0:
                last = &merged[nseg - 1]
                if (<char *>last.p + last.n * item == <char *>self.template[i].p
                        and <const char *>last.g + last.n * item == <const char *>g
                        and (last.s0 == NULL
                             or <char *>last.s0 + last.n * item == <char *>self.template[i].s0)
                        and (last.s1 == NULL
                             or <char *>last.s1 + last.n * item == <char *>self.template[i].s1)
                        and (last.s2 == NULL
                             or <char *>last.s2 + last.n * item == <char *>self.template[i].s2)):
                    last.n += self.template[i].n
                    continue
            merged[nseg] = self.template[i]
            merged[nseg].g = g
            nseg += 1
        return nseg

    def n_segments(self, grads):
        """Segments the kernel would see for these grads (1 on the one-buffer fast path)."""
        cdef Py_ssize_t i, nseg = 0
        cdef uintptr_t end_p = 0, end_g = 0, p, g
        cdef cnp.ndarray arr
        for i in range(self.nparams):
            arr = grads[i]
            if self.template[i].n == 0:
                continue
            p = <uintptr_t>self.template[i].p
            g = <uintptr_t>cnp.PyArray_DATA(arr)
            if nseg == 0 or p != end_p or g != end_g:
                nseg += 1
            end_p = p + self.template[i].n * self.itemsize
            end_g = g + self.template[i].n * self.itemsize
        return nseg


def _optim_uses_avx2():
    """Whether the optimizer kernels run their AVX2 variant."""
    return bool(gd_optim_uses_avx2())


def _optim_force_baseline(bint on):
    """Test hook: restrict the optimizer kernels to their baseline variant."""
    gd_optim_force_baseline(on)


def _optim_parallel_threshold():
    """Element count from which an optimizer step runs in parallel."""
    return gd_optim_parallel_threshold()


cdef int _check_flat(object arr, int typenum, cnp.npy_intp n) except -1:
    """Raise unless `arr` is None or a C-contiguous 1-D array of `typenum` and size n."""
    if arr is None:
        return 0
    if not (cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == typenum
            and not cnp.PyArray_ISBYTESWAPPED(<cnp.ndarray>arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>arr)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>arr)
            and cnp.PyArray_SIZE(<cnp.ndarray>arr) == n):
        raise ValueError("flat kernel arrays must be writeable, C-contiguous, of one float "
                         f"dtype and {n} elements; got {arr!r:.60}")
    return 0


def _check_required_state(dict hyper, bint has0, bint has1, bint has2):
    """Raise unless the state buffers that the kind and options use are present."""
    kind = hyper["kind"]
    if kind not in (GD_SGD, GD_ADAM, GD_RMSPROP, GD_ADAGRAD):
        raise ValueError(f"`kind` must be 0, 1, 2 or 3, got {kind!r}")
    need = ((kind == GD_SGD and hyper["momentum"] != 0) or kind != GD_SGD,
            kind == GD_ADAM or (kind == GD_RMSPROP and hyper["momentum"] != 0),
            (kind == GD_ADAM and hyper["amsgrad"])
            or (kind == GD_RMSPROP and hyper["centered"]))
    for j, present in enumerate((has0, has1, has2)):
        if need[j] and not present:
            raise ValueError(f"state buffer s{j} is required by {hyper!r:.80}")


def _optim_step_flat(dict hyper, cnp.ndarray p, cnp.ndarray g, s0, s1, s2):
    """Test entry point: gd_step_f32/gd_step_f64 on flat arrays; returns the kernel's flag."""
    cdef gd_hyper h = _hyper_from_dict(hyper)
    cdef int typenum = cnp.PyArray_TYPE(p)
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(p)
    cdef int bad
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"`p` must be float32 or float64, got {p.dtype}")
    for arr in (p, s0, s1, s2):
        _check_flat(arr, typenum, n)
    _check_required_state(hyper, s0 is not None, s1 is not None, s2 is not None)
    cdef void *pp = cnp.PyArray_DATA(p)
    cdef const void *gp = cnp.PyArray_DATA(g)
    cdef void *b0 = _data_or_null(s0)
    cdef void *b1 = _data_or_null(s1)
    cdef void *b2 = _data_or_null(s2)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            bad = gd_step_f32(&h, <size_t>n, <float *>pp, <const float *>gp,
                              <float *>b0, <float *>b1, <float *>b2)
        else:
            bad = gd_step_f64(&h, <size_t>n, <double *>pp, <const double *>gp,
                              <double *>b0, <double *>b1, <double *>b2)
    return bad


cdef void *_checked_data(object arr, int typenum, cnp.npy_intp n, bint write,
                         str name, Py_ssize_t i) except? NULL:
    """Data pointer of arr after checking dtype, size, contiguity (and writeability)."""
    if not (cnp.PyArray_Check(arr) and cnp.PyArray_TYPE(<cnp.ndarray>arr) == typenum
            and not cnp.PyArray_ISBYTESWAPPED(<cnp.ndarray>arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>arr)
            and cnp.PyArray_SIZE(<cnp.ndarray>arr) == n
            and (not write or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>arr))):
        raise ValueError(f"`{name}[{i}]` must be a C-contiguous{' writeable' if write else ''}"
                         f" array with the dtype and size of `params[{i}]`")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


def _fused_step_lists(dict hyper, list params, list grads, list s0, list s1, list s2):
    """One kernel call over lists of arrays (the compiled functional steps).

    Each list holds one entry per param; a state list holds None entries, or is empty,
    when the kind does not use it. Every array is checked before the first write.
    """
    cdef gd_hyper h = _hyper_from_dict(hyper)
    cdef Py_ssize_t i, j, n = len(params)
    cdef int typenum, bad
    cdef cnp.npy_intp size
    cdef void *ptr
    cdef list states = [s0, s1, s2]
    if n == 0:
        return 0
    if not cnp.PyArray_Check(params[0]):
        raise TypeError("`params[0]` must be a numpy.ndarray")
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>params[0])
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("`params` must be float32 or float64 arrays")
    if len(grads) != n:
        raise ValueError(f"`grads` has {len(grads)} arrays, expected {n}")
    cdef gd_segment *seg = <gd_segment *>malloc(n * sizeof(gd_segment))
    if seg == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            if not cnp.PyArray_Check(params[i]):
                raise TypeError(f"`params[{i}]` must be a numpy.ndarray")
            size = cnp.PyArray_SIZE(<cnp.ndarray>params[i])
            seg[i].n = <size_t>size
            seg[i].p = _checked_data(params[i], typenum, size, True, "params", i)
            seg[i].g = _checked_data(grads[i], typenum, size, False, "grads", i)
            seg[i].s0 = seg[i].s1 = seg[i].s2 = NULL
            for j in range(3):
                if len(states[j]) == 0 or states[j][i] is None:
                    continue
                if len(states[j]) != n:
                    raise ValueError(f"state list s{j} has {len(states[j])} arrays, "
                                     f"expected {n}")
                ptr = _checked_data(states[j][i], typenum, size, True, f"s{j}", i)
                if j == 0:
                    seg[i].s0 = ptr
                elif j == 1:
                    seg[i].s1 = ptr
                else:
                    seg[i].s2 = ptr
        _check_required_state(hyper, seg[0].s0 != NULL, seg[0].s1 != NULL,
                              seg[0].s2 != NULL)
        for i in range(n):
            if ((seg[i].s0 == NULL) != (seg[0].s0 == NULL)
                    or (seg[i].s1 == NULL) != (seg[0].s1 == NULL)
                    or (seg[i].s2 == NULL) != (seg[0].s2 == NULL)):
                raise ValueError(f"state of `params[{i}]` is incomplete")
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                bad = gd_step_segments_f32(&h, <size_t>n, seg)
            else:
                bad = gd_step_segments_f64(&h, <size_t>n, seg)
    finally:
        free(seg)
    return bad

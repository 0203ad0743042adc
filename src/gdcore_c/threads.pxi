# Thread control shared by every kernel of the compiled core.

cdef extern from "threads.h":
    int gd_num_threads() noexcept nogil
    int gd_max_threads() noexcept nogil
    void gd_set_num_threads(int n) noexcept nogil
    int gd_user_num_threads() noexcept nogil
    int gd_have_openmp() noexcept nogil


def _set_num_threads(int n):
    """Set the library-wide thread count (0 follows the OpenMP runtime)."""
    gd_set_num_threads(n)


def _get_num_threads():
    """Threads a parallel region started from the calling thread would use."""
    return gd_num_threads()


def _max_threads():
    """Largest thread count a kernel uses (4 per processor)."""
    return gd_max_threads()


def _user_num_threads():
    """The count set by `_set_num_threads`, 0 when unset."""
    return gd_user_num_threads()


def _have_openmp():
    """Whether the compiled core was built with OpenMP."""
    return bool(gd_have_openmp())

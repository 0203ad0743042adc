"""Library-wide thread count of the compiled kernels."""

from __future__ import annotations

from gdcore import _core
from gdcore._validation import int_in_range


def set_num_threads(n: int | None) -> None:
    """Set how many threads gdcore's compiled kernels may use.

    Parameters
    ----------
    n : int or None
        A count from 1 to four times the number of processors, applied to kernels
        started from any Python thread. ``None``
        returns to the default: the OpenMP runtime's count for the calling thread,
        which ``OMP_NUM_THREADS`` and ``threadpoolctl`` control.

    Raises
    ------
    TypeError
        If `n` is not an integer or None.
    ValueError
        If `n` is smaller than 1 or larger than four threads per processor.
    """
    if n is None:
        _core._set_num_threads(0)
        return
    count = int_in_range(n, "n", 1, _core._max_threads())
    _core._set_num_threads(count)


def get_num_threads() -> int:
    """Return how many threads a compiled kernel started now would use."""
    return _core._get_num_threads()

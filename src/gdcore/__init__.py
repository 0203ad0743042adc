"""gdcore: gradient-descent optimization with a compiled core.

Two implementations share one interface: :mod:`gdcore.optim` (fused C kernels) and
:mod:`gdcore.reference` (plain NumPy, the source of truth in tests).
"""

from gdcore._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["__version__", "get_num_threads", "set_num_threads"]

"""gdcore: gradient-descent optimization with a compiled core.

Two implementations share one interface: :mod:`gdcore.optim` and :mod:`gdcore.nn` (fused
C kernels) and :mod:`gdcore.reference` (plain NumPy, the source of truth in tests).
:mod:`gdcore.train` fits networks, :mod:`gdcore.problems`, :mod:`gdcore.analysis` and
:mod:`gdcore.plot` show how the methods converge, and :func:`least_squares` brings
Levenberg-Marquardt.
"""

from gdcore import analysis, lm, nn, optim, problems, reference, train
from gdcore._minimize import minimize
from gdcore._threads import get_num_threads, set_num_threads
from gdcore.lm import curve_fit, least_squares

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "analysis",
    "curve_fit",
    "get_num_threads",
    "least_squares",
    "lm",
    "minimize",
    "nn",
    "optim",
    "problems",
    "reference",
    "set_num_threads",
    "train",
]

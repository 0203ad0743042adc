"""gdcore: gradient-descent optimization with a compiled core.

Two implementations share one interface: :mod:`gdcore.optim` and :mod:`gdcore.nn` (fused
C kernels) and :mod:`gdcore.reference` (plain NumPy, the source of truth in tests).
:mod:`gdcore.train` fits networks, :mod:`gdcore.problems`, :mod:`gdcore.analysis` and
:mod:`gdcore.plot` show how the methods converge, and :func:`least_squares` brings
Levenberg-Marquardt.
"""

import os

# libgomp's idle workers spin after every parallel region by default and starve the BLAS
# threads that compute the matrix products between two updates: training ran 8 to 30
# times slower on 2 cores. PASSIVE lets idle workers sleep. The runtime reads the
# variable once, when it is loaded, so this comes before the compiled core is imported;
# a value the user set wins.
# Limitation: no effect if another module loaded the same libgomp before gdcore.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gdcore import (  # noqa: E402
    analysis,
    lm,
    nn,
    optim,
    problems,
    reference,
    train,
)
from gdcore._minimize import minimize  # noqa: E402
from gdcore._threads import get_num_threads, set_num_threads  # noqa: E402
from gdcore.lm import curve_fit, least_squares  # noqa: E402

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

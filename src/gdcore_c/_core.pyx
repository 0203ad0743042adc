# cython: language_level=3
"""gdcore's compiled core: one extension module so that the kernels share one thread count.

Each ``.pxi`` file below holds the Cython wrappers of one group of C kernels.
"""

include "threads.pxi"
include "optim.pxi"
include "nn.pxi"

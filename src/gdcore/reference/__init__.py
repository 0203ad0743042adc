"""Plain-NumPy implementations of gdcore's optimizers and networks.

Written for clarity rather than speed; the compiled :mod:`gdcore.optim` and
:mod:`gdcore.nn` are tested against them.
"""

from gdcore.reference._nn import MLP as MLP
from gdcore.reference._optim import SGD, Adagrad, Adam, AdamW, RMSprop  # noqa: F401

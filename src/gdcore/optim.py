r"""Compiled optimizers: one fused C kernel call per step.

The classes have torch.optim's names, signatures and defaults, and behave like their
NumPy twins in :mod:`gdcore.reference` (same IEEE operations in the same order).

Performance notes
-----------------
Each ``step`` validates the grads (type, dtype, shape, contiguity, params still
writeable) and then makes one compiled call that runs without the GIL and updates every
param and its state in one pass over memory:

* **Fast path**: when the params are consecutive pieces of one contiguous buffer (as
  an MLP's ``params`` are views into ``flat_params``) and the grads are likewise
  consecutive (``flat_grads``), the kernel sees a single flat segment.
* Otherwise every param is its own segment; the segments are walked inside one OpenMP
  region, which adds a small cost per array.

Steps on fewer than ``gd_optim_parallel_threshold()`` elements run on the calling
thread; larger ones use :func:`gdcore.get_num_threads` threads. Results are bitwise
identical for any thread count.

Examples
--------
>>> import numpy as np
>>> from gdcore.optim import SGD
>>> w = np.array([1.0, 2.0])
>>> opt = SGD([w], lr=0.1)
>>> opt.step([np.array([1.0, -1.0])])
>>> w
array([0.9, 2.1])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdcore import _core
from gdcore._optimizer import (
    _AdagradBase,
    _AdamBase,
    _AdamWBase,
    _check_grads,
    _RMSpropBase,
    _SGDBase,
)

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


class _Fused:
    """Step of the compiled backend: one `_core._FusedStep` call per step."""

    def _setup(self) -> None:
        self._fused = _core._FusedStep(self._params, self._flat_state(),
                                       self._dtype == np.float64)
        self._fused.set_hyper(self._c_hyper())

    def _hyper_changed(self) -> None:
        self._fused.set_hyper(self._c_hyper())

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every param in place from its gradient (list aligned with params)."""
        flag = self._fused.step(grads, self._step_count)
        if flag < 0:
            _check_grads(self._params, self._addresses, grads)
            raise ValueError("`grads` was rejected by the compiled step")
        self._step_count += 1
        self._nonfinite = flag == 1


class SGD(_Fused, _SGDBase):
    __doc__ = _SGDBase.__doc__


class Adam(_Fused, _AdamBase):
    __doc__ = _AdamBase.__doc__


class AdamW(_Fused, _AdamWBase):
    __doc__ = _AdamWBase.__doc__


class RMSprop(_Fused, _RMSpropBase):
    __doc__ = _RMSpropBase.__doc__


class Adagrad(_Fused, _AdagradBase):
    __doc__ = _AdagradBase.__doc__

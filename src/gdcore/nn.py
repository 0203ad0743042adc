"""Multilayer perceptron with a compiled forward and backward pass.

Each call of :meth:`MLP.forward`, :meth:`MLP.loss`, :meth:`MLP.loss_and_grad` and
:meth:`MLP.jacobian` runs the whole pass over all layers in one C call without the
GIL: matrix products through the BLAS ``gemm`` of ``scipy.linalg.cython_blas``, bias,
activation, softmax and their derivatives in fused OpenMP loops. The workspace
(activations and deltas) is allocated once per model and grows when a larger batch
arrives.
"""

from __future__ import annotations

import numpy as np

from gdcore import _core
from gdcore._mlp import ACTIVATIONS, LOSSES, MLPBase

__all__ = ["MLP"]


class MLP(MLPBase):
    """Multilayer perceptron whose passes run in compiled code.

    Same constructor, attributes and behaviour as :class:`gdcore.reference.MLP`;
    see :class:`gdcore._mlp.MLPBase` for the parameters and the initialisation.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.nn import MLP
    >>> model = MLP([2, 3, 2], seed=0)
    >>> model.forward(np.zeros((1, 2))).round(3)
    array([[0.5, 0.5]])
    """

    def __init__(
        self,
        layer_sizes,
        activation: str = "relu",
        loss: str = "cross_entropy",
        dtype=np.float64,
        seed=None,
    ) -> None:
        super().__init__(layer_sizes, activation, loss, dtype, seed)
        self._sizes = np.asarray(self.layer_sizes, dtype=np.int32)
        self._codes = (ACTIVATIONS.index(self.activation), LOSSES.index(self.loss_name))
        self._work = np.empty(0, dtype=np.float64)
        self._work_rows = 0

    def _workspace(self, n: int) -> np.ndarray:
        """Workspace for a batch of `n` rows; grows, never shrinks."""
        if n > self._work_rows:
            nbytes = _core._mlp_work_bytes(self._sizes, n, self.dtype.itemsize)
            self._work = np.empty(-(-nbytes // 8), dtype=np.float64)
            self._work_rows = n
        return self._work

    def _forward(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        work = self._workspace(X.shape[0])
        _core._mlp_forward(self._sizes, *self._codes, self.flat_params, X, work, out)
        return out

    def _loss_and_grad(self, X: np.ndarray, y: np.ndarray, need_grad: bool) -> float:
        ce = self.loss_name == "cross_entropy"
        labels, targets = (y, None) if ce else (None, y)
        return _core._mlp_loss_grad(
            self._sizes,
            *self._codes,
            self.flat_params,
            X,
            labels,
            targets,
            self.flat_grads if need_grad else None,
            self._workspace(X.shape[0]),
        )

    def _jacobian(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        jac = np.empty((n * self.n_outputs, self.n_params), dtype=self.dtype)
        work = self._workspace(n)
        _core._mlp_jacobian(self._sizes, *self._codes, self.flat_params, X, work, jac)
        return jac

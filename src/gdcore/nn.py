"""Multilayer perceptron with a compiled forward and backward pass.

Each call of :meth:`MLP.forward`, :meth:`MLP.loss`, :meth:`MLP.loss_and_grad` and
:meth:`MLP.jacobian` runs the whole pass over all layers in one C call without the
GIL: matrix products through the BLAS ``gemm`` of ``scipy.linalg.cython_blas``, bias,
activation, softmax and their derivatives in fused OpenMP loops. The workspace
(activations and deltas) is allocated once per model and grows when a larger batch
arrives.
"""

from __future__ import annotations

import threading

import numpy as np

from gdcore import _core, optim
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
        # The workspace and gradient buffer are shared by every call on this model,
        # and the compiled calls release the GIL: one call at a time per model.
        self._lock = threading.Lock()

    _NOT_SAVED = (*MLPBase._NOT_SAVED, "_lock", "_work", "_work_rows")

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._work = np.empty(0, dtype=np.float64)
        self._work_rows = 0
        self._lock = threading.Lock()

    def _workspace(self, n: int) -> np.ndarray:
        """Workspace for a batch of `n` rows; grows, never shrinks."""
        # Limitation: one call with a huge batch keeps its workspace until the model
        # is deleted; shrinking would reallocate whenever batch sizes alternate.
        if n > self._work_rows:
            nbytes = _core._mlp_work_bytes(self._sizes, n, self.dtype.itemsize)
            self._work = np.empty(-(-nbytes // 8), dtype=np.float64)
            self._work_rows = n
        return self._work

    def _forward(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        with self._lock:
            work = self._workspace(X.shape[0])
            _core._mlp_forward(
                self._sizes, *self._codes, self.flat_params, X, work, out
            )
        return out

    def _loss_and_grad(self, X: np.ndarray, y: np.ndarray, need_grad: bool) -> float:
        ce = self.loss_name == "cross_entropy"
        labels, targets = (y, None) if ce else (None, y)
        with self._lock:
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
        with self._lock:
            work = self._workspace(n)
            _core._mlp_jacobian(
                self._sizes, *self._codes, self.flat_params, X, work, jac
            )
        return jac

    def _train_epoch(
        self,
        X: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        optimizer,
    ) -> tuple[np.ndarray, int, int]:
        """Train one epoch of minibatches in one compiled call without the GIL.

        Parameters
        ----------
        X, y : ndarray
            Data as returned by ``_prepare_data``: ``X`` (n, n_in) of the model
            dtype, ``y`` int64 labels (n,) or targets (n, n_out) of the model dtype.
        order : ndarray of int64
            Row indices; its consecutive chunks of `batch_size` are the batches
            (the last one may be shorter).
        batch_size : int
        optimizer : gdcore.optim optimizer
            Built on ``self.params``; after the epoch, ``optimizer._advance(k)``
            records the k updates applied.

        Returns
        -------
        batch_losses : ndarray of float64, one per batch
            Loss of each batch before its update (NaN for batches not reached).
        n_done : int
            Number of updates applied.
        code : int
            0; 1 if a batch loss was not finite (its update was not applied);
            2 if an update wrote non-finite parameters (that update counts in
            `n_done`). Training stops at the first non-zero code.
        """
        order, batch_size = self._check_epoch_args(X, y, order, batch_size)
        state = self._check_optimizer(optimizer)
        n_batches = -(-order.shape[0] // batch_size)
        losses = np.full(n_batches, np.nan)
        if n_batches == 0:
            return losses, 0, 0
        ce = self.loss_name == "cross_entropy"
        with self._lock:
            n_done, code = _core._mlp_epoch(
                self._sizes,
                *self._codes,
                X,
                y if ce else None,
                None if ce else y,
                order,
                batch_size,
                self.flat_params,
                self.flat_grads,
                optimizer._c_hyper(),
                *state,
                self._workspace(batch_size),
                losses,
            )
        optimizer._advance(n_done)
        return losses, n_done, code

    def _check_epoch_args(self, X, y, order, batch_size) -> tuple[np.ndarray, int]:
        """Check the prepared data of `_train_epoch`; return order and batch size."""
        n = X.shape[0] if isinstance(X, np.ndarray) and X.ndim == 2 else -1
        if self.loss_name == "cross_entropy":
            y_dtype, y_shape = np.dtype(np.int64), (n,)
        else:
            y_dtype, y_shape = self.dtype, (n, self.n_outputs)
        for name, arr, dtype, shape in [
            ("X", X, self.dtype, (n, self.layer_sizes[0])),
            ("y", y, y_dtype, y_shape),
        ]:
            if not (
                isinstance(arr, np.ndarray)
                and arr.dtype == dtype
                and arr.shape == shape
                and arr.flags.c_contiguous
            ):
                raise TypeError(
                    f"`{name}` must be a C-contiguous {dtype} array of shape {shape} "
                    f"as made by `_prepare_data`, got {type(arr).__name__} "
                    f"{getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}"
                )
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.ndim != 1 or (
            order.size and not (0 <= order.min() <= order.max() < n)
        ):
            raise ValueError(f"`order` must be 1-D indices in [0, {n}), got {order}")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}")
        # A batch larger than the epoch is the whole epoch; the workspace needs no more.
        return order, min(batch_size, max(order.shape[0], 1))

    def _check_optimizer(self, optimizer) -> tuple:
        """Flat state (s0, s1, s2) of a gdcore.optim optimizer on this model."""
        compiled = (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad)
        if not isinstance(optimizer, compiled):
            raise ValueError(
                "`optimizer` must be a gdcore.optim optimizer: the compiled epoch runs "
                f"its C update, got {type(optimizer).__module__}."
                f"{type(optimizer).__name__}"
            )
        if len(optimizer.params) != len(self.params) or any(
            p is not q for p, q in zip(optimizer.params, self.params, strict=True)
        ):
            raise ValueError("`optimizer` must be built on `model.params`")
        state = tuple(optimizer._flat_state())
        for s in state:
            if s is not None and not (
                s.dtype == self.dtype
                and s.shape == (self.n_params,)
                and s.flags.c_contiguous
            ):
                raise ValueError("`optimizer` state does not cover `model.flat_params`")
        return state

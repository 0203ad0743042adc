"""Training feed-forward networks: full-batch gradient descent, mini-batch and pure SGD.

:func:`fit` runs an optimizer of :mod:`gdcore.optim` or :mod:`gdcore.reference` on an
:class:`gdcore.nn.MLP` (or its NumPy twin :class:`gdcore.reference.MLP`).

Two engines give the same result for the same seed:

- ``"compiled"`` runs each whole epoch (batch gathering, forward, backward and the fused
  update of every batch) in one call of the compiled core without the GIL. It needs a
  :class:`gdcore.nn.MLP` and a :mod:`gdcore.optim` optimizer.
- ``"python"`` is the step-by-step loop ``loss, grads = model.loss_and_grad(Xb, yb);
  optimizer.step(grads)``; it works with every model and optimizer and is the reference
  the compiled engine is tested against.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gdcore._history import History
from gdcore._mlp import MLPBase
from gdcore._optimizer import _Optimizer
from gdcore._validation import int_in_range, real_scalar
from gdcore.lm import fit_lm
from gdcore.nn import MLP
from gdcore.optim import _Fused

__all__ = ["History", "fit"]

logger = logging.getLogger(__name__)

_SAMPLINGS = ("without_replacement", "with_replacement")
_ENGINES = ("auto", "compiled", "python")

# Batch outcome codes shared with the compiled epoch (see gdcore.nn.MLP._train_epoch).
_OK, _LOSS_NOT_FINITE, _PARAMS_NOT_FINITE = 0, 1, 2


def fit(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    optimizer: Any,
    *,
    epochs: int,
    batch_size: int | None = 32,
    sampling: str = "without_replacement",
    shuffle: bool = True,
    tol: float | None = None,
    seed: int | np.random.Generator | None = None,
    progress: bool = False,
    callback: Callable[[int, History], None] | None = None,
    engine: str = "auto",
) -> History:
    """Train `model` on ``(X, y)`` with `optimizer`.

    Parameters
    ----------
    model : gdcore.nn.MLP or gdcore.reference.MLP
        The network; its parameters are updated in place.
    X : array_like of shape (n_samples, n_inputs)
        Inputs, converted once to the model's dtype.
    y : array_like
        Integer class labels of shape (n_samples,) for the cross-entropy loss; real
        targets of shape (n_samples,) or (n_samples, n_outputs) for the mse loss.
    optimizer : optimizer or "lm"
        An optimizer of :mod:`gdcore.optim` or :mod:`gdcore.reference` built on
        ``model.params``, or ``"lm"`` for Levenberg-Marquardt on all the data (mse
        loss only; see :func:`gdcore.lm.fit_lm`).
    epochs : int
        Maximum number of passes over the data, at least 1.
    batch_size : int or None, default 32
        Samples per update. ``None`` is full-batch gradient descent, ``1`` pure SGD.
    sampling : {"without_replacement", "with_replacement"}
        ``"without_replacement"`` partitions each epoch's permutation into batches, so
        every sample is used exactly once per epoch and the last batch may be smaller.
        ``"with_replacement"`` draws every batch's `batch_size` indices at random; an
        epoch is then ``ceil(n_samples / batch_size)`` updates.
    shuffle : bool, default True
        Permute the samples each epoch (``"without_replacement"`` only); when False the
        batches follow the order of the data.
    tol : float or None, default None
        Stop with status ``"converged"`` once the epoch loss changes by at most
        ``tol * max(1, |previous loss|)``, or no parameter moves by more than
        ``tol * max(1, max |previous parameter|)`` during an epoch. None runs all
        epochs unless the run diverges.
    seed : int, numpy.random.Generator or None
        Seeds the batch sampling; the same seed gives the same result.
    progress : bool, default False
        Show a progress bar over the epochs (needs ``tqdm``).
    callback : callable, optional
        Called as ``callback(epoch, history)`` after each epoch (``epoch`` counts from
        1; ``history`` is the record so far).
    engine : {"auto", "compiled", "python"}, default "auto"
        ``"auto"`` uses the compiled whole-epoch engine when the model is a
        :class:`gdcore.nn.MLP` and the optimizer a :mod:`gdcore.optim` one, and the
        step-by-step Python loop otherwise. When the optimizer's ``step`` or the
        model's ``loss_and_grad`` is replaced (by a subclass or on the instance), the
        Python loop runs and calls them; ``"compiled"`` then raises ValueError.

    Returns
    -------
    History
        The epoch losses, epochs and iterations run, the status and a message.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range, or the data do not fit the model.

    Notes
    -----
    A run diverges when a batch loss or a parameter becomes NaN or infinite, typically
    because the learning rate is too large. The model is then left at the last finite
    parameters: those in place before the failing batch when they are finite, otherwise
    the parameters at the start of that epoch (the message says which).
    """
    if not isinstance(model, MLPBase):
        raise TypeError(
            "`model` must be a gdcore.nn.MLP or gdcore.reference.MLP, "
            f"got {type(model).__name__}"
        )
    epochs = int_in_range(epochs, "epochs", 1)
    if tol is not None:
        tol = real_scalar(tol, "tol")
        if not (0.0 <= tol < math.inf):
            raise ValueError(f"`tol` must be a finite number >= 0 or None, got {tol!r}")
    for name, flag in (("shuffle", shuffle), ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be True or False, got {flag!r}")
    rng = _check_seed(seed)
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable, got {type(callback).__name__}")
    if isinstance(optimizer, str):
        if optimizer != "lm":
            raise ValueError(
                f"`optimizer` must be an optimizer object or 'lm', got {optimizer!r}"
            )
        return fit_lm(model, X, y, epochs=epochs, tol=tol, callback=callback)

    if sampling not in _SAMPLINGS:
        raise ValueError(f"`sampling` must be one of {_SAMPLINGS}, got {sampling!r}")
    if engine not in _ENGINES:
        raise ValueError(f"`engine` must be one of {_ENGINES}, got {engine!r}")
    _check_optimizer(model, optimizer)
    X, y = model._prepare_data(X, y)
    for name, data in (("X", X), ("y", y)):
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise ValueError(f"`{name}` holds NaN or infinite values")
    n = X.shape[0]
    if batch_size is None:
        batch_size = n
    batch_size = int_in_range(batch_size, "batch_size", 1)
    use_compiled = _choose_engine(engine, model, optimizer)
    bar = _progress_bar(progress, epochs)

    history = History()
    start = time.perf_counter()
    snapshot = np.empty_like(model.flat_params)
    try:
        for epoch in range(1, epochs + 1):
            order = _epoch_order(rng, n, batch_size, sampling, shuffle)
            np.copyto(snapshot, model.flat_params)
            if use_compiled:
                losses, done, code = model._train_epoch(
                    X, y, order, batch_size, optimizer
                )
            else:
                losses, done, code = _python_epoch(
                    model, X, y, order, batch_size, optimizer
                )
            history.iterations += done
            history.epochs = epoch
            if code != _OK:
                _diverged(history, model, snapshot, code, epoch, done)
                break
            history.loss.append(_epoch_loss(losses, len(order), batch_size))
            _report_epoch(history, bar, callback)
            if tol is not None and _converged(history, model, snapshot, tol):
                history.status = "converged"
                history.message = (
                    f"converged after {epoch} epochs: the change of the epoch loss or "
                    f"of the parameters fell below tol={tol:g}"
                )
                break
        else:
            history.status = "max_epochs"
            history.message = f"reached the maximum of {epochs} epochs"
    finally:
        if bar is not None:
            bar.close()
        history.time = time.perf_counter() - start
    logger.info("fit: %s", history.message)
    return history


def _check_optimizer(model: Any, optimizer: Any) -> None:
    """Check that `optimizer` updates exactly the model's parameter arrays."""
    if not isinstance(optimizer, _Optimizer):
        raise TypeError(
            "`optimizer` must be an optimizer of gdcore.optim or gdcore.reference, "
            f"got {type(optimizer).__name__}"
        )
    params = optimizer.params
    if len(params) != len(model.params) or any(
        p is not q for p, q in zip(params, model.params, strict=True)
    ):
        raise ValueError(
            "`optimizer` must be built on `model.params` (the same arrays, in order)"
        )


def _check_seed(seed: Any) -> np.random.Generator:
    """The batch sampler of `seed`: None, an integer >= 0 or a Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"`seed` must be an integer, a numpy Generator or None, got {seed!r}"
        )
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}")
    return np.random.default_rng(seed)


def _replaced(obj: Any, name: str, base: type) -> bool:
    """Whether `obj.name` is not `base`'s method: overridden by a subclass or set on
    the instance."""
    return name in vars(obj) or getattr(type(obj), name) is not getattr(base, name)


def _overridden(model: Any, optimizer: Any) -> list[str]:
    """Replaced methods that the compiled epoch would bypass."""
    names = []
    if _replaced(optimizer, "step", _Fused):
        names.append(f"{type(optimizer).__name__}.step")
    for name in ("loss_and_grad", "_loss_and_grad"):
        if _replaced(model, name, MLP):
            names.append(f"{type(model).__name__}.{name}")
    return names


def _choose_engine(engine: str, model: Any, optimizer: Any) -> bool:
    """Return True when the compiled whole-epoch engine is to be used.

    The compiled epoch runs the update and the passes in C, so it is used only when
    the model and the optimizer are gdcore's compiled classes, or subclasses that
    override none of the methods it replaces."""
    supported = isinstance(model, MLP) and isinstance(optimizer, _Fused)
    if engine == "compiled" and not supported:
        raise ValueError(
            "`engine`='compiled' needs a gdcore.nn.MLP and a gdcore.optim optimizer"
        )
    if not supported or engine == "python":
        return False
    overridden = _overridden(model, optimizer)
    if overridden and engine == "compiled":
        raise ValueError(
            "`engine`='compiled' would bypass the overriding "
            f"{', '.join(overridden)}; use engine='python' or 'auto'"
        )
    return not overridden


def _progress_bar(progress: bool, epochs: int) -> Any:
    """Return a tqdm bar over the epochs, or None when `progress` is off."""
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "`progress=True` needs tqdm: pip install 'gdcore[progress]'"
        ) from None
    return tqdm(total=epochs, unit="epoch", desc="fit")


def _epoch_order(
    rng: np.random.Generator, n: int, batch_size: int, sampling: str, shuffle: bool
) -> np.ndarray:
    """Indices of one epoch; its consecutive `batch_size` chunks are the batches."""
    if sampling == "with_replacement":
        n_batches = -(-n // batch_size)
        return rng.integers(0, n, size=n_batches * batch_size, dtype=np.int64)
    if shuffle:
        return rng.permutation(n).astype(np.int64, copy=False)
    return np.arange(n, dtype=np.int64)


def _python_epoch(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    optimizer: Any,
) -> tuple[np.ndarray, int, int]:
    """Run one epoch step by step; same contract as ``MLP._train_epoch``."""
    n_batches = -(-len(order) // batch_size)
    losses = np.empty(n_batches)
    # A subclass's own loss_and_grad is called as is; otherwise the public checks
    # are skipped, since X and y were checked and converted once per fit.
    custom = _replaced(model, "loss_and_grad", MLPBase)
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        if custom:
            loss, grads = model.loss_and_grad(X[idx], y[idx])
        else:
            loss, grads = model._loss_and_grad(X[idx], y[idx], True), model.grads
        losses[b] = loss
        if not math.isfinite(loss):
            return losses, b, _LOSS_NOT_FINITE
        optimizer.step(grads)
        if optimizer._nonfinite:  # set by every step from the values it wrote
            return losses, b + 1, _PARAMS_NOT_FINITE
    return losses, n_batches, _OK


def _epoch_loss(losses: np.ndarray, n_used: int, batch_size: int) -> float:
    """Mean loss of an epoch, each batch weighted by the samples it holds."""
    sizes = np.full(len(losses), batch_size, dtype=np.float64)
    sizes[-1] = n_used - batch_size * (len(losses) - 1)
    return float(np.dot(losses, sizes) / n_used)


def _diverged(
    history: History,
    model: Any,
    snapshot: np.ndarray,
    code: int,
    epoch: int,
    done: int,
) -> None:
    """Record a divergence and leave the model at its last finite parameters."""
    history.status = "diverged"
    iteration = history.iterations + (1 if code == _LOSS_NOT_FINITE else 0)
    what = "the loss" if code == _LOSS_NOT_FINITE else "the parameters"
    where = f"epoch {epoch}, iteration {iteration} (batch {done + 1} of the epoch)"
    if code == _LOSS_NOT_FINITE and np.isfinite(model.flat_params).all():
        kept = "the model keeps the parameters of the last finite step"
    else:
        np.copyto(model.flat_params, snapshot)
        kept = f"the model was restored to its parameters at the start of epoch {epoch}"
    history.message = (
        f"diverged: {what} became NaN or infinite at {where}; {kept}. "
        "The learning rate is probably too large."
    )


def _converged(history: History, model: Any, snapshot: np.ndarray, tol: float) -> bool:
    """Whether the epoch loss or the parameters moved by at most `tol` (relative)."""
    if len(history.loss) >= 2:
        previous, current = history.loss[-2], history.loss[-1]
        if abs(current - previous) <= tol * max(1.0, abs(previous)):
            return True
    scale = max(1.0, float(np.max(np.abs(snapshot), initial=0.0)))
    change = float(np.max(np.abs(model.flat_params - snapshot), initial=0.0))
    return change <= tol * scale


def _report_epoch(
    history: History, bar: Any, callback: Callable[[int, History], None] | None
) -> None:
    """Log the epoch, advance the progress bar and call the user's callback."""
    loss = history.loss[-1]
    logger.debug("epoch %d: loss %.6g", history.epochs, loss)
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}")
    if callback is not None:
        callback(history.epochs, history)

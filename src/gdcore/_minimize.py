"""Minimise a function of a vector with any gdcore optimizer."""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gdcore._validation import real_scalar, real_vector

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

__all__ = ["minimize", "OPTIMIZER_NAMES", "resolve_optimizer"]

logger = logging.getLogger(__name__)

OPTIMIZER_NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}

#: A run counts as diverged once ``|f_k| > DIVERGENCE_FACTOR * (|f_0| + 1)``.
DIVERGENCE_FACTOR = 1e6

_MESSAGES = {
    "converged": "gradient norm {gnorm:.3g} <= tol = {tol:.3g}",
    "max_iter": "reached max_iter = {nit} steps; gradient norm {gnorm:.3g}",
    "diverged": "diverged at iteration {nit}: {why}",
    "stopped": "stopped by the callback at iteration {nit}",
}


def resolve_optimizer(optimizer) -> type:
    """The optimizer class for a name of :data:`OPTIMIZER_NAMES` or a class."""
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZER_NAMES:
            raise ValueError(
                f"`optimizer` must be one of {sorted(OPTIMIZER_NAMES)} or an "
                f"optimizer class, got {optimizer!r}"
            )
        module = importlib.import_module("gdcore.optim")
        return getattr(module, OPTIMIZER_NAMES[key])
    if isinstance(optimizer, type) and callable(getattr(optimizer, "step", None)):
        return optimizer
    raise TypeError(
        f"`optimizer` must be a name or an optimizer class, got {optimizer!r}"
    )


def _check_args(fun, grad, max_iter, tol, callback) -> float:
    """Validate the scalar and callable arguments of minimize; return tol as float."""
    if not callable(fun):
        raise TypeError(f"`fun` must be callable, got {fun!r}")
    if grad is not None and not callable(grad):
        raise TypeError(f"`grad` must be callable or None, got {grad!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable or None, got {callback!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral):
        raise TypeError(f"`max_iter` must be an int, got {max_iter!r}")
    if max_iter < 0:
        raise ValueError(f"`max_iter` must be >= 0, got {max_iter}")
    tol = real_scalar(tol, "tol")
    if not (tol >= 0.0):
        raise ValueError(f"`tol` must be >= 0, got {tol}")
    return tol


class _Objective:
    """Counts evaluations and supplies the gradient, exact or by differences."""

    def __init__(self, fun: Callable, grad: Callable | None, x: np.ndarray) -> None:
        self.fun, self.grad_fun = fun, grad
        self.nfev = self.njev = 0
        self.dtype = x.dtype
        self.n = x.size

    @staticmethod
    def _read_only(x: np.ndarray) -> np.ndarray:
        view = x.view()
        view.flags.writeable = False
        return view

    def value(self, x: np.ndarray) -> float:
        self.nfev += 1
        f = np.asarray(self.fun(self._read_only(x)))
        if f.size != 1:
            raise ValueError(f"`fun` must return a scalar, got shape {f.shape}")
        return float(f.reshape(()))

    def grad(self, x: np.ndarray) -> np.ndarray:
        self.njev += 1
        if self.grad_fun is None:
            return self._central_differences(x)
        g = np.asarray(self.grad_fun(self._read_only(x)))
        if g.shape != (self.n,):
            raise ValueError(
                f"`grad` must return an array of shape ({self.n},), got {g.shape}"
            )
        g = np.ascontiguousarray(g, dtype=self.dtype)
        # A gradient that is x itself (or a view of it) is copied: the optimizers
        # refuse grads that share memory with the params they update.
        return g.copy() if np.may_share_memory(g, x) else g

    def _central_differences(self, x: np.ndarray) -> np.ndarray:
        """Central differences, steps eps**(1/3) * max(1, |x_j|) in x's dtype."""
        eps = np.finfo(self.dtype).eps
        h = (eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(x))).astype(self.dtype)
        g = np.empty(self.n, dtype=self.dtype)
        z = x.copy()
        for j in range(self.n):
            z[j] = x[j] + h[j]
            fp, up = self.value(z), float(z[j])
            z[j] = x[j] - h[j]
            fm, dn = self.value(z), float(z[j])
            z[j] = x[j]
            g[j] = (fp - fm) / (up - dn)
        return g


def _divergence(f: float, g: np.ndarray, x: np.ndarray, f0: float) -> str | None:
    """Why the run diverged, or None."""
    if not math.isfinite(f):
        return f"the function value is {f}"
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(x))):
        return "the iterate or gradient is not finite"
    if abs(f) > DIVERGENCE_FACTOR * (abs(f0) + 1.0):
        return f"|f| = {abs(f):.3g} grew beyond 1e6 * (|f0| + 1) with f0 = {f0:.3g}"
    return None


def minimize(
    fun: Callable,
    x0,
    *,
    grad: Callable | None = None,
    optimizer="sgd",
    max_iter: int = 1000,
    tol: float = 1e-8,
    callback: Callable | None = None,
    return_trajectory: bool = False,
    **hyperparameters,
) -> OptimizeResult:
    r"""Minimise ``fun`` from ``x0`` with a gdcore optimizer, one step per iteration.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float`` for ``x`` of shape (n,). It receives a read-only
        view of the optimizer's parameter array: copy it to keep it.
    x0 : array_like, shape (n,)
        Starting point (finite). A float32 array is optimised in float32;
        anything else in float64. Never modified.
    grad : callable, optional
        ``grad(x) -> array of shape (n,)``. If omitted the gradient is
        estimated by central differences with steps
        :math:`\epsilon^{1/3} \max(1, |x_j|)` (2 n calls of ``fun``).
    optimizer : str or class, default "sgd"
        ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"`` (the
        compiled classes of :mod:`gdcore.optim`), or any class of
        :mod:`gdcore.optim` or :mod:`gdcore.reference`.
    max_iter : int, default 1000
        Maximum number of optimizer steps, ``>= 0``.
    tol : float, default 1e-8
        Stop when the gradient's Euclidean norm is ``<= tol``.
    callback : callable, optional
        Called after every step as ``callback(intermediate_result)`` with an
        :class:`~scipy.optimize.OptimizeResult` holding copies of ``x``,
        ``fun``, ``jac`` and ``nit``. Raising ``StopIteration`` ends the run
        with status ``"stopped"``.
    return_trajectory : bool, default False
        Also return ``trajectory`` (the iterates, shape (nit + 1, n)) and
        ``losses`` (shape (nit + 1,)), including ``x0``.
    **hyperparameters
        Passed to the optimizer class (``lr``, ``momentum``, ``betas``, ...); an
        invalid one raises the optimizer's own error.

    Returns
    -------
    OptimizeResult
        ``x``, ``fun``, ``jac`` (gradient at ``x``), ``nit``, ``nfev``,
        ``njev``, ``status``, ``success`` (``status == "converged"``),
        ``message``, and with ``return_trajectory`` also ``trajectory`` and
        ``losses``.

    Notes
    -----
    ``status`` is one of

    * ``"converged"``: the gradient norm is at most ``tol``;
    * ``"max_iter"``: ``max_iter`` steps were taken first;
    * ``"diverged"``: a value, gradient or iterate is not finite, or
      :math:`|f_k| > 10^6 (|f_0| + 1)` (the loss grew by six orders of
      magnitude over its start; this also catches functions unbounded below).
      ``x`` is then the last iterate, possibly not finite;
    * ``"stopped"``: the callback raised ``StopIteration``.

    Examples
    --------
    >>> import numpy as np
    >>> from gdcore.problems import Rosenbrock
    >>> p = Rosenbrock()
    >>> res = minimize(p.value, p.x0, grad=p.grad, optimizer="sgd", lr=2e-3,
    ...                momentum=0.9, max_iter=5000, tol=1e-6)
    >>> res.status, np.allclose(res.x, 1.0, atol=1e-5)
    ('converged', True)
    """
    tol = _check_args(fun, grad, max_iter, tol, callback)
    if not isinstance(return_trajectory, bool):
        raise TypeError(
            f"`return_trajectory` must be a bool, got {return_trajectory!r}"
        )
    x = real_vector(x0, "x0", keep_float32=True)
    cls = resolve_optimizer(optimizer)
    try:
        inspect.signature(cls).bind([x], **hyperparameters)
    except TypeError as exc:
        raise TypeError(f"hyperparameters of {cls.__name__}: {exc}") from None
    opt = cls([x], **hyperparameters)
    objective = _Objective(fun, grad, x)
    result = _run(objective, opt, x, max_iter, tol, callback, return_trajectory)
    logger.debug("minimize with %s: %s", cls.__name__, result.message)
    return result


# Limitation: one Python-level iteration per step (a gradient call, the
# optimizer's step and bookkeeping: about 10 to 20 microseconds), so minimize
# suits functions whose evaluation dominates or small problems; it takes full
# gradients only, with no mini-batches.
def _run(objective, opt, x, max_iter, tol, callback, keep) -> OptimizeResult:
    """The iteration loop of minimize."""
    # Imported here: scipy.optimize takes about half a second to import.
    from scipy.optimize import OptimizeResult

    f = f0 = objective.value(x)
    g = objective.grad(x)
    trajectory, losses = ([x.copy()], [f]) if keep else (None, None)
    nit, status, why = 0, "max_iter", None
    while True:
        why = _divergence(f, g, x, f0)
        if why is not None:
            status = "diverged"
            break
        if np.linalg.norm(g.astype(np.float64)) <= tol:
            status = "converged"
            break
        if nit >= max_iter:
            break
        opt.step([g])
        nit += 1
        f = objective.value(x)
        g = objective.grad(x)
        if keep:
            trajectory.append(x.copy())
            losses.append(f)
        if callback is not None and _call_back(callback, x, f, g, nit):
            status = "stopped"
            break
    gnorm = float(np.linalg.norm(g.astype(np.float64)))
    message = _MESSAGES[status].format(gnorm=gnorm, tol=tol, nit=nit, why=why)
    result = OptimizeResult(
        x=x,
        fun=f,
        jac=g,
        nit=nit,
        nfev=objective.nfev,
        njev=objective.njev,
        status=status,
        success=status == "converged",
        message=message,
    )
    if keep:
        result.trajectory = np.array(trajectory)
        result.losses = np.array(losses, dtype=np.float64)
    return result


def _call_back(callback, x, f, g, nit) -> bool:
    """Run the user callback; True when it asks to stop."""
    from scipy.optimize import OptimizeResult

    intermediate = OptimizeResult(x=x.copy(), fun=f, jac=g.copy(), nit=nit)
    try:
        callback(intermediate)
    except StopIteration:
        return True
    return False

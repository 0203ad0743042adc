r"""Curvature and convergence: Hessians, their spectrum, predicted and measured rates.

The theory used here is the classical one for gradient descent on a quadratic
:math:`f(x) = \tfrac12 x^T H x - b^T x` whose Hessian has eigenvalues in
:math:`[\mu, L]` (``lambda_min``, ``lambda_max``) and condition number
:math:`\kappa = L / \mu`:

* plain GD, :math:`x_{k+1} = x_k - \eta \nabla f(x_k)`, is stable for
  :math:`0 < \eta < 2 / L`; the best constant rate :math:`\eta = 2 / (\mu + L)`
  contracts the error :math:`\lVert x_k - x^* \rVert` by
  :math:`(\kappa - 1) / (\kappa + 1)` per step;
* heavy ball (Polyak momentum), :math:`x_{k+1} = x_k - \eta \nabla f(x_k) +
  \beta (x_k - x_{k-1})`, with :math:`\eta = 4 / (\sqrt{L} + \sqrt{\mu})^2`
  and :math:`\beta = ((\sqrt\kappa - 1) / (\sqrt\kappa + 1))^2` contracts it
  by :math:`(\sqrt\kappa - 1) / (\sqrt\kappa + 1)`.

gdcore's ``SGD(momentum=mu)`` (torch's form :math:`v \leftarrow \mu v + g`,
:math:`p \leftarrow p - \eta v`) is exactly the heavy ball with the same
:math:`\eta` and :math:`\beta = \mu`.

All rates here are rates of the *distance* to the minimiser. The loss gap
:math:`f(x_k) - f^*` of a quadratic converges at the square of that rate;
:func:`convergence_rate` takes the square root when it measures from losses so
that both are comparable with :func:`gd_rates`.

References
----------
B. T. Polyak, *Introduction to Optimization*, Optimization Software, 1987,
sections 1.4 and 3.2.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gdcore._validation import real_vector

__all__ = [
    "hessian",
    "hessian_mlp",
    "spectrum",
    "Spectrum",
    "gd_rates",
    "GDRates",
    "steps_to_accuracy",
    "convergence_rate",
]

logger = logging.getLogger(__name__)


def _steps(x: np.ndarray, power: float) -> np.ndarray:
    """Difference steps eps**power scaled to max(1, |x_j|), exactly representable."""
    h = np.finfo(np.float64).eps ** power * np.maximum(1.0, np.abs(x))
    return (x + h) - x


def _fd_hessian_from_grad(grad: Callable, x: np.ndarray) -> np.ndarray:
    """Central differences of the gradient, one column per coordinate."""
    n = x.size
    h = _steps(x, 1.0 / 3.0)
    H = np.empty((n, n))
    for j in range(n):
        xp, xm = x.copy(), x.copy()
        xp[j] += h[j]
        xm[j] -= h[j]
        gp = np.asarray(grad(xp), dtype=np.float64).reshape(-1)
        gm = np.asarray(grad(xm), dtype=np.float64).reshape(-1)
        if gp.shape != (n,) or gm.shape != (n,):
            raise ValueError(f"the gradient must return shape ({n},), got {gp.shape}")
        H[j] = (gp - gm) / (2.0 * h[j])
    return 0.5 * (H + H.T)


def _fd_hessian_from_value(fun: Callable, x: np.ndarray) -> np.ndarray:
    """Second central differences of the function (4 evaluations per entry)."""
    n = x.size
    h = _steps(x, 1.0 / 4.0)

    def f(i, si, j, sj):
        z = x.copy()
        z[i] += si * h[i]
        z[j] += sj * h[j]
        return float(fun(z))

    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            d = f(i, 1, j, 1) - f(i, 1, j, -1) - f(i, -1, j, 1) + f(i, -1, j, -1)
            H[i, j] = H[j, i] = d / (4.0 * h[i] * h[j])
    return H


def hessian(fun_or_grad, x, *, kind: str = "auto") -> np.ndarray:
    r"""Hessian of a function of a vector at ``x``.

    Parameters
    ----------
    fun_or_grad : problem object or callable
        A :mod:`gdcore.problems` object (anything with a ``hessian`` method), the
        gradient ``grad(x) -> (n,)`` or the function ``fun(x) -> float``.
    x : array_like, shape (n,)
        The point (finite).
    kind : {"auto", "exact", "grad", "value"}, default "auto"
        ``"exact"`` calls ``fun_or_grad.hessian(x)``; ``"grad"`` uses central
        differences of the gradient (``.grad`` of a problem object, or the
        callable itself), symmetrised; ``"value"`` uses second central
        differences of the function (``.value`` or the callable). ``"auto"``
        picks ``"exact"`` for objects with a ``hessian`` method and ``"grad"``
        otherwise.

    Returns
    -------
    ndarray, shape (n, n)
        Symmetric for the difference estimates.

    Notes
    -----
    Steps are :math:`\epsilon^{1/3} \max(1, |x_j|)` for gradient differences and
    :math:`\epsilon^{1/4} \max(1, |x_j|)` for function differences
    (:math:`\epsilon` = float64 machine epsilon), which balance truncation and
    rounding error: about 1e-10 and 1e-8 relative accuracy respectively on a
    well-scaled function. The gradient route costs ``2 n`` gradient calls, the
    function route ``4 n^2`` function calls.
    """
    x = real_vector(x, "x")
    if kind not in ("auto", "exact", "grad", "value"):
        raise ValueError(
            f"`kind` must be 'auto', 'exact', 'grad' or 'value', got {kind!r}"
        )
    if kind == "auto":
        kind = "exact" if hasattr(fun_or_grad, "hessian") else "grad"
    if kind == "exact":
        if not hasattr(fun_or_grad, "hessian"):
            raise TypeError("`fun_or_grad` has no `hessian` method for kind='exact'")
        return np.asarray(fun_or_grad.hessian(x), dtype=np.float64)
    attr = "grad" if kind == "grad" else "value"
    func = getattr(fun_or_grad, attr, fun_or_grad)
    if not callable(func):
        raise TypeError(f"`fun_or_grad` must be callable, got {fun_or_grad!r}")
    if kind == "grad":
        return _fd_hessian_from_grad(func, x)
    return _fd_hessian_from_value(func, x)


def hessian_mlp(model, X, y) -> np.ndarray:
    """Hessian of an MLP's mean loss over its flat parameters, on data ``(X, y)``.

    Central differences of ``model.loss_and_grad(X, y)`` over
    ``model.flat_params`` (one pair of backward passes per parameter),
    symmetrised. The parameters are restored bit for bit afterwards; the
    model's gradient buffer is left holding the gradient at the restored
    parameters.

    Parameters
    ----------
    model : gdcore.nn.MLP or gdcore.reference.MLP
        Any object with ``flat_params`` (1-D, updated in place by writes into
        it) and ``loss_and_grad(X, y) -> (loss, grads)``.
    X, y : array_like
        Data, as accepted by ``model.loss_and_grad``.

    Returns
    -------
    ndarray, shape (n_params, n_params), float64

    Notes
    -----
    Practical up to a few thousand parameters: the cost is ``2 n_params``
    gradient evaluations on the whole of ``(X, y)`` and the result takes
    ``8 n_params^2`` bytes (2000 parameters: 4000 backward passes and 32 MB).
    On two cores, a 64-64-10 tanh network (4810 parameters) on 500 samples
    took about 10 s.
    For a float32 model the differences carry float32 rounding, about
    1e-3 relative accuracy. ReLU networks have kinks: where a pre-activation
    is within a step of zero the estimate is an average over the kink.
    """
    flat = getattr(model, "flat_params", None)
    if not isinstance(flat, np.ndarray) or flat.ndim != 1:
        raise TypeError("`model` must expose a 1-D `flat_params` array")
    if not callable(getattr(model, "loss_and_grad", None)):
        raise TypeError("`model` must have a `loss_and_grad(X, y)` method")
    # Limitation: dense finite differences, 2 n_params backward passes over the
    # whole data and an n_params^2 matrix; exact Hessian-vector products would
    # need a second backward pass the networks do not provide.
    saved = flat.copy()
    n = flat.size
    eps = np.finfo(flat.dtype).eps
    x64 = saved.astype(np.float64)
    h = (eps ** (1.0 / 3.0)) * np.maximum(1.0, np.abs(x64))

    def grad_at(j, sign):
        flat[j] = saved[j] + sign * h[j]
        step = float(flat[j]) - float(saved[j])
        _, grads = model.loss_and_grad(X, y)
        flat[j] = saved[j]
        return np.concatenate([np.ravel(g) for g in grads]).astype(np.float64), step

    H = np.empty((n, n))
    try:
        for j in range(n):
            gp, hp = grad_at(j, 1.0)
            gm, hm = grad_at(j, -1.0)
            # Row j holds column j of the Hessian: contiguous writes, and the
            # result is symmetrised anyway.
            H[j] = (gp - gm) / (hp - hm)
    finally:
        flat[:] = saved
        model.loss_and_grad(X, y)
    return 0.5 * (H + H.T)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Eigenvalues of a symmetric matrix and what they say about a critical point.

    Attributes
    ----------
    eigenvalues : ndarray
        Ascending.
    lambda_min, lambda_max : float
        Smallest and largest eigenvalue.
    condition_number : float
        ``lambda_max / lambda_min``; ``inf`` unless ``lambda_min > tol``.
    positive_definite : bool
        ``lambda_min > tol``.
    tol : float
        Eigenvalues with ``|lambda| <= tol`` count as zero.
    description : str
        A sentence: minimum, flat directions, saddle or maximum.
    """

    eigenvalues: np.ndarray
    lambda_min: float
    lambda_max: float
    condition_number: float
    positive_definite: bool
    tol: float
    description: str

    @property
    def kappa(self) -> float:
        """Alias of ``condition_number``."""
        return self.condition_number


def _describe(eigenvalues: np.ndarray, tol: float, kappa: float) -> str:
    """One sentence on what the signs of the eigenvalues mean."""
    n_neg = int(np.sum(eigenvalues < -tol))
    n_zero = int(np.sum(np.abs(eigenvalues) <= tol))
    n_pos = eigenvalues.size - n_neg - n_zero
    if n_neg == 0 and n_zero == 0:
        return (
            f"positive definite (kappa = {kappa:.4g}): a strict local minimum; "
            "gradient descent converges linearly near it"
        )
    if n_neg == 0:
        return (
            f"positive semidefinite with {n_zero} flat direction(s) "
            f"(eigenvalue 0 within {tol:.2g}): the minimum is not strict and "
            "gradient descent converges only sublinearly along them"
        )
    if n_pos == 0 and n_zero == 0:
        return "negative definite: a local maximum"
    return (
        f"indefinite with {n_neg} negative eigenvalue(s): a saddle point; "
        "gradient descent moves away from it along the negative directions"
    )


def spectrum(H, *, tol: float | None = None) -> Spectrum:
    """Eigen-decomposition summary of a symmetric matrix.

    Parameters
    ----------
    H : array_like, shape (n, n)
        Symmetric (checked to relative tolerance 1e-8) and finite.
    tol : float, optional
        Eigenvalues of absolute value at most ``tol`` are treated as zero.
        Default ``n * eps * max|lambda|``, as :func:`numpy.linalg.matrix_rank`.

    Returns
    -------
    Spectrum

    Examples
    --------
    >>> s = spectrum([[2.0, 0.0], [0.0, 8.0]])
    >>> s.lambda_min, s.lambda_max, s.condition_number
    (2.0, 8.0, 4.0)
    """
    H = np.asarray(H)
    if H.dtype == object or not (
        np.issubdtype(H.dtype, np.floating) or np.issubdtype(H.dtype, np.integer)
    ):
        raise TypeError(f"`H` must hold real numbers, got dtype {H.dtype}")
    H = H.astype(np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"`H` must be a non-empty square matrix, got {H.shape}")
    if not np.all(np.isfinite(H)):
        raise ValueError("`H` must be finite")
    scale = max(float(np.max(np.abs(H))), np.finfo(np.float64).tiny)
    asym = float(np.max(np.abs(H - H.T)))
    if asym > 1e-8 * scale:
        raise ValueError(f"`H` must be symmetric, got max |H - H.T| = {asym:.3g}")
    eigenvalues = np.linalg.eigvalsh(0.5 * (H + H.T))
    lmin, lmax = float(eigenvalues[0]), float(eigenvalues[-1])
    if tol is None:
        tol = H.shape[0] * np.finfo(np.float64).eps * max(abs(lmin), abs(lmax))
    elif not (tol >= 0.0):
        raise ValueError(f"`tol` must be >= 0, got {tol}")
    pd = lmin > tol
    kappa = lmax / lmin if pd else math.inf
    return Spectrum(
        eigenvalues,
        lmin,
        lmax,
        kappa,
        bool(pd),
        float(tol),
        _describe(eigenvalues, tol, kappa),
    )


@dataclass(frozen=True)
class GDRates:
    """Predicted learning rates and contraction factors on a quadratic.

    Attributes
    ----------
    lambda_min, lambda_max, kappa : float
        Extreme eigenvalues and condition number of the Hessian.
    lr_max : float
        ``2 / lambda_max``: plain GD diverges for any larger constant rate.
    lr_best : float
        ``2 / (lambda_min + lambda_max)``.
    rate : float
        ``(kappa - 1) / (kappa + 1)``: error contraction per step at ``lr_best``.
    heavy_ball_lr : float
        ``4 / (sqrt(lambda_max) + sqrt(lambda_min))**2``.
    heavy_ball_momentum : float
        ``((sqrt(kappa) - 1) / (sqrt(kappa) + 1))**2``.
    heavy_ball_rate : float
        ``(sqrt(kappa) - 1) / (sqrt(kappa) + 1)``.
    """

    lambda_min: float
    lambda_max: float
    kappa: float
    lr_max: float
    lr_best: float
    rate: float
    heavy_ball_lr: float
    heavy_ball_momentum: float
    heavy_ball_rate: float

    def rate_at(self, lr: float) -> float:
        """Contraction factor of plain GD at constant rate ``lr``.

        ``max(|1 - lr lambda_min|, |1 - lr lambda_max|)``; above 1 it diverges.
        """
        if not (lr > 0.0):
            raise ValueError(f"`lr` must be > 0, got {lr}")
        return max(abs(1.0 - lr * self.lambda_min), abs(1.0 - lr * self.lambda_max))


def gd_rates(H_or_spectrum) -> GDRates:
    """Optimal step sizes and predicted rates of GD and heavy ball on a quadratic.

    Parameters
    ----------
    H_or_spectrum : array_like of shape (n, n) or Spectrum
        The Hessian (symmetric positive definite) or its :func:`spectrum`.

    Returns
    -------
    GDRates

    Raises
    ------
    ValueError
        If the Hessian is not positive definite (no linear rate exists).

    Examples
    --------
    >>> r = gd_rates([[1.0, 0.0], [0.0, 9.0]])
    >>> r.lr_best, r.rate, r.heavy_ball_rate
    (0.2, 0.8, 0.5)
    """
    s = H_or_spectrum
    if not isinstance(s, Spectrum):
        s = spectrum(s)
    if not s.positive_definite:
        raise ValueError(
            "`H_or_spectrum` must be positive definite for a linear rate, got "
            f"lambda_min = {s.lambda_min:.6g}: {s.description}"
        )
    lmin, lmax, kappa = s.lambda_min, s.lambda_max, s.condition_number
    sk = math.sqrt(kappa)
    hb_rate = (sk - 1.0) / (sk + 1.0)
    return GDRates(
        lambda_min=lmin,
        lambda_max=lmax,
        kappa=kappa,
        lr_max=2.0 / lmax,
        lr_best=2.0 / (lmin + lmax),
        rate=(kappa - 1.0) / (kappa + 1.0),
        heavy_ball_lr=4.0 / (math.sqrt(lmax) + math.sqrt(lmin)) ** 2,
        heavy_ball_momentum=hb_rate**2,
        heavy_ball_rate=hb_rate,
    )


def steps_to_accuracy(rate: float, eps: float) -> float:
    """Steps ``k`` a linear rate needs to shrink the error by ``eps``.

    The smallest integer ``k`` with ``rate**k <= eps``: ``ceil(log eps / log
    rate)``. Returned as a float so that ``inf`` (``rate >= 1``) fits.

    Parameters
    ----------
    rate : float
        Contraction factor per step, ``rate >= 0``.
    eps : float
        Target relative error, ``0 < eps < 1``.

    Examples
    --------
    >>> steps_to_accuracy(0.5, 1e-3)
    10.0
    """
    for name, v in (("rate", rate), ("eps", eps)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"`{name}` must be a real number, got {v!r}")
    if not (rate >= 0.0):
        raise ValueError(f"`rate` must be >= 0, got {rate}")
    if not (0.0 < eps < 1.0):
        raise ValueError(f"`eps` must be in (0, 1), got {eps}")
    if rate >= 1.0:
        return math.inf
    if rate == 0.0:
        return 1.0
    k = math.ceil(math.log(eps) / math.log(rate))
    # Guard against log rounding putting k one step off.
    while k > 1 and rate ** (k - 1) <= eps:
        k -= 1
    while rate**k > eps:
        k += 1
    return float(k)


def _run_sequences(run):
    """(iterates or None, losses or None) from a result, History or sequence."""
    trajectory = getattr(run, "trajectory", None)
    losses = getattr(run, "losses", None)
    if trajectory is None and losses is None:
        loss_attr = getattr(run, "loss", None)
        if isinstance(loss_attr, Sequence | np.ndarray):
            losses = loss_attr
        elif isinstance(run, Sequence | np.ndarray):
            arr = np.asarray(run, dtype=np.float64)
            if arr.ndim == 2:
                trajectory = arr
            elif arr.ndim == 1:
                losses = arr
            else:
                raise ValueError(f"`run` must be 1-D or 2-D, got shape {arr.shape}")
        else:
            raise TypeError(
                "`run` must be an OptimizeResult with trajectory/losses, a History "
                f"or an array, got {type(run).__name__}"
            )
    if trajectory is not None:
        trajectory = np.asarray(trajectory, dtype=np.float64)
    if losses is not None:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    return trajectory, losses


# Limitation: the rate is the slope over the second half of the usable run, so
# a method that converges sublinearly (flat directions, Adagrad's shrinking
# steps) gets a number near 1 that depends on the run length, not a rate.
def _fit_tail_rate(errors: np.ndarray, floor: float) -> float:
    """exp(slope) of a least-squares line through log(errors) over the tail."""
    finite = np.isfinite(errors) & (errors > 0)
    usable = np.flatnonzero(finite & (errors > floor))
    stop = usable.size
    # Keep the leading run of usable points: after the error first reaches the
    # floor (or a non-finite value) the sequence is rounding noise, not a rate.
    breaks = np.flatnonzero(np.diff(usable) != 1)
    if breaks.size:
        stop = breaks[0] + 1
    usable = usable[:stop]
    if usable.size < 3:
        raise ValueError(
            f"need at least 3 errors above the rounding floor {floor:.2g} to fit a "
            f"rate, got {usable.size}"
        )
    tail = usable[usable.size // 2 :]
    if tail.size < 3:
        tail = usable[-3:]
    slope = np.polyfit(tail.astype(np.float64), np.log(errors[tail]), 1)[0]
    return float(math.exp(slope))


def convergence_rate(
    run, *, minimizer=None, minimum: float | None = None, of: str = "auto"
) -> float:
    r"""Measured linear convergence rate of a run, per iteration.

    Parameters
    ----------
    run : OptimizeResult, History, or array_like
        A :func:`gdcore.minimize` result (uses ``trajectory`` and ``losses``,
        so run it with ``return_trajectory=True``), a training ``History``
        (uses ``loss``), a 1-D sequence of losses or a 2-D array of iterates
        (one row per iteration).
    minimizer : array_like, optional
        :math:`x^*`, needed to measure the distance.
    minimum : float, optional
        :math:`f^*`, needed to measure the loss gap.
    of : {"auto", "distance", "loss"}, default "auto"
        What to fit. ``"auto"`` uses the distance when iterates and
        ``minimizer`` are available, otherwise the loss gap.

    Returns
    -------
    float
        The factor :math:`r` by which :math:`\lVert x_k - x^* \rVert` shrinks
        per iteration. From the loss gap the fitted factor is square-rooted,
        since near a minimum :math:`f - f^* \approx \tfrac12 e^T H e` shrinks
        at :math:`r^2`; both are thus comparable with :func:`gd_rates`.
        Values above 1 mean divergence.

    Notes
    -----
    The fit is a least-squares line through :math:`\log e_k` over the second
    half of the iterations whose error is finite and above a rounding floor
    (``1e3 * eps * (1 + ||x*||)`` for the distance, ``1e3 * eps * (1 + |f*|)``
    for the loss gap); the sequence is cut at the first point below the
    floor. The first half is discarded as the transient in which faster modes
    die out; what remains is linear on a log scale for a linearly convergent
    method, and the slope averages out oscillating modes.
    """
    if of not in ("auto", "distance", "loss"):
        raise ValueError(f"`of` must be 'auto', 'distance' or 'loss', got {of!r}")
    trajectory, losses = _run_sequences(run)
    if of == "auto":
        of = "distance" if trajectory is not None and minimizer is not None else "loss"
    eps = np.finfo(np.float64).eps
    if of == "distance":
        if trajectory is None or minimizer is None:
            raise ValueError("of='distance' needs iterates in `run` and `minimizer`")
        x_star = real_vector(minimizer, "minimizer")
        if trajectory.ndim != 2 or trajectory.shape[1] != x_star.size:
            raise ValueError(
                f"iterates must have shape (k, {x_star.size}), got {trajectory.shape}"
            )
        errors = np.linalg.norm(trajectory - x_star, axis=1)
        return _fit_tail_rate(errors, 1e3 * eps * (1.0 + np.linalg.norm(x_star)))
    if losses is None or minimum is None:
        raise ValueError("of='loss' needs losses in `run` and `minimum`")
    if not math.isfinite(minimum):
        raise ValueError(f"`minimum` must be finite, got {minimum}")
    gaps = losses - minimum
    return math.sqrt(_fit_tail_rate(gaps, 1e3 * eps * (1.0 + abs(minimum))))

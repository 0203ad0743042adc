"""Levenberg-Marquardt nonlinear least squares, curve fitting and network training.

The solver follows Moré's trust-region formulation of Levenberg-Marquardt (the
algorithm of MINPACK's ``lmder``), but each step is computed from a singular
value decomposition of the column-scaled Jacobian instead of a pivoted QR. One
decomposition per Jacobian serves every damping value tried at that point.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from gdcore._history import History
from gdcore._validation import real_vector

__all__ = ["LevenbergMarquardt", "curve_fit", "fit_lm", "least_squares"]

logger = logging.getLogger(__name__)

EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)

# Initial trust-region radius, relative to the scaled norm of x0 (MINPACK's factor).
_FACTOR = 100.0
# A trial step is accepted when the actual reduction is at least this fraction of
# the reduction predicted by the linear model.
_ACCEPT_RATIO = 1e-4
# Gauss-Newton refinement after convergence: steps up to this length relative to
# the scaled norm of x, at most this many of them.
_POLISH_STEP = 1e-6
_POLISH_STEPS = 5
# Initial damping of the network trainer, relative to the largest eigenvalue of
# the Gauss-Newton matrix.
_NIELSEN_TAU = 1e-3

STATUS_MESSAGES = {
    0: "The maximum number of function evaluations is exceeded.",
    1: "`gtol` termination condition is satisfied.",
    2: "`ftol` termination condition is satisfied.",
    3: "`xtol` termination condition is satisfied.",
    4: "Both `ftol` and `xtol` termination conditions are satisfied.",
}


class _Counted:
    """Residual function wrapper that counts every evaluation."""

    def __init__(self, fun, args, kwargs):
        self.fun, self.args, self.kwargs = fun, args, kwargs
        self.nfev = 0
        self.shape = None

    def __call__(self, x):
        self.nfev += 1
        r = np.atleast_1d(np.asarray(self.fun(x.copy(), *self.args, **self.kwargs)))
        if r.dtype.kind not in "biuf":
            raise TypeError(
                f"`residuals` must return real numbers, got dtype {r.dtype}"
            )
        if self.shape is None:
            self.shape = r.shape
        elif r.shape != self.shape:
            raise ValueError(
                f"`residuals` returned shape {r.shape}, earlier {self.shape}"
            )
        return r.astype(np.float64, copy=False)


def _fd_steps(x, rel):
    """Relative steps rel*|x_j|, and rel itself where x_j == 0, made exact."""
    h = rel * np.abs(x)
    h[h == 0.0] = rel
    return (x + h) - x


def _jac_2point(fun, x, r):
    """Forward differences; a column whose forward step is not finite goes back."""
    h = _fd_steps(x, math.sqrt(EPS))
    J = np.empty((r.size, x.size))
    for j in range(x.size):
        xj = x.copy()
        xj[j] += h[j]
        J[:, j] = (fun(xj) - r) / h[j]
        if not np.all(np.isfinite(J[:, j])):
            xj[j] = x[j] - h[j]
            J[:, j] = (r - fun(xj)) / h[j]
    return J


def _jac_3point(fun, x, r):
    """Central differences with relative steps eps**(1/3)*|x_j|."""
    h = _fd_steps(x, EPS ** (1 / 3))
    J = np.empty((r.size, x.size))
    for j in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp[j] += h[j]
        xm[j] -= h[j]
        J[:, j] = (fun(xp) - fun(xm)) / (xp[j] - xm[j])
    return J


def _lm_parameter(s, b, delta, par):
    """Damping ``par`` whose scaled step length is within 10% of ``delta``.

    ``s`` are the singular values of the scaled Jacobian ``J D^-1 = U S V^T`` and
    ``b = U^T r``. The scaled step is ``D p = -V c`` with
    ``c = s b / (s**2 + par)``, the exact solution of the damped problem
    ``min |J p + r|**2 + par |D p|**2``. Returns ``(par, c)``.
    """
    # Directions with singular values below this are left out (minimum norm).
    full = s > s[0] * EPS * s.size
    c = np.where(full, b / np.where(full, s, 1.0), 0.0)
    cnorm = np.linalg.norm(c)
    phi = cnorm - delta
    if phi <= 0.1 * delta:
        return 0.0, c

    # Safeguarding interval for Newton's iteration on 1/|c(par)| - 1/delta.
    par_low = 0.0
    if np.all(full):
        dnorm = np.sum(b**2 / s**4) / cnorm
        par_low = phi / delta * cnorm / dnorm
    gnorm = np.linalg.norm(s * b)
    par_up = gnorm / delta if gnorm > 0 else _TINY / min(delta, 0.1)
    par = min(max(par, par_low), par_up)
    if par == 0.0:
        par = gnorm / cnorm

    phi_prev = math.inf
    for _ in range(10):
        if par == 0.0:
            par = max(_TINY, 1e-3 * par_up)
        denom = s**2 + par
        c = s * b / denom
        cnorm = np.linalg.norm(c)
        phi = cnorm - delta
        # Rank deficient and already short of the radius: longer is impossible.
        if abs(phi) <= 0.1 * delta or (par_low == 0.0 and phi <= phi_prev < 0):
            break
        phi_prev = phi
        dnorm = np.sum((s * b) ** 2 / denom**3) / cnorm
        correction = phi / delta * cnorm / dnorm
        if phi > 0:
            par_low = max(par_low, par)
        else:
            par_up = min(par_up, par)
        par = max(par_low, par + correction)
    return par, c


class _Solver:
    """State of one Levenberg-Marquardt run; :meth:`iterate` takes one step."""

    def __init__(self, fun, jac, x, r, *, ftol, xtol, gtol, max_nfev, scale):
        self.fun, self.jac = fun, jac
        self.x, self.r = x, r
        self.ftol, self.xtol, self.gtol = ftol, xtol, gtol
        self.max_nfev = max_nfev
        self.njev = 1
        self.J = jac(x, r)
        self.J_at_x = True
        self.nit = 0
        self.fnorm = float(np.linalg.norm(r))
        self.par = 0.0
        self.jac_scaling = scale is None
        colnorms = np.linalg.norm(self.J, axis=0)
        self.diag = np.where(colnorms == 0, 1.0, colnorms) if scale is None else scale
        xnorm = np.linalg.norm(self.diag * x)
        self.delta = _FACTOR * xnorm if xnorm > 0 else _FACTOR

    def _gradient_norm(self, colnorms):
        if self.fnorm == 0.0:
            return 0.0
        g = np.abs(self.J.T @ self.r)
        nz = colnorms > 0
        return float(np.max(g[nz] / (colnorms[nz] * self.fnorm), initial=0.0))

    def iterate(self) -> int | None:
        """One outer iteration: returns a status code once a test stops the run."""
        self._ensure_jacobian()
        colnorms = np.linalg.norm(self.J, axis=0)
        gnorm = self._gradient_norm(colnorms)
        if gnorm <= self.gtol:
            return 1
        if self.jac_scaling:
            self.diag = np.maximum(self.diag, colnorms)

        Js = self.J / self.diag
        U, s, Vt = np.linalg.svd(Js, full_matrices=False)
        b = U.T @ self.r
        while True:
            # A trial step can overflow (far from the data, or a huge
            # Gauss-Newton step); its ratio is then <= 0 and it is rejected.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                status, accepted = self._trial(Js, s, Vt, b, gnorm)
            if status is not None:
                return status
            if accepted:
                return None

    def _trial(self, Js, s, Vt, b, gnorm):
        """Try one damped step; update the radius; run the convergence tests."""
        self.par, c = _lm_parameter(s, b, self.delta, self.par)
        q = -(Vt.T @ c)
        qnorm = float(np.linalg.norm(q))
        if self.nit == 0:
            self.delta = min(self.delta, qnorm)
        trial = self._evaluate(Js, q, qnorm)
        self._update_radius(trial["ratio"], trial["actred"], trial["dirder"], qnorm,
                            trial["fnorm"])  # fmt: skip
        return self._conclude(trial, trial["ratio"] >= _ACCEPT_RATIO, gnorm)

    def _evaluate(self, Js, q, qnorm):
        """Residuals at x + D^-1 q, and actual and predicted relative reductions."""
        x_new = self.x + q / self.diag
        r_new = self.fun(x_new)
        fnorm_new = float(np.linalg.norm(r_new))
        if not math.isfinite(fnorm_new):
            fnorm_new = math.inf
        actred = -1.0
        if 0.1 * fnorm_new < self.fnorm:
            actred = 1.0 - (fnorm_new / self.fnorm) ** 2

        # |r|^2 - |r + J p|^2 = |J p|^2 + 2 par |D p|^2, relative to |r|^2.
        lin = float(np.linalg.norm(Js @ q)) / self.fnorm
        damp = math.sqrt(self.par) * qnorm / self.fnorm
        prered = lin**2 + 2 * damp**2
        ratio = actred / prered if prered != 0 else 0.0
        dirder = -(lin**2 + damp**2)
        return {"x": x_new, "r": r_new, "fnorm": fnorm_new, "actred": actred,
                "prered": prered, "dirder": dirder, "ratio": ratio}  # fmt: skip

    def _conclude(self, trial, accepted, gnorm):
        """Move to an accepted trial point, then run the convergence tests."""
        if accepted:
            self.x, self.r, self.fnorm = trial["x"], trial["r"], trial["fnorm"]
            self.nit += 1
            self.J_at_x = False
        xnorm = float(np.linalg.norm(self.diag * self.x))
        status = self._tests(trial["actred"], trial["prered"], trial["ratio"], xnorm,
                             gnorm)  # fmt: skip
        return status, accepted

    def _ensure_jacobian(self):
        if not self.J_at_x:
            self.J = self.jac(self.x, self.r)
            self.njev += 1
            self.J_at_x = True

    def polish(self):
        """Gauss-Newton refinement below the noise floor of the cost.

        Once a tolerance test has stopped the run, cost differences are at the
        rounding level of the residuals and no longer rank nearby points. A
        full Gauss-Newton step whose scaled length is at most
        ``_POLISH_STEP * |D x|`` is then accepted when it lowers the scaled
        gradient norm, which stays informative below that floor, while the
        residual norm grows by at most a factor ``1 + sqrt(eps)``.
        """
        self._ensure_jacobian()
        gnorm = self._gradient_norm(np.linalg.norm(self.J, axis=0))
        for _ in range(_POLISH_STEPS):
            if gnorm == 0.0 or self.fun.nfev >= self.max_nfev:
                return
            Js = self.J / self.diag
            U, s, Vt = np.linalg.svd(Js, full_matrices=False)
            _, c = _lm_parameter(s, U.T @ self.r, math.inf, 0.0)
            q = -(Vt.T @ c)
            xnorm = np.linalg.norm(self.diag * self.x)
            if not np.linalg.norm(q) <= _POLISH_STEP * xnorm:
                return
            x_new = self.x + q / self.diag
            r_new = self.fun(x_new)
            fnorm_new = float(np.linalg.norm(r_new))
            if not fnorm_new <= self.fnorm * (1 + math.sqrt(EPS)):
                return
            J_new = self.jac(x_new, r_new)
            self.njev += 1
            colnorms = np.linalg.norm(J_new, axis=0)
            saved = self.J, self.r, self.fnorm
            self.J, self.r, self.fnorm = J_new, r_new, fnorm_new
            gnorm_new = self._gradient_norm(colnorms)
            if not gnorm_new < gnorm:
                self.J, self.r, self.fnorm = saved
                return
            self.x, gnorm = x_new, gnorm_new
            self.nit += 1

    def _update_radius(self, ratio, actred, dirder, qnorm, fnorm_new):
        """Moré's update of the trust-region radius from the gain ratio."""
        if ratio <= 0.25:
            shrink = 0.5 if actred >= 0 else 0.5 * dirder / (dirder + 0.5 * actred)
            if 0.1 * fnorm_new >= self.fnorm or not shrink >= 0.1:
                shrink = 0.1
            self.delta = shrink * min(self.delta, qnorm / 0.1)
            self.par /= shrink
        elif self.par == 0.0 or ratio >= 0.75:
            self.delta = qnorm / 0.5
            self.par *= 0.5

    def _tests(self, actred, prered, ratio, xnorm, gnorm):
        f_ok = abs(actred) <= self.ftol and prered <= self.ftol and 0.5 * ratio <= 1
        x_ok = self.delta <= self.xtol * xnorm
        if f_ok and x_ok:
            return 4
        if f_ok or x_ok:
            return 2 if f_ok else 3
        if self.fun.nfev >= self.max_nfev:
            return 0

        # Tolerances at machine precision: no further progress is possible.
        if abs(actred) <= EPS and prered <= EPS and 0.5 * ratio <= 1:
            return 2
        if self.delta <= EPS * xnorm:
            return 3
        if gnorm <= EPS:
            return 1
        return None


class _NielsenSolver(_Solver):
    """Levenberg-Marquardt with the damping ``mu`` set directly (Nielsen 1999).

    Each trial solves ``min |J p + r|**2 + mu |D p|**2`` for the current
    ``mu``. A step with gain ratio ``rho > 0`` is accepted and
    ``mu *= max(1/3, 1 - (2 rho - 1)**3)``; otherwise ``mu *= nu`` and ``nu``
    doubles (it restarts at 2 after a success). The first ``mu`` is
    ``_NIELSEN_TAU`` times the largest eigenvalue of ``(J D^-1)^T (J D^-1)``.
    The ``xtol`` test compares the length of the last step with ``norm(D x)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mu = None
        self.nu = 2.0

    def _trial(self, Js, s, Vt, b, gnorm):
        if self.mu is None:
            self.mu = _NIELSEN_TAU * s[0] ** 2
        self.par = self.mu
        q = -(Vt.T @ (s * b / (s**2 + self.mu)))
        self.delta = float(np.linalg.norm(q))
        trial = self._evaluate(Js, q, self.delta)
        rho = trial["ratio"]
        accepted = rho > 0
        if accepted:
            self.mu *= max(1 / 3, 1 - (2 * rho - 1) ** 3)
            self.nu = 2.0
        else:
            self.mu *= self.nu
            self.nu *= 2.0
        return self._conclude(trial, accepted, gnorm)


def _check_tol(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    if not (EPS <= value < math.inf):
        raise ValueError(
            f"`{name}` must be finite and at least machine epsilon ({EPS:.2e}), "
            f"got {value!r}"
        )
    return float(value)


def _check_scale(x_scale, n):
    if isinstance(x_scale, str):
        if x_scale != "jac":
            raise ValueError(f"`x_scale` must be 'jac' or an array, got {x_scale!r}")
        return None
    scale = np.asarray(x_scale, dtype=np.float64)
    if scale.ndim == 0:
        scale = np.full(n, float(scale))
    if scale.shape != (n,) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(
            f"`x_scale` must be 'jac' or positive finite values of shape ({n},), "
            f"got {x_scale!r}"
        )
    return 1.0 / scale


def _make_jac(jac, fun, args, kwargs, m, n):
    if jac is None or jac == "2-point":
        return lambda x, r: _jac_2point(fun, x, r)
    if jac == "3-point":
        return lambda x, r: _jac_3point(fun, x, r)
    if not callable(jac):
        raise ValueError(f"`jac` must be callable, '2-point' or '3-point', got {jac!r}")

    def evaluate(x, r):
        J = np.asarray(jac(x.copy(), *args, **kwargs), dtype=np.float64)
        if J.shape != (m, n):
            raise ValueError(f"`jac` must return shape ({m}, {n}), got {J.shape}")
        if not np.all(np.isfinite(J)):
            raise ValueError(f"`jac` returned non-finite values at x={x!r}")
        return J

    return evaluate


def _inverse_normal_matrix(J):
    """(J^T J)^-1 from an SVD of the column-scaled J; None when rank deficient."""
    colnorms = np.linalg.norm(J, axis=0)
    colnorms[colnorms == 0] = 1.0
    _, s, Vt = np.linalg.svd(J / colnorms, full_matrices=False)
    if s.size == 0 or s[-1] <= s[0] * EPS * max(J.shape):
        return None
    W = Vt.T / s
    return (W @ W.T) / np.outer(colnorms, colnorms)


def _covariance(J, cost, absolute=False):
    """s**2 (J^T J)^-1, s**2 = 2 cost / (m - n) or 1 if absolute; inf if undefined."""
    m, n = J.shape
    inverse = _inverse_normal_matrix(J)
    if inverse is None or (m == n and not absolute):
        return np.full((n, n), np.inf)
    return inverse if absolute else inverse * (2.0 * cost / (m - n))


def least_squares(
    residuals: Callable[..., Any],
    x0: Any,
    *,
    jac: Callable[..., Any] | str | None = None,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    max_nfev: int | None = None,
    x_scale: str | Any = "jac",
    args: tuple = (),
    kwargs: dict | None = None,
) -> OptimizeResult:
    r"""Minimise ``0.5 * sum(residuals(x)**2)`` by Levenberg-Marquardt.

    Parameters
    ----------
    residuals : callable
        ``residuals(x, *args, **kwargs)`` returns the m residuals (1-D, m >= n)
        at the n parameters ``x``.
    x0 : array_like of shape (n,)
        Finite starting point.
    jac : callable, '2-point', '3-point' or None, default None
        ``jac(x, *args, **kwargs)`` returns the (m, n) Jacobian of the residuals.
        None or '2-point' estimates it by forward differences, '3-point' by
        central differences (see Notes).
    ftol : float, default 1e-8
        Stop when both the actual and the predicted relative reduction of the
        cost in a step are at most ``ftol``.
    xtol : float, default 1e-8
        Stop when the trust-region radius is at most ``xtol * norm(D x)``,
        with ``D`` the variable scaling.
    gtol : float, default 1e-8
        Stop when the largest cosine between the residual vector and a column
        of the Jacobian, ``max |J_j^T r| / (|J_j| |r|)``, is at most ``gtol``.
        Each tolerance must be finite and at least machine epsilon.
    max_nfev : int or None, default None
        Budget of residual evaluations, counting those spent on finite
        differences. None means ``100 * n`` with a callable ``jac`` and
        ``100 * n * (n + 1)`` otherwise (the budget of SciPy's ``method="lm"``).
        The budget is checked after each trial step, so a finite-difference
        Jacobian can overrun it by its own evaluations, and the Jacobian at the
        solution (see Notes) by n more.
    x_scale : 'jac' or array_like of shape (n,), default 'jac'
        Characteristic scale of each variable. 'jac' scales by the column norms
        of the Jacobian, never decreasing during the run (Moré 1978).
    args, kwargs : tuple and dict, optional
        Extra arguments passed to ``residuals`` and a callable ``jac``.

    Returns
    -------
    OptimizeResult
        ``x``, ``cost`` (half the sum of squares), ``fun`` (residuals), ``jac``
        and ``grad`` (``J^T r``) at the solution, ``optimality`` (max-norm of
        ``grad``), ``nfev`` (every residual evaluation), ``njev`` (Jacobian
        evaluations, finite-difference ones included), ``nit`` (accepted
        steps), ``status``, ``message``, ``success`` (``status > 0``),
        ``cov`` (``s**2 (J^T J)^-1`` with ``s**2 = 2 cost / (m - n)``; inf
        when it cannot be estimated) and ``stderr`` (square root of its
        diagonal). ``cov`` is inf when ``m == n`` or the Jacobian at the
        solution is rank deficient (singular values below
        ``eps * max(m, n)`` times the largest, after column scaling).
        ``status`` is

        * 0: the evaluation budget ``max_nfev`` is exhausted;
        * 1: the ``gtol`` test is satisfied;
        * 2: the ``ftol`` test is satisfied;
        * 3: the ``xtol`` test is satisfied;
        * 4: both the ``ftol`` and the ``xtol`` tests are satisfied.

        When a test can no longer be satisfied because the step or the
        reduction has reached machine precision, the run stops with the status
        of that test.

    Raises
    ------
    TypeError
        If a tolerance is not a real number or ``x0`` is complex.
    ValueError
        If ``x0`` is not a finite non-empty 1-D array, a tolerance is out of
        range, ``max_nfev`` is not positive, ``x_scale`` is invalid, the
        residuals at ``x0`` are not a finite 1-D array with m >= n, or ``jac``
        returns the wrong shape or non-finite values.

    Notes
    -----
    With scaled variables ``z = D x`` and the radius :math:`\Delta`, each step
    solves

    .. math:: \min_p \|J p + r\|^2 + \mu \|D p\|^2,

    where :math:`\mu \ge 0` is chosen (Moré's safeguarded Newton iteration) so
    that :math:`\|D p\|` is within 10% of :math:`\Delta`, or is zero when the
    Gauss-Newton step already fits. The step comes from the SVD
    :math:`J D^{-1} = U S V^T` as :math:`D p = -V S (S^2 + \mu)^{-1} U^T r`;
    the normal equations are never formed. The gain ratio
    :math:`\rho` of actual to predicted reduction drives the radius: it
    shrinks (by a factor in [0.1, 0.5]) when :math:`\rho \le 1/4`, doubles
    relative to the step when :math:`\rho \ge 3/4`, and the step is accepted
    when :math:`\rho \ge 10^{-4}`. A trial point with non-finite residuals is
    rejected and the radius shrinks tenfold; NumPy's overflow, invalid and
    divide warnings are silenced while trial steps are computed and evaluated.

    Finite differences use the relative step ``sqrt(eps) * |x_j|`` (forward)
    or ``eps**(1/3) * |x_j|`` (central), and the absolute step ``sqrt(eps)`` or
    ``eps**(1/3)`` where ``x_j == 0``, so tiny parameters get tiny steps. A
    forward column whose values are not finite is retaken backwards.

    Once a tolerance test is met, cost differences are at the rounding level of
    the residuals and can no longer rank nearby points, yet the solution may
    still be a few digits short of the minimiser. Up to five Gauss-Newton
    refinement steps follow, each one only if its scaled length is at most
    ``1e-6 * norm(D x)``, and kept only if it lowers the scaled gradient norm
    without raising the residual norm by more than a factor ``1 + sqrt(eps)``.
    Each costs one residual and one Jacobian evaluation (counted, and within
    ``max_nfev``). On the NIST StRD problems this recovers the last digits that
    MINPACK reaches or misses depending on rounding.

    After the run the Jacobian is evaluated once more at the solution if the
    last accepted step moved ``x``; it feeds ``jac``, ``grad`` and ``cov``.

    References
    ----------
    .. [1] J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and
       theory", Numerical Analysis, Lecture Notes in Mathematics 630, 1978.
    .. [2] K. Madsen, H. B. Nielsen, O. Tingleff, "Methods for non-linear least
       squares problems", IMM, DTU, 2004.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 5)
    >>> res = least_squares(lambda b: b[0] * np.exp(b[1] * t) - 2 * np.exp(-t), [1, 0])
    >>> np.round(res.x, 6)
    array([ 2., -1.])
    """
    result, _ = _run(residuals, x0, jac, ftol, xtol, gtol, max_nfev, x_scale, args,
                     kwargs)  # fmt: skip
    return result


def _run(residuals, x0, jac, ftol, xtol, gtol, max_nfev, x_scale, args, kwargs,
         absolute=False):  # fmt: skip
    """Validate, solve, and assemble the result."""
    if not callable(residuals):
        raise TypeError(f"`residuals` must be callable, got {residuals!r}")
    x = real_vector(x0, "x0")
    n = x.size
    named = (("ftol", ftol), ("xtol", xtol), ("gtol", gtol))
    tols = [_check_tol(value, name) for name, value in named]
    if max_nfev is None:
        max_nfev = 100 * n if callable(jac) else 100 * n * (n + 1)
    elif isinstance(max_nfev, bool) or not isinstance(max_nfev, (int, np.integer)):
        raise TypeError(f"`max_nfev` must be an int or None, got {max_nfev!r}")
    elif max_nfev < 1:
        raise ValueError(f"`max_nfev` must be positive, got {max_nfev!r}")
    scale = _check_scale(x_scale, n)

    fun = _Counted(residuals, args, {} if kwargs is None else kwargs)
    r = fun(x)
    if r.ndim != 1 or r.size < n:
        raise ValueError(
            f"`residuals` must return a 1-D array of at least n={n} values, "
            f"got shape {r.shape}"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError("`residuals` are not finite at `x0`")
    jac_fn = _make_jac(jac, fun, args, fun.kwargs, r.size, n)
    solver = _Solver(fun, jac_fn, x, r, ftol=tols[0], xtol=tols[1], gtol=tols[2],
                     max_nfev=int(max_nfev), scale=scale)  # fmt: skip
    status = None
    while status is None:
        status = solver.iterate()
    if status > 0:
        solver.polish()
    return _result(solver, status, absolute), solver


def _result(solver, status, absolute=False):
    solver._ensure_jacobian()
    J, r = solver.J, solver.r
    cost = 0.5 * float(r @ r)
    grad = J.T @ r
    cov = _covariance(J, cost, absolute)
    logger.debug("least_squares stopped with status %d after %d evaluations",
                 status, solver.fun.nfev)  # fmt: skip
    return OptimizeResult(
        x=solver.x, cost=cost, fun=r, jac=J, grad=grad,
        optimality=float(np.max(np.abs(grad))), active_mask=np.zeros(J.shape[1], int),
        nfev=solver.fun.nfev, njev=solver.njev, nit=solver.nit, status=status,
        message=STATUS_MESSAGES[status], success=status > 0, cov=cov,
        stderr=np.sqrt(np.diag(cov)),
    )  # fmt: skip


def _check_data(ydata, sigma):
    """``ydata`` as a finite 1-D array and the weights ``1 / sigma``."""
    # Limitation: sigma is one standard deviation per observation; a full
    # covariance matrix of ydata (correlated errors) is not supported, because
    # weighting would then need its Cholesky factor instead of a row scaling.
    y = np.asarray(ydata, dtype=np.float64)
    if y.ndim != 1 or not np.all(np.isfinite(y)):
        raise ValueError(f"`ydata` must be a finite 1-D array, got shape {y.shape}")
    if sigma is None:
        return y, np.ones_like(y)
    sig = np.asarray(sigma, dtype=np.float64)
    if sig.shape != y.shape or not np.all(np.isfinite(sig) & (sig > 0)):
        raise ValueError(
            f"`sigma` must be positive finite values of shape {y.shape}, got {sigma!r}"
        )
    return y, 1.0 / sig


def curve_fit(
    f: Callable[..., Any],
    xdata: Any,
    ydata: Any,
    p0: Any,
    *,
    sigma: Any = None,
    absolute_sigma: bool = False,
    jac: Callable[..., Any] | str | None = None,
    full_output: bool = False,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, OptimizeResult]:
    """Fit ``f(xdata, *p)`` to ``ydata`` by weighted least squares.

    Parameters
    ----------
    f : callable
        ``f(xdata, *p)`` returns model values of the shape of ``ydata``.
    xdata : array_like
        Passed to ``f`` (and ``jac``) unchanged.
    ydata : array_like of shape (m,)
        Finite observations.
    p0 : array_like of shape (n,)
        Starting parameters, n <= m.
    sigma : array_like of shape (m,) or None, default None
        Positive standard deviations of ``ydata``; residuals are divided by it.
    absolute_sigma : bool, default False
        If True, ``sigma`` is absolute and ``pcov = (J^T J)^-1`` of the weighted
        Jacobian; otherwise the covariance is scaled by the reduced chi-square
        ``2 cost / (m - n)``, as in :func:`scipy.optimize.curve_fit`.
    jac : callable, '2-point', '3-point' or None, default None
        ``jac(xdata, *p)`` returns the (m, n) Jacobian of ``f``; or a
        finite-difference scheme (see :func:`least_squares`).
    full_output : bool, default False
        Also return the :func:`least_squares` result.
    **kwargs
        ``ftol``, ``xtol``, ``gtol``, ``max_nfev`` and ``x_scale`` of
        :func:`least_squares`.

    Returns
    -------
    popt : ndarray of shape (n,)
        Fitted parameters.
    pcov : ndarray of shape (n, n)
        Their covariance, inf where it cannot be estimated (with an
        :class:`scipy.optimize.OptimizeWarning`).
    result : OptimizeResult
        Only with ``full_output=True``.

    Raises
    ------
    ValueError
        If ``ydata`` or ``sigma`` are invalid, ``kwargs`` holds an unknown
        option, or as :func:`least_squares` does.
    RuntimeError
        If the evaluation budget runs out before a tolerance test is met.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6.0)
    >>> popt, pcov = curve_fit(lambda x, a, b: a * x + b, x, 2 * x + 1, [0, 0])
    >>> np.round(popt, 8)
    array([2., 1.])
    """
    allowed = {"ftol", "xtol", "gtol", "max_nfev", "x_scale"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise ValueError(f"`kwargs` holds unknown options {sorted(unknown)!r}")
    y, weight = _check_data(ydata, sigma)

    def residuals(p):
        model = np.asarray(f(xdata, *p), dtype=np.float64)
        return ((model - y) * weight).ravel()

    jac_fn = jac
    if callable(jac):

        def jac_fn(p):
            return np.asarray(jac(xdata, *p), dtype=np.float64) * weight[:, None]

    options = {"ftol": 1e-8, "xtol": 1e-8, "gtol": 1e-8, "max_nfev": None,
               "x_scale": "jac", **kwargs}  # fmt: skip
    result, _ = _run(residuals, p0, jac_fn, options["ftol"], options["xtol"],
                     options["gtol"], options["max_nfev"], options["x_scale"], (),
                     None, absolute=absolute_sigma)  # fmt: skip
    if not result.success:
        raise RuntimeError(f"Optimal parameters not found: {result.message}")
    if np.any(np.isinf(result.cov)):
        warnings.warn(
            "Covariance of the parameters could not be estimated",
            OptimizeWarning,
            stacklevel=2,
        )
    if full_output:
        return result.x, result.cov, result
    return result.x, result.cov


class LevenbergMarquardt:
    """Levenberg-Marquardt training of a network with the mean squared error loss.

    All weights are stepped together on the residuals
    ``(model.forward(X) - y).ravel()``, with the Jacobian of the outputs that
    ``model.jacobian(X)`` computes by backpropagation. Each step solves
    ``min |J p + r|**2 + mu |p|**2`` through an SVD of ``J``; the damping
    ``mu`` follows Nielsen's gain-ratio rule (start ``1e-3`` times the largest
    eigenvalue of ``J^T J``; after a step with gain ratio ``rho > 0``,
    ``mu *= max(1/3, 1 - (2 rho - 1)**3)``; after a rejected one ``mu`` grows
    by 2, 4, 8, ...). One epoch is one accepted step.

    Parameters
    ----------
    model : gdcore.nn.MLP or gdcore.reference.MLP
        A network built with ``loss="mse"``; ``model.flat_params`` is updated
        in place.
    max_jacobian_elements : int, default 50_000_000
        Refuse to train when ``n_samples * n_outputs * model.n_params``
        exceeds this (see Notes).

    Notes
    -----
    The dense Jacobian has ``n_samples * n_outputs`` rows and ``model.n_params``
    columns, held in float64 together with its thin SVD: about three times
    ``8 * rows * columns`` bytes, and ``O(rows * columns**2)`` work per epoch.
    The default limit (400 MB for the Jacobian alone) suits networks of up to a
    few thousand weights on a few thousand samples.

    Unlike :func:`least_squares`, the weights are not scaled by the column
    norms of the Jacobian: on networks, the non-decreasing column scaling of
    curve fitting keeps early, large norms and over-damps later steps (on the
    diabetes data it reached a training mse about 15% higher).
    """

    # Limitation: the whole Jacobian is formed and decomposed in memory, so the
    # trainer is for small networks and data sets; see max_jacobian_elements.

    def __init__(self, model: Any, *, max_jacobian_elements: int = 50_000_000):
        for name in ("forward", "jacobian", "flat_params"):
            if not hasattr(model, name):
                raise TypeError(f"`model` has no `{name}`; got {type(model).__name__}")
        loss_name = getattr(model, "loss_name", "mse")
        if loss_name != "mse":
            raise ValueError(f"`model` must use the mse loss, got {loss_name!r}")
        if isinstance(max_jacobian_elements, bool) or not isinstance(
            max_jacobian_elements, (int, np.integer)
        ):
            raise TypeError(
                f"`max_jacobian_elements` must be an int, got {max_jacobian_elements!r}"
            )
        self.model = model
        self.max_jacobian_elements = int(max_jacobian_elements)
        self.nfev = 0
        self.njev = 0

    def _data(self, X, y):
        model = self.model
        X = np.asarray(X, dtype=model.flat_params.dtype)
        if X.ndim != 2:
            raise ValueError(f"`X` must be 2-D, got shape {X.shape}")
        y = np.asarray(y, dtype=np.float64)
        k = model.forward(X[:1]).shape[1]
        if y.ndim == 1 and k == 1:
            y = y[:, None]
        if y.shape != (X.shape[0], k):
            raise ValueError(f"`y` must have shape ({X.shape[0]}, {k}), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("`y` must be finite")
        size = y.size * model.flat_params.size
        if size > self.max_jacobian_elements:
            raise ValueError(
                f"the Jacobian would have {size} elements, more than "
                f"`max_jacobian_elements`={self.max_jacobian_elements}"
            )
        return X, y

    def _problem(self, X, Y):
        params = self.model.flat_params

        def residuals(w):
            params[...] = w
            return (self.model.forward(X) - Y).ravel()

        def jacobian(w, r):
            params[...] = w
            J = np.asarray(self.model.jacobian(X), dtype=np.float64)
            if not np.all(np.isfinite(J)):
                raise FloatingPointError("the Jacobian of the network is not finite")
            return J

        return residuals, jacobian

    def fit(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 100,
        tol: float | None = None,
        callback: Callable[[int, History], None] | None = None,
    ) -> History:
        """Train for at most ``epochs`` accepted steps; see :func:`fit_lm`."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)):
            raise TypeError(f"`epochs` must be an int, got {epochs!r}")
        if epochs < 1:
            raise ValueError(f"`epochs` must be at least 1, got {epochs!r}")
        if tol is not None and not (0.0 <= float(tol) < math.inf):
            raise ValueError(f"`tol` must be a finite number >= 0 or None, got {tol!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be callable, got {callback!r}")
        X, Y = self._data(X, y)

        start = time.perf_counter()
        history = History()
        residuals, jacobian = self._problem(X, Y)
        fun = _Counted(residuals, (), {})
        w = self.model.flat_params.astype(np.float64)
        r = fun(w)
        if not np.all(np.isfinite(r)):
            history.status = "diverged"
            history.message = "the initial outputs of the network are not finite"
            history.time = time.perf_counter() - start
            return history
        solver = _NielsenSolver(fun, jacobian, w, r, ftol=EPS, xtol=EPS, gtol=EPS,
                                max_nfev=math.inf, scale=np.ones(w.size))  # fmt: skip
        try:
            self._epochs(solver, history, epochs, tol, callback)
        finally:
            self.model.flat_params[...] = solver.x
            self.nfev, self.njev = fun.nfev, solver.njev
            history.time = time.perf_counter() - start
        logger.info("fit_lm: %s", history.message)
        return history

    def _epochs(self, solver, history, epochs, tol, callback):
        m = solver.r.size
        for epoch in range(1, epochs + 1):
            x_prev, loss_prev = solver.x, solver.fnorm**2 / m
            try:
                status = solver.iterate()
            except FloatingPointError as exc:
                history.status, history.message = "diverged", f"{exc}; stopped"
                return
            if solver.x is not x_prev:
                history.epochs = history.iterations = epoch
                history.loss.append(solver.fnorm**2 / m)
                if callback is not None:
                    callback(epoch, history)
            if status is not None:
                history.status = "converged"
                history.message = (
                    f"converged after {history.epochs} epochs: no step lowers the "
                    f"loss any more ({STATUS_MESSAGES[status]})"
                )
                return
            loss = history.loss[-1]
            if tol is not None and _small_change(
                solver.x, x_prev, loss, loss_prev, tol
            ):
                history.status = "converged"
                history.message = (
                    f"converged after {epoch} epochs: the change of the loss or of "
                    f"the parameters fell below tol={tol:g}"
                )
                return
        history.status = "max_epochs"
        history.message = f"reached the maximum of {epochs} epochs"


def _small_change(x, x_prev, loss, loss_prev, tol):
    if abs(loss - loss_prev) <= tol * max(1.0, abs(loss_prev)):
        return True
    return np.max(np.abs(x - x_prev)) <= tol * max(1.0, np.max(np.abs(x_prev)))


def fit_lm(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 100,
    tol: float | None = None,
    callback: Callable[[int, History], None] | None = None,
    max_jacobian_elements: int = 50_000_000,
) -> History:
    """Train ``model`` (mse loss) on ``(X, y)`` by Levenberg-Marquardt.

    Parameters
    ----------
    model : gdcore.nn.MLP or gdcore.reference.MLP
        Network built with ``loss="mse"``; its parameters are updated in place.
    X : array_like of shape (n_samples, n_inputs)
        Inputs, converted to the model's dtype.
    y : array_like of shape (n_samples,) or (n_samples, n_outputs)
        Finite targets.
    epochs : int, default 100
        Maximum number of Levenberg-Marquardt iterations (accepted steps).
    tol : float or None, default None
        Stop with status ``"converged"`` once the loss changes by at most
        ``tol * max(1, |previous loss|)``, or no parameter moves by more than
        ``tol * max(1, max |previous parameter|)``, in an epoch. The run also
        converges when no step can lower the loss any more.
    callback : callable, optional
        Called as ``callback(epoch, history)`` after each epoch.
    max_jacobian_elements : int, default 50_000_000
        Size limit of the dense Jacobian (see :class:`LevenbergMarquardt`).

    Returns
    -------
    History
        ``loss`` holds the model's mse (mean over all elements of the squared
        error) after each epoch; ``epochs`` and ``iterations`` count the
        accepted steps; ``status`` is ``"converged"``, ``"max_epochs"`` or
        ``"diverged"`` (the initial outputs are not finite).

    Raises
    ------
    TypeError
        If the model lacks the network interface or an argument has the wrong
        type.
    ValueError
        If the model does not use the mse loss, the data do not fit it, or the
        Jacobian would exceed ``max_jacobian_elements``.
    """
    trainer = LevenbergMarquardt(model, max_jacobian_elements=max_jacobian_elements)
    return trainer.fit(X, y, epochs=epochs, tol=tol, callback=callback)

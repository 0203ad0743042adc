"""Test problems with known minimisers, exact gradients and exact Hessians.

Every problem exposes the same small interface, which :func:`gdcore.minimize`,
:mod:`gdcore.analysis` and :mod:`gdcore.plot` rely on:

``value(x)``
    The objective. ``x`` may carry leading batch axes, shape ``(..., dim)``, so a
    contour grid is evaluated in one call.
``grad(x)``, ``hessian(x)``
    Exact first and second derivatives at one point of shape ``(dim,)``.
``minimizer``, ``minimum``
    The known global minimiser and the value there (``None`` when there is none).
``x0``, ``dim``, ``name``
    A default starting point, the dimension and a short name.

Examples
--------
>>> from gdcore.problems import Rosenbrock
>>> p = Rosenbrock()
>>> float(p.value(p.minimizer)), p.x0.tolist()
(0.0, [-1.2, 1.0])
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Problem", "Quadratic", "Rosenbrock", "Beale", "LinearRegression"]


def _as_float_array(value, name: str) -> np.ndarray:
    """Convert to a float64 array, raising TypeError for non-real input."""
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


class Problem:
    """Base class: shape checks shared by all test problems."""

    name = "problem"

    def __init__(self, dim: int, x0) -> None:
        self.dim = int(dim)
        self.x0 = self._point(x0, "x0")

    def _points(self, x, name: str = "x") -> np.ndarray:
        """Check ``x`` has shape (..., dim) and return it as float64."""
        x = _as_float_array(x, name)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"`{name}` must have shape (..., {self.dim}), got shape {x.shape}"
            )
        return x

    def _point(self, x, name: str = "x") -> np.ndarray:
        """Check ``x`` has shape (dim,) and return it as float64."""
        x = self._points(x, name)
        if x.ndim != 1:
            raise ValueError(f"`{name}` must have shape ({self.dim},), got {x.shape}")
        return x

    def __call__(self, x) -> np.ndarray | float:
        return self.value(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class Quadratic(Problem):
    r"""The quadratic :math:`f(x) = \tfrac12 x^T H x - b^T x`.

    Parameters
    ----------
    H : array_like, shape (n, n)
        Symmetric matrix (checked to a relative tolerance of 1e-10; the mean of
        ``H`` and ``H.T`` is stored).
    b : array_like, shape (n,), optional
        Linear term; zero by default.
    x0 : array_like, shape (n,), optional
        Starting point; ``minimizer + 1`` (all ones when ``b`` is zero) by default.

    Attributes
    ----------
    minimizer : ndarray or None
        :math:`H^{-1} b` when ``H`` is positive definite, otherwise ``None`` (the
        problem is unbounded below or its minimiser is not unique).
    minimum : float or None
        :math:`-\tfrac12 b^T H^{-1} b`, or ``None`` with ``minimizer``.

    Raises
    ------
    ValueError
        If ``H`` is not square, not symmetric or not finite, or ``b`` has the
        wrong shape.
    """

    name = "quadratic"

    def __init__(self, H, b=None, *, x0=None) -> None:
        H = _as_float_array(H, "H")
        if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
            raise ValueError(f"`H` must be a non-empty square matrix, got {H.shape}")
        if not np.all(np.isfinite(H)):
            raise ValueError("`H` must be finite, got non-finite entries")
        scale = max(float(np.max(np.abs(H))), np.finfo(np.float64).tiny)
        if np.max(np.abs(H - H.T)) > 1e-10 * scale:
            raise ValueError(
                "`H` must be symmetric, got max |H - H.T| = "
                f"{np.max(np.abs(H - H.T)):.3g}"
            )
        n = H.shape[0]
        b = np.zeros(n) if b is None else _as_float_array(b, "b")
        if b.shape != (n,) or not np.all(np.isfinite(b)):
            raise ValueError(f"`b` must be finite with shape ({n},), got {b.shape}")
        self.H = 0.5 * (H + H.T)
        self.b = b
        self.eigenvalues = np.linalg.eigvalsh(self.H)
        if self.eigenvalues[0] > 0:
            self.minimizer = np.linalg.solve(self.H, b)
            self.minimum = float(-0.5 * b @ self.minimizer)
        else:
            self.minimizer = None
            self.minimum = None
        if x0 is None:
            x0 = np.ones(n) if self.minimizer is None else self.minimizer + 1.0
        super().__init__(n, x0)

    @classmethod
    def with_condition_number(
        cls, kappa: float, dim: int, seed=None, *, spacing: str = "linear"
    ) -> Quadratic:
        """A random quadratic whose Hessian has eigenvalues from 1 to ``kappa``.

        Parameters
        ----------
        kappa : float
            Condition number, ``1 <= kappa <= 1e12``.
        dim : int
            Dimension, ``dim >= 2`` (``dim == 1`` is allowed when ``kappa == 1``).
        seed : int or numpy.random.Generator, optional
            Seed of the random orthogonal eigenbasis (QR of a Gaussian matrix,
            with the signs fixed so the basis is uniformly distributed).
        spacing : {"linear", "log"}, default "linear"
            How the eigenvalues between 1 and ``kappa`` are spread.

        Returns
        -------
        Quadratic
            With ``b = 0``: minimiser at the origin, minimum 0, start at all ones.
        """
        if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real):
            raise TypeError(f"`kappa` must be a real number, got {kappa!r}")
        # Beyond 1e12 rounding of the rotated Hessian (about eps * kappa relative to
        # lambda_min) would blur the smallest eigenvalue, and the quadratic with it.
        if not (1.0 <= kappa <= 1e12):
            raise ValueError(f"`kappa` must be in [1, 1e12], got {kappa}")
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"`dim` must be an int, got {dim!r}")
        if dim < 1 or (dim == 1 and kappa != 1.0):
            raise ValueError(f"`dim` must be >= 2 (or 1 with kappa 1), got {dim}")
        if spacing not in ("linear", "log"):
            raise ValueError(f"`spacing` must be 'linear' or 'log', got {spacing!r}")
        rng = np.random.default_rng(seed)
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        spread = np.linspace if spacing == "linear" else np.geomspace
        eigenvalues = spread(1.0, float(kappa), dim)
        return cls((q * eigenvalues) @ q.T)

    def value(self, x):
        """Objective at ``x`` of shape (..., n)."""
        x = self._points(x)
        out = 0.5 * np.einsum("...i,ij,...j->...", x, self.H, x) - x @ self.b
        return float(out) if out.ndim == 0 else out

    def grad(self, x) -> np.ndarray:
        """Gradient :math:`H x - b` at ``x`` of shape (n,)."""
        return self.H @ self._point(x) - self.b

    def hessian(self, x) -> np.ndarray:
        """The constant Hessian ``H`` (a copy)."""
        self._point(x)
        return self.H.copy()


class Rosenbrock(Problem):
    r"""The n-dimensional Rosenbrock function.

    .. math::

        f(x) = \sum_{i=1}^{n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2

    Minimiser at all ones, minimum 0; default start ``(-1.2, 1, -1.2, 1, ...)``.
    Its Hessian at the minimiser is ill-conditioned (kappa about 2508 for n = 2).

    Parameters
    ----------
    n : int, default 2
        Dimension, ``n >= 2``.
    """

    name = "rosenbrock"

    def __init__(self, n: int = 2) -> None:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"`n` must be an int, got {n!r}")
        if n < 2:
            raise ValueError(f"`n` must be >= 2, got {n}")
        self.minimizer = np.ones(n)
        self.minimum = 0.0
        super().__init__(n, np.where(np.arange(n) % 2 == 0, -1.2, 1.0))

    def value(self, x):
        """Objective at ``x`` of shape (..., n)."""
        x = self._points(x)
        head, tail = x[..., :-1], x[..., 1:]
        out = np.sum(100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2, axis=-1)
        return float(out) if out.ndim == 0 else out

    def grad(self, x) -> np.ndarray:
        """Exact gradient at ``x`` of shape (n,)."""
        x = self._point(x)
        head, tail = x[:-1], x[1:]
        inner = tail - head**2
        g = np.zeros_like(x)
        g[:-1] = -400.0 * head * inner - 2.0 * (1.0 - head)
        g[1:] += 200.0 * inner
        return g

    def hessian(self, x) -> np.ndarray:
        """Exact (tridiagonal) Hessian at ``x`` of shape (n,)."""
        x = self._point(x)
        n = self.dim
        diag = np.zeros(n)
        diag[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
        diag[1:] += 200.0
        off = -400.0 * x[:-1]
        return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


class Beale(Problem):
    r"""Beale's function of two variables.

    .. math::

        f(x, y) = \sum_{i=1}^{3} (c_i - x + x y^i)^2, \quad
        c = (1.5, 2.25, 2.625)

    Minimiser ``(3, 0.5)``, minimum 0; default start ``(1, 1)``.
    """

    name = "beale"
    _c = np.array([1.5, 2.25, 2.625])

    def __init__(self) -> None:
        self.minimizer = np.array([3.0, 0.5])
        self.minimum = 0.0
        super().__init__(2, [1.0, 1.0])

    def _residuals(self, x, y):
        """Residuals r_i = c_i - x + x y^i, stacked on a last axis."""
        powers = np.stack([y, y**2, y**3], axis=-1)
        return self._c - x[..., None] + x[..., None] * powers

    def value(self, x):
        """Objective at ``x`` of shape (..., 2)."""
        x = self._points(x)
        out = np.sum(self._residuals(x[..., 0], x[..., 1]) ** 2, axis=-1)
        return float(out) if out.ndim == 0 else out

    def grad(self, x) -> np.ndarray:
        """Exact gradient at ``x`` of shape (2,)."""
        x = self._point(x)
        r, jac = self._residuals_and_jacobian(x)
        return 2.0 * jac.T @ r

    def hessian(self, x) -> np.ndarray:
        """Exact Hessian at ``x`` of shape (2,)."""
        x = self._point(x)
        r, jac = self._residuals_and_jacobian(x)
        i = np.arange(1, 4)
        d2r_xy = i * x[1] ** (i - 1)
        d2r_yy = i * (i - 1) * x[0] * x[1] ** np.maximum(i - 2, 0)
        second = np.array([[0.0, r @ d2r_xy], [r @ d2r_xy, r @ d2r_yy]])
        return 2.0 * (jac.T @ jac + second)

    def _residuals_and_jacobian(self, x):
        """Residuals (3,) and their Jacobian (3, 2) at one point."""
        i = np.arange(1, 4)
        r = self._residuals(x[0], x[1])
        jac = np.column_stack([x[1] ** i - 1.0, i * x[0] * x[1] ** (i - 1)])
        return r, jac


class LinearRegression(Problem):
    r"""Least squares :math:`f(w) = \tfrac{1}{2n} \lVert X w - y \rVert^2`.

    Parameters
    ----------
    X : array_like, shape (n_samples, n_features)
        Design matrix (finite).
    y : array_like, shape (n_samples,)
        Targets (finite).

    Notes
    -----
    The minimiser is computed with :func:`numpy.linalg.lstsq` (the minimum-norm
    one when ``X`` is rank deficient). The Hessian is :math:`X^T X / n`; the
    default start is the zero vector.
    """

    name = "linear-regression"

    def __init__(self, X, y) -> None:
        X = _as_float_array(X, "X")
        y = _as_float_array(y, "y")
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"`X` must be a non-empty 2-D array, got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"`y` must have shape ({X.shape[0]},) to match `X`, got {y.shape}"
            )
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("`X` and `y` must be finite")
        self.X, self.y = X, y
        self.n_samples = X.shape[0]
        self.minimizer = np.linalg.lstsq(X, y, rcond=None)[0]
        super().__init__(X.shape[1], np.zeros(X.shape[1]))
        self.minimum = float(self.value(self.minimizer))

    def value(self, x):
        """Objective at ``x`` of shape (..., n_features)."""
        w = self._points(x)
        residual = w @ self.X.T - self.y
        out = 0.5 / self.n_samples * np.sum(residual**2, axis=-1)
        return float(out) if out.ndim == 0 else out

    def grad(self, x) -> np.ndarray:
        """Gradient :math:`X^T (X w - y) / n` at ``x`` of shape (n_features,)."""
        w = self._point(x)
        return self.X.T @ (self.X @ w - self.y) / self.n_samples

    def hessian(self, x) -> np.ndarray:
        """The constant Hessian :math:`X^T X / n`."""
        self._point(x)
        return self.X.T @ self.X / self.n_samples

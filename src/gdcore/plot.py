"""Pictures of optimisation runs: paths on contour lines, loss curves, learning rates.

matplotlib is an optional dependency (``pip install gdcore[plot]``); it is imported
only when a function here is called. Every function builds a new
:class:`matplotlib.figure.Figure` without going through ``pyplot`` (so no global
figure registry and no window) and returns it; save it with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["trajectories", "loss_curves", "learning_rates"]


def _figure(**kwargs):
    """A new matplotlib Figure, or an ImportError naming the plot extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "gdcore.plot needs matplotlib; install it with `pip install gdcore[plot]`"
        ) from exc
    return Figure(**kwargs)


def _path(label: str, run) -> np.ndarray:
    """The iterates of one run as an (k, 2) float array."""
    trajectory = getattr(run, "trajectory", None)
    if trajectory is None and hasattr(run, "x") and hasattr(run, "nit"):
        raise ValueError(
            f"run `{label}` has no trajectory: call minimize(..., "
            "return_trajectory=True)"
        )
    path = np.asarray(run if trajectory is None else trajectory, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] == 0:
        raise ValueError(
            f"run `{label}` must hold iterates of shape (k, 2), got {path.shape}"
        )
    return path


def _losses(label: str, run) -> np.ndarray:
    """The loss sequence of a result, a History or a plain sequence."""
    for attr in ("losses", "loss"):
        values = getattr(run, attr, None)
        if values is not None and not callable(values):
            break
    else:
        if hasattr(run, "x") and hasattr(run, "nit"):
            raise ValueError(
                f"run `{label}` has no losses: call minimize(..., "
                "return_trajectory=True)"
            )
        values = run
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"losses of `{label}` must be a non-empty 1-D sequence")
    return arr


def _check_runs(runs, name: str) -> None:
    """A non-empty mapping from labels to runs."""
    if not isinstance(runs, Mapping):
        raise TypeError(f"`{name}` must be a dict label -> run, got {runs!r}")
    if len(runs) == 0:
        raise ValueError(f"`{name}` must hold at least one run")


def _bounds(problem, paths: Sequence[np.ndarray]):
    """Axis limits around the start, the minimiser and the non-diverging points.

    Points where the objective rose above twice its starting gap are left out,
    so a diverging run does not zoom the picture out to nothing.
    """
    anchors = [np.asarray(problem.x0, dtype=np.float64)]
    if problem.minimizer is not None:
        anchors.append(np.asarray(problem.minimizer, dtype=np.float64))
    points = [np.vstack(anchors)]
    f_ref = problem.minimum if problem.minimum is not None else 0.0
    start_gap = abs(float(problem.value(anchors[0])) - f_ref)
    for path in paths:
        finite = path[np.all(np.isfinite(path), axis=1)]
        if finite.size:
            # Far-out points of a diverged run may overflow: they are dropped.
            with np.errstate(over="ignore", invalid="ignore"):
                gap = np.abs(problem.value(finite) - f_ref)
            points.append(finite[gap <= 2.0 * start_gap + 1e-12])
    allp = np.vstack(points)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    margin = 0.15 * np.maximum(hi - lo, 0.5)
    return lo - margin, hi + margin


def _contours(ax, problem, lo, hi, n_levels: int = 20) -> None:
    """Log-spaced contour lines of the objective's gap over [lo, hi]."""
    xs = np.linspace(lo[0], hi[0], 200)
    ys = np.linspace(lo[1], hi[1], 200)
    gx, gy = np.meshgrid(xs, ys)
    values = problem.value(np.stack([gx, gy], axis=-1))
    offset = problem.minimum if problem.minimum is not None else values.min()
    gap = values - offset
    positive = gap[gap > 0]
    low = max(positive.min(), 1e-12 * positive.max()) if positive.size else 1e-12
    high = max(positive.max(), 10.0 * low) if positive.size else 1.0
    levels = np.geomspace(low, high, n_levels)
    ax.contour(
        gx, gy, np.maximum(gap, low), levels=levels, colors="0.7", linewidths=0.6
    )


def _draw_paths(ax, problem, runs: Mapping) -> None:
    """Contours, one labelled path per run, the start and the minimiser."""
    dim = getattr(problem, "dim", None)
    if dim != 2:
        raise ValueError(f"`problem` must be 2-D to draw paths, got dim={dim}")
    paths = [_path(str(label), run) for label, run in runs.items()]
    lo, hi = _bounds(problem, paths)
    _contours(ax, problem, lo, hi)
    for (label, _), path in zip(runs.items(), paths, strict=True):
        ax.plot(
            path[:, 0],
            path[:, 1],
            marker=".",
            markersize=2,
            linewidth=1,
            label=f"{label} ({path.shape[0] - 1} steps)",
        )
    if problem.minimizer is not None:
        ax.plot(
            *problem.minimizer,
            marker="*",
            markersize=12,
            color="k",
            linestyle="none",
            label="minimizer",
        )
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="best", fontsize="small")


def trajectories(problem, runs: Mapping, *, title: str | None = None):
    """Paths of several runs on the contour lines of a 2-D problem.

    Parameters
    ----------
    problem : gdcore.problems.Problem
        A 2-D problem (``value`` accepting shape (..., 2), ``x0``,
        ``minimizer``, ``minimum``).
    runs : dict
        Label -> :func:`gdcore.minimize` result made with
        ``return_trajectory=True``, or an array of iterates of shape (k, 2).
    title : str, optional
        Axes title; the problem's name by default.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: log-spaced contours of :math:`f - f^*`, one line per run
        (legend label ``"<label> (<steps> steps)"``) and the minimiser (``*``).
    """
    _check_runs(runs, "runs")
    fig = _figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    _draw_paths(ax, problem, runs)
    ax.set_title(title if title is not None else getattr(problem, "name", ""))
    return fig


def _draw_losses(ax, histories: Mapping, minimum: float | None) -> None:
    """One log-scale loss (or loss gap) curve per run."""
    for label, run in histories.items():
        losses = _losses(str(label), run)
        values = losses - minimum if minimum is not None else losses
        ax.plot(np.arange(values.size), values, linewidth=1, label=str(label))
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss" if minimum is None else "$f(x_k) - f^*$")
    ax.legend(loc="best", fontsize="small")


def loss_curves(
    histories: Mapping, *, minimum: float | None = None, title: str | None = None
):
    """Loss against iterations, log scale, for several runs.

    Parameters
    ----------
    histories : dict
        Label -> :func:`gdcore.minimize` result (``losses``, from
        ``return_trajectory=True``), a training ``History`` (``loss``) or a 1-D
        sequence of losses.
    minimum : float, optional
        If given, the gap ``loss - minimum`` is drawn instead of the loss, which
        shows linear convergence as a straight line.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with a log y-axis and one labelled line per run. Non-positive
        values are not drawn (log scale).
    """
    _check_runs(histories, "histories")
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _draw_losses(ax, histories, minimum)
    if title is not None:
        ax.set_title(title)
    return fig


def learning_rates(
    problem,
    optimizer,
    lrs: Sequence[float],
    *,
    max_iter: int = 300,
    tol: float = 1e-8,
    **hyperparameters,
):
    """The same method with several learning rates: paths and loss gaps.

    Parameters
    ----------
    problem : gdcore.problems.Problem
        Any problem; the paths panel is drawn only when ``problem.dim == 2``.
    optimizer : str or class
        As for :func:`gdcore.minimize` (``"sgd"``, ``"adam"``, ... or a class).
    lrs : sequence of float
        Learning rates, e.g. too small, good and too large; at least one.
    max_iter, tol : int, float
        Passed to :func:`gdcore.minimize` (a short run is enough to see the
        difference).
    **hyperparameters
        Further optimizer hyperparameters (``momentum``, ``betas``, ...).

    Returns
    -------
    matplotlib.figure.Figure
        For a 2-D problem two axes (paths, then loss gaps), otherwise one;
        one line per learning rate labelled ``"lr=<value>"`` plus its status.
    """
    from gdcore._minimize import minimize

    lrs = list(lrs)
    if not lrs:
        raise ValueError(f"`lrs` must hold at least one learning rate, got {lrs}")
    runs = {}
    for lr in lrs:
        res = minimize(
            problem.value,
            problem.x0,
            grad=problem.grad,
            optimizer=optimizer,
            max_iter=max_iter,
            tol=tol,
            return_trajectory=True,
            lr=lr,
            **hyperparameters,
        )
        runs[f"lr={lr:.3g} {res.status}"] = res
    two_d = getattr(problem, "dim", None) == 2
    fig = _figure(figsize=(11.0 if two_d else 6.4, 4.6), layout="constrained")
    if two_d:
        _draw_paths(fig.add_subplot(1, 2, 1), problem, runs)
    ax = fig.add_subplot(1, 2, 2) if two_d else fig.add_subplot()
    _draw_losses(ax, runs, problem.minimum)
    name = optimizer if isinstance(optimizer, str) else optimizer.__name__
    fig.suptitle(f"{name} on {getattr(problem, 'name', 'problem')}")
    return fig

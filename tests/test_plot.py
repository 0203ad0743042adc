"""Tests of gdcore.plot: the artists each figure holds."""

import sys

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

from gdcore import plot
from gdcore._history import History
from gdcore.problems import Beale, Quadratic, Rosenbrock
from gdcore.reference import SGD

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _path(start, end, n):
    return np.linspace(start, end, n)


@pytest.mark.parametrize(
    "problem",
    [Rosenbrock(), Beale(), Quadratic([[3.0, 1.0], [1.0, 2.0]])],
    ids=lambda p: p.name,
)
def test_trajectories_draws_one_labelled_line_per_run(problem):
    runs = {
        "a": _path(problem.x0, problem.minimizer, 11),
        "b": OptimizeResult(
            trajectory=_path(problem.x0, problem.minimizer, 4),
            x=problem.minimizer,
            nit=3,
        ),
    }
    fig = plot.trajectories(problem, runs)
    (ax,) = fig.axes
    labels = _legend_labels(ax)
    assert labels == ["a (10 steps)", "b (3 steps)", "minimizer"]
    assert len(ax.get_lines()) == 3
    np.testing.assert_allclose(ax.get_lines()[0].get_xydata(), runs["a"])
    assert ax.collections, "contour lines missing"
    lo, hi = ax.get_xlim()
    assert lo < min(problem.x0[0], problem.minimizer[0]) < hi
    assert ax.get_title() == problem.name
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_trajectories_ignores_diverged_points_for_the_limits():
    p = Rosenbrock()
    runs = {
        "ok": _path(p.x0, p.minimizer, 5),
        "diverged": np.array([p.x0, [50.0, -80.0], [1e200, 1e100], [np.inf, 0.0]]),
    }
    fig = plot.trajectories(p, runs)
    lo, hi = fig.axes[0].get_xlim()
    assert hi < 5.0 and lo > -5.0


def test_loss_curves_log_scale_and_labels():
    losses = 0.5 ** np.arange(30)
    histories = {
        "list": list(losses),
        "history": History(loss=list(2 * losses)),
        "result": OptimizeResult(losses=3 * losses, x=np.zeros(2), nit=29),
    }
    fig = plot.loss_curves(histories, title="runs")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert _legend_labels(ax) == ["list", "history", "result"]
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[1].get_ydata(), 2 * losses)
    np.testing.assert_allclose(lines[2].get_xdata(), np.arange(30))
    gap = plot.loss_curves({"x": losses + 1.0}, minimum=1.0).axes[0]
    np.testing.assert_allclose(gap.get_lines()[0].get_ydata(), losses, rtol=1e-12)
    assert "f^*" in gap.get_ylabel()


def test_learning_rates_too_small_good_too_large():
    p = Quadratic.with_condition_number(10.0, 2, seed=0)
    lr_max = 2.0 / 10.0
    fig = plot.learning_rates(p, SGD, [0.01, 2 / 11, 1.05 * lr_max], max_iter=200)
    paths_ax, loss_ax = fig.axes
    labels = _legend_labels(loss_ax)
    assert len(labels) == 3
    assert labels[0].startswith("lr=0.01 max_iter")
    assert labels[1].startswith("lr=0.182 converged")
    assert labels[2].startswith("lr=0.21 diverged")
    assert loss_ax.get_yscale() == "log"
    assert len(paths_ax.get_lines()) == 4  # three paths and the minimiser
    assert fig.get_suptitle() == "SGD on quadratic"
    one_axis = plot.learning_rates(Rosenbrock(4), "sgd", [1e-4], max_iter=5)
    assert len(one_axis.axes) == 1
    assert one_axis.get_suptitle() == "sgd on rosenbrock"


def test_missing_trajectory_is_explained():
    res = OptimizeResult(x=np.zeros(2), nit=3, fun=0.0)
    with pytest.raises(ValueError, match="return_trajectory=True"):
        plot.trajectories(Rosenbrock(), {"run": res})
    with pytest.raises(ValueError, match="return_trajectory=True"):
        plot.loss_curves({"run": res})


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: plot.trajectories(Rosenbrock(3), {"a": np.ones((2, 3))}),
            ValueError,
            "2-D",
        ),
        (
            lambda: plot.trajectories(Rosenbrock(), {"a": np.ones((2, 3))}),
            ValueError,
            r"shape \(k, 2\)",
        ),
        (lambda: plot.trajectories(Rosenbrock(), {}), ValueError, "at least one run"),
        (lambda: plot.loss_curves({}), ValueError, "at least one run"),
        (lambda: plot.loss_curves([1.0, 2.0]), TypeError, "must be a dict"),
        (lambda: plot.loss_curves({"a": np.ones((2, 2))}), ValueError, "1-D"),
        (
            lambda: plot.learning_rates(Rosenbrock(), SGD, []),
            ValueError,
            "at least one",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install gdcore\[plot\]"):
        plot.loss_curves({"a": [1.0, 0.5]})

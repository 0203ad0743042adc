r"""The ``gdcore compare`` subcommand: several optimizers on one 2-D test problem.

:func:`compare_rows` computes the table (one dict per method) and
:func:`format_table` renders it; only :func:`run_compare` prints.

Default hyperparameters (overridable with ``--lr METHOD=VALUE``), with
:math:`\mu, L` the extreme eigenvalues of the Hessian at the minimiser:

* ``gd``: plain gradient descent at its best constant rate
  :math:`2 / (\mu + L)` (stable near the minimiser; from the default starts of
  these problems the iteration stays stable too);
* ``momentum``: on the quadratic Polyak's optimal heavy ball, ``lr``
  :math:`4 / (\sqrt L + \sqrt\mu)^2` and ``momentum``
  :math:`((\sqrt\kappa - 1) / (\sqrt\kappa + 1))^2`; on the non-quadratic
  problems that pair overshoots far from the minimiser and diverges, so
  ``momentum=0.9`` with half the GD rate;
* ``nesterov``: Nesterov's constant-step scheme for strongly convex functions,
  ``lr`` :math:`1 / L` and ``momentum``
  :math:`(\sqrt\kappa - 1) / (\sqrt\kappa + 1)` (torch's Nesterov form of
  SGD is this scheme with the same two numbers);
* ``adam``, ``adamw``: ``lr=0.1`` (the step is about ``lr`` per coordinate and
  the starts are about 1 to 3 away from the minimiser). ``adamw`` keeps its
  default ``weight_decay=0.01``, whose fixed point is not the minimiser, so it
  does not reach a tight gradient tolerance;
* ``rmsprop``: ``lr=0.01``. Its squared-gradient average forgets within about
  a hundred steps, so the step stays about ``lr`` long and with a constant
  rate it ends oscillating near the minimiser instead of converging on the
  ill-conditioned problems;
* ``adagrad``: ``lr=0.5`` (its steps shrink as the squared gradients
  accumulate, so it starts large).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time

import numpy as np

from gdcore import analysis, problems
from gdcore._minimize import minimize

__all__ = [
    "METHODS",
    "PROBLEMS",
    "add_parser",
    "compare_rows",
    "default_hyperparameters",
    "format_table",
    "make_problem",
    "run_compare",
]

# Limitation: 2-D problems only (so every run can be drawn), and the fixed
# learning rates of the adaptive methods were chosen on these problems' default
# starts; other starts or scalings may need --lr.
PROBLEMS = ("rosenbrock", "beale", "quadratic")

#: Method name -> (optimizer class name, fixed keyword arguments).
METHODS = {
    "gd": ("SGD", {}),
    "momentum": ("SGD", {}),
    "nesterov": ("SGD", {"nesterov": True}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
}

DEFAULT_METHODS = ("gd", "momentum", "adam", "rmsprop", "adagrad")
_FIXED_LR = {"adam": 0.1, "adamw": 0.1, "rmsprop": 0.01, "adagrad": 0.5}


def make_problem(name: str, *, kappa: float = 1000.0, seed: int = 0, x0=None):
    """The 2-D problem called ``name`` (``kappa`` and ``seed`` for the quadratic)."""
    if name == "rosenbrock":
        problem = problems.Rosenbrock(2)
    elif name == "beale":
        problem = problems.Beale()
    elif name == "quadratic":
        problem = problems.Quadratic.with_condition_number(kappa, 2, seed=seed)
    else:
        raise ValueError(f"`problem` must be one of {PROBLEMS}, got {name!r}")
    if x0 is not None:
        problem.x0 = problem._point(x0, "x0")
    return problem


def default_hyperparameters(problem, method: str) -> dict:
    """Default keyword arguments (with ``lr``) of ``method`` on ``problem``."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {sorted(METHODS)}, got {method!r}")
    kwargs = dict(METHODS[method][1])
    if method in _FIXED_LR:
        return {"lr": _FIXED_LR[method], **kwargs}
    rates = analysis.gd_rates(problem.hessian(problem.minimizer))
    if method == "gd":
        return {"lr": rates.lr_best, **kwargs}
    if method == "nesterov":
        root = math.sqrt(rates.kappa)
        return {
            "lr": 1.0 / rates.lambda_max,
            "momentum": (root - 1) / (root + 1),
            **kwargs,
        }
    if isinstance(problem, problems.Quadratic):
        return {
            "lr": rates.heavy_ball_lr,
            "momentum": rates.heavy_ball_momentum,
            **kwargs,
        }
    return {"lr": 0.5 * rates.lr_best, "momentum": 0.9, **kwargs}


def _optimizer_class(method: str, backend: str):
    """The class behind ``method`` from gdcore.optim or gdcore.reference."""
    module = importlib.import_module(
        "gdcore.optim" if backend == "compiled" else "gdcore.reference"
    )
    return getattr(module, METHODS[method][0])


def compare_rows(
    problem,
    methods=DEFAULT_METHODS,
    *,
    max_iter: int = 50000,
    tol: float = 1e-6,
    overrides: dict | None = None,
    backend: str = "compiled",
) -> list[dict]:
    """Run each method from ``problem.x0``; one row per method.

    Parameters
    ----------
    problem : gdcore.problems.Problem
        Needs ``value``, ``grad``, ``hessian``, ``minimizer`` and ``x0``.
    methods : sequence of str
        Keys of :data:`METHODS`.
    max_iter, tol : int, float
        Passed to :func:`gdcore.minimize` (``tol`` bounds the gradient norm).
    overrides : dict, optional
        Method -> learning rate replacing the default.
    backend : {"compiled", "reference"}
        Where the optimizer classes come from.

    Returns
    -------
    list of dict
        Keys ``method``, ``lr``, ``hyperparameters`` (all keyword arguments),
        ``iterations`` (steps to reach ``tol``; ``inf`` if it was not reached),
        ``nit``, ``final_loss``, ``time`` (seconds), ``status`` and ``result``
        (the :class:`~scipy.optimize.OptimizeResult`, with its trajectory).
    """
    if backend not in ("compiled", "reference"):
        raise ValueError(
            f"`backend` must be 'compiled' or 'reference', got {backend!r}"
        )
    overrides = dict(overrides or {})
    rows = []
    for method in methods:
        kwargs = default_hyperparameters(problem, method)
        if method in overrides:
            kwargs["lr"] = float(overrides[method])
        cls = _optimizer_class(method, backend)
        start = time.perf_counter()
        res = minimize(
            problem.value,
            problem.x0,
            grad=problem.grad,
            optimizer=cls,
            max_iter=max_iter,
            tol=tol,
            return_trajectory=True,
            **kwargs,
        )
        elapsed = time.perf_counter() - start
        rows.append(
            {
                "method": method,
                "lr": kwargs["lr"],
                "hyperparameters": kwargs,
                "iterations": res.nit if res.status == "converged" else math.inf,
                "nit": res.nit,
                "final_loss": res.fun,
                "time": elapsed,
                "status": res.status,
                "result": res,
            }
        )
    return rows


def _extras(row: dict) -> str:
    """Hyperparameters other than lr, as k=v text."""
    parts = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in row["hyperparameters"].items()
        if k != "lr"
    ]
    return ", ".join(parts)


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    header = (
        "optimizer",
        "lr",
        "iterations",
        "final loss",
        "time [s]",
        "status",
        "other",
    )
    lines = []
    for row in rows:
        if row["status"] == "converged":
            iters = str(row["nit"])
        elif row["status"] == "diverged":
            iters = f"- (at {row['nit']})"
        else:
            iters = f"> {row['nit']}"
        lines.append(
            (
                row["method"],
                f"{row['lr']:.4g}",
                iters,
                f"{row['final_loss']:.3e}",
                f"{row['time']:.3f}",
                row["status"],
                _extras(row),
            )
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    return "\n".join(out)


def _theory_lines(problem) -> list[str]:
    """What the Hessian at the minimiser predicts for GD and heavy ball."""
    spec = analysis.spectrum(problem.hessian(problem.minimizer))
    lines = [
        f"Hessian at the minimiser: eigenvalues {spec.lambda_min:.4g} .. "
        f"{spec.lambda_max:.4g}, kappa = {spec.condition_number:.4g}"
    ]
    if spec.positive_definite:
        r = analysis.gd_rates(spec)
        lines.append(
            f"GD: stable for lr < {r.lr_max:.4g}, best lr {r.lr_best:.4g}, "
            f"predicted rate {r.rate:.6f}/step; heavy ball: rate "
            f"{r.heavy_ball_rate:.6f}/step (near the minimiser)"
        )
    return lines


def _parse_overrides(items) -> dict:
    """``["adam=0.05", ...]`` -> ``{"adam": 0.05}``; ValueError on bad items."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or name not in METHODS:
            raise ValueError(
                f"`--lr` must look like METHOD=VALUE with METHOD in "
                f"{sorted(METHODS)}, got {item!r}"
            )
        out[name] = float(value)
        if not (out[name] > 0.0 and math.isfinite(out[name])):
            raise ValueError(f"`--lr` value must be positive, got {item!r}")
    return out


def _method_list(text: str) -> list[str]:
    """Comma-separated method names, checked (an argparse type)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in METHODS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"methods must be a comma-separated subset of {sorted(METHODS)}, "
            f"got {text!r}"
        )
    return names


def add_parser(subparsers) -> None:
    """Add the ``compare`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "compare",
        help="run several optimizers on one 2-D test problem",
        description="Run several optimizers from the same start on a 2-D test "
        "problem and print iterations to tolerance, final loss, time and status. "
        "Plain GD (gd) runs at its best constant rate 2/(lambda_min + lambda_max) "
        "of the Hessian at the minimiser; momentum and nesterov take their "
        "parameters from the same Hessian.",
    )
    p.add_argument(
        "--problem",
        choices=PROBLEMS,
        default="rosenbrock",
        help="test problem (default rosenbrock)",
    )
    p.add_argument(
        "--kappa",
        type=float,
        default=1000.0,
        help="condition number of the quadratic (default 1000)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the quadratic's eigenbasis (default 0)",
    )
    p.add_argument(
        "--x0",
        type=float,
        nargs=2,
        metavar=("X1", "X2"),
        help="starting point (default: the problem's)",
    )
    p.add_argument(
        "--optimizers",
        type=_method_list,
        default=list(DEFAULT_METHODS),
        help="comma-separated methods from "
        + ",".join(METHODS)
        + " (default: "
        + ",".join(DEFAULT_METHODS)
        + ")",
    )
    p.add_argument(
        "--lr",
        action="append",
        metavar="METHOD=VALUE",
        help="override a default learning rate (repeatable)",
    )
    p.add_argument(
        "--max-iter", type=int, default=50000, help="steps per run (default 50000)"
    )
    p.add_argument(
        "--tol", type=float, default=1e-6, help="gradient-norm tolerance (default 1e-6)"
    )
    p.add_argument(
        "--backend",
        choices=("compiled", "reference"),
        default="compiled",
        help="optimizer classes from gdcore.optim (compiled, default) or "
        "gdcore.reference (NumPy)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also write the trajectories picture to this file",
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``gdcore compare``: print the table, optionally plot; exit code."""
    try:
        overrides = _parse_overrides(args.lr)
        if not (args.kappa >= 1.0 and math.isfinite(args.kappa)):
            raise ValueError(f"`--kappa` must be >= 1, got {args.kappa}")
        if args.max_iter < 0 or not (args.tol >= 0.0):
            raise ValueError("`--max-iter` and `--tol` must be >= 0")
        problem = make_problem(
            args.problem, kappa=args.kappa, seed=args.seed, x0=args.x0
        )
    except ValueError as exc:
        print(f"gdcore compare: error: {exc}", file=sys.stderr)
        return 2
    rows = compare_rows(
        problem,
        args.optimizers,
        max_iter=args.max_iter,
        tol=args.tol,
        overrides=overrides,
        backend=args.backend,
    )
    x0 = np.array2string(problem.x0, precision=4, separator=", ")
    print(f"{problem.name} from x0 = {x0}, gradient-norm tol {args.tol:g}")
    for line in _theory_lines(problem):
        print(line)
    print()
    print(format_table(rows))
    if args.plot:
        return _write_plot(problem, rows, args.plot)
    return 0


def _write_plot(problem, rows, path: str) -> int:
    """Save the trajectories picture; exit code 1 when it cannot be written."""
    from gdcore import plot

    try:
        fig = plot.trajectories(problem, {r["method"]: r["result"] for r in rows})
        fig.savefig(path, dpi=120)
    except (ImportError, OSError, ValueError) as exc:
        print(f"gdcore compare: error: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"\nwrote {path}")
    return 0

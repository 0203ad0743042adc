r"""The ``gdcore compare`` subcommand: several optimizers on one problem.

The problem is a 2-D test function (``--problem rosenbrock``, ``beale`` or
``quadratic``) or the training of a multilayer perceptron (``--problem mlp``),
the same training as ``gdcore train``: same data options, same network.
:func:`compare_rows` and :func:`mlp_rows` compute the tables (one dict per
method), :func:`format_table` and :func:`format_mlp_table` render them; only
:func:`run_compare` prints.

Default hyperparameters on the 2-D problems (overridable with
``--lr METHOD=VALUE``), with :math:`\mu, L` the extreme eigenvalues of the
Hessian at the minimiser:

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

Default hyperparameters of ``--problem mlp`` (:data:`MLP_METHODS`), chosen on
the standardised digits with batches of 32, where each of them reaches a
training loss below 0.03 and a test accuracy near 98 % within the default 30
epochs:

* ``sgd``: ``lr=0.1``; ``momentum`` and ``nesterov``: ``lr=0.01`` with
  ``momentum=0.9``, whose steady-state step ``lr / (1 - momentum)`` is the
  same 0.1, so the three differ in the path, not in the step length;
* ``adam``, ``adamw``: ``lr=1e-3`` (torch's default); ``adamw`` keeps its
  default ``weight_decay=0.01``;
* ``rmsprop``: ``lr=1e-3``, a tenth of torch's default, because its first
  steps are about ``lr / sqrt(1 - alpha)``, ten times ``lr``;
* ``adagrad``: ``lr=1e-2`` (torch's default); its steps shrink as the squared
  gradients accumulate, so it is the slowest of the seven here
  (with ``--lr adagrad=0.05`` it reaches the default target in 3 epochs
  instead of 17).

On the network the table counts epochs to reach a training loss of at most
``--target-loss`` (default :data:`DEFAULT_TARGET_LOSS`), or, with ``--tol``
alone, the epochs until ``tol`` of :func:`gdcore.train.fit` stops the run
(the epoch loss or the parameters settle). The target is the better measure:
a slow method settles early under ``tol`` because its parameters barely move
(``adagrad`` does, on the digits with ``--tol 1e-2``). Every optimizer starts
from the same weights (one network per optimizer, each built from ``--seed``)
and sees the same batches (the same ``seed`` to :func:`gdcore.train.fit`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import sys
import time

import numpy as np

from gdcore import _cli_train, analysis, problems
from gdcore._minimize import minimize

__all__ = [
    "DEFAULT_TARGET_LOSS",
    "METHODS",
    "MLP_METHODS",
    "OPTION_PROBLEMS",
    "PROBLEMS",
    "TargetLoss",
    "add_parser",
    "build_models",
    "compare_rows",
    "default_hyperparameters",
    "format_mlp_table",
    "format_table",
    "make_problem",
    "mlp_rows",
    "params_digest",
    "run_compare",
]

# Limitation: the test functions are 2-D only (so every run can be drawn), and the fixed
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

#: Method name -> (optimizer class name, default keyword arguments) on the MLP.
MLP_METHODS = {
    "sgd": ("SGD", {"lr": 0.1}),
    "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
    "nesterov": ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3, "weight_decay": 1e-2}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adagrad": ("Adagrad", {"lr": 1e-2}),
}

#: Option (argparse dest) -> the problems it applies to; options not listed apply
#: to all. Giving one for another problem is an error, not silently ignored.
OPTION_PROBLEMS = {
    "kappa": ("quadratic",),
    "seed": ("quadratic", "mlp"),
    "x0": PROBLEMS,
    "max_iter": PROBLEMS,
    **dict.fromkeys(
        (
            "data",
            "label_column",
            "test_size",
            "no_standardize",
            "hidden",
            "activation",
            "loss",
            "dtype",
            "epochs",
            "batch_size",
            "sampling",
            "target_loss",
        ),
        ("mlp",),
    ),
}

#: Training loss the MLP runs are timed to when neither --tol nor
#: --target-loss is given (above 99 % training accuracy on the digits).
DEFAULT_TARGET_LOSS = 0.05


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


def _optimizer_class(method: str, backend: str, table: dict = METHODS):
    """The class behind ``method`` from gdcore.optim or gdcore.reference."""
    module = importlib.import_module(
        "gdcore.optim" if backend == "compiled" else "gdcore.reference"
    )
    return getattr(module, table[method][0])


def _check_backend(backend: str) -> None:
    """ValueError unless ``backend`` is 'compiled' or 'reference'."""
    if backend not in ("compiled", "reference"):
        raise ValueError(
            f"`backend` must be 'compiled' or 'reference', got {backend!r}"
        )


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
    _check_backend(backend)
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
    return _aligned(header, lines)


def _aligned(header, lines) -> str:
    """A header, a rule and the lines, columns padded to a common width."""
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


class TargetLoss:
    """A :func:`gdcore.train.fit` callback noting when the loss first reaches a target.

    Parameters
    ----------
    target : float
        Training loss to reach; epoch ``e`` reaches it when
        ``history.loss[e - 1] <= target``.

    Attributes
    ----------
    epoch : int or None
        The first epoch (counted from 1) whose loss is at most ``target``;
        None while no epoch has reached it.
    """

    def __init__(self, target: float) -> None:
        self.target = float(target)
        self.epoch: int | None = None

    def __call__(self, epoch: int, history) -> None:
        """Record ``epoch`` if it is the first to reach the target."""
        if self.epoch is None and history.loss[-1] <= self.target:
            self.epoch = epoch


def params_digest(flat_params: np.ndarray) -> str:
    """Short SHA-256 hex digest of a parameter vector (its dtype and bytes)."""
    flat = np.ascontiguousarray(flat_params)
    digest = hashlib.sha256(flat.dtype.str.encode())
    digest.update(flat.tobytes())
    return digest.hexdigest()[:16]


def build_models(
    layer_sizes,
    count: int,
    *,
    activation: str = "relu",
    loss: str = "cross_entropy",
    dtype=np.float64,
    seed: int = 0,
    backend: str = "compiled",
) -> list:
    """``count`` networks, each built from ``seed``, hence with the same weights.

    Parameters
    ----------
    layer_sizes : sequence of int
        Inputs, hidden layer sizes and outputs.
    count : int
        Number of networks.
    activation, loss, dtype, seed
        As for :class:`gdcore.nn.MLP`.
    backend : {"compiled", "reference"}
        :class:`gdcore.nn.MLP` or :class:`gdcore.reference.MLP`.

    Returns
    -------
    list
        Independent networks (no shared buffers) with equal ``flat_params``.
    """
    _check_backend(backend)
    module = importlib.import_module(
        "gdcore.nn" if backend == "compiled" else "gdcore.reference"
    )
    return [
        module.MLP(layer_sizes, activation, loss, dtype=dtype, seed=seed)
        for _ in range(count)
    ]


def mlp_rows(
    data,
    methods=tuple(MLP_METHODS),
    *,
    hidden=(100,),
    activation: str = "relu",
    loss: str = "cross_entropy",
    dtype=np.float64,
    epochs: int = 30,
    batch_size: int | None = 32,
    sampling: str = "without_replacement",
    tol: float | None = None,
    target_loss: float | None = DEFAULT_TARGET_LOSS,
    seed: int = 0,
    overrides: dict | None = None,
    backend: str = "compiled",
) -> list[dict]:
    """Train one MLP per method from the same weights on the same batches.

    Parameters
    ----------
    data : gdcore._cli_train.Dataset
        Training and held-out arrays (see :func:`gdcore._cli_train.load_dataset`).
    methods : sequence of str
        Keys of :data:`MLP_METHODS`.
    hidden : sequence of int, default (100,)
        Hidden layer sizes.
    activation, loss, dtype
        As for :class:`gdcore.nn.MLP`.
    epochs, batch_size, sampling, tol
        Passed to :func:`gdcore.train.fit`; ``tol`` stops a run early.
    target_loss : float or None, default :data:`DEFAULT_TARGET_LOSS`
        Count the epochs until the training loss is at most this. With None
        the count is the epochs until ``tol`` stopped the run.
    seed : int, default 0
        Seeds the initial weights and the batches, the same for every method.
    overrides : dict, optional
        Method -> learning rate replacing the default.
    backend : {"compiled", "reference"}
        Networks and optimizers from gdcore.nn and gdcore.optim, or from
        gdcore.reference.

    Returns
    -------
    list of dict
        Keys ``method``, ``lr``, ``hyperparameters``, ``epochs`` (to reach the
        target or the tolerance; ``inf`` if not reached), ``epochs_run``,
        ``final_loss`` (last finite epoch loss; NaN if none), ``score_name``
        and ``score`` (held-out accuracy as a fraction or mse; None without
        held-out data), ``time`` (seconds), ``status``, ``history`` and
        ``init_digest`` (:func:`params_digest` of the initial weights).

    Raises
    ------
    ValueError
        If both ``tol`` and ``target_loss`` are None, a method is unknown or a
        hyperparameter is out of range.
    """
    if tol is None and target_loss is None:
        raise ValueError("give `tol` or `target_loss` (what the epochs count to)")
    unknown = [m for m in methods if m not in MLP_METHODS]
    if unknown:
        raise ValueError(f"`methods` must be in {list(MLP_METHODS)}, got {unknown}")
    models = build_models(
        _layer_sizes(data, hidden, loss),
        len(methods),
        activation=activation,
        loss=loss,
        dtype=dtype,
        seed=seed,
        backend=backend,
    )
    optimizers = [
        _mlp_optimizer(method, model, backend, overrides or {})
        for method, model in zip(methods, models, strict=True)
    ]
    fit_kwargs = {
        "epochs": epochs,
        "batch_size": batch_size,
        "sampling": sampling,
        "tol": tol,
        "seed": seed,
    }
    return [
        _mlp_row(method, model, opt, data, fit_kwargs, target_loss)
        for method, model, opt in zip(methods, models, optimizers, strict=True)
    ]


def _layer_sizes(data, hidden, loss: str) -> list[int]:
    """Inputs, hidden sizes and outputs of the network for ``data``."""
    return [data.X_train.shape[1], *hidden, _cli_train.n_outputs(data, loss)]


def _mlp_optimizer(method: str, model, backend: str, overrides: dict):
    """The optimizer of ``method`` on ``model.params``, lr overridden if asked."""
    kwargs = dict(MLP_METHODS[method][1])
    if method in overrides:
        kwargs["lr"] = float(overrides[method])
    return _optimizer_class(method, backend, MLP_METHODS)(model.params, **kwargs)


def _mlp_row(method, model, optimizer, data, fit_kwargs, target_loss) -> dict:
    """Train one network and describe the run."""
    from gdcore import train

    init_digest = params_digest(model.flat_params)
    watch = None if target_loss is None else TargetLoss(target_loss)
    # Limitation: a run goes on after reaching the target (a fit callback
    # cannot stop it), so `time` covers all the epochs run, not the time to
    # the target.
    history = train.fit(
        model, data.X_train, data.y_train, optimizer, callback=watch, **fit_kwargs
    )
    if watch is not None:
        reached = watch.epoch
    else:
        reached = history.epochs if history.status == "converged" else None
    score_name, score = "test", None
    if len(data.X_test):
        score_name, score = _cli_train.held_out_score(model, data, model.loss_name)
    hyper = {k: getattr(optimizer, k) for k in MLP_METHODS[method][1]}
    return {
        "method": method,
        "lr": optimizer.lr,
        "hyperparameters": hyper,
        "epochs": math.inf if reached is None else reached,
        "epochs_run": history.epochs,
        "final_loss": history.loss[-1] if history.loss else math.nan,
        "score_name": score_name,
        "score": score,
        "time": history.time,
        "status": history.status,
        "history": history,
        "init_digest": init_digest,
    }


def format_mlp_table(rows: list[dict]) -> str:
    """The rows of :func:`mlp_rows` as an aligned text table."""
    score_name = rows[0]["score_name"] if rows else "test"
    header = (
        "optimizer",
        "lr",
        "epochs",
        "final loss",
        score_name,
        "time [s]",
        "status",
        "other",
    )
    lines = []
    for row in rows:
        if row["epochs"] != math.inf:
            epochs = str(row["epochs"])
        elif row["status"] == "diverged":
            epochs = f"- (at {row['epochs_run']})"
        else:
            epochs = f"> {row['epochs_run']}"
        score = "n/a"
        if row["score"] is not None:
            score = _cli_train.format_score(row["score_name"], row["score"])
        lines.append(
            (
                row["method"],
                f"{row['lr']:.4g}",
                epochs,
                f"{row['final_loss']:.3e}",
                score,
                f"{row['time']:.3f}",
                row["status"],
                _extras(row),
            )
        )
    return _aligned(header, lines)


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


def _parse_overrides(items, methods=METHODS) -> dict:
    """``["adam=0.05", ...]`` -> ``{"adam": 0.05}``; ValueError on bad items."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or name not in methods:
            raise ValueError(
                f"`--lr` must look like METHOD=VALUE with METHOD in "
                f"{sorted(methods)}, got {item!r}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"`--lr` value must be a number, got {item!r}") from None
        if not (out[name] > 0.0 and math.isfinite(out[name])):
            raise ValueError(f"`--lr` value must be positive, got {item!r}")
    return out


def _check_applicable(args: argparse.Namespace) -> None:
    """ValueError naming the options given for a problem they do not apply to.

    ``args.given`` maps the dest of each option on the command line to the
    option string used; :data:`OPTION_PROBLEMS` says where each applies.
    """
    bad = []
    for dest, flag in args.given.items():
        where = OPTION_PROBLEMS.get(dest)
        if where is not None and args.problem not in where:
            only = "the 2-D problems" if where == PROBLEMS else " and ".join(where)
            bad.append(f"{flag} ({only} only)")
    if bad:
        raise ValueError(f"`--problem {args.problem}` takes no {', '.join(bad)}")


def _check_overrides(overrides: dict, methods: list[str]) -> None:
    """ValueError if ``--lr`` names a method that is not among ``methods``."""
    for name in overrides:
        if name not in methods:
            raise ValueError(
                f"`--lr` sets {name}, which is not among the optimizers compared "
                f"({','.join(methods)}); add it to --optimizers"
            )


def _method_list(text: str) -> list[str]:
    """Comma-separated method names of either table, checked (an argparse type)."""
    known = {*METHODS, *MLP_METHODS}
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"methods must be a comma-separated subset of {sorted(known)}, got {text!r}"
        )
    return names


def add_parser(subparsers) -> None:
    """Add the ``compare`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "compare",
        help="run several optimizers on a 2-D test problem or on an MLP",
        description="Run several optimizers from the same start on a 2-D test "
        "problem and print iterations to tolerance, final loss, time and status. "
        "Plain GD (gd) runs at its best constant rate 2/(lambda_min + lambda_max) "
        "of the Hessian at the minimiser; momentum and nesterov take their "
        "parameters from the same Hessian. With --problem mlp, train the network "
        "of `gdcore train` once per optimizer, from the same initial weights on "
        "the same batches, and print the epochs to reach a training loss, the "
        "final loss, the held-out score, time and status. An option that does not "
        "apply to the chosen problem is an error.",
    )
    _cli_train.note_given(p)
    p.add_argument(
        "--problem",
        choices=(*PROBLEMS, "mlp"),
        default="rosenbrock",
        help="a 2-D test problem, or mlp: an MLP on a data set (default rosenbrock)",
    )
    p.add_argument(
        "--optimizers",
        type=_method_list,
        help="comma-separated methods; 2-D problems: "
        + ",".join(METHODS)
        + " (default "
        + ",".join(DEFAULT_METHODS)
        + "); mlp: "
        + ",".join(MLP_METHODS)
        + " (default: all)",
    )
    p.add_argument(
        "--lr",
        action="append",
        metavar="METHOD=VALUE",
        help="override a default learning rate (repeatable)",
    )
    p.add_argument(
        "--tol",
        type=float,
        help="2-D problems: gradient-norm tolerance (default 1e-6); mlp: stop a "
        "run when its epoch loss or parameters settle (fit's tol; default: run "
        "all epochs)",
    )
    p.add_argument(
        "--seed",
        type=_cli_train.nonnegative_int,
        default=0,
        help="seed of the quadratic's eigenbasis, or of the MLP's data split, "
        "initial weights and batches (default 0)",
    )
    p.add_argument(
        "--backend",
        choices=("compiled", "reference"),
        default="compiled",
        help="optimizer classes (and MLP) from gdcore.optim and gdcore.nn "
        "(compiled, default) or gdcore.reference (NumPy)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also write a picture to this file: the trajectories (2-D) or the "
        "training loss curves (mlp)",
    )
    flat = p.add_argument_group("2-D problems")
    flat.add_argument(
        "--kappa",
        type=float,
        default=1000.0,
        help="condition number of the quadratic (default 1000)",
    )
    flat.add_argument(
        "--x0",
        type=float,
        nargs=2,
        metavar=("X1", "X2"),
        help="starting point (default: the problem's)",
    )
    flat.add_argument(
        "--max-iter", type=int, default=50000, help="steps per run (default 50000)"
    )
    _cli_train.add_data_arguments(p, "mlp: data (as gdcore train)")
    _cli_train.add_network_arguments(p, "mlp: network (as gdcore train)")
    run = _cli_train.add_batch_arguments(p, "mlp: training (as gdcore train)")
    run.add_argument(
        "--target-loss",
        type=float,
        metavar="L",
        help="count the epochs until the training loss is <= L (default "
        f"{DEFAULT_TARGET_LOSS:g} unless only --tol is given)",
    )
    p.set_defaults(func=run_compare, parser=p)


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``gdcore compare``: print the table, optionally plot; exit code."""
    try:
        _check_applicable(args)
    except ValueError as exc:
        _fail(args, exc)
    if args.problem == "mlp":
        return _run_mlp(args)
    try:
        overrides = _parse_overrides(args.lr)
        methods = _known(
            args.optimizers or list(DEFAULT_METHODS), METHODS, "on a 2-D problem"
        )
        _check_overrides(overrides, methods)
        tol = 1e-6 if args.tol is None else args.tol
        if not (args.kappa >= 1.0 and math.isfinite(args.kappa)):
            raise ValueError(f"`--kappa` must be >= 1, got {args.kappa}")
        if args.max_iter < 0 or not (tol >= 0.0):
            raise ValueError("`--max-iter` and `--tol` must be >= 0")
        problem = make_problem(
            args.problem, kappa=args.kappa, seed=args.seed, x0=args.x0
        )
    except ValueError as exc:
        _fail(args, exc)
    rows = compare_rows(
        problem,
        methods,
        max_iter=args.max_iter,
        tol=tol,
        overrides=overrides,
        backend=args.backend,
    )
    x0 = np.array2string(problem.x0, precision=4, separator=", ")
    print(f"{problem.name} from x0 = {x0}, gradient-norm tol {tol:g}")
    for line in _theory_lines(problem):
        print(line)
    print()
    print(format_table(rows))
    if args.plot:
        return _write_plot(problem, rows, args.plot)
    return 0


def _fail(args: argparse.Namespace, exc: Exception):
    """Exit with status 2 and a one-line message (no usage block)."""
    args.parser.exit(2, f"{args.parser.prog}: error: {exc}\n")


def _known(methods: list[str], table: dict, where: str) -> list[str]:
    """``methods`` if all are keys of ``table``, else a ValueError naming them."""
    bad = [m for m in methods if m not in table]
    if bad:
        raise ValueError(
            f"`--optimizers` must be a subset of {list(table)} {where}, got {bad}"
        )
    return methods


def _mlp_settings(args: argparse.Namespace) -> dict:
    """Checked keyword arguments of :func:`mlp_rows` from the options."""
    tol, target = args.tol, args.target_loss
    if tol is not None and not (0.0 <= tol < math.inf):
        raise ValueError(f"`--tol` must be a finite number >= 0, got {tol}")
    if target is not None and not (0.0 <= target < math.inf):
        raise ValueError(f"`--target-loss` must be a finite number >= 0, got {target}")
    if target is None and tol is None:
        target = DEFAULT_TARGET_LOSS
    methods = _known(
        args.optimizers or list(MLP_METHODS), MLP_METHODS, "with --problem mlp"
    )
    overrides = _parse_overrides(args.lr, MLP_METHODS)
    _check_overrides(overrides, methods)
    return {
        "methods": methods,
        "overrides": overrides,
        "hidden": tuple(args.hidden),
        "activation": args.activation,
        "loss": args.loss,
        "dtype": np.dtype(args.dtype),
        "epochs": args.epochs,
        "batch_size": _cli_train.parse_batch_size(args.batch_size),
        "sampling": args.sampling,
        "tol": tol,
        "target_loss": target,
        "seed": args.seed,
        "backend": args.backend,
    }


def _run_mlp(args: argparse.Namespace) -> int:
    """``gdcore compare --problem mlp``: print the table, optionally plot."""
    try:
        settings = _mlp_settings(args)
        data = _cli_train.load_dataset(args)
        rows = mlp_rows(data, **settings)
    except (_cli_train.DataError, TypeError, ValueError) as exc:
        _fail(args, exc)
    sizes = _layer_sizes(data, settings["hidden"], settings["loss"])
    batch = args.batch_size if settings["batch_size"] is not None else "full"
    print(
        f"{data.name}: {len(data.X_train)} train / {len(data.X_test)} test; network "
        f"{'-'.join(map(str, sizes))} {args.activation}, {args.loss}, {args.dtype}"
    )
    print(
        f"batch {batch} ({args.sampling}), at most {args.epochs} epochs, "
        f"seed {args.seed}"
    )
    print(
        f"every optimizer starts from the same weights (sha256 "
        f"{rows[0]['init_digest']}) and sees the same batches"
    )
    if settings["target_loss"] is not None:
        what = f"the first epoch whose training loss is <= {settings['target_loss']:g}"
    else:
        what = f"the epoch at which tol {settings['tol']:g} stopped the run"
    print(f"epochs: {what}")
    print()
    print(format_mlp_table(rows))
    if args.plot:
        return _write_loss_plot(rows, settings["target_loss"], args.plot)
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


def _write_loss_plot(rows, target_loss: float | None, path: str) -> int:
    """Save the training loss curves; exit code 1 when they cannot be written."""
    from gdcore import plot

    histories = {r["method"]: r["history"] for r in rows if r["history"].loss}
    try:
        if not histories:
            raise ValueError("no run has a finite epoch loss to draw")
        fig = plot.loss_curves(histories, title="training loss")
        ax = fig.axes[0]
        # loss_curves counts points from 0; the first epoch loss is epoch 1.
        for line in ax.get_lines():
            line.set_xdata(np.asarray(line.get_xdata()) + 1)
        if target_loss is not None and target_loss > 0.0:
            ax.axhline(target_loss, color="0.5", linestyle=":", linewidth=1)
        ax.relim()
        ax.autoscale_view()
        ax.set_xlabel("epoch")
        fig.savefig(path, dpi=120)
    except (ImportError, OSError, ValueError) as exc:
        print(f"gdcore compare: error: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"\nwrote {path}")
    return 0

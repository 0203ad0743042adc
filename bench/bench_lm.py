"""Levenberg-Marquardt benchmarks: gdcore.least_squares vs SciPy's MINPACK ``lm``.

Run ``pytest bench/bench_lm.py --benchmark-only``. Each group is one NIST StRD
problem from Start 2 with its exact Jacobian and tight tolerances. Both solvers
are checked to reach at least 6 certified digits before they are timed;
``extra_info`` records the evaluations each one spends.
"""

import sys
from pathlib import Path

import pytest
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import nist  # noqa: E402

from gdcore.lm import least_squares  # noqa: E402

PROBLEMS = ["Misra1a", "Thurber", "ENSO", "MGH10", "Bennett5", "Gauss3"]
TOL = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20000)


def _gdcore(problem):
    return least_squares(problem.residuals, problem.starts[1], jac=problem.jacobian,
                         **TOL)  # fmt: skip


def _scipy(problem):
    return scipy.optimize.least_squares(
        problem.residuals, problem.starts[1], jac=problem.jacobian, method="lm", **TOL
    )


@pytest.mark.parametrize("impl", ["gdcore", "scipy"])
@pytest.mark.parametrize("name", PROBLEMS)
def test_nist_start2(benchmark, name, impl):
    problem = nist.load(name)
    solve = _gdcore if impl == "gdcore" else _scipy
    res = solve(problem)
    assert nist.lre(res.x, problem.certified) >= 6.0
    benchmark.group = f"lm-{name}"
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info["nfev"] = int(res.nfev)
    benchmark.extra_info["lre"] = nist.lre(res.x, problem.certified)
    benchmark(solve, problem)

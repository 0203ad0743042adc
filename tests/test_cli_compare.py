"""Tests of the ``gdcore compare`` subcommand on its own argparse parser."""

import argparse
import math

import numpy as np
import pytest

from gdcore import _cli_compare, analysis
from gdcore.problems import Quadratic, Rosenbrock


def _main(argv):
    parser = argparse.ArgumentParser(prog="gdcore")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _cli_compare.add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


def _printed_rows(out):
    """Method -> (iterations or inf, status) from the printed table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        status = next(c for c in cells if c in ("converged", "max_iter", "diverged"))
        rows[cells[0]] = (int(cells[2]) if status == "converged" else math.inf, status)
    return rows


@pytest.mark.parametrize(
    "argv",
    [["--problem", "rosenbrock"], ["--problem", "quadratic", "--kappa", "1000"]],
)
def test_momentum_and_adam_beat_plain_gd_as_theory_says(argv, capsys):
    code = _main(["compare", *argv, "--optimizers", "gd,momentum,adam"])
    out = capsys.readouterr().out
    assert code == 0
    rows = _printed_rows(out)
    assert set(rows) == {"gd", "momentum", "adam"}
    assert all(status == "converged" for _, status in rows.values())
    gd = rows["gd"][0]
    # "Far fewer": at least three times fewer steps than GD at its best lr.
    assert 3 * rows["momentum"][0] < gd
    assert 3 * rows["adam"][0] < gd
    assert "kappa" in out and "predicted rate" in out


def test_gd_iterations_follow_the_predicted_rate_on_the_quadratic():
    p = _cli_compare.make_problem("quadratic", kappa=1000.0)
    (row,) = _cli_compare.compare_rows(p, ["gd"], tol=1e-6)
    r = analysis.gd_rates(p.H)
    measured = analysis.convergence_rate(row["result"], minimizer=p.minimizer)
    assert measured == pytest.approx(r.rate, rel=0.05)
    assert row["iterations"] == row["nit"] and row["status"] == "converged"


def test_default_hyperparameters_by_hand():
    rb = Rosenbrock()
    # lambda_min + lambda_max = trace of [[802, -400], [-400, 200]] = 1002.
    assert _cli_compare.default_hyperparameters(rb, "gd") == {"lr": 2.0 / 1002.0}
    assert _cli_compare.default_hyperparameters(rb, "momentum") == {
        "lr": 1.0 / 1002.0,
        "momentum": 0.9,
    }
    nesterov = _cli_compare.default_hyperparameters(rb, "nesterov")
    assert nesterov["nesterov"] is True
    assert nesterov["lr"] == pytest.approx(
        1.0 / (501.0 + math.sqrt(301.0**2 + 400.0**2))
    )
    q = Quadratic(np.diag([1.0, 9.0]))
    assert _cli_compare.default_hyperparameters(q, "momentum") == pytest.approx(
        {"lr": 0.25, "momentum": 0.25}
    )
    assert _cli_compare.default_hyperparameters(q, "nesterov") == pytest.approx(
        {"lr": 1.0 / 9.0, "momentum": 0.5, "nesterov": True}
    )
    assert _cli_compare.default_hyperparameters(q, "adam") == {"lr": 0.1}


def test_rows_hold_results_and_overrides(capsys):
    p = _cli_compare.make_problem("beale")
    rows = _cli_compare.compare_rows(
        p,
        ["gd", "adagrad"],
        max_iter=50,
        overrides={"adagrad": 0.3},
        backend="reference",
    )
    assert [r["method"] for r in rows] == ["gd", "adagrad"]
    assert rows[1]["lr"] == 0.3 and rows[1]["hyperparameters"] == {"lr": 0.3}
    for row in rows:
        assert row["status"] == "max_iter" and row["iterations"] == math.inf
        assert row["nit"] == 50 and row["result"].trajectory.shape == (51, 2)
        assert row["final_loss"] == p.value(row["result"].x)
    table = _cli_compare.format_table(rows)
    assert "> 50" in table and "0.3" in table


def test_compiled_and_reference_backends_agree():
    p = _cli_compare.make_problem("quadratic", kappa=100.0)
    rows = {
        b: _cli_compare.compare_rows(p, ["gd", "adam"], backend=b)
        for b in ("compiled", "reference")
    }
    for c, r in zip(rows["compiled"], rows["reference"], strict=True):
        assert abs(c["nit"] - r["nit"]) <= 1
        np.testing.assert_allclose(c["result"].x, r["result"].x, atol=1e-6)


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "paths.png"
    code = _main(
        [
            "compare",
            "--problem",
            "quadratic",
            "--kappa",
            "10",
            "--optimizers",
            "gd,adam",
            "--plot",
            str(path),
        ]
    )
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in capsys.readouterr().out


def test_x0_and_lr_options(capsys):
    code = _main(
        [
            "compare",
            "--problem",
            "rosenbrock",
            "--x0",
            "0",
            "0",
            "--optimizers",
            "adam",
            "--lr",
            "adam=0.05",
            "--max-iter",
            "20",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "[0., 0.]" in out
    assert _printed_rows(out) == {"adam": (math.inf, "max_iter")}
    assert "0.05 " in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--lr", "adam"], "METHOD=VALUE"),
        (["--lr", "sgd=0.1"], "METHOD=VALUE"),
        (["--lr", "adam=-1"], "positive"),
        (["--kappa", "0.5"], "kappa"),
        (["--tol", "-1"], "tol"),
    ],
)
def test_bad_values_exit_2_with_a_message(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert match in err
    assert err.count("\n") == 1 and err.startswith("gdcore compare: error:")


def test_unknown_method_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", "--optimizers", "gd,lbfgs"])
    assert exc.value.code == 2
    assert "lbfgs" in capsys.readouterr().err


def test_unwritable_plot_path_exits_1(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    bad = tmp_path / "missing-dir" / "x.png"
    code = _main(
        ["compare", "--optimizers", "adam", "--max-iter", "5", "--plot", str(bad)]
    )
    assert code == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["rosenbrock", "beale", "quadratic"])
def test_accelerated_defaults_converge_on_every_problem(problem):
    p = _cli_compare.make_problem(problem)
    rows = _cli_compare.compare_rows(p, ["gd", "momentum", "nesterov", "adam"])
    assert [r["status"] for r in rows] == ["converged"] * 4
    gd = rows[0]["nit"]
    for row in rows[1:]:
        assert row["nit"] < gd
        np.testing.assert_allclose(row["result"].x, p.minimizer, atol=1e-5)

"""Tests of the ``gdcore compare`` subcommand."""

import math

import numpy as np
import pytest

from gdcore import _cli_compare, _cli_train, analysis, optim, reference, train
from gdcore._history import History
from gdcore.cli import build_parser, main
from gdcore.nn import MLP
from gdcore.problems import Quadratic, Rosenbrock


def _main(argv):
    return main(argv)


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
        (["--problem", "quadratic", "--kappa", "0.5"], "`--kappa` must be >= 1"),
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


# --problem mlp ------------------------------------------------------------------


def _mlp_table(out):
    """Method -> cells of the printed MLP table."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def _blobs(n=90, n_features=4, seed=0):
    """Three separable Gaussian clusters as a train/test Dataset."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, n_features)) + 3.0 * np.eye(3, n_features)[y]
    return _cli_train.Dataset("blobs", X[:60], y[:60], X[60:], y[60:])


def test_mlp_mode_on_digits_prints_a_row_per_optimizer(capsys):
    pytest.importorskip("sklearn")
    code = _main(["compare", "--problem", "mlp", "--epochs", "2", "--hidden", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "digits: 1438 train / 359 test; network 64-8-10 relu" in out
    assert "<= 0.05" in out
    rows = _mlp_table(out)
    assert list(rows) == list(_cli_compare.MLP_METHODS)
    for method, cells in rows.items():
        lr = _cli_compare.MLP_METHODS[method][1]["lr"]
        assert float(cells[1]) == lr
        assert cells[2:4] == [">", "2"]  # 2 epochs of an 8-unit net stay above 0.05
        assert 0.0 < float(cells[4]) < 2.4  # below the chance level log(10)
        assert 10.0 < float(cells[5]) <= 100.0 and cells[6] == "%"
        assert "max_epochs" in cells


def test_build_models_gives_equal_but_separate_weights():
    models = _cli_compare.build_models([5, 4, 3], 3, activation="tanh", seed=7)
    ref = reference.MLP([5, 4, 3], "tanh", seed=7).flat_params
    for m in models:
        np.testing.assert_array_equal(m.flat_params, ref)
    assert not np.shares_memory(models[0].flat_params, models[1].flat_params)
    other = _cli_compare.build_models([5, 4, 3], 1, activation="tanh", seed=8)[0]
    assert not np.array_equal(other.flat_params, ref)


def test_mlp_rows_share_initial_weights_and_batches():
    data = _blobs()
    methods = ["sgd", "adam", "rmsprop"]
    rows = _cli_compare.mlp_rows(data, methods, hidden=(6,), epochs=3, seed=5)
    start = MLP([4, 6, 3], seed=5).flat_params
    assert {r["init_digest"] for r in rows} == {_cli_compare.params_digest(start)}
    assert _cli_compare.params_digest(start + 0.0) != _cli_compare.params_digest(
        MLP([4, 6, 3], seed=6).flat_params
    )
    # The sgd row equals a run of fit built here by hand from the same seed.
    model = MLP([4, 6, 3], seed=5)
    history = train.fit(
        model, data.X_train, data.y_train, optim.SGD(model.params, lr=0.1),
        epochs=3, seed=5,
    )
    np.testing.assert_array_equal(rows[0]["history"].loss, history.loss)
    accuracy = np.mean(model.predict(data.X_test) == data.y_test)
    assert rows[0]["score_name"] == "test accuracy"
    assert rows[0]["score"] == accuracy
    assert rows[0]["final_loss"] == history.loss[-1]
    assert rows[1]["history"].loss != rows[0]["history"].loss


@pytest.mark.parametrize(
    "target, expected",
    [(1.5, 2), (1.0, 2), (0.5, 3), (0.45, 5), (0.4, 5), (0.1, None)],
)
def test_target_loss_callback_on_a_fabricated_history(target, expected):
    losses = [2.0, 1.0, 0.5, 0.7, 0.4]
    watch = _cli_compare.TargetLoss(target)
    for epoch in range(1, len(losses) + 1):
        watch(epoch, History(loss=losses[:epoch], epochs=epoch))
    assert watch.epoch == expected


def test_target_loss_never_reached_by_nan():
    watch = _cli_compare.TargetLoss(1.0)
    watch(1, History(loss=[math.nan], epochs=1))
    assert watch.epoch is None


@pytest.mark.parametrize("tol, target", [(None, 0.3), (1e-2, None)])
def test_mlp_rows_count_epochs_to_target_or_tolerance(tol, target):
    rows = _cli_compare.mlp_rows(
        _blobs(), ["sgd", "adagrad"], hidden=(6,), epochs=40, tol=tol,
        target_loss=target, seed=1,
    )
    for row in rows:
        losses = row["history"].loss
        if target is not None:
            # First epoch (from 1) whose loss is <= target, from the losses.
            hits = [e for e, value in enumerate(losses, start=1) if value <= target]
            assert row["epochs"] == (hits[0] if hits else math.inf)
            assert row["epochs_run"] == 40
        elif row["status"] == "converged":
            assert row["epochs"] == row["epochs_run"] == len(losses) < 40
        else:
            assert row["epochs"] == math.inf
    assert any(row["epochs"] != math.inf for row in rows)


def test_mlp_rows_need_a_tolerance_or_a_target():
    with pytest.raises(ValueError, match="`tol` or `target_loss`"):
        _cli_compare.mlp_rows(_blobs(), ["sgd"], tol=None, target_loss=None)


def test_mlp_plot_writes_a_png(tmp_path, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    path = tmp_path / "losses.png"
    code = _main(
        ["compare", "--problem", "mlp", "--optimizers", "sgd,adam", "--epochs", "2",
         "--hidden", "4", "--plot", str(path)]
    )
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(path) in capsys.readouterr().out


def test_mlp_plot_of_runs_without_a_finite_loss_exits_1(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "losses.png"
    code = _main(
        ["compare", "--problem", "mlp", "--optimizers", "sgd", "--lr", "sgd=1e12",
         "--epochs", "1", "--hidden", "4", "--plot", str(path)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert _mlp_table(out)["sgd"][2:4] == ["-", "(at"]
    assert "no run has a finite epoch loss" in err and not path.exists()


def test_mlp_mode_reads_a_csv_like_train(tmp_path, capsys):
    data = _blobs()
    X = np.vstack([data.X_train, data.X_test])
    y = np.concatenate([data.y_train, data.y_test])
    path = tmp_path / "blobs.csv"
    lines = ["a,b,kind,c,d"] + [
        f"{r[0]},{r[1]},k{lab},{r[2]},{r[3]}" for r, lab in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    code = _main(
        ["compare", "--problem", "mlp", "--data", str(path), "--label-column",
         "kind", "--optimizers", "adam", "--epochs", "2", "--hidden", "5",
         "--test-size", "0.25", "--tol", "1e-3"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "blobs.csv: 68 train / 22 test; network 4-5-3 relu" in out
    assert "tol 0.001" in out
    assert list(_mlp_table(out)) == ["adam"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--lr", "sgd"], "`--lr` must look like METHOD=VALUE"),
        (["--lr", "gd=0.1"], "`--lr` must look like METHOD=VALUE"),
        (["--lr", "adam=fast"], "`--lr` value must be a number"),
        (["--lr", "adam=0"], "`--lr` value must be positive"),
        (["--optimizers", "gd"], "`--optimizers`"),
        (["--target-loss", "-1"], "`--target-loss`"),
        (["--tol", "nan"], "`--tol`"),
        (["--epochs", "0"], "argument --epochs: must be at least 1"),
        (["--hidden", "0"], "argument --hidden: must be at least 1"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_mlp_bad_options_give_one_line_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", "--problem", "mlp", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gdcore compare: error: ") and err.count("\n") == 1
    assert match in err


def test_compare_and_train_share_the_data_and_network_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    shared = ("data", "label_column", "test_size", "no_standardize", "hidden",
              "activation", "loss", "dtype", "epochs", "batch_size", "sampling")
    for dest in shared:
        train_opt, compare_opt = (
            next(a for a in sub[name]._actions if a.dest == dest)
            for name in ("train", "compare")
        )
        assert compare_opt.option_strings == train_opt.option_strings
        assert compare_opt.default == train_opt.default
        assert compare_opt.choices == train_opt.choices
        assert compare_opt.type is train_opt.type


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--problem", "mlp", "--kappa", "10"], "mlp` takes no --kappa (quadratic"),
        (["--problem", "rosenbrock", "--kappa", "10"], "no --kappa (quadratic only)"),
        (["--problem", "beale", "--seed", "1"], "no --seed (quadratic and mlp only)"),
        (["--problem", "mlp", "--x0", "1", "1"], "no --x0 (the 2-D problems only)"),
        (["--problem", "mlp", "--max-iter", "5"], "no --max-iter (the 2-D problems"),
        (["--problem", "rosenbrock", "--hidden", "5"], "no --hidden (mlp only)"),
        (["--problem", "quadratic", "--epochs", "30"], "no --epochs (mlp only)"),
        (["--no-standardize"], "`--problem rosenbrock` takes no --no-standardize"),
        (["--data", "d.csv"], "takes no --data (mlp only)"),
        (["--target-loss", "0.1"], "takes no --target-loss (mlp only)"),
        (["--hidden", "--batch-size", "full"], "no --hidden (mlp only), --batch-size"),
    ],
)
def test_options_of_another_problem_are_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gdcore compare: error: ") and err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--lr", "gd=0.1", "--optimizers", "adam"],
        ["--lr", "nesterov=0.1"],
        ["--problem", "mlp", "--lr", "adam=0.1", "--optimizers", "sgd"],
    ],
)
def test_lr_of_an_optimizer_not_compared_is_an_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "`--lr` sets " in err and "not among the optimizers compared" in err


def test_options_are_noted_only_when_given():
    parser = build_parser()
    args = parser.parse_args(["compare"])
    assert args.given == {}
    args = parser.parse_args(["compare", "--kap", "10", "--seed=3", "--lr", "gd=1"])
    assert args.given == {"kappa": "--kappa", "seed": "--seed", "lr": "--lr"}
    assert parser.parse_args(["compare"]).given == {}


def test_every_mode_option_is_in_the_table():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["compare"]
    for group in sub._action_groups:
        dests = {a.dest for a in group._group_actions}
        if group.title.startswith("mlp:"):
            assert all(_cli_compare.OPTION_PROBLEMS[d] == ("mlp",) for d in dests)
        elif group.title == "2-D problems":
            assert dests and all(
                set(_cli_compare.OPTION_PROBLEMS[d]) <= set(_cli_compare.PROBLEMS)
                for d in dests
            )
    assert set(_cli_compare.OPTION_PROBLEMS) <= {a.dest for a in sub._actions}


def test_negative_seed_names_the_option(capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["compare", "--problem", "quadratic", "--seed", "-1"])
    assert exc.value.code == 2
    assert "argument --seed: must be at least 0, got -1" in capsys.readouterr().err

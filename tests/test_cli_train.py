"""The ``gdcore train`` command."""

import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from gdcore import _core
from gdcore.cli import main


def _summary_value(out, key):
    match = re.search(rf"^{key}\s+(.+)$", out, flags=re.MULTILINE)
    assert match, f"no {key!r} line in:\n{out}"
    return match.group(1)


def test_train_on_digits_with_defaults_reaches_95_percent(capsys):
    pytest.importorskip("sklearn")
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^epoch\s+1/30\s+loss", out, flags=re.MULTILINE)
    assert _summary_value(out, "optimizer").startswith("Adam (lr=0.001)")
    assert _summary_value(out, "network") == "64-100-10 relu, cross_entropy"
    assert _summary_value(out, "epochs") == "30"
    accuracy = float(_summary_value(out, "test accuracy").rstrip(" %"))
    assert accuracy >= 95.0


def test_train_quiet_sgd_full_batch(capsys):
    pytest.importorskip("sklearn")
    args = [
        "train",
        "-q",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--momentum",
        "0.9",
        "--batch-size",
        "full",
        "--epochs",
        "40",
        "--hidden",
        "32",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch " not in out
    assert _summary_value(out, "optimizer") == "SGD (lr=0.5)"
    assert _summary_value(out, "iterations") == "40"
    assert float(_summary_value(out, "test accuracy").rstrip(" %")) > 85.0


def _separable(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def test_train_on_a_csv_with_header_and_named_labels(tmp_path, capsys):
    X, y = _separable()
    path = tmp_path / "data.csv"
    names = np.where(y == 1, "yes", "no")
    lines = ["a,label,b,c"] + [
        f"{r[0]},{lab},{r[1]},{r[2]}" for r, lab in zip(X, names, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    code = main(
        [
            "train",
            "-q",
            "--data",
            str(path),
            "--label-column",
            "label",
            "--epochs",
            "60",
            "--lr",
            "0.01",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "data") == "data.csv: 96 train / 24 test"
    assert _summary_value(out, "network") == "3-100-2 relu, cross_entropy"
    assert float(_summary_value(out, "test accuracy").rstrip(" %")) >= 90.0


def test_train_on_npz_with_test_split_and_mse(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = X @ np.array([2.0, -1.0]) + 0.5
    path = tmp_path / "reg.npz"
    np.savez(path, X=X[:150], y=y[:150], X_test=X[150:], y_test=y[150:])
    code = main(
        [
            "train",
            "-q",
            "--data",
            str(path),
            "--loss",
            "mse",
            "--hidden",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--batch-size",
            "full",
            "--epochs",
            "300",
            "--activation",
            "identity",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "data") == "reg.npz: 150 train / 50 test"
    assert float(_summary_value(out, "test mse")) < 1e-6


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        (None, ".csv", "data file not found"),
        ("a,b\n1,2\nx,3\n", ".csv", "line 3: feature 'x' is not a number"),
        ("1,2,3\n4,5\n", ".csv", "line 2: 2 columns, expected 3"),
        ("", ".csv", "is empty"),
        ("1,2\n", ".json", "unsupported data file"),
        ("not a zip", ".npz", "data.npz is not a valid .npz archive"),
        ("a,b,y\n\n1,2,0\n3,4\n", ".csv", "line 4: 2 columns, expected 3"),
        ("\n\na,b\n1,2\n \n,,\nx,3\n", ".csv", "line 7: feature 'x' is not"),
        ("1,2,a\n\n3,4,\n", ".csv", "line 3: the label is empty"),
        ('1,"2\n",a\n3,x,b\n', ".csv", "line 3: feature 'x' is not"),
    ],
)
def test_bad_data_files_give_one_line_errors(
    tmp_path, capsys, content, suffix, message
):
    path = tmp_path / f"data{suffix}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["train", "-q", "--data", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_csv_cell_beyond_the_field_limit_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("1,2,a\n\n" + "x" * 200_000 + "\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "d.csv, line 3: field larger than field limit" in err
    assert err.count("\n") == 1


def test_npz_without_labels(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.ones((4, 2)), target=np.zeros(4))
    with pytest.raises(SystemExit):
        main(["train", "--data", str(path)])
    assert "lacks array(s) y; it has X, target" in capsys.readouterr().err


def test_bad_hyperparameter_is_reported(capsys):
    pytest.importorskip("sklearn")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr", "-1"])
    assert exc.value.code == 2
    assert "`lr`" in capsys.readouterr().err


def test_diverging_run_exits_nonzero(capsys):
    pytest.importorskip("sklearn")
    code = main(["train", "-q", "--optimizer", "sgd", "--lr", "1e9", "--epochs", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert _summary_value(out, "status") == "diverged"


def test_python_dash_m_gdcore_runs():
    done = subprocess.run(
        [sys.executable, "-m", "gdcore", "train", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "--batch-size" in done.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--threads", "0"], "argument --threads: must be at least 1, got 0"),
        (["--hidden", "8", "0"], "argument --hidden: must be at least 1, got 0"),
        (["--tol", "nan"], "argument --tol: must be a finite number >= 0, got nan"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ],
)
def test_bad_run_options_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizer", "adam", "--nesterov"], "--optimizer adam takes no --nesterov"),
        (["--optimizer", "sgd", "--betas", "0.9", "0.99"], "sgd takes no --betas"),
        (["--optimizer", "lm", "--loss", "mse", "--lr", "0.1"], "lm takes no --lr"),
        (["--label-column", "3"], "--label-column applies to CSV data files only"),
    ],
)
def test_options_that_do_not_apply_are_errors(argv, message, capsys):
    pytest.importorskip("sklearn")
    with pytest.raises(SystemExit) as exc:
        main(["train", "-q", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_empty_csv_label_is_an_error(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("1,2,a\n3,4,\n5,6,b\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(path)])
    assert "d.csv, line 2: the label is empty" in capsys.readouterr().err


def test_overflowing_features_are_an_error(tmp_path, capsys):
    path = tmp_path / "big.csv"
    rows = [f"{(-1) ** i * 1e300},{i % 2}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(path)])
    assert "too large to standardise" in capsys.readouterr().err


def test_too_many_threads_is_a_one_line_error(capsys):
    pytest.importorskip("sklearn")
    with pytest.raises(SystemExit) as exc:
        main(["train", "-q", "--epochs", "1", "--threads", "100000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    high = _core._max_threads()
    assert f"argument --threads: must be between 1 and {high}, got 100000" in err
    assert "`n`" not in err
    assert "Traceback" not in err


def test_interrupt_and_memory_errors_end_in_one_line(monkeypatch, capsys):
    pytest.importorskip("sklearn")
    from gdcore import train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupted)
    assert main(["train", "-q"]) == 130
    assert capsys.readouterr().err == "gdcore train: interrupted\n"

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 149. GiB")

    monkeypatch.setattr(train, "fit", too_big)
    assert main(["train", "-q"]) == 2
    assert (
        capsys.readouterr().err == "gdcore train: error: Unable to allocate 149. GiB\n"
    )


def test_csv_without_header_keeps_its_first_row_when_labels_are_text(tmp_path, capsys):
    X, y = _separable(n=100)
    path = tmp_path / "data.csv"
    names = np.where(y == 1, "dog", "cat")
    lines = [f"{r[0]},{r[1]},{lab}" for r, lab in zip(X, names, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    assert main(["train", "-q", "--data", str(path), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "data") == "data.csv: 80 train / 20 test"
    assert _summary_value(out, "network") == "2-100-2 relu, cross_entropy"


def test_csv_header_names_are_stripped(tmp_path, capsys):
    X, y = _separable(n=50)
    path = tmp_path / "data.csv"
    rows = [f"{r[0]}, {lab}, {r[1]}" for r, lab in zip(X, y, strict=True)]
    lines = ["x, label , y", *rows]
    path.write_text("\n".join(lines) + "\n")
    args = ["train", "-q", "--data", str(path), "--epochs", "1"]
    assert main([*args, "--label-column", "label"]) == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "data") == "data.csv: 40 train / 10 test"
    with pytest.raises(SystemExit):
        main([*args, "--label-column", "z"])
    assert "(columns: x, label, y)" in capsys.readouterr().err


def test_a_first_row_with_a_number_is_data(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("a,2,label\n1,2,x\n3,4,y\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(path)])
    assert "d.csv, line 1: feature 'a' is not a number" in capsys.readouterr().err


def _npy_renamed(path):
    np.save(path.with_suffix(".npy"), np.ones((3, 2)))
    path.with_suffix(".npy").rename(path)


def _truncated_zip(path):
    np.savez(path, X=np.ones((4, 2)), y=np.zeros(4))
    path.write_bytes(path.read_bytes()[:-30])


def _header_cut_short(path):
    np.savez(path, X=np.ones((4, 2)), y=np.zeros(4))
    data = path.read_bytes()
    # Same length, so the zip stays valid: the dict loses its closing brace.
    cut = data.replace(b"'shape': (4, 2), }", b"'shape': (4,      ")
    assert cut != data
    path.write_bytes(cut)


def _deflate_corrupted(path):
    np.savez_compressed(path, X=np.arange(400.0).reshape(200, 2), y=np.zeros(200))
    data = bytearray(path.read_bytes())
    data[60:80] = bytes(20)
    path.write_bytes(bytes(data))


def _zip_of_text(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("X.npy", "not an array")
        z.writestr("y.npy", "not an array")


@pytest.mark.parametrize(
    "write, detail",
    [
        (_npy_renamed, ""),
        (_truncated_zip, ""),
        (_zip_of_text, ": X, y not .npy"),
        (_header_cut_short, ": X is unreadable"),
        (_deflate_corrupted, ": X is unreadable"),
    ],
)
def test_files_that_are_not_npz_archives_say_so(tmp_path, capsys, write, detail):
    path = tmp_path / "d.npz"
    write(path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    message = "d.npz is not a valid .npz archive (a zip of .npy arrays)"
    assert f"error: {message}{detail} (see" in err
    assert "pickle" not in err and err.count("\n") == 1


def test_a_csv_byte_order_mark_is_not_part_of_the_first_cell(tmp_path, capsys):
    X, y = _separable(n=50)
    rows = [f"{lab},{r[0]},{r[1]}" for r, lab in zip(X, y, strict=True)]
    args = ["train", "-q", "--epochs", "1"]
    named = tmp_path / "named.csv"
    named.write_text("\n".join(["label,a,b", *rows]) + "\n", encoding="utf-8-sig")
    code = main([*args, "--data", str(named), "--label-column", "label"])
    assert code == 0
    assert _summary_value(capsys.readouterr().out, "network").startswith("2-100-2 ")
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(rows[::-1]) + "\n", encoding="utf-8-sig")
    assert main([*args, "--data", str(bare)]) == 0
    assert _summary_value(capsys.readouterr().out, "data").startswith("bare.csv: 40")


def test_a_csv_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "latin.csv"
    path.write_bytes("caf\xe9,b,y\n1,2,0\n".encode("latin-1"))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "cannot read latin.csv: 'utf-8' codec" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "arrays, loss, message",
    [
        ({"y": [0.0, 1.0, np.nan, 1.0]}, "cross_entropy", "y holds NaN or infinite"),
        ({"y": [0.0, 1.0, np.inf, 1.0]}, "mse", "y holds NaN or infinite labels"),
        (
            {"y": np.zeros(4, dtype=[("a", "f8"), ("b", "i4")])},
            "cross_entropy",
            "y must hold numbers or text labels, got dtype [('a', '<f8')",
        ),
        (
            {"y": np.zeros(4, dtype=[("a", "f8")])},
            "mse",
            "y must hold numbers or text labels, got dtype [('a', '<f8')]",
        ),
        ({"y": np.ones(4) * 1j}, "cross_entropy", "y must hold numbers or text"),
        (
            {"y": [0, 1, 0, 1], "X_test": np.ones((2, 2)), "y_test": [1.0, np.nan]},
            "cross_entropy",
            "y_test holds NaN or infinite labels",
        ),
        ({"y": np.array(list("abab"))}, "mse", "y must be numbers for --loss mse"),
    ],
)
def test_bad_npz_labels_are_one_line_errors(tmp_path, capsys, arrays, loss, message):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(8.0).reshape(4, 2), **arrays)
    with pytest.raises(SystemExit) as exc:
        main(["train", "-q", "--data", str(path), "--loss", loss])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: d.npz: {message}" in err and err.count("\n") == 1


def test_npz_text_and_bool_labels_are_classes(tmp_path, capsys):
    X, y = _separable(n=40)
    for labels in (np.where(y == 1, "yes", "no"), y == 1):
        path = tmp_path / "d.npz"
        np.savez(path, X=X, y=labels)
        assert main(["train", "-q", "--data", str(path), "--epochs", "1"]) == 0
        out = capsys.readouterr().out
        assert _summary_value(out, "network") == "3-100-2 relu, cross_entropy"


def _regression_npz(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    path = tmp_path / "reg.npz"
    np.savez(path, X=X, y=X @ np.array([1.0, -2.0]))
    return path


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--batch-size", "32"], "--batch-size"),
        (["--batch-size", "full"], "--batch-size"),
        (["--sampling", "without_replacement"], "--sampling"),
        (["--engine", "auto"], "--engine"),
        (["--engine", "python", "--batch", "4", "--lr", "0.1"], "--batch-size, "),
        (["--sampling=with_replacement", "--engine=python"], "--engine, --sampling"),
    ],
)
def test_options_lm_does_not_use_are_errors(tmp_path, capsys, argv, named):
    path = _regression_npz(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "-q",
                "--data",
                str(path),
                "--optimizer",
                "lm",
                "--loss",
                "mse",
                *argv,
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: --optimizer lm takes no {named}" in err
    assert err.count("\n") == 1


def test_lm_takes_the_options_it_uses(tmp_path, capsys):
    path = _regression_npz(tmp_path)
    argv = ["train", "-q", "--data", str(path), "--optimizer", "lm", "--loss", "mse"]
    argv += ["--hidden", "4", "--epochs", "3", "--tol", "1e-12", "--seed", "1"]
    argv += ["--threads", "1", "--dtype", "float32", "--test-size", "0.25"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _summary_value(out, "optimizer") == "LevenbergMarquardt"
    assert _summary_value(out, "data") == "reg.npz: 30 train / 10 test"


def test_train_notes_the_options_given():
    from gdcore.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train"]).given == {}
    args = parser.parse_args(["train", "--batch", "8", "--nesterov", "-q"])
    assert args.given == {
        "batch_size": "--batch-size",
        "nesterov": "--nesterov",
        "quiet": "-q",
    }

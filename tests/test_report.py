"""bench/report.py on hand-made pytest-benchmark JSON files (no benchmark is run)."""

import importlib.util
import json
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("gdcore_bench_report", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(group, impl, seconds, **extra):
    return {
        "name": f"test[{impl}]",
        "group": group,
        "stats": {"min": seconds, "median": seconds, "mean": seconds},
        "extra_info": {"impl": impl, **extra},
    }


def _results():
    """One group of each table, with gdcore and one alternative."""
    return [
        _bench("Adam-1e6", "gdcore", 1e-3, bytes=28e6, loadavg=0.5),
        _bench("Adam-1e6", "a+=b", 1e-3, bytes=12e6, loadavg=0.7),
        _bench("Adam-1e6", "torch", 3e-3, bytes=28e6),
        _bench("train digits", "gdcore", 0.05, samples=1000),
        _bench("train digits", "torch", 0.2, samples=1000),
        _bench("lm-Misra1a", "gdcore", 1e-4),
        _bench("lm-Misra1a", "scipy", 3e-4),
    ]


def _run(report, tmp_path, capsys, benchmarks, machine_info=None):
    """(exit code, stdout, stderr) of the script on a file holding `benchmarks`."""
    path = tmp_path / "bench.json"
    data = {"benchmarks": benchmarks}
    if machine_info is not None:
        data["machine_info"] = machine_info
    path.write_text(json.dumps(data))
    try:
        code = report.main([str(path)])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_well_formed_file_gives_the_three_tables(report, tmp_path, capsys):
    code, out, err = _run(
        report, tmp_path, capsys, _results(), {"loadavg_start": [0.25, 0.5, 1.0]}
    )
    assert code == 0 and err == ""
    assert "start 0.25, min 0.50, max 0.70." in out
    assert "| Adam-1e6 | 1 ms | 28.0 |" in out
    assert "| train digits | 50 ms | 20,000 |" in out
    assert "| lm-Misra1a | 100 us | scipy 3.00x |" in out


@pytest.mark.parametrize(
    "start, shown",
    [(None, "n/a"), ([], "n/a"), ("high", "n/a"), (0.75, "0.75"), ([1.5], "1.50")],
)
def test_an_odd_loadavg_start_is_shown_as_unknown(
    report, tmp_path, capsys, start, shown
):
    code, out, err = _run(
        report, tmp_path, capsys, _results(), {"loadavg_start": start}
    )
    assert code == 0 and err == ""
    assert f"during the run: start {shown}, min 0.50" in out


def test_odd_optional_extra_info_is_left_blank(report, tmp_path, capsys):
    results = _results()
    results[0]["extra_info"]["loadavg"] = "busy"
    results[2]["extra_info"]["bytes"] = "28 MB"
    results[4]["extra_info"]["samples"] = [1000]
    results[6]["extra_info"] = ["not", "an", "object"]
    code, out, err = _run(report, tmp_path, capsys, results, ["not an object"])
    assert code == 0 and err == ""
    assert "min 0.70, max 0.70" in out
    assert "| Adam-1e6 | 1 ms | 28.0 |" in out
    assert "| lm-Misra1a | 100 us | test[scipy] 3.00x |" in out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(group=["Adam"]), "benchmark 1 (a+=b) has a group that"),
        (lambda b: b["extra_info"].update(impl=["a+=b"]), "benchmark 1 lacks a name"),
        (lambda b: b["stats"].update(min=float("inf")), "has a time of inf"),
        (lambda b: b["stats"].update(min=10**400), "has a time of 1000"),
        (lambda b: b["stats"].update(min="fast"), "lacks a number as stats.min"),
        (lambda b: b["stats"].update(min=True), "lacks a number as stats.min"),
        (lambda b: b.update(stats=[1e-3]), "lacks a number as stats.min"),
    ],
)
def test_a_malformed_required_field_is_a_one_line_error(
    report, tmp_path, capsys, change, message
):
    results = _results()
    change(results[1])
    code, out, err = _run(report, tmp_path, capsys, results)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "error: " in err and message in err


def test_an_infinite_time_of_a_reference_is_an_error(report, tmp_path, capsys):
    results = _results()
    results[1]["stats"]["min"] = float("inf")  # the a+=b the bandwidth divides by
    code, _, err = _run(report, tmp_path, capsys, results)
    assert code == 2 and "benchmark 1 (a+=b) has a time of inf" in err


@pytest.mark.parametrize(
    "benchmarks",
    [
        [],
        [_bench("Adam-1e6", "torch", 1e-3), _bench("Adam-1e6", "a+=b", 1e-3)],
        [{**_bench("Adam-1e6", "gdcore", 1e-3), "group": None}],
    ],
)
def test_a_file_without_gdcore_results_says_so(report, tmp_path, capsys, benchmarks):
    code, out, err = _run(report, tmp_path, capsys, benchmarks)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.endswith("holds no gdcore results\n")

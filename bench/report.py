"""Turn a pytest-benchmark JSON file into Markdown tables of ratios per group.

Usage::

    pytest bench/ --benchmark-only --benchmark-json bench.json
    python bench/report.py bench.json [--stat min|median]

Only groups holding a gdcore result are shown, in two tables.

Optimizer steps (bench_optim.py), one optimizer at one size per row: gdcore's time,
its speed-up over every other implementation (their time / gdcore's time), and the
fraction of the in-place bandwidth it reaches: (bytes moved / time) of gdcore over
that of an in-place add at the same size (an Adam step moves 28 bytes per float32
param, ``a += b`` 12). At gdcore's thread count the add is gdcore's plain-SGD kernel
(``a+=b-threads``, since NumPy's add is serial); at one thread (``gdcore-1t``) it is
NumPy's ``a += b``.

Training epochs (bench_train.py, groups whose results record ``samples``), one data
set, batch size and dtype per row: gdcore's epoch time and samples/s, its speed-up
over every other implementation, and the fraction of the GEMM limit it reaches
(time of the epoch's matrix products alone / gdcore's epoch time).

Other groups (bench_nn.py, bench_lm.py), one per row: gdcore's time and its speed-up
over each other implementation of the group.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

PRIMARY = ("gdcore", "gdcore-flat", "gdcore-separate")
TRAIN_ORDER = ("gdcore-python", "reference", "textbook", "sklearn", "torch",
               "torch-fused")
GEMM_LIMIT = "gemm-limit"


def load(path: str, stat: str) -> tuple[dict, dict]:
    """Return ({group: {impl: (seconds, bytes, loadavg, samples)}}, machine_info).

    A benchmark without a group (pytest-benchmark writes null) is left out. The
    optional numbers (``bytes``, ``loadavg`` and ``samples`` of ``extra_info``) are
    None unless they are finite numbers, ``bytes`` and ``samples`` positive ones;
    ``machine_info`` is {} unless it is an object, and its ``loadavg_start`` is
    the 1-minute load (a finite number) or None.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If it is not JSON or not a pytest-benchmark file, or a benchmark's name,
        group, ``extra_info.impl`` or ``stats.<stat>`` is missing or malformed (the
        time must be a finite number > 0).
    """
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError("not a pytest-benchmark JSON file (no 'benchmarks' list)")
    groups: dict = defaultdict(dict)
    for k, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict):
            raise ValueError(f"benchmark {k} is not a JSON object")
        info = bench.get("extra_info")
        info = info if isinstance(info, dict) else {}
        impl = info.get("impl", bench.get("name"))
        if not isinstance(impl, str):
            raise ValueError(f"benchmark {k} lacks a name or extra_info.impl string")
        group = bench.get("group")
        if group is None:
            continue
        if not isinstance(group, str):
            raise ValueError(f"benchmark {k} ({impl}) has a group that is not a string")
        stats = bench.get("stats")
        seconds = stats.get(stat) if isinstance(stats, dict) else None
        if not _is_number(seconds):
            raise ValueError(f"benchmark {k} ({impl}) lacks a number as stats.{stat}")
        if _positive(seconds) is None:
            raise ValueError(f"benchmark {k} ({impl}) has a time of {seconds}")
        groups[group][impl] = (_positive(seconds), _positive(info.get("bytes")),
                               _finite(info.get("loadavg")),
                               _positive(info.get("samples")))
    machine = data.get("machine_info")
    machine = dict(machine) if isinstance(machine, dict) else {}
    start = machine.get("loadavg_start")
    if isinstance(start, list) and start:  # os.getloadavg(): 1, 5 and 15 minutes
        start = start[0]
    machine["loadavg_start"] = _finite(start)
    return dict(groups), machine


def _is_number(value) -> bool:
    """Whether a JSON value is a number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> float | None:
    """`value` as a float if it is a finite number, else None."""
    if not _is_number(value):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond the float range
        return None
    return value if math.isfinite(value) else None


def _positive(value) -> float | None:
    """`value` as a float if it is a finite number > 0, else None."""
    value = _finite(value)
    return value if value is not None and value > 0 else None


def _fmt_time(seconds: float) -> str:
    """Seconds in a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _bandwidth_fraction(group: dict, impl: str, ref: str = "a+=b") -> str:
    """GB/s of `impl` over GB/s of the in-place add `ref` in the same group."""
    if impl not in group or ref not in group or not group[impl][1] or not group[ref][1]:
        return ""
    seconds, nbytes = group[impl][:2]
    ab_seconds, ab_bytes = group[ref][:2]
    return f"{(nbytes / seconds) / (ab_bytes / ab_seconds):.2f}"


def _is_training(group: dict) -> bool:
    """Whether the group's results record samples per epoch (bench_train.py)."""
    return any(result[3] for result in group.values())


def _is_step(group: dict) -> bool:
    """Whether the group's results record bytes moved (bench_optim.py)."""
    return any(result[1] for result in group.values())


def table(groups: dict) -> str:
    """Markdown table: one row per group, one speed-up column per alternative."""
    groups = {name: g for name, g in groups.items()
              if any(p in g for p in PRIMARY) and _is_step(g)}
    others = sorted({impl for g in groups.values() for impl in g
                     if impl not in PRIMARY and not impl.startswith("a+=b")})
    head = ["group", "gdcore", "GB/s", "of a+=b (same threads)", "1 thread: of a+=b",
            *(f"vs {o}" for o in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(groups):
        group = groups[name]
        for primary in PRIMARY:
            if primary not in group:
                continue
            seconds, nbytes = group[primary][:2]
            label = name if primary == "gdcore" else f"{name} ({primary})"
            row = [label, _fmt_time(seconds)]
            gbs = nbytes / seconds / 1e9 if nbytes else float("nan")
            row.append(f"{gbs:.1f}")
            row += [_bandwidth_fraction(group, primary, "a+=b-threads"),
                    _bandwidth_fraction(group, "gdcore-1t")]
            for other in others:
                ratio = group[other][0] / seconds if other in group else None
                row.append(f"{ratio:.2f}x" if ratio is not None else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def train_table(groups: dict) -> str:
    """Markdown table of the training groups: samples/s, speed-ups, GEMM limit."""
    groups = {name: g for name, g in groups.items()
              if "gdcore" in g and _is_training(g)}
    others = [o for o in TRAIN_ORDER if any(o in g for g in groups.values())]
    others += sorted({impl for g in groups.values() for impl in g} - set(others)
                     - {"gdcore", GEMM_LIMIT})
    head = ["group", "gdcore epoch", "samples/s", "GEMM limit samples/s",
            "of GEMM limit", *(f"vs {o}" for o in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(groups):
        group = groups[name]
        seconds, _, _, samples = group["gdcore"]
        samples = samples or float("nan")  # a row that did not record its samples
        row = [name, _fmt_time(seconds), f"{samples / seconds:,.0f}"]
        if GEMM_LIMIT in group:
            limit = group[GEMM_LIMIT][0]
            row += [f"{samples / limit:,.0f}", f"{limit / seconds:.2f}"]
        else:
            row += ["", ""]
        row += [f"{group[o][0] / seconds:.2f}x" if o in group else "" for o in others]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def other_table(groups: dict) -> str:
    """Markdown table of the groups that record neither bytes nor samples."""
    groups = {name: g for name, g in groups.items()
              if "gdcore" in g and not _is_training(g) and not _is_step(g)}
    lines = ["| group | gdcore | speed-up over |", "|---|---|---|"]
    for name in sorted(groups):
        group = groups[name]
        seconds = group["gdcore"][0]
        ratios = ", ".join(f"{impl} {group[impl][0] / seconds:.2f}x"
                           for impl in sorted(group) if impl != "gdcore")
        lines.append(f"| {name} | {_fmt_time(seconds)} | {ratios} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of a pytest-benchmark JSON file; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean"])
    args = parser.parse_args(argv)

    def fail(message: str):
        """Exit with status 2 and a one-line message (no usage block)."""
        parser.exit(2, f"{parser.prog}: error: {args.json_file}: {message}\n")

    try:
        groups, machine = load(args.json_file, args.stat)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        fail(str(exc))
    tables = [("", table(groups)),
              ("\nTraining, one epoch per call (Adam, lr 1e-3):\n",
               train_table(groups)),
              ("\nNetworks and Levenberg-Marquardt:\n", other_table(groups))]
    tables = [(title, text) for title, text in tables if text.count("\n") > 1]
    if not tables:
        fail("holds no gdcore results")
    loads = [v[2] for g in groups.values() for v in g.values() if v[2] is not None]
    print(f"Statistic: {args.stat} time per call; speed-up = other / gdcore.\n")
    print(f"Threads: gdcore {machine.get('gdcore_threads')}, torch "
          f"{machine.get('torch_threads')} (torch {machine.get('torch')}), BLAS "
          f"{machine.get('blas_threads', '?')}; OpenMP "
          f"{machine.get('gdcore_openmp')}; parallel threshold "
          f"{machine.get('gdcore_parallel_threshold')} elements.")
    if loads:
        start = machine["loadavg_start"]
        start = "n/a" if start is None else f"{start:.2f}"
        print(f"Load average (1 min) during the run: start {start}, "
              f"min {min(loads):.2f}, "
              f"max {max(loads):.2f}.\n")
    for title, text in tables:
        if title:
            print(title)
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

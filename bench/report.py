"""Turn a pytest-benchmark JSON file into a Markdown table of ratios per group.

Usage::

    pytest bench/bench_optim.py --benchmark-only --benchmark-json bench.json
    python bench/report.py bench.json [--stat min|median]

Only groups holding a gdcore optimizer result are shown. Per group (one optimizer at
one size): gdcore's time, its speed-up over every other implementation (their time /
gdcore's time), and the fraction of the in-place bandwidth it reaches: (bytes moved /
time) of gdcore over that of NumPy ``a += b`` at the same size (an Adam step moves 28
bytes per float32 param, ``a += b`` 12), with gdcore's own thread count and with one
thread (``gdcore-1t``; NumPy's add is serial).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

PRIMARY = ("gdcore", "gdcore-flat", "gdcore-separate")


def load(path: str, stat: str) -> tuple[dict, dict]:
    """Return ({group: {impl: (seconds, bytes)}}, machine_info) from a JSON file."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    groups: dict = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        impl = info.get("impl", bench["name"])
        groups[bench["group"]][impl] = (bench["stats"][stat], info.get("bytes"),
                                        info.get("loadavg"))
    return dict(groups), data.get("machine_info", {})


def _fmt_time(seconds: float) -> str:
    """Seconds in a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _bandwidth_fraction(group: dict, impl: str) -> str:
    """GB/s of `impl` over GB/s of a += b in the same group, as text."""
    if impl not in group or "a+=b" not in group or not group[impl][1]:
        return ""
    seconds, nbytes, _ = group[impl]
    ab_seconds, ab_bytes, _ = group["a+=b"]
    return f"{(nbytes / seconds) / (ab_bytes / ab_seconds):.2f}"


def table(groups: dict) -> str:
    """Markdown table: one row per group, one speed-up column per alternative."""
    groups = {name: g for name, g in groups.items() if any(p in g for p in PRIMARY)}
    others = sorted({impl for g in groups.values() for impl in g
                     if impl not in PRIMARY and impl != "a+=b"})
    head = ["group", "gdcore", "GB/s", "of a+=b", "1 thread: of a+=b",
            *(f"vs {o}" for o in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in sorted(groups):
        group = groups[name]
        for primary in PRIMARY:
            if primary not in group:
                continue
            seconds, nbytes, _ = group[primary]
            label = name if primary == "gdcore" else f"{name} ({primary})"
            row = [label, _fmt_time(seconds)]
            gbs = nbytes / seconds / 1e9 if nbytes else float("nan")
            row.append(f"{gbs:.1f}")
            row += [_bandwidth_fraction(group, primary),
                    _bandwidth_fraction(group, "gdcore-1t")]
            for other in others:
                ratio = group[other][0] / seconds if other in group else None
                row.append(f"{ratio:.2f}x" if ratio is not None else "")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean"])
    args = parser.parse_args(argv)
    groups, machine = load(args.json_file, args.stat)
    loads = [v[2] for g in groups.values() for v in g.values() if v[2] is not None]
    print(f"Statistic: {args.stat} time per step; speed-up = other / gdcore.\n")
    print(f"Threads: gdcore {machine.get('gdcore_threads')}, torch "
          f"{machine.get('torch_threads')} (torch {machine.get('torch')}); OpenMP "
          f"{machine.get('gdcore_openmp')}; parallel threshold "
          f"{machine.get('gdcore_parallel_threshold')} elements.")
    if loads:
        print(f"Load average (1 min) during the run: start "
              f"{machine.get('loadavg_start', ['?'])[0]}, min {min(loads):.2f}, "
              f"max {max(loads):.2f}.\n")
    print(table(groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

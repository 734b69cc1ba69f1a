#!/usr/bin/env python3
"""Print a pytest-benchmark JSON file as Markdown tables, one per benchmark, with each
loop's median, min-max, median per operation, and the ratio of each loop's median to
the baseline loop's (gmploop unless --baseline says otherwise).

    python bench/compare.py /tmp/b.json [more.json ...] [--baseline NAME]

A ratio "uvloop/gmploop 1.9x" means uvloop's median time is 1.9 times gmploop's, so
gmploop is faster; below 1x, gmploop is slower.  When the baseline loop is not in a file
(for example gmploop was not importable), ratios are against asyncio and the output says so.
"""
import argparse
import json
import re
import sys
from collections import defaultdict

LOOP_ORDER = ("asyncio", "uvloop", "rloop", "gmploop")
FALLBACK_BASELINE = "asyncio"


def fmt_time(seconds):
    """Seconds to 3 significant digits in the largest unit that keeps them >= 1."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"


def loop_of(bench):
    """The loop a benchmark ran on: its extra_info, else its parametrization."""
    info = bench.get("extra_info") or {}
    if "loop" in info:
        return info["loop"]
    params = bench.get("params") or {}
    if "loop_name" in params:
        return params["loop_name"]
    m = re.search(r"\[([^\]]+)\]$", bench["name"])
    return m.group(1) if m else bench["name"]


def group_of(bench):
    return bench.get("group") or re.sub(r"\[.*\]$", "", bench["name"])


def loop_sort_key(name):
    return (LOOP_ORDER.index(name) if name in LOOP_ORDER else len(LOOP_ORDER), name)


def header(data, path):
    mi = data.get("machine_info") or {}
    ci = data.get("commit_info") or {}
    cpu = (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor") or "?"
    commit = (ci.get("id") or "?")[:10] + (" (dirty tree)" if ci.get("dirty") else "")
    py = f"{mi.get('python_implementation', 'Python')} {mi.get('python_version', '?')}"
    return f"`{path}`: {py}, {cpu}, commit {commit}, {data.get('datetime', '?')}"


def report(data, path, baseline_wanted, out):
    groups = defaultdict(dict)
    for bench in data.get("benchmarks", []):
        groups[group_of(bench)][loop_of(bench)] = bench
    out.write(f"{header(data, path)}\n\n")
    if not groups:
        out.write("No benchmarks in this file.\n\n")
        return

    loops_seen = sorted({lp for g in groups.values() for lp in g}, key=loop_sort_key)
    baseline = baseline_wanted
    if not any(baseline in g for g in groups.values()):
        baseline = FALLBACK_BASELINE if FALLBACK_BASELINE != baseline_wanted else None
        if baseline is None or not any(baseline in g for g in groups.values()):
            baseline = loops_seen[0]
        out.write(f"**{baseline_wanted} is not in this run; ratios are against {baseline}.**\n\n")
    out.write(
        f"Times are medians of the timed rounds; a ratio X/{baseline} above 1x means "
        f"{baseline} is faster.\n\n"
    )

    summary = []
    for name, by_loop in groups.items():
        n = next((b.get("extra_info", {}).get("n") for b in by_loop.values()), None)
        base = by_loop.get(baseline)
        title = f"### {name}" + (f" (n = {n:,})" if n else "")
        out.write(title + "\n\n")
        out.write(f"| loop | median | min – max | median per op | rounds | vs {baseline} |\n")
        out.write("|---|---:|---:|---:|---:|---|\n")
        row = {}
        for lp in sorted(by_loop, key=loop_sort_key):
            st = by_loop[lp]["stats"]
            per_op = fmt_time(st["median"] / n) if n else "–"
            if base is None:
                ratio = "–"
            elif lp == baseline:
                ratio = "baseline"
            else:
                ratio = f"{lp}/{baseline} {st['median'] / base['stats']['median']:.2f}x"
            out.write(
                f"| {lp} | {fmt_time(st['median'])} | {fmt_time(st['min'])} – "
                f"{fmt_time(st['max'])} | {per_op} | {st['rounds']} | {ratio} |\n"
            )
            cell = per_op if n else fmt_time(st["median"])
            if base is not None and lp != baseline:
                cell += f" ({st['median'] / base['stats']['median']:.2f}x)"
            row[lp] = cell
        out.write("\n")
        summary.append((name, row))

    out.write(f"### Summary: median per op (ratio to {baseline})\n\n")
    out.write("| benchmark | " + " | ".join(loops_seen) + " |\n")
    out.write("|---|" + "---:|" * len(loops_seen) + "\n")
    for name, row in summary:
        out.write(f"| {name} | " + " | ".join(row.get(lp, "–") for lp in loops_seen) + " |\n")
    out.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="files written by pytest --benchmark-json")
    ap.add_argument("--baseline", default="gmploop", help="loop the ratios are against")
    args = ap.parse_args(argv)
    try:
        for path in args.json:
            with open(path) as f:
                report(json.load(f), path, args.baseline, sys.stdout)
    except BrokenPipeError:  # piped into head
        sys.stderr.close()


if __name__ == "__main__":
    main()

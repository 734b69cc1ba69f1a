#!/usr/bin/env python3
"""Print a pytest-benchmark JSON file as Markdown tables, one per benchmark, with each
loop's median, min-max, median per operation, and the ratio of each loop's median to
the baseline loop's (gmploop unless --baseline says otherwise).

    python bench/compare.py /tmp/b.json [more.json ...] [--baseline NAME]

A ratio "uvloop/gmploop 1.9x" means uvloop's median time is 1.9 times gmploop's, so
gmploop is faster; below 1x, gmploop is slower.  When the baseline loop is not in a file
(for example gmploop was not importable), ratios are against asyncio and the output says so.

The network benchmarks (test_network.py, marked suite=network in extra_info) are printed
as one table instead: a row per benchmark, each loop's requests per second and server CPU
per request, the C reference server's figures for the same load, and the ratios of each
loop's CPU per request to the baseline's.

The scaling benchmarks (test_scaling.py, suite=scaling) compare each loop with itself: a
row per benchmark, each loop's figure without and with the idle state (10,000 idle
connections, 1M pending timers) and their ratio, which is the target (near 1x: the cost
does not grow with what the loop holds).  The memory benchmarks (test_memory.py,
suite=memory) print bytes per idle connection and per idle task, and each peer's figure
over the baseline's (above 1x, the baseline uses less).
"""
import argparse
import json
import re
import sys
from collections import defaultdict

LOOP_ORDER = ("asyncio", "uvloop", "rloop", "gmploop", "gmploop-bare")
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


def suite_of(bench):
    return (bench.get("extra_info") or {}).get("suite")


def is_network(bench):
    return suite_of(bench) == "network"


def report(data, path, baseline_wanted, out):
    out.write(f"{header(data, path)}\n\n")
    benches = data.get("benchmarks", [])
    if not benches:
        out.write("No benchmarks in this file.\n\n")
        return
    plain = [b for b in benches if suite_of(b) not in ("network", "scaling", "memory")]
    network = [b for b in benches if is_network(b)]
    scaling = [b for b in benches if suite_of(b) == "scaling"]
    memory = [b for b in benches if suite_of(b) == "memory"]
    if plain:
        report_timed(plain, baseline_wanted, out)
    if network:
        report_network(network, baseline_wanted, out)
    if scaling:
        report_scaling(scaling, out)
    if memory:
        report_memory(memory, baseline_wanted, out)


def choose_baseline(loops_present, wanted, out):
    """wanted if it ran, else asyncio, else the first loop; says so when it is not wanted."""
    if wanted in loops_present:
        return wanted
    for candidate in (FALLBACK_BASELINE, *sorted(loops_present, key=loop_sort_key)):
        if candidate in loops_present:
            out.write(f"**{wanted} is not in this run; ratios are against {candidate}.**\n\n")
            return candidate
    return None


def report_timed(benches, baseline_wanted, out):
    groups = defaultdict(dict)
    for bench in benches:
        groups[group_of(bench)][loop_of(bench)] = bench

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


# The network table.

ECHO_KINDS = ("streams", "protocol", "buffered", "sock")
HTTP_KINDS = ("aiohttp", "httptools")
# The C reference servers: their figures go in a column of their own, on the rows of the
# same protocol and message size.
REFERENCE = {"echo": "c-epoll", "http": "c-http"}
CLIENT_BOUND = 0.9  # client_util above this: req/s shows the client's limit


def fmt_rate(rps):
    if rps >= 1e6:
        return f"{rps / 1e6:.2f}M/s"
    if rps >= 1e3:
        return f"{rps / 1e3:.1f}k/s" if rps < 1e5 else f"{rps / 1e3:.0f}k/s"
    return f"{rps:.0f}/s"


def fmt_size(size):
    return f"{size // 1024} KiB" if size and size % 1024 == 0 else (f"{size} B" if size else "")


def network_row_key(info):
    protocol, kind = info.get("protocol", "?"), info.get("kind", "?")
    kinds = ECHO_KINDS + HTTP_KINDS
    return (0 if protocol == "echo" else 1, kinds.index(kind) if kind in kinds else len(kinds),
            kind, info.get("size") or 0)


def network_cell(info):
    cell = f"{fmt_rate(info['rps'])} · {fmt_time(info['cpu_us_per_req'] * 1e-6)}"
    if info.get("client_util", 0) > CLIENT_BOUND:
        cell += " †"
    return cell


def report_network(benches, baseline_wanted, out):
    rows = defaultdict(dict)    # (protocol, kind, size) -> loop -> extra_info
    refs = {}                   # (protocol, size) -> extra_info of the C reference server
    for bench in benches:
        info = bench["extra_info"]
        key = (info["protocol"], info["kind"], info.get("size") or 0)
        if info["loop"] == REFERENCE.get(info["protocol"]):
            refs[(info["protocol"], key[2])] = info
        else:
            rows[key][info["loop"]] = info
    loops = sorted({lp for r in rows.values() for lp in r}, key=loop_sort_key)

    out.write("### Network: requests/s · server CPU per request\n\n")
    baseline = choose_baseline(set(loops), baseline_wanted, out) if loops else None
    peers = [lp for lp in loops if lp != baseline]
    infos = [b["extra_info"] for b in benches]
    conns = {i["protocol"]: i.get("conns") for i in infos}
    out.write(
        f"Each cell: requests per second, then the server's CPU time (user + system) per "
        f"request over the measured window (pinned: {infos[0].get('pinned')}, scale "
        f"{infos[0].get('scale')}).  Echo: {conns.get('echo', '?')} ping-pong connections "
        f"from bench/c/echo_load.c; HTTP: wrk, {conns.get('http', '?')} connections.  C: "
        f"the reference server in C under the same load.  X/{baseline}: X's CPU per "
        f"request over {baseline}'s; above 1x, {baseline} spends less CPU per request.  "
        f"†: the load generator was over {CLIENT_BOUND:.0%} busy, so that req/s is the "
        f"client's limit, not the server's.\n\n"
    )
    ratio_cols = [f"{p}/{baseline}" for p in peers] + ([f"C/{baseline}"] if baseline else [])
    cols = loops + ["C"] + ratio_cols
    out.write("| benchmark | " + " | ".join(cols) + " |\n")
    out.write("|---|" + "---:|" * len(cols) + "\n")
    for key in sorted(rows, key=lambda k: network_row_key(
            {"protocol": k[0], "kind": k[1], "size": k[2]})):
        protocol, kind, size = key
        by_loop = rows[key]
        ref = refs.get((protocol, size))
        cells = [network_cell(by_loop[lp]) if lp in by_loop else "–" for lp in loops]
        cells.append(network_cell(ref) if ref else "–")
        base = by_loop.get(baseline)
        for other in [by_loop.get(p) for p in peers] + ([ref] if baseline else []):
            if base is None or other is None:
                cells.append("–")
            else:
                cells.append(f"{other['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x")
        label = f"{protocol} {kind}" + (f" {fmt_size(size)}" if size else "")
        out.write(f"| {label} | " + " | ".join(cells) + " |\n")
    out.write("\n")


# The scaling and memory tables.


def fmt_bytes(n):
    if abs(n) >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if abs(n) >= 10 << 10:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def scaling_label(info):
    if "idle" in info:
        return f"{info['kind']}, {info['size'] // 1024} KiB echo, {info['conns']} active, " \
               f"{info['idle']:,} idle"
    return f"{info['kind']} ({info.get('pending', 0):,} pending, n = {info.get('n', 0):,})"


def report_scaling(benches, out):
    rows = defaultdict(dict)
    for bench in benches:
        info = bench["extra_info"]
        rows[scaling_label(info)][info["loop"]] = info
    loops = sorted({lp for r in rows.values() for lp in r}, key=loop_sort_key)
    out.write("### Cost that grows only with work\n\n")
    out.write(
        "Each cell: the loop's figures without the idle state and with it, then with / "
        "without (the target: within 10% of 1x).  Idle connections: server CPU per "
        "request in three windows, before the idle connections were opened, with them, "
        "and after they were closed; without = the mean of before and after.  Pending "
        "timers: time per call_soon without and with, medians of alternating rounds on "
        "two loops.\n\n")
    out.write("| benchmark | " + " | ".join(loops) + " |\n")
    out.write("|---|" + "---:|" * len(loops) + "\n")
    for label in sorted(rows):
        cells = []
        for lp in loops:
            info = rows[label].get(lp)
            if info is None:
                cells.append("–")
                continue
            if "before_us" in info:
                steps = (info["before_us"], info["with_us"], info["after_us"])
            else:
                steps = (info["without_us"], info["with_us"])
            cell = " → ".join(fmt_time(v * 1e-6) for v in steps) + f" (**{info['ratio']:.2f}x**)"
            if info.get("stuck_conns"):
                cell += f" ‡{info['stuck_conns']}"
            cells.append(cell)
        out.write(f"| {label} | " + " | ".join(cells) + " |\n")
    if any(i.get("stuck_conns") for r in rows.values() for i in r.values()):
        out.write("\n‡N: N of the load generator's closed connections were never closed by "
                  "the server (its handlers never saw the end of the stream).\n")
    out.write("\n")


def report_memory(benches, baseline_wanted, out):
    rows = defaultdict(dict)
    for bench in benches:
        info = bench["extra_info"]
        label = f"{info['kind']} ({info['measure']}, n = {info['n']:,})"
        rows[label][info["loop"]] = info
    loops = sorted({lp for r in rows.values() for lp in r}, key=loop_sort_key)
    out.write("### Memory per idle connection and per idle task\n\n")
    baseline = choose_baseline(set(loops), baseline_wanted, out) if loops else None
    peers = [lp for lp in loops if lp != baseline]
    out.write(
        f"Each cell: the growth of the process's memory over the number of idle objects, "
        f"measured in a fresh process per loop.  X/{baseline}: X's figure over "
        f"{baseline}'s; above 1x, {baseline} uses less.\n\n")
    cols = loops + [f"{p}/{baseline}" for p in peers]
    out.write("| benchmark | " + " | ".join(cols) + " |\n")
    out.write("|---|" + "---:|" * len(cols) + "\n")
    for label in sorted(rows):
        by_loop = rows[label]
        cells = [fmt_bytes(by_loop[lp]["per_unit"]) if lp in by_loop else "–" for lp in loops]
        base = by_loop.get(baseline)
        for p in peers:
            other = by_loop.get(p)
            if base is None or other is None or base["per_unit"] <= 0:
                cells.append("–")
            else:
                cells.append(f"{other['per_unit'] / base['per_unit']:.2f}x")
        out.write(f"| {label} | " + " | ".join(cells) + " |\n")
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

#!/usr/bin/env python3
"""Instructions per operation of the loop-overhead benchmarks, counted by callgrind.

    python bench/callgrind.py gmploop rloop uvloop [-k call_soon] [--scale 0.02]

Wall-clock medians on a shared machine move with the other tenants; the number of
instructions a benchmark executes does not. For each loop and benchmark this runs the
benchmark body of test_loop_overhead.py (the same code, checks included) once under
``valgrind --tool=callgrind`` at two sizes, ``--scale`` and three times that, and prints
(instructions of the large run - instructions of the small run) / (difference in
operations): the marginal cost of one operation, with interpreter start-up, imports and
loop creation cancelled out. The garbage collector stays on, so what a loop costs the
collector per operation is counted too.

Instructions are not time (a cache miss costs many), but a change that removes work
shows here at once and repeatably, where a 5% gain is lost in the noise of the
pytest-benchmark run. Confirm a gain in time there too.

``--own`` adds, beside each figure, the instructions per operation run in the loop's own
machine code (every function of a shared object inside the loop's package: its compiled
modules, with what they inline): an upper bound on what any change to the loop's own
code can still save there, since the rest is the interpreter and the C library working
for the benchmark's Python code (and for the loop's calls into them).

``--annotate`` also prints, for each loop and benchmark, the functions whose own cost
grew most between the two runs, per operation (callgrind_annotate of both, subtracted):
where one operation's instructions go, which is where to look next.

Needs valgrind; a loop that cannot be imported is reported and skipped.
"""
import argparse
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
# Run from the repository root, as the pytest run is: a gmploop built in place there
# is the one measured.
sys.path[1:1] = [os.getcwd()]


def child(loop_name, test_name):
    """Run one round of one benchmark on one loop (under valgrind, in the parent's plan)."""
    sys.path.insert(0, HERE)
    if "pytest" not in sys.modules:
        # The benchmark modules need only pytest.mark.benchmark and pytest.fixture at
        # import; pytest itself would double the instructions valgrind has to simulate before the round.
        stand_in = types.ModuleType("pytest")
        stand_in.mark = types.SimpleNamespace(benchmark=lambda **kw: (lambda f: f))
        stand_in.fixture = lambda *a, **kw: (lambda f: f)
        sys.modules["pytest"] = stand_in
    import conftest
    import test_loop_overhead
    import ab

    factory, _ = conftest.loop_factory(loop_name)
    ab.one_round(getattr(test_loop_overhead, "test_" + test_name), factory)


def _ops(test_name, scale):
    """The operation count of one round at scale (the n the benchmark records)."""
    sys.path.insert(0, HERE)
    fulls = {"call_soon": 300_000, "call_soon_chain": 300_000, "sleep0": 300_000,
             "tasks_all_at_once": 100_000, "tasks_one_by_one": 100_000,
             "timers_fire": 100_000, "timers_cancel": 100_000,
             "future_pingpong": 50_000}
    return max(10, int(fulls[test_name] * scale))


def _instructions(loop_name, test_name, scale, out_file):
    env = dict(os.environ, GMPLOOP_BENCH_SCALE=repr(scale),
               PYTHONHASHSEED="0",
               # sysmon samples by wall time, which valgrind stretches 50-fold: off,
               # so that the count is repeatable (its cost is measured in ab.py).
               GMPLOOP_DEBUG="sysmon=0")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
           sys.executable, os.path.abspath(__file__), "--child", loop_name, test_name]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{loop_name} {test_name}: exit {proc.returncode}\n"
                           f"{proc.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if m is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{proc.stderr[-2000:]}")
    return int(m.group(1))


def _annotated(out_file):
    """(self instructions, "file:function [shared object]") per function of a
    callgrind output, as callgrind_annotate lists them."""
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no",
                          "--inclusive=no", out_file],
                         capture_output=True, text=True, check=True).stdout
    lines = ann.splitlines()
    # The per-function table follows the header line naming file:function.
    start = next((i for i, line in enumerate(lines) if "file:function" in line), None)
    if start is None:
        return
    for line in lines[start + 2:]:
        if line.startswith("-----"):
            break
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            yield int(m.group(1).replace(",", "")), m.group(2)


def _functions(out_file):
    """{function: inclusive-of-nothing (self) instructions} from a callgrind output."""
    counts = {}
    for n, entry in _annotated(out_file):
        name = re.sub(r" \[.*\]$", "", entry)
        # Keep the file's last component and the function: build paths differ.
        file, _, func = name.rpartition(":")
        name = f"{os.path.basename(file)}:{func}"
        counts[name] = counts.get(name, 0) + n
    return counts


def _objects(out_file):
    """{shared object path: self instructions of its functions} from a callgrind output."""
    counts = {}
    for n, entry in _annotated(out_file):
        obj = re.search(r" \[(.*)\]$", entry)
        obj = obj.group(1) if obj else ""
        counts[obj] = counts.get(obj, 0) + n
    return counts


def _own_instructions(small_out, large_out, pkg_dir):
    """Self instructions of the shared objects under pkg_dir: large run minus small."""
    def own(out):
        return sum(n for obj, n in _objects(out).items()
                   if obj.startswith(pkg_dir + os.sep))
    return own(large_out) - own(small_out)


def _package_dir(loop_name):
    """The directory of the loop's package (where its extension modules are), or None
    for a loop that has no compiled code of its own (asyncio)."""
    if loop_name == "asyncio":
        return None
    import importlib.util
    spec = importlib.util.find_spec(loop_name.split("-")[0])
    return os.path.dirname(os.path.realpath(spec.origin)) if spec and spec.origin else None


def _top_functions(small_out, large_out, d_ops, top=25):
    """The functions whose self cost grew most between the two runs, per operation."""
    a = _functions(small_out)
    b = _functions(large_out)
    diff = {name: (b.get(name, 0) - a.get(name, 0)) / d_ops for name in set(a) | set(b)}
    return sorted(diff.items(), key=lambda kv: -kv[1])[:top]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("loops", nargs="*", default=["gmploop", "rloop", "uvloop"])
    ap.add_argument("-k", default="", help="only benchmarks whose name contains this")
    ap.add_argument("--scale", type=float, default=0.02,
                    help="the small run's GMPLOOP_BENCH_SCALE; the large one is 3x")
    ap.add_argument("--annotate", action="store_true",
                    help="print the top functions of each large run")
    ap.add_argument("--own", action="store_true",
                    help="also show the instructions per operation in the loop's own code")
    ap.add_argument("--child", nargs=2, metavar=("LOOP", "TEST"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    sys.path.insert(0, HERE)
    import conftest
    import test_loop_overhead
    tests = [name[len("test_"):] for name, fn in vars(test_loop_overhead).items()
             if name.startswith("test_") and inspect.isfunction(fn) and args.k in name]
    loops = []
    for name in args.loops:
        try:
            conftest.loop_factory(name)
            loops.append(name)
        except ImportError as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
    small, large = args.scale, 3 * args.scale
    print(f"instructions per operation (callgrind, scale {small:g} vs {large:g}, "
          f"Python {sys.version.split()[0]})")
    print("| benchmark | " + " | ".join(loops) + " |")
    print("|---|" + "---:|" * len(loops))
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        for test in tests:
            cells = []
            for loop in loops:
                out = os.path.join(tmp, f"{loop}-{test}.out")
                a = _instructions(loop, test, small, os.path.join(tmp, "small.out"))
                b = _instructions(loop, test, large, out)
                d_ops = _ops(test, large) - _ops(test, small)
                per_op = (b - a) / d_ops
                cell = f"{per_op:,.0f}"
                pkg = _package_dir(loop) if args.own else None
                if pkg:
                    own = _own_instructions(os.path.join(tmp, "small.out"), out, pkg)
                    cell += f" (own {own / d_ops:,.0f})"
                cells.append(cell)
                if args.annotate:
                    notes.append((loop, test, _top_functions(
                        os.path.join(tmp, "small.out"), out,
                        _ops(test, large) - _ops(test, small))))
            print(f"| {test} | " + " | ".join(cells) + " |", flush=True)
    for loop, test, top in notes:
        print(f"\n{loop} {test}: instructions per operation, by function")
        for name, per_op in top:
            print(f"{per_op:10,.1f}  {name}")


if __name__ == "__main__":
    main()

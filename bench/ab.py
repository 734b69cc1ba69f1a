#!/usr/bin/env python3
"""Interleaved A/B timing of two loops on the loop-overhead benchmarks.

    python bench/ab.py gmploop gmploop-bare [--rounds 21] [-k call_soon]

pytest-benchmark runs all rounds of one loop, then all rounds of the next, so a burst of
load from another process lands on one loop only; on a shared machine that moves a
median by 10-50%, far more than a difference of a few percent between two builds of the
same loop. This script runs the benchmark functions of test_loop_overhead.py themselves
(the same bodies, sizes and checks), one round at a time, alternating the two loops in
ABBA order so that both see the same minute of the machine, and reports for each
benchmark the median over rounds of the ratio A/B of neighbouring rounds. A ratio of
1.02 means A took 2% longer than B.

Each round gets a fresh loop from the loop's factory (bench/conftest.py, which also
knows gmploop-bare), made and closed outside the timed region, as the fixture does;
the timed region is loop.run_until_complete(coro), as in the pytest run. The size
knob GMPLOOP_BENCH_SCALE applies.
"""
import argparse
import gc
import inspect
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import conftest                 # noqa: E402  (the loop factories)
import test_loop_overhead       # noqa: E402  (the benchmark bodies)


class OneRound:
    """Stands in for pytest-benchmark's fixture: pedantic() runs and times one round."""
    disabled = True             # run_bench then skips its own warmup round

    def __init__(self):
        self.extra_info = {}
        self.seconds = None

    def pedantic(self, target, setup, rounds, iterations):
        args, kwargs = setup()
        gc.collect()
        t0 = time.perf_counter()
        target(*args, **kwargs)
        self.seconds = time.perf_counter() - t0


def one_round(test, factory):
    loop = factory()
    try:
        bench = OneRound()
        test(bench, loop)
        return bench.seconds
    finally:
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=21, help="rounds per loop (default 21)")
    ap.add_argument("-k", default="", help="only benchmarks whose name contains this")
    args = ap.parse_args(argv)
    fa, _ = conftest.loop_factory(args.a)
    fb, _ = conftest.loop_factory(args.b)
    tests = [(name[len("test_"):], fn) for name, fn in vars(test_loop_overhead).items()
             if name.startswith("test_") and inspect.isfunction(fn) and args.k in name]
    print(f"{args.a}/{args.b}, median of {args.rounds} interleaved round pairs "
          f"(GMPLOOP_BENCH_SCALE={test_loop_overhead.SCALE:g})")
    print(f"| benchmark | {args.a} median | {args.b} median | {args.a}/{args.b} "
          f"(median of pair ratios) |")
    print("|---|---:|---:|---:|")
    ratios = []
    for name, test in tests:
        one_round(test, fa)     # warm both up, untimed
        one_round(test, fb)
        ta, tb = [], []
        for i in range(args.rounds):
            order = ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))
            for factory, times in order:
                times.append(one_round(test, factory))
        r = statistics.median(x / y for x, y in zip(ta, tb))
        ratios.append(r)
        print(f"| {name} | {statistics.median(ta) * 1e3:.1f} ms | "
              f"{statistics.median(tb) * 1e3:.1f} ms | {r:.3f} |", flush=True)
    if ratios:
        geo = statistics.geometric_mean(ratios)
        print(f"| geometric mean | | | {geo:.3f} |")


if __name__ == "__main__":
    main()

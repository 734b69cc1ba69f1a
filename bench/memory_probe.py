#!/usr/bin/env python3
"""Memory per idle task on one loop, measured in a fresh process.

    python bench/memory_probe.py --loop gmploop --tasks 100000 [--tracemalloc]

Creates the loop, warms it with a smaller set of the same tasks (so the allocator's pools,
the loop's free lists and the interpreter's caches reach the state the measured set will
find), collects garbage, and notes the memory in use.  Then creates N tasks that each
await one asyncio.Event, lets every task start and suspend on the Event, lets the loop
wait once with nothing ready (the tasks are idle, and so is the loop), collects garbage
again and notes the memory once more.  Sets the Event, checks that every task finished
with True, and prints one JSON line:

    {"loop": ..., "tasks": N, "measure": "rss" | "tracemalloc",
     "before": BYTES, "after": BYTES, "per_task": (after - before) / N}

``rss`` is the resident set from /proc/self/statm: everything the process holds, the C
allocations of a loop written in C or Rust included; its resolution is a page, against
a delta of megabytes.  ``tracemalloc`` counts what Python's allocators hand out, so it
does not see memory a loop allocates with plain malloc, and tracing inflates RSS; it is a
separate run, and its figure says where Python-level objects differ.  What a task costs
here: the Task, its coroutine and frame, the Event's waiter future, one slot in the list
that holds the tasks, and whatever the loop keeps per task (the handle that ran its
first step, if the loop keeps it).

A fresh process per loop and per measure keeps one loop's leftovers (its free lists, a
grown heap) out of another's figure.
"""
import argparse
import asyncio
import gc
import json
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import LOOPS, Unsupported, new_loop, rss_bytes  # noqa: E402

EXIT_UNSUPPORTED = 3


async def idle_tasks(n, measure):
    """Start n tasks waiting on one Event; return the memory in use while they wait."""
    event = asyncio.Event()
    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(event.wait()) for _ in range(n)]
    # Two passes through the loop: the first runs every task's first step, which
    # suspends it on the Event; the second lets anything the loop scheduled after that
    # step run too.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Then the loop waits once with nothing ready, as a loop whose tasks are idle does
    # (a loop may give back what the burst of first steps made it grow then).
    await asyncio.sleep(0.01)
    waiting = sum(not t.done() for t in tasks)
    assert waiting == n, f"{n - waiting} of {n} tasks finished without the Event"
    gc.collect()
    used = measure()
    event.set()
    results = await asyncio.gather(*tasks)
    assert results == [True] * n, "a task did not return True from Event.wait()"
    return used


async def probe(n, warm, measure):
    await idle_tasks(warm, measure)
    gc.collect()
    before = measure()
    after = await idle_tasks(n, measure)
    return before, after


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=LOOPS, required=True)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--tracemalloc", action="store_true",
                    help="measure with tracemalloc instead of RSS")
    args = ap.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()

        def measure():
            return tracemalloc.get_traced_memory()[0]
    else:
        measure = rss_bytes
    try:
        loop = new_loop(args.loop)
    except Unsupported as exc:
        print(f"UNSUPPORTED {exc}", flush=True)
        sys.exit(EXIT_UNSUPPORTED)
    try:
        # The warmup set is a tenth of the measured one: enough to bring every pool and
        # free list into use, small enough that what it leaves free cannot hide more
        # than a tenth of the measured set's cost.
        before, after = loop.run_until_complete(
            probe(args.tasks, max(10, args.tasks // 10), measure))
    finally:
        loop.close()
    print(json.dumps({
        "loop": args.loop, "tasks": args.tasks,
        "measure": "tracemalloc" if args.tracemalloc else "rss",
        "before": before, "after": after, "per_task": (after - before) / args.tasks,
    }), flush=True)


if __name__ == "__main__":
    main()

"""Threads: a flood of call_soon_threadsafe from 8 threads, run_in_executor under load.

GMPLOOP_THREADSAFE_CALLS sets the total of threadsafe calls (default 1,000,000, the
issue's figure); lower it on a slow machine.
"""

import asyncio
import os
import threading
import time

import pytest

from .support import ExceptionLog, run

THREADS = 8
TOTAL = int(os.environ.get("GMPLOOP_THREADSAFE_CALLS", "1000000"))


@pytest.mark.timeout(110)
def test_call_soon_threadsafe_flood(loop, loop_name):
    """8 threads make TOTAL call_soon_threadsafe calls between them while the loop
    also runs its own work: every callback runs exactly once, and each thread's
    callbacks run in the order it made them."""
    log = ExceptionLog(loop)
    per_thread = TOTAL // THREADS
    counts = [0] * THREADS
    out_of_order = []
    done = loop.create_future()
    remaining = [per_thread * THREADS]
    start = threading.Barrier(THREADS + 1)

    def record(t, i):
        if counts[t] != i:
            out_of_order.append((t, i, counts[t]))
        counts[t] = i + 1
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set_result(None)

    def producer(t):
        start.wait()
        cst = loop.call_soon_threadsafe
        for i in range(per_thread):
            cst(record, t, i)

    async def busy():
        # The loop's own work meanwhile: timers and call_soon chains.
        n = 0
        while not done.done():
            await asyncio.sleep(0)
            n += 1
        return n

    async def main():
        threads = [threading.Thread(target=producer, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        b = asyncio.ensure_future(busy())
        await loop.run_in_executor(None, start.wait)
        t0 = time.monotonic()
        await done
        elapsed = time.monotonic() - t0
        await b
        for th in threads:
            th.join()
        return elapsed

    elapsed = run(loop, main(), timeout=100)
    print(f"{loop_name}: {per_thread * THREADS} threadsafe calls in {elapsed:.1f}s")
    assert counts == [per_thread] * THREADS
    assert out_of_order == []
    assert remaining == [0]
    assert log.contexts == []


def test_run_in_executor_under_load(loop):
    """2,000 executor jobs (some failing, some cancelled) while the loop runs timers and
    I/O: each job's result or exception reaches its awaiter exactly once, cancelled
    awaiters are left alone, and the executor is shut down cleanly."""
    log = ExceptionLog(loop)
    N = 2000

    def job(i):
        if i % 7 == 0:
            raise ValueError(i)
        time.sleep(0.0005 if i % 3 == 0 else 0)
        return i * i

    async def ticker(stop):
        n = 0
        while not stop.is_set():
            await asyncio.sleep(0.001)
            n += 1
        return n

    async def main():
        stop = asyncio.Event()
        tick = asyncio.ensure_future(ticker(stop))
        futs = [loop.run_in_executor(None, job, i) for i in range(N)]
        for i in range(0, N, 11):
            futs[i].cancel()
        results = await asyncio.gather(*futs, return_exceptions=True)
        stop.set()
        ticks = await tick
        await loop.shutdown_default_executor()
        return results, ticks

    results, ticks = run(loop, main(), timeout=60)
    for i, r in enumerate(results):
        if i % 11 == 0:
            assert isinstance(r, asyncio.CancelledError), (i, r)
        elif i % 7 == 0:
            assert isinstance(r, ValueError) and r.args == (i,), (i, r)
        else:
            assert r == i * i, (i, r)
    assert ticks > 0
    assert log.contexts == []

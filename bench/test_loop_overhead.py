"""Loop-overhead micro-benchmarks: the cost the event loop itself adds per callback,
per task switch, per timer.  Each runs once per loop (see conftest.py) in the same session,
so the loops are compared under the same machine conditions.

How each benchmark is timed: the loop is made by the fixture, outside the timed region;
the coroutine is created in the untimed setup; the timed region is exactly
``loop.run_until_complete(coro)``.  Each coroutine returns a value that proves the work was
done (a counter that reached N, a sum of all N results), and every round's value is checked,
so a loop that drops or skips work fails instead of looking fast.

Work inside the callbacks is kept minimal and identical for every loop: where a callback
only has to be counted it is ``itertools.count().__next__``, which runs no Python frame,
so what differs between loops is the loop.

Sizes: 300k for the per-callback benchmarks (call_soon, chains, sleep(0)), 100k for tasks
and timers, 50k ping-pong round trips.  They make a round of the slowest loop (asyncio)
last about half a second on a shared 2-core machine, which is long enough that timer
resolution and one scheduler hiccup do not matter, and short enough that every benchmark
gets at least MIN_ROUNDS rounds within a few seconds per loop.  Compare results per
operation (compare.py prints it), not per round.
"""
import asyncio
import gc
import itertools
import os
import random
import time

import pytest

SCALE = float(os.environ.get("GMPLOOP_BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("GMPLOOP_BENCH_ROUNDS", "0"))
# Seconds of timed rounds per benchmark and loop; the round count follows from the
# warmup round's time, within MIN_ROUNDS..MAX_ROUNDS.  Two seconds keeps the whole suite
# at about a minute and a half for four loops; fewer than 3 rounds make no median.
BUDGET = float(os.environ.get("GMPLOOP_BENCH_BUDGET", "2"))
MIN_ROUNDS, MAX_ROUNDS = 3, 15

# Timers in the timer benchmarks are due within this many seconds of being scheduled: a
# few ms, small against the time it takes to schedule 100k of them, so the loop is rarely
# idle waiting for one, but enough to give them distinct deadlines.
TIMER_SPREAD = 0.002


def size(full):
    """full scaled by GMPLOOP_BENCH_SCALE, at least 10 so every code path still runs."""
    return max(10, int(full * SCALE))


def run_bench(benchmark, loop, make_coro, expected, *, n, before_round=None):
    """Time loop.run_until_complete(make_coro()) over a number of rounds, after one
    warmup round, and check that every round (warmup included) returned expected.

    before_round, if given, runs untimed before each round (and once more at the end) to
    check what the previous round left behind.
    """
    results = []

    def setup():
        if before_round is not None:
            before_round()
        gc.collect()  # start each round from the same heap, not the last round's garbage
        return (make_coro(),), {}

    def target(coro):
        results.append(loop.run_until_complete(coro))

    rounds = ROUNDS
    if not getattr(benchmark, "disabled", False):
        # The warmup round (first-touch allocation, caches) also sizes the rounds.
        args, _ = setup()
        t0 = time.perf_counter()
        target(*args)
        warm = time.perf_counter() - t0
        if not rounds:
            rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, int(BUDGET / warm)))
    benchmark.extra_info["n"] = n
    benchmark.pedantic(target, setup=setup, rounds=rounds or 1, iterations=1)
    if before_round is not None:
        before_round()
    assert results, "no round ran"
    bad = [r for r in results if r != expected]
    assert not bad, f"expected {expected!r} from every round, got {bad[:3]!r}"


# 1. call_soon: schedule N callbacks, then run until the last has fired.


@pytest.mark.benchmark(group="call_soon")
def test_call_soon(benchmark, loop):
    n = size(300_000)

    async def main():
        counter = itertools.count()
        tick = counter.__next__
        call_soon = loop.call_soon
        for _ in range(n):
            call_soon(tick)
        done = loop.create_future()
        call_soon(done.set_result, None)  # FIFO: runs after all n ticks
        await done
        return next(counter)

    run_bench(benchmark, loop, main, n, n=n)


# 2. A call_soon chain: each callback schedules the next.


@pytest.mark.benchmark(group="call_soon_chain")
def test_call_soon_chain(benchmark, loop):
    n = size(300_000)

    async def main():
        done = loop.create_future()
        call_soon = loop.call_soon
        left = n

        def link():
            nonlocal left
            left -= 1
            if left:
                call_soon(link)
            else:
                done.set_result(None)

        call_soon(link)
        await done
        return n - left

    run_bench(benchmark, loop, main, n, n=n)


# 3. await asyncio.sleep(0) N times in one task.


@pytest.mark.benchmark(group="sleep0")
def test_sleep0(benchmark, loop):
    n = size(300_000)
    probe_every = 1024  # a probe per 1024 sleeps: too rare to cost anything measurable

    async def main():
        # Every probe_every-th iteration schedules a probe that records whether it ran
        # during that iteration's sleep(0): all must, which proves sleep(0) went through
        # the loop instead of returning at once.
        on_time = 0
        i = 0

        def probe(at):
            nonlocal on_time
            if i == at:
                on_time += 1

        call_soon = loop.call_soon
        sleep = asyncio.sleep
        for i in range(n):
            if not i % probe_every:
                call_soon(probe, i)
            await sleep(0)
        return i + 1, on_time

    probes = (n + probe_every - 1) // probe_every
    run_bench(benchmark, loop, main, (n, probes), n=n)


# 4. Creating and awaiting N tasks.


async def _ident(i):
    return i


@pytest.mark.benchmark(group="tasks_all_at_once")
def test_tasks_all_at_once(benchmark, loop):
    n = size(100_000)

    async def main():
        create_task = loop.create_task
        tasks = [create_task(_ident(i)) for i in range(n)]
        total = 0
        for t in tasks:
            total += await t
        return total

    run_bench(benchmark, loop, main, n * (n - 1) // 2, n=n)


@pytest.mark.benchmark(group="tasks_one_by_one")
def test_tasks_one_by_one(benchmark, loop):
    n = size(100_000)

    async def main():
        create_task = loop.create_task
        total = 0
        for i in range(n):
            total += await create_task(_ident(i))
        return total

    run_bench(benchmark, loop, main, n * (n - 1) // 2, n=n)


# 5 and 6. N timers with distinct delays over TIMER_SPREAD, in shuffled order so the timer
# structure does real ordering work, not the best case of deadlines arriving sorted.


def _timer_delays(n):
    delays = [TIMER_SPREAD * i / n for i in range(n)]
    random.Random(1).shuffle(delays)
    return delays


@pytest.mark.benchmark(group="timers_fire")
def test_timers_fire(benchmark, loop):
    n = size(100_000)
    delays = _timer_delays(n)

    async def main():
        done = loop.create_future()
        fired = 0
        t0 = loop.time()

        def fire():
            nonlocal fired
            fired += 1
            if fired == n:
                done.set_result(loop.time())

        call_later = loop.call_later
        for d in delays:
            call_later(d, fire)
        t_last = await done
        # A loop that fires timers early would look fast: the last one is due at
        # t0 + max(delays) or later.  uvloop rounds delays to whole ms (libuv timers),
        # so allow 1 ms of early firing.
        early = t_last < t0 + max(delays) - 0.001
        return fired, early

    run_bench(benchmark, loop, main, (n, False), n=n)


@pytest.mark.benchmark(group="timers_cancel")
def test_timers_cancel(benchmark, loop):
    n = size(100_000)
    delays = _timer_delays(n)
    counter = itertools.count()
    tick = counter.__next__

    async def main():
        call_later = loop.call_later
        handles = [call_later(d, tick) for d in delays]
        for h in handles:
            h.cancel()
        await asyncio.sleep(0)  # one loop iteration with n cancelled timers in it
        return len(handles)

    checks = itertools.count()

    def none_fired():
        # Untimed, between rounds: wait past every deadline of the last round; a
        # cancelled timer that still fires shows in the counter (which each check
        # itself advances by one, hence the second count).
        loop.run_until_complete(asyncio.sleep(TIMER_SPREAD + 0.005))
        fired = next(counter) - next(checks)
        assert fired == 0, f"{fired} cancelled timers fired"

    run_bench(benchmark, loop, main, n, n=n, before_round=none_fired)


# 7. Future ping-pong between two tasks.


@pytest.mark.benchmark(group="future_pingpong")
def test_future_pingpong(benchmark, loop):
    n = size(50_000)

    async def main():
        # Each message is (value, future for the reply); the ponger answers with the
        # future the pinger must resolve next.  One round trip is two future results
        # and two task wake-ups.
        create_future = loop.create_future
        first = create_future()

        async def pinger():
            fut = first
            for i in range(n):
                reply = create_future()
                fut.set_result((i, reply))
                fut = await reply
            return n

        async def ponger():
            fut = first
            total = 0
            for _ in range(n):
                i, reply = await fut
                total += i
                fut = create_future()
                reply.set_result(fut)
            return total

        return tuple(await asyncio.gather(pinger(), ponger()))

    run_bench(benchmark, loop, main, (n, n * (n - 1) // 2), n=n)

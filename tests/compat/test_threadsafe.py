"""call_soon_threadsafe, and the thread check asyncio makes in debug mode."""

import asyncio
import threading
import time

import pytest

from .support import STEP_TIMEOUT, run, run_iterations

THREADS = 8
PER_THREAD = 10_000


@pytest.mark.timeout(120)
def test_call_soon_threadsafe_from_many_threads_runs_each_once_in_order(loop):
    seen = []
    done = loop.create_future()
    total = THREADS * PER_THREAD
    start = threading.Barrier(THREADS)

    def record(item):
        seen.append(item)
        if len(seen) == total:
            done.set_result(None)

    def producer(t):
        start.wait()
        for i in range(PER_THREAD):
            loop.call_soon_threadsafe(record, (t, i))

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    try:
        run(loop, done, timeout=100)
    finally:
        for th in threads:
            th.join()
    assert len(seen) == total
    assert len(set(seen)) == total
    for t in range(THREADS):
        # call_soon is FIFO; from one thread, call_soon_threadsafe is too.
        assert [i for tt, i in seen if tt == t] == list(range(PER_THREAD))


def test_call_soon_threadsafe_wakes_a_blocked_loop_promptly(loop):
    # Nothing else is scheduled: the loop sleeps in its poll with no timeout.
    for _ in range(5):
        fut = loop.create_future()
        sent = []

        def poke():
            time.sleep(0.05)
            sent.append(time.monotonic())
            loop.call_soon_threadsafe(lambda: fut.set_result(time.monotonic()))

        th = threading.Thread(target=poke)
        th.start()
        try:
            received = loop.run_until_complete(fut)
        finally:
            th.join()
        assert received - sent[0] < 0.5


def test_call_soon_threadsafe_before_run(loop):
    seen = []
    th = threading.Thread(target=lambda: loop.call_soon_threadsafe(seen.append, 1))
    th.start()
    th.join()
    run_iterations(loop, 1)
    assert seen == [1]


def test_call_soon_threadsafe_handle_can_be_cancelled(loop):
    seen = []
    handles = []
    th = threading.Thread(
        target=lambda: handles.append(loop.call_soon_threadsafe(seen.append, 1)))
    th.start()
    th.join()
    handles[0].cancel()
    run_iterations(loop, 2)
    assert seen == []


def test_call_soon_threadsafe_with_context(loop):
    import contextvars
    var = contextvars.ContextVar("var")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx")
    seen = []
    th = threading.Thread(
        target=lambda: loop.call_soon_threadsafe(lambda: seen.append(var.get()), context=ctx))
    th.start()
    th.join()
    run_iterations(loop, 1)
    assert seen == ["ctx"]


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_debug_non_threadsafe_call_from_other_thread_raises(loop, method):
    loop.set_debug(True)
    errors = []
    seen = []

    def from_thread():
        try:
            if method == "call_soon":
                loop.call_soon(seen.append, 1)
            elif method == "call_later":
                loop.call_later(0, seen.append, 1)
            else:
                loop.call_at(loop.time(), seen.append, 1)
        except BaseException as exc:
            errors.append(exc)

    async def main():
        await loop.run_in_executor(None, from_thread)

    run(loop, main())
    assert len(errors) == 1, errors
    assert isinstance(errors[0], RuntimeError)
    assert str(errors[0]) == ("Non-thread-safe operation invoked on an event loop other "
                              "than the current one")
    assert seen == []


def test_debug_thread_check_is_off_when_loop_not_running(loop):
    # The check only applies while the loop runs in another thread.
    loop.set_debug(True)
    seen = []
    th = threading.Thread(target=lambda: loop.call_soon(seen.append, 1))
    th.start()
    th.join(STEP_TIMEOUT)
    run_iterations(loop, 1)
    assert seen == [1]


@pytest.mark.timeout(60)
def test_call_soon_threadsafe_ping_pong_never_loses_a_wakeup(loop):
    # Each round the loop has gone back to sleep in its poll before the next call
    # arrives: a lost wakeup shows up as a hang.
    rounds = 2000
    pong = threading.Event()
    done = loop.create_future()
    count = [0]

    def on_ping():
        count[0] += 1
        pong.set()
        if count[0] == rounds:
            done.set_result(None)

    def pinger():
        for _ in range(rounds):
            pong.clear()
            loop.call_soon_threadsafe(on_ping)
            if not pong.wait(5):
                return

    th = threading.Thread(target=pinger)
    th.start()
    try:
        run(loop, done, timeout=50)
    finally:
        th.join()
    assert count[0] == rounds


@pytest.mark.timeout(60)
def test_loops_in_several_threads_are_independent(loop_factory):
    n = 4
    results = {}
    loops = {}
    posts = {}
    ready = threading.Barrier(n + 1)

    def worker(k):
        lp = loop_factory()
        loops[k] = lp
        got = []

        async def main():
            done = lp.create_future()

            def on_post(i):
                got.append(i)
                if len(got) == 100:
                    done.set_result(None)

            posts[k] = on_post
            ready.wait()  # every loop runs: the main thread may post to it
            for _ in range(10):
                await asyncio.sleep(0.001)
            await asyncio.wait_for(done, 30)
            assert asyncio.get_running_loop() is lp
            return got

        try:
            results[k] = lp.run_until_complete(main())
        except BaseException as exc:
            results[k] = exc
        finally:
            lp.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    ready.wait()
    time.sleep(0.01)
    for i in range(100):
        for k in range(n):
            loops[k].call_soon_threadsafe(posts[k], i)
    for th in threads:
        th.join()
    assert results == {k: list(range(100)) for k in range(n)}

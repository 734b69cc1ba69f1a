"""call_soon, Handle and the iteration contract of asyncio's BaseEventLoop._run_once.

One iteration of _run_once: poll for I/O (timeout 0 when callbacks are ready), append
the callbacks of ready fds, append the expired timers, then run exactly the callbacks
that were in the ready queue at that point, in FIFO order. So:

- call_soon callbacks run FIFO, once each;
- a callback scheduled by a callback runs in the next iteration, after the next poll;
- within an iteration, callbacks left over from the previous iteration come first, then
  I/O callbacks, then timers;
- a handle cancelled before its turn does not run, even if already queued.
"""

import asyncio
import contextvars
import sys

import pytest

from .support import Ticker, run, run_iterations, socketpair

cvar = contextvars.ContextVar("cvar", default="default")


def test_call_soon_fifo(loop):
    seen = []
    for i in range(1000):
        loop.call_soon(seen.append, i)
    run_iterations(loop, 1)
    assert seen == list(range(1000))


def test_call_soon_passes_positional_args(loop):
    seen = []
    loop.call_soon(lambda *a: seen.append(a), 1, "two", None)
    run_iterations(loop, 1)
    assert seen == [(1, "two", None)]


def test_each_callback_runs_once(loop):
    counts = {}

    def cb(i):
        counts[i] = counts.get(i, 0) + 1

    for i in range(100):
        loop.call_soon(cb, i)
    run_iterations(loop, 5)
    assert counts == {i: 1 for i in range(100)}


def test_callback_scheduled_by_callback_runs_next_iteration(loop):
    # stop() before run_forever() runs one iteration: the callbacks queued now run, the
    # ones they schedule wait for the next run.
    seen = []

    def a():
        seen.append("a")
        loop.call_soon(seen.append, "b")

    loop.call_soon(a)
    loop.call_soon(seen.append, "x")
    loop.stop()
    loop.run_forever()
    assert seen == ["a", "x"]
    loop.stop()
    loop.run_forever()
    assert seen == ["a", "x", "b"]


@pytest.mark.xfail_loop("uvloop", reason="add_reader callbacks run inside the libuv poll "
                        "phase, before the callbacks queued by the previous iteration")
def test_io_is_polled_between_iterations(loop):
    # Iteration 1 runs A, which makes rsock readable and schedules B.
    # Iteration 2 starts with B queued, polls (R becomes ready, appended after B), runs
    # B then R; B schedules C. Iteration 3 runs C. Hence A, B, R, C.
    seen = []
    with socketpair() as (rsock, wsock):
        def reader():
            seen.append("R")
            rsock.recv(100)
            loop.remove_reader(rsock)

        def a():
            seen.append("A")
            wsock.send(b"x")
            loop.call_soon(b)

        def b():
            seen.append("B")
            loop.call_soon(c)

        def c():
            seen.append("C")
            loop.stop()

        loop.add_reader(rsock, reader)
        loop.call_soon(a)
        loop.run_forever()
        loop.remove_reader(rsock)
    assert seen == ["A", "B", "R", "C"]


def test_call_soon_chain_does_not_starve_io(loop):
    # A callback that reschedules itself forever must not keep the loop from polling.
    with socketpair() as (rsock, wsock):
        spins = Ticker(loop)
        fired_at = []

        def reader():
            fired_at.append(spins.n)
            rsock.recv(100)
            loop.remove_reader(rsock)
            loop.stop()

        wsock.send(b"x")
        loop.add_reader(rsock, reader)
        loop.run_forever()
        spins.stop()
        loop.remove_reader(rsock)
    assert len(fired_at) == 1
    assert fired_at[0] <= 2


def test_call_soon_chain_does_not_starve_timers(loop):
    spins = Ticker(loop)
    fired = []

    def timer():
        fired.append(loop.time())
        loop.stop()

    start = loop.time()
    loop.call_later(0.02, timer)
    loop.call_later(5, loop.stop)  # bound, should the timer be starved
    loop.run_forever()
    spins.stop()
    assert fired, "timer starved by a call_soon chain"
    assert fired[0] - start < 2


def test_call_soon_with_context_runs_in_that_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "in ctx")
    seen = []

    def cb():
        seen.append(cvar.get())
        cvar.set("changed by cb")

    loop.call_soon(cb, context=ctx)
    run_iterations(loop, 1)
    assert seen == ["in ctx"]
    assert ctx[cvar] == "changed by cb"
    assert cvar.get() == "default"


def test_call_soon_copies_current_context(loop):
    seen = []

    def cb():
        seen.append(cvar.get())
        cvar.set("changed by cb")

    token = cvar.set("at call_soon")
    try:
        loop.call_soon(cb)
        cvar.set("after call_soon")
        run_iterations(loop, 1)
        assert seen == ["at call_soon"]
        assert cvar.get() == "after call_soon"
    finally:
        cvar.reset(token)


def test_each_callback_gets_its_own_context_copy(loop):
    seen = []

    def setter():
        cvar.set("leaked?")

    loop.call_soon(setter)
    loop.call_soon(lambda: seen.append(cvar.get()))
    run_iterations(loop, 1)
    assert seen == ["default"]


def test_handle_cancel_before_run(loop):
    seen = []
    h = loop.call_soon(seen.append, "cancelled")
    loop.call_soon(seen.append, "kept")
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    h.cancel()  # idempotent
    assert h.cancelled()
    run_iterations(loop, 2)
    assert seen == ["kept"]


def test_handle_cancelled_by_earlier_callback_in_same_iteration(loop):
    seen = []
    handles = {}

    def first():
        seen.append("first")
        handles["second"].cancel()

    loop.call_soon(first)
    handles["second"] = loop.call_soon(seen.append, "second")
    loop.call_soon(seen.append, "third")
    run_iterations(loop, 1)
    assert seen == ["first", "third"]


def test_handle_cancel_after_run_is_harmless(loop):
    seen = []
    h = loop.call_soon(seen.append, 1)
    run_iterations(loop, 1)
    h.cancel()
    assert h.cancelled()
    assert seen == [1]


@pytest.mark.xfail_loop("uvloop", reason="call_soon returns uvloop.loop.Handle, "
                        "not an asyncio.Handle")
@pytest.mark.xfail_loop("gmploop", reason="call_soon returns gmploop's C Handle, which "
                        "cannot subclass asyncio's Python Handle class; it has the same "
                        "methods (cancel, cancelled, get_context)")
def test_call_soon_returns_asyncio_handle(loop):
    h = loop.call_soon(lambda: None)
    assert isinstance(h, asyncio.Handle)
    h.cancel()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Handle.get_context is 3.12+")
@pytest.mark.xfail_loop("uvloop", reason="Handle has no get_context()")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    h = loop.call_soon(lambda: None, context=ctx)
    assert h.get_context() is ctx
    h2 = loop.call_soon(lambda: None)
    assert isinstance(h2.get_context(), contextvars.Context)
    t = loop.call_later(10, lambda: None, context=ctx)
    assert t.get_context() is ctx
    for handle in (h, h2, t):
        handle.cancel()


@pytest.mark.allow_loop_errors
def test_exception_in_callback_does_not_stop_the_batch(loop):
    seen = []

    def boom():
        raise ZeroDivisionError

    loop.call_soon(boom)
    loop.call_soon(seen.append, "after")
    run_iterations(loop, 1)
    assert seen == ["after"]


def test_running_loop_visible_in_callback(loop):
    seen = []

    def cb():
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.get_event_loop())
        seen.append(loop.is_running())

    loop.call_soon(cb)
    run_iterations(loop, 1)
    assert seen == [loop, loop, True]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


@pytest.mark.xfail_loop("uvloop", reason="no callable check in debug mode")
def test_debug_call_soon_rejects_non_callables(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError, match=r"a callable object was expected by call_soon\(\)"):
        loop.call_soon(1)
    with pytest.raises(TypeError, match=r"a callable object was expected by call_(later|at)\(\)"):
        loop.call_later(1, 1)
    with pytest.raises(TypeError, match=r"coroutines cannot be used with call_soon\(\)"):
        loop.call_soon(coro_fn)
    coro = coro_fn()
    with pytest.raises(TypeError, match=r"coroutines cannot be used with call_soon\(\)"):
        loop.call_soon(coro)
    coro.close()
    with pytest.raises(TypeError, match=r"coroutines cannot be used with call_(later|at)\(\)"):
        loop.call_later(1, coro_fn)
    with pytest.raises(TypeError, match=r"coroutines cannot be used with call_at\(\)"):
        loop.call_at(loop.time() + 1, coro_fn)
    with pytest.raises(TypeError,
                       match=r"coroutines cannot be used with call_soon_threadsafe\(\)"):
        loop.call_soon_threadsafe(coro_fn)


def test_future_done_callbacks_are_scheduled_not_called(loop):
    seen = []

    async def main():
        fut = loop.create_future()
        fut.add_done_callback(lambda f: seen.append(("done", f.result())))
        fut.set_result(42)
        seen.append("after set_result")
        await asyncio.sleep(0)
        seen.append("after sleep(0)")

    run(loop, main())
    assert seen == ["after set_result", ("done", 42), "after sleep(0)"]


def test_call_soon_fifo_at_volume(loop):
    # Enough callbacks to overflow any fixed-size ring, queued from outside the loop and
    # then from inside a callback.
    loop.set_debug(False)  # debug mode records a traceback per handle: minutes, not ms
    n = 200_000
    seen = []
    for i in range(n):
        loop.call_soon(seen.append, i)

    def schedule_more():
        for i in range(n, 2 * n):
            loop.call_soon(seen.append, i)

    loop.call_soon(schedule_more)
    run_iterations(loop, 2)
    assert seen == list(range(2 * n))


def test_call_soon_and_call_soon_threadsafe_share_one_fifo(loop):
    seen = []
    for i in range(100):
        method = loop.call_soon if i % 3 else loop.call_soon_threadsafe
        method(seen.append, i)

    def inside():
        for i in range(100, 200):
            method = loop.call_soon if i % 3 else loop.call_soon_threadsafe
            method(seen.append, i)

    loop.call_soon(inside)
    run_iterations(loop, 2)
    assert seen == list(range(200))


def test_io_callbacks_run_before_timers_in_one_iteration(loop):
    # In _run_once the ready fds are queued first, then the expired timers.
    seen = []
    with socketpair() as (rsock, wsock):
        def reader():
            seen.append("reader")
            rsock.recv(100)

        def setup():
            wsock.send(b"x")
            loop.call_at(loop.time() - 1, seen.append, "timer")

        loop.add_reader(rsock, reader)
        loop.call_soon(setup)
        run_iterations(loop, 3)
        loop.remove_reader(rsock)
    assert seen == ["reader", "timer"]


@pytest.mark.xfail_loop("uvloop", reason="libuv runs expired timers before the callbacks "
                        "queued with call_soon")
def test_timer_callback_schedules_for_next_iteration(loop):
    seen = []

    def timer():
        seen.append("timer")
        loop.call_soon(seen.append, "soon from timer")
        loop.call_later(0, seen.append, "later(0) from timer")

    loop.call_at(loop.time() - 1, timer)
    loop.call_soon(seen.append, "soon")
    run_iterations(loop, 3)
    assert seen == ["soon", "timer", "soon from timer", "later(0) from timer"]


def test_self_rescheduling_zero_delay_timer_does_not_starve_io(loop):
    with socketpair() as (rsock, wsock):
        spins = [0]
        handle = [None]
        fired_at = []

        def spin():
            spins[0] += 1
            handle[0] = loop.call_later(0, spin)

        def reader():
            fired_at.append(spins[0])
            rsock.recv(100)
            loop.stop()

        wsock.send(b"x")
        loop.add_reader(rsock, reader)
        handle[0] = loop.call_later(0, spin)
        loop.call_later(5, loop.stop)  # bound
        loop.run_forever()
        handle[0].cancel()
        loop.remove_reader(rsock)
    assert fired_at and fired_at[0] <= 2

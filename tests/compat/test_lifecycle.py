"""run_until_complete, run_forever, stop, close, is_running, is_closed."""

import asyncio
import sys
import threading

import pytest

from .support import run, run_iterations

# --- run_until_complete ---------------------------------------------------------------


def test_run_until_complete_returns_future_result(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 42)
    assert loop.run_until_complete(fut) == 42


def test_run_until_complete_raises_future_exception(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_exception, ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(fut)


def test_run_until_complete_wraps_a_coroutine_in_a_task(loop):
    seen = []

    async def main():
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        return "result"

    assert loop.run_until_complete(main()) == "result"
    assert isinstance(seen[0], asyncio.Task)


def test_run_until_complete_coroutine_exception(loop):
    async def main():
        await asyncio.sleep(0)
        raise KeyError("k")

    with pytest.raises(KeyError):
        loop.run_until_complete(main())


def test_run_until_complete_accepts_an_awaitable(loop):
    class Awaitable:
        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert loop.run_until_complete(Awaitable()) == "awaited"


def test_run_until_complete_rejects_non_awaitables(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)


def test_run_until_complete_done_future_returns_at_once(loop):
    fut = loop.create_future()
    fut.set_result("already")
    assert loop.run_until_complete(fut) == "already"


def test_run_until_complete_future_of_other_loop(loop, loop_factory):
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_run_until_complete_stopped_before_future_completed(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match=r"^Event loop stopped before Future completed\.$"):
        loop.run_until_complete(fut)
    assert not fut.done()
    # the loop stays usable
    loop.call_soon(fut.set_result, 1)
    assert loop.run_until_complete(fut) == 1


@pytest.mark.xfail_loop("uvloop", reason="message is 'this event loop is already running.'")
def test_run_until_complete_is_not_reentrant(loop):
    errors = []

    async def main():
        inner = loop.create_future()
        inner.set_result(None)
        for method, arg in ((loop.run_until_complete, inner), (loop.run_forever, None)):
            try:
                method(arg) if arg is not None else method()
            except RuntimeError as exc:
                errors.append(str(exc))

    run(loop, main())
    assert errors == ["This event loop is already running"] * 2
    # and the outer run was not disturbed
    assert not loop.is_running()
    run(loop, asyncio.sleep(0))


def test_cannot_run_a_loop_while_another_runs(loop, loop_factory):
    other = loop_factory()
    errors = []

    async def main():
        fut = other.create_future()
        fut.set_result(None)
        try:
            other.run_until_complete(fut)
        except RuntimeError as exc:
            errors.append(str(exc))
        try:
            other.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))

    try:
        run(loop, main())
        assert not other.is_running()
        # other works once loop is no longer running
        assert other.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        other.close()
    assert errors == ["Cannot run the event loop while another loop is running"] * 2


def test_run_loops_in_two_threads(loop, loop_factory):
    results = []

    def in_thread():
        other = loop_factory()
        try:
            results.append(other.run_until_complete(asyncio.sleep(0.01, "thread")))
        finally:
            other.close()

    th = threading.Thread(target=in_thread)
    th.start()
    results.append(run(loop, asyncio.sleep(0.01, "main")))
    th.join()
    assert sorted(results) == ["main", "thread"]


# --- run_forever and stop --------------------------------------------------------------


def test_stop_before_run_forever_runs_one_iteration(loop):
    seen = []

    def cb():
        seen.append("cb")
        loop.call_soon(seen.append, "next")

    loop.call_soon(cb)
    loop.stop()
    loop.run_forever()
    assert seen == ["cb"]
    assert not loop.is_running()


def test_stop_with_nothing_scheduled_returns(loop):
    loop.stop()
    loop.run_forever()
    loop.stop()
    loop.run_forever()


@pytest.mark.xfail_loop("uvloop", reason="after stop() the loop also runs the callbacks "
                        "scheduled during the current batch")
def test_stop_inside_callback_finishes_the_batch(loop):
    seen = []

    def stopper():
        seen.append("stopper")
        loop.stop()
        loop.call_soon(seen.append, "scheduled by stopper")

    loop.call_soon(stopper)
    loop.call_soon(seen.append, "same batch")
    loop.run_forever()
    assert seen == ["stopper", "same batch"]
    # the next run picks up what was left
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["stopper", "same batch", "scheduled by stopper"]


def test_stop_called_twice_stops_once(loop):
    seen = []
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_soon(seen.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [1]


def test_run_forever_can_run_again(loop):
    for i in range(3):
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
    assert run(loop, asyncio.sleep(0, "still fine")) == "still fine"


def test_is_running(loop):
    seen = []
    assert not loop.is_running()
    loop.call_soon(lambda: seen.append(loop.is_running()))
    run_iterations(loop, 1)
    assert seen == [True]
    assert not loop.is_running()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_callback_propagates_and_loop_survives(loop, exc_type):
    seen = []

    def raiser():
        raise exc_type()

    hooks = sys.get_asyncgen_hooks()
    loop.call_soon(raiser)
    loop.call_soon(seen.append, "later")
    with pytest.raises(exc_type):
        loop.run_forever()
    assert not loop.is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert sys.get_asyncgen_hooks() == hooks
    run_iterations(loop, 2)
    assert "later" in seen


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_coroutine_propagates(loop, exc_type):
    async def main():
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()


# --- close -------------------------------------------------------------------------------


def test_close(loop):
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()  # a second close is a no-op
    assert loop.is_closed()


def test_close_while_running_raises(loop):
    errors = []

    def closer():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(closer)
    run_iterations(loop, 1)
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()


def test_close_drops_pending_callbacks(loop):
    seen = []
    loop.call_soon(seen.append, 1)
    loop.call_later(0, seen.append, 2)
    loop.close()
    assert seen == []


def _closed_loop_ops():
    async def coro():
        pass

    def create_task(loop):
        c = coro()
        try:
            loop.create_task(c)
        finally:
            c.close()

    def run_until_complete_coro(loop):
        c = coro()
        try:
            loop.run_until_complete(c)
        finally:
            c.close()

    return {
        "call_soon": lambda loop: loop.call_soon(lambda: None),
        "call_later": lambda loop: loop.call_later(1, lambda: None),
        "call_at": lambda loop: loop.call_at(1, lambda: None),
        "call_soon_threadsafe": lambda loop: loop.call_soon_threadsafe(lambda: None),
        "create_task": create_task,
        "run_forever": lambda loop: loop.run_forever(),
        "run_until_complete": run_until_complete_coro,
        "run_in_executor": lambda loop: loop.run_in_executor(None, lambda: None),
    }


CLOSED_OPS = _closed_loop_ops()


@pytest.mark.parametrize("op", sorted(CLOSED_OPS))
def test_closed_loop_raises(loop, op):
    loop.close()
    with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
        CLOSED_OPS[op](loop)


def test_closed_loop_run_until_complete_with_future(loop, loop_factory):
    loop.close()
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
            loop.run_until_complete(fut)
    finally:
        other.close()


@pytest.mark.xfail_loop("uvloop", reason="remove_reader/remove_writer on a closed loop "
                        "return None, not False")
def test_closed_loop_add_reader_raises(loop):
    import socket
    a, b = socket.socketpair()
    try:
        loop.close()
        with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
            loop.add_reader(a, lambda: None)
        with pytest.raises(RuntimeError, match=r"^Event loop is closed$"):
            loop.add_writer(a, lambda: None)
        # asyncio: removing from a closed loop just reports nothing was removed
        assert loop.remove_reader(a) is False
        assert loop.remove_writer(a) is False
    finally:
        a.close()
        b.close()


def test_interrupted_run_until_complete_leaves_no_stop_callback(loop):
    # run_until_complete removes its done-callback from the future even when the run
    # ends early, so completing that future later does not stop an unrelated run.
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(fut)

    async def later():
        fut.set_result("late")
        await asyncio.sleep(0.02)
        return "unrelated run finished"

    assert run(loop, later()) == "unrelated run finished"

"""The loop's exception handler and debug mode.

asyncio reports errors it cannot raise to anyone (an exception in a callback, a future
whose exception was never retrieved) through loop.call_exception_handler(context). The
default handler logs on the 'asyncio' logger at ERROR, with exc_info from
context['exception'].
"""

import asyncio
import contextvars
import gc
import logging
import os
import re
import sys
import time

import pytest

from .support import run, run_iterations, socketpair

cvar = contextvars.ContextVar("cvar", default="default")


class Boom(Exception):
    pass


def boom():
    raise Boom("in callback")


def asyncio_errors(caplog):
    return [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


@pytest.mark.allow_loop_errors
def test_default_handler_logs_callback_exception(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.call_soon(boom)
    run_iterations(loop, 1)
    records = asyncio_errors(caplog)
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback")
    assert records[0].exc_info[0] is Boom


def test_get_set_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(loop, context):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


def test_set_exception_handler_rejects_non_callable(loop):
    with pytest.raises(TypeError, match="A callable object or None is expected"):
        loop.set_exception_handler("not callable")
    assert loop.get_exception_handler() is None


def test_handler_context_for_callback_exception(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append((lp, ctx)))
    h = loop.call_soon(boom)
    loop.call_soon(lambda: None)
    run_iterations(loop, 1)
    assert len(calls) == 1
    lp, ctx = calls[0]
    assert lp is loop
    assert ctx["message"].startswith("Exception in callback")
    assert isinstance(ctx["exception"], Boom)
    assert ctx["handle"] is h


def test_handler_context_for_reader_exception(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    with socketpair() as (rsock, wsock):
        def reader():
            rsock.recv(1)
            loop.stop()
            raise Boom("in reader")

        loop.add_reader(rsock, reader)
        wsock.send(b"xy")
        loop.run_forever()
        # an exception does not unregister the reader: the second byte calls it again
        loop.run_forever()
        loop.remove_reader(rsock)
    assert len(calls) == 2
    assert calls[0]["message"].startswith("Exception in callback")
    assert isinstance(calls[0]["exception"], Boom)
    assert "handle" in calls[0]


def test_handler_context_for_unretrieved_task_exception(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))

    async def failing():
        raise Boom("in task")

    async def main():
        task = loop.create_task(failing())
        await asyncio.wait([task])
        return id(task)

    task_id = run(loop, main())
    gc.collect()
    assert len(calls) == 1
    ctx = calls[0]
    assert ctx["message"] == "Task exception was never retrieved"
    assert isinstance(ctx["exception"], Boom)
    assert isinstance(ctx["future"], asyncio.Task)
    assert id(ctx["future"]) == task_id


def test_handler_context_for_unretrieved_future_exception(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    fut = loop.create_future()
    fut.set_exception(Boom("in future"))
    del fut
    gc.collect()
    assert len(calls) == 1
    assert calls[0]["message"] == "Future exception was never retrieved"
    assert isinstance(calls[0]["exception"], Boom)
    assert isinstance(calls[0]["future"], asyncio.Future)


def test_call_exception_handler_with_custom_handler(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append((lp, ctx)))
    context = {"message": "custom", "answer": 42}
    loop.call_exception_handler(context)
    assert calls == [(loop, context)]
    assert calls[0][1]["answer"] == 42


@pytest.mark.allow_loop_errors
def test_call_exception_handler_default_logs(loop, caplog):
    exc = Boom("direct")
    loop.call_exception_handler({"message": "direct call", "exception": exc, "extra": "x"})
    records = asyncio_errors(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert message.startswith("direct call")
    assert "extra: 'x'" in message
    assert records[0].exc_info[1] is exc


@pytest.mark.allow_loop_errors
def test_default_exception_handler_without_message(loop, caplog):
    loop.default_exception_handler({})
    records = asyncio_errors(caplog)
    assert [r.getMessage() for r in records] == ["Unhandled exception in event loop"]


@pytest.mark.allow_loop_errors
def test_handler_that_raises_falls_back_to_default(loop, caplog):
    class HandlerError(Exception):
        pass

    def bad_handler(lp, ctx):
        raise HandlerError("in handler")

    seen = []
    loop.set_exception_handler(bad_handler)
    loop.call_soon(boom)
    loop.call_soon(seen.append, "loop goes on")
    run_iterations(loop, 1)
    assert seen == ["loop goes on"]
    records = asyncio_errors(caplog)
    assert len(records) == 1
    assert records[0].getMessage().startswith("Unhandled error in exception handler")
    assert records[0].exc_info[0] is HandlerError


def test_custom_handler_can_defer_to_default(loop, caplog):
    def handler(lp, ctx):
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.CRITICAL + 1, logger="asyncio"):
        loop.call_soon(boom)
        run_iterations(loop, 1)


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="the handler runs in the failing handle's context since 3.12")
def test_handler_runs_in_the_context_of_the_failing_callback(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(cvar.get()))
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "callback context")
    loop.call_soon(boom, context=ctx)
    run_iterations(loop, 1)
    assert seen == ["callback context"]


# --- debug mode --------------------------------------------------------------------------


def test_get_set_debug(loop):
    expected = sys.flags.dev_mode or bool(os.environ.get("PYTHONASYNCIODEBUG"))
    assert loop.get_debug() == expected
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_set_debug_while_running(loop):
    seen = []

    def cb():
        loop.set_debug(True)
        seen.append(loop.get_debug())

    loop.call_soon(cb)
    run_iterations(loop, 2)
    assert seen == [True]
    assert loop.get_debug() is True


def test_slow_callback_duration_default(loop):
    assert loop.slow_callback_duration == 0.1


SLOW_RE = re.compile(r"^Executing .+ took \d+\.\d{3} seconds$", re.S)


def test_debug_logs_slow_callback(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.02
    loop.call_soon(time.sleep, 0.05)
    loop.call_soon(lambda: None)
    run_iterations(loop, 1)
    slow = [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(slow) == 1, [r.getMessage() for r in slow]
    assert SLOW_RE.match(slow[0].getMessage())


def test_debug_logs_slow_task_step(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.02

    async def main():
        time.sleep(0.05)

    run(loop, main())
    slow = [r for r in caplog.records if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert slow, "no slow-callback warning for a blocking task step"
    assert any(SLOW_RE.match(r.getMessage()) and "Task" in r.getMessage() for r in slow)


def test_no_slow_callback_log_without_debug(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(False)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.03)
    run_iterations(loop, 1)
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_handler_context_for_timer_exception(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    h = loop.call_later(0.001, boom)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert len(calls) == 1
    assert calls[0]["message"].startswith("Exception in callback")
    assert isinstance(calls[0]["exception"], Boom)
    assert calls[0]["handle"] is h


def test_debug_tracks_coroutine_origin_while_running(loop):
    saved = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)
    depths = []

    async def main():
        depths.append(sys.get_coroutine_origin_tracking_depth())

    run(loop, main())
    assert depths[0] > 0
    assert sys.get_coroutine_origin_tracking_depth() == saved


def test_debug_run_in_executor_rejects_coroutine_function(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError, match=r"coroutines cannot be used with run_in_executor\(\)"):
        loop.run_in_executor(None, coro_fn)

"""run_in_executor, the default executor, and async generator shutdown."""

import asyncio
import concurrent.futures
import gc
import sys
import threading
import time

import pytest

from .support import run


def test_run_in_executor_default(loop):
    main_thread = threading.get_ident()

    async def main():
        return await loop.run_in_executor(None, lambda a, b: (a + b, threading.get_ident()),
                                          1, 2)

    result, thread = run(loop, main())
    assert result == 3
    assert thread != main_thread


def test_run_in_executor_returns_asyncio_future(loop):
    async def main():
        fut = loop.run_in_executor(None, time.sleep, 0)
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is loop
        await fut

    run(loop, main())


def test_run_in_executor_exception(loop):
    def fails():
        raise LookupError("in thread")

    async def main():
        await loop.run_in_executor(None, fails)

    with pytest.raises(LookupError, match="in thread"):
        run(loop, main())


def test_run_in_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom") as ex:
        async def main():
            return await loop.run_in_executor(ex, lambda: threading.current_thread().name)

        assert run(loop, main()).startswith("custom")


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="default-custom")
    loop.set_default_executor(ex)

    async def main():
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    try:
        assert run(loop, main()).startswith("default-custom")
    finally:
        run(loop, loop.shutdown_default_executor())


@pytest.mark.xfail_loop("uvloop", reason="set_default_executor accepts any object")
def test_set_default_executor_requires_thread_pool(loop):
    with concurrent.futures.ProcessPoolExecutor(1) as ex:  # never started: no process
        with pytest.raises(TypeError, match="executor must be ThreadPoolExecutor instance"):
            loop.set_default_executor(ex)
    with pytest.raises(TypeError):
        loop.set_default_executor(object())


def test_shutdown_default_executor_waits_and_forbids_new_work(loop):
    finished = []

    def job():
        time.sleep(0.05)
        finished.append(True)

    async def main():
        fut = loop.run_in_executor(None, job)
        await loop.shutdown_default_executor()
        assert finished == [True]
        await fut
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            loop.run_in_executor(None, job)
        # an explicit executor still works
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            await loop.run_in_executor(ex, lambda: None)

    run(loop, main())


def test_shutdown_default_executor_without_executor(loop):
    run(loop, loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, lambda: None)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="timeout argument is 3.12+")
@pytest.mark.xfail_loop("uvloop", reason="shutdown_default_executor(timeout) still waits "
                        "for the executor; the timeout only bounds the final join")
def test_shutdown_default_executor_timeout(loop):
    release = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, release.wait, 10)
        start = time.monotonic()
        with pytest.warns(RuntimeWarning, match="did not finishing joining its threads"):
            await loop.shutdown_default_executor(timeout=0.05)
        elapsed = time.monotonic() - start
        release.set()
        await fut
        return elapsed

    try:
        assert run(loop, main(), timeout=3) < 2
    finally:
        release.set()


def test_close_shuts_down_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    run(loop, loop.run_in_executor(None, lambda: None))
    loop.close()
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)
    ex.shutdown(wait=True)


# --- async generators --------------------------------------------------------------------


def make_agen(log):
    async def agen():
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # finalization may await: it runs in the loop
            log.append("finalized")

    return agen()


def test_shutdown_asyncgens_finalizes_suspended_generators(loop):
    log = []
    keep = []

    async def main():
        gen = make_agen(log)
        keep.append(gen)
        assert await gen.__anext__() == 1

    run(loop, main())
    assert log == []
    run(loop, loop.shutdown_asyncgens())
    assert log == ["finalized"]


def test_asyncgen_collected_while_running_is_closed_in_the_loop(loop):
    log = []

    async def main():
        gen = make_agen(log)
        assert await gen.__anext__() == 1
        del gen
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    run(loop, main())
    assert log == ["finalized"]


def test_asyncgen_hooks_set_while_running_and_restored(loop):
    before = sys.get_asyncgen_hooks()
    inside = []

    async def main():
        inside.append(sys.get_asyncgen_hooks())

    run(loop, main())
    assert inside[0].firstiter is not None
    assert inside[0].finalizer is not None
    assert inside[0] != before
    assert sys.get_asyncgen_hooks() == before


def test_asyncgen_first_iterated_after_shutdown_warns(loop):
    log = []
    run(loop, loop.shutdown_asyncgens())

    async def main():
        gen = make_agen(log)
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            await gen.__anext__()
        await gen.aclose()

    run(loop, main())
    assert log == ["finalized"]


def test_shutdown_asyncgens_reports_errors_to_the_exception_handler(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append(ctx))
    keep = []

    async def bad_agen():
        try:
            yield 1
        finally:
            raise LookupError("while closing")

    async def main():
        gen = bad_agen()
        keep.append(gen)
        await gen.__anext__()

    run(loop, main())
    run(loop, loop.shutdown_asyncgens())
    assert len(calls) == 1
    assert "an error occurred during closing of asynchronous generator" in calls[0]["message"]
    assert isinstance(calls[0]["exception"], LookupError)
    assert calls[0]["asyncgen"] is keep[0]

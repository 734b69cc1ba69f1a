"""asyncio.run(loop_factory=...) (3.12+) and asyncio.Runner(loop_factory=...) (3.11+).

These drive the loop through asyncio's own entry points, the way applications adopt a
loop: run, cancel what is left, shut down async generators and the default executor,
close. Ctrl-C cancels the main task and surfaces as KeyboardInterrupt.
"""

import asyncio
import contextvars
import os
import signal
import sys
import threading
import time

import pytest

cvar = contextvars.ContextVar("cvar", default="default")

needs_loop_factory_in_run = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")


@pytest.fixture
def recording_factory(loop_factory):
    created = []

    def factory():
        loop = loop_factory()
        created.append(loop)
        return loop

    factory.created = created
    yield factory
    for loop in created:
        if not loop.is_closed():
            loop.close()


@needs_loop_factory_in_run
def test_asyncio_run_uses_the_factory(recording_factory):
    async def main():
        return asyncio.get_running_loop()

    loop = asyncio.run(main(), loop_factory=recording_factory)
    assert recording_factory.created == [loop]
    assert loop.is_closed()


@needs_loop_factory_in_run
def test_asyncio_run_debug(recording_factory):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert asyncio.run(main(), loop_factory=recording_factory, debug=True) is True


@needs_loop_factory_in_run
def test_asyncio_run_result_and_exception(recording_factory):
    async def ok():
        await asyncio.sleep(0)
        return 5

    async def fails():
        await asyncio.sleep(0)
        raise LookupError("main failed")

    assert asyncio.run(ok(), loop_factory=recording_factory) == 5
    with pytest.raises(LookupError):
        asyncio.run(fails(), loop_factory=recording_factory)


@needs_loop_factory_in_run
def test_asyncio_run_cleans_up(recording_factory):
    log = []

    async def background():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("background cancelled")
            raise

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            log.append("agen finalized")

    def blocking_job():
        time.sleep(0.05)
        log.append("executor job done")

    async def main():
        asyncio.get_running_loop().create_task(background())
        gen = agen()
        await gen.__anext__()
        main.gen = gen  # keep it suspended until shutdown_asyncgens
        asyncio.get_running_loop().run_in_executor(None, blocking_job)
        await asyncio.sleep(0)

    asyncio.run(main(), loop_factory=recording_factory)
    assert sorted(log) == ["agen finalized", "background cancelled", "executor job done"]


def test_runner_uses_the_factory_and_shares_context(recording_factory):
    async def set_var():
        cvar.set("set in first run")

    async def get_var():
        return cvar.get()

    with asyncio.Runner(loop_factory=recording_factory) as runner:
        loop = runner.get_loop()
        assert recording_factory.created == [loop]
        runner.run(set_var())
        assert runner.run(get_var()) == "set in first run"
        assert not loop.is_running()
    assert loop.is_closed()
    assert cvar.get() == "default"


def test_runner_run_twice_on_one_loop(recording_factory):
    loops = []

    async def main():
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.001)

    with asyncio.Runner(loop_factory=recording_factory) as runner:
        runner.run(main())
        runner.run(main())
    assert loops[0] is loops[1] is recording_factory.created[0]


@pytest.mark.timeout(20)
def test_runner_ctrl_c_cancels_main_and_raises_keyboard_interrupt(recording_factory):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not at its default handler")
    log = []

    async def main():
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            log.append("main cancelled")
            raise

    start = time.monotonic()
    with asyncio.Runner(loop_factory=recording_factory) as runner:
        with pytest.raises(KeyboardInterrupt):
            runner.run(main())
    assert log == ["main cancelled"]
    assert time.monotonic() - start < 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.timeout(20)
def test_runner_ctrl_c_from_another_thread_wakes_the_loop(recording_factory):
    # The loop sleeps in its poll (nothing scheduled for 5 s) when SIGINT arrives.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT handling needs the main thread")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not at its default handler")

    def interrupt_later():
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    async def main():
        await asyncio.sleep(5)

    th = threading.Thread(target=interrupt_later)
    start = time.monotonic()
    with asyncio.Runner(loop_factory=recording_factory) as runner:
        th.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                runner.run(main())
        finally:
            th.join()
    assert time.monotonic() - start < 2

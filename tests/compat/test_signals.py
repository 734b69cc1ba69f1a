"""add_signal_handler and remove_signal_handler (Unix, main thread only).

asyncio routes a signal through signal.set_wakeup_fd: the C-level handler writes the
signal number to the loop's self-pipe, and the loop runs the callback as an ordinary
handle in a later iteration, in the loop's thread. Python-level signal handlers
(signal.signal) still run while the loop sleeps in its poll, so an exception they raise
(KeyboardInterrupt from Ctrl-C) ends run_forever.
"""

import asyncio
import os
import signal
import threading
import time

import pytest

from .support import run, run_iterations


class StraySignal(Exception):
    pass


@pytest.fixture(autouse=True)
def guard_signals():
    """Keep a stray SIGUSR1/SIGUSR2 from killing the test process, restore after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2)}
    stray = []
    for sig in saved:
        signal.signal(sig, lambda signum, frame: stray.append(signum))
    sigint = signal.getsignal(signal.SIGINT)
    yield stray
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.signal(signal.SIGINT, sigint)


def test_handler_runs_in_loop_thread_with_args(loop, guard_signals):
    seen = []

    def handler(*args):
        seen.append((args, asyncio.get_running_loop() is loop,
                     threading.get_ident() == threading.main_thread().ident))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 2)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(5, loop.stop)
    loop.run_forever()
    assert seen == [(("a", 2), True, True)]
    assert guard_signals == []
    loop.remove_signal_handler(signal.SIGUSR1)


def test_signal_from_other_thread_wakes_a_blocked_loop(loop):
    received = []
    sent = []

    def handler():
        received.append(time.monotonic())
        loop.stop()

    def kill_later():
        time.sleep(0.05)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    loop.add_signal_handler(signal.SIGUSR1, handler)
    th = threading.Thread(target=kill_later)
    th.start()
    watchdog = loop.call_later(5, loop.stop)
    try:
        loop.run_forever()
    finally:
        th.join()
        watchdog.cancel()
        loop.remove_signal_handler(signal.SIGUSR1)
    assert received, "signal handler did not run"
    assert received[0] - sent[0] < 0.5


def test_handler_runs_once_per_delivery(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 1)

    async def main():
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(20):
                await asyncio.sleep(0.001)
                if len(seen) == 3:
                    break

    run(loop, main())
    loop.remove_signal_handler(signal.SIGUSR1)
    assert 1 <= len(seen) <= 3  # signals may coalesce; each delivery runs at most once


UVLOOP_REMOVE = ("remove_signal_handler returns False and leaves the handler installed "
                 "while the loop is not running")


@pytest.mark.xfail_loop("uvloop", reason=UVLOOP_REMOVE)
def test_remove_signal_handler_returns_bool_and_restores_default(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


@pytest.mark.xfail_loop("uvloop", reason=UVLOOP_REMOVE)
def test_remove_sigint_handler_restores_default_int_handler(loop):
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_add_signal_handler_replaces_previous(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, "old")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("new"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(5, loop.stop)
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert seen == ["new"]


@pytest.mark.xfail_loop("uvloop", reason="close() leaves its own handlers installed")
def test_close_removes_signal_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR2, lambda: None)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


@pytest.mark.parametrize("sig, exc", [
    ("SIGUSR1", TypeError),
    (1.5, TypeError),
    (0, ValueError),
    (100_000, ValueError),
    (signal.SIGKILL, RuntimeError),
    (signal.SIGSTOP, RuntimeError),
], ids=["str", "float", "zero", "out-of-range", "SIGKILL", "SIGSTOP"])
def test_add_signal_handler_invalid(loop, sig, exc):
    with pytest.raises(exc):
        loop.add_signal_handler(sig, lambda: None)


@pytest.mark.parametrize("sig, exc", [
    ("SIGUSR1", TypeError),
    (0, ValueError),
    (100_000, ValueError),
], ids=["str", "zero", "out-of-range"])
def test_remove_signal_handler_invalid(loop, sig, exc):
    with pytest.raises(exc):
        loop.remove_signal_handler(sig)


def test_remove_uncatchable_signal_returns_false(loop):
    assert loop.remove_signal_handler(signal.SIGKILL) is False


def test_add_signal_handler_rejects_coroutines(loop):
    async def coro_fn():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, coro_fn)
    coro = coro_fn()
    try:
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()


@pytest.mark.xfail_loop("uvloop", reason="ValueError instead of RuntimeError")
def test_add_signal_handler_outside_main_thread_raises(loop_factory):
    errors = []

    def in_thread():
        other = loop_factory()
        try:
            other.add_signal_handler(signal.SIGUSR1, lambda: None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            other.close()

    th = threading.Thread(target=in_thread)
    th.start()
    th.join()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL  # untouched: still the guard


@pytest.mark.allow_loop_errors
def test_exception_in_signal_handler_goes_to_exception_handler(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: (calls.append(ctx), lp.stop()))

    def handler():
        raise LookupError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, handler)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(5, loop.stop)
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR1)
    assert len(calls) == 1
    assert isinstance(calls[0]["exception"], LookupError)


@pytest.mark.xfail_loop("uvloop", reason="an exception raised by a Python-level signal "
                        "handler while the loop sleeps does not end run_forever")
def test_python_signal_handler_exception_ends_run_forever(loop):
    # What Ctrl-C does to a sleeping loop: the handler raises inside the poll.
    def raiser(signum, frame):
        raise StraySignal("from signal.signal handler")

    signal.signal(signal.SIGUSR2, raiser)

    def kill_later():
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR2)

    th = threading.Thread(target=kill_later)
    th.start()
    watchdog = loop.call_later(3, loop.stop)
    try:
        with pytest.raises(StraySignal):
            loop.run_forever()
    finally:
        th.join()
        watchdog.cancel()
    assert not loop.is_running()
    run_iterations(loop, 1)

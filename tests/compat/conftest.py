"""One asyncio-behaviour test body, three loops.

Every test in this directory that takes the ``loop`` (or ``loop_factory``) fixture runs
three times:

- ``asyncio``: the stdlib selector loop, the oracle. Every test must pass here on every
  supported Python; if it does not, the test is wrong, not asyncio.
- ``uvloop``: a second opinion. Where it deviates from asyncio, asyncio is the spec and the
  test carries ``@pytest.mark.xfail_loop("uvloop", reason=...)``, which becomes a strict
  xfail for that parameter only.
- ``gmploop``: must behave like asyncio. If gmploop cannot be imported, its parameters
  fail with the import error. A deviation that a C loop cannot avoid is xfailed
  strictly with its reason (today: handles are not instances of asyncio's Python
  Handle classes); nothing else is.

The fixtures also catch quiet failures: a loop that leaves file descriptors open after
close(), and errors logged on the ``asyncio`` logger that the test did not ask for (an
exception in a callback that nobody looked at). A test that expects such errors says so
with ``@pytest.mark.allow_loop_errors``.
"""

import asyncio
import gc
import logging
import os
import signal
import sys
import sysconfig
import threading
import warnings

import pytest

# uvloop is the second reference where it exists; it has no build for free-threaded
# CPython (3.13t), where the tests compare gmploop with asyncio alone.
LOOP_IDS = (("asyncio", "gmploop") if sysconfig.get_config_var("Py_GIL_DISABLED")
            else ("asyncio", "uvloop", "gmploop"))

# Applied to every compat test that has no timeout of its own: each test is expected to
# finish in well under a second; this only bounds a loop that hangs.
DEFAULT_TIMEOUT = 30

# pytest-timeout's default method raises from a SIGALRM handler; a compiled loop blocked
# in epoll_wait may never let that handler run (uvloop does not), so for the other loops
# the backstop is the "thread" method (dump stacks, end the process). Before it fires, the
# loop fixture's watchdog stops a loop that is merely waiting forever, which fails only
# the hung test.
WATCHDOG_FRACTION = 0.7


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "xfail_loop(name, reason, condition=True, params=None, strict=True): xfail for "
        "the named loop only (params: {argname: [values]} narrows it to some parameters; "
        "strict=False only for a deviation that shows up depending on timing)",
    )
    config.addinivalue_line(
        "markers",
        "allow_loop_errors: the test expects ERROR records on the 'asyncio' logger",
    )


def pytest_collection_modifyitems(config, items):
    apply_loop_marks(items, "compat")


def apply_loop_marks(items, directory):
    """Give the tests under `directory` their timeout and their xfail_loop marks
    (tests/reliability uses these fixtures too, and calls this for its own tests)."""
    for item in items:
        if f"/{directory}/" not in str(item.fspath).replace(os.sep, "/"):
            continue
        mark = item.get_closest_marker("timeout")
        timeout = mark.args[0] if mark is not None and mark.args else DEFAULT_TIMEOUT
        callspec = getattr(item, "callspec", None)
        loop_name = callspec.params.get("loop_name") if callspec is not None else None
        method = "signal" if loop_name in (None, "asyncio") else "thread"
        item.add_marker(pytest.mark.timeout(timeout, method=method), append=False)
        if callspec is None:
            continue
        for mark in item.iter_markers("xfail_loop"):
            (name,) = mark.args
            if name != loop_name or not mark.kwargs.get("condition", True):
                continue
            narrow = mark.kwargs.get("params") or {}
            if any(callspec.params.get(k) not in v for k, v in narrow.items()):
                continue
            item.add_marker(pytest.mark.xfail(
                strict=mark.kwargs.get("strict", True), reason=f"{name} deviates from asyncio: {mark.kwargs['reason']}"))


def _asyncio_factory():
    return asyncio.SelectorEventLoop()


def _uvloop_factory():
    import uvloop
    return uvloop.new_event_loop()


class _Unavailable:
    """Stands in for a loop that cannot be created; the test then fails, never skips."""

    def __init__(self, reason):
        self.reason = reason


def _gmploop_factory():
    try:
        import gmploop
        return gmploop.new_event_loop
    except Exception as exc:  # the project requires gmploop: report, never skip
        return _Unavailable(f"gmploop is not importable: {exc!r}")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    for name in ("loop", "loop_factory"):
        value = pyfuncitem.funcargs.get(name)
        if isinstance(value, _Unavailable):
            pytest.fail(value.reason, pytrace=False)


def _open_fds():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the fd of the listdir itself, already gone
            pass
    return fds


class _ErrorRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


_warmed_up = set()


def _release_previous_failure():
    """Collect what an earlier failed (or xfailed) test left alive.

    pytest keeps the last exception in sys.last_* for post-mortem debugging; its frames
    can hold that test's loop, tasks and sockets, whose finalizers would otherwise log
    or close fds in the middle of the next test and be blamed on it.
    """
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    with warnings.catch_warnings():  # "never awaited" and the like: the earlier test's
        warnings.simplefilter("ignore")
        gc.collect()


def _warm_up(name, factory):
    """Create, run and close one loop, once per process and loop kind.

    Process-wide state that a loop library creates on first use and keeps (uvloop keeps
    a pipe for libuv's signal handling) is not a leak of the loop under test.
    """
    if name in _warmed_up:
        return
    _warmed_up.add(name)
    loop = factory()
    try:
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


@pytest.fixture(params=LOOP_IDS)
def loop_name(request):
    return request.param


@pytest.fixture
def loop_factory(request, loop_name):
    """A zero-argument factory for the loop under test; checks fds around the test."""
    factory = {
        "asyncio": lambda: _asyncio_factory,
        "uvloop": lambda: _uvloop_factory,
        "gmploop": _gmploop_factory,
    }[loop_name]()
    if isinstance(factory, _Unavailable):
        yield factory  # pytest_pyfunc_call fails the test with the reason
        return
    _warm_up(loop_name, factory)
    _release_previous_failure()
    before = _open_fds()
    wakeup_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_before)
    yield factory
    wakeup_after = signal.set_wakeup_fd(wakeup_before)  # restore it in any case
    if request.node.get_closest_marker("xfail") is not None:
        return  # a known deviation: its leftovers are part of the deviation
    gc.collect()
    after = _open_fds()
    leaked = {fd: target for fd, target in after.items() if fd not in before}
    assert len(after) <= len(before), f"{loop_name}: file descriptors leaked: {leaked}"
    assert wakeup_after == wakeup_before, (
        f"{loop_name}: signal wakeup fd left at {wakeup_after}, was {wakeup_before}")


class _Watchdog:
    """Stops a loop that is still running after `delay` seconds, again every second."""

    def __init__(self, loop, delay):
        self.loop = loop
        self.delay = delay
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compat-watchdog",
                                        daemon=True)
        self._thread.start()

    def _run(self):
        if self._done.wait(self.delay):
            return
        self.fired = True
        while not self._done.is_set():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # closed
                return
            self._done.wait(1)

    def cancel(self):
        self._done.set()
        self._thread.join()


@pytest.fixture
def loop(loop_factory, request):
    """A fresh loop, current for the test, closed afterwards."""
    if isinstance(loop_factory, _Unavailable):
        yield loop_factory
        return
    errors = _ErrorRecords()
    logger = logging.getLogger("asyncio")
    logger.addHandler(errors)
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    timeout = request.node.get_closest_marker("timeout").args[0]
    watchdog = _Watchdog(loop, timeout * WATCHDOG_FRACTION)
    try:
        yield loop
    finally:
        watchdog.cancel()
        asyncio.set_event_loop(None)
        if not loop.is_closed():
            loop.close()
        del loop
        gc.collect()
        logger.removeHandler(errors)
    if request.node.get_closest_marker("xfail") is not None:
        return  # a known deviation: its leftovers are part of the deviation
    assert not watchdog.fired, (
        f"test hung: the watchdog stopped the loop after {watchdog.delay:.0f}s")
    if request.node.get_closest_marker("allow_loop_errors") is None:
        assert not errors.records, "unexpected errors logged by the loop:\n" + "\n".join(
            errors.format(r) for r in errors.records)

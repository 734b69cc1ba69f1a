"""gmploop: an asyncio event loop in Cython, built on the ideas of Go's runtime.

Entry points::

    asyncio.run(main(), loop_factory=gmploop.new_event_loop)    # Python 3.12+
    with asyncio.Runner(loop_factory=gmploop.new_event_loop) as r: r.run(main())
    gmploop.run(main())                                         # like uvloop.run
    asyncio.set_event_loop_policy(gmploop.Policy())              # where policies exist

Many Ps (one per CPU, each a process, or a thread where the GIL is off; see
docs/runtime.md)::

    gmploop.run(main, procs=2)              # main: an async def function, run on every P
    asyncio.set_event_loop_policy(gmploop.Policy(procs=2))       # e.g. for web.run_app
    gmploop.go(coro)                        # start coro on the current P, fire and forget

Observability (docs/observability.md): loop.stats() and gmploop.stats() return
snapshots of the loops' counters; sysmon reports a callback that blocks a loop for
longer than 100 ms (Loop(sysmon=seconds), gmploop.run(..., sysmon=seconds), or
GMPLOOP_DEBUG=sysmon=MS; 0 turns it off); GMPLOOP_DEBUG=schedtrace=MS prints one line
of scheduler state to stderr every MS milliseconds.
"""

import asyncio as _asyncio
import functools as _functools
import sys as _sys
import threading as _threading
import warnings as _warnings

from . import _dgram, _loop, _pipes, _runtime, _subprocess, _sysmon, _threadrt
from ._net import NetMixin as _NetMixin
from ._poller import BACKEND as _BACKEND
from ._stats import LoopStats, RuntimeStats
from ._streams import StreamsMixin as _StreamsMixin

from ._go import go
from ._runtime import PFailedError

__all__ = ("Loop", "new_event_loop", "run", "Policy", "install", "go", "PFailedError",
           "stats", "LoopStats", "RuntimeStats")
__version__ = "0.1.0.dev0"


class Loop(_NetMixin, _StreamsMixin, _loop.Loop, _asyncio.AbstractEventLoop):
    """An asyncio event loop: one P of gmploop (run queue, timers, netpoller).

    Behaves as asyncio's own loop does; see asyncio's documentation of
    AbstractEventLoop for each method.
    """

    # Connections, servers, TLS and sendfile come from NetMixin (gmploop/_net.py),
    # the stream transports under them from StreamsMixin (gmploop/_streams.pyx).

    def __init__(self, *, sysmon=None):
        """sysmon: seconds a callback may run before sysmon reports it (None: the
        GMPLOOP_DEBUG setting, 0.1 s by default; 0: never)."""
        super().__init__(sysmon=sysmon)
        p = _runtime.this_p()
        if p is not None:           # a P of the runtime: stats and schedtrace say which
            self._p_index = p
        _sysmon.watch(self)

    # ---- datagram endpoints: gmploop/_dgram.pyx ----

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None,
                                       remote_addr=None, **kwargs):
        return await _dgram.create_datagram_endpoint(
            self, protocol_factory, local_addr, remote_addr, **kwargs)

    # ---- pipes and subprocesses: gmploop/_pipes.pyx, gmploop/_subprocess.py ----

    async def connect_read_pipe(self, protocol_factory, pipe):
        return await _pipes.connect_read_pipe(self, protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        return await _pipes.connect_write_pipe(self, protocol_factory, pipe)

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _pipes.make_read_pipe_transport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return _pipes.make_write_pipe_transport(self, pipe, protocol, waiter, extra)

    async def subprocess_exec(self, protocol_factory, program, *args, **kwargs):
        return await _subprocess.subprocess_exec(self, protocol_factory, program,
                                                 *args, **kwargs)

    async def subprocess_shell(self, protocol_factory, cmd, **kwargs):
        return await _subprocess.subprocess_shell(self, protocol_factory, cmd, **kwargs)

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout,
                                         stderr, bufsize, extra=None, **kwargs):
        return await _subprocess.make_subprocess_transport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            extra=extra, **kwargs)



def new_event_loop() -> Loop:
    """Return a new gmploop event loop (a zero-argument loop factory)."""
    return Loop()


def run(main, *, debug=None, procs=None, sysmon=None, restart=None):
    """Run a coroutine (or a zero-argument coroutine function) on a new gmploop loop
    until it completes, the way asyncio.run does; return its result.

    procs: the number of Ps (default: $GMPLOOP_PROCS, else 1; 0 or "auto": one per
    CPU this process may use). With more than one, main must be a callable returning
    a coroutine: it runs once on every P, each pinned to its own CPU, and run returns
    the list of their results, in P order. A P is a process, or a thread on a
    free-threaded build with the GIL off ($GMPLOOP_M=thread|process forces one; see
    docs/runtime.md).

    restart: with more than one P, how many times a P that fails (main raises, the
    P crashes or is killed) is started again within 60 s before the failure ends the
    run (default: $GMPLOOP_RESTART, else 0, never; True: 5). One P is the program
    itself: there is nothing to restart it, and restart is only checked.

    sysmon: as Loop(sysmon=...).
    """
    factory = new_event_loop if sysmon is None else _functools.partial(Loop, sysmon=sysmon)
    if restart is not None:
        _runtime.resolve_restart(restart)       # bad values fail with any procs
    if procs != 1:
        n = _runtime.resolve_procs(procs)
        if n > 1:
            if _threadrt.use_threads():
                _threadrt.check_restart(_runtime.resolve_restart(restart))
                return _threadrt.run_threads(main, n, debug, factory)
            return _runtime.run_procs(main, n, debug, factory, restart)
    if callable(main) and not _asyncio.iscoroutine(main):
        main = main()
    with _asyncio.Runner(loop_factory=factory, debug=debug) as runner:
        return runner.run(main)


def stats() -> RuntimeStats:
    """Snapshots of the Ps, in P order: a RuntimeStats whose .ps holds one LoopStats
    per P. In a P of gmploop.run(main, procs=N), every P of the runtime (this P's
    taken now, the others' as their Ps last published them, at most about 100 ms
    ago: see LoopStats.time); elsewhere every gmploop loop alive in this process."""
    return _sysmon.stats()


# Policies: deprecated in Python 3.14 and gone in 3.16. Policy exists wherever asyncio
# still has the base class, and is built from the private name 3.14 moved it to, so
# that importing gmploop never warns: asyncio itself warns where the user calls its
# deprecated policy functions.
_policy_base = (getattr(_asyncio.events, "BaseDefaultEventLoopPolicy", None)
                or getattr(_asyncio.events, "_BaseDefaultEventLoopPolicy", None))

if _policy_base is not None:

    class Policy(_policy_base):
        """An asyncio event loop policy whose loops are gmploop loops.

        asyncio.set_event_loop_policy(gmploop.Policy())
        """

        def __init__(self, *, procs=1, restart=None):
            if _sys.version_info >= (3, 14):
                _warnings.warn(
                    "gmploop.Policy is deprecated as asyncio's event loop policies "
                    "are; use asyncio.run(main(), loop_factory=gmploop.new_event_loop) "
                    "or gmploop.run(main())", DeprecationWarning, stacklevel=2)
            super().__init__()
            # procs != 1: the first loop asked for in the main thread starts the Ps
            # (see 'Policy mode' in docs/runtime.md); None reads $GMPLOOP_PROCS.
            # restart: as gmploop.run(restart=...).
            self._procs = procs
            self._procs_started = procs == 1
            if restart is not None:
                _runtime.resolve_restart(restart)   # fail here, not at the first loop
            self._restart = restart     # as run(restart=...); None: $GMPLOOP_RESTART

        def _loop_factory(self):
            if not self._procs_started and _threading.current_thread() is \
                    _threading.main_thread():
                self._procs_started = True
                n = _runtime.resolve_procs(self._procs)
                if n > 1:
                    _threadrt.check_policy_mode()   # policy mode always forks
                    # Returns in each P (and in each P started again after a
                    # failure); the supervisor exits.
                    _runtime.fork_here(n, self._restart)
            return new_event_loop()

        if hasattr(_asyncio, "AbstractChildWatcher"):   # Python < 3.14
            # asyncio's Unix policy keeps a child watcher, and code written for it calls
            # get_child_watcher()/set_child_watcher(). gmploop's subprocesses do not
            # need one (each child is reaped through its pidfd in the netpoller), but a
            # watcher is kept exactly as asyncio keeps it, for the code that uses one
            # directly: the same default, the same warnings, attached to the loop set
            # from the main thread.
            _watcher = None

            def get_child_watcher(self):
                """Get the watcher for child processes, made on first use as asyncio's
                Unix policy makes it (deprecated there from 3.12)."""
                if self._watcher is None:
                    import asyncio.unix_events as unix_events
                    with _asyncio.events._lock:
                        if self._watcher is None:
                            # 3.12+ prefers a pidfd watcher; 3.11 always threads.
                            can_use_pidfd = getattr(unix_events, "can_use_pidfd", None)
                            self._watcher = (unix_events.PidfdChildWatcher()
                                             if can_use_pidfd and can_use_pidfd()
                                             else unix_events.ThreadedChildWatcher())
                if _sys.version_info >= (3, 12):
                    _warnings._deprecated(
                        "get_child_watcher", "{name!r} is deprecated as of Python "
                        "3.12 and will be removed in Python {remove}.", remove=(3, 14))
                return self._watcher

            def set_child_watcher(self, watcher):
                """Set the watcher for child processes; the previous one is closed."""
                assert watcher is None or isinstance(
                    watcher, _asyncio.AbstractChildWatcher)
                if self._watcher is not None:
                    self._watcher.close()
                self._watcher = watcher
                if _sys.version_info >= (3, 12):
                    _warnings._deprecated(
                        "set_child_watcher", "{name!r} is deprecated as of Python "
                        "3.12 and will be removed in Python {remove}.", remove=(3, 14))

            def set_event_loop(self, loop):
                super().set_event_loop(loop)
                import threading
                if (self._watcher is not None
                        and threading.current_thread() is threading.main_thread()):
                    self._watcher.attach_loop(loop)

    def install():
        """Make gmploop the default loop: asyncio.set_event_loop_policy(Policy())."""
        _asyncio.set_event_loop_policy(Policy())

else:  # Python without event loop policies

    def __getattr__(name):
        if name in ("Policy", "install"):
            raise AttributeError(
                f"gmploop.{name} is not available: this Python has no asyncio event "
                f"loop policies; use asyncio.run(main(), "
                f"loop_factory=gmploop.new_event_loop) or gmploop.run(main())")
        raise AttributeError(f"module 'gmploop' has no attribute {name!r}")

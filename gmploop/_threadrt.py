"""The thread runtime: many Ps as threads of one process, on free-threaded builds.

What it does
------------
On a free-threaded CPython with the GIL off (``sys._is_gil_enabled()`` is False),
``gmploop.run(main, procs=N)`` runs its N Ps as threads of the calling process instead
of forked processes (``_runtime.py``): here an M is a thread. Each P thread pins
itself to one CPU (``os.sched_setaffinity(0, ...)`` binds the calling thread on Linux),
makes a gmploop loop and runs ``main()`` on it as ``asyncio.run`` would (a fresh
``asyncio.Runner``); ``run`` returns the results in P order. The API and the
semantics are the process runtime's: ``main`` runs once on every P, no Task moves
between loops, a P that fails makes ``run`` raise ``PFailedError`` with its traceback
after the other Ps were shut down, SIGINT and SIGTERM shut every P down as
``asyncio.run`` shuts down on SIGINT.

What threads change
-------------------
* Nothing is forked: every P shares the process's modules and objects. ``main``'s
  module-level state is shared too, as it is for any threaded program (a prefork
  server's per-worker globals are not): the documentation says so.
* Results and tracebacks are Python objects handed over in memory; nothing is pickled.
* Unstarted ``go()`` coroutines move between Ps: the loops' ``GoQueue``\\s form one
  ``GoGroup`` (see 'Stealing' in ``_go.py``). Accepted connections are not queued for
  stealing here: a P that is polling accepts from the shared listener itself (below),
  which already keeps connections away from a stuck P.

Concepts
--------
* **Supervisor.** The main thread: it starts the P threads, waits for them, and is the
  only thread Python runs signal handlers on, so it turns SIGINT and SIGTERM into a
  cancellation of each P's main task, sent with ``call_soon_threadsafe``.
* **P thread.** ``_PThread``: its index, CPU, loop, main task and how it ended. It
  reports by setting those fields and putting its index on the supervisor's queue,
  whatever happens (see 'Invariants').
* **Shared listeners.** ``ThreadListeners`` is ``_net.listener_source`` while the
  runtime runs. The first P that asks for a (family, type, address, options) key binds
  it (``_runtime.bind_for_key``, the process supervisor's own rule: the n-th server a P
  has open for a key gets the n-th socket, so port 0 gives every P the same port);
  every P gets its own ``dup`` of that socket, marked shared, which its loop registers
  in its own epoll with ``EPOLLEXCLUSIVE`` (see 'Shared listeners' in ``_runtime.py``:
  the kernel wakes one polling P per connection, never one stuck in a callback).
  A thread that is not a P (an executor's) binds its own sockets, as without the
  runtime.

Rejected approaches
-------------------
* Threads on a build with the GIL, or with the GIL re-enabled at run time (an
  extension module that does not declare itself free-threading safe turns it back
  on): the Ps would take turns on one core. ``run`` then uses processes, and
  ``GMPLOOP_M=thread`` is refused with an error that says why.
* One loop's callbacks run by several threads (Go's Ms sharing a P's run queue): it
  breaks the invariant every asyncio library relies on (one callback at a time per
  loop; a Task stays on its loop, and from 3.14 on its thread).
* Policy mode (``gmploop.Policy(procs=N)``) on threads: policy mode lets the rest of
  the program run on every P after the call that made the loop, which only a fork can
  do. It keeps using processes on every build (``GMPLOOP_M=thread`` makes it refuse).
* ``signal.pthread_kill`` to interrupt a P's thread: Python runs handlers only on the
  main thread, so the P would never see it; a cancellation through the loop's
  thread-safe door is what ``asyncio.Runner`` does for SIGINT anyway.

Invariants
----------
* Every P thread ends with one report (result, failure, interruption, exit) and its
  index on ``self.done``; ``run`` returns or raises only after joining every thread,
  so no P outlives ``run``.
* ``run`` restores the signal handlers and the listener source it found, and closes
  the sockets it bound, removing Unix socket files it created.
* A P's loop is touched by other threads only through ``call_soon_threadsafe``.

Races it survives
-----------------
* A signal before a P's main task exists: the P notes the request
  (``interrupt_requested``) and cancels the task as soon as it has one; a P whose
  loop is already closed needs no cancelling.
* Two Ps ask for the same key at once: ``ThreadListeners`` binds under its lock, so
  the second gets the first's socket.
* A P fails while another is still starting: the failure sets the shutdown flag
  first, so a P that starts later cancels its own main task at once.
"""

import asyncio
import os
import queue
import signal
import sys
import threading
import traceback

from . import _go, _net, _runtime
from ._runtime import PFailedError

__all__ = ("gil_disabled", "use_threads", "run_threads")

# The supervisor wakes at least this often while it waits (seconds): signals are
# handled as soon as they arrive anyway (the wait is interruptible); this only bounds
# how long a lost wake-up could delay it.
SUPERVISOR_TICK = 0.5
# Longest traceback text kept per P, as the process runtime keeps.
MAX_TRACEBACK = _runtime.MAX_TRACEBACK


def gil_disabled():
    """True on a free-threaded build running with the GIL off."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()


def m_mode():
    """$GMPLOOP_M: 'thread', 'process', or '' (choose by the build)."""
    mode = os.environ.get("GMPLOOP_M", "").strip().lower()
    if mode not in ("", "thread", "process"):
        raise ValueError(f"GMPLOOP_M must be 'thread' or 'process', not {mode!r}")
    return mode


def use_threads():
    """Whether run(procs=N) runs its Ps as threads: $GMPLOOP_M if set, else threads
    exactly when the GIL is off. Refuses thread mode where the GIL is on."""
    mode = m_mode()
    if mode == "thread" and not gil_disabled():
        raise RuntimeError(
            "GMPLOOP_M=thread needs a free-threaded Python running with the GIL "
            "disabled (sys._is_gil_enabled() is False): with the GIL, Ps that are "
            "threads would take turns on one core. Unset GMPLOOP_M to use processes.")
    if mode:
        return mode == "thread"
    return gil_disabled()


def check_policy_mode():
    """Policy(procs=N) forks (see 'Rejected approaches'): refuse an explicit
    GMPLOOP_M=thread rather than quietly using processes."""
    if m_mode() == "thread":
        raise RuntimeError(
            "gmploop.Policy(procs=N) runs the rest of the program on every P, which "
            "needs processes; GMPLOOP_M=thread works with gmploop.run(main, procs=N)")


def check_restart(restart):
    """run(restart=N) restarts failed P processes; a thread P that failed has left its
    state in a process that goes on, so the thread runtime does not restart Ps. Refuse
    a restart budget there rather than quietly ignoring it."""
    if restart:
        raise ValueError(
            f"restart={restart} needs the process runtime: the thread runtime does not "
            f"restart a failed P (set GMPLOOP_M=process to use processes)")


def run_threads(main, procs, debug, loop_factory):
    """Run main() on procs Ps that are threads (procs > 1); see the module essay."""
    _runtime.check_run_args(main, procs)
    if not gil_disabled():
        raise RuntimeError("the thread runtime needs the GIL disabled")
    return ThreadSupervisor(procs, _runtime.listen_mode()).run(main, debug, loop_factory)


class _PThread:
    """The supervisor's record of one P thread, written by that thread."""

    __slots__ = ("index", "cpu", "thread", "loop", "task", "result", "kind", "text",
                 "code", "interrupt_requested", "lock")

    def __init__(self, index, cpu):
        self.index = index
        self.cpu = cpu
        self.thread = None
        self.loop = None
        self.task = None            # main's task, once it exists
        self.result = None
        self.kind = None            # "result", "failed", "interrupted", "exit"
        self.text = ""              # traceback text for the last three
        self.code = 0               # SystemExit's status, for "exit"
        self.interrupt_requested = 0
        self.lock = threading.Lock()    # guards task and interrupt_requested


class ThreadSupervisor:
    """Starts the P threads and looks after them. Main thread only."""

    def __init__(self, procs, mode):
        self.procs = procs
        self.ps = []
        self.done = queue.SimpleQueue()     # indexes of Ps that have ended
        self.shutdown_signal = None
        self.failed = False
        self.listeners = ThreadListeners(mode)
        self.group = _go.GoGroup(procs)

    def run(self, main, debug, loop_factory):
        cpus = _runtime._usable_cpus()
        pinned = hasattr(os, "sched_setaffinity")
        old_handlers = {}
        old_source = _net.listener_source
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
            _net.listener_source = self.listeners
            for index in range(self.procs):
                cpu = cpus[index % len(cpus)] if pinned and cpus else None
                p = _PThread(index, cpu)
                p.thread = threading.Thread(
                    target=self._p_main, args=(p, main, debug, loop_factory),
                    name=f"gmploop-P{index}", daemon=True)
                self.ps.append(p)
                p.thread.start()
            ended = 0
            while ended < self.procs:
                try:
                    index = self.done.get(timeout=SUPERVISOR_TICK)
                except queue.Empty:
                    continue
                ended += 1
                p = self.ps[index]
                p.thread.join()
                if self._p_failed(p) and not self.failed:
                    # One P lost is a failed program: stop the others as on SIGTERM.
                    self.failed = True
                    self._interrupt_all()
        except BaseException:
            # The supervisor itself was interrupted (a signal handler raised, or
            # starting a thread failed): no P may outlive run unreported.
            self.failed = True
            self._interrupt_all()
            for p in self.ps:
                p.thread.join()
            raise
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            _net.listener_source = old_source
            self.listeners.close()
        return self._outcome()

    # ---- signals

    def _on_signal(self, signum, frame):
        """Main thread: the first SIGINT/SIGTERM cancels every P's main task; a
        later SIGINT cancels every task of every P (a second Ctrl-C)."""
        if self.shutdown_signal is None:
            self.shutdown_signal = signum
            self._interrupt_all()
        elif signum == signal.SIGINT:
            self._interrupt_all(everything=True)

    def _interrupt_all(self, everything=False):
        for p in self.ps:
            with p.lock:
                p.interrupt_requested += 1
                loop = p.loop
            if loop is None:
                continue        # not started: it checks interrupt_requested itself
            try:
                loop.call_soon_threadsafe(self._interrupt_here, p, everything)
            except RuntimeError:
                pass            # its loop is closed: it is done

    @staticmethod
    def _interrupt_here(p, everything):
        """P's own thread: what asyncio.Runner does on SIGINT, cancel main's task."""
        with p.lock:
            task = p.task
        if task is not None and not task.done():
            task.cancel()
        if everything:
            for t in asyncio.all_tasks():
                t.cancel()

    # ---- the P

    def _p_main(self, p, main, debug, loop_factory):
        """The body of P thread p.index: runs main() and reports; never raises."""
        try:
            self._p_run(p, main, debug, loop_factory)
        except SystemExit as exc:
            code = exc.code
            p.code = code if isinstance(code, int) else (0 if code is None else 1)
            p.kind = "exit"
            p.text = traceback.format_exc()[-MAX_TRACEBACK:]
        except KeyboardInterrupt:
            p.kind = "interrupted"
            p.text = traceback.format_exc()[-MAX_TRACEBACK:]
        except BaseException:
            p.kind = "failed"
            p.text = traceback.format_exc()[-MAX_TRACEBACK:]
        finally:
            _runtime.thread_p.index = None
            self.group.leave(p.index)
            self.done.put(p.index)

    def _p_run(self, p, main, debug, loop_factory):
        if p.cpu is not None:
            os.sched_setaffinity(0, {p.cpu})        # this thread only (Linux)
        _runtime.thread_p.index = p.index           # loops made here say which P
        with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            loop = runner.get_loop()
            self.group.join(p.index, loop)
            with p.lock:
                p.loop = loop
            try:
                p.result = runner.run(self._main_task(p, main))
            except asyncio.CancelledError:
                if not p.interrupt_requested:
                    raise
                # Cancelled by the runtime's shutdown: asyncio.run raises
                # KeyboardInterrupt here after a SIGINT.
                p.kind = "interrupted"
                p.text = traceback.format_exc()[-MAX_TRACEBACK:]
                return
        p.kind = "result"

    @staticmethod
    async def _main_task(p, main):
        with p.lock:
            p.task = asyncio.current_task()
            cancel = p.interrupt_requested > 0
        if cancel:
            # A shutdown came before this P had a task to cancel (see 'Races').
            raise asyncio.CancelledError()
        return await main()

    # ---- the outcome

    def _p_failed(self, p):
        if p.kind == "result" or (p.kind == "exit" and p.code == 0):
            return False
        if p.kind == "interrupted" and (self.shutdown_signal is not None or self.failed):
            return False        # ended by the shutdown the runtime asked for
        return True

    def _describe(self, p):
        name = f"thread {p.thread.name} on CPU {p.cpu}"
        if p.kind == "exit":
            return f"{name}: main called sys.exit({p.code})"
        if p.kind == "interrupted":
            return f"{name}: interrupted, not by the runtime"
        return f"{name}: main raised an exception"

    def _outcome(self):
        failures = []
        results = []
        for p in self.ps:
            if self._p_failed(p):
                failures.append((p.index, os.getpid(), self._describe(p), p.text))
            else:
                results.append(p.result if p.kind == "result" else None)
        if failures:
            raise PFailedError(failures)
        if self.shutdown_signal == signal.SIGINT:
            raise KeyboardInterrupt()
        if self.shutdown_signal == signal.SIGTERM:
            raise SystemExit(128 + signal.SIGTERM)
        return results


class ThreadListeners:
    """_net.listener_source of the thread runtime (see 'Shared listeners' in the
    essay). Any thread; the table is guarded by a lock."""

    def __init__(self, mode):
        self.mode = mode
        self.lock = threading.Lock()
        self.listeners = {}     # key -> [socket, ...] bound by this runtime
        self.unix_files = []    # (path, inode) of Unix listeners, removed at the end
        self.issued = {}        # (P index, key) -> [socket given to that P ...]

    def bound_listener(self, family, type_, proto, address, reuse_address, reuse_port,
                       keep_alive):
        """create_server's socket for one address (see _net.bound_listener)."""
        index = _runtime.this_p()
        if index is None:
            return _net.bound_listener(family, type_, proto, address, reuse_address,
                                       reuse_port, keep_alive)
        key = _runtime.listener_key(family, type_, proto, address, reuse_address,
                                    reuse_port, keep_alive)
        return self._request(index, key)

    def bound_unix_listener(self, path):
        """create_unix_server's socket; the runtime removes its file at the end."""
        index = _runtime.this_p()
        if index is None:
            return _net.bound_unix_listener(path)
        return self._request(index, ("unix", path))

    def _request(self, p_index, key):
        with self.lock:
            issued = self.issued.setdefault((p_index, key), [])
            index = _runtime.free_index(issued)
            socks = self.listeners.setdefault(key, [])
            while len(socks) <= index:
                sock = _runtime.bind_for_key(key, self.mode, self.listeners,
                                             self.unix_files)
                if sock is None:
                    return None
                socks.append(sock)
            fd = os.dup(socks[index].fileno())
        try:
            if key[0] == "tcp" and self.mode == "reuseport":
                # The runtime's socket only holds the port: a listener of the P's own.
                sock = _runtime.reuseport_listener(key, fd)
            else:
                sock = _runtime.SharedListenerSocket(fileno=fd)
        except BaseException:
            if key[0] != "tcp" or self.mode != "reuseport":
                os.close(fd)
            raise
        with self.lock:
            _runtime.issue(issued, index, sock)
        return sock

    def close(self):
        """Supervisor, at the end: close the bound sockets, remove the socket files."""
        with self.lock:
            for socks in self.listeners.values():
                for sock in socks:
                    sock.close()
            self.listeners.clear()
            for path, inode in self.unix_files:
                _net._remove_if_ours(path, inode)
            self.unix_files.clear()

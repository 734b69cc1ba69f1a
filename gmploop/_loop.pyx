"""The P: one asyncio event loop, its run queue, timer heap and netpoller.

What it does
------------
``Loop`` is asyncio's ``BaseEventLoop`` + ``SelectorEventLoop`` core in Cython. Its
one job is asyncio's iteration (``_run_once``), which gmploop keeps to the letter,
because every asyncio library depends on it:

1. Drop cancelled timers from the top of the heap (or compact the heap when most of
   it is dead).
2. Poll for I/O: without blocking if callbacks are ready or the loop is stopping,
   else until the earliest timer, else until something happens.
3. Queue the callbacks of the fds that are ready, then of the timers that are due.
4. Run exactly the callbacks that were queued when step 4 began, in FIFO order. A
   callback queued by one of them runs in the next iteration, after I/O is polled.

Only the owner thread runs these; ``call_soon_threadsafe`` is the one door for other
threads (see 'Threads' below).

Rejected approaches
-------------------
* Subclassing ``asyncio.BaseEventLoop`` and replacing the hot methods: every
  attribute it reads (``_ready``, ``_scheduled``, ``_selector``) would have to remain a
  Python object the base class understands, which is exactly the overhead to remove.
* Running ready callbacks as soon as they are queued, or ordering I/O callbacks before
  older ``call_soon`` callbacks: cheaper in places, but it breaks the fairness and the
  "nothing runs between two statements without an await" reasoning of asyncio code.
* Running timers through the run queue only when the poller times out: a busy loop
  would then starve timers; they are checked every iteration, as in asyncio.

Invariants
----------
* One callback at a time, on the thread in ``_thread_id`` while running.
* A handle is run at most once per time it was queued, and never after ``cancel``.
* ``_stopping`` makes the current iteration the last: it is checked after an
  iteration completes, so ``stop()`` before ``run_forever()`` runs one iteration.
* Tasks and futures are asyncio's own C implementations: they call back into
  ``call_soon``, ``get_debug`` and ``call_exception_handler`` like on any loop.

Races it must survive
---------------------
* Signals arrive while the loop is blocked in the poller (EINTR: Python's handlers
  run, which may raise KeyboardInterrupt out of ``run_forever`` as on asyncio), or while
  a callback runs (the signal's byte waits in the wakeup socket until the next poll).
* A callback closes an fd that is also in the current batch of events: the events were
  turned into queued handles before any callback ran, and ``remove_reader`` cancels the
  queued handle, so the stale callback does not run.

Threads
-------
A loop belongs to one thread, the *owner*: the one that runs it (or, before it first
runs, the one that made it). With the GIL, ``call_soon_threadsafe`` from any thread
puts into the ``RunQueue`` directly: the GIL makes each ``put`` atomic with the owner's
``get``. On a free-threaded build two threads would tear the ring, so there a handle
from a thread other than the owner goes to ``_inbox``, a ``collections.deque`` (its
``append`` and ``popleft`` take the deque's own lock), and the poller's doorbell is
rung after the append. The owner empties the inbox into the run queue in step 2,
before it computes the poll's timeout (so a handle appended before the doorbell rang
is never left behind a blocking wait), and before each of its own ``call_soon``\s, so
that a handle another thread queued before the owner's ``call_soon`` (ordered by a
lock, say) still runs first, as asyncio's one deque keeps them (CPython's
``test_call_soon_threadsafe``). Rejected: a lock around the ``RunQueue`` (every
``call_soon`` would pay for what only other threads need; the inbox costs the owner a
length test); the inbox on GIL builds too (it would cost that test for nothing).

Sysmon's thread reads and writes object fields of a running loop (``_current_handle``,
``_slow_incident``). With the GIL each access is atomic; without it, a read racing
with the owner's replacement of the field could take a reference to an object the
replacement has just freed. Both sides therefore touch those fields inside
``cython.critical_section(self)`` (nothing on a GIL build; one uncontended lock on a
free-threaded one, and only while the loop is observed).

Polls that cannot report anything
---------------------------------
Step 2 is a system call even when it may not block, and a loop whose callbacks queue
more callbacks (a chain of ``call_soon``, a task that awaits ``sleep(0)``, futures
passed between tasks) makes one per iteration: in the ``call_soon_chain`` benchmark
that call was half the time per callback. When no fd is registered with the poller
but its doorbell, a poll that may not block has nothing to report: the doorbell
matters only to a wait that blocks (``call_soon_threadsafe`` has queued its handle
before it rings), and it stays rung for the next one, which then returns at once and
drains it. So that poll is skipped, and the only other thing it did, noticing a signal
(EINTR), is done by ``PyErr_CheckSignals`` every few iterations: a chain of callbacks
that run no Python frame (where the interpreter would check) still stops on Ctrl-C. Any registered fd (a
socket, ``add_reader``, the signal socket of ``add_signal_handler``) brings the poll
back on every iteration, so I/O is never left waiting behind ready callbacks, as
asyncio promises. Rejected: polling every N iterations while callbacks are ready (as
some loops do): a busy loop would then run dozens of callbacks before a reader whose
data arrived in the first, which asyncio code does not expect.

Futures and tasks without a keyword
-----------------------------------
``create_future`` and ``create_task`` make asyncio's C ``Future`` and ``Task``. From
3.13 a call of those types with ``loop=`` goes the generic way, through a dict built
for the keyword (about 80 ns of the 200 a future costs); without it, they ask the
thread for its running loop, which is this loop whenever it is the running loop of the
calling thread. So they leave ``loop=`` out exactly then, checked per call (a program
may call a loop's ``create_future`` from outside it, before it runs or from another
loop's callbacks), and pass it otherwise. On 3.11 the keyword costs nothing measurable,
and the call is left as it is.

Observability
-------------
The loop publishes what sysmon (``_sysmon.py``) and ``stats()`` read, at no cost per
callback beyond what the loop did anyway: ``_state`` (stopped, polling, running) is
stored twice per iteration; ``_n_callbacks`` is counted before each callback runs, and
``_current_handle`` names it. Sysmon tells a blocked loop by a count that stops moving
while the state says running (Go's sysmon compares ``schedtick`` the same way), so no
clock is read per callback. Time is read only around a poll that may block: before it
and after it, readings the timer code needed anyway; a poll that cannot block is work,
not waiting, and is counted as busy time without a reading. Busy time is the running
time minus the polling time.

When sysmon finds a callback over its threshold, ``_sysmon_claim`` (one C call, so atomic
under the GIL with respect to this thread) marks it in ``_slow_seq``; the loop tests
that one field after each callback and, on the rare run where it is set, hands the
incident back to sysmon to close (``_slow_callback_ended``), on the loop's own thread.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_RawMalloc, PyMem_RawFree
from libc.math cimport ceil, isnan, INFINITY
from libc.stdint cimport uint32_t
from cpython.pythread cimport PyThread_get_thread_ident

import asyncio
import collections
import concurrent.futures
import errno
import functools
import os
import signal
import socket
import sys
import sysconfig
import threading
import time
import warnings
import weakref

from asyncio import base_events as aio_base_events
from asyncio import coroutines as aio_coroutines
from asyncio import events as aio_events
from asyncio import exceptions as aio_exceptions
from asyncio import format_helpers as aio_format_helpers
from asyncio import futures as aio_futures
from asyncio import tasks as aio_tasks
import traceback

try:
    import ssl as _ssl
except ImportError:     # pragma: no cover
    _ssl = None

from ._runq cimport RunQueue
from ._timers cimport TimerHeap
from ._poller cimport (
    Poller, PollDesc, PD_LEVEL, PD_EDGE,
    GP_IN, GP_OUT, gp_monotonic,
)
from ._handles cimport Handle, TimerHandle, new_handle, new_timer, reap_timer
from . import _config, _introspect
from ._stats import LoopStats


cdef object aio_Future = asyncio.Future
cdef object aio_Task = asyncio.Task
cdef object aio_isfuture = aio_futures.isfuture
cdef object aio_ensure_future = aio_tasks.ensure_future
cdef object aio_set_running_loop = aio_events._set_running_loop
cdef object aio_get_running_loop = aio_events._get_running_loop
cdef object aio_iscoroutine = aio_coroutines.iscoroutine
cdef object aio_iscoroutinefunction = aio_coroutines.iscoroutinefunction
cdef object aio_extract_stack = aio_format_helpers.extract_stack
cdef object aio_SendfileNotAvailableError = aio_exceptions.SendfileNotAvailableError
cdef object thread_get_ident = threading.get_ident

cdef bint PY312 = sys.version_info >= (3, 12)
# From 3.13, calling the C Future or Task type with a keyword builds a dict for it (about
# 80 ns a call); without loop= they take the running loop from the thread state, which is
# the same loop whenever the caller runs in it ('Futures and tasks without a keyword').
cdef bint BARE_FUTURE_CALL = sys.version_info >= (3, 13)


cdef inline bint _bare_future_call(object loop):
    """Whether the C Future and Task may be made for loop without loop=."""
    return BARE_FUTURE_CALL and aio_get_running_loop() is loop


# A build without the GIL (see 'Threads'): other threads queue through the inbox.
cdef bint FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
cdef int _n_loops = 0           # loops made in this process: the next one's ordinal
cdef object _n_loops_lock = threading.Lock()    # loops are made on several threads

cdef enum:
    # asyncio's MAXIMUM_SELECT_TIMEOUT: the poller never sleeps longer than a day, so a
    # timeout computed from a far deadline never overflows the kernel's int of ms.
    MAXIMUM_SELECT_TIMEOUT_MS = 24 * 3600 * 1000
    # As asyncio's constants.DEBUG_STACK_DEPTH: frames kept for coroutine origins.
    DEBUG_STACK_DEPTH = 10
    # asyncio's SENDFILE_FALLBACK_READBUFFER_SIZE: the chunk read when os.sendfile
    # cannot be used.
    SENDFILE_FALLBACK_READBUFFER_SIZE = 1024 * 256
    # asyncio's max_size for a stream transport's recv: also the P's receive buffer.
    RECV_BUFFER_SIZE = 256 * 1024
    # A skipped poll checks for signals once per 64 iterations: Ctrl-C still stops a
    # chain of frameless callbacks within microseconds, at a 64th of the check's cost
    # (4% of a call_soon chain's instructions when done every time).
    SIGNAL_CHECK_MASK = 63
    # The chunk freed once to raise glibc's trim threshold to twice its size (see
    # _recv_buffer): a turn of the loop over ten connections receiving 100 KiB messages
    # leaves 1-3 MiB of transient bytes; a guess that covers a few such turns' worth,
    # measured on that benchmark only.
    HEAP_TRIM_HINT = 2 * 1024 * 1024


# Whether this process has given malloc the hint (see Loop._recv_buffer).
cdef bint _heap_hinted = False


cdef object _logger():
    # Looked up at each use, so tests (and users) who replace asyncio's logger object
    # see gmploop's messages too.
    return aio_base_events.logger


cdef bint _is_debug_mode():
    return sys.flags.dev_mode or (not sys.flags.ignore_environment and
                                  bool(os.environ.get('PYTHONASYNCIODEBUG')))


cdef int _fileobj_to_fd(object fileobj) except -1:
    """An fd from an int or an object with fileno(), as selectors does it."""
    cdef long fd
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


cdef _check_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _format_handle(handle):
    cb = handle._callback
    if isinstance(getattr(cb, '__self__', None), aio_Task):
        # format the task
        return repr(cb.__self__)
    return str(handle)


def _run_until_complete_cb(fut):
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The loop is stopped by the exception itself; stopping it here would
            # mask it (see asyncio's issue 22429).
            return
    aio_futures._get_loop(fut).stop()


def _sighandler_noop(signum, frame):
    """A Python-level handler is needed for set_wakeup_fd to report the signal."""
    pass


def _set_result_unless_cancelled(fut, result):
    if fut.cancelled():
        return
    fut.set_result(result)


def _ipaddr_info(host, port, int family, int type, int proto, flowinfo=0, scopeid=0):
    """The getaddrinfo() entry for a numeric host, or None when a lookup is needed."""
    if host is None or not hasattr(socket, 'inet_pton'):
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    if port is None:
        port = 0
    elif isinstance(port, (bytes, str)) and not port:
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None
    if isinstance(host, bytes):
        try:
            host = host.decode('idna')
        except UnicodeError:
            return None
    if not isinstance(host, str) or '%' in host:
        return None
    families = (socket.AF_INET, socket.AF_INET6) if family == 0 else (family,)
    for af in families:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        if af == socket.AF_INET6:
            return af, type, proto, '', (host, port, flowinfo, scopeid)
        return af, type, proto, '', (host, port)
    return None


cdef class Loop:

    def __cinit__(self):
        self.ready = RunQueue()
        self.timers = TimerHeap()
        self.poller = Poller()
        self._signal_handlers = {}

    def __dealloc__(self):
        if self._rbuf != NULL:
            PyMem_Free(self._rbuf)
            self._rbuf = NULL

    def __init__(self, *, sysmon=None):
        global _n_loops
        self._closed = False
        self._stopping = False
        self._thread_id = None
        self._owner_ident = PyThread_get_thread_ident()
        self._inbox = collections.deque()
        self._clock_resolution = time.get_clock_info('monotonic').resolution
        self.slow_callback_duration = 0.1
        self._exception_handler = None
        self._task_factory = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self.set_debug(_is_debug_mode())
        self._observed = True
        self.sysmon_threshold = _config.sysmon_threshold(sysmon)
        with _n_loops_lock:
            self._p_index = _n_loops
            _n_loops += 1

    def __repr__(self):
        return (f'<{type(self).__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    def __del__(self):
        if not self._closed:
            warnings.warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ------------------------------------------------------------------ the iteration

    cdef int _run_once(self) except -1:
        """Owner P only. One asyncio iteration; see the module essay, steps 1-4."""
        cdef TimerHeap timers = self.timers
        cdef RunQueue ready = self.ready
        cdef TimerHandle th
        cdef Handle h
        cdef PollDesc pd
        cdef uint32_t flags
        cdef double timeout, end_time, now = 0.0
        cdef int timeout_ms, n, i
        cdef Py_ssize_t ntodo, k
        cdef bint observed = self._observed

        # 1. Dead timers.
        if timers.needs_compaction():
            timers.compact(reap_timer)
        else:
            while timers.size > 0:
                th = <TimerHandle>timers.peek()
                if not th._cancelled:
                    break
                timers.pop()
                th._scheduled = False
                timers.note_reaped()

        # 2. Poll (after taking in what other threads queued: see 'Threads').
        if FREE_THREADED and self._inbox:
            self._take_inbox()
        if ready.size > 0 or self._stopping:
            timeout_ms = 0
        elif timers.size > 0:
            now = gp_monotonic()
            timeout = timers.peek_when() - now
            if timeout <= 0:
                timeout_ms = 0
            elif timeout * 1000 >= MAXIMUM_SELECT_TIMEOUT_MS:
                timeout_ms = MAXIMUM_SELECT_TIMEOUT_MS
            else:
                # Round up: waking before the deadline costs a whole idle iteration.
                timeout_ms = <int>ceil(timeout * 1000)
        else:
            timeout_ms = -1
        if timeout_ms == 0:
            now = 0.0
            if self.poller.registered:
                n = self.poller.wait(0)
            else:
                # Nothing to report: see 'Polls that cannot report anything' above.
                n = 0
                if (self._n_iterations & SIGNAL_CHECK_MASK) == 0:
                    PyErr_CheckSignals()
        else:
            # Nothing is ready: a ring a burst grew gives its memory back first.
            ready.shrink()
            # A wait (see 'Observability'): timed when observed, by readings that
            # serve the timers too.
            if observed:
                self._poll_since = now if now != 0.0 else gp_monotonic()
            self._state = LOOP_POLLING
            n = self.poller.wait(timeout_ms)
            self._state = LOOP_RUNNING
            if observed:
                now = gp_monotonic()
                self._poll_time += now - self._poll_since
                self._poll_since = 0.0
            else:
                now = 0.0

        # 3a. I/O callbacks, with selectors' mapping of error bits: an error or hang-up
        # wakes both directions, as asyncio's selector loop reports them.
        for i in range(n):
            pd = self.poller.event_desc(i)
            if pd is None:
                continue
            flags = self.poller.event_flags(i)
            # Level registrations (add_reader) and edge registrations of sockets
            # awaited by sock_* both keep their waiting handles in reader/writer: a
            # level fd repeats while ready, an edge fd reports each change once, and
            # its waiters retry the syscall (see 'Socket waits' below).
            if pd.mode == PD_EDGE:
                # Sticky: a reader that stops on a short read asks whether the peer
                # has shut down (its EOF has no edge of its own once reported).
                pd.seen |= flags
            if pd.mode == PD_LEVEL or pd.mode == PD_EDGE:
                if flags & ~GP_OUT and pd.reader is not None:
                    h = <Handle>pd.reader
                    if not h._cancelled:
                        ready.put(h)
                if flags & ~GP_IN and pd.writer is not None:
                    h = <Handle>pd.writer
                    if not h._cancelled:
                        ready.put(h)
        self._n_io_events += n

        # 3b. Timers that are due (within the clock's resolution, as asyncio).
        if timers.size > 0:
            end_time = (now if now != 0.0 else gp_monotonic()) + self._clock_resolution
            while timers.size > 0 and timers.peek_when() < end_time:
                th = <TimerHandle>timers.pop()
                th._scheduled = False
                if th._cancelled:
                    timers.note_reaped()
                    continue
                ready.put_hidden(th)          # popped: the run queue alone holds it
                self._n_timers_fired += 1

        # 4. Run what is queued now; what these callbacks queue waits for the next turn.
        ntodo = ready.size
        self._n_iterations += 1
        for k in range(ntodo):
            h = <Handle>ready.get()
            if h._cancelled:
                continue
            self._n_callbacks += 1
            if observed:
                with cython.critical_section(self):
                    self._current_handle = h
            if self._debug:
                self._run_handle_debug(h)
            else:
                h.run()
            if self._slow_seq:
                self._slow_callback_ended()
        if observed:
            with cython.critical_section(self):
                self._current_handle = None
        return 0

    cdef int _take_inbox(self) except -1:
        """Owner P only: move the handles other threads queued to the run queue."""
        inbox = self._inbox
        while True:
            try:
                h = inbox.popleft()
            except IndexError:
                return 0
            # A fresh handle that only the inbox held: hidden, as _call_soon's.
            self.ready.put_hidden(h)

    cdef int _slow_callback_ended(self) except -1:
        """Owner P only: the callback sysmon flagged has returned (or raised out of the
        loop); sysmon closes the incident, on this thread."""
        with cython.critical_section(self):
            incident = self._slow_incident
            self._slow_seq = 0
            self._slow_incident = None
        if self._monitor is not None and incident is not None:
            self._monitor.callback_ended(self, incident, gp_monotonic())
        return 0

    cdef int _run_handle_debug(self, Handle h) except -1:
        cdef double t0, dt
        with cython.critical_section(self):
            self._current_handle = h
        try:
            t0 = gp_monotonic()
            h.run()
            dt = gp_monotonic() - t0
            if dt >= self.slow_callback_duration:
                _logger().warning('Executing %s took %.3f seconds', _format_handle(h), dt)
                task = getattr(h.callback, '__self__', None)
                if isinstance(task, aio_Task):
                    # asyncio's line stays as it is; where the task now waits, and who
                    # waits for it, go to gmploop's logger.
                    _introspect.log_call_graph(task)
        finally:
            with cython.critical_section(self):
                self._current_handle = None
        return 0

    # ------------------------------------------------------------------ checks

    cdef int _check_closed(self) except -1:
        if self._closed:
            raise RuntimeError('Event loop is closed')
        return 0

    cdef int _check_thread(self) except -1:
        """Debug mode: non-thread-safe calls must come from the loop's thread."""
        if self._thread_id is None:
            return 0
        if thread_get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other "
                "than the current one")
        return 0

    def _check_callback(self, callback, method):
        if aio_iscoroutine(callback) or aio_iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(
                f'a callable object was expected by {method}(), got {callback!r}')

    def _check_running(self):
        if self.is_running():
            raise RuntimeError('This event loop is already running')
        if aio_get_running_loop() is not None:
            raise RuntimeError(
                'Cannot run the event loop while another loop is running')

    # ------------------------------------------------------------------ Public API: running

    def run_forever(self):
        """Run until stop() is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = thread_get_ident()
        self._owner_ident = PyThread_get_thread_ident()
        self._run_since = gp_monotonic()
        try:
            if self._monitor is not None:
                # Before the state says running: see 'Races' in _sysmon.py.
                self._monitor.loop_started(self)
            self._state = LOOP_RUNNING
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            aio_set_running_loop(self)
            while True:
                self._run_once()
                if self._stopping:
                    break
        finally:
            self._state = LOOP_STOPPED
            now = gp_monotonic()
            if self._poll_since != 0.0:     # the poll raised (KeyboardInterrupt)
                self._poll_time += now - self._poll_since
                self._poll_since = 0.0
            self._run_time += now - self._run_since
            with cython.critical_section(self):
                self._current_handle = None
            if self._slow_seq:              # the slow callback raised out of the loop
                self._slow_callback_ended()
            self._stopping = False
            self._thread_id = None
            aio_set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def run_until_complete(self, future):
        """Run until the future (a coroutine is wrapped in a Task) is done; return its
        result or raise its exception."""
        self._check_closed()
        self._check_running()
        new_task = not aio_isfuture(future)
        future = aio_ensure_future(future, loop=self)
        if new_task:
            # An exception raised here is reported to the caller; the task need not
            # log it again when collected.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except:
            if new_task and future.done() and not future.cancelled():
                # The coroutine raised BaseException; mark the exception retrieved so
                # the task does not log it when it is collected.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def stop(self):
        """Stop after the current iteration (or after one, if not running)."""
        self._stopping = True

    def is_running(self):
        return self._thread_id is not None

    def is_closed(self):
        return self._closed

    def close(self):
        """Close the loop: drop pending callbacks, shut the default executor down
        without waiting, remove signal handlers, release the poller. Idempotent."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            _logger().debug("Close %r", self)
        self._closed = True
        self.ready.clear()
        self._inbox.clear()
        self.timers.clear()
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        if self._signal_handlers:
            if not sys.is_finalizing():
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
            else:
                warnings.warn(f"Closing the loop {self!r} on interpreter shutdown "
                              f"stage, skipping signal handlers removal",
                              ResourceWarning, source=self)
                self._signal_handlers.clear()
        if self._ssock is not None:
            self._ssock.close()
            self._csock.close()
            self._ssock = self._csock = None
        self.poller.close()

    def time(self):
        """The loop's clock: time.monotonic()."""
        return gp_monotonic()

    # ------------------------------------------------------------------ Public API: callbacks

    cdef Handle _call_soon(self, object callback, object args, object context):
        cdef Handle h
        if FREE_THREADED and self._inbox:
            # What other threads queued before this call goes first ('Threads').
            self._take_inbox()
        h = new_handle(callback, args, context, self)
        if self._debug:
            h._source_traceback = aio_extract_stack(sys._getframe(0))
        # A fresh one-shot handle: the queue alone holds it (see 'Hidden items' in
        # _runq.pyx), so a burst of callbacks costs the cycle collector nothing.
        self.ready.put_hidden(h)
        return h

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to run in the next iteration, FIFO."""
        if self._closed:
            raise RuntimeError('Event loop is closed')
        if self._debug:
            self._check_thread()
            self._check_callback(callback, 'call_soon')
        return self._call_soon(callback, args, context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        """call_soon() for any thread: also wakes the loop if it is polling."""
        self._check_closed()
        if self._debug:
            self._check_callback(callback, 'call_soon_threadsafe')
        if not FREE_THREADED or PyThread_get_thread_ident() == self._owner_ident:
            h = self._call_soon(callback, args, context)
        else:
            # Another thread: through the inbox (see 'Threads').
            h = new_handle(callback, args, context, self)
            if self._debug:
                h._source_traceback = aio_extract_stack(sys._getframe(0))
            self._inbox.append(h)
        self.poller.wakeup()
        return h

    cdef TimerHandle _call_at(self, double when, object callback, object args,
                              object context):
        cdef TimerHandle th = new_timer(when, callback, args, context, self)
        if isnan(when):
            # asyncio runs a NaN deadline in the next iteration (no comparison with
            # NaN holds, so nothing keeps it waiting); a heap key of -inf does the
            # same and keeps the heap ordered. th.when() still says nan.
            when = -INFINITY
        if self._debug:
            th._source_traceback = aio_extract_stack(sys._getframe(0))
        self.timers.push_hidden(when, th)     # a fresh timer: the heap alone holds it
        th._scheduled = True
        th.heap = self.timers
        return th

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to run after delay seconds."""
        if delay is None:
            raise TypeError('delay must not be None')
        cdef double when = gp_monotonic() + delay
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, 'call_later')
        return self._call_at(when, callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Arrange for callback(*args) to run at loop.time() == when."""
        if when is None:
            raise TypeError("when cannot be None")
        cdef double w = when
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, 'call_at')
        return self._call_at(w, callback, args, context)

    # ------------------------------------------------------------------ Public API: futures, tasks

    def create_future(self):
        if _bare_future_call(self):
            return aio_Future()
        return aio_Future(loop=self)

    def create_task(self, coro, *, name=None, context=None, **kwargs):
        """Schedule a coroutine as an asyncio.Task (or the task factory's product)."""
        self._check_closed()
        if self._task_factory is None:
            if name is None and context is None and not kwargs:
                # The common call: each keyword the C Task parses costs about as much
                # as this whole method does otherwise.
                if _bare_future_call(self):
                    task = aio_Task(coro)
                else:
                    task = aio_Task(coro, loop=self)
            else:
                task = aio_Task(coro, loop=self, name=name, context=context, **kwargs)
            # A Task records where it was made only in debug mode (Future.__init__
            # asks the loop, which answers from _debug).
            if self._debug and task._source_traceback:
                del task._source_traceback[-1]
        else:
            if context is None:
                task = self._task_factory(self, coro, **kwargs)
            else:
                task = self._task_factory(self, coro, context=context, **kwargs)
            if name is not None:
                task.set_name(name)
        return task

    def set_task_factory(self, factory):
        if factory is not None and not callable(factory):
            raise TypeError('task factory must be a callable or None')
        self._task_factory = factory

    def get_task_factory(self):
        return self._task_factory

    # ------------------------------------------------------------------ Public API: debug

    def get_debug(self):
        return self._debug

    def set_debug(self, enabled):
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = (
                sys.get_coroutine_origin_tracking_depth())
            sys.set_coroutine_origin_tracking_depth(DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled

    # ------------------------------------------------------------------ Public API: errors

    def get_exception_handler(self):
        return self._exception_handler

    def set_exception_handler(self, handler):
        if handler is not None and not callable(handler):
            raise TypeError(f'A callable object or None is expected, got {handler!r}')
        self._exception_handler = handler

    def default_exception_handler(self, context):
        """Log the context's message, exception and other keys on asyncio's logger."""
        message = context.get('message')
        if not message:
            message = 'Unhandled exception in event loop'
        exception = context.get('exception')
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        current = self._current_handle
        if ('source_traceback' not in context and current is not None and
                current._source_traceback):
            context['handle_traceback'] = current._source_traceback
        log_lines = [message]
        for key in sorted(context):
            if key in {'message', 'exception'}:
                continue
            value = context[key]
            if key == 'source_traceback':
                tb = ''.join(traceback.format_list(value))
                value = 'Object created at (most recent call last):\n' + tb.rstrip()
            elif key == 'handle_traceback':
                tb = ''.join(traceback.format_list(value))
                value = 'Handle created at (most recent call last):\n' + tb.rstrip()
            else:
                value = repr(value)
            log_lines.append(f'{key}: {value}')
        _logger().error('\n'.join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context):
        """Pass context to the exception handler (the default one if none is set).
        Errors in a custom handler are logged, never raised into the loop."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                _logger().error('Exception in default exception handler', exc_info=True)
            return
        try:
            ctx = None
            if PY312:
                # Run the handler in the context of what failed (3.12's behaviour).
                thing = context.get("task")
                if thing is None:
                    thing = context.get("future")
                if thing is None:
                    thing = context.get("handle")
                if thing is not None and hasattr(thing, "get_context"):
                    ctx = thing.get_context()
            if ctx is not None and hasattr(ctx, "run"):
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler({
                    'message': 'Unhandled error in exception handler',
                    'exception': exc,
                    'context': context,
                })
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                _logger().error('Exception in default exception handler while handling '
                                'an unexpected error in custom exception handler',
                                exc_info=True)

    # ------------------------------------------------------------------ Public API: executor

    def _check_default_executor(self):
        if self._executor_shutdown_called:
            raise RuntimeError('Executor shutdown has been called')

    def run_in_executor(self, executor, func, *args):
        """Run func(*args) in executor (the default thread pool if None)."""
        self._check_closed()
        if self._debug:
            self._check_callback(func, 'run_in_executor')
        if executor is None:
            executor = self._default_executor
            self._check_default_executor()
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix='asyncio')
                self._default_executor = executor
        return aio_futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout=None):
        """Shut the default executor down, waiting up to timeout seconds (None: no
        limit) for its threads; warn if they do not finish in time."""
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        thread = threading.Thread(target=self._do_shutdown, args=(future,))
        thread.start()
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            warnings.warn("The executor did not finishing joining "
                          f"its threads within {timeout} seconds.",
                          RuntimeWarning, stacklevel=2)
            self._default_executor.shutdown(wait=False)
        else:
            thread.join()

    def _do_shutdown(self, future):
        try:
            self._default_executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_cancelled, future, None)
        except Exception as ex:
            if not self.is_closed() and not future.cancelled():
                self.call_soon_threadsafe(future.set_exception, ex)

    # ------------------------------------------------------------------ Public API: async generators

    def _asyncgen_finalizer_hook(self, agen):
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen):
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning, source=self)
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self):
        """Close every async generator still alive on this loop."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing_agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await aio_tasks.gather(
            *[ag.aclose() for ag in closing_agens], return_exceptions=True)
        for result, agen in zip(results, closing_agens):
            if isinstance(result, Exception):
                self.call_exception_handler({
                    'message': f'an error occurred during closing of '
                               f'asynchronous generator {agen!r}',
                    'exception': result,
                    'asyncgen': agen,
                })

    # ------------------------------------------------------------------ Public API: readers, writers

    cdef Handle _add_io(self, int fd, bint writing, object callback, object args):
        """Watch fd (level-triggered) for one direction; replaces that direction's
        previous callback, as asyncio does."""
        cdef PollDesc pd
        cdef Handle h
        cdef uint32_t mine = GP_OUT if writing else GP_IN
        cdef uint32_t theirs = GP_IN if writing else GP_OUT
        self._check_closed()
        h = new_handle(callback, args, None, self)
        pd = self._level_desc(fd)
        old = pd.writer if writing else pd.reader
        other = pd.reader if writing else pd.writer
        try:
            self.poller.set_level(pd, mine | (theirs if other is not None else 0))
        except BaseException:
            if pd.reader is None and pd.writer is None:
                self.poller.forget(pd)
            raise
        if writing:
            pd.writer = h
        else:
            pd.reader = h
        if old is not None:
            (<Handle>old).cancel()
        return h

    cdef bint _remove_io(self, int fd, bint writing) except -1:
        """Stop watching fd for one direction; True if it was watched."""
        cdef PollDesc pd
        if self._closed:
            return False
        pd = self.poller.lookup(fd)
        if pd is None:
            return False
        h = pd.writer if writing else pd.reader
        if h is None:
            return False
        if writing:
            pd.writer = None
        else:
            pd.reader = None
        if pd.mode == PD_EDGE:
            # A pending sock_* wait: cancelled, as asyncio's remove_reader would; the
            # edge registration stays for the socket's next wait.
            (<Handle>h).cancel()
            return True
        other = pd.reader if writing else pd.writer
        try:
            if other is None:
                self.poller.set_level(pd, 0)
                self.poller.forget(pd)
            else:
                self.poller.set_level(pd, GP_IN if writing else GP_OUT)
        finally:
            (<Handle>h).cancel()
        return True

    def add_reader(self, fd, callback, *args):
        """Run callback(*args) whenever fd is readable (level-triggered)."""
        self._add_io(_fileobj_to_fd(fd), False, callback, args)

    def remove_reader(self, fd):
        """Stop watching fd for reading; True if it was watched."""
        return self._remove_io(self._fd_no_transport(fd), False)

    def add_writer(self, fd, callback, *args):
        """Run callback(*args) whenever fd is writable (level-triggered)."""
        self._add_io(_fileobj_to_fd(fd), True, callback, args)

    def remove_writer(self, fd):
        """Stop watching fd for writing; True if it was watched."""
        return self._remove_io(self._fd_no_transport(fd), True)

    def _fd_no_transport(self, fd):
        cdef int n = _fileobj_to_fd(fd)
        cdef PollDesc pd = None if self._closed else self.poller.lookup(n)
        if pd is not None and pd.mode == PD_EDGE:
            _check_no_transport(n, pd.owner)
        return n

    # ------------------------------------------------------------------ Public API: signals

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def _read_signals(self):
        while True:
            try:
                data = self._ssock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                if signum:
                    self._handle_signal(signum)

    cdef int _handle_signal(self, int sig) except -1:
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return 0  # removed since the byte was written
        if (<Handle>handle)._cancelled:
            self.remove_signal_handler(sig)
        else:
            self.ready.put(handle)
        return 0

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) in the loop when signal sig arrives. Main thread only."""
        if aio_iscoroutine(callback) or aio_iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        if self._ssock is None:
            ssock, csock = socket.socketpair()
            ssock.setblocking(False)
            csock.setblocking(False)
            self._ssock, self._csock = ssock, csock
            self._add_io(ssock.fileno(), False, self._read_signals, ())
        try:
            # Python's C-level handler writes the signal number here; the loop reads it
            # and queues the handler (see 'Races' in the module essay).
            signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        handle = new_handle(callback, args, None, self)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _sighandler_noop)
            # Let system calls be restarted after the handler, not fail with EINTR.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError) as nexc:
                    _logger().info('set_wakeup_fd(-1) failed: %s', nexc)
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler for sig; True if there was one."""
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        if sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig} cannot be caught')
            raise
        if not self._signal_handlers:
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:
                _logger().info('set_wakeup_fd(-1) failed: %s', exc)
        return True

    # ------------------------------------------------------------------ Public API: DNS

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    async def _ensure_resolved(self, address, *, family=0, type=socket.SOCK_STREAM,
                               proto=0, flags=0, loop=None):
        # loop=: asyncio's own helper of this name takes it; callers written for
        # either may pass it. It is always this loop.
        host, port = address[:2]
        info = _ipaddr_info(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        return await self.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)

    # ------------------------------------------------------------------ Public API: sockets

    def _sock_check(self, sock):
        _check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _sock_read_done(self, fd, fut, handle=None):
        if handle is None or not handle.cancelled():
            self.remove_reader(fd)

    def _sock_write_done(self, fd, fut, handle=None):
        if handle is None or not handle.cancelled():
            self.remove_writer(fd)

    # Socket waits
    # ------------
    # A sock_* coroutine tries its syscall first and waits only after EAGAIN. The wait
    # registers the socket once, edge-triggered for both directions, and leaves it
    # registered: the next wait on the same socket costs no epoll_ctl, where asyncio's
    # selector loop pays two per wait (add and remove). Edges are safe here because
    # every waiter retries its syscall when woken and waits again on EAGAIN: data that
    # arrived before the wait was taken by the first try, data after it raises a new
    # edge. The descriptor remembers the socket by weak reference: a socket closed
    # behind the loop's back and an fd number reused by another one are told apart
    # ('Stale events' in _poller.pyx), and the loop never keeps a socket alive.
    # An fd watched with add_reader/add_writer keeps its level registration, and
    # sock_* on it waits the level way, as asyncio's does.

    cdef PollDesc _sock_desc(self, object sock, int fd):
        """The edge registration for sock's fd, or None if fd is level-registered."""
        cdef PollDesc pd = self.poller.lookup(fd)
        if pd is not None:
            if pd.mode == PD_LEVEL:
                return None
            if pd.mode == PD_EDGE:
                owner = pd.owner
                if type(owner) is _SockRef and (<_SockRef>owner).ref() is sock:
                    return pd
                if type(owner) is not _SockRef and getattr(owner, '_sock_lent', False):
                    # loop.sendfile on a transport: its socket is lent to
                    # sock_sendfile, whose waits use the transport's registration
                    # (its reader is paused and its write buffer empty meanwhile).
                    return pd
                _check_no_transport(fd, owner)
                # Another socket had this number and was closed without telling us.
                self._drop_sock_desc(pd)
            else:
                self.poller.forget(pd)
        pd = self.poller.desc_for(fd)
        self.poller.set_edge(pd)
        pd.owner = _SockRef(sock)
        return pd

    cdef _drop_sock_desc(self, PollDesc pd):
        for h in (pd.reader, pd.writer):
            if h is not None:
                (<Handle>h).cancel()
        self.poller.forget(pd)

    cdef PollDesc _level_desc(self, int fd):
        """fd's descriptor for add_reader/add_writer, taken over from sock_* waits
        (whose pending waits are cancelled, as asyncio's add_reader replaces them)."""
        cdef PollDesc pd = self.poller.lookup(fd)
        if pd is not None and pd.mode == PD_EDGE:
            _check_no_transport(fd, pd.owner)
            self._drop_sock_desc(pd)
        return self.poller.desc_for(fd)

    # Transports
    # ----------
    # gmploop's transports (streams, datagrams, pipes) own their fd's descriptor: one
    # edge registration for both directions, from _edge_desc until _release_desc.
    # The transport puts a Handle of its own in pd.reader while it wants to read and
    # in pd.writer while it has data to write; the iteration queues whichever an
    # event concerns (step 3a), and the transport's handle does the I/O until EAGAIN.
    # sock_* and add_reader/add_writer refuse an fd a live transport owns, as
    # asyncio's loop does.

    cdef PollDesc _edge_desc(self, int fd, object owner):
        """Register fd edge-triggered for owner, a transport (see 'Transports')."""
        cdef PollDesc pd = self.poller.lookup(fd)
        self._check_closed()
        if pd is not None:
            if pd.mode == PD_EDGE:
                _check_no_transport(fd, pd.owner)
                self._drop_sock_desc(pd)
            else:
                for h in (pd.reader, pd.writer):
                    if h is not None:
                        (<Handle>h).cancel()
                self.poller.forget(pd)
        pd = self.poller.desc_for(fd)
        self.poller.set_edge(pd)
        pd.owner = owner
        return pd

    cdef char *_recv_buffer(self) except NULL:
        """The P's receive buffer (RECV_BUFFER_SIZE bytes), allocated on first use."""
        global _heap_hinted
        cdef void *probe
        if self._rbuf == NULL:
            if not _heap_hinted:
                # Reads turn into transient bytes objects of up to RECV_BUFFER_SIZE
                # each (the copy data_received gets, a StreamReader's buffer, the bytes
                # read() returns), allocated and freed once per message, over every
                # connection served in a turn.  glibc's malloc gives the top of its
                # heap back to the kernel whenever more than its trim threshold (128
                # KiB by default) is free there, so a turn's worth of large messages
                # grew and trimmed the heap each turn: brk calls and freshly zeroed
                # pages to fault in, per request (measured on the 100 KiB streams echo:
                # 2.5 brk per request, 12% of the server's time in page faults, 40%
                # more CPU per request).  glibc raises its thresholds when a chunk it
                # had served with mmap is freed (to that chunk's size, and twice that
                # for trimming), and never lowers them that way nor overrides an
                # explicit mallopt; asyncio's sock.recv(256 KiB) moves them by accident
                # on its first read.  This does it on purpose, once per process,
                # through libpython's raw allocator (which is malloc, and a pair the C
                # compiler cannot see through and drop).  Other allocators ignore it.
                _heap_hinted = True
                probe = PyMem_RawMalloc(HEAP_TRIM_HINT)
                PyMem_RawFree(probe)
            self._rbuf = <char *>PyMem_Malloc(RECV_BUFFER_SIZE)
            if self._rbuf == NULL:
                raise MemoryError()
            self._rbuf_size = RECV_BUFFER_SIZE
        return self._rbuf

    cdef int _flow_control(self, object protocol, bint pause, object transport) except -1:
        """Tell a transport's protocol to pause (or resume) writing; a protocol that
        raises is reported to the exception handler, as asyncio's transports do."""
        try:
            if pause:
                protocol.pause_writing()
            else:
                protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.call_exception_handler({
                'message': (f'protocol.{"pause" if pause else "resume"}_writing() '
                            f'failed'),
                'exception': exc,
                'transport': transport,
                'protocol': protocol,
            })
        return 0

    cdef int _release_desc(self, PollDesc pd) except -1:
        """The transport is done with pd: out of the poller. Call before closing the
        fd. Idempotent; a no-op once the loop is closed."""
        pd.reader = None
        pd.writer = None
        pd.owner = None
        if not self._closed:
            self.poller.forget(pd)
        return 0

    def _wait_readable(self, fut, sock, callback, *args):
        """Retry callback(fut, sock, *args) each time sock may be readable, until fut
        is done; the wait ends when fut completes or is cancelled."""
        cdef int fd = _fileobj_to_fd(sock.fileno())
        cdef PollDesc pd
        self._check_closed()    # as asyncio's add_reader, before the poller is asked
        pd = self._sock_desc(sock, fd)
        if pd is None:
            handle = self._add_io(fd, False, callback, (fut, sock) + args)
            fut.add_done_callback(
                functools.partial(self._sock_read_done, fd, handle=handle))
            return
        handle = new_handle(callback, (fut, sock) + args, None, self)
        if pd.reader is not None:
            (<Handle>pd.reader).cancel()
        pd.reader = handle
        fut.add_done_callback(functools.partial(_sock_edge_read_done, pd, handle))

    def _wait_writable(self, fut, sock, callback, *args):
        cdef int fd = _fileobj_to_fd(sock.fileno())
        cdef PollDesc pd
        self._check_closed()
        pd = self._sock_desc(sock, fd)
        if pd is None:
            handle = self._add_io(fd, True, callback, (fut, sock) + args)
            fut.add_done_callback(
                functools.partial(self._sock_write_done, fd, handle=handle))
            return
        handle = new_handle(callback, (fut, sock) + args, None, self)
        if pd.writer is not None:
            (<Handle>pd.writer).cancel()
        pd.writer = handle
        fut.add_done_callback(functools.partial(_sock_edge_write_done, pd, handle))

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (non-blocking)."""
        self._sock_check(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
        fut = aio_Future(loop=self)
        self._wait_readable(fut, sock, _sock_retry, sock.recv, n)
        return await fut

    async def sock_recv_into(self, sock, buf):
        """Receive into buf from sock; return the number of bytes."""
        self._sock_check(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        fut = aio_Future(loop=self)
        self._wait_readable(fut, sock, _sock_retry, sock.recv_into, buf)
        return await fut

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to bufsize bytes: (data, address)."""
        self._sock_check(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        fut = aio_Future(loop=self)
        self._wait_readable(fut, sock, _sock_retry, sock.recvfrom, bufsize)
        return await fut

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into buf: (nbytes, address)."""
        self._sock_check(sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        fut = aio_Future(loop=self)
        self._wait_readable(fut, sock, _sock_retry, sock.recvfrom_into, buf, nbytes)
        return await fut

    async def sock_sendall(self, sock, data):
        """Send all of data on sock; None on success."""
        self._sock_check(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = aio_Future(loop=self)
        self._wait_writable(fut, sock, _sock_sendall_cb, memoryview(data), [n])
        return await fut

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to address; the number of bytes sent."""
        self._sock_check(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        fut = aio_Future(loop=self)
        self._wait_writable(fut, sock, _sock_sendto_cb, data, address)
        return await fut

    async def sock_connect(self, sock, address):
        """Connect sock to address, resolving host names without blocking."""
        self._sock_check(sock)
        if sock.family == socket.AF_INET or (
                socket.has_ipv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto)
            _, _, _, _, address = resolved[0]
        fut = aio_Future(loop=self)
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            self._wait_writable(fut, sock, _sock_connect_cb, address)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        try:
            return await fut
        finally:
            fut = None   # break the cycle through the exception's traceback

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        self._sock_check(sock)
        fut = aio_Future(loop=self)
        _sock_accept_cb(fut, sock, self, True)
        return await fut

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a file over a stream socket: os.sendfile where possible, else reads
        and sock_sendall. Returns the number of bytes sent."""
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except aio_SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        if not hasattr(os, 'sendfile'):
            raise aio_SendfileNotAvailableError("os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, OSError) as exc:
            raise aio_SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise aio_SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        blocksize = min(blocksize, 0xffff_ffff)
        end = offset + count if count else fsize
        total_sent = 0
        fut = None
        try:
            while offset < end:
                n_wanted = min(end - offset, blocksize)
                try:
                    sent = os.sendfile(sock.fileno(), fileno, offset, n_wanted)
                except (BlockingIOError, InterruptedError):
                    fut = aio_Future(loop=self)
                    self._wait_writable(fut, sock, _set_ready_cb)
                    await fut
                    continue
                except OSError as exc:
                    if total_sent == 0 and exc.errno in (errno.ENOTSOCK, errno.EINVAL,
                                                          errno.ENOTSUP):
                        raise aio_SendfileNotAvailableError(
                            "os.sendfile call failed") from exc
                    raise
                if sent == 0:
                    break   # end of file
                offset += sent
                total_sent += sent
            return total_sent
        finally:
            if total_sent > 0:
                file.seek(offset)

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        blocksize = (min(count, SENDFILE_FALLBACK_READBUFFER_SIZE)
                     if count else SENDFILE_FALLBACK_READBUFFER_SIZE)
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    # ------------------------------------------------------------------ Public API: introspection

    def stats(self):
        """Any thread. A snapshot of this P's counters: a frozen gmploop.LoopStats
        (cheap: plain fields copied, no lock)."""
        cdef double now = gp_monotonic()
        cdef double run_time = self._run_time, poll_time = self._poll_time
        cdef double blocked_for = 0.0
        if self._state == LOOP_STOPPED:
            state = 'stopped'
        else:
            run_time += now - self._run_since
            state = 'poll' if self._state == LOOP_POLLING else 'run'
        if self._poll_since != 0.0:
            poll_time += now - self._poll_since
        with cython.critical_section(self):
            incident = self._slow_incident
        if self._slow_seq and incident is not None:
            state = 'blocked'
            blocked_for = now - incident.since
        return LoopStats(
            p=self._p_index, pid=os.getpid(), time=now, state=state,
            iterations=self._n_iterations, callbacks=self._n_callbacks,
            io_events=self._n_io_events, timers_fired=self._n_timers_fired,
            ready=self.ready.size,
            timers_pending=self.timers.size - self.timers.cancelled,
            fds_registered=0 if self._closed else self.poller.registered,
            poll_ctl_calls=self.poller.ctl_calls,
            poll_time=poll_time, busy_time=max(run_time - poll_time, 0.0),
            slow_callbacks=self._n_slow, blocked_for=blocked_for,
            steals=self._n_steals,
            stealable=0 if self._steal_queue is None else len(self._steal_queue))

    # Sysmon's two doors (see 'Observability' above). Any thread, under the GIL; neither
    # runs Python code, so the owner P cannot run in the middle of one.

    def _sysmon_peek(self):
        """(state, callbacks counted, the current handle, threshold in seconds)."""
        with cython.critical_section(self):
            handle = self._current_handle
        return (<int>self._state, self._n_callbacks, handle,
                self.sysmon_threshold if self._observed else 0.0)

    def _sysmon_claim(self, unsigned long long seq, incident):
        """Flag callback number seq as slow, if it is still the one running and not
        flagged already; True if it was."""
        with cython.critical_section(self):
            if (self._state != LOOP_RUNNING or self._n_callbacks != seq or
                    self._slow_seq != 0 or seq == 0):
                return False
            self._slow_seq = seq
            self._slow_incident = incident
            self._n_slow += 1
        return True


# ---------------------------------------------------------------------- socket helpers

@cython.final
cdef _check_no_transport(int fd, object owner):
    """asyncio's rule: an fd that a live transport owns is not for sock_* or
    add_reader/add_writer."""
    if owner is not None and type(owner) is not _SockRef and not owner.is_closing():
        raise RuntimeError(
            f'File descriptor {fd!r} is used by transport {owner!r}')


cdef class _SockRef:
    """PollDesc.owner of an fd registered by sock_* waits: which socket it was."""
    cdef object ref

    def __cinit__(self, sock):
        self.ref = weakref.ref(sock)


def _sock_edge_read_done(PollDesc pd, Handle handle, fut):
    if pd.reader is handle:
        pd.reader = None


def _sock_edge_write_done(PollDesc pd, Handle handle, fut):
    if pd.writer is handle:
        pd.writer = None

# Module-level functions rather than bound methods: the reader/writer handle holds the
# function and its arguments, and no bound method is built per wait.

def _sock_retry(fut, sock, method, *args):
    """Readiness callback: method(*args) again; the result or error completes fut."""
    if fut.done():
        return
    try:
        result = method(*args)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _sock_sendall_cb(fut, sock, view, pos):
    if fut.done():
        return
    start = pos[0]
    try:
        n = sock.send(view[start:])
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
        return
    start += n
    if start == len(view):
        fut.set_result(None)
    else:
        pos[0] = start


def _sock_sendto_cb(fut, sock, data, address):
    if fut.done():
        return
    try:
        n = sock.sendto(data, 0, address)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(n)


def _sock_connect_cb(fut, sock, address):
    if fut.done():
        return
    try:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f'Connect call failed {address}')
    except (BlockingIOError, InterruptedError):
        pass
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(None)


def _sock_accept_cb(fut, sock, Loop loop, bint first=False):
    """Try accept(); on EAGAIN, the first try registers itself as sock's reader."""
    if fut.done():
        return
    try:
        conn, address = sock.accept()
        conn.setblocking(False)
    except (BlockingIOError, InterruptedError):
        if first:
            loop._wait_readable(fut, sock, _sock_accept_cb, loop)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result((conn, address))


def _set_ready_cb(fut, sock):
    if not fut.done():
        fut.set_result(None)


cdef _check_sendfile_params(sock, file, offset, count):
    if 'b' not in getattr(file, 'mode', 'b'):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")

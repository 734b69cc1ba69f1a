"""Sysmon: the watchdog thread that tells who is blocking a loop, and schedtrace.

What it does
------------
One daemon thread per process (Go's ``sysmon``), started when the first loop that wants
it starts running: a loop whose sysmon threshold is above zero (``Loop(sysmon=...)``,
``GMPLOOP_DEBUG=sysmon=MS``, 100 ms by default), or any loop when
``GMPLOOP_DEBUG=schedtrace=MS`` asks for trace lines. It wakes every threshold/4 and
samples each running loop it watches through ``loop._sysmon_peek()``: the loop's state,
the count of callbacks it has started, and the handle it is running. None of these
costs the loop a clock reading per callback (see 'Observability' in ``_loop.pyx``).

A callback is slow when the count has not moved, with the loop running, for longer
than the threshold. Sysmon then, while the callback is still running:

1. captures the loop thread's Python stack (``sys._current_frames()``), without the
   frames below ``run_forever`` (recorded when the loop started), so it begins at the
   callback: for a task, its coroutine, then every coroutine it awaits, down to the line
   that blocks;
2. names what that line is doing: the call expression the innermost frame is in
   (``time.sleep(0.5)``, ``sock.recv(4096)``), and the share of the time the thread
   was on CPU, which tells a blocking call (near 0%) from computation (near 100%);
3. claims the incident with ``loop._sysmon_claim(count, incident)``, one C call and so
   atomic with respect to the loop's thread under the GIL: it succeeds only if the same
   callback is still running, and at most once per callback;
4. logs the report, at WARNING, on the ``gmploop`` logger.

The loop tests one field after each callback; when it finds the claim it calls
``callback_ended`` on its own thread, which logs a second record with the total time
and, if the loop has an exception handler of its own, passes it the incident's context
(asyncio's default handler would only log it a second time).

Schedtrace (``GMPLOOP_DEBUG=schedtrace=MS``) prints one line per period to stderr, in
the spirit of Go's ``GODEBUG=schedtrace``; the format is in ``docs/observability.md``::

    gmploop: 1001ms pid=4242 procs=1 p0: state=poll runq=0 cb=5320 iter=1770 util=41% poll=590ms timers=3 fds=12 steals=0 slow=0

In a P of the process runtime sysmon also publishes the P's snapshot for the other Ps
every ``STATS_PUBLISH_MS`` (through ``_stats.runtime_source``; see ``_statshm.py``), and
runs for that even with its threshold and schedtrace off; the supervisor prints the
runtime's schedtrace line, so the Ps' sysmon threads print none.

Rejected approaches
-------------------
* A clock reading before every callback, so that sysmon knows when the current one
  began to the nanosecond: a vDSO ``clock_gettime`` is about 20 ns, 3% of gmploop's
  whole cost per callback. The count costs nothing (the loop counted anyway) and gives
  the start to within one sampling period; the duration reported is the middle of that
  interval, and the threshold is tested against its lower end, so a callback shorter
  than the threshold is never reported.
* Calling ``asyncio.current_task(loop)`` from sysmon: not thread-safe, and the task is
  the handle's ``__self__`` anyway.
* Calling the exception handler from sysmon's thread while the loop is blocked:
  handlers are loop code and expect the loop's thread. The log record goes out at once;
  the handler's context waits for the loop to resume.
* A watchdog in C that samples without the GIL: it could not build the report (frames,
  task, logging) without taking the GIL, and under the GIL a sample costs the loop one
  GIL hand-over, which the loop's own polls (they release the GIL) usually make free;
  see 'Cost'.

Cost
----
Sysmon takes the GIL threshold/4 apart, 40 times a second at the default. A loop
releases the GIL in every poll, so a busy server hands it over there; a loop running
Python code for long hands it over at the interpreter's switch interval. Each sample
runs a few microseconds of Python per loop. ``bench/`` measures the total against a
loop with sysmon and the timed polls off (``GMPLOOP_BENCH_OBSERVE=1``).

Races it survives
-----------------
* The callback ends between the sample and the claim: the claim fails (the count has
  moved on) and nothing is reported.
* The loop's thread runs between the claim and the log record (the GIL may change
  hands anywhere in Python code): the incident's lock is held from before the claim to
  after the record, and ``callback_ended`` takes it, so the end never precedes the start.
* A loop stopped and started again between two samples, with no callback run: the
  count has not moved, but ``loop_started`` forgets the previous sample, and runs
  before the loop's state says running.
* A blocked loop whose thread holds the GIL in C code (a C extension that does not
  release it): sysmon cannot run until it returns, and then the count has moved. Only a
  thread that releases the GIL (``time.sleep``, socket calls, file I/O) or runs Python
  code (the switch interval) can be caught in the act.
* ``fork()``: the child has no sysmon thread; it starts again there when a loop runs.
  A child forked from a P is no P of the runtime: it forgets the runtime's source.
"""

import linecache
import logging
import os
import sys
import threading
import time
import weakref

from . import _config, _introspect, _stats
from ._stats import RuntimeStats

logger = logging.getLogger("gmploop")

_STOPPED, _POLLING, _RUNNING = 0, 1, 2          # _loop.pyx's LoopState

try:
    _thread_cpu_clock = time.pthread_getcpuclockid
except AttributeError:                          # no per-thread CPU clocks here
    _thread_cpu_clock = None


def _cpu_time(thread_id):
    """CPU seconds the thread has used, or None where that cannot be read."""
    if _thread_cpu_clock is None:
        return None
    try:
        return time.clock_gettime(_thread_cpu_clock(thread_id))
    except (OSError, OverflowError):
        return None


class _Incident:
    """One slow callback, as sysmon saw it while it ran."""

    __slots__ = ("p", "pid", "since", "seen", "cpu_seen", "threshold", "handle", "task",
                 "stack", "is_call", "expression", "line", "where", "cpu_share",
                 "awaiters", "lock")

    def describe(self):
        return _introspect.describe_handle(self.handle)

    def blocked_in(self):
        """What the innermost frame is doing. The CPU share decides first: a thread
        that computes hands the GIL to sysmon at a call as often as anywhere else."""
        share = self.cpu_share
        where = self.where if share is None else f"{self.where}, on CPU {share:.0%} of it"
        if share is not None and share >= _config.SYSMON_CPU_BOUND_SHARE:
            return f"running on CPU: {self.line} ({where})"
        if self.is_call:
            return f"blocked in a call: {self.expression} ({where})"
        if share is None:
            return f"running Python code: {self.line} ({where})"
        return f"not running (the thread was not scheduled): {self.line} ({where})"

    def start_message(self, now):
        lines = [
            f"gmploop sysmon: p{self.p} (pid {self.pid}) has been running one callback "
            f"for {now - self.since:.3f} seconds (threshold {self.threshold:.3f}): "
            f"{self.describe()}",
            self.blocked_in(),
        ]
        if self.awaiters:
            lines.append("awaited by:")
            lines.extend("  " + line for line in self.awaiters)
        if self.stack:
            lines.append("Stack of the callback (most recent call last):")
            lines.append("".join(self.stack.format()).rstrip("\n"))
        return "\n".join(lines)

    def end_message(self, total, share):
        share = "" if share is None else f", on CPU {share:.0%} of it"
        return (f"gmploop sysmon: p{self.p} (pid {self.pid}): the slow callback returned "
                f"after {total:.3f} seconds{share}: {self.describe()}")


class Watch:
    """Sysmon's record of one loop (``loop._monitor``). Sample fields are written by
    the sysmon thread only; the rest by the loop's thread in loop_started."""

    __slots__ = ("loop", "thread_id", "base_depth", "seq", "seen", "before", "last",
                 "cpu_seen", "flagged", "trace_prev", "__weakref__")

    def __init__(self, loop):
        self.loop = weakref.ref(loop)
        self.thread_id = None
        self.base_depth = 0
        self.seq = None         # the callback count last seen running, or None
        self.seen = 0.0         # when that count was first seen
        self.before = 0.0       # the sample before that (the count was not yet there)
        self.last = 0.0         # the previous sample's time
        self.cpu_seen = None    # the loop thread's CPU time at `seen`
        self.flagged = None     # the count sysmon has reported already
        self.trace_prev = None  # the LoopStats of the previous schedtrace line

    # The loop's thread.

    def loop_started(self, loop):
        """Called by run_forever before the loop's state says running."""
        self.thread_id = threading.get_ident()
        # Frames up to the caller of run_forever (run_forever itself has none): the
        # part of any later stack of this thread that is not the callback's.
        self.base_depth = _introspect.frame_depth(sys._getframe(1))
        self.seq = None
        source = _stats.runtime_source
        if (loop.sysmon_threshold > 0 or _config.DEBUG.schedtrace_ms > 0 or
                (source is not None and source.publish_period > 0)):
            _SYSMON.ensure_running(loop.sysmon_threshold)

    def callback_ended(self, loop, incident, now):
        """Called by the loop, on its thread, after the flagged callback returned."""
        cpu_now = _cpu_time(self.thread_id) if self.thread_id is not None else None
        with incident.lock:         # after the start record (see 'Races')
            total = now - incident.since
            share = None
            if cpu_now is not None and incident.cpu_seen is not None and now > incident.seen:
                # Measured from the first sample that saw the callback.
                share = min(1.0, (cpu_now - incident.cpu_seen) / (now - incident.seen))
            logger.warning(incident.end_message(total, share))
        if loop.get_exception_handler() is not None:
            context = {
                "message": f"gmploop sysmon: a callback blocked the loop for "
                           f"{total:.3f} seconds (threshold {incident.threshold:.3f})",
                "handle": incident.handle,
                "blocked_for": total,
                "blocked_in": incident.blocked_in(),
                "stack": incident.stack,
            }
            if incident.task is not None:
                context["task"] = incident.task
            loop.call_exception_handler(context)


class Sysmon:
    """The process's watchdog thread and the registry of its loops."""

    def __init__(self):
        self._lock = threading.Lock()       # guards _loops and _thread
        self._loops = weakref.WeakSet()
        self._thread = None
        self._wake = threading.Event()
        self._period_now = None             # the sleep sysmon is in, in seconds
        self._started_at = time.monotonic()

    def watch(self, loop):
        """Register a new loop; sysmon samples it whenever it runs."""
        loop._monitor = Watch(loop)
        with self._lock:
            self._loops.add(loop)

    def loops(self):
        """The gmploop loops alive (made and not closed) in this process, in P order."""
        with self._lock:
            loops = list(self._loops)
        return sorted((lp for lp in loops if not lp.is_closed()),
                      key=lambda lp: lp._p_index)

    def ensure_running(self, threshold):
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                sleeping = self._period_now
                if (threshold > 0 and sleeping is not None and
                        threshold / _config.SYSMON_SAMPLES_PER_THRESHOLD < sleeping):
                    self._wake.set()        # this loop wants a shorter period
                return
            self._thread = threading.Thread(target=self._main, name="gmploop-sysmon",
                                            daemon=True)
            self._thread.start()

    def after_fork_in_child(self):
        self._lock = threading.Lock()
        self._thread = None
        self._wake = threading.Event()
        # A child forked from a P is no P of its runtime (the runtime sets the source
        # again in each P it forks, after this).
        _stats.runtime_source = None

    # The sysmon thread.

    def _period(self, loops):
        """Seconds to the next sample: a quarter of the smallest threshold of the
        loops running, within the bounds _config gives."""
        thresholds = [lp.sysmon_threshold for lp in loops
                      if lp.is_running() and lp.sysmon_threshold > 0]
        if not thresholds:
            return _config.SYSMON_MAX_PERIOD_MS / 1000.0
        period = min(thresholds) / _config.SYSMON_SAMPLES_PER_THRESHOLD
        return min(max(period, _config.SYSMON_MIN_PERIOD_MS / 1000.0),
                   _config.SYSMON_MAX_PERIOD_MS / 1000.0)

    def _main(self):
        trace = _config.DEBUG.schedtrace_ms / 1000.0
        next_trace = time.monotonic() + trace if trace > 0 else None
        next_publish = time.monotonic()     # a P publishes as soon as it runs
        while True:
            # The runtime's source is read each time: a P sets it before its loop runs.
            source = _stats.runtime_source
            publish = source.publish_period if source is not None else 0.0
            period = self._period(self.loops())
            timeout = period
            if next_trace is not None:
                timeout = max(0.0, min(timeout, next_trace - time.monotonic()))
            if publish > 0:
                timeout = max(0.0, min(timeout, next_publish - time.monotonic()))
            # No reference to a loop is held while waiting: sysmon keeps none alive.
            self._period_now = timeout
            self._wake.wait(timeout)
            self._wake.clear()
            now = time.monotonic()
            loops = self.loops()
            for loop in loops:
                try:
                    self._sample(loop, now, period)
                except Exception:
                    logger.exception("gmploop sysmon: sampling %r failed", loop)
            if publish > 0 and now >= next_publish:
                try:
                    source.publish(loops)
                except Exception:
                    logger.exception("gmploop sysmon: publishing stats failed")
                next_publish = source.publish_due(now)
            if next_trace is not None and now >= next_trace:
                if source is None or source.schedtrace_here:
                    try:
                        self._schedtrace(loops, now)
                    except Exception:
                        logger.exception("gmploop sysmon: schedtrace failed")
                while next_trace <= now:
                    next_trace += trace
            loops = loop = source = None

    def _sample(self, loop, now, period):
        watch = loop._monitor
        if watch is None:
            return
        state, seq, handle, threshold = loop._sysmon_peek()
        if state != _RUNNING or threshold <= 0:
            watch.seq = None
        elif seq != watch.seq:
            # A callback started since the last sample: its start is in (last, now],
            # or within one period of now if the last sample is older than that.
            watch.seq = seq
            watch.seen = now
            watch.before = max(watch.last, now - period)
            watch.cpu_seen = _cpu_time(watch.thread_id)
        elif watch.flagged != seq and now - watch.seen >= threshold:
            self._report(loop, watch, seq, handle, threshold, now)
        watch.last = now

    def _report(self, loop, watch, seq, handle, threshold, now):
        incident = _Incident()
        incident.p = loop._p_index
        incident.pid = os.getpid()
        # The middle of the interval the callback began in (see 'Rejected approaches').
        incident.since = (watch.before + watch.seen) / 2
        incident.seen = watch.seen
        incident.cpu_seen = watch.cpu_seen
        incident.threshold = threshold
        incident.handle = handle
        incident.task = _introspect.task_of(handle)
        frames = _introspect.thread_frames(watch.thread_id, watch.base_depth)
        incident.stack = _introspect.stack_summary(frames)
        if frames:
            top = frames[-1]
            incident.is_call, incident.expression = _introspect.current_expression(top)
            incident.line = linecache.getline(top.f_code.co_filename, top.f_lineno).strip()
            incident.where = f"{top.f_code.co_filename}:{top.f_lineno}"
        else:
            # No Python frame above run_forever: the callback itself is C code.
            incident.is_call = True
            incident.expression = incident.line = _introspect.callback_call(handle)
            incident.where = "no Python frame: the callback is C code"
        frames = top = None     # frames hold their locals: drop them at once
        cpu_now = _cpu_time(watch.thread_id)
        incident.cpu_share = None
        if cpu_now is not None and watch.cpu_seen is not None and now > watch.seen:
            incident.cpu_share = min(1.0, (cpu_now - watch.cpu_seen) / (now - watch.seen))
        incident.awaiters = (_introspect.awaited_by(incident.task)
                             if incident.task is not None else [])
        incident.lock = threading.Lock()
        with incident.lock:
            if not loop._sysmon_claim(seq, incident):
                return          # it returned meanwhile
            watch.flagged = seq
            logger.warning(incident.start_message(now))

    def trace_head(self, now, procs):
        """The start of a schedtrace line: elapsed ms since gmploop was imported in
        this process, its pid, the number of Ps."""
        return (f"gmploop: {(now - self._started_at) * 1000:.0f}ms pid={os.getpid()} "
                f"procs={procs}")

    def _schedtrace(self, loops, now):
        parts = [self.trace_head(now, len(loops))]
        for loop in loops:
            watch = loop._monitor
            s = loop.stats()
            prev = watch.trace_prev if watch is not None else None
            if watch is not None:
                watch.trace_prev = s
            parts.append(format_trace(s, prev))
        sys.stderr.write(" ".join(parts) + "\n")
        sys.stderr.flush()


def format_trace(s, prev, pid=False):
    """One P's part of a schedtrace line: counts over the period since prev (a
    LoopStats, or None for since the loop was made); runq, timers, fds and state now.
    pid: name the P's process too (the runtime's line, where each P has its own)."""
    def delta(name):
        return getattr(s, name) - (getattr(prev, name) if prev is not None else 0)
    busy, poll = delta("busy_time"), delta("poll_time")
    util = busy / (busy + poll) if busy + poll > 0 else 0.0
    who = f"p{s.p}: pid={s.pid} " if pid else f"p{s.p}: "
    return (f"{who}state={s.state} runq={s.ready} cb={delta('callbacks')} "
            f"iter={delta('iterations')} util={util:.0%} poll={poll * 1000:.0f}ms "
            f"timers={s.timers_pending} fds={s.fds_registered} steals={delta('steals')} "
            f"slow={delta('slow_callbacks')}")


_SYSMON = Sysmon()
watch = _SYSMON.watch

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SYSMON.after_fork_in_child)


trace_head = _SYSMON.trace_head


def stats():
    """gmploop.stats(): the snapshots of the runtime's Ps when this process is a P of
    one (see _stats.runtime_source), else of every gmploop loop alive in this process."""
    loops = _SYSMON.loops()
    source = _stats.runtime_source
    if source is not None:
        return RuntimeStats(ps=tuple(source.snapshots(loops)))
    return RuntimeStats(ps=tuple(loop.stats() for loop in loops))

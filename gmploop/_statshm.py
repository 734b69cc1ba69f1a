"""Shared stats: every P's counters where every process of the runtime can read them.

What it does
------------
Under the process runtime (``gmploop.run(main, procs=N)``, ``_runtime.py``) each P is a
process, and ``loop.stats()`` sees only its own loop. So that ``gmploop.stats()`` in any
P returns the snapshots of all Ps, and so that one schedtrace line can cover them all,
each P publishes its ``LoopStats`` into a slot of a ``MAP_SHARED`` anonymous mapping that
the supervisor makes before it forks (as it does for its ``SharedStealQueues``):

* a P publishes from its sysmon thread every ``STATS_PUBLISH_MS`` (100 ms), and again
  whenever ``gmploop.stats()`` is called in it, so the caller's own P is exact and its
  peers' snapshots are at most about 100 ms old; each snapshot carries its ``time``
  (``loop.time()``, i.e. ``time.monotonic()``, one clock for every process of the
  machine), which tells how old it is;
* ``gmploop.stats()`` in a P (``PSource.snapshots``) reads every other slot;
* the supervisor reads every slot for schedtrace (``RuntimeTrace``: one line per period
  for all Ps; the Ps print none of their own) and clears a P's slot when it reaps it, so
  that a P that has ended drops out of its peers' ``gmploop.stats()``.

Schedtrace counts each P's work over the time between the snapshots of two lines. So
that this time is the period, and the same for every P, the lines keep a schedule made
before the fork (``trace_origin``, one clock for all processes): each P also publishes
at every instant of it, and the supervisor reads ``TRACE_READ_DELAY`` later.

Publication is off the loop's hot path: the sysmon thread takes a snapshot
(``loop.stats()``, a few microseconds) and packs it, ten times a second. The sysmon
thread runs in a P for this even when sysmon's threshold and schedtrace are off.

Slots
-----
One slot per P, a fixed-size record of the ``LoopStats`` fields packed with ``struct``
(ints as int64, floats as doubles, the state as a byte), its layout derived from the
dataclass so that a field added there is published without a change here. A slot holds
two copies (*halves*). Each half is ``gen`` (uint64), ``crc`` (uint32), then the fields.

Writer (the P; a lock orders its sysmon thread and a thread calling gmploop.stats()):
pick the half not written last; store ``gen = 2k+1`` (odd: being written), the fields,
their crc32, then ``gen = 2k+2``. Reader (any process): for each half read ``gen``, the
fields and ``crc``, then ``gen`` again; a half is good when both reads of ``gen`` agree,
are even and non-zero, and the crc matches. The good half with the larger ``gen`` is the
newest snapshot; none good (an empty slot) means the P has not published.

Rejected approaches
-------------------
* One copy under a plain seqlock, readers retrying while ``gen`` is odd: the writer is a
  Python thread, which may lose the GIL between two stores to the loop's thread, and the
  loop's thread may keep it for as long as a C extension runs. Readers would spin, or
  give up, for as long as that lasts. With two halves the one not being written is whole.
* Sending snapshots over the control sockets: the supervisor never writes to a P
  unasked (see 'Control socket' in ``_runtime.py``), a P's peers have no socket to it, and
  a P that is blocked could not answer. A slot is read without the P's help; its sysmon
  thread keeps publishing while its loop is blocked in Python code or in a call that
  releases the GIL, so its peers see ``state='blocked'``.
* A compiled seqlock with C11 fences: the reader's crc check already rejects a torn read
  whatever order a weakly ordered CPU makes the stores visible in, and a publication ten
  times a second does not need C speed.
* Pickling snapshots into the slot: variable length, and an allocation per publication.

Races it survives
-----------------
* A read torn by a write to the same half (the reader was slow, the writer published
  twice meanwhile): ``gen`` changed, or the crc does not match; the reader tries both
  halves again, a bounded number of times (``READ_TRIES``), then reports the P as not
  published rather than a mixture of two snapshots.
* A P killed in the middle of a write: its other half is whole, and the supervisor
  clears the slot when it reaps the P.
* A process forked from a P (a user's ``os.fork``) is no P: ``_sysmon`` clears
  ``_stats.runtime_source`` in the child, so it neither publishes into its parent's slot
  nor claims to be that P.
"""

import dataclasses
import math
import mmap
import struct
import sys
import threading
import time
import zlib

from . import _config, _stats, _sysmon
from ._stats import LoopStats

__all__ = ("SharedStats", "PSource", "RuntimeTrace", "attach")

STATES = ("stopped", "poll", "run", "blocked")      # LoopStats.state, as one byte
_CODES = {int: "q", float: "d", str: "B"}
_FIELDS = dataclasses.fields(LoopStats)
_PAYLOAD = struct.Struct("<" + "".join(_CODES[f.type] for f in _FIELDS))
_STATE_AT = [f.name for f in _FIELDS].index("state")
_HEADER = struct.Struct("<QI")                      # gen, crc
_GEN = struct.Struct("<Q")
_HALF = _HEADER.size + _PAYLOAD.size
# A slot is a whole number of 64-byte cache lines, so that one P's writes do not make
# its neighbours' slots bounce between caches.
_SLOT = -(-2 * _HALF // 64) * 64
# Attempts at a whole snapshot before a slot is reported as not published: one read of
# two halves fails only if the writer wrote both meanwhile, which takes two
# publications (sysmon's are 100 ms apart; a P calling gmploop.stats() in a tight loop
# publishes at each call, some 20 us apart). A guess: four failures in a row mean the
# reader is starved, and a missing snapshot is better than a reader that spins.
READ_TRIES = 4
# The supervisor reads the slots for a schedtrace line this long after the instant the
# Ps publish at: a P's sysmon thread wakes within a millisecond or so of its time, but
# may wait for the GIL up to the interpreter's switch interval (5 ms).
TRACE_READ_DELAY = 0.010


class SharedStats:
    """The slots of all Ps (see 'Slots'): made by the supervisor before it forks, and
    so mapped at the same place in every P."""

    def __init__(self, count):
        if count < 1:
            raise ValueError(f"count must be >= 1, not {count}")
        self.count = count
        # Anonymous and MAP_SHARED (mmap's default): children forked later share it.
        self.map = mmap.mmap(-1, _SLOT * count)
        self.trace_origin = None    # schedtrace's schedule: instants origin + k*period
        self.trace_period = 0.0

    def read(self, index):
        """Any process. P index's last published LoopStats, or None."""
        base = index * _SLOT
        m = self.map
        for _ in range(READ_TRIES):
            best = None
            best_gen = 0
            for half in (base, base + _HALF):
                gen, crc = _HEADER.unpack_from(m, half)
                if gen == 0 or gen & 1 or gen <= best_gen:
                    continue
                data = m[half + _HEADER.size:half + _HALF]
                if _GEN.unpack_from(m, half)[0] != gen or \
                        zlib.crc32(data, gen & 0xFFFFFFFF) != crc:
                    continue
                best, best_gen = data, gen
            if best is not None:
                values = list(_PAYLOAD.unpack(best))
                values[_STATE_AT] = STATES[values[_STATE_AT]]
                return LoopStats(*values)
            if all(_GEN.unpack_from(m, half)[0] == 0 for half in (base, base + _HALF)):
                return None         # never published, or cleared
        return None

    def read_all(self):
        """Any process. [LoopStats or None] for every P, in P order."""
        return [self.read(i) for i in range(self.count)]

    def clear(self, index):
        """The supervisor, once P index has been reaped (no writer can be left)."""
        base = index * _SLOT
        _GEN.pack_into(self.map, base, 0)
        _GEN.pack_into(self.map, base + _HALF, 0)

    def close(self):
        self.map.close()


class PSource(_stats.RuntimeSource):
    """A P's view of the runtime for gmploop.stats() and sysmon (_stats.runtime_source):
    it publishes this P's loop into slot index and reads the others."""

    schedtrace_here = False         # the supervisor prints the runtime's line

    def __init__(self, shared, index):
        self.shared = shared
        self.index = index
        self.lock = threading.Lock()
        base = index * _SLOT
        # Go on from the slot's generation (a P started again in the same slot).
        gens = [_GEN.unpack_from(shared.map, base + h)[0] for h in (0, _HALF)]
        self.gen = max(gens) + (max(gens) & 1)
        trace = _config.DEBUG.schedtrace_ms
        period = _config.STATS_PUBLISH_MS
        if trace > 0:
            period = max(min(period, trace / 2), _config.SYSMON_MIN_PERIOD_MS)
        self.publish_period = period / 1000.0

    def publish_due(self, now):
        """When sysmon should publish next, having published at now: a publish
        period later, or at schedtrace's next instant if that comes first."""
        due = now + self.publish_period
        origin, period = self.shared.trace_origin, self.shared.trace_period
        if origin is not None:
            due = min(due, origin + (math.floor((now - origin) / period) + 1) * period)
        return due

    def _loop(self, loops):
        """This P's loop among this process's: the running one, else the first."""
        mine = [lp for lp in loops if lp._p_index == self.index]
        for lp in mine:
            if lp.is_running():
                return lp
        return mine[0] if mine else None

    def publish(self, loops):
        """This P's snapshot now, written into its slot (None if it has no loop)."""
        loop = self._loop(loops)
        if loop is None:
            return None
        with self.lock:
            s = loop.stats()
            values = [getattr(s, f.name) for f in _FIELDS]
            values[_STATE_AT] = STATES.index(s.state)
            data = _PAYLOAD.pack(*values)
            gen = self.gen + 2
            # The half written last holds gen - 2; write the other one.
            half = self.index * _SLOT + (_HALF if (gen // 2) & 1 else 0)
            m = self.shared.map
            _GEN.pack_into(m, half, gen - 1)
            m[half + _HEADER.size:half + _HALF] = data
            _HEADER.pack_into(m, half, gen - 1, zlib.crc32(data, gen & 0xFFFFFFFF))
            _GEN.pack_into(m, half, gen)
            self.gen = gen
        return s

    def snapshots(self, loops):
        """All Ps that have published, in P order; this P's own taken now."""
        out = []
        for i in range(self.shared.count):
            s = self.publish(loops) if i == self.index else self.shared.read(i)
            if s is not None:
                out.append(s)
        return tuple(out)


def attach(shared, index):
    """In P index, right after the fork: gmploop.stats() and sysmon use the shared
    slots from now on."""
    if shared is not None:
        _stats.runtime_source = PSource(shared, index)


class RuntimeTrace:
    """The supervisor's schedtrace (GMPLOOP_DEBUG=schedtrace=MS): one line per period
    for all Ps, read from their slots (see docs/observability.md for the format)."""

    def __init__(self, shared, period_ms):
        """Before the fork: the Ps publish on the schedule made here."""
        self.shared = shared
        self.period = period_ms / 1000.0
        shared.trace_origin = time.monotonic()
        shared.trace_period = self.period
        self.next = shared.trace_origin + self.period + TRACE_READ_DELAY
        self.prev = [None] * shared.count   # each P's snapshot in the previous line

    @classmethod
    def configured(cls, shared):
        """A RuntimeTrace if GMPLOOP_DEBUG asks for schedtrace, else None."""
        ms = _config.DEBUG.schedtrace_ms
        return cls(shared, ms) if ms > 0 else None

    def timeout(self, tick):
        """The supervisor's wait: tick, or less if a line is due sooner."""
        return max(0.0, min(tick, self.next - time.monotonic()))

    def tick(self, ps):
        """Print the line if it is due. ps: the supervisor's records of the Ps (index
        and status, None while the P runs)."""
        now = time.monotonic()
        if now < self.next:
            return
        while self.next <= now:
            self.next += self.period
        ended = {p.index for p in ps if p.status is not None}
        parts = [_sysmon.trace_head(now, self.shared.count)]
        for i, s in enumerate(self.shared.read_all()):
            if s is None:
                parts.append(f"p{i}: {'exited' if i in ended else 'starting'}")
                continue
            prev = self.prev[i]
            if prev is not None and prev.pid != s.pid:
                prev = None             # another process in this slot: count afresh
            parts.append(_sysmon.format_trace(s, prev, pid=True))
            self.prev[i] = s
        sys.stderr.write(" ".join(parts) + "\n")
        sys.stderr.flush()

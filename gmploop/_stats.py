"""Snapshot types of ``loop.stats()`` and ``gmploop.stats()``.

A snapshot is a frozen value: taking one copies a loop's counters (plain C fields, no
lock), and nothing the loop does afterwards changes it, so two snapshots can be
subtracted to get the rates over the time between them. Both types pickle, so a
runtime of several processes can ship its Ps' snapshots to one place and build a
``RuntimeStats`` of them all.

``LoopStats`` also reads like the dict ``loop.stats()`` used to return
(``s['callbacks']``, ``dict(s)``), which code written against that keeps working with.

Whose snapshots ``gmploop.stats()`` returns is the runtime's business, not this
module's: ``runtime_source`` below is None in a process that is no P of a runtime (its
own loops are all there is), and otherwise an object of the ``RuntimeSource`` shape,
set by the runtime in each P. The process runtime's (``_statshm.PSource``) reads its
peers' snapshots from shared memory; a runtime whose Ps are all loops of this process
needs nothing more than the base class, which reads each loop.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class LoopStats:
    """One P's counters at one instant. Counts are totals since the loop was made."""
    p: int                  # the P's index: the runtime's, or the loop's ordinal here
    pid: int                # the process the P lives in
    time: float             # loop.time() when the snapshot was taken
    state: str              # 'stopped', 'poll' (waiting for I/O), 'run', or 'blocked'
                            # (sysmon found its current callback over the threshold)
    iterations: int         # passes of asyncio's _run_once
    callbacks: int          # handles run (call_soon, timers, I/O, task steps)
    io_events: int          # readiness events the poller returned
    timers_fired: int       # timers that came due and were queued
    ready: int              # the run queue's length now (Go's runqsize)
    timers_pending: int     # timers scheduled and not cancelled
    fds_registered: int     # fds in the poller's kernel set
    poll_ctl_calls: int     # epoll_ctl/kevent changes ever made
    poll_time: float        # seconds blocked in the poller, waiting for events
    busy_time: float        # seconds running, poll excluded: callbacks and the loop's own
                            # work between them
    slow_callbacks: int     # callbacks sysmon reported as over its threshold
    blocked_for: float      # seconds the current slow callback has run; 0.0 unless
                            # state == 'blocked'
    steals: int = 0         # units of work this P stole from others (the runtime's)
    stealable: int = 0      # length of this P's queue of stealable work (the runtime's)

    @property
    def utilization(self):
        """busy_time / (busy_time + poll_time): the share of its running time the
        loop was not waiting for I/O (0.0 before it has run)."""
        total = self.busy_time + self.poll_time
        return self.busy_time / total if total > 0 else 0.0

    # Read-only mapping protocol, for code that treats a snapshot as a dict.

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]

    def __getitem__(self, key):
        if not isinstance(key, str) or key not in _LOOP_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key) if key in _LOOP_FIELDS else default

    def items(self):
        return [(name, getattr(self, name)) for name in self.keys()]

    def as_dict(self):
        return dict(self.items())


_LOOP_FIELDS = frozenset(f.name for f in dataclasses.fields(LoopStats))


@dataclasses.dataclass(frozen=True)
class RuntimeStats:
    """The snapshots of a runtime's Ps, in P order: under ``gmploop.run(main,
    procs=N)`` one per P of the runtime (the caller's own taken now, the others as
    their Ps last published them, see ``LoopStats.time``); elsewhere one per gmploop
    loop alive in this process."""
    ps: tuple               # LoopStats, one per P

    @property
    def procs(self):
        """The number of Ps."""
        return len(self.ps)

    def total(self, name):
        """The sum of one numeric LoopStats field over all Ps."""
        if name not in _LOOP_FIELDS:
            raise KeyError(name)
        return sum(getattr(s, name) for s in self.ps)

    def __iter__(self):
        return iter(self.ps)

    def __len__(self):
        return len(self.ps)


class RuntimeSource:
    """What ``gmploop.stats()`` and sysmon ask of the runtime this process's loops are
    Ps of (``runtime_source``). The base class is a runtime whose Ps are all loops of
    this process: each snapshot is read from its loop, and there is nothing to publish.
    """

    publish_period = 0.0    # seconds between sysmon's calls of publish(); 0: none
    schedtrace_here = True  # False: another process prints this runtime's schedtrace

    def publish(self, loops):
        """Sysmon's thread, every publish_period seconds: make the counters of this
        process's Ps visible to the runtime's other processes. loops: this process's
        gmploop loops alive, in P order."""
        return None

    def publish_due(self, now):
        """When sysmon should call publish again, having called it at now."""
        return now + self.publish_period

    def snapshots(self, loops):
        """Any thread (gmploop.stats()): the LoopStats of all the runtime's Ps, in P
        order. loops: as for publish."""
        return tuple(lp.stats() for lp in loops)


# None, or the RuntimeSource of the runtime this process belongs to (set in each P;
# cleared in a child forked from a P, which is no P: see _sysmon.after_fork_in_child).
runtime_source = None

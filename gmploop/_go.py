"""gmploop.go(coro): start a coroutine on the current P, Go's ``go`` statement.

What it does
------------
``go`` puts a coroutine that has not started on the running loop's StealQueue (see
'StealQueue' in _runq.pyx) and returns at once. The loop starts queued coroutines as
asyncio Tasks, a batch per iteration, in the context that was current when ``go`` was
called; it keeps a strong reference to each Task until it is done (asyncio keeps only
weak ones, and a fire-and-forget task must not vanish mid-flight). An exception that
ends such a Task is reported as asyncio reports any unretrieved Task exception.

Until it starts, a coroutine is work bound to no loop: the unit that an idle P may
steal from a busy one. On the process runtime (builds with the GIL) a coroutine never
crosses processes, so there ``go`` work always runs on the P that queued it. On the
thread runtime (free-threaded builds, ``_threadrt.py``) the Ps' queues form a
``GoGroup`` and unstarted coroutines move (see 'Stealing' below).

Stealing
--------
Go's scheduler, cut down to what a loop can do. When a P queues work it did not have
(the first ``go`` of a burst), or finds more waiting after a batch, it *wakes* one
other P of the group whose queue is empty (Go's ``wakep``): it calls that P's
``steal`` through ``call_soon_threadsafe``, which rings the P's doorbell if it is
blocked in ``epoll_wait``. ``steal`` runs on the thief's own thread: it takes half of
the fullest queue of the group (``StealQueue.steal_half_into``, Go's ``runqsteal``)
into its own and starts it there, batch by batch; when its queue runs dry it tries
once more before it goes idle (Go's ``findrunnable``). A P nobody wakes never looks:
there is no polling, and an idle runtime costs nothing.

The ring is bounded (``STEAL_CAPACITY``); a burst larger than that spills to the
owner's ``overflow`` deque, which only the owner reads, and the owner refills the
ring from it as it takes (``_take``), so thieves keep finding half of what is left.

Rejected: a thief that polls the other queues on a timer (wakes every idle P for
nothing, and is late by a tick); a global queue shared by all Ps (a lock, or a second
lock-free structure, for what the owner's ring already gives); waking every idle P at
once (Go wakes one and lets that one wake the next: ``steal`` wakes another when it
leaves work behind).

Rejected: ``loop.create_task`` at once (the Task would be bound to this loop before
any other P could take it; it is what ``go`` becomes when the queue is drained); one
``call_soon`` per coroutine (a burst of 10,000 ``go`` calls would be 10,000 handles
before the first Task starts; one drain callback per iteration suffices).

Invariants
----------
* Each coroutine given to ``go`` is started exactly once, on one loop, as one Task:
  it leaves a ring by exactly one successful CAS on its head (the owner's get or one
  thief's steal; ``tests/test_threadrt.py`` counts a burst).
* Only the owner loop's thread puts into its queue, takes from it and reads its
  overflow (``go`` needs a running loop, and refuses another thread's); other threads
  only steal, through the ring's any-P operation.
* A full queue (``STEAL_CAPACITY``) spills to an unbounded deque, drained after the
  queue: no order between ``go`` coroutines is promised, as in Go.
* A Task never moves: what a thief takes has not started, and it starts on the thief.

Races
-----
* Two Ps wake the same idle P: it steals twice; the second finds less, or nothing.
* A P is woken while its own queue fills: it steals only while it has room, and
  ``steal_half_into`` never takes more than the room it has.
* The thief's loop closes before it runs ``steal`` (its ``main`` returned):
  ``call_soon_threadsafe`` raises, the waker tries no other P, and the work stays with
  its owner, which runs it.
"""

import asyncio
import collections
import contextvars

from ._runq import StealQueue

__all__ = ("go",)

# Coroutines started per iteration of the loop: enough that a burst starts quickly,
# few enough that I/O is polled between batches. A guess, not yet tuned.
GO_BATCH = 128


class GoQueue:
    """The unstarted coroutines of one loop. Owner loop's thread only, except that a
    thief of its GoGroup steals from ``queue`` (see 'Stealing')."""

    __slots__ = ("loop", "queue", "overflow", "tasks", "scheduled", "started",
                 "group", "stolen", "waking")

    def __init__(self, loop, group=None):
        self.loop = loop
        self.queue = StealQueue()
        self.overflow = collections.deque()
        self.tasks = set()
        self.scheduled = False
        self.started = 0
        self.group = group          # the thread runtime's GoGroup, or None
        self.stolen = 0             # coroutines this P took from others' queues
        self.waking = False         # written: any P (a hint); read: any P

    def put(self, coro, context):
        item = (coro, context)
        if not self.queue.push(item):
            self.overflow.append(item)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.start_batch)
            if self.group is not None:
                self.group.wake_one(self)

    def _take(self):
        if len(self.queue):
            item = self.queue.pop()
        elif self.overflow:
            item = self.overflow.popleft()
        else:
            return None
        # Keep the ring full from the overflow, so that thieves find work in it.
        overflow = self.overflow
        while overflow and self.queue.push(overflow[0]):
            overflow.popleft()
        return item

    def start_batch(self):
        self.scheduled = False
        for _ in range(GO_BATCH):
            item = self._take()
            if item is None:
                break
            coro, context = item
            task = self.loop.create_task(coro, context=context)
            self.started += 1
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if len(self.queue) or self.overflow:
            self.scheduled = True
            self.loop.call_soon(self.start_batch)
            if self.group is not None:
                self.group.wake_one(self)
        elif self.group is not None and self.stolen:
            # A thief whose loot is started: one more look before going idle, after
            # the loot's first steps (queued before this) have run.
            self.loop.call_soon(self.steal)

    def steal(self):
        """Owner's thread (called through call_soon_threadsafe by a waker): take half
        of the fullest other queue of the group and start it here."""
        self.waking = False
        if self.scheduled or len(self.queue) or self.overflow:
            return                  # busy with its own: start_batch will look again
        n = self.group.steal_into(self)
        if n:
            self.stolen += n
            self.loop._n_steals += n        # stats and schedtrace: steals=
            self.scheduled = True
            self.loop.call_soon(self.start_batch)

    def __len__(self):
        return len(self.queue) + len(self.overflow)


class GoGroup:
    """The GoQueues of the thread runtime's Ps (see 'Stealing'). Any P."""

    def __init__(self, procs):
        self.queues = [None] * procs    # written: each P, its own slot, at its start

    def join(self, index, loop):
        """P index's thread: give its loop a GoQueue in this group."""
        queue = GoQueue(loop, self)
        loop._gmploop_go = queue
        self.queues[index] = queue
        return queue

    def leave(self, index):
        """P index's thread, when its main is done: no more work is sent its way."""
        self.queues[index] = None

    def wake_one(self, waker):
        """Waker's thread: nudge one P with an empty queue to steal (Go's wakep)."""
        for queue in self.queues:
            if queue is None or queue is waker or queue.waking or len(queue):
                continue
            queue.waking = True
            try:
                queue.loop.call_soon_threadsafe(queue.steal)
            except RuntimeError:            # its loop is closed: see 'Races'
                queue.waking = False
                continue
            return

    def steal_into(self, thief):
        """Thief's thread: half of the fullest other ring into the thief's; how many
        moved."""
        victims = [q for q in self.queues if q is not None and q is not thief]
        for victim in sorted(victims, key=len, reverse=True):
            if len(victim.queue) == 0:
                break
            n = victim.queue.steal_half(thief.queue)
            if n:
                if len(victim.queue):
                    # Work is left behind: the next idle P may take a share too.
                    self.wake_one(victim)
                return n
        return 0


def go(coro):
    """Start coro as a Task on the running loop, soon: fire and forget.

    Returns None. The coroutine is queued unstarted and started by the loop within an
    iteration or two (see docs/runtime.md); the loop holds its Task until it ends.
    """
    loop = asyncio.get_running_loop()
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"a coroutine was expected, got {coro!r}")
    queue = getattr(loop, "_gmploop_go", None)
    if queue is None:
        queue = GoQueue(loop)
        loop._gmploop_go = queue
    queue.put(coro, contextvars.copy_context())


def pending(loop):
    """The number of coroutines go() queued on loop that have not started."""
    queue = getattr(loop, "_gmploop_go", None)
    return 0 if queue is None else len(queue)

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
crosses processes, so there ``go`` work always runs on the P that queued it; stealing
it needs the thread runtime of free-threaded builds, which is future work.

Rejected: ``loop.create_task`` at once (the Task would be bound to this loop before
any other P could take it; it is what ``go`` becomes when the queue is drained); one
``call_soon`` per coroutine (a burst of 10,000 ``go`` calls would be 10,000 handles
before the first Task starts; one drain callback per iteration suffices).

Invariants
----------
* Each coroutine given to ``go`` is started exactly once, on one loop, as one Task.
* Only the owner loop's thread touches its queue (``go`` needs a running loop, and
  refuses another thread's).
* A full queue (``STEAL_CAPACITY``) spills to an unbounded deque, drained after the
  queue: no order between ``go`` coroutines is promised, as in Go.
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
    """The unstarted coroutines of one loop. Owner loop's thread only."""

    __slots__ = ("loop", "queue", "overflow", "tasks", "scheduled", "started")

    def __init__(self, loop):
        self.loop = loop
        self.queue = StealQueue()
        self.overflow = collections.deque()
        self.tasks = set()
        self.scheduled = False
        self.started = 0

    def put(self, coro, context):
        item = (coro, context)
        if not self.queue.push(item):
            self.overflow.append(item)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.start_batch)

    def _take(self):
        if len(self.queue):
            return self.queue.pop()
        if self.overflow:
            return self.overflow.popleft()
        return None

    def start_batch(self):
        self.scheduled = False
        for _ in range(GO_BATCH):
            item = self._take()
            if item is None:
                return
            coro, context = item
            task = self.loop.create_task(coro, context=context)
            self.started += 1
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if len(self.queue) or self.overflow:
            self.scheduled = True
            self.loop.call_soon(self.start_batch)

    def __len__(self):
        return len(self.queue) + len(self.overflow)


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

"""The timer heap: a P's pending ``call_later``/``call_at`` handles.

What it does
------------
A binary min-heap of (when, seq, handle) slots in one C array. ``when`` is a
``loop.time()`` deadline; ``seq`` is a per-heap counter, so two timers with the same
deadline fire in the order they were scheduled (asyncio's heapq orders by deadline
alone, and leaves equal deadlines in an unspecified order; FIFO is one valid order and
the one users expect).

Cancellation is lazy, as in asyncio: a cancelled handle stays in the heap, the heap is
told (``note_cancelled``), and the loop discards dead entries when they reach the top.
When dead entries are both numerous and most of the heap, ``compact`` rebuilds the heap
without them in O(n), so a program that arms and cancels timeouts in a loop (every
``asyncio.wait_for`` that succeeds) keeps the heap, and its log n, small.

Rejected approaches
-------------------
* Removing a cancelled timer at once: needs each handle to know its heap index (kept up
  to date on every swap) for an O(log n) removal; every push and pop pays for
  bookkeeping that only cancellation uses.
* A timer wheel (libuv keeps a heap too; tokio and Linux use wheels): cheaper to
  insert, but its resolution is fixed, and asyncio promises a deadline order at float
  precision, which a wheel would have to re-sort within each slot.
* heapq on a list: comparisons of handle objects go through ``__lt__`` in Python.

Invariants
----------
* Heap order: for every i > 0, slot (i-1)//2 is <= slot i by (when, seq).
* ``0 <= cancelled <= size``, counted by the loop: ``note_cancelled`` when a scheduled
  handle is cancelled, ``note_reaped`` when a cancelled one leaves the heap at the top.
* Each slot owns one reference to its handle.

The heap does not know what a handle is: the loop tells it which entries are dead
through the function it gives ``compact``.
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t

cdef enum:
    INITIAL_CAPACITY = 64
    # As asyncio (_MIN_SCHEDULED_TIMER_HANDLES / _MIN_CANCELLED_TIMER_HANDLES_FRACTION):
    # below 100 entries a rebuild costs more than skipping dead tops; above, rebuild
    # once dead entries are more than half.
    COMPACT_MIN_SIZE = 100


cdef inline bint slot_lt(TimerSlot *a, TimerSlot *b) noexcept nogil:
    if a.when < b.when:
        return True
    if a.when > b.when:
        return False
    return a.seq < b.seq


cdef class TimerHeap:

    def __cinit__(self):
        self.slots = <TimerSlot *>PyMem_Malloc(INITIAL_CAPACITY * sizeof(TimerSlot))
        if self.slots is NULL:
            raise MemoryError()
        self.capacity = INITIAL_CAPACITY
        self.size = 0
        self.next_seq = 0
        self.cancelled = 0

    def __dealloc__(self):
        if self.slots is not NULL:
            self.clear()
            PyMem_Free(self.slots)
            self.slots = NULL

    cdef int push(self, double when, object obj) except -1:
        """Owner P only. Insert obj with deadline when; O(log n)."""
        cdef TimerSlot *slots
        cdef TimerSlot item
        cdef Py_ssize_t i, parent
        if self.size == self.capacity:
            slots = <TimerSlot *>PyMem_Realloc(
                self.slots, 2 * self.capacity * sizeof(TimerSlot))
            if slots is NULL:
                raise MemoryError()
            self.slots = slots
            self.capacity *= 2
        Py_INCREF(obj)
        item.when = when
        item.seq = self.next_seq
        item.obj = <PyObject *>obj
        self.next_seq += 1
        # Sift up: move parents down until item's place is found.
        i = self.size
        self.size += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not slot_lt(&item, &self.slots[parent]):
                break
            self.slots[i] = self.slots[parent]
            i = parent
        self.slots[i] = item
        return 0

    cdef object pop(self):
        """Owner P only. Remove and return the earliest entry; the heap is non-empty."""
        cdef PyObject *top = self.slots[0].obj
        cdef TimerSlot last
        cdef Py_ssize_t i, child, n
        self.size -= 1
        n = self.size
        if n > 0:
            # Sift the last slot down from the root.
            last = self.slots[n]
            i = 0
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and slot_lt(&self.slots[child + 1], &self.slots[child]):
                    child += 1
                if not slot_lt(&self.slots[child], &last):
                    break
                self.slots[i] = self.slots[child]
                i = child
            self.slots[i] = last
        obj = <object>top
        Py_XDECREF(top)
        return obj

    cdef bint needs_compaction(self) noexcept:
        return self.size > COMPACT_MIN_SIZE and 2 * self.cancelled > self.size

    cdef int compact(self, timer_reap_fn dead) except -1:
        """Owner P only. Drop every entry for which dead(obj) is true; O(n)."""
        cdef Py_ssize_t i, j = 0, k, n = self.size
        cdef TimerSlot item
        cdef PyObject *p
        # Dead entries are released only once the heap is whole again: releasing one
        # may run a __del__ that schedules a timer on this very heap.
        cdef list graveyard = []
        for i in range(n):
            p = self.slots[i].obj
            if dead(<object>p):
                graveyard.append(<object>p)
                Py_XDECREF(p)
            else:
                self.slots[j] = self.slots[i]
                j += 1
        self.size = j
        self.cancelled = 0
        # Floyd's heapify: sift down every internal node, last first.
        i = j // 2 - 1
        while i >= 0:
            item = self.slots[i]
            k = i
            while True:
                child = 2 * k + 1
                if child >= j:
                    break
                if child + 1 < j and slot_lt(&self.slots[child + 1], &self.slots[child]):
                    child += 1
                if not slot_lt(&self.slots[child], &item):
                    break
                self.slots[k] = self.slots[child]
                k = child
            self.slots[k] = item
            i -= 1
        del graveyard
        return 0

    cdef void clear(self):
        """Owner P only. Drop every entry.

        Takes from the end, so the heap stays valid at each release (a release may run
        a __del__ that pushes).
        """
        cdef PyObject *p
        self.cancelled = 0
        while self.size > 0:
            self.size -= 1
            p = self.slots[self.size].obj
            self.slots[self.size].obj = NULL
            Py_XDECREF(p)

    # Python-level access, for tests and introspection.

    def __len__(self):
        return self.size

    def push_py(self, double when, obj):
        self.push(when, obj)

    def pop_py(self):
        if self.size == 0:
            raise IndexError("pop from an empty TimerHeap")
        return self.pop()

    def peek_when_py(self):
        if self.size == 0:
            raise IndexError("peek at an empty TimerHeap")
        return self.peek_when()

    def compact_py(self, dead):
        """Drop every entry for which dead(obj) is true (tests only: slow)."""
        global _py_dead
        _py_dead = dead
        try:
            self.compact(_call_py_dead)
        finally:
            _py_dead = None


cdef object _py_dead = None

cdef bint _call_py_dead(object obj) noexcept:
    try:
        return bool(_py_dead(obj))
    except BaseException:
        return False

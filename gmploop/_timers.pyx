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
* Each slot owns one reference to its handle. A slot pushed with ``push_hidden`` holds
  a handle hidden from the cycle collector, its pointer tagged: see 'Hidden items' in
  ``_runq.pyx`` (the same rule and helpers, ``_gchide.pxd``).
* Whenever Python code can run (a release that calls ``__del__``, a collection, the
  ``dead`` function given to ``compact``), slots ``0 .. size-1`` are a valid heap and
  own exactly one reference each. ``pop`` and ``clear`` move the heap before they
  release; ``compact`` asks ``dead`` about every entry before it moves any, moves them
  with no Python code running, and releases the dead ones last.

The heap does not know what a handle is: the loop tells it which entries are dead
through the function it gives ``compact``. If that function changes the heap (only a
Python-level one could), ``compact`` gives up for this time: compaction is an
optimisation, and positions asked about are no longer the positions in the heap.

Cycles
------
A timer handle leads back to its loop (a bound method, a task's wakeup), so a loop
dropped with timers pending is a cycle through the heap, which asyncio's list shows to
the cycle collector. The class holds one object attribute, ``_gc_anchor`` (always
None), so that Cython gives it GC slots, and at import the module points them at
``_traverse``/``_tp_clear`` below (the live slots, then Cython's own). The same as
``RunQueue``: see 'Cycles' in ``_runq.pyx``.
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t

from ._gchide cimport (
    gc_visitproc, gc_traverseproc, gc_inquiry, gc_TypeObject,
    PyObject_GC_IsTracked, hide, untag, reveal, show,
)

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
        self._insert(when, obj, False)
        return 0

    cdef int push_hidden(self, double when, object obj) except -1:
        """Owner P only. push(), for an obj that the caller hands to this heap alone,
        hidden from the cycle collector while it waits (see 'Hidden items' in
        _runq.pyx). obj must be a container the collector tracks."""
        self._insert(when, obj, True)
        return 0

    cdef int _insert(self, double when, object obj, bint hidden) except -1:
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
        item.obj = hide(<PyObject *>obj) if hidden else <PyObject *>obj
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
        top = reveal(top)
        obj = <object>top
        Py_XDECREF(top)
        return obj

    cdef bint needs_compaction(self) noexcept:
        return self.size > COMPACT_MIN_SIZE and 2 * self.cancelled > self.size

    cdef int compact(self, timer_reap_fn dead) except -1:
        """Owner P only. Drop every entry for which dead(obj) is true; O(n).

        Three passes, so that the heap is whole whenever Python code may run (see
        'Invariants' above): ask dead() about every entry, moving nothing; squeeze the
        dead ones out and heapify, with no Python code running; release them.
        """
        cdef Py_ssize_t i, j, k, child, n = self.size
        cdef uint64_t seq0 = self.next_seq
        cdef TimerSlot item
        cdef PyObject *p
        cdef PyObject **graves
        cdef Py_ssize_t ndead = 0
        if n == 0:
            self.cancelled = 0
            return 0
        # graves[i]: slot i's object if it is dead, else NULL. Allocated before any
        # entry moves, so running out of memory leaves the heap as it was.
        graves = <PyObject **>PyMem_Malloc(n * sizeof(PyObject *))
        if graves is NULL:
            raise MemoryError()
        try:
            for i in range(n):
                p = self.slots[i].obj
                if dead(<object>untag(p)):
                    graves[i] = p
                    ndead += 1
                else:
                    graves[i] = NULL
                if self.size != n or self.next_seq != seq0:
                    # dead() pushed or popped: the positions asked about are stale.
                    return 0
            if ndead == 0:
                self.cancelled = 0
                return 0
            j = 0
            for i in range(n):
                if graves[i] is NULL:
                    self.slots[j] = self.slots[i]
                    j += 1
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
            self.size = j
            self.cancelled = 0
            # The heap is whole: a __del__ run by a release may use it (push, even
            # compact again). graves is this call's own.
            for i in range(n):
                p = graves[i]
                if p is not NULL:
                    graves[i] = NULL
                    Py_XDECREF(reveal(p))
        finally:
            PyMem_Free(graves)
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
            Py_XDECREF(reveal(p))

    # Python-level access, for tests and introspection.

    def __len__(self):
        return self.size

    def push_py(self, double when, obj):
        self.push(when, obj)

    def push_hidden_py(self, double when, obj):
        """push_hidden (tests only); obj must be a tracked container nothing else
        queues."""
        if not PyObject_GC_IsTracked(<PyObject *>obj):
            raise TypeError("push_hidden_py() takes a container the collector tracks")
        self.push_hidden(when, obj)

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
        saved = _py_dead
        _py_dead = dead
        try:
            self.compact(_call_py_dead)
        finally:
            _py_dead = saved

    def clear_py(self):
        """Drop every entry (Python-level clear, for tests)."""
        self.clear()

    def note_cancelled_py(self):
        self.note_cancelled()

    def note_reaped_py(self):
        self.note_reaped()

    def needs_compaction_py(self):
        return self.needs_compaction()


cdef object _py_dead = None

cdef bint _call_py_dead(object obj) noexcept:
    try:
        return bool(_py_dead(obj))
    except BaseException:
        return False


cdef gc_traverseproc _cython_traverse = NULL
cdef gc_inquiry _cython_clear = NULL


cdef int _traverse(PyObject *o, gc_visitproc visit, void *arg) noexcept:
    """tp_traverse: the live slots, then Cython's own (see 'Cycles' above)."""
    cdef TimerSlot *slots = (<TimerHeap>o).slots
    cdef Py_ssize_t i
    cdef int r
    if slots is not NULL:
        for i in range((<TimerHeap>o).size):
            if slots[i].obj is not NULL:
                r = show(slots[i].obj, visit, arg)
                if r:
                    return r
    return _cython_traverse(o, visit, arg)


cdef int _tp_clear(PyObject *o) noexcept:
    """tp_clear: drop the entries, then Cython's own (see 'Cycles' above)."""
    if (<TimerHeap>o).slots is not NULL:
        (<TimerHeap>o).clear()
    return _cython_clear(o)


cdef _install_gc_slots():
    cdef gc_TypeObject *t = <gc_TypeObject *><PyObject *>TimerHeap
    global _cython_traverse, _cython_clear
    if _cython_traverse is NULL:
        _cython_traverse = t.tp_traverse
        _cython_clear = t.tp_clear
        if _cython_traverse is NULL or _cython_clear is NULL:
            raise SystemError("TimerHeap: Cython gave the type no GC slots")
        t.tp_traverse = _traverse
        t.tp_clear = _tp_clear


_install_gc_slots()

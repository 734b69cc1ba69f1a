"""The run queue: a P's FIFO of ready handles.

What it does
------------
asyncio's loop keeps its ready callbacks in a ``collections.deque``; every iteration
takes exactly the number that were queued when it began, so a callback scheduled
during an iteration runs in the next one, after I/O has been polled. ``RunQueue`` is
that deque without the Python layer: a power-of-two ring of strong references, with
``put`` at the tail and ``get`` at the head, each a few machine instructions.

Rejected approaches
-------------------
* A ``collections.deque`` reached from Cython: every append and popleft goes through
  a Python method lookup or the generic sequence protocol; the ring is several times
  cheaper and keeps the reference handling in one visible place.
* A fixed-size ring that spills to a global queue when full (Go's ``runqput``): within
  one P there is nowhere to spill to, and asyncio lets a loop queue any number of
  callbacks, so the ring grows instead. The bounded, stealable queue of unstarted work
  that several Ps share is a different structure with a different contract.
* A linked list through the handles: one pointer per handle saved, but the handles
  would then belong to one queue at a time, and a handle may legitimately be queued
  twice (``add_reader`` callbacks are).

Invariants
----------
* ``0 <= size <= mask + 1``; slots ``head .. head+size-1`` (mod capacity) each own one
  reference, every other slot is NULL.
* FIFO: ``get`` returns items in ``put`` order.
* The queue never shrinks below its largest size; a loop that once held a million
  callbacks keeps the memory (8 MiB), as a deque would not. ``clear`` does not free it.
* Whenever Python code can run (a release that calls ``__del__``, a collection), the
  fields above are consistent: a slot is cleared and ``head``/``size`` moved before
  its reference is dropped.

Cycles
------
A queued handle usually leads back to the loop that owns the queue (a bound method of
a transport, a task), so a loop dropped with callbacks still queued is a cycle through
the ring. ``collections.deque`` shows its items to the cycle collector; the ring must
too, or such a loop is never freed (nor warned about). Cython writes ``tp_traverse``
and ``tp_clear`` only for object attributes, so the class holds one, ``_gc_anchor``
(always None), to be given the GC slots, and at import the module points them at
``_traverse``/``_tp_clear`` below, which visit (or clear) the live slots and then call
Cython's own. ``tp_clear`` is ``clear``: it may run ``__del__`` that pushes, which
``clear`` survives (see 'Invariants'); tested by ``tests/unit/test_runq.py``
(``test_cycle_through_queue_is_collected``, ``test_del_pushing_during_dealloc_via_cycle``).

Hidden items
------------
A loop that queues 300,000 callbacks at once (or a server under a burst) holds as many
fresh handles, each a container the cycle collector must walk on every older-generation
collection: in a ``call_soon`` microbenchmark that walking was half the run. Yet a
handle that only the queue holds cannot be part of a cycle the queue does not show. So
``put_hidden`` takes an item that the caller hands over to this queue alone (a fresh
one-shot handle; never one that is or may be queued anywhere else) and untracks it:
the collector no longer sees the item, and the queue's ``tp_traverse`` shows it what
the item references instead (the item's own ``tp_traverse``, called with the
collector's visitor), so every cycle through the item is still found and, through the
queue's ``tp_clear``, broken. A hidden slot is marked by bit 0 of its pointer (objects
are at least 8-byte aligned; ``_gchide.pxd`` holds the helpers, shared with the timer
heap). An item leaves the queue tracked again (``get``,
``clear``), so outside the queue nothing is ever hidden. ``put`` (shared items, such as
a transport's read handle queued twice) hides nothing.

Rejected: making handles untracked types (``no_gc``): a handle a user keeps after it ran
would hide the cycle through its callback for good; and letting the loop untrack handles
itself would need the loop to know, at every exit from the queue, which ones it hid.

Races
-----
With the GIL, ``put`` from ``call_soon_threadsafe`` on another thread cannot interleave
with the owner's ``get``: neither releases the GIL, and neither calls back into Python
while the ring is inconsistent (a DECREF happens only after the slot is cleared).
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

cdef enum:
    INITIAL_CAPACITY = 256   # a guess: most iterations of a busy server queue fewer


from ._gchide cimport (
    gc_visitproc, gc_traverseproc, gc_inquiry, gc_TypeObject,
    PyObject_GC_IsTracked, hide, reveal, show,
)


cdef class RunQueue:

    def __cinit__(self):
        self.ring = <PyObject **>PyMem_Malloc(INITIAL_CAPACITY * sizeof(PyObject *))
        if self.ring is NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(INITIAL_CAPACITY):
            self.ring[i] = NULL
        self.head = 0
        self.size = 0
        self.mask = INITIAL_CAPACITY - 1

    def __dealloc__(self):
        if self.ring is not NULL:
            self.clear()
            PyMem_Free(self.ring)
            self.ring = NULL

    cdef int put(self, object h) except -1:
        """Owner P (or any thread holding the GIL). Append h at the tail."""
        if self.size > self.mask:
            self._grow()
        Py_INCREF(h)
        self.ring[(self.head + self.size) & self.mask] = <PyObject *>h
        self.size += 1
        return 0

    cdef int put_hidden(self, object h) except -1:
        """Owner P (or any thread holding the GIL). Append h, which the caller hands to
        this queue alone, hidden from the cycle collector while queued (see 'Hidden
        items'). h must be a container the collector tracks."""
        if self.size > self.mask:
            self._grow()
        Py_INCREF(h)
        self.ring[(self.head + self.size) & self.mask] = hide(<PyObject *>h)
        self.size += 1
        return 0

    cdef object get(self):
        """Owner P only. Remove and return the head; None when empty."""
        cdef PyObject *p
        if self.size == 0:
            return None
        p = self.ring[self.head]
        self.ring[self.head] = NULL
        self.head = (self.head + 1) & self.mask
        self.size -= 1
        # A hidden item comes back tracked. The slot's reference passes to the caller:
        # Cython's <object> cast takes a new one, so drop the slot's.
        p = reveal(p)
        h = <object>p
        Py_XDECREF(p)
        return h

    cdef void clear(self):
        """Owner P only. Drop every queued item (last references may run __del__)."""
        cdef PyObject *p
        while self.size:
            p = self.ring[self.head]
            self.ring[self.head] = NULL
            self.head = (self.head + 1) & self.mask
            self.size -= 1
            Py_XDECREF(reveal(p))
        self.head = 0

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = self.mask + 1
        cdef Py_ssize_t newcap = cap * 2
        cdef Py_ssize_t i
        cdef PyObject **ring = <PyObject **>PyMem_Malloc(newcap * sizeof(PyObject *))
        if ring is NULL:
            raise MemoryError()
        for i in range(self.size):
            ring[i] = self.ring[(self.head + i) & self.mask]
        for i in range(self.size, newcap):
            ring[i] = NULL
        PyMem_Free(self.ring)
        self.ring = ring
        self.head = 0
        self.mask = newcap - 1
        return 0

    # Python-level access, for tests and introspection (not used by the loop).

    def __len__(self):
        return self.size

    def push(self, h):
        """Append h (Python-level put, for tests)."""
        self.put(h)

    def push_hidden(self, h):
        """Append h hidden from the cycle collector (Python-level put_hidden, for
        tests); h must be a tracked container that nothing else queues."""
        if not PyObject_GC_IsTracked(<PyObject *>h):
            raise TypeError("push_hidden() takes a container the collector tracks")
        self.put_hidden(h)

    def pop(self):
        """Remove and return the head; IndexError when empty."""
        if self.size == 0:
            raise IndexError("pop from an empty RunQueue")
        return self.get()

    def clear_py(self):
        """Drop every queued item (Python-level clear, for tests)."""
        self.clear()

    @property
    def capacity(self):
        return self.mask + 1


cdef gc_traverseproc _cython_traverse = NULL
cdef gc_inquiry _cython_clear = NULL


cdef int _traverse(PyObject *o, gc_visitproc visit, void *arg) noexcept:
    """tp_traverse: the live slots, then Cython's own (see 'Cycles' above)."""
    cdef PyObject **ring = (<RunQueue>o).ring
    cdef Py_ssize_t head = (<RunQueue>o).head
    cdef Py_ssize_t mask = (<RunQueue>o).mask
    cdef Py_ssize_t i
    cdef PyObject *p
    cdef int r
    if ring is not NULL:
        for i in range((<RunQueue>o).size):
            p = ring[(head + i) & mask]
            if p is not NULL:
                r = show(p, visit, arg)
                if r:
                    return r
    return _cython_traverse(o, visit, arg)


cdef int _tp_clear(PyObject *o) noexcept:
    """tp_clear: drop the queued items, then Cython's own (see 'Cycles' above)."""
    if (<RunQueue>o).ring is not NULL:
        (<RunQueue>o).clear()
    return _cython_clear(o)


cdef _install_gc_slots():
    cdef gc_TypeObject *t = <gc_TypeObject *><PyObject *>RunQueue
    global _cython_traverse, _cython_clear
    if _cython_traverse is NULL:
        _cython_traverse = t.tp_traverse
        _cython_clear = t.tp_clear
        if _cython_traverse is NULL or _cython_clear is NULL:
            raise SystemError("RunQueue: Cython gave the type no GC slots")
        t.tp_traverse = _traverse
        t.tp_clear = _tp_clear


_install_gc_slots()

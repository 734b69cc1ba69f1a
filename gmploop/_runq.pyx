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

StealQueue
----------
The other queue of a P: a *bounded* ring of work that is not yet bound to any loop
(a coroutine given to ``gmploop.go`` before its Task exists; an accepted connection
before its protocol exists), which an idle P may take half of. It is Go's ``runq``
with ``runqput``/``runqget``/``runqsteal`` and tokio's ``queue::Local``/``Steal``:

* ``put`` and ``get``: the owner P only. ``put`` says False when the ring is full and
  leaves the item with the caller (Go moves half to a global queue there; the caller
  decides, see ``gmploop/_go.py``).
* ``steal_half_into(dst)``: any P, as the owner of ``dst``; moves half of this
  queue (rounded up, at most what ``dst`` has room for) to ``dst``.

The core is C (``includes/gp_stealq.h``), with C11 atomics whose orderings are
written next to each of them, and it never touches a Python object, so that it is
correct without the GIL: on a free-threaded build, or called from ``nogil`` code.
References ride with the pointers: ``put`` stores a new reference, ``get`` hands it
to the caller, a steal moves it from one ring to another without a refcount change.

Rejected: a mutex (a P blocked in the kernel while a thief holds it); one lock-free
deque per P shared with the RunQueue (asyncio's FIFO order would then depend on
thieves); an unbounded queue (Go and tokio bound theirs so that stealing is a copy of
at most half a ring).

Ps that are processes share their queues through memory mapped before the fork
(``SharedStealQueues``): the same C functions, on raw integer items (an fd and a
listener id; references cannot cross processes), and a two-step steal
(``peek_half`` then ``commit``) for a thief that must act on the items before it may
own them (see 'Connection stealing' in _runtime.py).

Views and the collector
-----------------------
A view (``SharedStealQueues.queue(i)``) points into the mapping, so it must keep the
``SharedStealQueues`` (and so the mapping) alive for as long as it exists. A view
reachable only from cyclic garbage (a loop holding it, freed by a collection) gets
``tp_clear`` before its ``tp_dealloc``, and Cython's ``tp_clear`` sets every object
attribute to None: an attribute holding the mapping would let it go while the view
still points into it. So ``_mem`` is a bare ``PyObject *``, a strong reference that
the collector neither sees nor clears, dropped by ``__dealloc__`` only (hiding it is
safe: ``SharedStealQueues`` refers to nothing but its mmap, so no cycle runs through
it). A view is told apart by ``_mem``, never freed, and its ``tp_clear`` does not
drain it: its items are fds that the owner's ``ConnHandoff`` also holds, and other
processes read the same ring. (Before this rule ``_mem`` was an attribute, and
``__dealloc__`` took a cleared one for "owns its ring": it drained unmapped memory and
passed a pointer into the mapping to ``free``, a P's crash in the collector;
``tests/unit/test_runq.py``, ``test_shared_view_freed_by_the_collector``.)

With the GIL (every Python-level call holds it) the queue cannot be exercised
concurrently from Python threads; the test harness (``_stress_owner``,
``_stress_thief``) runs the same C functions in ``nogil`` sections on integer items,
so that threads really race on two cores (``tests/unit/test_runq.py``,
``test_steal_queue_conservation_nogil``).

Threads and the collector
-------------------------
On a free-threaded build the owner and a thief of an object queue are two threads
running at once (``gmploop/_threadrt.py``); nothing in the C core changes, because it
never relied on the GIL. What the threads add:

* References: an item's reference is taken by the owner's ``put`` and released by
  whichever thread ends up with it; CPython's biased reference counting lets any
  thread release a reference another created (the object's shared count takes it).
* Visibility: the thief reads an item only after its acquire load of ``tail``, which
  pairs with the owner's release store in ``put``, so the object's fields written
  before ``put`` are visible to the thief (the same edge the slot itself needs).
* The cycle collector stops the world, but only threads attached to the interpreter;
  a thread inside ``with nogil`` keeps running. A steal that ran detached could move
  items between the collector's walk of the victim and its walk of the thief, and the
  collector would count the same reference twice (and could free a live object).
  So an object queue's steal runs attached (it is a few loads and one CAS); only the
  raw queues of the harness and of the process runtime, which hold no references,
  steal without the interpreter.

Races
-----
With the GIL, ``put`` from ``call_soon_threadsafe`` on another thread cannot interleave
with the owner's ``get``: neither releases the GIL, and neither calls back into Python
while the ring is inconsistent (a DECREF happens only after the slot is cleared).
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport uint32_t, uintptr_t
from libc.stdlib cimport malloc, free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

cdef enum:
    INITIAL_CAPACITY = 256   # a guess: most iterations of a busy server queue fewer
    # An empty ring above this many slots goes back to INITIAL_CAPACITY when its loop
    # is about to wait (RunQueue.shrink): 16,384 slots are 128 KiB, malloc's default
    # threshold for memory it gives back to the kernel when freed.
    SHRINK_ABOVE = 16384
    STEAL_CAPACITY = 256     # Go's runq size; tests pass a smaller one to reach edges


cdef extern from "gp_stealq.h" nogil:
    gp_stealq *gp_stealq_new(uint32_t cap)
    void gp_stealq_free(gp_stealq *q)
    uint32_t gp_stealq_len(gp_stealq *q)
    int gp_stealq_put(gp_stealq *q, void *item)
    void *gp_stealq_get(gp_stealq *q)
    uint32_t gp_stealq_steal_half_into(gp_stealq *src, gp_stealq *dst)
    void *gp_stealq_at(gp_stealq *q, uint32_t i)
    void gp_stealq_close(gp_stealq *q)
    int gp_stealq_is_closed(gp_stealq *q)
    size_t gp_stealq_shared_size(uint32_t cap)
    gp_stealq *gp_stealq_init_in(void *mem, uint32_t cap)
    uint32_t gp_stealq_head(gp_stealq *q)
    uint32_t gp_stealq_peek_half(gp_stealq *q, void **buf, uint32_t max, uint32_t *head)
    int gp_stealq_commit(gp_stealq *q, uint32_t h, uint32_t n)


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
        return self._resize((self.mask + 1) * 2)

    cdef int _resize(self, Py_ssize_t newcap) except -1:
        """A new ring of newcap slots (a power of two, at least size) holding the
        queued items in order from slot 0."""
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

    cdef int shrink(self) except -1:
        """Owner P only. An empty ring that a burst grew past SHRINK_ABOVE slots goes
        back to INITIAL_CAPACITY: a burst of 100,000 tasks would otherwise keep 1 MiB
        of empty ring for the life of the loop (10 bytes per idle task). The loop
        calls it only before a wait, so a loop that keeps its queue long pays nothing,
        and one that bursts now and then reallocates once per burst."""
        if self.size != 0 or self.mask < SHRINK_ABOVE:
            return 0
        try:
            self._resize(INITIAL_CAPACITY)
        except MemoryError:
            pass                        # keep the big ring: it still works
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

    def shrink_py(self):
        """Python-level shrink, for tests."""
        self.shrink()

    @property
    def capacity(self):
        return self.mask + 1


cdef class StealQueue:

    def __cinit__(self, Py_ssize_t capacity=STEAL_CAPACITY, *, bint raw=False,
                  SharedStealQueues _shared=None, Py_ssize_t _index=0):
        if _shared is not None:
            # A view of queue _index of a shared mapping (SharedStealQueues.queue).
            self.q = _shared.at(_index)
            Py_INCREF(_shared)
            self._mem = <PyObject *>_shared
            self.raw = True
            self.capacity = _shared.capacity
            return
        if capacity < 2 or capacity & (capacity - 1) or capacity > (1 << 30):
            raise ValueError(f"capacity must be a power of two >= 2, not {capacity}")
        self.q = gp_stealq_new(<uint32_t>capacity)
        if self.q is NULL:
            raise MemoryError()
        self.raw = raw
        self.capacity = capacity

    def __dealloc__(self):
        if self._mem is not NULL:
            # A view: the ring is the mapping's ('Views and the collector' above).
            self.q = NULL
            Py_XDECREF(self._mem)
            self._mem = NULL
        if self.q is not NULL:
            self._drop_all()
            gp_stealq_free(self.q)
        self.q = NULL

    cdef void _drop_all(self):
        """Owner only. Drop every queued item (a release may run __del__, which finds
        the queue consistent: the item left the ring first)."""
        cdef void *p
        while True:
            p = gp_stealq_get(self.q)
            if p is NULL:
                break
            if not self.raw:
                Py_XDECREF(<PyObject *>p)

    cdef bint put(self, object item) except -1:
        """Owner P only. Append item; False (item not taken) when the ring is full."""
        if self.raw:
            raise TypeError("a raw StealQueue holds integers (test harness only)")
        Py_INCREF(item)
        if gp_stealq_put(self.q, <void *>item) < 0:
            Py_XDECREF(<PyObject *>item)
            return False
        return True

    cdef object get(self):
        """Owner P only. Remove and return the oldest item; None when empty."""
        cdef void *p = gp_stealq_get(self.q)
        if p is NULL:
            return None
        item = <object>p
        Py_XDECREF(<PyObject *>p)     # the ring's reference passes to the caller
        return item

    cdef Py_ssize_t steal_half_into(self, StealQueue dst) except -1:
        """Any P, as the owner of dst. Move half of this queue's items to dst; return
        how many moved."""
        cdef uint32_t n
        if dst.raw != self.raw:
            raise TypeError("cannot steal between a raw and an object StealQueue")
        if dst is self:
            raise ValueError("a queue cannot steal from itself")
        if self.raw:
            with nogil:
                n = gp_stealq_steal_half_into(self.q, dst.q)
        else:
            # Object items: stay attached to the interpreter (see 'Threads and the
            # collector' above).
            n = gp_stealq_steal_half_into(self.q, dst.q)
        self.steals += n
        return n

    # Python-level access, for tests and for gmploop.go (not on a hot path).

    def __len__(self):
        return gp_stealq_len(self.q)

    def push(self, item):
        """Owner only. Append item (a non-zero integer for a raw queue); False when
        the ring is full."""
        cdef uintptr_t v
        if self.raw:
            v = item
            if v == 0:
                raise ValueError("a raw StealQueue cannot hold 0")
            return gp_stealq_put(self.q, <void *>v) == 0
        return self.put(item)

    @property
    def head(self):
        """Where the owner's next get starts; a watcher that sees it stand still while
        items wait knows the owner is not taking them."""
        return gp_stealq_head(self.q)

    def peek_half(self, Py_ssize_t most):
        """Any thread or process, raw queues: (items, head) for half of the items
        (rounded up, at most `most`), not taken; see commit."""
        cdef void *buf[256]
        cdef uint32_t h = 0, n, i
        if not self.raw:
            raise TypeError("peek_half is for raw queues (the items are copied)")
        if most > 256:
            most = 256
        n = gp_stealq_peek_half(self.q, buf, <uint32_t>most, &h)
        return [<uintptr_t>buf[i] for i in range(n)], h

    def commit(self, uint32_t head, uint32_t n):
        """Take the n items peek_half returned at head, iff no one took any since."""
        if gp_stealq_commit(self.q, head, n):
            self.steals += n
            return True
        return False

    def pop(self):
        """Owner only. The oldest item; IndexError when empty."""
        cdef void *p = gp_stealq_get(self.q)
        if p is NULL:
            raise IndexError("pop from an empty StealQueue")
        if self.raw:
            return <uintptr_t>p
        item = <object>p
        Py_XDECREF(<PyObject *>p)
        return item

    def steal_half(self, StealQueue dst):
        """As the owner of dst: move half of this queue to dst; the count moved."""
        return self.steal_half_into(dst)

    # The nogil harness (raw queues only): see 'StealQueue' above.

    def _stress_owner(self, Py_ssize_t first, Py_ssize_t count, int get_every):
        """Owner: put first .. first+count-1 (as integers), taking one item back every
        get_every puts and whenever the ring is full; then take what is left and
        close. Returns the items this owner took. Runs without the GIL."""
        cdef uintptr_t *got
        cdef Py_ssize_t ngot = 0, i
        cdef void *p
        if not self.raw:
            raise TypeError("the stress harness needs a raw StealQueue")
        got = <uintptr_t *>malloc((count + 1) * sizeof(uintptr_t))
        if got is NULL:
            raise MemoryError()
        try:
            with nogil:
                for i in range(first, first + count):
                    while gp_stealq_put(self.q, <void *><uintptr_t>i) < 0:
                        p = gp_stealq_get(self.q)
                        if p is not NULL:
                            got[ngot] = <uintptr_t>p
                            ngot += 1
                    if get_every > 0 and (i - first) % get_every == get_every - 1:
                        p = gp_stealq_get(self.q)
                        if p is not NULL:
                            got[ngot] = <uintptr_t>p
                            ngot += 1
                while True:
                    p = gp_stealq_get(self.q)
                    if p is NULL:
                        break
                    got[ngot] = <uintptr_t>p
                    ngot += 1
                gp_stealq_close(self.q)
            return [got[i] for i in range(ngot)]
        finally:
            free(got)

    def _stress_thief(self, StealQueue src, Py_ssize_t most):
        """Thief (self is its own raw queue): steal half of src into self and take
        it all, until src is closed and empty. Returns the items taken and the number
        of successful steals. Runs without the GIL."""
        cdef uintptr_t *got
        cdef Py_ssize_t ngot = 0, nsteals = 0, i
        cdef uint32_t n
        cdef void *p
        if not (self.raw and src.raw):
            raise TypeError("the stress harness needs raw StealQueues")
        got = <uintptr_t *>malloc((most + 1) * sizeof(uintptr_t))
        if got is NULL:
            raise MemoryError()
        try:
            with nogil:
                while True:
                    n = gp_stealq_steal_half_into(src.q, self.q)
                    if n:
                        nsteals += 1
                    while True:
                        p = gp_stealq_get(self.q)
                        if p is NULL:
                            break
                        if ngot < most:
                            got[ngot] = <uintptr_t>p
                        ngot += 1
                    if n == 0 and gp_stealq_is_closed(src.q) and gp_stealq_len(src.q) == 0:
                        break
            if ngot > most:
                raise RuntimeError(f"thief took {ngot} items, more than the {most} "
                                   f"that exist")
            return [got[i] for i in range(ngot)], nsteals
        finally:
            free(got)


cdef class SharedStealQueues:

    def __cinit__(self, Py_ssize_t count, Py_ssize_t capacity=STEAL_CAPACITY):
        import mmap
        cdef Py_ssize_t i
        if count < 1:
            raise ValueError("count must be >= 1")
        if capacity < 2 or capacity & (capacity - 1) or capacity > (1 << 20):
            raise ValueError(f"capacity must be a power of two >= 2, not {capacity}")
        self.count = count
        self.capacity = capacity
        self._stride = (gp_stealq_shared_size(<uint32_t>capacity) + 63) & ~(<size_t>63)
        # Anonymous and MAP_SHARED (mmap's default): children forked later share it.
        self._map = mmap.mmap(-1, self._stride * count)
        PyObject_GetBuffer(self._map, &self._view, PyBUF_WRITABLE)
        self._has_view = True
        for i in range(count):
            if gp_stealq_init_in(<char *>self._view.buf + i * self._stride,
                                 <uint32_t>capacity) is NULL:
                raise SystemError("gp_stealq_init_in failed")

    def __dealloc__(self):
        if self._has_view:
            PyBuffer_Release(&self._view)
            self._has_view = False

    cdef gp_stealq *at(self, Py_ssize_t i) except NULL:
        if not 0 <= i < self.count:
            raise IndexError(f"no queue {i} of {self.count}")
        return <gp_stealq *>(<char *>self._view.buf + i * self._stride)

    def queue(self, Py_ssize_t i):
        """A raw StealQueue view of queue i (kept valid by a reference to self)."""
        return StealQueue(_shared=self, _index=i)


cdef gc_traverseproc _cython_traverse = NULL
cdef gc_inquiry _cython_clear = NULL
cdef gc_traverseproc _cython_steal_traverse = NULL
cdef gc_inquiry _cython_steal_clear = NULL


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


cdef int _steal_traverse(PyObject *o, gc_visitproc visit, void *arg) noexcept:
    """StealQueue's tp_traverse: as _traverse (the collector runs with the GIL, and
    an object queue is only used with it held)."""
    cdef gp_stealq *q = (<StealQueue>o).q
    cdef uint32_t i, n
    cdef PyObject *p
    cdef int r
    if q is not NULL and not (<StealQueue>o).raw:
        n = gp_stealq_len(q)
        for i in range(n):
            p = <PyObject *>gp_stealq_at(q, i)
            if p is not NULL:
                r = visit(p, arg)
                if r:
                    return r
    return _cython_steal_traverse(o, visit, arg)


cdef int _steal_tp_clear(PyObject *o) noexcept:
    """StealQueue's tp_clear: drop the items of an object queue (the references
    through which cycles run), then Cython's own. A raw queue holds no references,
    and a view's items belong to every process sharing the mapping: both are left
    alone ('Views and the collector' above)."""
    cdef StealQueue q = <StealQueue>o
    if q.q is not NULL and not q.raw:
        q._drop_all()
    return _cython_steal_clear(o)


cdef _install_gc_slots():
    cdef gc_TypeObject *t = <gc_TypeObject *><PyObject *>RunQueue
    cdef gc_TypeObject *st = <gc_TypeObject *><PyObject *>StealQueue
    global _cython_traverse, _cython_clear, _cython_steal_traverse, _cython_steal_clear
    if _cython_traverse is NULL:
        _cython_traverse = t.tp_traverse
        _cython_clear = t.tp_clear
        _cython_steal_traverse = st.tp_traverse
        _cython_steal_clear = st.tp_clear
        if (_cython_traverse is NULL or _cython_clear is NULL or
                _cython_steal_traverse is NULL or _cython_steal_clear is NULL):
            raise SystemError("_runq: Cython gave the queue types no GC slots")
        t.tp_traverse = _traverse
        t.tp_clear = _tp_clear
        st.tp_traverse = _steal_traverse
        st.tp_clear = _steal_tp_clear


_install_gc_slots()

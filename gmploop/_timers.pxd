from cpython.object cimport PyObject
from libc.stdint cimport uint64_t, uintptr_t


ctypedef struct TimerSlot:
    double when
    uint64_t seq            # insertion order: equal deadlines fire FIFO
    PyObject *obj           # strong reference; bit 0 set when hidden

# Called on each entry by compact(): return True if the entry is dead (cancelled), and
# the heap then drops it. Must not raise.
ctypedef bint (*timer_reap_fn)(object) noexcept


cdef class TimerHeap:
    """A P's timers (Go: a P's timer heap), min-ordered by (when, seq).

    Owner P only.
    """
    cdef TimerSlot *slots
    cdef Py_ssize_t size
    cdef Py_ssize_t capacity
    cdef uint64_t next_seq
    cdef readonly Py_ssize_t cancelled   # entries known dead but still in the heap
    cdef object _gc_anchor               # always None: gives the type GC slots, which
                                         # _timers.pyx points at the slots ('Cycles')

    cdef int push(self, double when, object obj) except -1
    cdef int push_hidden(self, double when, object obj) except -1
    cdef int _insert(self, double when, object obj, bint hidden) except -1
    cdef object pop(self)
    cdef inline double peek_when(self) noexcept:
        return self.slots[0].when
    cdef inline object peek(self):
        # Bit 0 of a slot's pointer marks a hidden entry ('Hidden items', _runq.pyx).
        return <object>(<PyObject *>(<uintptr_t>self.slots[0].obj & ~<uintptr_t>1))
    cdef inline void note_cancelled(self) noexcept:
        self.cancelled += 1
    cdef inline void note_reaped(self) noexcept:
        if self.cancelled > 0:
            self.cancelled -= 1
    cdef bint needs_compaction(self) noexcept
    cdef int compact(self, timer_reap_fn dead) except -1
    cdef void clear(self)

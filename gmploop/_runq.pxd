from cpython.object cimport PyObject


cdef class RunQueue:
    """A P's queue of ready handles (Go: a P's local run queue, runq).

    Owner P only: nothing here is safe to call from another thread without the GIL.
    """
    cdef PyObject **ring        # capacity slots; [head, head+size) hold strong refs,
                                # bit 0 set on hidden ones ('Hidden items')
    cdef Py_ssize_t head
    cdef Py_ssize_t size
    cdef Py_ssize_t mask        # capacity - 1; capacity is a power of two
    cdef object _gc_anchor      # always None: gives the type GC slots, which _runq.pyx
                                # points at the ring (see 'Cycles' in _runq.pyx)

    cdef int put(self, object h) except -1
    cdef int put_hidden(self, object h) except -1
    cdef object get(self)
    cdef void clear(self)
    cdef int _grow(self) except -1
    cdef int _resize(self, Py_ssize_t newcap) except -1
    cdef int shrink(self) except -1


cdef extern from "gp_stealq.h" nogil:
    ctypedef struct gp_stealq:
        pass


cdef class StealQueue:
    """A P's bounded queue of unstarted work (Go: runq with runqsteal; tokio: the
    Local/Steal queue). put/get: owner P only; steal_half_into: any P, as the owner
    of the destination. See 'StealQueue' in _runq.pyx."""
    cdef gp_stealq *q           # the lock-free core (includes/gp_stealq.h)
    cdef readonly bint raw      # holds plain integers (the nogil test harness)
    cdef readonly Py_ssize_t capacity
    cdef readonly unsigned long long steals   # items taken from this queue by thieves
    cdef PyObject *_mem         # NULL, or the SharedStealQueues whose memory q is in:
                                # a strong reference the collector neither sees nor
                                # clears ('Views and the collector' in _runq.pyx)
    cdef object _gc_anchor      # always None: gives the type GC slots (see 'Cycles')

    cdef bint put(self, object item) except -1
    cdef object get(self)
    cdef Py_ssize_t steal_half_into(self, StealQueue dst) except -1
    cdef void _drop_all(self)


cdef class SharedStealQueues:
    """Raw StealQueues in one MAP_SHARED mapping, for Ps that are processes: made
    before fork, so every P sees them at one address (see 'StealQueue')."""
    cdef object _map
    cdef Py_buffer _view
    cdef bint _has_view
    cdef size_t _stride
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t capacity
    cdef gp_stealq *at(self, Py_ssize_t i) except NULL

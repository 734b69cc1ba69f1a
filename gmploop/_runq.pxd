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

from ._timers cimport TimerHeap


cdef class Handle:
    """A callback and its arguments, queued to run once (Go: a G; asyncio: Handle).

    Created by the owner P (call_soon) or, under the GIL, any thread
    (call_soon_threadsafe); run only by the owner P.
    """
    cdef object callback
    cdef object args                 # tuple, or None when cancelled/finished
    cdef object context              # contextvars.Context the callback runs in, or None
                                     # while the handle holds only _vars
    cdef object _vars                # the captured variables (a Context's mapping) when
                                     # context is None ('Contexts without copies')
    cdef object loop
    cdef bint _cancelled
    cdef object _repr                # repr frozen at cancel in debug mode
    cdef public object _source_traceback
    cdef object __weakref__

    cdef int run(self) except -1
    cdef int _run_in(self, object callback, object args, Py_ssize_t nargs,
                     object context) except -1
    cdef object _own_context(self)


cdef class TimerHandle(Handle):
    """A Handle due at a loop.time() deadline (asyncio: TimerHandle)."""
    cdef readonly double _when
    cdef bint _scheduled             # in the heap (not yet popped or compacted away)
    cdef TimerHeap heap              # the heap that holds it, for lazy cancellation

cdef Handle new_handle(object callback, object args, object context, object loop)
cdef TimerHandle new_timer(double when, object callback, object args, object context,
                           object loop)
cdef bint reap_timer(object obj) noexcept

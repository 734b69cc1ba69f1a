from ._runq cimport RunQueue
from ._timers cimport TimerHeap
from ._poller cimport Poller, PollDesc
from ._handles cimport Handle, TimerHandle


cdef class Loop:
    """One P: a run queue, a timer heap and a netpoller, run by one thread at a time."""
    cdef RunQueue ready
    cdef TimerHeap timers
    cdef Poller poller

    cdef bint _closed
    cdef bint _stopping
    cdef bint _debug
    cdef object _thread_id               # threading.get_ident() of the running thread
    cdef readonly double _clock_resolution
    cdef public double slow_callback_duration
    cdef object _current_handle           # debug mode: the handle being run

    cdef object _exception_handler
    cdef object _task_factory
    cdef object _default_executor
    cdef bint _executor_shutdown_called
    cdef object _asyncgens                # weakref.WeakSet of live async generators
    cdef bint _asyncgens_shutdown_called
    cdef bint _coroutine_origin_tracking_enabled
    cdef object _coroutine_origin_tracking_saved_depth

    cdef dict _signal_handlers            # signum -> Handle
    cdef object _ssock                    # signal wakeup pair: Python writes signal
    cdef object _csock                    # numbers into _csock, the loop reads _ssock

    # Counters (see stats()): written by the owner P only.
    cdef readonly unsigned long long _n_iterations
    cdef readonly unsigned long long _n_callbacks
    cdef readonly unsigned long long _n_io_events
    cdef readonly unsigned long long _n_timers_fired

    cdef object __weakref__

    cdef int _run_once(self) except -1
    cdef int _check_closed(self) except -1
    cdef int _check_thread(self) except -1
    cdef Handle _call_soon(self, object callback, object args, object context)
    cdef TimerHandle _call_at(self, double when, object callback, object args,
                              object context)
    cdef Handle _add_io(self, int fd, bint writing, object callback, object args)
    cdef bint _remove_io(self, int fd, bint writing) except -1
    cdef int _run_handle_debug(self, Handle h) except -1
    cdef int _handle_signal(self, int sig) except -1
    cdef PollDesc _sock_desc(self, object sock, int fd)
    cdef _drop_sock_desc(self, PollDesc pd)
    cdef PollDesc _level_desc(self, int fd)
    cdef PollDesc _edge_desc(self, int fd, object owner)
    cdef int _release_desc(self, PollDesc pd) except -1
    # The P's receive buffer: transports read into it and hand the protocol a copy
    # (one callback at a time, so one buffer serves every transport of the P).
    cdef char *_rbuf
    cdef Py_ssize_t _rbuf_size
    cdef char *_recv_buffer(self) except NULL
    cdef int _flow_control(self, object protocol, bint pause, object transport) except -1

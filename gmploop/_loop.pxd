from ._runq cimport RunQueue
from ._timers cimport TimerHeap
from ._poller cimport Poller, PollDesc
from ._handles cimport Handle, TimerHandle


cdef enum LoopState:
    # What a P is doing, as sysmon and stats() see it (see 'Observability' in _loop.pyx).
    LOOP_STOPPED = 0      # not running (run_forever not entered, or returned)
    LOOP_POLLING = 1      # blocked in the poller, waiting for events or a timer
    LOOP_RUNNING = 2      # running callbacks, or the loop's own work between polls


cdef class Loop:
    """One P: a run queue, a timer heap and a netpoller, run by one thread at a time."""
    cdef RunQueue ready
    cdef TimerHeap timers
    cdef Poller poller

    cdef bint _closed
    cdef bint _stopping
    cdef bint _debug
    cdef object _thread_id               # threading.get_ident() of the running thread
    cdef unsigned long _owner_ident       # the thread that made or last ran the loop
                                          # (a C field: read by any thread, see 'Threads')
    cdef object _inbox                    # deque: handles other threads queued (see
                                          # 'Threads'); append: any thread; pop: owner
    cdef readonly double _clock_resolution
    cdef public double slow_callback_duration
    cdef object _current_handle           # the handle being run (None between batches)

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
    cdef int _take_inbox(self) except -1
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

    # Observability: see 'Observability' in _loop.pyx. Written by the owner P only;
    # read by sysmon and stats() from any thread, under the GIL.
    cdef LoopState _state
    cdef public bint _observed            # publish the current handle, time the polls
    cdef public double sysmon_threshold   # seconds; 0.0: sysmon leaves this loop alone
    cdef public object _monitor           # sysmon's record of this loop, or None
    cdef public int _p_index              # the P's index (the runtime sets it)
    cdef public unsigned long long _n_steals  # the runtime counts its steals here
    cdef public object _steal_queue       # the runtime's stealable queue (len()), or None
    # written: sysmon (_sysmon_claim) and owner P (_slow_callback_ended), under the GIL
    cdef unsigned long long _slow_seq     # _n_callbacks of the callback sysmon flagged
    cdef object _slow_incident            # sysmon's record of that incident
    cdef readonly unsigned long long _n_slow
    cdef double _run_since                # gp_monotonic() when run_forever began
    cdef double _run_time                 # seconds in run_forever, earlier runs
    cdef double _poll_since               # start of the current blocking poll, or 0
    cdef double _poll_time                # seconds blocked in the poller, ever
    cdef int _slow_callback_ended(self) except -1

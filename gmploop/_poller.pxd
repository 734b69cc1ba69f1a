from libc.stdint cimport uint32_t, uint64_t


cdef extern from "gp_poll.h" nogil:
    const char *GP_BACKEND
    enum:
        GP_IN
        GP_OUT
        GP_ERR
        GP_HUP
        GP_RDHUP
        GP_EDGE
        GP_EXCL
    ctypedef struct gp_event:
        uint64_t tag
        uint32_t flags
    int gp_poll_create()
    int gp_poll_add(int pfd, int fd, uint32_t interest, uint64_t tag)
    int gp_poll_mod(int pfd, int fd, uint32_t old_interest, uint32_t interest, uint64_t tag)
    int gp_poll_del(int pfd, int fd, uint32_t old_interest)
    int gp_poll_wait(int pfd, gp_event *buf, int maxevents, int timeout_ms)
    int gp_wakeup_open(int *rfd, int *wfd)
    int gp_wakeup_signal(int wfd)
    void gp_wakeup_drain(int rfd)
    double gp_monotonic()


cdef enum PollMode:
    PD_UNREGISTERED = 0   # known to the poller, not in the kernel's set
    PD_LEVEL = 1          # add_reader/add_writer: level-triggered, interest follows callbacks
    PD_EDGE = 2           # gmploop's own transports: edge-triggered, both directions, once


cdef class PollDesc:
    """One fd known to the poller (Go: pollDesc). Owner P only."""
    cdef readonly int fd
    cdef readonly uint32_t gen          # tag generation; see 'Stale events' in _poller.pyx
    cdef readonly PollMode mode
    cdef readonly uint32_t interest     # GP_IN/GP_OUT (and GP_EDGE) as the kernel has them
    cdef public object reader           # level mode: what to run when readable (opaque here)
    cdef public object writer           # level mode: what to run when writable
    cdef public object owner            # edge mode: the transport that owns the fd
    cdef public uint32_t seen           # edge mode: every flag reported since set_edge


cdef class Poller:
    """The netpoller of one P: an epoll (or kqueue) set and its doorbell. Owner P only,
    except wakeup(), which any thread may call."""
    cdef int pfd
    cdef int wake_rfd
    cdef int wake_wfd
    cdef list descs                     # fd -> PollDesc or None
    cdef uint32_t next_gen
    cdef gp_event *events
    cdef int maxevents
    cdef readonly Py_ssize_t registered # fds in the kernel's set (the doorbell excluded)
    cdef readonly unsigned long long ctl_calls  # epoll_ctl/kevent changes made, ever
    cdef unsigned long fork_epoch       # the fork epoch the kernel set belongs to

    cdef PollDesc lookup(self, int fd)
    cdef PollDesc desc_for(self, int fd)
    cdef int set_level(self, PollDesc pd, uint32_t interest) except -1
    cdef int set_edge(self, PollDesc pd) except -1
    cdef int forget(self, PollDesc pd) except -1
    cdef int wait(self, int timeout_ms) except -1
    cdef PollDesc event_desc(self, int i)
    cdef inline uint32_t event_flags(self, int i) noexcept:
        return self.events[i].flags
    cdef int wakeup(self) except -1
    cdef int close(self) except -1
    cdef _close_fds(self)
    # Added later: kept after the original methods, so that the vtable slots of those
    # stay where modules built against the earlier declaration expect them.
    cdef uint32_t new_gen(self) noexcept
    cdef int _register_afresh(self, PollDesc pd, uint32_t interest) except -1
    cdef bint set_edge_exclusive(self, PollDesc pd) except -1

"""The netpoller: one P's view of the kernel's readiness notifications.

What it does
------------
A ``Poller`` owns an epoll instance (kqueue on macOS and the BSDs; ``gp_poll.h`` hides
which) and a doorbell that another thread rings to interrupt a wait. Every fd the loop
watches has one ``PollDesc`` (Go's pollDesc): its registration as the kernel has it,
and what the loop wants done when it becomes ready. ``wait`` blocks, with the GIL
released, until something is ready or the timeout passes; the loop then walks the
events with ``event_desc``/``event_flags`` and queues the work they make ready.

Two modes, one poller
---------------------
* **Edge mode** (``PD_EDGE``) is for gmploop's own transports and for sockets awaited
  by the loop's ``sock_*`` coroutines. The fd is registered once, for both directions,
  edge-triggered (EPOLLET, or EV_CLEAR), and stays so until its owner closes it (a
  socket closed behind the loop's back is caught by 'Stale events' below). The owner does I/O optimistically (the syscall first, a
  wait only after EAGAIN), so pausing reading, a write that completes at once, or a
  burst of small writes cost no ``epoll_ctl``. The price of edges: the kernel reports a
  change, not a state, so a reader that stops before EAGAIN (on its per-turn budget)
  must queue itself again; no new edge will come for data already there.

* **Level mode** (``PD_LEVEL``) is for ``add_reader``/``add_writer``. asyncio promises
  level-triggered behaviour there: the callback runs again on every iteration while the
  fd stays ready, and code such as a database driver that reads one message per
  callback relies on that. Those fds are registered level-triggered, with an interest
  that follows the callbacks (IN for a reader, OUT for a writer, both, or none: then the
  fd leaves the set). That costs an ``epoll_ctl`` per add/remove, exactly what asyncio's
  selector loop pays, and nothing per event.

Rejected: emulating level-triggered callbacks on an edge registration. After each
callback the loop would have to ask whether the fd is still ready (a ``poll()`` per
event) or re-arm it (EPOLLONESHOT, an ``epoll_ctl`` per event): one syscall per event
on the path that now has none. Rejected too: one edge registration for everything with
the level fds re-queued after every callback until they return EAGAIN: an
``add_reader`` callback does not tell the loop whether it hit EAGAIN, so a callback
that ignores readiness (asyncio allows it) would spin.

Stale events
------------
The trap of every epoll loop: epoll registers an (open file, fd number) pair, but
reports only the 64-bit tag given at registration. If user code closes a watched fd
and a new socket gets the same number, an event still queued for the old file, or one
from a registration that outlives the fd (the file is shared through ``dup`` or
``fork``), would look like an event for the new socket.

So the tag is ``generation << 32 | fd``. A ``PollDesc`` takes a new generation each
time it enters the kernel's set (a new descriptor, or one taken out by an interest of
none and put back), and ``event_desc`` returns the descriptor only when the tag's
generation is the one the fd has now. An event for a forgotten registration, or one from before a
``remove_reader``/``add_reader`` pair in the same batch, is dropped, never delivered to
whatever holds the number now. The doorbell has a tag no fd can have.

The kernel half of the trap: when the last reference to a file is closed, epoll drops
its registration silently, so a registration the poller still believes in may be gone,
and the number may now name another file that nobody registered. The poller cannot
see a ``close`` it was not told about, so it asks the kernel whenever it is told to
watch an fd it believes registered: ``set_level`` issues its change even when the
interest is unchanged (one ``epoll_ctl``, only on an ``add_reader`` that replaces a
callback), and so does ``set_edge`` on an fd already in edge mode (a second transport
on one number; the change re-arms the edge, so at worst one spurious report, which
optimistic I/O shrugs off). ENOENT on that change (or EPERM: the number now names a file epoll
cannot watch, such as a regular file) means "a new file under an old number": the
descriptor takes a new generation and registers afresh, so that events from the old
file, if a ``dup`` keeps it open, no longer match it. EEXIST on an add means "change
instead". A registration that outlives its fd through a ``dup`` cannot be removed by
anyone (no fd reaches it any more); its events are dropped by generation, and with
level triggering they recur while that file stays ready, exactly as in asyncio's
selector loop. The cure is the one asyncio documents: ``remove_reader`` before
``close``. Tested in ``tests/unit/test_poller.py`` (``test_close_without_unwatch_*``,
``test_dup_registration_*``).

The doorbell
------------
An eventfd (a pipe where there is none), registered level-triggered and drained when it
fires. ``wakeup`` may be called from any thread; it only writes a counter, so a burst
of calls costs one wake-up of the poller. Signals do not use it: ``signal.set_wakeup_fd``
writes single bytes, which an eventfd refuses, so the loop gives Python a socket pair
of its own for that (see ``add_signal_handler`` in ``_loop.pyx``).

After fork()
------------
A forked child inherits the poller's epoll fd, and an epoll fd names one kernel object
shared by both processes: a registration the child removes (closing an inherited
transport, a server) is gone from the parent too, and an edge the child's wait takes
is never reported to the parent. So a poller remembers the fork epoch it was made
in; the first time it is used in a later one (a child: ``os.register_at_fork`` bumps
the epoch there), it makes a kernel set and a doorbell of its own and registers in
them what it had registered, then lets the inherited ones go (closing the child's
copies of those fds touches nothing of the parent's). The parent's registrations are
never touched, and an inherited loop keeps working in the child on its own set.
Rejected: refusing every kernel change in a child (an inherited loop would then hang
silently) and a ``getpid()`` per change (a syscall on the path that has none). A
kqueue is not inherited at all; the same step gives the child one. Tested in
``tests/reliability/test_processes.py`` (``test_fork_child_closes_inherited_*``).

Races
-----
* ``wait`` releases the GIL. Only the owner P calls it, so no other thread can change
  this poller's registrations meanwhile (every method but ``wakeup`` is owner-only).
* EINTR: a signal handler may have to run (KeyboardInterrupt); ``wait`` calls
  ``PyErr_CheckSignals`` and reports no events, so the loop runs its iteration and
  polls again.
"""

from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.errno cimport errno, EINTR, ENOENT, EEXIST, EBADF, EPERM, EINVAL
from libc.stdint cimport uint32_t, uint64_t
from posix.unistd cimport close as c_close

import os

cdef enum:
    # Events taken per wait. 256 fills a few cache lines; a server with more fds ready
    # at once gets the rest on the next (zero-timeout) wait of the same iteration count.
    MAX_EVENTS = 256

cdef uint32_t WAKE_GEN = 0xFFFFFFFF       # a generation never given to an fd
cdef uint64_t WAKE_TAG = 0xFFFFFFFFFFFFFFFF

# Bumped in a child after each fork(); see 'After fork()' above.
cdef unsigned long _fork_epoch = 0


def _after_fork_in_child():
    global _fork_epoch
    _fork_epoch += 1


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _own_kernel_set(Poller p) except -1:
    """p was made before a fork() and is now used in the child: give it a kernel set
    and a doorbell of its own, registering what it had (see 'After fork()')."""
    cdef int pfd, rfd = -1, wfd = -1
    cdef PollDesc pd
    p.fork_epoch = _fork_epoch
    if p.pfd < 0:
        return 0        # closed: nothing to own
    pfd = gp_poll_create()
    if pfd < 0:
        PyErr_SetFromErrno(OSError)
    if gp_wakeup_open(&rfd, &wfd) < 0 or gp_poll_add(pfd, rfd, GP_IN, WAKE_TAG) < 0:
        PyErr_SetFromErrno(OSError)
        c_close(pfd)
        if wfd >= 0 and wfd != rfd:
            c_close(wfd)
        if rfd >= 0:
            c_close(rfd)
        return -1
    p._close_fds()      # the child's copies only
    p.pfd = pfd
    p.wake_rfd = rfd
    p.wake_wfd = wfd
    for obj in p.descs:
        if obj is None:
            continue
        pd = <PollDesc>obj
        if pd.mode == PD_UNREGISTERED:
            continue
        pd.gen = p.new_gen()
        p.ctl_calls += 1
        if gp_poll_add(pfd, pd.fd, pd.interest, make_tag(pd)) < 0:
            # Closed before the fork without telling the poller: nothing to watch.
            pd.mode = PD_UNREGISTERED
            pd.interest = 0
            p.registered -= 1
    return 0

BACKEND = GP_BACKEND.decode()


cdef inline uint64_t make_tag(PollDesc pd) noexcept:
    return (<uint64_t>pd.gen << 32) | <uint32_t>pd.fd


cdef class PollDesc:

    def __repr__(self):
        mode = ("unregistered", "level", "edge")[<int>self.mode]
        return f"<PollDesc fd={self.fd} gen={self.gen} {mode} interest={self.interest:#x}>"


cdef class Poller:

    def __cinit__(self):
        self.pfd = -1
        self.wake_rfd = -1
        self.wake_wfd = -1
        self.events = NULL

    def __init__(self):
        self.descs = []
        self.next_gen = 1
        self.registered = 0
        self.maxevents = MAX_EVENTS
        self.fork_epoch = _fork_epoch
        self.events = <gp_event *>PyMem_Malloc(MAX_EVENTS * sizeof(gp_event))
        if self.events is NULL:
            raise MemoryError()
        self.pfd = gp_poll_create()
        if self.pfd < 0:
            PyErr_SetFromErrno(OSError)
        if gp_wakeup_open(&self.wake_rfd, &self.wake_wfd) < 0:
            PyErr_SetFromErrno(OSError)
        if gp_poll_add(self.pfd, self.wake_rfd, GP_IN, WAKE_TAG) < 0:
            PyErr_SetFromErrno(OSError)

    def __dealloc__(self):
        if self.events is not NULL:
            PyMem_Free(self.events)
            self.events = NULL
        self._close_fds()

    cdef _close_fds(self):
        if self.pfd >= 0:
            c_close(self.pfd)
            self.pfd = -1
        if self.wake_wfd >= 0 and self.wake_wfd != self.wake_rfd:
            c_close(self.wake_wfd)
        self.wake_wfd = -1
        if self.wake_rfd >= 0:
            c_close(self.wake_rfd)
            self.wake_rfd = -1

    cdef int close(self) except -1:
        """Owner P only. Close the kernel set and the doorbell; forget every fd."""
        self.descs = []
        self.registered = 0
        self._close_fds()
        return 0

    cdef PollDesc lookup(self, int fd):
        """Owner P only. The descriptor of fd, or None."""
        # fd >= 0 first: the module is compiled without wraparound, so descs[-1]
        # would read before the list's items.
        if 0 <= fd < len(self.descs):
            return <PollDesc>self.descs[fd]
        return None

    cdef uint32_t new_gen(self) noexcept:
        """Owner P only. A generation no live descriptor has (see 'Stale events')."""
        cdef uint32_t gen = self.next_gen
        self.next_gen += 1
        if self.next_gen == WAKE_GEN:
            self.next_gen = 1
        return gen

    cdef PollDesc desc_for(self, int fd):
        """Owner P only. The descriptor of fd, created (unregistered, with a fresh
        generation) if there is none."""
        cdef PollDesc pd
        if fd < 0:
            raise ValueError(f"Invalid file descriptor: {fd}")
        if fd < len(self.descs):
            pd = <PollDesc>self.descs[fd]
            if pd is not None:
                return pd
        else:
            self.descs.extend([None] * (fd + 1 - len(self.descs)))
        pd = PollDesc.__new__(PollDesc)
        pd.fd = fd
        pd.gen = self.new_gen()
        pd.mode = PD_UNREGISTERED
        pd.interest = 0
        self.descs[fd] = pd
        return pd

    cdef int set_level(self, PollDesc pd, uint32_t interest) except -1:
        """Owner P only. Make pd a level-triggered registration for interest (GP_IN
        and/or GP_OUT); with no interest, take it out of the kernel's set (the
        descriptor stays, unregistered)."""
        cdef int r
        cdef uint32_t old = pd.interest
        if self.fork_epoch != _fork_epoch:
            _own_kernel_set(self)
        if pd.mode == PD_EDGE:
            raise RuntimeError(f"fd {pd.fd} is owned by a transport")
        if interest == 0:
            if pd.mode == PD_LEVEL:
                self.ctl_calls += 1
                r = gp_poll_del(self.pfd, pd.fd, old)
                pd.mode = PD_UNREGISTERED
                pd.interest = 0
                self.registered -= 1
                # ENOENT/EBADF/EPERM: the fd was closed behind our back (and its
                # number perhaps reused by a file epoll refuses); the kernel already
                # forgot it, which is what was asked.
                if r < 0 and errno != ENOENT and errno != EBADF and errno != EPERM:
                    PyErr_SetFromErrno(OSError)
            return 0
        if pd.mode == PD_UNREGISTERED:
            # Events still in this batch from before it left the set must not match.
            pd.gen = self.new_gen()
            self.ctl_calls += 1
            r = gp_poll_add(self.pfd, pd.fd, interest, make_tag(pd))
            if r < 0 and errno == EEXIST:
                self.ctl_calls += 1
                r = gp_poll_mod(self.pfd, pd.fd, 0, interest, make_tag(pd))
            if r < 0:
                PyErr_SetFromErrno(OSError)
            pd.mode = PD_LEVEL
            self.registered += 1
        else:
            # Also when interest == old: see 'Stale events' above.
            self.ctl_calls += 1
            r = gp_poll_mod(self.pfd, pd.fd, old, interest, make_tag(pd))
            if r < 0 and (errno == ENOENT or errno == EPERM):
                self._register_afresh(pd, interest)
            elif r < 0:
                PyErr_SetFromErrno(OSError)
        pd.interest = interest
        return 0

    cdef int _register_afresh(self, PollDesc pd, uint32_t interest) except -1:
        """Owner P only. pd's number was closed and reopened behind our back (the
        kernel said ENOENT or EPERM to a change): register the new file under a new
        generation, or, if the kernel refuses it, leave pd unregistered and raise."""
        pd.gen = self.new_gen()
        self.ctl_calls += 1
        if gp_poll_add(self.pfd, pd.fd, interest, make_tag(pd)) < 0:
            pd.mode = PD_UNREGISTERED
            pd.interest = 0
            self.registered -= 1
            PyErr_SetFromErrno(OSError)
        return 0

    cdef int set_edge(self, PollDesc pd) except -1:
        """Owner P only. Register pd once, edge-triggered, for both directions."""
        cdef int r
        if self.fork_epoch != _fork_epoch:
            _own_kernel_set(self)
        if pd.mode == PD_EDGE:
            # Already ours; ask the kernel whether it still is (see 'Stale events').
            self.ctl_calls += 1
            r = gp_poll_mod(self.pfd, pd.fd, pd.interest, pd.interest, make_tag(pd))
            if r < 0 and (errno == ENOENT or errno == EPERM):
                self._register_afresh(pd, pd.interest)
            elif r < 0:
                PyErr_SetFromErrno(OSError)
            return 0
        if pd.mode == PD_LEVEL:
            raise RuntimeError(f"fd {pd.fd} is watched by add_reader/add_writer")
        pd.gen = self.new_gen()
        self.ctl_calls += 1
        r = gp_poll_add(self.pfd, pd.fd, GP_IN | GP_OUT | GP_EDGE, make_tag(pd))
        if r < 0:
            PyErr_SetFromErrno(OSError)
        pd.mode = PD_EDGE
        pd.seen = 0
        pd.interest = GP_IN | GP_OUT | GP_EDGE
        self.registered += 1
        return 0

    cdef bint set_edge_exclusive(self, PollDesc pd) except -1:
        """Owner P only. Register pd (a listening socket that other processes poll
        too) edge-triggered for reading with EPOLLEXCLUSIVE, so that a connection wakes
        one waiting P, not all of them (see 'Shared listeners' in _runtime.py). The
        kernel takes that flag only on an add: an existing registration is removed
        first. Returns False when the kernel has no EPOLLEXCLUSIVE (or there is no
        epoll): pd is then registered as set_edge does."""
        cdef int r
        if pd.mode == PD_LEVEL:
            raise RuntimeError(f"fd {pd.fd} is watched by add_reader/add_writer")
        if pd.mode == PD_EDGE:
            self.ctl_calls += 1
            gp_poll_del(self.pfd, pd.fd, pd.interest)
            pd.mode = PD_UNREGISTERED
            pd.interest = 0
            self.registered -= 1
        pd.gen = self.new_gen()
        self.ctl_calls += 1
        r = -1
        if GP_BACKEND == b"epoll":
            r = gp_poll_add(self.pfd, pd.fd, GP_IN | GP_EDGE | GP_EXCL, make_tag(pd))
            if r < 0 and errno != EINVAL:
                PyErr_SetFromErrno(OSError)
        if r == 0:
            pd.mode = PD_EDGE
            pd.seen = 0
            pd.interest = GP_IN | GP_EDGE | GP_EXCL
            self.registered += 1
            return True
        self.set_edge(pd)
        return False

    cdef int forget(self, PollDesc pd) except -1:
        """Owner P only. Take pd out of the kernel's set (if there) and out of the
        table; later events with its generation are dropped. Call before the fd is
        closed; after, the kernel has already dropped it and this is bookkeeping."""
        cdef int r
        if self.fork_epoch != _fork_epoch:
            _own_kernel_set(self)
        if pd.mode != PD_UNREGISTERED:
            self.ctl_calls += 1
            r = gp_poll_del(self.pfd, pd.fd, pd.interest)
            self.registered -= 1
            pd.mode = PD_UNREGISTERED
            pd.interest = 0
        if pd.fd < len(self.descs) and self.descs[pd.fd] is pd:
            self.descs[pd.fd] = None
        pd.reader = None
        pd.writer = None
        pd.owner = None
        return 0

    cdef int wait(self, int timeout_ms) except -1:
        """Owner P only. Block (GIL released) for up to timeout_ms (-1: no limit) and
        return the number of events; 0 on timeout or EINTR."""
        cdef int n
        if self.fork_epoch != _fork_epoch:
            _own_kernel_set(self)
        with nogil:
            n = gp_poll_wait(self.pfd, self.events, self.maxevents, timeout_ms)
        if n < 0:
            if errno == EINTR:
                PyErr_CheckSignals()   # may raise (KeyboardInterrupt)
                return 0
            PyErr_SetFromErrno(OSError)
        return n

    cdef PollDesc event_desc(self, int i):
        """Owner P only. The descriptor event i is for, or None when the event is the
        doorbell (drained here) or stale (see 'Stale events' above)."""
        cdef uint64_t tag = self.events[i].tag
        cdef int fd
        cdef PollDesc pd
        if tag == WAKE_TAG:
            gp_wakeup_drain(self.wake_rfd)
            return None
        fd = <int>(tag & 0xFFFFFFFF)
        if fd >= len(self.descs):
            return None
        pd = <PollDesc>self.descs[fd]
        if pd is None or pd.gen != <uint32_t>(tag >> 32) or pd.mode == PD_UNREGISTERED:
            return None
        return pd

    cdef int wakeup(self) except -1:
        """Any thread. Make the current or next wait return at once."""
        if self.wake_wfd >= 0 and gp_wakeup_signal(self.wake_wfd) < 0:
            PyErr_SetFromErrno(OSError)
        return 0

    # Python-level access, for tests and introspection.

    @property
    def fileno(self):
        """The kernel set's fd (an epoll or kqueue fd)."""
        return self.pfd

    def describe(self, int fd):
        return self.lookup(fd)

    def watch_level(self, int fd, bint readable, bint writable):
        """Register fd level-triggered (test helper)."""
        self.set_level(self.desc_for(fd), (GP_IN if readable else 0) | (GP_OUT if writable else 0))

    def watch_edge(self, int fd):
        """Register fd edge-triggered for both directions (test helper)."""
        self.set_edge(self.desc_for(fd))

    def unwatch(self, int fd):
        cdef PollDesc pd = self.lookup(fd)
        if pd is not None:
            self.forget(pd)

    def poll(self, double timeout):
        """Wait up to timeout seconds (negative: forever); return [(fd, flags)] for
        the live events (test helper)."""
        cdef int i, n
        cdef PollDesc pd
        n = self.wait(-1 if timeout < 0 else <int>(timeout * 1000 + 0.999))
        out = []
        for i in range(n):
            pd = self.event_desc(i)
            if pd is not None:
                out.append((pd.fd, self.events[i].flags))
        return out

    def ring(self):
        self.wakeup()


# Readiness bits, for Python-level callers and tests.
READABLE = GP_IN
WRITABLE = GP_OUT
ERROR = GP_ERR
HANGUP = GP_HUP
READ_HANGUP = GP_RDHUP

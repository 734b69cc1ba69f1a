"""Unit tests of gmploop._poller.Poller on its own (no loop).

What is under test is the essay at the top of _poller.pyx: edge mode (registered once,
EPOLLET, one report per edge), level mode (asyncio's add_reader meaning, interest that
follows the callbacks), stale events after close/reopen and dup (generations, the
ENOENT->ADD path), the doorbell, EINTR, and graceful handling of bad fds.

Loopback socket pairs only; every wait is bounded.
"""
import errno
import os
import re
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time

import pytest

from gmploop import _poller

Poller = _poller.Poller

# Each test is quick; this bounds one that hangs (a lost wake-up, a wait never
# interrupted) well below the suite-wide limit.
pytestmark = pytest.mark.timeout(10)
READABLE = _poller.READABLE
WRITABLE = _poller.WRITABLE
ERROR = _poller.ERROR
HANGUP = _poller.HANGUP
READ_HANGUP = _poller.READ_HANGUP

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/fdinfo (epoll)")

EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLRDHUP = 0x2000
EPOLLET = 0x80000000


# ---------------------------------------------------------------- helpers


@pytest.fixture
def poller():
    p = Poller()
    yield p
    del p


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def fdinfo(p):
    """{fd: (events, data)} of the epoll set, as the kernel has it."""
    out = {}
    with open(f"/proc/self/fdinfo/{p.fileno}") as f:
        for line in f:
            m = re.match(r"tfd:\s*(\d+)\s+events:\s*([0-9a-fA-F]+)\s+data:\s*([0-9a-fA-F]+)",
                         line)
            if m:
                out[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16))
    return out


def events_for(evs, fd):
    return [fl for f, fl in evs if f == fd]


def poll_until(p, pred, timeout=2.0):
    """Poll until pred(events) is true; return those events (or the last batch)."""
    deadline = time.monotonic() + timeout
    evs = []
    while time.monotonic() < deadline:
        evs = p.poll(0.05)
        if pred(evs):
            return evs
    return evs


def socketpair_with_fd(fd, limit=64):
    """A new non-blocking socket pair one of whose ends has number fd."""
    held = []
    try:
        for _ in range(limit):
            a, b = socket.socketpair()
            if a.fileno() == fd or b.fileno() == fd:
                a.setblocking(False)
                b.setblocking(False)
                return (a, b) if a.fileno() == fd else (b, a)
            held.append(a)
            held.append(b)
        raise RuntimeError(f"could not get fd {fd} back")
    finally:
        for s in held:
            s.close()


# ---------------------------------------------------------------- basics


def test_module_constants():
    flags = [READABLE, WRITABLE, ERROR, HANGUP, READ_HANGUP]
    assert all(f and f & (f - 1) == 0 for f in flags)
    assert len(set(flags)) == len(flags)
    if sys.platform.startswith("linux"):
        assert _poller.BACKEND == "epoll"
    else:
        assert _poller.BACKEND == "kqueue"


def test_fileno_and_close_on_exec(poller):
    fd = poller.fileno
    assert fd >= 0
    assert not os.get_inheritable(fd)
    p2 = Poller()
    assert p2.fileno != fd
    del p2


def test_dealloc_closes_fds():
    p = Poller()
    fd = p.fileno
    os.fstat(fd)
    del p
    with pytest.raises(OSError):
        os.fstat(fd)


def test_describe_unknown_fd(poller):
    assert poller.describe(12345) is None
    assert poller.describe(0) is None


def test_negative_fd(poller):
    assert poller.describe(-1) is None
    poller.unwatch(-1)
    with pytest.raises(ValueError):
        poller.watch_level(-1, True, False)
    with pytest.raises(ValueError):
        poller.watch_edge(-1)


def test_poll_timeout_returns_empty(poller):
    t0 = time.monotonic()
    assert poller.poll(0) == []
    assert poller.poll(0.05) == []
    assert time.monotonic() - t0 >= 0.04


# ---------------------------------------------------------------- edge mode


@linux_only
def test_edge_registration_in_fdinfo(poller, pair):
    a, _ = pair
    poller.watch_edge(a.fileno())
    info = fdinfo(poller)
    assert a.fileno() in info
    events, data = info[a.fileno()]
    assert events & EPOLLET
    assert events & EPOLLIN and events & EPOLLOUT and events & EPOLLRDHUP
    pd = poller.describe(a.fileno())
    # The tag is generation << 32 | fd (see 'Stale events').
    assert data == (pd.gen << 32) | a.fileno()
    assert poller.registered == 1


def test_edge_registered_once(poller, pair):
    a, _ = pair
    poller.watch_edge(a.fileno())
    pd = poller.describe(a.fileno())
    poller.watch_edge(a.fileno())
    assert poller.describe(a.fileno()) is pd
    assert poller.registered == 1


def test_edge_reports_readable_once_per_edge(poller, pair):
    a, b = pair
    poller.watch_edge(a.fileno())
    # The first wait reports the writable edge of a fresh socket, once.
    evs = poller.poll(1.0)
    assert events_for(evs, a.fileno()) == [WRITABLE]
    assert poller.poll(0) == []

    b.send(b"x")
    evs = poller.poll(1.0)
    fl = events_for(evs, a.fileno())
    assert len(fl) == 1 and fl[0] & READABLE
    # Data still unread, but no new edge: nothing more.
    assert poller.poll(0) == []
    assert poller.poll(0.05) == []

    b.send(b"y")
    evs = poller.poll(1.0)
    fl = events_for(evs, a.fileno())
    assert len(fl) == 1 and fl[0] & READABLE
    assert poller.poll(0) == []
    assert a.recv(10) == b"xy"
    assert poller.poll(0) == []


def test_edge_peer_close_reports_read_hangup(poller, pair):
    a, b = pair
    poller.watch_edge(a.fileno())
    poller.poll(0)
    b.close()
    evs = poller.poll(1.0)
    fl = events_for(evs, a.fileno())
    assert len(fl) == 1
    assert fl[0] & READABLE and fl[0] & READ_HANGUP


def test_edge_then_level_is_refused(poller, pair):
    a, _ = pair
    poller.watch_edge(a.fileno())
    with pytest.raises(RuntimeError):
        poller.watch_level(a.fileno(), True, False)
    # Unwatch, then level mode is fine.
    poller.unwatch(a.fileno())
    assert poller.registered == 0
    poller.watch_level(a.fileno(), True, False)
    assert poller.registered == 1


def test_level_then_edge_is_refused(poller, pair):
    a, _ = pair
    poller.watch_level(a.fileno(), True, False)
    with pytest.raises(RuntimeError):
        poller.watch_edge(a.fileno())


@linux_only
def test_level_off_then_edge(poller, pair):
    # add_reader, remove_reader, then a transport takes the fd.
    a, b = pair
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    poller.watch_level(fd, False, False)
    poller.watch_edge(fd)
    events, data = fdinfo(poller)[fd]
    assert events & EPOLLET
    assert data == (poller.describe(fd).gen << 32) | fd
    assert poller.registered == 1
    b.send(b"x")
    fl = events_for(poller.poll(1.0), fd)
    assert len(fl) == 1 and fl[0] & READABLE


@linux_only
def test_edge_unwatch_removes_from_kernel(poller, pair):
    a, _ = pair
    poller.watch_edge(a.fileno())
    poller.unwatch(a.fileno())
    assert a.fileno() not in fdinfo(poller)
    assert poller.describe(a.fileno()) is None
    assert poller.registered == 0


# ---------------------------------------------------------------- level mode


def test_level_reports_while_unread(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, False)
    assert poller.poll(0) == []
    b.send(b"hello")
    for _ in range(4):
        evs = poller.poll(1.0)
        assert events_for(evs, a.fileno()) == [READABLE]
    assert a.recv(100) == b"hello"
    assert poller.poll(0) == []


def test_level_writable_reports_every_poll(poller, pair):
    a, _ = pair
    poller.watch_level(a.fileno(), False, True)
    for _ in range(3):
        assert events_for(poller.poll(1.0), a.fileno()) == [WRITABLE]


def test_level_read_and_write(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, True)
    assert events_for(poller.poll(1.0), a.fileno()) == [WRITABLE]
    b.send(b"x")
    assert events_for(poller.poll(1.0), a.fileno()) == [READABLE | WRITABLE]


@linux_only
def test_level_interest_changes_in_fdinfo(poller, pair):
    a, b = pair
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    events, _ = fdinfo(poller)[fd]
    assert events & EPOLLIN and not events & EPOLLOUT and not events & EPOLLET
    assert poller.describe(fd).interest == READABLE
    gen = poller.describe(fd).gen

    poller.watch_level(fd, True, True)
    events, _ = fdinfo(poller)[fd]
    assert events & EPOLLIN and events & EPOLLOUT and not events & EPOLLET
    assert poller.describe(fd).interest == READABLE | WRITABLE
    assert events_for(poller.poll(1.0), fd) == [WRITABLE]

    poller.watch_level(fd, False, True)
    events, _ = fdinfo(poller)[fd]
    assert not events & EPOLLIN and events & EPOLLOUT
    assert poller.registered == 1

    poller.watch_level(fd, False, False)
    assert fd not in fdinfo(poller)
    assert poller.registered == 0
    pd = poller.describe(fd)
    assert pd is not None and pd.interest == 0 and "unregistered" in repr(pd)
    b.send(b"x")
    assert poller.poll(0.05) == []

    # Back in: the same descriptor, registered afresh under a new generation, so an
    # event from before it left the set (in the same batch) cannot match it.
    poller.watch_level(fd, True, False)
    assert fd in fdinfo(poller)
    assert poller.registered == 1
    assert poller.describe(fd).gen != gen
    assert fdinfo(poller)[fd][1] == (poller.describe(fd).gen << 32) | fd
    assert events_for(poller.poll(1.0), fd) == [READABLE]


def test_level_same_interest_twice(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, False)
    poller.watch_level(a.fileno(), True, False)
    assert poller.registered == 1
    b.send(b"x")
    assert events_for(poller.poll(1.0), a.fileno()) == [READABLE]


def test_level_unwatch(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, False)
    poller.unwatch(a.fileno())
    assert poller.describe(a.fileno()) is None
    assert poller.registered == 0
    b.send(b"x")
    assert poller.poll(0.05) == []
    poller.unwatch(a.fileno())      # twice: nothing to do


def test_level_peer_close(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, False)
    b.close()
    fl = events_for(poller.poll(1.0), a.fileno())
    assert len(fl) == 1
    assert fl[0] & READABLE and fl[0] & READ_HANGUP


def test_level_full_shutdown_reports_hangup(poller, pair):
    a, b = pair
    poller.watch_level(a.fileno(), True, False)
    a.shutdown(socket.SHUT_RDWR)
    fl = events_for(poller.poll(1.0), a.fileno())
    assert len(fl) == 1
    assert fl[0] & HANGUP


def test_many_ready_fds_across_batches(poller):
    # More ready fds than one wait takes: each batch is decoded correctly (the
    # in-place conversion of epoll's events in gp_poll.h), and the rest come next.
    pairs = [socket.socketpair() for _ in range(300)]
    try:
        fds = {a.fileno() for a, _ in pairs}
        for a, _ in pairs:
            poller.watch_level(a.fileno(), False, True)
        seen = set()
        for _ in range(4):
            evs = poller.poll(1.0)
            assert 0 < len(evs) <= 256
            for fd, fl in evs:
                assert fd in fds
                assert fl == WRITABLE
            assert len({fd for fd, _ in evs}) == len(evs)
            seen.update(fd for fd, _ in evs)
        assert seen == fds
    finally:
        for a, b in pairs:
            poller.unwatch(a.fileno())
            a.close()
            b.close()


# ---------------------------------------------------------------- stale events


@pytest.mark.parametrize("readable,writable", [(True, False), (True, True)])
def test_close_without_unwatch_then_reuse(poller, readable, writable):
    # Close a watched fd behind the poller's back; a new socket gets the same number.
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    old_gen = poller.describe(fd).gen
    a.close()                       # the kernel drops the registration (last ref)
    b.close()
    c, d = socketpair_with_fd(fd)
    try:
        d.send(b"new")
        # The new socket is readable, but nothing registered it: never reported
        # under the old registration.
        for _ in range(3):
            assert events_for(poller.poll(0.05), fd) == []
        # Watching the new one works (MOD gets ENOENT, so ADD).
        poller.watch_level(fd, readable, writable)
        want = READABLE | (WRITABLE if writable else 0)
        evs = poller.poll(1.0)
        assert events_for(evs, fd) == [want]
        pd = poller.describe(fd)
        assert pd.interest == (READABLE | (WRITABLE if writable else 0))
        assert pd.gen != old_gen        # a new file: a new generation
        if sys.platform.startswith("linux"):
            assert fdinfo(poller)[fd][1] == (pd.gen << 32) | fd
        assert poller.registered == 1
        assert c.recv(10) == b"new"
        assert events_for(poller.poll(0.05), fd) == ([WRITABLE] if writable else [])
    finally:
        poller.unwatch(fd)
        c.close()
        d.close()


def test_close_without_unwatch_then_reuse_edge_after_unwatch(poller):
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_edge(fd)
    a.close()
    b.close()
    poller.unwatch(fd)                  # after close: bookkeeping only, no error
    assert poller.registered == 0
    c, d = socketpair_with_fd(fd)
    try:
        poller.watch_edge(fd)
        d.send(b"x")
        evs = poll_until(poller, lambda evs: any(fl & READABLE for f, fl in evs if f == fd))
        assert any(fl & READABLE for f, fl in evs if f == fd)
    finally:
        poller.unwatch(fd)
        c.close()
        d.close()


def test_close_without_unwatch_then_reuse_edge(poller):
    # A second transport on a number whose first owner's socket was closed behind the
    # poller's back: set_edge must register the new file, not trust the old record.
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_edge(fd)
    old_gen = poller.describe(fd).gen
    a.close()
    b.close()
    c, d = socketpair_with_fd(fd)
    try:
        d.send(b"x")
        assert events_for(poller.poll(0.05), fd) == []
        poller.watch_edge(fd)
        pd = poller.describe(fd)
        assert pd.gen != old_gen
        assert poller.registered == 1
        if sys.platform.startswith("linux"):
            events, data = fdinfo(poller)[fd]
            assert events & EPOLLET and data == (pd.gen << 32) | fd
        fl = events_for(poller.poll(1.0), fd)
        assert len(fl) == 1 and fl[0] & READABLE and fl[0] & WRITABLE
        assert poller.poll(0) == []
    finally:
        poller.unwatch(fd)
        c.close()
        d.close()


def test_watch_edge_twice_on_live_fd_keeps_generation(poller, pair):
    a, b = pair
    poller.watch_edge(a.fileno())
    gen = poller.describe(a.fileno()).gen
    poller.watch_edge(a.fileno())
    assert poller.describe(a.fileno()).gen == gen
    assert poller.registered == 1


@pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll only")
@pytest.mark.parametrize("mode", ["level", "edge"])
def test_close_without_unwatch_then_reuse_by_regular_file(poller, mode):
    # The number comes back as a regular file, which epoll refuses: the watch fails
    # with PermissionError, and the poller's record says unregistered.
    a, b = socket.socketpair()
    fd = a.fileno()
    if mode == "level":
        poller.watch_level(fd, True, False)
    else:
        poller.watch_edge(fd)
    a.close()
    b.close()
    held = []
    f = None
    try:
        while True:
            f = tempfile.TemporaryFile()
            if f.fileno() == fd:
                break
            held.append(f)
            assert len(held) < 64
        with pytest.raises(PermissionError):
            if mode == "level":
                poller.watch_level(fd, True, False)
            else:
                poller.watch_edge(fd)
        assert poller.registered == 0
        assert "unregistered" in repr(poller.describe(fd))
        poller.watch_level(fd, False, False)    # taking it out: nothing to do
        poller.unwatch(fd)
        assert poller.describe(fd) is None
    finally:
        for h in held:
            h.close()
        if f is not None:
            f.close()


@linux_only
def test_dup_registration_dropped_by_generation(poller):
    # The registration of a dup'ed file outlives close() of the watched number, and
    # nobody can remove it; its events must be dropped, never delivered to whatever
    # holds the number now.
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    keep = os.dup(fd)                   # the file stays open through keep
    a.close()
    poller.unwatch(fd)                  # EBADF inside: no error, and the gen is gone
    assert poller.describe(fd) is None
    assert fd in fdinfo(poller)          # the kernel still has it
    c = d = None
    try:
        b.send(b"old")                   # the old file is readable, for good (level)
        for _ in range(3):
            assert poller.poll(0.05) == []
        # A new socket takes the number and is watched.
        c, d = socketpair_with_fd(fd)
        poller.watch_level(fd, True, False)
        assert poller.describe(fd).gen != 0
        for _ in range(3):
            assert poller.poll(0.05) == []    # old file ready, new one not
        d.send(b"new")
        evs = poller.poll(1.0)
        assert evs == [(fd, READABLE)]
        assert c.recv(10) == b"new"
        assert poller.poll(0.05) == []
    finally:
        poller.unwatch(fd)
        os.close(keep)
        b.close()
        if c is not None:
            c.close()
            d.close()


@linux_only
def test_dup_registration_without_unwatch_then_reuse(poller):
    # As above, but nobody called unwatch: the new socket's registration must still
    # not inherit the old file's events (the ENOENT->ADD path takes a new generation).
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    keep = os.dup(fd)
    a.close()
    c = d = None
    try:
        c, d = socketpair_with_fd(fd)
        poller.watch_level(fd, True, False)
        b.send(b"old")                   # only the old (dup'ed) file is readable
        for _ in range(3):
            assert poller.poll(0.05) == []
        d.send(b"new")
        assert poller.poll(1.0) == [(fd, READABLE)]
    finally:
        poller.unwatch(fd)
        os.close(keep)
        b.close()
        if c is not None:
            c.close()
            d.close()


def test_unwatch_after_close_does_not_raise(poller):
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_level(fd, True, True)
    a.close()
    b.close()
    poller.unwatch(fd)
    assert poller.describe(fd) is None
    assert poller.registered == 0


def test_level_interest_off_after_close_does_not_raise(poller):
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.watch_level(fd, True, False)
    a.close()
    b.close()
    poller.watch_level(fd, False, False)
    assert poller.registered == 0


def test_watch_closed_fd_raises_like_selectors(poller):
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    sel = selectors.EpollSelector() if hasattr(selectors, "EpollSelector") else \
        selectors.DefaultSelector()
    try:
        with pytest.raises(OSError) as sel_exc:
            sel.register(fd, selectors.EVENT_READ)
    finally:
        sel.close()
    with pytest.raises(OSError) as exc:
        poller.watch_level(fd, True, False)
    assert type(exc.value) is type(sel_exc.value)
    assert exc.value.errno == errno.EBADF
    assert poller.registered == 0


@pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll only")
@pytest.mark.parametrize("mode", ["level", "edge"])
def test_regular_file_refused_like_epoll_selector(poller, mode):
    with tempfile.TemporaryFile() as f:
        sel = selectors.EpollSelector()
        try:
            with pytest.raises(OSError) as sel_exc:
                sel.register(f, selectors.EVENT_READ)
        finally:
            sel.close()
        with pytest.raises(PermissionError) as exc:
            if mode == "level":
                poller.watch_level(f.fileno(), True, False)
            else:
                poller.watch_edge(f.fileno())
        assert type(exc.value) is type(sel_exc.value) is PermissionError
        assert exc.value.errno == errno.EPERM
        assert poller.registered == 0
        assert poller.describe(f.fileno()) is None or \
            "unregistered" in repr(poller.describe(f.fileno()))
    # And the poller still works.
    a, b = socket.socketpair()
    try:
        poller.watch_level(a.fileno(), True, False)
        b.send(b"x")
        assert poller.poll(1.0) == [(a.fileno(), READABLE)]
    finally:
        poller.unwatch(a.fileno())
        a.close()
        b.close()


# ---------------------------------------------------------------- the doorbell


def test_ring_from_another_thread_wakes_poll(poller):
    t = threading.Timer(0.1, poller.ring)
    t.start()
    try:
        t0 = time.monotonic()
        evs = poller.poll(5.0)
        elapsed = time.monotonic() - t0
    finally:
        t.cancel()
        t.join()
    assert evs == []                  # the doorbell is never reported as an fd
    assert elapsed < 2.0


def test_ring_before_poll_and_burst_coalesces(poller):
    for _ in range(1000):
        poller.ring()
    t0 = time.monotonic()
    assert poller.poll(5.0) == []
    assert time.monotonic() - t0 < 2.0
    # Drained: the next wait times out instead of waking again.
    t0 = time.monotonic()
    assert poller.poll(0.05) == []
    assert time.monotonic() - t0 >= 0.04


@linux_only
def test_doorbell_registered_but_not_counted(poller):
    assert poller.registered == 0
    info = fdinfo(poller)
    assert len(info) == 1
    (events, data), = info.values()
    assert data == 0xFFFFFFFFFFFFFFFF


def test_ring_wakes_poll_with_fds_registered(poller, pair):
    a, _ = pair
    poller.watch_level(a.fileno(), True, False)
    t = threading.Timer(0.1, poller.ring)
    t.start()
    try:
        t0 = time.monotonic()
        assert poller.poll(5.0) == []
        assert time.monotonic() - t0 < 2.0
    finally:
        t.cancel()
        t.join()


# ---------------------------------------------------------------- signals (EINTR)


class Interrupted(Exception):
    pass


def _raising_handler(signum, frame):
    raise Interrupted(signum)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers run in the main thread")
@pytest.mark.parametrize("timeout", [-1, 30.0])
def test_signal_handler_exception_propagates_out_of_poll(poller, timeout):
    # pytest-timeout may own SIGALRM: use SIGUSR1, sent to this (main) thread so the
    # wait itself gets EINTR.
    old = signal.signal(signal.SIGUSR1, _raising_handler)
    main = threading.main_thread().ident
    kick = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGUSR1))
    # Backstop: if EINTR were swallowed, fail instead of waiting forever.
    backstop = threading.Timer(3.0, poller.ring)
    kick.start()
    backstop.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(Interrupted):
            poller.poll(timeout)
        assert time.monotonic() - t0 < 2.5
    finally:
        kick.cancel()
        backstop.cancel()
        kick.join()
        backstop.join()
        signal.signal(signal.SIGUSR1, old)
    # The poller is fine afterwards.
    assert poller.poll(0) == []


def test_signal_with_quiet_handler_returns_no_events(poller):
    hits = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: hits.append(s))
    main = threading.main_thread().ident
    kick = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGUSR1))
    backstop = threading.Timer(3.0, poller.ring)
    kick.start()
    backstop.start()
    try:
        t0 = time.monotonic()
        assert poller.poll(30.0) == []
        assert time.monotonic() - t0 < 2.5
        assert hits == [signal.SIGUSR1]
    finally:
        kick.cancel()
        backstop.cancel()
        kick.join()
        backstop.join()
        signal.signal(signal.SIGUSR1, old)

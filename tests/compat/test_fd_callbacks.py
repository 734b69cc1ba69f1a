"""add_reader, add_writer, remove_reader, remove_writer.

asyncio's fd callbacks are level-triggered: while the fd stays ready, the callback runs
again on every iteration. An fd is known by its number; a registration belongs to the
open file, so after close() the old callback never fires for a new file that happens to
get the same number (the caller removes the stale registration before adding a new one,
as asyncio requires).
"""

import asyncio
import os
import socket

import pytest

from .support import Ticker, drain, run_iterations, socketpair


class FilenoOnly:
    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


def test_reader_called_with_args(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        def reader(*args):
            seen.append((args, rsock.recv(100)))
            loop.stop()

        loop.add_reader(rsock, reader, 1, "two")
        wsock.send(b"data")
        loop.run_forever()
        loop.remove_reader(rsock)
    assert seen == [((1, "two"), b"data")]


def test_reader_not_called_without_data(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        loop.add_reader(rsock, seen.append, "called")
        run_iterations(loop, 5)
        loop.remove_reader(rsock)
    assert seen == []


def test_reader_is_level_triggered(loop):
    # Five bytes pending, one read per call: five calls, one per iteration, then none.
    ticker = Ticker(loop)
    calls = []
    with socketpair() as (rsock, wsock):
        def reader():
            calls.append(ticker.n)
            rsock.recv(1)

        wsock.send(b"12345")
        loop.add_reader(rsock, reader)
        run_iterations(loop, 10)
        loop.remove_reader(rsock)
    ticker.stop()
    assert len(calls) == 5
    assert calls == list(range(calls[0], calls[0] + 5)), "not called on every iteration"


def test_writer_is_level_triggered(loop):
    calls = []
    with socketpair() as (rsock, wsock):
        loop.add_writer(wsock, calls.append, 1)
        run_iterations(loop, 5)
        loop.remove_writer(wsock)
    assert len(calls) >= 4


def test_reader_sees_eof(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        def reader():
            seen.append(rsock.recv(100))
            loop.remove_reader(rsock)
            loop.stop()

        loop.add_reader(rsock, reader)
        wsock.close()
        loop.run_forever()
    assert seen == [b""]


@pytest.mark.xfail_loop("uvloop", reason="remove_reader/remove_writer return None")
def test_remove_returns_whether_a_callback_was_registered(loop):
    with socketpair() as (rsock, wsock):
        assert loop.remove_reader(rsock) is False
        assert loop.remove_writer(rsock) is False
        loop.add_reader(rsock, lambda: None)
        loop.add_writer(rsock, lambda: None)
        assert loop.remove_reader(rsock) is True
        assert loop.remove_reader(rsock) is False
        assert loop.remove_writer(rsock) is True
        assert loop.remove_writer(rsock) is False


def test_remove_reader_inside_callback_stops_calls(loop):
    calls = []
    with socketpair() as (rsock, wsock):
        def reader():
            calls.append(1)
            loop.remove_reader(rsock)  # data left unread

        wsock.send(b"unread")
        loop.add_reader(rsock, reader)
        run_iterations(loop, 5)
    assert calls == [1]


@pytest.mark.xfail_loop("uvloop", reason="fd callbacks run inside the libuv poll phase, so "
                        "one that was already ready runs before a callback queued earlier "
                        "could remove it")
def test_removed_reader_never_runs_even_if_already_ready(loop):
    # Iteration 1: P makes rsock readable and schedules X. Iteration 2: the poll queues
    # the reader after X; X removes it, so it must not run.
    seen = []
    with socketpair() as (rsock, wsock):
        def x():
            seen.append("X")
            loop.remove_reader(rsock)

        def p():
            wsock.send(b"x")
            loop.call_soon(x)

        loop.add_reader(rsock, seen.append, "reader")
        loop.call_soon(p)
        run_iterations(loop, 4)
        loop.remove_reader(rsock)
    assert seen == ["X"]


def test_remove_reader_keeps_writer_and_back(loop):
    seen = []
    with socketpair() as (a, b):
        b.send(b"x")
        loop.add_reader(a, seen.append, "r")
        loop.add_writer(a, seen.append, "w")
        run_iterations(loop, 1)
        assert set(seen) == {"r", "w"}
        loop.remove_reader(a)
        seen.clear()
        run_iterations(loop, 2)
        assert set(seen) == {"w"}
        loop.add_reader(a, seen.append, "r")
        loop.remove_writer(a)
        seen.clear()
        run_iterations(loop, 2)
        assert set(seen) == {"r"}
        loop.remove_reader(a)


def test_add_reader_replaces_previous_reader(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        loop.add_reader(rsock, seen.append, "old")
        loop.add_reader(rsock, seen.append, "new")
        wsock.send(b"x")
        run_iterations(loop, 2)
        loop.remove_reader(rsock)
    assert seen and set(seen) == {"new"}


def test_add_writer_replaces_previous_writer(loop):
    seen = []
    with socketpair() as (a, b):
        loop.add_writer(a, seen.append, "old")
        loop.add_writer(a, seen.append, "new")
        run_iterations(loop, 2)
        loop.remove_writer(a)
    assert seen and set(seen) == {"new"}


def test_fd_as_int_and_as_object_with_fileno(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        wsock.send(b"x")
        loop.add_reader(FilenoOnly(rsock.fileno()), seen.append, "obj")
        run_iterations(loop, 1)
        loop.remove_reader(rsock.fileno())  # the same fd, named by its number
        n = len(seen)
        run_iterations(loop, 2)
        assert seen == ["obj"] * n and n >= 1
        loop.add_reader(rsock.fileno(), seen.append, "int")
        run_iterations(loop, 1)
        loop.remove_reader(FilenoOnly(rsock.fileno()))
    assert "int" in seen


def test_pipe_fds(loop):
    seen = []
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.set_blocking(w, False)

        def reader():
            seen.append(os.read(r, 100))
            loop.remove_reader(r)

        def writer():
            os.write(w, b"through a pipe")
            loop.remove_writer(w)

        loop.add_reader(r, reader)
        loop.add_writer(w, writer)
        run_iterations(loop, 3)
    finally:
        os.close(r)
        os.close(w)
    assert seen == [b"through a pipe"]


class BadFileno:
    def fileno(self):
        return "not an int"


BAD_FDS = {
    "str": "abc",
    "none": None,
    "float": 1.5,
    "negative": -1,
    "object": object(),
    "bad-fileno": BadFileno(),
}


def _asyncio_error(op, bad):
    """The exception type asyncio's own loop raises for this misuse (the oracle)."""
    oracle = asyncio.SelectorEventLoop()
    try:
        getattr(oracle, op)(bad, *([lambda: None] if op.startswith("add") else []))
    except Exception as exc:
        return type(exc)
    finally:
        oracle.close()
    return None


@pytest.mark.parametrize("bad", sorted(BAD_FDS))
@pytest.mark.parametrize("op", ["add_reader", "add_writer", "remove_reader", "remove_writer"])
def test_invalid_fd_raises_like_asyncio(loop, op, bad):
    expected = _asyncio_error(op, BAD_FDS[bad])
    assert expected in (ValueError, TypeError)
    args = [lambda: None] if op.startswith("add") else []
    with pytest.raises(expected):
        getattr(loop, op)(BAD_FDS[bad], *args)
    run_iterations(loop, 1)  # the loop is still fine


def _socket_with_fd(fd):
    """A connected socket pair whose first socket has file descriptor number fd."""
    a, b = socket.socketpair()
    if a.fileno() != fd:
        if b.fileno() == fd:
            a, b = b, a
        else:
            os.dup2(a.fileno(), fd)
            dup = socket.socket(fileno=fd)
            a.close()
            a = dup
    a.setblocking(False)
    b.setblocking(False)
    assert a.fileno() == fd
    return a, b


@pytest.mark.parametrize("direction", ["reader", "writer"])
@pytest.mark.xfail_loop("uvloop", reason="the libuv poll handle outlives close(): the old "
                        "callback fires for the socket that reuses the fd number, and "
                        "removing it closes that socket's fd")
def test_closed_fd_reused_does_not_inherit_callbacks(loop, direction):
    add = getattr(loop, f"add_{direction}")
    remove = getattr(loop, f"remove_{direction}")
    stale = []
    fresh = []
    old, old_peer = socket.socketpair()
    fd = old.fileno()
    add(old, stale.append, "old")
    old.close()  # still registered
    old_peer.close()
    new, new_peer = _socket_with_fd(fd)
    try:
        new_peer.send(b"for the new socket")  # new is readable, and writable
        run_iterations(loop, 5)
        assert stale == [], "the callback of a closed fd fired for the fd's next owner"
        # asyncio keeps the stale registration until removed: remove, then add anew
        remove(fd)
        add(new, lambda: (fresh.append("new"), remove(new)))
        run_iterations(loop, 3)
        assert fresh == ["new"]
        assert stale == []
    finally:
        remove(fd)
        new.close()
        new_peer.close()


def test_add_reader_on_closed_fd_raises_oserror(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    with pytest.raises(OSError):
        loop.add_reader(fd, lambda: None)
    run_iterations(loop, 1)


def test_add_reader_on_regular_file_raises_permission_error(loop, tmp_path):
    # epoll refuses regular files (EPERM); asyncio lets that surface.
    path = tmp_path / "file"
    path.write_bytes(b"x")
    with open(path, "rb") as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f, lambda: None)
        run_iterations(loop, 1)


def test_reader_added_from_callback(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        def add():
            loop.add_reader(rsock, lambda: (seen.append(rsock.recv(10)),
                                            loop.remove_reader(rsock)))
            wsock.send(b"late")

        loop.call_soon(add)
        run_iterations(loop, 4)
    assert seen == [b"late"]


def test_many_fds(loop):
    pairs = [socket.socketpair() for _ in range(200)]
    seen = set()
    try:
        for i, (r, w) in enumerate(pairs):
            r.setblocking(False)
            loop.add_reader(r, lambda i=i, r=r: (seen.add(i), r.recv(10),
                                                 loop.remove_reader(r)))
        for r, w in pairs[::2]:
            w.send(b"x")
        run_iterations(loop, 3)
    finally:
        for r, w in pairs:
            loop.remove_reader(r)
            r.close()
            w.close()
    assert seen == set(range(0, 200, 2))


# --- readiness that arrived while nobody was listening ------------------------------------
# A poller that registers each fd once, edge-triggered, sees one edge per change. These
# cases have no new edge after the (re-)registration, yet asyncio's level-triggered
# add_reader/add_writer must fire.


def test_reader_added_after_data_arrived(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        wsock.send(b"early")
        run_iterations(loop, 2)
        loop.add_reader(rsock, lambda: (seen.append(rsock.recv(100)),
                                        loop.remove_reader(rsock)))
        run_iterations(loop, 2)
    assert seen == [b"early"]


def test_reader_re_added_after_data_arrived_while_removed(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        loop.add_reader(rsock, seen.append, "first")
        run_iterations(loop, 2)
        loop.remove_reader(rsock)
        wsock.send(b"while removed")
        run_iterations(loop, 2)
        assert seen == []
        loop.add_reader(rsock, lambda: (seen.append(rsock.recv(100)),
                                        loop.remove_reader(rsock)))
        run_iterations(loop, 2)
    assert seen == [b"while removed"]


def test_writer_re_added_on_a_socket_that_stayed_writable(loop):
    seen = []
    with socketpair() as (a, b):
        loop.add_writer(a, seen.append, "first")
        run_iterations(loop, 2)
        loop.remove_writer(a)
        assert "first" in seen
        run_iterations(loop, 2)
        seen.clear()
        loop.add_writer(a, seen.append, "again")
        run_iterations(loop, 2)
        loop.remove_writer(a)
    assert seen and set(seen) == {"again"}


def test_reader_fires_for_new_data_after_draining(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        def reader():
            seen.append(rsock.recv(100))

        loop.add_reader(rsock, reader)
        for i in range(5):
            wsock.send(b"chunk %d" % i)
            run_iterations(loop, 2)
        loop.remove_reader(rsock)
    assert seen == [b"chunk %d" % i for i in range(5)]


def test_reader_partial_read_then_re_added_in_callback(loop):
    seen = []
    with socketpair() as (rsock, wsock):
        def reader():
            seen.append(rsock.recv(2))
            loop.remove_reader(rsock)
            if len(seen) < 3:
                loop.add_reader(rsock, reader)

        wsock.send(b"aabbcc")
        loop.add_reader(rsock, reader)
        run_iterations(loop, 6)
        loop.remove_reader(rsock)
    assert seen == [b"aa", b"bb", b"cc"]


def test_writer_fires_again_when_buffer_drains(loop):
    with socketpair() as (a, b):
        while True:  # fill a's send buffer
            try:
                a.send(b"x" * 65536)
            except BlockingIOError:
                break
        seen = []
        loop.add_writer(a, lambda: (seen.append("writable"), loop.remove_writer(a)))
        run_iterations(loop, 3)
        assert seen == []
        drain(b)
        loop.call_later(5, loop.stop)  # bound
        for _ in range(100):
            run_iterations(loop, 1)
            if seen:
                break
        loop.remove_writer(a)
    assert seen == ["writable"]


def test_close_leaves_registered_sockets_open(loop):
    with socketpair() as (rsock, wsock):
        loop.add_reader(rsock, lambda: None)
        loop.add_writer(wsock, lambda: None)
        loop.close()
        wsock.send(b"still open")
        assert rsock.recv(100) == b"still open"

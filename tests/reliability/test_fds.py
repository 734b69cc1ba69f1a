"""fds closed behind the loop's back, and their numbers reused by new sockets.

User code closes a socket the loop watches (add_reader, add_writer, a pending
sock_recv) without telling the loop, and the next socket it opens gets the same fd
number. No callback of the old registration may ever run for the new socket, no data
of the new socket may be taken by the old waiter, and no exception may escape.
"""

import asyncio
import socket

import pytest

from .support import ExceptionLog, run


def reuse_number(old):
    """Close `old` behind the loop's back and open a socket pair whose first end gets
    the same fd number; returns (new, peer)."""
    fd = old.fileno()
    old.close()
    new, peer = socket.socketpair()
    new.setblocking(False)
    peer.setblocking(False)
    if new.fileno() != fd:      # numbers are handed out lowest-first; a stray thread
        new.close()             # could take it in between, but nothing here does
        peer.close()
        pytest.fail(f"fd {fd} was not reused (got {new.fileno()})")
    return new, peer


async def iterations(n):
    for _ in range(n):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)   # and one real poll with a timeout


def _closed_from_its_callback(loop, add, remove):
    """add(fd, callback) on a socket whose callback, the first time it runs, closes
    the socket behind the loop's back and opens a new one under the same number.
    Returns the calls made after that (there must be none)."""
    log = ExceptionLog(loop)
    a, b = socket.socketpair()
    a.setblocking(False)
    fd = a.fileno()
    state = {"calls": 0, "new": None}

    def callback():
        state["calls"] += 1
        if state["new"] is None:
            # Closed by user code without remove_reader/remove_writer; the event
            # for it is already taken, so asyncio's own rule applies from here on.
            state["new"] = reuse_number(a)
            state["calls_at_close"] = state["calls"]
            state["new"][1].send(b"for the new socket")

    async def main():
        add(fd, callback)
        b.send(b"x")
        while state["new"] is None:
            await asyncio.sleep(0.01)
        await iterations(5)
        new, peer = state["new"]
        try:
            assert new.recv(100) == b"for the new socket"
        finally:
            remove(fd)
            new.close()
            peer.close()
            b.close()

    run(loop, main())
    assert log.contexts == []
    return state["calls"] - state["calls_at_close"]


def test_reader_closed_and_number_reused(loop):
    assert _closed_from_its_callback(loop, loop.add_reader, loop.remove_reader) == 0


def test_writer_closed_and_number_reused(loop):
    assert _closed_from_its_callback(loop, loop.add_writer, loop.remove_writer) == 0


@pytest.mark.xfail_loop(
    "asyncio", reason="asyncio's selector keeps the stale key of the closed fd and, the "
    "event mask being the same, never registers the new file with epoll: the new "
    "reader never fires")
def test_new_reader_on_reused_number(loop):
    """After the reuse, add_reader for the new socket works and only the new callback
    runs."""
    log = ExceptionLog(loop)
    fired = []
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        loop.add_reader(a.fileno(), lambda: fired.append("old"))
        await iterations(1)
        new, peer = reuse_number(a)
        got = loop.create_future()

        def new_reader():
            fired.append("new")
            if not got.done():
                got.set_result(new.recv(100))
        try:
            loop.add_reader(new.fileno(), new_reader)
            peer.send(b"hello")
            data = await asyncio.wait_for(got, 2)
            loop.remove_reader(new.fileno())
            return data
        finally:
            loop.remove_reader(new.fileno())
            new.close()
            peer.close()
            b.close()

    assert run(loop, main()) == b"hello"
    assert "old" not in fired and "new" in fired
    assert log.contexts == []


def test_pending_sock_recv_socket_closed_and_number_reused(loop):
    """A sock_recv waits; its socket is closed and the number reused: the old waiter
    takes none of the new socket's data; cancelling it leaves nothing behind."""
    log = ExceptionLog(loop)
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        waiter = asyncio.ensure_future(loop.sock_recv(a, 100))
        await iterations(2)
        assert not waiter.done()
        new, peer = reuse_number(a)
        try:
            peer.send(b"new data")
            await iterations(5)
            # The old waiter did not read the new socket's data.
            assert new.recv(100) == b"new data"
            waiter.cancel()
            try:
                await waiter
            except (asyncio.CancelledError, OSError):
                pass
        finally:
            new.close()
            peer.close()
            b.close()

    run(loop, main())
    assert log.contexts == []


def test_sock_recv_on_reused_number(loop):
    """After a socket with a pending sock_recv is closed behind the loop's back, a
    sock_recv on the socket that got its number completes when data comes."""
    log = ExceptionLog(loop)
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        waiter = asyncio.ensure_future(loop.sock_recv(a, 100))
        await iterations(2)
        new, peer = reuse_number(a)
        try:
            waiter.cancel()
            try:
                await waiter
            except (asyncio.CancelledError, OSError):
                pass
            fresh = asyncio.ensure_future(loop.sock_recv(new, 100))
            await iterations(2)
            peer.send(b"new data")
            return await asyncio.wait_for(fresh, 2)
        finally:
            new.close()
            peer.close()
            b.close()

    assert run(loop, main()) == b"new data"
    assert log.contexts == []


def test_transport_socket_closed_behind_its_back(loop):
    """A stream transport's socket is closed by user code and its number reused by a
    socket watched with add_reader: the transport's handlers never run for it."""
    log = ExceptionLog(loop)
    fired = []
    a, b = socket.socketpair()

    async def main():
        transport, proto = await loop.create_connection(asyncio.Protocol, sock=a)
        fd = a.fileno()
        # Behind the transport's back: os-level close of the number it watches.
        import os
        os.close(fd)
        new, peer = socket.socketpair()
        try:
            assert new.fileno() == fd
            new.setblocking(False)
            peer.send(b"data")
            await iterations(3)
            assert new.recv(100) == b"data"
        finally:
            new.close()
            peer.close()
            b.close()
        a.detach()          # its number belongs to nobody now
        transport.abort()
        await iterations(1)

    run(loop, main())
    assert fired == []
    assert log.contexts == []

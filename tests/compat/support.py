"""Small helpers shared by the compat tests (no fixtures here: see conftest.py)."""

import asyncio
import contextlib
import socket

# Upper bound for any single await in these tests: they run on loopback, so anything
# slower than this is a hang, not a slow machine.
STEP_TIMEOUT = 10


def run(loop, coro, timeout=STEP_TIMEOUT):
    """loop.run_until_complete(coro), bounded in time."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def run_iterations(loop, n):
    """Run exactly n iterations of loop (n >= 1) and return.

    A callback scheduled in iteration i runs in iteration i + 1, so a chain of n call_soon
    callbacks whose last one calls stop() spans n iterations.
    """
    def step(left):
        if left == 1:
            loop.stop()
        else:
            loop.call_soon(step, left - 1)

    loop.call_soon(step, n)
    loop.run_forever()


class Ticker:
    """Counts loop iterations: a callback that reschedules itself with call_soon.

    While it runs the loop never blocks in its poll (there is always a ready callback).
    """

    def __init__(self, loop):
        self.loop = loop
        self.n = 0
        self.handle = loop.call_soon(self._tick)

    def _tick(self):
        self.n += 1
        self.handle = self.loop.call_soon(self._tick)

    def stop(self):
        self.handle.cancel()


@contextlib.contextmanager
def socketpair():
    """A connected, non-blocking AF_UNIX stream pair, closed on exit."""
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.setblocking(False)
        yield a, b
    finally:
        a.close()
        b.close()


@contextlib.contextmanager
def tcp_pair():
    """A connected, non-blocking loopback TCP pair (client, server), closed on exit."""
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        client = socket.create_connection(lsock.getsockname())
        server, _ = lsock.accept()
    try:
        client.setblocking(False)
        server.setblocking(False)
        yield client, server
    finally:
        client.close()
        server.close()


@contextlib.contextmanager
def tcp_listener():
    """A non-blocking listening TCP socket on 127.0.0.1, closed on exit."""
    lsock = socket.create_server(("127.0.0.1", 0), backlog=16)
    lsock.setblocking(False)
    try:
        yield lsock
    finally:
        lsock.close()


def drain(sock):
    """Read everything currently buffered on a non-blocking socket."""
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)

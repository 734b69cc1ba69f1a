"""Helpers shared by the reliability rows (fixtures come from tests/compat/conftest.py)."""

import asyncio
import os
import socket
import struct
import threading

from compat.support import STEP_TIMEOUT, run  # noqa: F401  (re-exported)


def open_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def set_linger_zero(sock):
    """close() on sock then sends a reset (RST) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class ExceptionLog:
    """An exception handler that records every context it is given.

    A sysmon report (gmploop's watchdog: a callback held the loop past its threshold;
    the context has 'blocked_for') is kept apart, in ``blocked``: these tests do long
    work in one callback on purpose (100k cancellations, a blocking call), and on a
    busy machine a step may cross the threshold. It is a report, not an error."""

    def __init__(self, loop):
        self.contexts = []
        self.blocked = []

        def handler(_loop, context):
            (self.blocked if "blocked_for" in context else self.contexts).append(context)

        loop.set_exception_handler(handler)

    def messages(self):
        return [c.get("message") for c in self.contexts]


class Recorder(asyncio.Protocol):
    """A server protocol that records what happens to its connection."""

    def __init__(self, events=None):
        self.transport = None
        self.data = bytearray()
        self.eof = False
        self.lost = None
        self.closed = asyncio.get_event_loop().create_future()
        self.made = asyncio.get_event_loop().create_future()
        self.events = events

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        self.lost = exc
        self.closed.set_result(exc)


async def start_server(loop, factory, **kwargs):
    server = await loop.create_server(factory, "127.0.0.1", 0, **kwargs)
    return server, server.sockets[0].getsockname()[1]


class Client(threading.Thread):
    """A blocking client that runs `body(sock)` in a thread; its error is re-raised by
    join()."""

    def __init__(self, port, body):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        self.body = body
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.body(self.sock)
        except BaseException as exc:
            self.error = exc
        finally:
            self.sock.close()

    def join(self, timeout=STEP_TIMEOUT):
        super().join(timeout)
        assert not self.is_alive(), "client thread hung"
        if self.error is not None:
            raise self.error
        return self.result

"""gmploop's stream transport on the edge-triggered poller: what asyncio's behaviour
tests cannot see (they pass on any loop): registrations, syscalls, budgets."""

import asyncio
import socket

import pytest

import gmploop

pytestmark = pytest.mark.timeout(30)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.chunks = []
        self.size = 0
        self.want = 0
        self.waiter = None
        self.loop = loop

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.chunks.append(data)
        self.size += len(data)
        if self.waiter is not None and self.size >= self.want:
            self.waiter.set_result(None)
            self.waiter = None

    async def wait_for(self, size):
        if self.size < size:
            self.want = size
            self.waiter = self.loop.create_future()
            await self.waiter


def _pair(loop, client_proto):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    server_tr = loop._make_socket_transport(a, Echo())
    client_tr = loop._make_socket_transport(b, client_proto)
    return server_tr, client_tr


def test_steady_state_echo_makes_no_poll_ctl_calls():
    async def main():
        loop = asyncio.get_running_loop()
        proto = Collect(loop)
        server_tr, client_tr = _pair(loop, proto)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        before = loop.stats()['poll_ctl_calls']
        total = 0
        for i in range(500):
            msg = bytes([i % 256]) * 1000
            client_tr.write(msg)
            total += len(msg)
            if i % 50 == 0:
                client_tr.pause_reading()
                await asyncio.sleep(0)
                client_tr.resume_reading()
            await proto.wait_for(total)
        # A large write that has to wait for the writable edge, and writelines.
        client_tr.writelines([b'a' * 300_000, b'b' * 300_000])
        total += 600_000
        await proto.wait_for(total)
        after = loop.stats()['poll_ctl_calls']
        client_tr.close()
        server_tr.close()
        await asyncio.sleep(0.01)
        return after - before, proto.size, total

    delta, got, sent = gmploop.run(main())
    assert got == sent
    assert delta == 0


def test_transport_fd_is_registered_once_and_released_on_close():
    async def main():
        loop = asyncio.get_running_loop()
        base = loop.stats()['fds_registered']
        ctl = loop.stats()['poll_ctl_calls']
        server_tr, client_tr = _pair(loop, Collect(loop))
        registered = loop.stats()['fds_registered'] - base
        client_tr.close()
        server_tr.abort()
        await asyncio.sleep(0.01)
        return (registered, loop.stats()['fds_registered'] - base,
                loop.stats()['poll_ctl_calls'] - ctl)

    registered, after_close, ctl = gmploop.run(main())
    assert registered == 2
    assert after_close == 0
    assert ctl <= 4     # one add and at most one delete per socket


def test_busy_connection_yields_to_others_on_its_read_budget():
    """A connection with megabytes queued is read a budget at a time; another
    connection's data is delivered in between, not after all of it."""
    async def main():
        loop = asyncio.get_running_loop()
        order = []

        class Tag(asyncio.Protocol):
            def __init__(self, name):
                self.name = name

            def data_received(self, data):
                order.append(self.name)

        big_a, big_b = socket.socketpair()
        small_a, small_b = socket.socketpair()
        for s in (big_a, big_b, small_a, small_b):
            s.setblocking(False)
        big_b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        big_a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sent = 0
        try:
            while sent < (4 << 20):
                sent += big_b.send(b'x' * 65536)
        except BlockingIOError:
            pass
        small_b.send(b'hello')
        t1 = loop._make_socket_transport(big_a, Tag('big'))
        t2 = loop._make_socket_transport(small_a, Tag('small'))
        for _ in range(10):
            await asyncio.sleep(0)
        t1.close()
        t2.close()
        big_b.close()
        small_b.close()
        await asyncio.sleep(0.01)
        return sent, order

    sent, order = gmploop.run(main())
    # Enough data queued for several budgets (each budget is 4 full 256 KiB reads) ...
    assert sent > 2 * 4 * 256 * 1024 or order.count('big') > 4
    # ... yet the small connection is not served last.
    assert 'small' in order
    assert order.index('small') < len(order) - 1

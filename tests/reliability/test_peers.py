"""Peers that misbehave: resets, half-closes, vanishing, dribbling, never reading.

Each row runs a server on the loop under test (asyncio's loop, the bar, and gmploop)
and a plain blocking client in a thread or a child process. Nothing may escape the
loop: the exception handler records every context and the fixture fails a test that
logged an error it did not expect.
"""

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from .support import (STEP_TIMEOUT, Client, ExceptionLog, Recorder, run, set_linger_zero,
                      start_server)

RESET_ERRORS = (ConnectionResetError, BrokenPipeError)


def _reset_by_peer(loop, protocol_class, before_reset):
    """A server on loop with protocol_class; a client connects, runs
    before_reset(sock, protos) and closes with a reset. Returns (the exception
    connection_lost got, the protocols made)."""
    protos = []

    def factory():
        protos.append(protocol_class())
        return protos[-1]

    async def main():
        server, port = await start_server(loop, factory)
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            await before_reset(sock, protos)
            set_linger_zero(sock)
        finally:
            sock.close()
        exc = await protos[0].closed
        server.close()
        await server.wait_closed()
        return exc

    return run(loop, main()), protos


def test_reset_mid_read(loop):
    """The peer sends part of a message, then resets: connection_lost gets a
    ConnectionResetError (asyncio's read path), the data before it was delivered."""
    log = ExceptionLog(loop)

    async def send_part(sock, protos):
        sock.sendall(b"x" * 1000)
        while len(protos) == 0 or len(protos[0].data) < 1000:
            await asyncio.sleep(0.01)

    exc, protos = _reset_by_peer(loop, Recorder, send_part)
    assert isinstance(exc, ConnectionResetError), exc
    assert bytes(protos[0].data) == b"x" * 1000
    assert protos[0].transport.is_closing()
    assert log.contexts == []


def test_reset_mid_write(loop):
    """The server is writing more than the socket takes when the peer resets: the
    write fails with ECONNRESET or EPIPE, connection_lost reports it, nothing is
    logged (an OSError on a transport is reported only in debug mode, as asyncio
    does)."""
    log = ExceptionLog(loop)

    class Writer(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"y" * (8 * 1024 * 1024))

    async def read_a_little(sock, protos):
        await protos_made(protos)
        sock.recv(1000)     # the write is under way
        while protos[0].transport.get_write_buffer_size() == 0:
            await asyncio.sleep(0.01)

    exc, protos = _reset_by_peer(loop, Writer, read_a_little)
    assert isinstance(exc, RESET_ERRORS), exc
    assert protos[0].transport.get_write_buffer_size() == 0 or protos[0].transport.is_closing()
    # A write after the loss is dropped silently (asyncio counts and warns later).
    protos[0].transport.write(b"late")
    assert log.contexts == []


async def protos_made(protos):
    while not protos:
        await asyncio.sleep(0.005)
    await protos[0].made


def test_half_close_then_reply(loop):
    """The peer shuts down its sending side; the server, whose eof_received keeps the
    connection open, still replies and the peer reads the reply whole."""
    log = ExceptionLog(loop)
    protos = []

    class HalfOpen(Recorder):
        def eof_received(self):
            super().eof_received()
            self.transport.write(hashlib.sha256(self.data).hexdigest().encode())
            self.transport.close()
            return True

    def factory():
        protos.append(HalfOpen())
        return protos[-1]

    payload = os.urandom(300_000)

    def client(sock):
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    async def main():
        server, port = await start_server(loop, factory)
        c = Client(port, client)
        c.start()
        exc = await protos_made(protos) or await protos[0].closed
        reply = await loop.run_in_executor(None, c.join)
        server.close()
        await server.wait_closed()
        return exc, reply

    exc, reply = run(loop, main())
    assert exc is None
    assert protos[0].eof
    assert reply == hashlib.sha256(payload).hexdigest().encode()
    assert log.contexts == []


VANISHING_CLIENT = textwrap.dedent("""
    import socket, sys, time
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.sendall(b"hello")
    print("connected", flush=True)
    while True:
        time.sleep(1)
""")


def test_peer_process_vanishes(loop):
    """The peer's process is killed (SIGKILL): its kernel closes the socket; the server
    sees the end of the stream (or a reset) and connection_lost, and keeps serving."""
    log = ExceptionLog(loop)
    protos = []

    def factory():
        protos.append(Recorder())
        return protos[-1]

    async def main():
        server, port = await start_server(loop, factory)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", VANISHING_CLIENT, str(port), stdout=subprocess.PIPE)
        assert await proc.stdout.readline() == b"connected\n"
        await protos_made(protos)
        proc.kill()
        await proc.wait()
        exc = await protos[0].closed
        # Still serving: a new client is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"again")
        await asyncio.sleep(0)
        while len(protos) < 2 or len(protos[1].data) < 5:
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        await protos[1].closed
        server.close()
        await server.wait_closed()
        return exc

    exc = run(loop, main())
    assert exc is None or isinstance(exc, RESET_ERRORS), exc
    assert protos[0].eof or exc is not None
    assert bytes(protos[0].data) == b"hello"
    assert bytes(protos[1].data) == b"again"
    assert log.contexts == []


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


@pytest.mark.timeout(60)
def test_slowloris_does_not_delay_others(loop):
    """One client dribbles bytes one at a time; another client's echo round trips stay
    prompt (a loose bound: a second each, where a stall would be the dribble's length),
    and the dribbled bytes arrive intact."""
    log = ExceptionLog(loop)
    dribble = bytes(range(256)) * 2

    def slow(sock):
        got = bytearray()
        for b in dribble:
            sock.sendall(bytes([b]))
            time.sleep(0.002)
        while len(got) < len(dribble):
            got += sock.recv(65536)
        return bytes(got)

    def fast(sock):
        worst = 0.0
        for i in range(200):
            msg = b"%05d" % i * 20
            t0 = time.monotonic()
            sock.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += sock.recv(65536)
            worst = max(worst, time.monotonic() - t0)
            assert got == msg
        return worst

    async def main():
        server, port = await start_server(loop, Echo)
        s = Client(port, slow)
        f = Client(port, fast)
        s.start()
        f.start()
        got = await loop.run_in_executor(None, s.join)
        worst = await loop.run_in_executor(None, f.join)
        server.close()
        await server.wait_closed()
        return got, worst

    got, worst = run(loop, main(), timeout=50)
    assert got == dribble
    assert worst < 1.0, f"an echo took {worst:.3f}s while another client dribbled"
    assert log.contexts == []


def test_never_reading_client_backpressure(loop):
    """The server writes as fast as it is allowed to a client that does not read:
    pause_writing is called, the transport's buffer stays within its high-water mark
    plus one write, and once the client reads, resume_writing is called and every
    byte arrives in order."""
    log = ExceptionLog(loop)
    CHUNK = 64 * 1024
    TOTAL = 16 * 1024 * 1024
    state = {}

    class Producer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.sent = 0
            self.paused = False
            self.pauses = self.resumes = 0
            self.max_buffer = 0
            self.digest = hashlib.sha256()
            self.done = asyncio.get_event_loop().create_future()
            state["proto"] = self
            transport.set_write_buffer_limits(high=256 * 1024)
            self.produce()

        def produce(self):
            while not self.paused and self.sent < TOTAL:
                chunk = (b"%08d" % (self.sent // CHUNK)) * (CHUNK // 8)
                self.digest.update(chunk)
                self.transport.write(chunk)
                self.sent += len(chunk)
                self.max_buffer = max(self.max_buffer,
                                      self.transport.get_write_buffer_size())
            if self.sent >= TOTAL and not self.done.done():
                self.transport.write_eof()
                self.done.set_result(None)

        def pause_writing(self):
            self.paused = True
            self.pauses += 1

        def resume_writing(self):
            self.paused = False
            self.resumes += 1
            asyncio.get_event_loop().call_soon(self.produce)

        def connection_lost(self, exc):
            state["lost"] = exc

    def reader(sock):
        digest = hashlib.sha256()
        n = 0
        while chunk := sock.recv(1024 * 1024):
            digest.update(chunk)
            n += len(chunk)
        return n, digest.hexdigest()

    async def main():
        server, port = await start_server(loop, Producer)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(STEP_TIMEOUT)
        while "proto" not in state:
            await asyncio.sleep(0.005)
        proto = state["proto"]
        await asyncio.sleep(0.3)    # the client does not read
        stalled = (proto.paused, proto.sent, proto.transport.get_write_buffer_size())
        n, digest = await loop.run_in_executor(None, reader, sock)
        sock.close()
        await proto.done
        server.close()
        await server.wait_closed()
        return stalled, n, digest

    stalled, n, digest = run(loop, main(), timeout=60)
    proto = state["proto"]
    paused, sent_while_stalled, buffered = stalled
    assert paused and sent_while_stalled < TOTAL
    high = proto.transport.get_write_buffer_limits()[1]
    assert proto.max_buffer <= high + CHUNK, (proto.max_buffer, high)
    assert buffered <= high + CHUNK
    assert proto.pauses >= 1 and proto.resumes >= 1
    assert n == TOTAL and digest == proto.digest.hexdigest()
    assert log.contexts == []


@pytest.mark.timeout(90)
def test_huge_single_write(loop):
    """One 100 MiB transport.write() arrives intact (checksum)."""
    log = ExceptionLog(loop)
    size = 100 * 1024 * 1024
    payload = os.urandom(1024 * 1024) * 100
    expected = hashlib.sha256(payload).hexdigest()

    class Sender(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(payload)
            transport.close()

    def reader(sock):
        digest = hashlib.sha256()
        n = 0
        buf = bytearray(1024 * 1024)
        while (k := sock.recv_into(buf)):
            digest.update(memoryview(buf)[:k])
            n += k
        return n, digest.hexdigest()

    async def main():
        server, port = await start_server(loop, Sender)
        c = Client(port, reader)
        c.start()
        result = await loop.run_in_executor(None, c.join, 60)
        server.close()
        await server.wait_closed()
        return result

    n, digest = run(loop, main(), timeout=80)
    assert n == size
    assert digest == expected
    assert log.contexts == []


def test_many_small_writes_in_order(loop, loop_name):
    """100,000 small writes and writelines of varying sizes, from several callbacks:
    the peer receives exactly their concatenation, in order."""
    if loop_name == "asyncio" and sys.version_info >= (3, 12):
        # Measured: 86 s on 3.13, where gmploop takes a tenth of a second.
        pytest.xfail("from 3.12 asyncio's socket transport sums its whole buffer on "
                     "every write that is buffered (get_write_buffer_size), so this "
                     "row takes it minutes: quadratic in the number of pending writes")
    log = ExceptionLog(loop)
    pieces = [b"%d," % i * (1 + i % 7) for i in range(100_000)]
    expected = hashlib.sha256(b"".join(pieces)).hexdigest()
    total = sum(map(len, pieces))

    class Sender(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.i = 0
            asyncio.get_event_loop().call_soon(self.burst)

        def burst(self):
            end = min(self.i + 5000, len(pieces))
            if (self.i // 5000) % 2:
                self.transport.writelines(pieces[self.i:end])
            else:
                for p in pieces[self.i:end]:
                    self.transport.write(p)
            self.i = end
            if self.i < len(pieces):
                asyncio.get_event_loop().call_soon(self.burst)
            else:
                self.transport.close()

    def reader(sock):
        digest = hashlib.sha256()
        n = 0
        while chunk := sock.recv(65536):
            digest.update(chunk)
            n += len(chunk)
        return n, digest.hexdigest()

    async def main():
        server, port = await start_server(loop, Sender)
        c = Client(port, reader)
        c.start()
        result = await loop.run_in_executor(None, c.join)
        server.close()
        await server.wait_closed()
        return result

    n, digest = run(loop, main(), timeout=60)
    assert n == total
    assert digest == expected
    assert log.contexts == []


@pytest.mark.xfail_loop(
    "asyncio", condition=sys.version_info >= (3, 12),
    reason="from 3.12 asyncio's socket transport keeps a reference to a mutable buffer "
    "it could not send at once, and sends what the buffer holds later")
def test_buffer_mutated_after_write(loop):
    """write() takes the bytes as they are at the call: the caller may reuse its
    bytearray (or the memory under a memoryview) at once, even when the write is
    buffered because the socket is full."""
    a, b = socket.socketpair()
    b.setblocking(False)

    async def main():
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        big = bytearray(b"A" * 4_000_000)   # more than the socket takes at once
        transport.write(big)
        small = bytearray(b"B" * 1000)
        transport.write(small)
        view_source = bytearray(b"C" * 1000)
        transport.write(memoryview(view_source))
        big[:] = b"Z" * len(big)
        small[:] = b"Y" * len(small)
        view_source[:] = b"X" * len(view_source)
        got = bytearray()
        while len(got) < 4_002_000:
            await asyncio.sleep(0)
            try:
                got += b.recv(1 << 20)
            except BlockingIOError:
                pass
        transport.close()
        await asyncio.sleep(0)
        return bytes(got)

    try:
        got = run(loop, main())
    finally:
        b.close()
    assert got == b"A" * 4_000_000 + b"B" * 1000 + b"C" * 1000


# Protocol and peer faults whose outcome is compared between the two loops directly:
# what connection_lost was given and what reached the exception handler.

async def _writes_after_loss(loop, events):
    a, b = socket.socketpair()
    lost = loop.create_future()

    class P(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(exc)

    transport, _ = await loop.create_connection(P, sock=a)
    set_linger_zero(b)
    b.close()
    events.append(type(await lost).__name__)
    for _ in range(10):
        transport.write(b"x")      # asyncio warns from the fifth on; never raises
    await asyncio.sleep(0.01)


async def _drain_after_reset(loop, events):
    server_writer = loop.create_future()

    async def handler(reader, writer):
        server_writer.set_result(writer)

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    sock = socket.create_connection(server.sockets[0].getsockname())
    writer = await server_writer
    writer.write(b"x" * 10_000_000)
    set_linger_zero(sock)
    sock.close()
    try:
        await writer.drain()
        events.append("drained")
    except Exception as exc:
        events.append(type(exc).__name__)
    writer.close()
    server.close()
    await server.wait_closed()


def _protocol_fault(make_protocol, provoke):
    async def case(loop, events):
        a, b = socket.socketpair()
        lost = loop.create_future()
        protocol_class = make_protocol(lost)
        await loop.create_connection(protocol_class, sock=a)
        provoke(b)
        events.append(type(await asyncio.wait_for(lost, 5)).__name__)
        b.close()
    return case


def _empty_buffer(lost):
    class P(asyncio.BufferedProtocol):
        def get_buffer(self, n):
            return bytearray(0)

        def buffer_updated(self, n):
            pass

        def connection_lost(self, exc):
            lost.set_result(exc)
    return P


def _raising(method):
    base = asyncio.BufferedProtocol if method == "get_buffer" else asyncio.Protocol

    def make(lost):
        class P(base):
            def connection_lost(self, exc):
                lost.set_result(exc)

            def buffer_updated(self, n):
                pass
        setattr(P, method, lambda self, *args: 1 / 0)
        return P
    return make


async def _udp_refused(loop, events):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    class P(asyncio.DatagramProtocol):
        def error_received(self, exc):
            events.append(type(exc).__name__)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", port))
    for _ in range(3):
        transport.sendto(b"x")
        await asyncio.sleep(0.02)
    transport.close()
    await asyncio.sleep(0)


PROTOCOL_FAULTS = {
    "writes after the connection was lost": _writes_after_loss,
    "drain() after the peer reset": _drain_after_reset,
    "get_buffer() returns an empty buffer":
        _protocol_fault(_empty_buffer, lambda b: b.send(b"abc")),
    "get_buffer() raises": _protocol_fault(_raising("get_buffer"), lambda b: b.send(b"abc")),
    "data_received() raises": _protocol_fault(_raising("data_received"),
                                              lambda b: b.send(b"abc")),
    "eof_received() raises": _protocol_fault(_raising("eof_received"),
                                             lambda b: b.shutdown(socket.SHUT_WR)),
    "UDP peer's port closed (ICMP refused)": _udp_refused,
}


def _fault_outcome(name, case):
    from compat.conftest import _asyncio_factory
    import gmploop
    loop = _asyncio_factory() if name == "asyncio" else gmploop.new_event_loop()
    events = []
    loop.set_exception_handler(      # sysmon reports aside: see support.ExceptionLog
        lambda _l, ctx: None if "blocked_for" in ctx else events.append(
            (ctx.get("message"), type(ctx.get("exception")).__name__)))
    try:
        loop.run_until_complete(asyncio.wait_for(case(loop, events), 10))
    finally:
        loop.close()
    return events


@pytest.mark.parametrize("fault", list(PROTOCOL_FAULTS), ids=list(PROTOCOL_FAULTS))
def test_protocol_fault_matches_asyncio(fault, caplog):
    expected = _fault_outcome("asyncio", PROTOCOL_FAULTS[fault])
    expected_warnings = [r.getMessage() for r in caplog.records]
    caplog.clear()
    got = _fault_outcome("gmploop", PROTOCOL_FAULTS[fault])
    got_warnings = [r.getMessage() for r in caplog.records]
    assert got == expected
    assert got_warnings == expected_warnings

"""Stream transports at the protocol level: create_connection, create_server and the
Unix-socket twins, with the transport's whole contract checked against a real peer.

Most tests connect a transport to a plain non-blocking socket (the "peer") that the test
drives with loop.sock_*: the peer can stay silent, read nothing, half-close or reset the
connection, which is how the transport's flow control and error paths are reached.

What asyncio promises and these tests pin down:
- callbacks in order: connection_made, data_received*, eof_received, connection_lost,
  exactly once each (eof at most once), nothing after connection_lost;
- eof_received returning a true value keeps the transport open for writing; a false one
  makes the transport close itself;
- close() flushes what is buffered, then calls connection_lost(None); abort() drops it;
  a connection reset by the peer reaches connection_lost as the OSError;
- pause_reading() stops data (and EOF) until resume_reading();
- write flow control: pause_writing() when the buffer goes above the high-water mark,
  resume_writing() when it drains to the low-water mark;
- BufferedProtocol: the loop reads into the protocol's own buffer, however small.
"""

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import socket
import struct
import tempfile

import pytest

from .support import STEP_TIMEOUT, run

# asyncio's words for a write of the wrong type: later 3.13 releases name the types.
BYTES_ONLY = (r"data argument must be a (bytes-like|bytes, bytearray, or memoryview) "
              r"object, not '{}'")

MiB = 1024 * 1024


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


class Recorder(asyncio.Protocol):
    """Records every callback; futures resolve on made/eof/lost."""

    def __init__(self, eof_result=None):
        loop = asyncio.get_running_loop()
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.transport = None
        self.data = bytearray()
        self.events = []
        self.eof_result = eof_result
        self.paused = False
        self.pauses = []      # write buffer size at each pause_writing
        self.resumes = []     # ... and at each resume_writing
        self.late = []        # callbacks that came after connection_lost

    def _event(self, name):
        if self.lost.done():
            self.late.append(name)
        if not (name == "data" and self.events and self.events[-1] == "data"):
            self.events.append(name)

    def connection_made(self, transport):
        self._event("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self._event("data")
        assert isinstance(data, bytes)
        self.data += data

    def eof_received(self):
        self._event("eof")
        self.eof.set_result(None)
        return self.eof_result

    def connection_lost(self, exc):
        self._event("lost")
        self.lost.set_result(exc)

    def pause_writing(self):
        self._event("pause")
        assert not self.paused
        self.paused = True
        self.pauses.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        self._event("resume")
        assert self.paused
        self.paused = False
        self.resumes.append(self.transport.get_write_buffer_size())


class Buffered(asyncio.BufferedProtocol):
    def __init__(self, size):
        loop = asyncio.get_running_loop()
        self.buf = bytearray(size)
        self.data = bytearray()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.hints = set()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.add(sizehint)
        return memoryview(self.buf)

    def buffer_updated(self, nbytes):
        assert 0 < nbytes <= len(self.buf)
        self.data += self.buf[:nbytes]

    def eof_received(self):
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def without_flow_control(events):
    return [e for e in events if e not in ("pause", "resume")]


async def wait_until(predicate, timeout=STEP_TIMEOUT):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


async def peer_read(sock, n=None):
    """Read from the raw peer until EOF (or n bytes); a reset counts as EOF."""
    loop = asyncio.get_running_loop()
    chunks = []
    got = 0
    while n is None or got < n:
        try:
            data = await loop.sock_recv(sock, 256 * 1024)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


@contextlib.contextmanager
def unix_path():
    d = tempfile.mkdtemp(prefix="gmpl", dir="/tmp")
    try:
        yield os.path.join(d, "s")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["tcp", "unix"])
def family(request):
    return request.param


@contextlib.asynccontextmanager
async def connected(family, factory=Recorder):
    """A client transport (create_connection or create_unix_connection) whose peer is a
    raw non-blocking socket; yields (transport, protocol, peer). Closes both on exit and
    waits for connection_lost, so no fd outlives the test."""
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        if family == "tcp":
            lsock = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            lsock.setblocking(False)
            transport, proto = await loop.create_connection(factory, *lsock.getsockname())
        else:
            path = stack.enter_context(unix_path())
            lsock = stack.enter_context(socket.socket(socket.AF_UNIX))
            lsock.bind(path)
            lsock.listen(1)
            lsock.setblocking(False)
            transport, proto = await loop.create_unix_connection(factory, path)
        peer, _ = await loop.sock_accept(lsock)
        stack.enter_context(peer)
        try:
            yield transport, proto, peer
        finally:
            if not transport.is_closing():
                transport.abort()
            await asyncio.wait_for(asyncio.shield(proto.lost), STEP_TIMEOUT)


# --- lifecycle -----------------------------------------------------------------------


def test_server_and_client_protocols_see_the_same_conversation(loop, family):
    async def main():
        server_protos = []

        def server_factory():
            p = Recorder(eof_result=True)
            server_protos.append(p)
            return p

        with contextlib.ExitStack() as stack:
            if family == "tcp":
                server = await loop.create_server(server_factory, "127.0.0.1", 0)
                addr = server.sockets[0].getsockname()
                transport, client = await loop.create_connection(Recorder, *addr)
            else:
                path = stack.enter_context(unix_path())
                server = await loop.create_unix_server(server_factory, path)
                transport, client = await loop.create_unix_connection(Recorder, path)
            try:
                assert transport.get_protocol() is client
                assert client.events == ["made"]
                await wait_until(lambda: server_protos)
                (sproto,) = server_protos
                stransport = await sproto.made
                transport.write(b"hello ")
                transport.writelines([b"from ", bytearray(b"the "), memoryview(b"client")])
                await wait_until(lambda: len(sproto.data) == 21)
                assert sproto.data == b"hello from the client"
                assert transport.can_write_eof()
                transport.write_eof()
                await sproto.eof
                # eof_received returned True: the server side can still answer.
                assert not stransport.is_closing()
                stransport.write(b"answer")
                stransport.close()
                assert stransport.is_closing()
                assert await client.lost is None
                assert await sproto.lost is None
                assert client.data == b"answer"
                assert client.events == ["made", "data", "eof", "lost"]
                assert sproto.events == ["made", "data", "eof", "lost"]
                assert not client.late and not sproto.late
                assert transport.is_closing()
            finally:
                transport.close()
                server.close()
                await server.wait_closed()

    run(loop, main())


@pytest.mark.parametrize("eof_result", [None, False, True])
def test_eof_received_return_value(loop, family, eof_result):
    async def main():
        async with connected(family, lambda: Recorder(eof_result=eof_result)) as (
                transport, proto, peer):
            await loop.sock_sendall(peer, b"last")
            peer.shutdown(socket.SHUT_WR)
            await proto.eof
            assert proto.data == b"last"
            if eof_result:
                assert not transport.is_closing()
                await asyncio.sleep(0.02)
                assert not proto.lost.done()
                transport.write(b"still open")
                assert await peer_read(peer, 10) == b"still open"
                transport.close()
            # A false result: the transport closes itself.
            assert await proto.lost is None
            assert transport.is_closing()
            assert await peer_read(peer) == b""
            assert proto.events == ["made", "data", "eof", "lost"]

    run(loop, main())


def test_data_and_the_eof_behind_it_arrive_in_two_iterations(loop, family):
    """Data and the peer's FIN, both queued before the transport first reads: asyncio's
    reader gives data_received in one iteration and eof_received in a later one, so
    a callback that data_received schedules runs between them. Code that inspects a
    connection on the iteration after its data (run_until_complete returning, say)
    relies on that."""
    class Marker(Recorder):
        def data_received(self, data):
            super().data_received(data)
            asyncio.get_running_loop().call_soon(self._event, "next iteration")

    async def main():
        with contextlib.ExitStack() as stack:
            if family == "tcp":
                lsock = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
                peer = stack.enter_context(socket.create_connection(lsock.getsockname()))
                sock, _ = lsock.accept()
            else:
                sock, peer = socket.socketpair()
                stack.enter_context(peer)
            peer.sendall(b"last words")
            peer.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0.01)      # both are in the kernel's queue now
            transport, proto = await loop.connect_accepted_socket(Marker, sock)
            assert await asyncio.wait_for(proto.lost, STEP_TIMEOUT) is None
            assert proto.data == b"last words"
            assert proto.events == ["made", "data", "next iteration", "eof", "lost"]

    run(loop, main())


def test_get_extra_info(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            sock = transport.get_extra_info("socket")
            assert sock.family == (socket.AF_INET if family == "tcp" else socket.AF_UNIX)
            assert sock.type == socket.SOCK_STREAM
            assert sock.fileno() >= 0
            assert transport.get_extra_info("peername") == peer.getsockname()
            assert transport.get_extra_info("sockname") == peer.getpeername()
            assert transport.get_extra_info("sockname") == sock.getsockname()
            assert transport.get_extra_info("no such thing") is None
            assert transport.get_extra_info("no such thing", 42) == 42

    run(loop, main())


def test_write_eof_flushes_then_half_closes(loop, family):
    data = payload(8 * MiB, 1)

    async def main():
        async with connected(family) as (transport, proto, peer):
            assert transport.can_write_eof()
            transport.write(data)
            transport.write_eof()
            transport.write_eof()   # twice: no-op
            with pytest.raises(RuntimeError, match=r"Cannot call write\(\) after write_eof\(\)"):
                transport.write(b"more")
            got = await peer_read(peer)
            assert len(got) == len(data) and got == data
            # Half-closed: the transport still reads.
            await loop.sock_sendall(peer, b"reply")
            await wait_until(lambda: proto.data == b"reply")
            assert not transport.is_closing()
            peer.shutdown(socket.SHUT_WR)
            assert await proto.lost is None

    run(loop, main())


@pytest.mark.timeout(60)
def test_one_64_mib_write_arrives_intact(loop, family):
    data = payload(64 * MiB, 2)

    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.write(data)
            got = await peer_read(peer, len(data))
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            await wait_until(lambda: transport.get_write_buffer_size() == 0)

    run(loop, main(), timeout=40)


class Keeper(Recorder):
    """A Recorder that also keeps every bytes object data_received got, with its digest
    at the moment it arrived."""

    def __init__(self):
        super().__init__()
        self.chunks = []

    def data_received(self, data):
        super().data_received(data)
        self.chunks.append((data, hashlib.sha256(data).digest()))


def test_large_and_small_reads_arrive_intact_and_stay_intact(loop, family):
    # Messages on both sides of the sizes where a transport may change how it reads (a
    # large read followed by small ones, and back): all of it arrives, in order, and
    # every bytes object the protocol kept still holds what it held when it came.
    sizes = [300 * 1024, 5, 100 * 1024, 70 * 1024, 1, 2 * MiB, 64 * 1024, 3, 200 * 1024]
    data = payload(sum(sizes), 5)

    async def main():
        loop = asyncio.get_running_loop()
        async with connected(family, Keeper) as (transport, proto, peer):
            sent = 0
            for n in sizes:
                await loop.sock_sendall(peer, data[sent:sent + n])
                sent += n
                await wait_until(lambda: len(proto.data) >= sent)
            peer.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(asyncio.shield(proto.eof), STEP_TIMEOUT)
            assert bytes(proto.data) == data
            assert b"".join(chunk for chunk, _ in proto.chunks) == data
            for chunk, digest in proto.chunks:
                assert type(chunk) is bytes
                assert hashlib.sha256(chunk).digest() == digest

    run(loop, main(), timeout=40)


def test_many_small_writes(loop, family):
    n = 100_000
    chunks = [b"%09d," % i for i in range(n)]

    async def main():
        async with connected(family) as (transport, proto, peer):
            reader = asyncio.ensure_future(peer_read(peer, 10 * n))
            for i, chunk in enumerate(chunks):
                transport.write(chunk)
                if i % 500 == 499:
                    # Let the peer read: asyncio's buffer size is a sum over its chunks.
                    await asyncio.sleep(0)
            transport.write(b"")  # nothing, not an error
            assert await reader == b"".join(chunks)

    run(loop, main())


def test_close_flushes_buffered_data_before_connection_lost(loop, family):
    data = payload(16 * MiB, 3)

    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.write(data)
            assert transport.get_write_buffer_size() > 0   # the peer reads nothing yet
            transport.close()
            transport.close()   # twice: no-op
            assert transport.is_closing()
            await asyncio.sleep(0.05)
            assert not proto.lost.done()   # still flushing to a peer that does not read
            got = await peer_read(peer)
            assert got == data
            assert await proto.lost is None
            assert without_flow_control(proto.events) == ["made", "lost"]

    run(loop, main())


def test_abort_drops_buffered_data(loop, family):
    data = payload(16 * MiB, 4)

    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.write(data)
            assert transport.get_write_buffer_size() > 0
            transport.abort()
            assert transport.is_closing()
            assert await proto.lost is None
            got = await peer_read(peer)
            assert len(got) < len(data)
            assert got == data[:len(got)]
            assert without_flow_control(proto.events) == ["made", "lost"]

    run(loop, main())


def test_peer_reset_reaches_connection_lost(loop):
    async def main():
        async with connected("tcp") as (transport, proto, peer):
            await loop.sock_sendall(peer, b"bye")
            await wait_until(lambda: proto.data == b"bye")
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()   # RST
            exc = await proto.lost
            assert isinstance(exc, ConnectionResetError), exc
            assert transport.is_closing()
            assert "eof" not in proto.events

    run(loop, main())


def test_write_to_a_reset_connection_reaches_connection_lost(loop):
    async def main():
        async with connected("tcp") as (transport, proto, peer):
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.pause_reading()    # the error has to come from the write side
            peer.close()
            await asyncio.sleep(0.02)
            for _ in range(100):
                if proto.lost.done():
                    break
                transport.write(b"x" * 65536)
                await asyncio.sleep(0.01)
            exc = await proto.lost
            assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc

    run(loop, main())


# --- reading -------------------------------------------------------------------------


def test_pause_and_resume_reading(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            assert transport.is_reading()
            transport.pause_reading()
            transport.pause_reading()     # idempotent
            assert not transport.is_reading()
            await loop.sock_sendall(peer, b"held back")
            peer.shutdown(socket.SHUT_WR)
            await asyncio.sleep(0.05)
            assert proto.data == b"" and not proto.eof.done()   # neither data nor EOF
            transport.resume_reading()
            transport.resume_reading()    # idempotent
            assert transport.is_reading()
            await proto.eof
            assert proto.data == b"held back"
            assert await proto.lost is None
            assert not transport.is_reading()

    run(loop, main())


def test_pause_reading_holds_a_stream_of_data(loop):
    async def main():
        async with connected("tcp") as (transport, proto, peer):
            data = payload(32 * MiB, 5)
            sender = asyncio.ensure_future(loop.sock_sendall(peer, data))
            await wait_until(lambda: len(proto.data) > 0)
            transport.pause_reading()
            seen = len(proto.data)
            await asyncio.sleep(0.05)
            assert len(proto.data) == seen
            assert not sender.done()    # the peer is blocked by the paused reader
            transport.resume_reading()
            await sender
            await wait_until(lambda: len(proto.data) == len(data))
            assert proto.data == data

    run(loop, main())


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20])
def test_buffered_protocol(loop, family, size):
    n = 64 * 1024 if size < 4096 else 2 * MiB
    data = payload(n, size)

    async def main():
        async with connected(family, lambda: Buffered(size)) as (transport, proto, peer):
            await loop.sock_sendall(peer, data)
            peer.shutdown(socket.SHUT_WR)
            await proto.eof
            assert proto.data == data
            assert await proto.lost is None

    run(loop, main())


def test_set_protocol_switches_the_receiver(loop, family):
    async def main():
        async with connected(family) as (transport, first, peer):
            await loop.sock_sendall(peer, b"one")
            await wait_until(lambda: first.data == b"one")
            second = Recorder()
            transport.set_protocol(second)
            assert transport.get_protocol() is second
            await loop.sock_sendall(peer, b"two")
            await wait_until(lambda: second.data == b"two")
            # ... and to a BufferedProtocol in mid-stream.
            third = Buffered(16)
            transport.set_protocol(third)
            await loop.sock_sendall(peer, b"three")
            peer.shutdown(socket.SHUT_WR)
            await third.eof
            assert third.data == b"three"
            assert await third.lost is None
            assert first.data == b"one" and not first.lost.done()
            assert second.data == b"two" and not second.lost.done()
            first.lost.set_result(None)   # lets connected() finish

    run(loop, main())


# --- writing -------------------------------------------------------------------------


def test_write_buffer_limits(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            low, high = transport.get_write_buffer_limits()
            assert 0 <= low <= high
            transport.set_write_buffer_limits(high=1000)
            assert transport.get_write_buffer_limits() == (250, 1000)
            transport.set_write_buffer_limits(high=1000, low=10)
            assert transport.get_write_buffer_limits() == (10, 1000)
            transport.set_write_buffer_limits(low=100)
            assert transport.get_write_buffer_limits() == (100, 400)
            transport.set_write_buffer_limits(high=0)
            assert transport.get_write_buffer_limits() == (0, 0)
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=1, low=2)
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=-1, low=-2)
            assert transport.get_write_buffer_size() == 0

    run(loop, main())


def test_pause_and_resume_writing_at_the_water_marks(loop, family):
    high, low = 256 * 1024, 64 * 1024
    chunk = b"w" * 65536

    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.set_write_buffer_limits(high=high, low=low)
            sent = 0
            for _ in range(1000):
                transport.write(chunk)
                sent += len(chunk)
                if proto.paused:
                    break
                await asyncio.sleep(0)
            assert proto.paused, "pause_writing never called against a peer that reads nothing"
            assert proto.pauses[0] > high
            assert transport.get_write_buffer_size() > high
            # More writes while paused do not pause again.
            transport.write(chunk)
            sent += len(chunk)
            await asyncio.sleep(0.02)
            assert len(proto.pauses) == 1 and proto.paused
            got = await peer_read(peer, sent)
            assert len(got) == sent
            await wait_until(lambda: not proto.paused)
            assert proto.resumes[0] <= low
            assert transport.get_write_buffer_size() == 0
            assert proto.events == ["made", "pause", "resume"]

    run(loop, main())


def test_lowering_the_high_water_mark_pauses_at_once(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            for _ in range(1000):
                transport.write(b"w" * 65536)
                if transport.get_write_buffer_size() > 0:
                    break
                await asyncio.sleep(0)
            size = transport.get_write_buffer_size()
            assert size > 0
            if not proto.paused:
                transport.set_write_buffer_limits(high=size // 2)
                assert proto.paused
            await peer_read(peer, 1)   # let connected() close it
            transport.abort()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="another TypeError message (memoryview's)")
def test_write_rejects_non_bytes(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            with pytest.raises(TypeError,
                               match=BYTES_ONLY.format("str")):
                transport.write("text")
            with pytest.raises(TypeError,
                               match=BYTES_ONLY.format("int")):
                transport.write(42)
            transport.write(bytearray(b"ok"))
            transport.write(memoryview(b"!"))
            assert await peer_read(peer, 3) == b"ok!"

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="write() on a closed transport raises RuntimeError")
def test_write_after_close_is_ignored(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.write(b"sent")
            await wait_until(lambda: transport.get_write_buffer_size() == 0)
            transport.close()
            transport.write(b"dropped")
            assert await proto.lost is None
            for _ in range(3):
                transport.write(b"dropped too")
            assert await peer_read(peer) == b"sent"

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="write() on a closed transport raises RuntimeError")
def test_write_after_abort_is_ignored(loop, family):
    async def main():
        async with connected(family) as (transport, proto, peer):
            transport.abort()
            assert await proto.lost is None
            transport.write(b"dropped")
            assert await peer_read(peer) == b""

    run(loop, main())

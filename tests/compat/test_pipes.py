"""loop.connect_read_pipe / loop.connect_write_pipe on real pipes, socket pairs and ptys.

asyncio's pipe transports: the fd is made non-blocking; connection_made runs before
the connect coroutine returns; a read pipe's EOF gives eof_received then
connection_lost(None) and closes the pipe; a write pipe buffers what the kernel does
not take, pauses the protocol above the high-water mark and resumes it at the low
one, and notices its reader going away (connection_lost(None), or BrokenPipeError if
data was still buffered). Only pipes, sockets and character devices are accepted.
"""

import asyncio
import gc
import io
import os
import socket
import tempfile
import warnings

import pytest

from .support import run

MiB = 1024 * 1024

UVLOOP_CRASHES = "uvloop aborts the interpreter (a libuv assertion) on this fd"


class ReadProto(asyncio.Protocol):
    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def data_received(self, data):
        assert isinstance(data, bytes)
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop):
        self.events = []
        self.transport = None
        self.lost = loop.create_future()
        self.resumed = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def read_all(fd, n):
    """Read n bytes from a blocking fd (or fewer at EOF)."""
    chunks = []
    while n > 0:
        data = os.read(fd, min(n, MiB))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def fill(fd):
    """Write into a non-blocking fd until the kernel takes no more; bytes written."""
    total = 0
    chunk = b"f" * 65536
    while True:
        try:
            total += os.write(fd, chunk)
        except BlockingIOError:
            return total


# --------------------------------------------------------------------- read pipes

@pytest.mark.xfail_loop("uvloop", reason="uvloop may leave a pipe fd open after the EOF",
                        strict=False)
def test_read_pipe_data_then_eof(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    try:
        async def main():
            proto = ReadProto(loop)
            transport, p = await loop.connect_read_pipe(lambda: proto, pipe)
            assert p is proto
            assert proto.events == ["made"]     # before the coroutine returned
            assert proto.transport is transport
            assert transport.get_extra_info("pipe") is pipe
            assert transport.is_reading()
            assert not transport.is_closing()
            assert not os.get_blocking(r)
            os.write(w, b"hello ")
            os.write(w, b"world")
            os.close(w)
            exc = await proto.lost
            return proto, exc

        proto, exc = run(loop, main())
        assert exc is None
        assert bytes(proto.data) == b"hello world"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert pipe.closed
    finally:
        pipe.close()


def test_read_pipe_socketpair(loop):
    a, b = socket.socketpair()
    try:
        async def main():
            proto = ReadProto(loop)
            transport, _ = await loop.connect_read_pipe(lambda: proto, a)
            b.sendall(b"over a socket")
            b.shutdown(socket.SHUT_WR)
            exc = await proto.lost
            return proto, exc, transport

        proto, exc, transport = run(loop, main())
        assert exc is None
        assert bytes(proto.data) == b"over a socket"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert a.fileno() == -1   # the transport closed it
        assert transport.is_closing()
    finally:
        a.close()
        b.close()


def test_read_pipe_large_volume(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    payload = os.urandom(4 * MiB)
    try:
        async def main():
            proto = ReadProto(loop)
            await loop.connect_read_pipe(lambda: proto, pipe)
            # Written from the executor: the pipe holds 64 KiB, the reader is the loop.
            def writer():
                with open(w, "wb", buffering=0) as f:
                    f.write(payload)
            await loop.run_in_executor(None, writer)
            await proto.lost
            return proto

        proto = run(loop, main())
        assert bytes(proto.data) == payload
    finally:
        pipe.close()


def test_read_pipe_pause_resume(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    try:
        async def main():
            proto = ReadProto(loop)
            transport, _ = await loop.connect_read_pipe(lambda: proto, pipe)
            os.write(w, b"one")
            while not proto.data:
                await asyncio.sleep(0.001)
            transport.pause_reading()
            assert not transport.is_reading()
            transport.pause_reading()          # idempotent
            os.write(w, b"two")
            await asyncio.sleep(0.05)
            assert bytes(proto.data) == b"one"  # nothing while paused
            transport.resume_reading()
            assert transport.is_reading()
            transport.resume_reading()          # idempotent
            while len(proto.data) < 6:
                await asyncio.sleep(0.001)
            assert bytes(proto.data) == b"onetwo"
            os.close(w)
            await proto.lost
            assert not transport.is_reading()

        run(loop, main())
    finally:
        pipe.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop starts reading even if connection_made paused it")
def test_read_pipe_paused_in_connection_made(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    try:
        class Paused(ReadProto):
            def connection_made(self, transport):
                super().connection_made(transport)
                transport.pause_reading()

        async def main():
            proto = Paused(loop)
            transport, _ = await loop.connect_read_pipe(lambda: proto, pipe)
            os.write(w, b"waiting")
            os.close(w)
            await asyncio.sleep(0.05)
            assert proto.events == ["made"]
            transport.resume_reading()
            await proto.lost
            return proto

        proto = run(loop, main())
        assert bytes(proto.data) == b"waiting"
        assert proto.events == ["made", "data", "eof", "lost"]
    finally:
        pipe.close()


def test_read_pipe_close(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    try:
        async def main():
            proto = ReadProto(loop)
            transport, _ = await loop.connect_read_pipe(lambda: proto, pipe)
            transport.close()
            assert transport.is_closing()
            assert not transport.is_reading()
            transport.close()                   # idempotent
            os.write(w, b"ignored")
            exc = await proto.lost
            await asyncio.sleep(0.01)
            return proto, exc

        proto, exc = run(loop, main())
        assert exc is None
        assert proto.events == ["made", "lost"]
        assert pipe.closed
    finally:
        os.close(w)
        pipe.close()


def test_read_pipe_pty(loop):
    master, slave = os.openpty()
    master_obj = open(master, "rb", buffering=0)
    try:
        async def main():
            proto = ReadProto(loop)
            transport, _ = await loop.connect_read_pipe(lambda: proto, master_obj)
            os.write(slave, b"tty output\n")
            while b"tty output" not in proto.data:
                await asyncio.sleep(0.001)
            # The slave side closing ends the master's reads with EIO: an ordinary
            # close, not an error.
            os.close(slave)
            return await proto.lost

        exc = run(loop, main())
        assert isinstance(exc, OSError) or exc is None
        assert master_obj.closed
    finally:
        master_obj.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop may leave a pipe fd open after the EOF",
                        strict=False)
def test_read_pipe_data_received_raises_keeps_reading(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", buffering=0)
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    try:
        class Raising(ReadProto):
            def data_received(self, data):
                super().data_received(data)
                if len(self.data) == len(data):
                    raise ZeroDivisionError

        async def main():
            proto = Raising(loop)
            await loop.connect_read_pipe(lambda: proto, pipe)
            os.write(w, b"first")
            while not errors:
                await asyncio.sleep(0.001)
            os.write(w, b"second")
            os.close(w)
            await proto.lost
            return proto

        proto = run(loop, main())
        assert bytes(proto.data) == b"firstsecond"
        assert isinstance(errors[0]["exception"], ZeroDivisionError)
    finally:
        pipe.close()


# -------------------------------------------------------------------- write pipes

def test_write_pipe_write_and_close(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, p = await loop.connect_write_pipe(lambda: proto, pipe)
            assert p is proto and proto.events == ["made"]
            assert transport.get_extra_info("pipe") is pipe
            assert not os.get_blocking(w)
            assert transport.can_write_eof()
            transport.write(b"abc")
            transport.write(bytearray(b"def"))
            transport.write(memoryview(b"ghi"))
            transport.write(b"")
            transport.writelines([b"j", b"k"])
            assert transport.get_write_buffer_size() == 0   # went straight through
            transport.close()
            assert transport.is_closing()
            return await proto.lost

        assert run(loop, main()) is None
        assert pipe.closed
        assert read_all(r, 100) == b"abcdefghijk"
    finally:
        os.close(r)
        pipe.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop's write_eof on a socket pair never calls connection_lost")
def test_write_pipe_socketpair(loop):
    a, b = socket.socketpair()
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, a)
            transport.write(b"to the socket")
            transport.write_eof()
            return await proto.lost

        assert run(loop, main()) is None
        b.settimeout(5)
        assert b.recv(100) == b"to the socket"
        assert b.recv(100) == b""
    finally:
        a.close()
        b.close()


def test_write_pipe_flow_control_full_pipe(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    payload = os.urandom(2 * MiB)
    try:
        async def main():
            proto = WriteProto(loop)
            proto.resumed = loop.create_future()
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            transport.write(payload)
            # The pipe took what it holds; the rest is buffered, over the high mark.
            size = transport.get_write_buffer_size()
            assert 0 < size < len(payload)
            assert proto.events == ["made", "pause"]
            received = loop.run_in_executor(None, read_all, r, len(payload))
            await proto.resumed
            assert proto.events == ["made", "pause", "resume"]
            assert transport.get_write_buffer_size() <= 16384
            transport.close()
            exc = await proto.lost
            return exc, await received

        exc, data = run(loop, main())
        assert exc is None
        assert data == payload
    finally:
        os.close(r)
        pipe.close()


def test_write_pipe_buffer_limits(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            transport.set_write_buffer_limits(high=1000)
            assert transport.get_write_buffer_limits() == (250, 1000)
            transport.set_write_buffer_limits(low=100)
            assert transport.get_write_buffer_limits() == (100, 400)
            transport.set_write_buffer_limits(high=10, low=5)
            assert transport.get_write_buffer_limits() == (5, 10)
            with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) "
                                                 r"must be >= 0"):
                transport.set_write_buffer_limits(high=1, low=2)
            # Lowering the mark under a buffer already there pauses the protocol.
            fill(w)
            transport.set_write_buffer_limits(high=100000)
            transport.write(b"x" * 1000)
            assert proto.events == ["made"]
            transport.set_write_buffer_limits(high=10)
            assert proto.events == ["made", "pause"]
            transport.abort()
            return await proto.lost

        assert run(loop, main()) is None
    finally:
        os.close(r)
        pipe.close()


def test_write_pipe_reader_closed_without_buffer(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            transport.write(b"read by nobody")
            os.close(r)
            # Noticed without writing again: the write end reports the hang-up.
            exc = await proto.lost
            assert transport.is_closing()
            return exc

        assert run(loop, main()) is None
        assert pipe.closed
    finally:
        pipe.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop raises RuntimeError from write() after the reader went away, where asyncio drops the data")
def test_write_pipe_reader_closed_with_buffer(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            transport.write(b"z" * MiB)
            assert transport.get_write_buffer_size() > 0
            os.close(r)
            exc = await proto.lost
            # Later writes are dropped quietly.
            transport.write(b"more")
            return exc

        assert isinstance(run(loop, main()), BrokenPipeError)
        assert pipe.closed
    finally:
        pipe.close()


def test_write_pipe_reader_closed_before_connect(loop):
    r, w = os.pipe()
    os.close(r)
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            await loop.connect_write_pipe(lambda: proto, pipe)
            return await proto.lost

        assert run(loop, main()) is None
    finally:
        pipe.close()


def test_write_pipe_broken_on_write(loop):
    a, b = socket.socketpair()
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, a)
            b.close()
            # Written before the loop could notice: EPIPE -> BrokenPipeError.
            transport.write(b"x")
            return await proto.lost

        exc = run(loop, main())
        assert exc is None or isinstance(exc, (BrokenPipeError, ConnectionResetError))
    finally:
        a.close()
        b.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop's abort() leaves the buffer size as it was until the loop runs")
def test_write_pipe_abort_drops_buffer(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            n = fill(w)
            transport.write(b"dropped")
            assert transport.get_write_buffer_size() == 7
            transport.abort()
            assert transport.is_closing()
            assert transport.get_write_buffer_size() == 0
            return n, await proto.lost

        n, exc = run(loop, main())
        assert exc is None
        data = read_all(r, n + 100)
        assert data == b"f" * n
    finally:
        os.close(r)
        pipe.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop's is_closing() is False after write_eof() while data is buffered")
def test_write_pipe_write_eof_flushes_first(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    payload = os.urandom(MiB)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            transport.write(payload)
            transport.write_eof()
            assert transport.is_closing()
            transport.write_eof()               # idempotent
            assert not proto.lost.done()
            received = loop.run_in_executor(None, read_all, r, 2 * MiB)
            exc = await proto.lost
            return exc, await received

        exc, data = run(loop, main())
        assert exc is None
        assert data == payload                  # then EOF: read_all stopped there
    finally:
        os.close(r)
        pipe.close()


def test_write_pty(loop):
    master, slave = os.openpty()
    slave_obj = open(slave, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, slave_obj)
            transport.write(b"to the terminal")
            transport.close()
            return await proto.lost

        assert run(loop, main()) is None
        assert b"to the terminal" in os.read(master, 100)
    finally:
        os.close(master)
        slave_obj.close()


# ------------------------------------------------------------------- what is accepted

def test_regular_file_rejected(loop, loop_name):
    if loop_name == "uvloop":
        pytest.xfail(UVLOOP_CRASHES)
    with tempfile.TemporaryFile() as f:
        async def main():
            with pytest.raises(ValueError, match=r"^Pipe transport is for "
                                                 r"pipes/sockets only\.$"):
                await loop.connect_read_pipe(lambda: ReadProto(loop), f)
            with pytest.raises(ValueError, match=r"^Pipe transport is only for pipes, "
                                                 r"sockets and character devices$"):
                await loop.connect_write_pipe(lambda: WriteProto(loop), f)

        run(loop, main())
        assert not f.closed


def test_character_device_accepted(loop, loop_name):
    if loop_name == "uvloop":
        pytest.xfail(UVLOOP_CRASHES)
    with open(os.devnull, "wb", buffering=0) as f:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, f)
            transport.write(b"into the void")
            transport.close()
            return await proto.lost

        assert run(loop, main()) is None


@pytest.mark.xfail_loop("uvloop", reason="uvloop's pipe transport repr lacks asyncio's open/closed wording")
def test_unclosed_transport_warns(loop):
    r, w = os.pipe()
    rpipe = open(r, "rb", buffering=0)
    wpipe = open(w, "wb", buffering=0)

    async def main():
        rt, _ = await loop.connect_read_pipe(lambda: ReadProto(loop), rpipe)
        wt, _ = await loop.connect_write_pipe(lambda: WriteProto(loop), wpipe)
        return rt, wt

    rt, wt = run(loop, main())
    loop.close()
    assert "open" in repr(rt) and "open" in repr(wt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del rt, wt
        gc.collect()
    messages = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert sum("unclosed transport" in m for m in messages) == 2, messages
    assert rpipe.closed and wpipe.closed


@pytest.mark.xfail_loop("uvloop", reason="uvloop's transports do not derive from "
                                          "asyncio.ReadTransport / asyncio.WriteTransport")
def test_pipe_transports_are_asyncio_transports(loop):
    r, w = os.pipe()
    rpipe = open(r, "rb", buffering=0)
    wpipe = open(w, "wb", buffering=0)
    try:
        async def main():
            rproto, wproto = ReadProto(loop), WriteProto(loop)
            rt, _ = await loop.connect_read_pipe(lambda: rproto, rpipe)
            wt, _ = await loop.connect_write_pipe(lambda: wproto, wpipe)
            assert isinstance(rt, asyncio.ReadTransport)
            assert isinstance(wt, asyncio.WriteTransport)
            assert rt.get_protocol() is rproto and wt.get_protocol() is wproto
            wt.close()
            await wproto.lost
            await rproto.lost

        run(loop, main())
    finally:
        rpipe.close()
        wpipe.close()


@pytest.mark.xfail_loop("uvloop", reason="uvloop's default low-water mark is 16 bytes, "
                                          "not asyncio's high // 4")
def test_write_pipe_default_limits(loop):
    r, w = os.pipe()
    pipe = open(w, "wb", buffering=0)
    try:
        async def main():
            proto = WriteProto(loop)
            transport, _ = await loop.connect_write_pipe(lambda: proto, pipe)
            limits = transport.get_write_buffer_limits()
            transport.close()
            await proto.lost
            return limits

        assert run(loop, main()) == (16384, 65536)
    finally:
        os.close(r)
        pipe.close()

"""asyncio's streams (open_connection, start_server and their Unix twins) on the loop.

Streams are asyncio's own Python code; what they exercise here is the loop underneath:
create_connection/create_server, the transport's data path, pause_reading/resume_reading
(a StreamReader pauses its transport once it buffers more than twice its limit), write
flow control (drain() waits while the transport is above its high-water mark), half-close
(write_eof), close/wait_closed, and TLS, both from the start (ssl=) and as an upgrade of a
plain connection (StreamWriter.start_tls).
"""

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import socket
import ssl
import tempfile

import pytest

from .support import run

MiB = 1024 * 1024
CERTS = os.path.join(os.path.dirname(__file__), "certs")
CERT = os.path.join(CERTS, "ssl_cert.pem")      # self-signed, CN=localhost
KEY = os.path.join(CERTS, "ssl_key.pem")


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CERT)
    return ctx


@contextlib.contextmanager
def unix_path():
    """A short socket path (sun_path has room for ~107 bytes), removed on exit."""
    d = tempfile.mkdtemp(prefix="gmpl", dir="/tmp")
    try:
        yield os.path.join(d, "s")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.asynccontextmanager
async def serving(handler, *, family="tcp", path=None, **kwargs):
    """start_server/start_unix_server on loopback; yields (server, connect) where
    connect(**kw) opens a client stream pair to it. Closes the server on exit."""
    if family == "tcp":
        server = await asyncio.start_server(handler, "127.0.0.1", 0, **kwargs)
        addr = server.sockets[0].getsockname()

        def connect(**kw):
            return asyncio.open_connection(*addr, **kw)
    else:
        server = await asyncio.start_unix_server(handler, path, **kwargs)

        def connect(**kw):
            return asyncio.open_unix_connection(path, **kw)
    try:
        yield server, connect
    finally:
        server.close()
        await server.wait_closed()


async def close_writer(writer):
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        await close_writer(writer)


@pytest.fixture(params=["tcp", "unix"])
def family(request):
    return request.param


@pytest.fixture
def where(family):
    """Keyword arguments for serving(): the family and, for Unix, a fresh path."""
    if family == "tcp":
        yield {"family": "tcp"}
    else:
        with unix_path() as path:
            yield {"family": "unix", "path": path}


def test_round_trip(loop, where):
    async def main():
        async with serving(echo, **where) as (server, connect):
            reader, writer = await connect()
            try:
                for i in range(20):
                    msg = f"message {i}\n".encode()
                    writer.write(msg)
                    assert await reader.readexactly(len(msg)) == msg
                writer.write_eof()
                assert await reader.read() == b""
                assert reader.at_eof()
            finally:
                await close_writer(writer)

    run(loop, main())


def test_server_sockets_and_peer_addresses(loop):
    seen = {}

    async def handler(reader, writer):
        seen["peer"] = writer.get_extra_info("peername")
        seen["sock"] = writer.get_extra_info("sockname")
        await close_writer(writer)

    async def main():
        async with serving(handler) as (server, connect):
            assert server.is_serving()
            (lsock,) = server.sockets
            reader, writer = await connect()
            assert await reader.read() == b""
            assert seen["peer"] == writer.get_extra_info("sockname")
            assert seen["sock"] == writer.get_extra_info("peername") == lsock.getsockname()
            assert writer.get_extra_info("socket").family == socket.AF_INET
            await close_writer(writer)
        assert not server.is_serving()

    run(loop, main())


def test_readline_readuntil_readexactly(loop, where):
    data = b"one\ntwo\r\nthree||four" + b"x" * 100 + b"tail"

    async def handler(reader, writer):
        # Dribble the bytes out so that the readers must wait across chunks.
        for i in range(0, len(data), 7):
            writer.write(data[i:i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        writer.write_eof()
        await reader.read()
        await close_writer(writer)

    async def main():
        async with serving(handler, **where) as (server, connect):
            reader, writer = await connect()
            try:
                assert await reader.readline() == b"one\n"
                assert await reader.readuntil(b"\r\n") == b"two\r\n"
                assert await reader.readuntil(b"||") == b"three||"
                assert await reader.readexactly(4) == b"four"
                assert await reader.readexactly(100) == b"x" * 100
                assert await reader.readline() == b"tail"   # EOF ends the last line
                assert await reader.readline() == b""
                assert reader.at_eof()
            finally:
                await close_writer(writer)

    run(loop, main())


def test_readexactly_and_readuntil_at_eof(loop):
    async def handler(reader, writer):
        writer.write(b"partial")
        await close_writer(writer)

    async def main():
        async with serving(handler) as (server, connect):
            reader, writer = await connect()
            try:
                with pytest.raises(asyncio.IncompleteReadError) as info:
                    await reader.readexactly(100)
                assert info.value.partial == b"partial"
                assert info.value.expected == 100
            finally:
                await close_writer(writer)
            reader, writer = await connect()
            try:
                with pytest.raises(asyncio.IncompleteReadError) as info:
                    await reader.readuntil(b"\n")
                assert info.value.partial == b"partial"
                assert info.value.expected is None
                assert await reader.read(10) == b""
            finally:
                await close_writer(writer)

    run(loop, main())


def test_limit_overflow(loop):
    line = b"a" * 5000 + b"\n"

    async def handler(reader, writer):
        writer.write(line + b"short\n" + b"b" * 5000)
        writer.write_eof()
        await reader.read()
        await close_writer(writer)

    async def main():
        async with serving(handler) as (server, connect):
            reader, writer = await connect(limit=1024)
            try:
                with pytest.raises(ValueError) as info:
                    await reader.readline()
                assert "limit" in str(info.value)
                # The over-long line is dropped; the next one reads normally.
                assert await reader.readline() == b"short\n"
                with pytest.raises(asyncio.LimitOverrunError) as info:
                    await reader.readuntil(b"\n")
                assert str(info.value) == "Separator is not found, and chunk exceed the limit"
                assert info.value.consumed > 1024
                # The data stays in the buffer: read() still gets all of it.
                assert await reader.read() == b"b" * 5000
            finally:
                await close_writer(writer)

    run(loop, main())


def test_reader_pauses_the_transport_above_twice_its_limit(loop):
    limit = 4096
    sent = asyncio.Event()

    async def handler(reader, writer):
        writer.write(b"z" * (1 * MiB))
        await writer.drain()
        sent.set()
        await reader.read()
        await close_writer(writer)

    async def main():
        nonlocal sent
        sent = asyncio.Event()
        async with serving(handler) as (server, connect):
            reader, writer = await connect(limit=limit)
            try:
                transport = writer.transport
                # Wait until the reader has buffered past its limit and paused the transport.
                for _ in range(1000):
                    if not transport.is_reading():
                        break
                    await asyncio.sleep(0.005)
                assert not transport.is_reading()
                got = await reader.readexactly(1 * MiB)
                assert got == b"z" * MiB
                assert transport.is_reading()
                await sent.wait()
                writer.write_eof()
            finally:
                await close_writer(writer)

    run(loop, main())


@pytest.mark.timeout(60)
def test_large_transfer_both_ways(loop, where):
    size = 32 * MiB
    up = payload(size, 1)
    down = payload(size, 2)

    async def handler(reader, writer):
        async def send():
            writer.write(down)
            await writer.drain()

        sender = asyncio.ensure_future(send())
        got = await reader.readexactly(size)
        assert await reader.read() == b""
        await sender
        writer.write(hashlib.sha256(got).digest())
        writer.write_eof()
        await close_writer(writer)

    async def main():
        async with serving(handler, **where) as (server, connect):
            reader, writer = await connect()
            try:
                async def send():
                    # Many writes of assorted sizes, then one big one.
                    pos = 0
                    rnd = random.Random(3)
                    while pos < size // 2:
                        n = rnd.randrange(1, 300_000)
                        writer.write(up[pos:pos + n])
                        pos += n
                        await writer.drain()
                    writer.write(up[pos:])
                    await writer.drain()
                    writer.write_eof()

                sender = asyncio.ensure_future(send())
                got = await reader.readexactly(size)
                await sender
                assert got == down
                assert await reader.readexactly(32) == hashlib.sha256(up).digest()
                assert await reader.read() == b""
            finally:
                await close_writer(writer)

    run(loop, main(), timeout=40)


def test_drain_waits_for_a_slow_reader(loop, where):
    size = 16 * MiB
    data = payload(size, 4)
    go = None

    async def handler(reader, writer):
        await go.wait()
        got = await reader.readexactly(size)
        writer.write(hashlib.sha256(got).digest())
        await close_writer(writer)

    async def main():
        nonlocal go
        go = asyncio.Event()
        async with serving(handler, **where) as (server, connect):
            reader, writer = await connect()
            try:
                transport = writer.transport
                low, high = transport.get_write_buffer_limits()
                writer.write(data)
                assert transport.get_write_buffer_size() > high
                drain = asyncio.ensure_future(writer.drain())
                await asyncio.sleep(0.1)
                # The peer reads nothing: the kernel buffers fill and drain() waits.
                assert not drain.done()
                assert transport.get_write_buffer_size() > high
                go.set()
                await drain
                assert transport.get_write_buffer_size() <= high
                assert await reader.readexactly(32) == hashlib.sha256(data).digest()
            finally:
                await close_writer(writer)

    run(loop, main())


def test_close_and_wait_closed(loop, where):
    got = None

    async def handler(reader, writer):
        got.set_result(await reader.read())
        await close_writer(writer)

    async def main():
        nonlocal got
        got = loop.create_future()
        async with serving(handler, **where) as (server, connect):
            reader, writer = await connect()
            writer.write(b"last words")
            assert not writer.is_closing()
            writer.close()
            assert writer.is_closing()
            await writer.wait_closed()
            await writer.wait_closed()     # again: returns at once
            # Buffered data was flushed before the close.
            assert await got == b"last words"

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="write() on a closed transport raises RuntimeError")
def test_write_after_close_is_dropped(loop):
    got = None

    async def handler(reader, writer):
        got.set_result(await reader.read())
        await close_writer(writer)

    async def main():
        nonlocal got
        got = loop.create_future()
        async with serving(handler) as (server, connect):
            reader, writer = await connect()
            writer.write(b"before")
            writer.close()
            writer.write(b"after")
            await writer.wait_closed()
            writer.write(b"later")
            assert await got == b"before"

    run(loop, main())


def test_peer_close_ends_reads_and_fails_drain(loop):
    async def handler(reader, writer):
        await close_writer(writer)

    async def main():
        async with serving(handler) as (server, connect):
            reader, writer = await connect()
            try:
                assert await reader.read() == b""
                with pytest.raises(ConnectionError):
                    for _ in range(100):
                        writer.write(b"x" * 65536)
                        await writer.drain()
                        await asyncio.sleep(0.01)
            finally:
                await close_writer(writer)

    run(loop, main())


def test_many_concurrent_clients(loop, where):
    async def client(connect, i):
        reader, writer = await connect()
        try:
            msg = payload(1000 + i, i)
            writer.write(msg)
            writer.write_eof()
            assert await reader.read() == msg
        finally:
            await close_writer(writer)

    async def main():
        async with serving(echo, **where) as (server, connect):
            await asyncio.gather(*(client(connect, i) for i in range(100)))

    run(loop, main())


# --- TLS ---------------------------------------------------------------------------


def test_tls_streams(loop):
    async def main():
        async with serving(echo, ssl=server_context()) as (server, connect):
            reader, writer = await connect(ssl=client_context(), server_hostname="localhost")
            try:
                sslobj = writer.get_extra_info("ssl_object")
                assert sslobj is not None
                assert sslobj.version().startswith("TLS")
                assert writer.get_extra_info("peercert")["subjectAltName"] == (
                    ("DNS", "localhost"),)
                data = payload(2 * MiB, 5)
                writer.write(data)
                assert await reader.readexactly(len(data)) == data
                writer.write(b"line\n")
                assert await reader.readline() == b"line\n"
            finally:
                await close_writer(writer)

    run(loop, main())


def test_tls_large_transfer_with_eof(loop):
    size = 8 * MiB
    data = payload(size, 6)

    async def handler(reader, writer):
        got = await reader.readexactly(size)
        writer.write(hashlib.sha256(got).digest())
        await close_writer(writer)

    async def main():
        async with serving(handler, ssl=server_context()) as (server, connect):
            reader, writer = await connect(ssl=client_context(), server_hostname="localhost")
            try:
                writer.write(data)
                await writer.drain()
                assert await reader.readexactly(32) == hashlib.sha256(data).digest()
                assert await reader.read() == b""
            finally:
                await close_writer(writer)

    run(loop, main())


def test_ssl_true_rejects_a_self_signed_server(loop):
    async def handler(reader, writer):
        await close_writer(writer)

    async def main():
        async with serving(handler, ssl=server_context()) as (server, connect):
            # ssl=True: the default context, which verifies against the system's CAs.
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(ssl=True, server_hostname="localhost")

    run(loop, main())


def test_tls_needs_server_hostname_without_a_host(loop):
    with unix_path() as path:
        async def main():
            async with serving(echo, family="unix", path=path,
                               ssl=server_context()) as (server, connect):
                with pytest.raises(ValueError, match="server_hostname"):
                    await connect(ssl=client_context())
                reader, writer = await connect(ssl=client_context(),
                                               server_hostname="localhost")
                try:
                    writer.write(b"over unix\n")
                    assert await reader.readline() == b"over unix\n"
                finally:
                    await close_writer(writer)

        run(loop, main())


def test_start_tls_upgrades_a_stream(loop):
    async def handler(reader, writer):
        try:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.start_tls(server_context())
            assert writer.get_extra_info("ssl_object") is not None
            while line := await reader.readline():
                writer.write(line.upper())
        finally:
            await close_writer(writer)

    async def main():
        async with serving(handler) as (server, connect):
            reader, writer = await connect()
            try:
                plain = writer.transport
                writer.write(b"STARTTLS\n")
                assert await reader.readline() == b"GO\n"
                await writer.start_tls(client_context(), server_hostname="localhost")
                assert writer.transport is not plain
                assert writer.get_extra_info("ssl_object").version().startswith("TLS")
                for i in range(10):
                    writer.write(b"secret %d\n" % i)
                    assert await reader.readline() == b"SECRET %d\n" % i
            finally:
                await close_writer(writer)

    run(loop, main())

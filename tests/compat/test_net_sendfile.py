"""loop.sendfile on transports.

A plain TCP transport sends natively (os.sendfile on its socket, after its own write
buffer has drained and with reading paused meanwhile); a TLS transport goes through
the fallback (reads, transport.write, and waits on the transport's flow control). The
file's position ends after the last byte sent, in both cases.
"""

import asyncio
import random
import socket

import pytest

from .support import run
from .test_net import Recorder, port_of
from .test_net_tls import client_context, server_context

try:  # only in a tree where the probe loop exists (see _probe.py)
    from ._probe import loop_factory, loop_name  # noqa: F401
except ImportError:
    pass

SIZE = 1024 * 1024 + 123
BIG = 4 * 1024 * 1024 + 17

uvloop_has_no_sendfile = pytest.mark.xfail_loop(
    "uvloop", reason="its transports do not support loop.sendfile")


@pytest.fixture
def data_file(tmp_path):
    data = random.Random(7).randbytes(SIZE)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        yield f, data


@pytest.fixture
def big_file(tmp_path):
    """More than the loopback socket buffers hold once they are made small."""
    data = random.Random(8).randbytes(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        yield f, data


def shrink_buffers(client_transport, server_transport):
    client_transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    server_transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)


class FlowRecorder(Recorder):
    """A Recorder that also logs pause_writing/resume_writing."""

    def __init__(self):
        super().__init__()
        self.flow = []

    def pause_writing(self):
        self.flow.append("pause")

    def resume_writing(self):
        self.flow.append("resume")


async def pair(loop, ssl=False, client_protocol=Recorder):
    """(server, server_side_recorder_future, client transport, client protocol)."""
    accepted = loop.create_future()

    def factory():
        pr = Recorder()
        if not accepted.done():
            accepted.set_result(pr)
        return pr

    server = await loop.create_server(factory, "127.0.0.1", 0,
                                      ssl=server_context() if ssl else None)
    kwargs = dict(ssl=client_context(), server_hostname="localhost") if ssl else {}
    tr, pr = await loop.create_connection(client_protocol, "127.0.0.1",
                                          port_of(server), **kwargs)
    srv = await accepted
    await srv.made
    return server, srv, tr, pr


async def finish(server, tr, pr):
    tr.close()
    await pr.lost
    server.close()
    await server.wait_closed()


@uvloop_has_no_sendfile
def test_sendfile_native_whole_file(loop, data_file):
    f, data = data_file

    async def main():
        server, srv, tr, pr = await pair(loop)
        tr.write(b"HEAD")                   # queued bytes go first
        sent = await loop.sendfile(tr, f)
        assert sent == SIZE
        assert f.tell() == SIZE
        tr.write(b"TAIL")
        got = await srv.read(SIZE + 8)
        assert got == b"HEAD" + data + b"TAIL"
        # Reading was resumed: the client still receives.
        srv.transport.write(b"back")
        assert await pr.read(4) == b"back"
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_native_offset_and_count(loop, data_file):
    f, data = data_file

    async def main():
        server, srv, tr, pr = await pair(loop)
        sent = await loop.sendfile(tr, f, offset=1000, count=5000)
        assert sent == 5000
        assert f.tell() == 6000
        assert await srv.read(5000) == data[1000:6000]
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_native_with_a_full_write_buffer(loop, data_file):
    """Megabytes queued in the transport are sent before the file."""
    f, data = data_file
    head = b"h" * (4 * 1024 * 1024)

    async def main():
        server, srv, tr, pr = await pair(loop)
        srv.transport.pause_reading()       # let the client's buffer fill up
        tr.write(head)
        task = loop.create_task(loop.sendfile(tr, f))
        await asyncio.sleep(0.05)
        assert not task.done()
        srv.transport.resume_reading()
        assert await task == SIZE
        got = await srv.read(len(head) + SIZE)
        assert got == head + data
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_text_file_rejected(loop, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("text")

    async def main():
        server, srv, tr, pr = await pair(loop)
        with open(path, "r") as f:
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                await loop.sendfile(tr, f)
        # Still usable afterwards, reading included.
        srv.transport.write(b"ok")
        assert await pr.read(2) == b"ok"
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_closing_transport(loop, data_file):
    f, _ = data_file

    async def main():
        server, srv, tr, pr = await pair(loop)
        tr.close()
        with pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, f)
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_fallback_over_tls(loop, big_file):
    f, data = big_file

    async def main():
        server, srv, tr, pr = await pair(loop, ssl=True, client_protocol=FlowRecorder)
        shrink_buffers(tr, srv.transport)
        tr.set_write_buffer_limits(high=64 * 1024)  # flow control kicks in
        srv.transport.pause_reading()
        task = loop.create_task(loop.sendfile(tr, f, offset=10))
        await asyncio.sleep(0.2)
        assert not task.done()                      # waiting for the peer
        srv.transport.resume_reading()
        assert await task == BIG - 10
        assert f.tell() == BIG
        assert await srv.read(BIG - 10) == data[10:]
        assert tr.get_protocol() is pr
        # The application saw no pause that was not followed by a resume.
        assert pr.flow in ([], ["pause", "resume"])
        srv.transport.write(b"back")
        assert await pr.read(4) == b"back"          # reading resumed
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_fallback_count(loop, data_file):
    f, data = data_file

    async def main():
        server, srv, tr, pr = await pair(loop, ssl=True)
        assert await loop.sendfile(tr, f, 100, 50_000) == 50_000
        assert f.tell() == 50_100
        assert await srv.read(50_000) == data[100:50_100]
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_fallback_disabled(loop, data_file):
    f, _ = data_file

    async def main():
        server, srv, tr, pr = await pair(loop, ssl=True)
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await loop.sendfile(tr, f, fallback=False)
        await finish(server, tr, pr)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_fallback_peer_goes_away(loop, big_file):
    f, _ = big_file

    async def main():
        server, srv, tr, pr = await pair(loop, ssl=True)
        shrink_buffers(tr, srv.transport)
        tr.set_write_buffer_limits(high=16 * 1024)
        srv.transport.pause_reading()
        task = loop.create_task(loop.sendfile(tr, f))
        await asyncio.sleep(0.2)
        assert not task.done()
        srv.transport.abort()
        with pytest.raises(ConnectionError):
            await task
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="RuntimeError without a message")
def test_sendfile_unsupported_transport(loop, data_file):
    f, _ = data_file

    async def main():
        tr, pr = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        try:
            with pytest.raises(RuntimeError, match="sendfile is not supported"):
                await loop.sendfile(tr, f)
        finally:
            tr.close()
            await asyncio.sleep(0)

    run(loop, main())


@uvloop_has_no_sendfile
def test_sendfile_unix(loop, data_file, tmp_path):
    f, data = data_file
    path = str(tmp_path / "sf.sock")

    async def main():
        accepted = loop.create_future()

        def factory():
            pr = Recorder()
            accepted.set_result(pr)
            return pr

        server = await loop.create_unix_server(factory, path)
        tr, pr = await loop.create_unix_connection(Recorder, path)
        srv = await accepted
        await srv.made
        assert await loop.sendfile(tr, f, count=70_000) == 70_000
        assert await srv.read(70_000) == data[:70_000]
        await finish(server, tr, pr)

    run(loop, main())


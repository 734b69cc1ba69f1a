"""loop.create_datagram_endpoint and datagram transports, on loopback and AF_UNIX.

asyncio's contract: the endpoint coroutine returns (transport, protocol) after
``connection_made`` ran; datagrams arrive one ``datagram_received(data, addr)`` each;
socket errors (ECONNREFUSED from an ICMP "port unreachable" on a connected socket, a
bad destination...) go to ``error_received`` and the transport stays open; ``sendto``
never blocks: what the kernel refuses with EAGAIN is buffered and counted in
``get_write_buffer_size``, with ``pause_writing``/``resume_writing`` at the water marks;
``close`` flushes the buffer first, ``abort`` drops it; ``connection_lost`` runs once.
Per Python: an empty datagram is sent from 3.13 on (dropped before), each buffered
datagram counts 8 extra bytes from 3.13 on, and the sock= type check changed in 3.13.
"""

import asyncio
import gc
import os
import socket
import sys
import tempfile
import warnings

import pytest

from .support import run

PY313 = sys.version_info >= (3, 13)


class Recorder(asyncio.DatagramProtocol):
    """Records every callback; `wait_for(n)` waits for n datagrams."""

    def __init__(self, loop=None):
        self.loop = loop or asyncio.get_event_loop()
        self.events = []
        self.datagrams = []
        self.errors = []
        self.transport = None
        self.lost = self.loop.create_future()
        self._want = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self.events.append("data")
        self.datagrams.append((data, addr))
        self._check()

    def error_received(self, exc):
        self.events.append("error")
        self.errors.append(exc)
        self._check()

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)

    def _check(self):
        if self._want is not None and not self._want[1].done():
            n, fut = self._want
            if len(self.datagrams) >= n or (n == -1 and self.errors):
                fut.set_result(None)

    async def wait_for(self, n):
        self._want = (n, self.loop.create_future())
        self._check()
        await self._want[1]

    async def wait_error(self):
        await self.wait_for(-1)


class Echo(Recorder):
    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        self.transport.sendto(data, addr)


async def endpoint(loop, factory=None, **kw):
    return await loop.create_datagram_endpoint(factory or (lambda: Recorder(loop)), **kw)


def free_udp_port():
    """A loopback UDP port with nobody bound to it (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unix_receiver(path):
    """A plain AF_UNIX datagram socket bound to path, that nobody reads."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock


async def unix_sender(loop, path, sndbuf):
    """An endpoint connected to path, with a small send buffer."""
    transport, proto = await endpoint(loop, family=socket.AF_UNIX, remote_addr=path)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                  sndbuf)
    return transport, proto


def drain_dgrams(sock):
    got = []
    while True:
        try:
            got.append(sock.recv(1 << 17))
        except BlockingIOError:
            return got


async def fill_until_buffered(transport, data=b"x" * 1000, limit=100000):
    """sendto until the kernel refuses and the transport buffers; how many sent."""
    for i in range(limit):
        transport.sendto(data)
        if transport.get_write_buffer_size():
            return i + 1
    raise AssertionError("the socket never filled up")


@pytest.fixture
def tmpdir_short():
    # AF_UNIX paths are limited to ~100 bytes: keep them short.
    with tempfile.TemporaryDirectory(prefix="gd") as d:
        yield d


# ---------------------------------------------------------------------- basics


def test_echo_between_unconnected_and_bound(loop):
    async def main():
        server, sproto = await endpoint(loop, lambda: Echo(loop),
                                        local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop, family=socket.AF_INET)
        addr = server.get_extra_info("sockname")
        for i in range(5):
            client.sendto(b"ping %d" % i, addr)
        await cproto.wait_for(5)
        assert [d for d, _ in cproto.datagrams] == [b"ping %d" % i for i in range(5)]
        assert {a for _, a in cproto.datagrams} == {addr}
        cport = client.get_extra_info("socket").getsockname()[1]
        assert {a for _, a in sproto.datagrams} == {("127.0.0.1", cport)}
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return sproto.events, cproto.events

    sevents, cevents = run(loop, main())
    assert sevents == ["made"] + ["data"] * 5 + ["lost"]
    assert cevents == ["made"] + ["data"] * 5 + ["lost"]


def test_connection_made_before_the_endpoint_returns(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        assert proto.events == ["made"]
        assert proto.transport is transport
        assert transport.get_protocol() is proto
        transport.close()
        await proto.lost

    run(loop, main())


@pytest.mark.xfail_loop(
    "uvloop", reason="UDPTransport does not inherit asyncio.DatagramTransport")
def test_transport_is_an_asyncio_datagram_transport(loop):
    """A BaseTransport everywhere; asyncio's own is a DatagramTransport from 3.12 on
    (gmploop's on every version, as the documentation promises)."""
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        try:
            return (isinstance(transport, asyncio.DatagramTransport),
                    isinstance(transport, asyncio.BaseTransport))
        finally:
            transport.close()
            await proto.lost

    is_datagram, is_base = run(loop, main())
    assert is_base
    if sys.version_info >= (3, 12):
        assert is_datagram



def test_many_datagrams_in_one_burst_all_arrive_in_order(loop):
    n = 300
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        async def main():
            transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            addr = transport.get_extra_info("sockname")
            for i in range(n):   # all queued before the loop looks
                sender.sendto(b"%d" % i, addr)
            await proto.wait_for(n)
            transport.close()
            await proto.lost
            return [int(d) for d, _ in proto.datagrams]

        assert run(loop, main()) == list(range(n))
    finally:
        sender.close()


def test_datagrams_sent_before_reading_starts_are_received(loop):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    try:
        sender.sendto(b"early", receiver.getsockname())

        async def main():
            transport, proto = await endpoint(loop, sock=receiver)
            await proto.wait_for(1)
            transport.close()
            await proto.lost
            return proto.datagrams

        assert run(loop, main()) == [(b"early",
                                      ("127.0.0.1", sender.getsockname()[1]))]
    finally:
        sender.close()
        receiver.close()


def test_large_datagram(loop):
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop,
                                        remote_addr=server.get_extra_info("sockname"))
        payload = os.urandom(60000)
        client.sendto(payload)
        await sproto.wait_for(1)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return sproto.datagrams[0][0] == payload

    assert run(loop, main())


def test_sendto_accepts_bytes_like_and_copies_them(loop):
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop, family=socket.AF_INET)
        addr = server.get_extra_info("sockname")
        buf = bytearray(b"abc")
        client.sendto(buf, addr)
        buf[:] = b"XYZ"
        client.sendto(memoryview(b"0123456")[2:5], addr)
        client.sendto(b"end", addr)
        await sproto.wait_for(3)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return [d for d, _ in sproto.datagrams]

    assert run(loop, main()) == [b"abc", b"234", b"end"]


@pytest.mark.xfail_loop("uvloop", reason="another TypeError message")
def test_sendto_rejects_str(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        with pytest.raises(TypeError,
                           match="data argument must be a bytes-like object, not 'str'"):
            transport.sendto("text", ("127.0.0.1", 9))
        assert not transport.is_closing()
        transport.close()
        await proto.lost

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="sendto() does not resolve host names")
def test_sendto_hostname_destination(loop):
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop, family=socket.AF_INET)
        port = server.get_extra_info("sockname")[1]
        client.sendto(b"by name", ("localhost", port))
        await sproto.wait_for(1)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return sproto.datagrams[0][0]

    assert run(loop, main()) == b"by name"


@pytest.mark.xfail_loop(
    "uvloop", condition=PY313,
    reason="drops empty datagrams, which asyncio sends from 3.13 on")
def test_empty_datagram(loop):
    """3.13 sends b''; earlier versions drop it silently."""
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop,
                                        remote_addr=server.get_extra_info("sockname"))
        client.sendto(b"")
        client.sendto(b"after")
        await sproto.wait_for(2 if PY313 else 1)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return [d for d, _ in sproto.datagrams]

    assert run(loop, main()) == ([b"", b"after"] if PY313 else [b"after"])



# ---------------------------------------------------------------------- connected


def test_connected_endpoint(loop):
    async def main():
        server, sproto = await endpoint(loop, lambda: Echo(loop),
                                        local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, cproto = await endpoint(loop, remote_addr=addr)
        assert client.get_extra_info("peername") == addr
        client.sendto(b"one")
        client.sendto(b"two", addr)
        await cproto.wait_for(2)
        with pytest.raises(ValueError, match=r"Invalid address: must be None or "):
            client.sendto(b"three", ("127.0.0.1", addr[1] + 1 if addr[1] < 65535 else 1))
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return [d for d, _ in cproto.datagrams]

    assert run(loop, main()) == [b"one", b"two"]


def test_connected_endpoint_ignores_other_senders(loop):
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        async def main():
            server, sproto = await endpoint(loop, lambda: Echo(loop),
                                            local_addr=("127.0.0.1", 0))
            client, cproto = await endpoint(
                loop, remote_addr=server.get_extra_info("sockname"))
            stranger.sendto(b"not for you", client.get_extra_info("sockname"))
            client.sendto(b"hello")
            await cproto.wait_for(1)
            await asyncio.sleep(0.02)
            server.close()
            client.close()
            await asyncio.gather(sproto.lost, cproto.lost)
            return [d for d, _ in cproto.datagrams]

        assert run(loop, main()) == [b"hello"]
    finally:
        stranger.close()


def test_error_received_on_connection_refused(loop):
    port = free_udp_port()

    async def main():
        transport, proto = await endpoint(loop, remote_addr=("127.0.0.1", port))
        for _ in range(200):   # the ICMP error comes back asynchronously
            transport.sendto(b"anyone?")
            try:
                await asyncio.wait_for(asyncio.shield(proto.wait_error()), 0.05)
                break
            except asyncio.TimeoutError:
                pass
        assert proto.errors, "no error_received"
        assert isinstance(proto.errors[0], ConnectionRefusedError)
        assert not transport.is_closing()
        transport.close()
        return await proto.lost

    assert run(loop, main()) is None


def test_error_received_for_a_refused_destination(loop):
    """sendto to port 0 fails in the syscall: error_received, the transport lives."""
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop, family=socket.AF_INET)
        client.sendto(b"nowhere", ("127.0.0.1", 0))
        await cproto.wait_error()
        assert isinstance(cproto.errors[0], OSError)
        assert not client.is_closing()
        client.sendto(b"still works", server.get_extra_info("sockname"))
        await sproto.wait_for(1)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)

    run(loop, main())


@pytest.mark.allow_loop_errors
@pytest.mark.xfail_loop(
    "uvloop", reason="raises from sendto() instead of failing the transport")
def test_sendto_without_address_on_unconnected_transport_is_fatal(loop):
    """asyncio passes addr=None to socket.sendto(): the TypeError is fatal to the
    transport, reported to the exception handler, and given to connection_lost."""
    reported = []

    async def main():
        loop.set_exception_handler(lambda l, ctx: reported.append(ctx))
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        transport.sendto(b"where to?")
        assert transport.is_closing()
        return await proto.lost

    exc = run(loop, main())
    assert isinstance(exc, TypeError)
    assert reported and reported[0]["message"] == "Fatal write error on datagram transport"
    assert reported[0]["exception"] is exc



# ---------------------------------------------------------------------- protocol errors


@pytest.mark.allow_loop_errors
def test_exception_in_datagram_received_does_not_stop_reading(loop):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reported = []

    class Flaky(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise RuntimeError("protocol bug")

    try:
        async def main():
            loop.set_exception_handler(lambda l, ctx: reported.append(ctx))
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            for data in (b"boom", b"a", b"b"):   # all queued before the first read
                sender.sendto(data, receiver.getsockname())
            transport, proto = await endpoint(loop, lambda: Flaky(loop), sock=receiver)
            await proto.wait_for(3)
            transport.close()
            await proto.lost
            return [d for d, _ in proto.datagrams]

        assert run(loop, main()) == [b"boom", b"a", b"b"]
        assert len(reported) == 1
        assert isinstance(reported[0]["exception"], RuntimeError)
    finally:
        sender.close()


# ---------------------------------------------------------------------- extra info


@pytest.mark.xfail_loop(
    "uvloop", reason="'socket' is uvloop's PseudoSocket, not asyncio's TransportSocket")
def test_extra_info(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        sock = transport.get_extra_info("socket")
        info = {
            "socket_type": type(sock),
            "family": sock.family,
            "type": sock.type,
            "sockname": transport.get_extra_info("sockname"),
            "sock_sockname": sock.getsockname(),
            "peername": transport.get_extra_info("peername"),
            "default": transport.get_extra_info("no such key", "dflt"),
            "none": transport.get_extra_info("no such key"),
        }
        transport.close()
        await proto.lost
        return info

    info = run(loop, main())
    assert info["socket_type"] is asyncio.trsock.TransportSocket
    assert info["family"] == socket.AF_INET
    assert info["type"] == socket.SOCK_DGRAM
    assert info["sockname"] == info["sock_sockname"]
    assert info["sockname"][0] == "127.0.0.1"
    assert info["peername"] is None
    assert info["default"] == "dflt"
    assert info["none"] is None



# ---------------------------------------------------------------------- sock=


def test_sock_argument(loop):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    fd = sock.fileno()

    async def main():
        transport, proto = await endpoint(loop, sock=sock)
        assert sock.gettimeout() == 0
        assert transport.get_extra_info("socket").fileno() == fd
        assert transport.get_extra_info("sockname") == sock.getsockname()
        transport.close()
        await proto.lost

    try:
        run(loop, main())
        assert sock.fileno() == -1   # the transport closed it
    finally:
        sock.close()


def test_sock_argument_already_connected(loop):
    """A socket connected before being passed: peername is set and sendto() sends
    to the peer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(peer.getsockname())

        async def main():
            transport, proto = await endpoint(loop, sock=sock)
            assert transport.get_extra_info("peername") == peer.getsockname()
            transport.sendto(b"to the peer")
            data = await loop.sock_recv(peer, 100)
            transport.close()
            await proto.lost
            return data

        try:
            assert run(loop, main()) == b"to the peer"
        finally:
            sock.close()


@pytest.mark.xfail_loop(
    "uvloop", condition=PY313, reason="keeps the pre-3.13 message")
def test_sock_argument_rejects_a_stream_socket(loop):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        msg = "A datagram socket was expected" if PY313 else "A UDP Socket was expected"
        with pytest.raises(ValueError, match=msg):
            run(loop, endpoint(loop, sock=sock))



@pytest.mark.xfail_loop("uvloop", reason="lists the modifiers in another format")
def test_sock_argument_with_modifiers(loop):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(ValueError) as info:
            run(loop, endpoint(loop, sock=sock, local_addr=("127.0.0.1", 0),
                               reuse_port=True))
        assert str(info.value) == (
            "socket modifier keyword arguments can not be used when sock is "
            "specified. (local_addr=('127.0.0.1', 0), reuse_port=True)")


# ---------------------------------------------------------------------- bad arguments


def test_no_address_and_no_family(loop):
    with pytest.raises(ValueError, match="unexpected address family"):
        run(loop, endpoint(loop))


@pytest.mark.parametrize("addr", ["127.0.0.1", ("127.0.0.1",), ("127.0.0.1", 0, 0)])
@pytest.mark.xfail_loop("uvloop", reason="another TypeError message")
def test_address_must_be_a_pair(loop, addr):
    with pytest.raises(TypeError, match="2-tuple is expected"):
        run(loop, endpoint(loop, local_addr=addr))



@pytest.mark.xfail_loop(
    "uvloop", reason="rejects reuse_address with ValueError, not as an unknown argument")
def test_reuse_address_is_rejected(loop):
    with pytest.raises(TypeError, match="reuse_address"):
        run(loop, endpoint(loop, local_addr=("127.0.0.1", 0), reuse_address=True))



@pytest.mark.xfail_loop("uvloop", reason="fails with another error")
def test_families_of_local_and_remote_must_match(loop):
    with pytest.raises(ValueError, match="can not get address information"):
        run(loop, endpoint(loop, local_addr=("127.0.0.1", 0), remote_addr=("::1", 9)))


@pytest.mark.xfail_loop("uvloop", reason="raises an OSError without errno")
def test_bind_error_is_raised(loop):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as info:
            run(loop, endpoint(loop, local_addr=taken.getsockname()))
        assert info.value.errno == __import__("errno").EADDRINUSE


def test_local_host_name_is_resolved(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("localhost", 0),
                                          family=socket.AF_INET)
        name = transport.get_extra_info("sockname")
        transport.close()
        await proto.lost
        return name

    assert run(loop, main())[0] == "127.0.0.1"


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
@pytest.mark.xfail_loop("uvloop", reason="connects a broadcast endpoint to remote_addr")
def test_reuse_port_and_allow_broadcast(loop):
    async def main():
        a, pa = await endpoint(loop, local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = a.get_extra_info("sockname")
        b, pb = await endpoint(loop, local_addr=addr, reuse_port=True)
        sock = b.get_extra_info("socket")
        reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        c, pc = await endpoint(loop, remote_addr=addr, allow_broadcast=True)
        csock = c.get_extra_info("socket")
        broadcast = csock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        # A broadcast endpoint is not connected, but sends to remote_addr.
        peer = c.get_extra_info("peername")
        c.sendto(b"via sendto")
        for _ in range(500):    # one of the two bound sockets gets it
            if pa.datagrams or pb.datagrams:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        got = pa.datagrams + pb.datagrams
        for t in (a, b, c):
            t.close()
        await asyncio.gather(pa.lost, pb.lost, pc.lost)
        return reuse, broadcast, peer, got

    reuse, broadcast, peer, got = run(loop, main())
    assert reuse and broadcast
    assert peer is None
    assert [d for d, _ in got] == [b"via sendto"]


# ---------------------------------------------------------------------- AF_UNIX


@pytest.mark.xfail_loop("uvloop", reason="no AF_UNIX datagram endpoints")
def test_unix_datagram_endpoints(loop, tmpdir_short):
    spath = os.path.join(tmpdir_short, "s")
    cpath = os.path.join(tmpdir_short, "c")

    async def main():
        server, sproto = await endpoint(loop, lambda: Echo(loop),
                                        family=socket.AF_UNIX, local_addr=spath)
        client, cproto = await endpoint(loop, family=socket.AF_UNIX,
                                        local_addr=cpath, remote_addr=spath)
        assert server.get_extra_info("sockname") == spath
        assert client.get_extra_info("peername") == spath
        client.sendto(b"over unix")
        await cproto.wait_for(1)
        server.close()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return sproto.datagrams, cproto.datagrams

    sdgrams, cdgrams = run(loop, main())
    assert sdgrams == [(b"over unix", cpath)]
    assert cdgrams == [(b"over unix", spath)]


@pytest.mark.xfail_loop("uvloop", reason="no AF_UNIX datagram endpoints")
def test_unix_datagram_stale_socket_file_is_replaced(loop, tmpdir_short):
    path = os.path.join(tmpdir_short, "stale")
    old = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old.bind(path)
    old.close()           # the file stays behind
    assert os.path.exists(path)

    async def main():
        transport, proto = await endpoint(loop, family=socket.AF_UNIX, local_addr=path)
        name = transport.get_extra_info("sockname")
        transport.close()
        await proto.lost
        return name

    assert run(loop, main()) == path


@pytest.mark.xfail_loop(
    "uvloop", reason="does not check the type of an AF_UNIX address")
def test_unix_datagram_address_must_be_a_string(loop):
    with pytest.raises(TypeError, match="string is expected"):
        run(loop, endpoint(loop, family=socket.AF_UNIX, local_addr=("x", 1)))



# ---------------------------------------------------------------------- flow control


@pytest.mark.xfail_loop("uvloop", reason="other default water marks")
def test_write_buffer_limits(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        try:
            limits = [transport.get_write_buffer_limits()]
            transport.set_write_buffer_limits(high=100)
            limits.append(transport.get_write_buffer_limits())
            transport.set_write_buffer_limits(low=10)
            limits.append(transport.get_write_buffer_limits())
            transport.set_write_buffer_limits(high=50, low=20)
            limits.append(transport.get_write_buffer_limits())
            with pytest.raises(ValueError,
                               match=r"high \(1\) must be >= low \(2\) must be >= 0"):
                transport.set_write_buffer_limits(high=1, low=2)
            assert transport.get_write_buffer_size() == 0
            return limits
        finally:
            transport.close()
            await proto.lost

    assert run(loop, main()) == [(16384, 65536), (25, 100), (10, 40), (20, 50)]


@pytest.mark.xfail_loop("uvloop", reason="no AF_UNIX datagram endpoints")
def test_full_send_buffer_pauses_and_resumes_writing(loop, tmpdir_short):
    b = unix_receiver(os.path.join(tmpdir_short, "r"))

    async def main():
        transport, proto = await unix_sender(loop, b.getsockname(), 32768)
        transport.set_write_buffer_limits(high=8000, low=2000)
        sent_directly = await fill_until_buffered(transport)
        n_extra = 0
        while "pause" not in proto.events:
            transport.sendto(b"x" * 1000)
            n_extra += 1
        assert transport.get_write_buffer_size() > 8000
        assert proto.events == ["made", "pause"]
        received = []
        while len(received) < sent_directly + n_extra:   # the peer reads everything
            received += drain_dgrams(b)
            await asyncio.sleep(0.001)
        assert proto.events == ["made", "pause", "resume"]
        transport.close()
        await proto.lost
        return sent_directly + n_extra, received

    try:
        n, received = run(loop, main())
        assert len(received) == n
        assert all(d == b"x" * 1000 for d in received)
    finally:
        b.close()


@pytest.mark.xfail_loop("uvloop", reason="no AF_UNIX datagram endpoints")
def test_buffered_datagrams_keep_their_order(loop, tmpdir_short):
    b = unix_receiver(os.path.join(tmpdir_short, "r"))

    async def main():
        transport, proto = await unix_sender(loop, b.getsockname(), 16384)
        n = await fill_until_buffered(transport, data=b"x" * 500)
        for i in range(20):
            transport.sendto(b"%d" % i)
        received = []
        while len(received) < n + 20:
            received += drain_dgrams(b)
            await asyncio.sleep(0.001)
        assert transport.get_write_buffer_size() == 0 or PY313  # 3.13.0 miscounts
        transport.close()
        await proto.lost
        return received[n:]

    try:
        assert run(loop, main()) == [b"%d" % i for i in range(20)]
    finally:
        b.close()


@pytest.mark.xfail_loop("uvloop", reason="no AF_UNIX datagram endpoints")
def test_close_flushes_the_buffer_first(loop, tmpdir_short):
    b = unix_receiver(os.path.join(tmpdir_short, "r"))

    async def main():
        transport, proto = await unix_sender(loop, b.getsockname(), 16384)
        n = await fill_until_buffered(transport)
        transport.sendto(b"last")
        transport.close()
        assert transport.is_closing()
        await asyncio.sleep(0.02)
        assert not proto.lost.done()       # waits for the buffer to drain
        received = []
        while not proto.lost.done():
            received += drain_dgrams(b)
            await asyncio.sleep(0.001)
        received += drain_dgrams(b)
        return n, received, proto.lost.result(), proto.events

    try:
        n, received, exc, events = run(loop, main())
        assert exc is None
        assert len(received) == n + 1 and received[-1] == b"last"
        assert events == ["made", "lost"]
    finally:
        b.close()


@pytest.mark.xfail_loop(
    "uvloop", reason="no AF_UNIX datagram endpoints")
def test_abort_drops_the_buffer(loop, tmpdir_short):
    b = unix_receiver(os.path.join(tmpdir_short, "r"))

    async def main():
        transport, proto = await unix_sender(loop, b.getsockname(), 16384)
        n = await fill_until_buffered(transport)
        transport.sendto(b"never sent")
        transport.abort()
        assert transport.is_closing()
        exc = await proto.lost
        return n, exc, drain_dgrams(b)

    try:
        n, exc, received = run(loop, main())
        assert exc is None
        assert len(received) == n - 1   # the datagram that met EAGAIN was buffered
        assert b"never sent" not in received
    finally:
        b.close()



# ---------------------------------------------------------------------- closing


def test_close_is_idempotent_and_calls_connection_lost_once(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        sock = transport.get_extra_info("socket")
        assert not transport.is_closing()
        transport.close()
        transport.close()
        transport.abort()
        assert transport.is_closing()
        assert proto.events == ["made"]   # connection_lost comes in a later callback
        exc = await proto.lost
        await asyncio.sleep(0.01)
        return exc, proto.events, sock.fileno()

    exc, events, fileno = run(loop, main())
    assert exc is None
    assert events == ["made", "lost"]
    assert fileno == -1


def test_close_stops_reading_at_once(loop):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    class Closer(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            self.transport.close()

    try:
        async def main():
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            for i in range(5):
                sender.sendto(b"%d" % i, receiver.getsockname())
            transport, proto = await endpoint(loop, lambda: Closer(loop), sock=receiver)
            await proto.lost
            return proto.events

        assert run(loop, main()) == ["made", "data", "lost"]
    finally:
        sender.close()


def test_sendto_after_close_on_a_connected_transport_is_dropped(loop, caplog):
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop,
                                        remote_addr=server.get_extra_info("sockname"))
        client.close()
        await cproto.lost
        for _ in range(7):
            client.sendto(b"too late")
        await asyncio.sleep(0.02)
        server.close()
        await sproto.lost
        return sproto.datagrams

    assert run(loop, main()) == []
    assert "socket.send() raised exception." in caplog.text



@pytest.mark.xfail_loop(
    "uvloop", reason="UDPTransport has no pause_reading/resume_reading")
def test_pause_and_resume_reading(loop):
    async def main():
        server, sproto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        client, cproto = await endpoint(loop,
                                        remote_addr=server.get_extra_info("sockname"))
        assert server.is_reading()
        server.pause_reading()
        assert not server.is_reading()
        client.sendto(b"held")
        await asyncio.sleep(0.02)
        assert sproto.datagrams == []
        server.resume_reading()
        assert server.is_reading()
        await sproto.wait_for(1)
        server.close()
        assert not server.is_reading()
        client.close()
        await asyncio.gather(sproto.lost, cproto.lost)
        return [d for d, _ in sproto.datagrams]

    assert run(loop, main()) == [b"held"]



def test_transport_fd_is_refused_to_add_reader(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        fd = transport.get_extra_info("socket").fileno()
        try:
            with pytest.raises(RuntimeError, match=f"File descriptor {fd} is used by "
                                                   f"transport"):
                loop.add_reader(fd, lambda: None)
        finally:
            transport.close()
            await proto.lost

    run(loop, main())



@pytest.mark.xfail_loop(
    "uvloop", reason="warns from the loop, not for the transport")
def test_unclosed_transport_warns(loop_factory):
    loop = loop_factory()
    try:
        async def main():
            return await endpoint(loop, local_addr=("127.0.0.1", 0))

        transport, proto = run(loop, main())
        fd = transport.get_extra_info("socket").fileno()
    finally:
        loop.close()
    del transport, proto
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    messages = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert any(m.startswith("unclosed transport") for m in messages), messages
    with pytest.raises(OSError):
        os.fstat(fd)



@pytest.mark.xfail_loop(
    "uvloop", reason="reprs libuv handles, not asyncio's fields")
def test_repr(loop):
    async def main():
        transport, proto = await endpoint(loop, local_addr=("127.0.0.1", 0))
        fd = transport.get_extra_info("socket").fileno()
        r_open = repr(transport)
        transport.close()
        r_closing = repr(transport)
        await proto.lost
        return fd, r_open, r_closing, repr(transport)

    fd, r_open, r_closing, r_closed = run(loop, main())
    assert f"fd={fd}" in r_open and "read=polling" in r_open
    assert "write=<idle, bufsize=0>" in r_open
    assert "closing" in r_closing
    assert "closed" in r_closed



def test_cancelled_endpoint_creation_leaves_nothing_open(loop):
    async def main():
        task = asyncio.ensure_future(endpoint(loop, local_addr=("127.0.0.1", 0)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)

    run(loop, main())

"""Connections and servers over TCP: create_connection, create_server and Server.

asyncio resolves host and port (numeric hosts without a lookup, names through
loop.getaddrinfo), tries each address in turn (or staggered, with happy eyeballs), and
raises the one error, or 'Multiple exceptions: ...' when the attempts failed
differently. A server binds one socket per resolved address (IPv6 ones IPV6_V6ONLY),
tracks its connections, and since 3.12.1 wait_closed waits for them to be gone.
Every loop gets the 3.13 Server API; the oracle and uvloop are only held to what
their Python version documents.
"""

import asyncio
import contextlib
import errno
import socket
import sys

import pytest

from .support import run

try:  # only in a tree where the probe loop exists (see _probe.py)
    from ._probe import loop_factory, loop_name  # noqa: F401
except ImportError:
    pass

HAS_IPV6_LOOPBACK = socket.has_ipv6
if HAS_IPV6_LOOPBACK:
    try:
        with socket.socket(socket.AF_INET6) as _s:
            _s.bind(("::1", 0))
    except OSError:
        HAS_IPV6_LOOPBACK = False


# ---------------------------------------------------------------------- helpers

class Recorder(asyncio.Protocol):
    """Records what a connection receives; futures for connection_made/lost."""

    def __init__(self):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.data = bytearray()
        self.eof = False
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self._changed = None

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.data += data
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)
        self._wake()

    def _wake(self):
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    async def read(self, n):
        """Wait until at least n bytes arrived (or the connection ended)."""
        while len(self.data) < n and not self.eof and not self.lost.done():
            self._changed = asyncio.get_running_loop().create_future()
            await self._changed
        return bytes(self.data)


class Echo(asyncio.Protocol):
    """Writes back what it receives; closes on EOF. Collects its instances."""

    instances = None

    def connection_made(self, transport):
        self.transport = transport
        if Echo.instances is not None:
            Echo.instances.append(self)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()


async def echo_server(loop, host="127.0.0.1", **kwargs):
    return await loop.create_server(Echo, host, 0, **kwargs)


def port_of(server):
    return server.sockets[0].getsockname()[1]


@contextlib.contextmanager
def closed_port():
    """A loopback port that refuses connections (bound, not listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def fake_resolver(loop, *ports, host="127.0.0.1"):
    """Make loop.getaddrinfo answer every name with these loopback addresses."""
    infos = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, p))
             for p in ports]
    asked = []

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        asked.append((host, port))
        return list(infos)

    loop.getaddrinfo = getaddrinfo
    return asked


def since(loop_name, version, what):
    """The oracle (and uvloop, which follows it) documents `what` only from version on;
    gmploop has it everywhere."""
    if loop_name in ("asyncio", "uvloop") and sys.version_info < version:
        pytest.skip(f"{loop_name} on Python {sys.version_info[:2]} has no {what}")


def bind_error_message(address):
    reason = (f"[errno {errno.EADDRINUSE}] address already in use"
              if sys.version_info >= (3, 12) else "address already in use")
    return (f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
            f"{address!r}: {reason}")


def refused_message(port):
    return f"[Errno {errno.ECONNREFUSED}] Connect call failed ('127.0.0.1', {port})"


# ---------------------------------------------------------------------- create_connection

def test_create_connection_echo(loop):
    async def main():
        server = await echo_server(loop)
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        assert pr.transport is tr
        sock = tr.get_extra_info("socket")
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert tr.get_extra_info("peername") == ("127.0.0.1", port_of(server))
        tr.write(b"hello")
        assert await pr.read(5) == b"hello"
        tr.close()
        assert await pr.lost is None
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_connection_with_connected_sock(loop):
    async def main():
        server = await echo_server(loop)
        sock = socket.create_connection(("127.0.0.1", port_of(server)))
        tr, pr = await loop.create_connection(Recorder, sock=sock)
        assert sock.gettimeout() == 0
        tr.write(b"x" * 1000)
        assert await pr.read(1000) == b"x" * 1000
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_connection_local_addr(loop):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]

    async def main():
        server = await echo_server(loop)
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port_of(server), local_addr=("127.0.0.1", local_port))
        assert tr.get_extra_info("sockname") == ("127.0.0.1", local_port)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_connection_resolves_names_with_getaddrinfo(loop):
    async def main():
        server = await echo_server(loop)
        tr, pr = await loop.create_connection(Recorder, "localhost", port_of(server),
                                              family=socket.AF_INET)
        assert tr.get_extra_info("peername") == ("127.0.0.1", port_of(server))
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_connection_refused(loop):
    with closed_port() as port:
        async def main():
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.create_connection(Recorder, "127.0.0.1", port)
            return info.value

        exc = run(loop, main())
        assert exc.errno == errno.ECONNREFUSED


@pytest.mark.xfail_loop("uvloop", reason="its message names no address")
def test_create_connection_refused_message(loop):
    with closed_port() as port:
        async def main():
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.create_connection(Recorder, "127.0.0.1", port)
            return info.value

        assert str(run(loop, main())) == refused_message(port)


@pytest.mark.xfail_loop("uvloop", reason="resolves without loop.getaddrinfo")
def test_create_connection_tries_each_address_in_order(loop):
    async def main():
        server = await echo_server(loop)
        with closed_port() as bad:
            asked = fake_resolver(loop, bad, port_of(server))
            tr, pr = await loop.create_connection(Recorder, "name.invalid", 1)
        assert asked == [("name.invalid", 1)]
        assert tr.get_extra_info("peername")[1] == port_of(server)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="resolves without loop.getaddrinfo")
def test_create_connection_multiple_exceptions(loop):
    with closed_port() as p1, closed_port() as p2:
        async def main():
            fake_resolver(loop, p1, p2)
            with pytest.raises(OSError) as info:
                await loop.create_connection(Recorder, "name.invalid", 1)
            return info.value

        exc = run(loop, main())
        assert type(exc) is OSError
        assert str(exc) == (f"Multiple exceptions: {refused_message(p1)}, "
                            f"{refused_message(p2)}")


@pytest.mark.xfail_loop("uvloop", reason="resolves without loop.getaddrinfo")
def test_create_connection_same_error_twice_is_raised_once(loop):
    with closed_port() as p:
        async def main():
            fake_resolver(loop, p, p)
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.create_connection(Recorder, "name.invalid", 1)
            return info.value

        assert str(run(loop, main())) == refused_message(p)


@pytest.mark.xfail_loop("uvloop", reason="no all_errors")
def test_create_connection_all_errors(loop, loop_name):
    since(loop_name, (3, 12), "all_errors")
    with closed_port() as p1, closed_port() as p2:
        async def main():
            fake_resolver(loop, p1, p2)
            with pytest.raises(ExceptionGroup) as info:
                await loop.create_connection(Recorder, "name.invalid", 1,
                                             all_errors=True)
            return info.value

        group = run(loop, main())
        assert str(group).startswith("create_connection failed")
        assert [type(e) for e in group.exceptions] == [ConnectionRefusedError] * 2


@pytest.mark.xfail_loop("uvloop", reason="no happy_eyeballs_delay")
def test_create_connection_happy_eyeballs(loop):
    async def main():
        server = await echo_server(loop)
        with closed_port() as bad:
            fake_resolver(loop, bad, port_of(server))
            tr, pr = await loop.create_connection(
                Recorder, "name.invalid", 1, happy_eyeballs_delay=0.05)
        assert tr.get_extra_info("peername")[1] == port_of(server)
        tr.write(b"ping")
        assert await pr.read(4) == b"ping"
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="no happy_eyeballs_delay")
def test_create_connection_happy_eyeballs_all_fail(loop):
    with closed_port() as p1, closed_port() as p2:
        async def main():
            fake_resolver(loop, p1, p2)
            with pytest.raises(OSError) as info:
                await loop.create_connection(Recorder, "name.invalid", 1,
                                             happy_eyeballs_delay=0.01, interleave=2)
            return info.value

        assert str(run(loop, main())).startswith("Multiple exceptions: ")


@pytest.mark.skipif(not HAS_IPV6_LOOPBACK, reason="no IPv6 loopback")
@pytest.mark.xfail_loop("uvloop", reason="no happy_eyeballs_delay")
def test_create_connection_happy_eyeballs_across_families(loop):
    """::1 refuses, 127.0.0.1 answers: interleaving reaches the IPv4 address."""
    async def main():
        server = await echo_server(loop)
        port = port_of(server)
        v6_infos = [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     ("::1", port, 0, 0))] * 3
        v4_infos = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     ("127.0.0.1", port))]

        async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
            return v6_infos + v4_infos

        loop.getaddrinfo = getaddrinfo
        tr, pr = await loop.create_connection(Recorder, "name.invalid", port,
                                              happy_eyeballs_delay=0.01)
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_connection_bind_failure_message(loop, loop_name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        laddr = taken.getsockname()

        async def main():
            with pytest.raises(OSError) as info:
                await loop.create_connection(Recorder, "127.0.0.1", laddr[1],
                                             local_addr=laddr)
            return info.value

        exc = run(loop, main())
        assert exc.errno == errno.EADDRINUSE
        if loop_name != "uvloop":
            assert str(exc) == bind_error_message(laddr)


BAD_CONNECT_ARGS = {
    "hostname-without-ssl": (dict(host="127.0.0.1", port=1, server_hostname="x"),
                             "server_hostname is only meaningful with ssl"),
    "ssl-without-host": (dict(sock="tcp", ssl=True),
                         "You must set server_hostname when using ssl without a host"),
    "handshake-timeout-without-ssl": (
        dict(host="127.0.0.1", port=1, ssl_handshake_timeout=1.0),
        "ssl_handshake_timeout is only meaningful with ssl"),
    "shutdown-timeout-without-ssl": (
        dict(host="127.0.0.1", port=1, ssl_shutdown_timeout=1.0),
        "ssl_shutdown_timeout is only meaningful with ssl"),
    "host-and-sock": (dict(host="127.0.0.1", port=1, sock="tcp"),
                      "host/port and sock can not be specified at the same time"),
    "nothing": (dict(), "host and port was not specified and no sock specified"),
    "datagram-sock": (dict(sock="udp"), "A Stream Socket was expected, got "),
}


@pytest.mark.parametrize("case", list(BAD_CONNECT_ARGS))
def test_create_connection_bad_arguments(loop, case):
    kwargs, message = BAD_CONNECT_ARGS[case]
    kwargs = dict(kwargs)
    kind = kwargs.get("sock")
    sock = None
    if kind is not None:
        sock = socket.socket(type=socket.SOCK_DGRAM if kind == "udp"
                             else socket.SOCK_STREAM)
        kwargs["sock"] = sock
    try:
        async def main():
            with pytest.raises(ValueError) as info:
                await loop.create_connection(Recorder, **kwargs)
            return info.value

        assert str(run(loop, main())).startswith(message)
    finally:
        if sock is not None:
            sock.close()


@pytest.mark.xfail_loop("uvloop", reason="accepts an ssl.SSLSocket")
def test_create_connection_rejects_ssl_socket(loop):
    import ssl
    ctx = ssl.create_default_context()
    with ctx.wrap_socket(socket.socket(), server_hostname="localhost",
                         do_handshake_on_connect=False) as sock:
        async def main():
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                await loop.create_connection(Recorder, sock=sock)

        run(loop, main())


def test_create_connection_cancelled_while_connecting(loop):
    """Cancelled while the connect is in flight: the half-made socket is closed (the
    fixture checks for leaked fds)."""
    with socket.socket() as lsock, socket.socket() as filler:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        filler.connect(lsock.getsockname())     # the accept queue is now full:
        # further handshakes get no answer until it drains, which it never does here.

        async def main():
            task = loop.create_task(
                loop.create_connection(Recorder, *lsock.getsockname()))
            await asyncio.sleep(0.1)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(loop, main())


# ---------------------------------------------------------------------- create_server

@pytest.mark.xfail_loop("uvloop", reason="Server.sockets holds its own PseudoSocket objects")
def test_create_server_binds_each_host(loop):
    hosts = ["127.0.0.1", "::1"] if HAS_IPV6_LOOPBACK else ["127.0.0.1"]

    async def main():
        server = await loop.create_server(Echo, hosts, 0)
        socks = server.sockets
        assert sorted(s.family for s in socks) == sorted(
            socket.AF_INET6 if h == "::1" else socket.AF_INET for h in hosts)
        for s in socks:
            assert isinstance(s, asyncio.trsock.TransportSocket)
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            if s.family == socket.AF_INET6:
                assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            host, port = s.getsockname()[:2]
            tr, pr = await loop.create_connection(Recorder, host, port)
            tr.write(b"hi")
            assert await pr.read(2) == b"hi"
            tr.close()
            await pr.lost
        server.close()
        await server.wait_closed()
        assert server.sockets == ()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="binds a duplicate address twice")
def test_create_server_same_address_twice_binds_once(loop):
    async def main():
        server = await loop.create_server(Echo, ["127.0.0.1", "127.0.0.1"], 0)
        assert len(server.sockets) == 1
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_server_with_sock(loop):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))

    async def main():
        server = await loop.create_server(Echo, sock=lsock)
        assert server.sockets[0].fileno() == lsock.fileno()
        assert lsock.gettimeout() == 0
        tr, pr = await loop.create_connection(Recorder, *lsock.getsockname())
        tr.write(b"abc")
        assert await pr.read(3) == b"abc"
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert lsock.fileno() == -1     # closed with the server


def test_create_server_reuse_port(loop):
    async def main():
        a = await loop.create_server(Echo, "127.0.0.1", 0, reuse_port=True)
        port = port_of(a)
        b = await loop.create_server(Echo, "127.0.0.1", port, reuse_port=True)
        assert b.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        for s in (a, b):
            s.close()
            await s.wait_closed()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="no keep_alive")
def test_create_server_keep_alive(loop, loop_name):
    since(loop_name, (3, 13), "keep_alive")

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, keep_alive=True)
        assert server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_create_server_address_in_use(loop, loop_name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = taken.getsockname()

        async def main():
            with pytest.raises(OSError) as info:
                await loop.create_server(Echo, *addr, reuse_address=False)
            return info.value

        exc = run(loop, main())
        assert exc.errno == errno.EADDRINUSE
        if loop_name != "uvloop":
            assert str(exc) == bind_error_message(addr)


BAD_SERVER_ARGS = {
    "ssl-true": (dict(host="127.0.0.1", port=0, ssl=True), TypeError,
                 "ssl argument must be an SSLContext or None"),
    "handshake-timeout-without-ssl": (
        dict(host="127.0.0.1", port=0, ssl_handshake_timeout=1.0), ValueError,
        "ssl_handshake_timeout is only meaningful with ssl"),
    "shutdown-timeout-without-ssl": (
        dict(host="127.0.0.1", port=0, ssl_shutdown_timeout=1.0), ValueError,
        "ssl_shutdown_timeout is only meaningful with ssl"),
    "host-and-sock": (dict(host="127.0.0.1", port=0, sock="tcp"), ValueError,
                      "host/port and sock can not be specified at the same time"),
    "nothing": (dict(), ValueError, "Neither host/port nor sock were specified"),
    "datagram-sock": (dict(sock="udp"), ValueError, "A Stream Socket was expected"),
}


@pytest.mark.parametrize("case", list(BAD_SERVER_ARGS))
def test_create_server_bad_arguments(loop, case):
    kwargs, exc_type, message = BAD_SERVER_ARGS[case]
    kwargs = dict(kwargs)
    kind = kwargs.get("sock")
    sock = None
    if kind is not None:
        sock = socket.socket(type=socket.SOCK_DGRAM if kind == "udp"
                             else socket.SOCK_STREAM)
        kwargs["sock"] = sock
    try:
        async def main():
            with pytest.raises(exc_type) as info:
                await loop.create_server(Echo, **kwargs)
            return info.value

        assert str(run(loop, main())).startswith(message)
    finally:
        if sock is not None:
            sock.close()


# ---------------------------------------------------------------------- Server

@pytest.mark.xfail_loop("uvloop", reason="its Server is no asyncio.AbstractServer")
def test_server_lifecycle(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert isinstance(server, asyncio.AbstractServer)
        assert server.get_loop() is loop
        assert not server.is_serving()
        assert len(server.sockets) == 1
        assert repr(server).endswith(f"sockets={server.sockets!r}>")
        await server.start_serving()
        assert server.is_serving()
        await server.start_serving()    # idempotent
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        tr.close()
        await pr.lost
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        server.close()                  # idempotent
        await server.wait_closed()
        await server.wait_closed()      # returns at once afterwards

    run(loop, main())


def test_server_not_serving_does_not_accept(loop):
    async def main():
        server = await loop.create_server(Recorder, "127.0.0.1", 0,
                                          start_serving=False)
        port = port_of(server)
        # The socket listens (the kernel completes the handshake) only when serving
        # starts; before that a connection is refused.
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, "127.0.0.1", port)
        server.close()
        await server.wait_closed()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="a closed Server's sockets is [], not ()")
def test_server_async_with(loop):
    async def main():
        async with await echo_server(loop) as server:
            assert server.is_serving()
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


def test_serve_forever_cancelled_closes(loop):
    async def main():
        server = await echo_server(loop, start_serving=False)
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(RuntimeError, match="is closed"):
            await server.serve_forever()

    run(loop, main())


def test_serve_forever_ends_when_closed(loop):
    async def main():
        server = await echo_server(loop)
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        server.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_closed()

    run(loop, main())


def test_wait_closed_waits_for_connections(loop, loop_name):
    since(loop_name, (3, 12), "wait_closed that waits for connections")

    async def main():
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        await pr.made
        await asyncio.sleep(0.01)   # the server side's transport exists
        waiting = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiting.done()   # not closed yet
        server.close()
        await asyncio.sleep(0.01)
        assert not waiting.done()   # closed, one connection still open
        tr.close()
        await pr.lost
        await asyncio.wait_for(waiting, 5)

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="no close_clients/abort_clients")
@pytest.mark.xfail_loop("probe", reason="asyncio 3.11's transports attach anonymously",
                        condition=sys.version_info < (3, 12))
@pytest.mark.parametrize("how", ["close_clients", "abort_clients"])
def test_server_close_and_abort_clients(loop, loop_name, how):
    since(loop_name, (3, 13), how)

    async def main():
        Echo.instances = []
        try:
            server = await echo_server(loop)
            clients = []
            for _ in range(3):
                clients.append(await loop.create_connection(
                    Recorder, "127.0.0.1", port_of(server)))
            while len(Echo.instances) < 3:
                await asyncio.sleep(0.001)
            server.close()
            getattr(server, how)()
            await asyncio.wait_for(server.wait_closed(), 5)
            for tr, pr in clients:
                await pr.lost
                tr.close()
        finally:
            Echo.instances = None

    run(loop, main())


def test_accepted_connection_gets_peername(loop):
    async def main():
        Echo.instances = []
        try:
            server = await echo_server(loop)
            tr, pr = await loop.create_connection(Recorder, "127.0.0.1",
                                                  port_of(server))
            tr.write(b"x")
            await pr.read(1)
            (echo,) = Echo.instances
            assert echo.transport.get_extra_info("peername") == \
                tr.get_extra_info("sockname")
            tr.close()
            await pr.lost
            server.close()
            await server.wait_closed()
        finally:
            Echo.instances = None

    run(loop, main())


def test_many_connections_at_once(loop):
    async def main():
        server = await echo_server(loop)

        async def one(i):
            r, w = await asyncio.open_connection("127.0.0.1", port_of(server))
            w.write(b"%d\n" % i)
            line = await r.readline()
            w.close()
            await w.wait_closed()
            return int(line)

        results = await asyncio.gather(*[one(i) for i in range(20)])
        assert results == list(range(20))
        server.close()
        await server.wait_closed()

    run(loop, main())

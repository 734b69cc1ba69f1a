"""Unix stream sockets: create_unix_server, create_unix_connection.

A server's path may hold a stale socket file from a dead server: asyncio removes it
(only if it is a socket) before binding. Since 3.13 the server also removes its file
on close (cleanup_socket=True), unless the file is no longer the one it bound. Paths
starting with a NUL byte are in Linux's abstract namespace: no file at all.
"""

import asyncio
import errno
import os
import socket
import sys

import pytest

from .support import run
from .test_net import Echo, Recorder, since

try:  # only in a tree where the probe loop exists (see _probe.py)
    from ._probe import loop_factory, loop_name  # noqa: F401
except ImportError:
    pass


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "s.sock")


async def roundtrip(loop, path):
    tr, pr = await loop.create_unix_connection(Recorder, path)
    tr.write(b"unix")
    assert await pr.read(4) == b"unix"
    tr.close()
    await pr.lost


def test_unix_echo(loop, sock_path):
    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        (lsock,) = server.sockets
        assert lsock.family == socket.AF_UNIX
        assert lsock.getsockname() == sock_path
        await roundtrip(loop, sock_path)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_unix_path_like(loop, tmp_path):
    path = tmp_path / "p.sock"

    async def main():
        server = await loop.create_unix_server(Echo, path)
        await roundtrip(loop, path)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_unix_with_socks(loop, sock_path):
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(sock_path)

    async def main():
        server = await loop.create_unix_server(Echo, sock=lsock)
        csock = socket.socket(socket.AF_UNIX)
        csock.connect(sock_path)
        tr, pr = await loop.create_unix_connection(Recorder, sock=csock)
        assert csock.gettimeout() == 0
        tr.write(b"abc")
        assert await pr.read(3) == b"abc"
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_unix_stale_socket_file_is_replaced(loop, sock_path):
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(sock_path)        # a server that died without removing its file

    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        await roundtrip(loop, sock_path)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_unix_regular_file_is_not_removed(loop, sock_path):
    with open(sock_path, "w") as f:
        f.write("data")

    async def main():
        with pytest.raises(OSError) as info:
            await loop.create_unix_server(Echo, sock_path)
        return info.value

    exc = run(loop, main())
    assert exc.errno == errno.EADDRINUSE
    assert str(exc) == f"[Errno {errno.EADDRINUSE}] Address {sock_path!r} is already in use"
    with open(sock_path) as f:
        assert f.read() == "data"


def test_unix_server_in_use_by_live_server(loop, sock_path):
    """A live server's file is a socket too: asyncio replaces it (the old server
    keeps listening on a now nameless socket)."""
    async def main():
        first = await loop.create_unix_server(Echo, sock_path)
        second = await loop.create_unix_server(Recorder, sock_path)
        tr, pr = await loop.create_unix_connection(Recorder, sock_path)
        tr.write(b"?")
        await asyncio.sleep(0.05)
        assert pr.data == b""       # reached the second server, which does not echo
        tr.close()
        await pr.lost
        for s in (first, second):
            s.close()
            await s.wait_closed()

    run(loop, main())


def test_unix_cleanup_socket_on_close(loop, loop_name, sock_path):
    since(loop_name, (3, 13), "cleanup_socket")

    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        assert os.path.exists(sock_path)
        server.close()
        await server.wait_closed()
        assert not os.path.exists(sock_path)

    run(loop, main())


def test_unix_cleanup_socket_disabled(loop, loop_name, sock_path):
    since(loop_name, (3, 13), "cleanup_socket")

    async def main():
        server = await loop.create_unix_server(Echo, sock_path, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        assert os.path.exists(sock_path)

    run(loop, main())


def test_unix_cleanup_leaves_a_replaced_file(loop, loop_name, sock_path):
    since(loop_name, (3, 13), "cleanup_socket")

    async def main():
        server = await loop.create_unix_server(Echo, sock_path)
        os.unlink(sock_path)
        with open(sock_path, "w") as f:     # someone else's file now
            f.write("other")
        server.close()
        await server.wait_closed()
        assert os.path.exists(sock_path)

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="EINVAL for an abstract name given as str")
def test_unix_abstract_namespace(loop):
    name = f"\0gmploop-test-{os.getpid()}-{id(loop)}"

    async def main():
        server = await loop.create_unix_server(Echo, name)
        assert server.sockets[0].getsockname() == name.encode()
        await roundtrip(loop, name)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_unix_connection_refused_to_missing_path(loop, sock_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await loop.create_unix_connection(Recorder, sock_path)

    run(loop, main())


BAD_UNIX_CONNECT = {
    "ssl-without-hostname": (dict(path="/x", ssl=True),
                             "you have to pass server_hostname when using ssl"),
    "hostname-without-ssl": (dict(path="/x", server_hostname="x"),
                             "server_hostname is only meaningful with ssl"),
    "handshake-timeout-without-ssl": (dict(path="/x", ssl_handshake_timeout=1.0),
                                      "ssl_handshake_timeout is only meaningful with ssl"),
    "path-and-sock": (dict(path="/x", sock="unix"),
                      "path and sock can not be specified at the same time"),
    "nothing": (dict(), "no path and sock were specified"),
    "tcp-sock": (dict(sock="tcp"), "A UNIX Domain Stream Socket was expected, got "),
}


@pytest.mark.parametrize("case", list(BAD_UNIX_CONNECT))
@pytest.mark.xfail_loop("uvloop", reason="create_connection's message",
                        params={"case": ["ssl-without-hostname"]})
def test_unix_connection_bad_arguments(loop, case):
    kwargs, message = dict(BAD_UNIX_CONNECT[case][0]), BAD_UNIX_CONNECT[case][1]
    kind = kwargs.get("sock")
    sock = None
    if kind is not None:
        sock = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET)
        kwargs["sock"] = sock
    try:
        async def main():
            with pytest.raises(ValueError) as info:
                await loop.create_unix_connection(Recorder, **kwargs)
            return info.value

        assert str(run(loop, main())).startswith(message)
    finally:
        if sock is not None:
            sock.close()


BAD_UNIX_SERVER = {
    "ssl-true": (dict(path="/x", ssl=True), TypeError,
                 "ssl argument must be an SSLContext or None"),
    "handshake-timeout-without-ssl": (dict(path="/x", ssl_handshake_timeout=1.0),
                                      ValueError,
                                      "ssl_handshake_timeout is only meaningful with ssl"),
    "path-and-sock": (dict(path="/x", sock="unix"), ValueError,
                      "path and sock can not be specified at the same time"),
    "nothing": (dict(), ValueError, "path was not specified, and no sock specified"),
    "tcp-sock": (dict(sock="tcp"), ValueError,
                 "A UNIX Domain Stream Socket was expected, got "),
}


@pytest.mark.parametrize("case", list(BAD_UNIX_SERVER))
def test_unix_server_bad_arguments(loop, case):
    kwargs, exc_type, message = BAD_UNIX_SERVER[case]
    kwargs = dict(kwargs)
    kind = kwargs.get("sock")
    sock = None
    if kind is not None:
        sock = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET)
        kwargs["sock"] = sock
    try:
        async def main():
            with pytest.raises(exc_type) as info:
                await loop.create_unix_server(Echo, **kwargs)
            return info.value

        assert str(run(loop, main())).startswith(message)
    finally:
        if sock is not None:
            sock.close()


@pytest.mark.xfail_loop("uvloop", reason="wait_closed returns with connections open",
                        condition=sys.version_info >= (3, 12))
def test_unix_server_wait_closed_waits_for_connections(loop, loop_name, sock_path):
    since(loop_name, (3, 12), "wait_closed that waits for connections")

    async def main():
        server = await loop.create_unix_server(Recorder, sock_path)
        tr, pr = await loop.create_unix_connection(Recorder, sock_path)
        await asyncio.sleep(0.01)
        server.close()
        waiting = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        tr.close()
        await pr.lost
        await asyncio.wait_for(waiting, 5)

    run(loop, main())

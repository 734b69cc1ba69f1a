"""TLS: ssl= on create_connection/create_server, start_tls, connect_accepted_socket.

asyncio runs TLS as a protocol (sslproto.SSLProtocol) between a plain stream transport
and the application's protocol; the loop only has to stack them. The certificate is
a self-signed one for 'localhost' (tests/compat/certs), trusted by the client context.
"""

import asyncio
import contextlib
import os
import socket
import ssl

import pytest

from .support import run
from .test_net import Echo, Recorder, port_of

try:  # only in a tree where the probe loop exists (see _probe.py)
    from ._probe import loop_factory, loop_name  # noqa: F401
except ImportError:
    pass

CERTS = os.path.join(os.path.dirname(__file__), "certs")
CERT = os.path.join(CERTS, "ssl_cert.pem")
KEY = os.path.join(CERTS, "ssl_key.pem")


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CERT)
    return ctx


async def tls_roundtrip(tr, pr, payload=b"secret"):
    tr.write(payload)
    assert await pr.read(len(payload)) == payload


def test_tls_echo(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_context())
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port_of(server), ssl=client_context(),
            server_hostname="localhost")
        assert tr.get_extra_info("sslcontext") is not None
        assert tr.get_extra_info("peercert")["subject"]
        assert tr.get_extra_info("cipher") is not None
        await tls_roundtrip(tr, pr, os.urandom(300_000))
        tr.close()
        assert await pr.lost is None
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_hostname_from_host(loop):
    """Without server_hostname the host is checked against the certificate."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_context())
        tr, pr = await loop.create_connection(
            Recorder, "localhost", port_of(server), ssl=client_context(),
            family=socket.AF_INET, ssl_handshake_timeout=5.0, ssl_shutdown_timeout=5.0)
        await tls_roundtrip(tr, pr)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_certificate_rejected(loop):
    async def main():
        server = await loop.create_server(Recorder, "127.0.0.1", 0,
                                          ssl=server_context())
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                Recorder, "127.0.0.1", port_of(server), ssl=True,
                server_hostname="localhost")       # default context: unknown CA
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_tls_server_side_needs_a_context(loop):
    async def main():
        with pytest.raises(TypeError, match="ssl argument must be an SSLContext"):
            await loop.create_server(Echo, "127.0.0.1", 0, ssl=True)

    run(loop, main())


def test_tls_handshake_timeout(loop):
    """A peer that never answers the handshake: ConnectionAbortedError after
    ssl_handshake_timeout."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()

        async def main():
            with pytest.raises(ConnectionAbortedError):
                await loop.create_connection(
                    Recorder, *lsock.getsockname(), ssl=client_context(),
                    server_hostname="localhost", ssl_handshake_timeout=0.2)

        run(loop, main())
        conn, _ = lsock.accept()
        conn.close()


def test_tls_unix(loop, tmp_path):
    path = str(tmp_path / "tls.sock")

    async def main():
        server = await loop.create_unix_server(Echo, path, ssl=server_context())
        tr, pr = await loop.create_unix_connection(
            Recorder, path, ssl=client_context(), server_hostname="localhost")
        await tls_roundtrip(tr, pr)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------- start_tls

def test_start_tls_both_sides(loop):
    """A plain connection upgraded on both ends (STARTTLS style)."""
    async def main():
        upgraded = loop.create_future()

        async def handle(reader, writer):
            line = await reader.readline()
            assert line == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            upgraded.set_result(writer.get_extra_info("sslcontext") is not None)
            data = await reader.readline()
            writer.write(data.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_context(), server_hostname="localhost")
        assert writer.get_extra_info("peercert") is not None
        writer.write(b"over tls\n")
        assert await reader.readline() == b"OVER TLS\n"
        assert await upgraded
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_low_level(loop):
    """loop.start_tls directly: the new transport carries the old protocol."""
    async def main():
        plain_server = socket.socket()
        plain_server.bind(("127.0.0.1", 0))
        plain_server.listen()
        plain_server.setblocking(False)
        try:
            connect = loop.create_task(loop.create_connection(
                Recorder, *plain_server.getsockname()))
            conn, _ = await loop.sock_accept(plain_server)
            tr, pr = await connect
            srv_tr, srv_pr = await loop.connect_accepted_socket(Recorder, conn)
            client_up = loop.create_task(loop.start_tls(
                tr, pr, client_context(), server_hostname="localhost"))
            server_up = loop.create_task(loop.start_tls(
                srv_tr, srv_pr, server_context(), server_side=True))
            tls_tr = await client_up
            tls_srv_tr = await server_up
            assert tls_tr.get_protocol() is pr
            assert tr.is_reading() and tr.get_protocol() is not pr
            tls_tr.write(b"after upgrade")
            assert await srv_pr.read(13) == b"after upgrade"
            tls_tr.close()
            await pr.lost
            tls_srv_tr.close()
            await srv_pr.lost
        finally:
            plain_server.close()

    run(loop, main())


def test_start_tls_rejects_non_context(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        with pytest.raises(TypeError, match="sslcontext is expected to be an instance"):
            await loop.start_tls(tr, pr, object())
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_start_tls_handshake_failure_closes(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        # The peer echoes the ClientHello back: not a TLS server.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await loop.start_tls(tr, pr, client_context(), server_hostname="localhost",
                                 ssl_handshake_timeout=2.0)
        assert tr.is_closing()
        server.close()
        await server.wait_closed()

    run(loop, main())


# ---------------------------------------------------------------------- connect_accepted_socket

@pytest.mark.xfail_loop("uvloop", reason="works on a dup of the socket, leaves it blocking")
def test_connect_accepted_socket_plain(loop):
    with socket.socket() as lsock, contextlib.ExitStack() as stack:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        client = socket.create_connection(lsock.getsockname())
        conn, _ = lsock.accept()
        stack.enter_context(client)
        stack.enter_context(conn)

        async def main():
            tr, pr = await loop.connect_accepted_socket(Echo, conn)
            assert conn.gettimeout() == 0
            ctr, cpr = await loop.create_connection(Recorder, sock=client)
            ctr.write(b"accepted")
            assert await cpr.read(8) == b"accepted"
            ctr.close()
            await cpr.lost
            await asyncio.sleep(0.01)
            assert tr.is_closing()

        run(loop, main())


def test_connect_accepted_socket_tls(loop):
    with socket.socket() as lsock, contextlib.ExitStack() as stack:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        client = socket.create_connection(lsock.getsockname())
        conn, _ = lsock.accept()
        stack.enter_context(client)
        stack.enter_context(conn)

        async def main():
            accepted = loop.create_task(loop.connect_accepted_socket(
                Echo, conn, ssl=server_context(), ssl_handshake_timeout=5.0))
            ctr, cpr = await loop.create_connection(
                Recorder, sock=client, ssl=client_context(),
                server_hostname="localhost")
            tr, _ = await accepted
            await tls_roundtrip(ctr, cpr)
            ctr.close()
            await cpr.lost
            tr.close()

        run(loop, main())


@pytest.mark.parametrize("case", ["datagram", "timeout-without-ssl"])
def test_connect_accepted_socket_bad_arguments(loop, case):
    sock = socket.socket(type=socket.SOCK_DGRAM if case == "datagram"
                         else socket.SOCK_STREAM)
    kwargs = {"ssl_handshake_timeout": 1.0} if case == "timeout-without-ssl" else {}
    message = ("A Stream Socket was expected" if case == "datagram"
               else "ssl_handshake_timeout is only meaningful with ssl")
    try:
        async def main():
            with pytest.raises(ValueError, match=message):
                await loop.connect_accepted_socket(Recorder, sock, **kwargs)

        run(loop, main())
    finally:
        sock.close()

"""The loop.sock_* coroutines on real loopback sockets.

asyncio tries the syscall first and waits for readiness (add_reader/add_writer on the
socket's fd) only if it would block; cancelling the wait removes that registration. In
debug mode a socket that is not non-blocking (gettimeout() != 0) is rejected with
ValueError("the socket must be non-blocking"); an ssl.SSLSocket always with TypeError.
"""

import asyncio
import hashlib
import random
import socket
import ssl

import pytest

from .support import drain, run, socketpair, tcp_listener, tcp_pair

MiB = 1024 * 1024


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


async def recv_exactly(loop, sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = await loop.sock_recv_into(sock, view[got:])
        if k == 0:
            break
        got += k
    return bytes(buf[:got])


def test_sock_connect_and_accept(loop):
    with tcp_listener() as lsock:
        client = socket.socket()
        client.setblocking(False)
        try:
            async def main():
                accept = asyncio.ensure_future(loop.sock_accept(lsock))
                await loop.sock_connect(client, lsock.getsockname())
                return await accept

            conn, addr = run(loop, main())
            with conn:
                assert conn.gettimeout() == 0
                assert addr == client.getsockname()
                assert conn.getpeername() == client.getsockname()
        finally:
            client.close()


def test_sock_accept_waits_for_a_connection(loop):
    with tcp_listener() as lsock:
        client = socket.socket()
        client.setblocking(False)
        try:
            async def main():
                accept = asyncio.ensure_future(loop.sock_accept(lsock))
                await asyncio.sleep(0.02)
                assert not accept.done()
                await loop.sock_connect(client, lsock.getsockname())
                conn, _ = await accept
                conn.close()

            run(loop, main())
        finally:
            client.close()


def test_sock_connect_resolves_a_host_name(loop):
    with tcp_listener() as lsock:
        client = socket.socket(socket.AF_INET)
        client.setblocking(False)
        try:
            async def main():
                accept = asyncio.ensure_future(loop.sock_accept(lsock))
                await loop.sock_connect(client, ("localhost", lsock.getsockname()[1]))
                conn, _ = await accept
                conn.close()

            run(loop, main())
            assert client.getpeername() == lsock.getsockname()
        finally:
            client.close()


def test_sock_connect_refused(loop):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        client = socket.socket()
        client.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError):
                run(loop, loop.sock_connect(client, unused.getsockname()))
        finally:
            client.close()


def test_sock_recv_and_sendall(loop):
    with tcp_pair() as (client, server):
        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(server, 100))
            await asyncio.sleep(0.01)
            assert not recv.done()  # waits for data
            await loop.sock_sendall(client, b"hello")
            return await recv

        assert run(loop, main()) == b"hello"


def test_sock_recv_returns_available_data_at_once(loop):
    with tcp_pair() as (client, server):
        client.send(b"already here")

        async def main():
            await asyncio.sleep(0.01)
            return await loop.sock_recv(server, 100)

        assert run(loop, main()) == b"already here"


def test_sock_recv_eof(loop):
    with tcp_pair() as (client, server):
        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(server, 100))
            await asyncio.sleep(0.01)
            client.shutdown(socket.SHUT_WR)
            return await recv

        assert run(loop, main()) == b""


def test_sock_recv_into(loop):
    with tcp_pair() as (client, server):
        async def main():
            buf = bytearray(10)
            recv = asyncio.ensure_future(loop.sock_recv_into(server, buf))
            await asyncio.sleep(0.01)
            await loop.sock_sendall(client, b"abc")
            n = await recv
            view = memoryview(buf)[n:]
            await loop.sock_sendall(client, b"defghijklmnop")
            m = await loop.sock_recv_into(server, view)
            return n, m, bytes(buf)

        assert run(loop, main()) == (3, 7, b"abcdefghij")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_sock_sendall_large_payload_intact(loop, kind):
    data = payload(10 * MiB)
    pair = tcp_pair() if kind == "tcp" else socketpair()
    with pair as (client, server):
        async def main():
            received, _ = await asyncio.gather(
                recv_exactly(loop, server, len(data)),
                loop.sock_sendall(client, data))
            return received

        received = run(loop, main(), timeout=50)
    assert len(received) == len(data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


def test_sock_sendall_accepts_buffers(loop):
    with socketpair() as (a, b):
        async def main():
            await loop.sock_sendall(a, bytearray(b"ab"))
            await loop.sock_sendall(a, memoryview(b"xcdx")[1:3])
            return await recv_exactly(loop, b, 4)

        assert run(loop, main()) == b"abcd"


def test_sock_ping_pong_both_directions(loop):
    with tcp_pair() as (client, server):
        async def echo():
            for _ in range(100):
                data = await loop.sock_recv(server, 100)
                await loop.sock_sendall(server, data)

        async def main():
            echo_task = asyncio.ensure_future(echo())
            for i in range(100):
                msg = f"ping {i}".encode()
                await loop.sock_sendall(client, msg)
                assert await recv_exactly(loop, client, len(msg)) == msg
            await echo_task

        run(loop, main())


# --- UDP -----------------------------------------------------------------------------------


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


UVLOOP_UDP = "sock_recvfrom/sock_recvfrom_into/sock_sendto raise NotImplementedError"


@pytest.mark.xfail_loop("uvloop", reason=UVLOOP_UDP)
def test_sock_sendto_and_recvfrom(loop):
    a, b = udp_socket(), udp_socket()
    try:
        async def main():
            recv = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0.01)
            assert not recv.done()
            sent = await loop.sock_sendto(a, b"datagram", b.getsockname())
            return sent, await recv

        sent, (data, addr) = run(loop, main())
        assert sent == len(b"datagram")
        assert data == b"datagram"
        assert addr == a.getsockname()
    finally:
        a.close()
        b.close()


@pytest.mark.xfail_loop("uvloop", reason=UVLOOP_UDP)
def test_sock_recvfrom_into(loop):
    a, b = udp_socket(), udp_socket()
    try:
        async def main():
            buf = bytearray(100)
            recv = asyncio.ensure_future(loop.sock_recvfrom_into(b, buf))
            await asyncio.sleep(0.01)
            await loop.sock_sendto(a, b"first", b.getsockname())
            n, addr = await recv
            first = bytes(buf[:n])
            await loop.sock_sendto(a, b"second", b.getsockname())
            n2, _ = await loop.sock_recvfrom_into(b, buf, 3)  # truncated datagram
            return first, addr, n2, bytes(buf[:n2])

        first, addr, n2, second = run(loop, main())
        assert first == b"first"
        assert addr == a.getsockname()
        assert (n2, second) == (3, b"sec")
    finally:
        a.close()
        b.close()


# --- sendfile ------------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path):
    data = payload(MiB + 123, seed=1)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.timeout(60)
@pytest.mark.xfail_loop("uvloop", reason="sock_sendfile raises NotImplementedError")
def test_sock_sendfile_whole_file(loop, data_file):
    path, data = data_file
    with tcp_pair() as (client, server), open(path, "rb") as f:
        async def main():
            received, sent = await asyncio.gather(
                recv_exactly(loop, server, len(data)), loop.sock_sendfile(client, f))
            return received, sent

        received, sent = run(loop, main(), timeout=50)
        assert sent == len(data)
        assert received == data
        assert f.tell() == len(data)


@pytest.mark.xfail_loop("uvloop", reason="sock_sendfile raises NotImplementedError")
def test_sock_sendfile_offset_and_count(loop, data_file):
    path, data = data_file
    with tcp_pair() as (client, server), open(path, "rb") as f:
        async def main():
            received, sent = await asyncio.gather(
                recv_exactly(loop, server, 5000),
                loop.sock_sendfile(client, f, offset=1000, count=5000))
            return received, sent

        received, sent = run(loop, main())
        assert sent == 5000
        assert received == data[1000:6000]
        assert f.tell() == 6000


@pytest.mark.parametrize("case", ["text-mode", "udp", "count-zero", "count-str",
                                  "offset-negative"])
@pytest.mark.xfail_loop("uvloop", reason="sock_sendfile raises NotImplementedError")
def test_sock_sendfile_bad_arguments(loop, data_file, case):
    path, _ = data_file
    expected = TypeError if case == "count-str" else ValueError
    kwargs = {"count-zero": {"count": 0}, "count-str": {"count": "1"},
              "offset-negative": {"offset": -1}}.get(case, {})
    mode = "r" if case == "text-mode" else "rb"
    udp = udp_socket()
    try:
        with tcp_pair() as (client, _), open(path, mode) as f:
            sock = udp if case == "udp" else client
            with pytest.raises(expected):
                run(loop, loop.sock_sendfile(sock, f, **kwargs))
    finally:
        udp.close()


# --- misuse --------------------------------------------------------------------------------


def _sock_op(loop, op, sock, peer_addr):
    return {
        "sock_recv": lambda: loop.sock_recv(sock, 10),
        "sock_recv_into": lambda: loop.sock_recv_into(sock, bytearray(10)),
        "sock_sendall": lambda: loop.sock_sendall(sock, b"x"),
        "sock_connect": lambda: loop.sock_connect(sock, peer_addr),
        "sock_accept": lambda: loop.sock_accept(sock),
        "sock_recvfrom": lambda: loop.sock_recvfrom(sock, 10),
        "sock_recvfrom_into": lambda: loop.sock_recvfrom_into(sock, bytearray(10)),
        "sock_sendto": lambda: loop.sock_sendto(sock, b"x", peer_addr),
    }[op]()


SOCK_OPS = ["sock_recv", "sock_recv_into", "sock_sendall", "sock_connect", "sock_accept",
            "sock_recvfrom", "sock_recvfrom_into", "sock_sendto"]


@pytest.mark.parametrize("op", SOCK_OPS)
@pytest.mark.xfail_loop("uvloop", reason=UVLOOP_UDP,
                        params={"op": ["sock_recvfrom", "sock_recvfrom_into", "sock_sendto"]})
def test_debug_rejects_socket_that_is_not_non_blocking(loop, op):
    loop.set_debug(True)
    with tcp_listener() as lsock, socket.socket() as sock:
        # A timeout, not fully blocking: without the check the call fails fast instead
        # of hanging the test.
        sock.settimeout(0.5)
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            run(loop, _sock_op(loop, op, sock, lsock.getsockname()))


@pytest.mark.parametrize("op", SOCK_OPS)
@pytest.mark.xfail_loop("uvloop", reason="no SSLSocket check (and " + UVLOOP_UDP + ")")
def test_ssl_socket_rejected(loop, op):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with tcp_listener() as lsock, socket.socket() as raw:
        raw.setblocking(False)
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             do_handshake_on_connect=False) as sslsock:
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                run(loop, _sock_op(loop, op, sslsock, lsock.getsockname()))


# --- cancellation ---------------------------------------------------------------------------


def test_cancelled_sock_recv_removes_its_reader(loop):
    with tcp_pair() as (client, server):
        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(server, 100))
            await asyncio.sleep(0.01)
            recv.cancel()
            with pytest.raises(asyncio.CancelledError):
                await recv
            fired = loop.create_future()

            def reader():
                if not fired.done():
                    fired.set_result(server.recv(100))

            loop.add_reader(server, reader)
            client.send(b"after cancel")
            try:
                return await fired
            finally:
                loop.remove_reader(server)

        assert run(loop, main()) == b"after cancel"


def test_data_after_cancelled_sock_recv_is_not_lost(loop):
    with tcp_pair() as (client, server):
        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(server, 100))
            await asyncio.sleep(0.01)
            recv.cancel()
            await asyncio.sleep(0)
            client.send(b"kept")
            await asyncio.sleep(0.01)
            return await loop.sock_recv(server, 100)

        assert run(loop, main()) == b"kept"


def test_cancelled_sock_accept_removes_its_reader(loop):
    with tcp_listener() as lsock:
        async def main():
            accept = asyncio.ensure_future(loop.sock_accept(lsock))
            await asyncio.sleep(0.01)
            accept.cancel()
            with pytest.raises(asyncio.CancelledError):
                await accept
            fired = loop.create_future()
            loop.add_reader(lsock, lambda: fired.done() or fired.set_result(True))
            with socket.create_connection(lsock.getsockname()):
                try:
                    await fired
                finally:
                    loop.remove_reader(lsock)
                conn, _ = lsock.accept()
                conn.close()

        run(loop, main())


def test_cancelled_sock_sendall_removes_its_writer(loop):
    with socketpair() as (a, b):
        async def main():
            send = asyncio.ensure_future(loop.sock_sendall(a, b"x" * (64 * MiB)))
            await asyncio.sleep(0.01)
            assert not send.done()  # the peer reads nothing: the buffer is full
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            drain(b)  # make room again: a is writable
            fired = loop.create_future()
            loop.add_writer(a, lambda: fired.done() or fired.set_result(True))
            try:
                await fired
            finally:
                loop.remove_writer(a)

        run(loop, main())


def test_sock_sendall_to_closed_peer_raises_connection_error(loop):
    with tcp_pair() as (client, server):
        server.close()

        async def main():
            for _ in range(100):  # the first writes may still succeed
                await loop.sock_sendall(client, b"x" * MiB)

        with pytest.raises(ConnectionError):
            run(loop, main())


def test_sock_recv_after_reset_raises_connection_reset(loop):
    import struct
    with tcp_pair() as (client, server):
        async def main():
            recv = asyncio.ensure_future(loop.sock_recv(client, 100))
            await asyncio.sleep(0.01)
            # SO_LINGER with a zero timeout: close() sends RST
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()
            return await recv

        with pytest.raises(ConnectionResetError):
            run(loop, main())

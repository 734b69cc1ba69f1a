"""A TCP echo server and client on gmploop, using the loop's socket API.

    python examples/echo_sockets.py

Starts a server on 127.0.0.1 (a free port), connects 20 clients that each send a few
messages and check the echo, prints what the loop did, and exits.
"""
import asyncio
import socket

import gmploop


async def serve(loop, lsock, stop):
    async def handle(conn):
        with conn:
            while data := await loop.sock_recv(conn, 65536):
                await loop.sock_sendall(conn, data)

    async with asyncio.TaskGroup() as tg:
        accept = asyncio.ensure_future(loop.sock_accept(lsock))
        while True:
            done, _ = await asyncio.wait({accept, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                accept.cancel()
                return
            conn, _ = accept.result()
            tg.create_task(handle(conn))
            accept = asyncio.ensure_future(loop.sock_accept(lsock))


async def client(loop, addr, n):
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, addr)
        for i in range(5):
            msg = f"client {n} message {i}\n".encode()
            await loop.sock_sendall(sock, msg)
            got = b""
            while len(got) < len(msg):
                got += await loop.sock_recv(sock, 65536)
            assert got == msg, (got, msg)
    return n


async def main():
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    lsock.setblocking(False)
    stop = loop.create_future()
    server = asyncio.ensure_future(serve(loop, lsock, stop))
    done = await asyncio.gather(*(client(loop, lsock.getsockname(), n) for n in range(20)))
    stop.set_result(None)
    await server
    lsock.close()
    print(f"running on {type(loop).__module__}.{type(loop).__name__}: "
          f"{len(done)} clients echoed 5 messages each")
    print("loop stats:", loop.stats())


if __name__ == "__main__":
    gmploop.run(main())

"""Echo servers on gmploop, written the two ways asyncio offers: streams and a Protocol.

    python examples/echo_server.py            # start both, check them with clients, exit
    python examples/echo_server.py --serve    # keep serving until Ctrl-C

Both servers listen on 127.0.0.1 (free ports). Without --serve, 20 clients per server
each send a few lines and check the echo, and the program prints one line per server:

    streams  server on gmploop.Loop: 20 clients echoed 100 lines
    protocol server on gmploop.Loop: 20 clients echoed 100 lines

With --serve it prints the two addresses (try ``nc 127.0.0.1 PORT``).
(examples/echo_sockets.py does the same with the loop's low-level sock_* calls.)
"""
import asyncio
import sys

import gmploop

HOST = "127.0.0.1"
CLIENTS = 20
LINES = 5


# ---- the streams way: a coroutine per connection ----

async def handle_stream(reader, writer):
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


# ---- the Protocol way: callbacks, no task per connection ----

class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        # Returning a false value closes the transport, as the client asked.
        return False


async def client(port, n):
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for i in range(LINES):
            line = f"client {n} line {i}\n".encode()
            writer.write(line)
            await writer.drain()
            echoed = await reader.readline()
            assert echoed == line, (echoed, line)
        writer.write_eof()
        assert await reader.read() == b""      # the server closed after our EOF
    finally:
        writer.close()
        await writer.wait_closed()
    return LINES


async def main(serve_forever):
    loop = asyncio.get_running_loop()
    streams = await asyncio.start_server(handle_stream, HOST, 0)
    protocol = await loop.create_server(EchoProtocol, HOST, 0)
    async with streams, protocol:
        servers = {"streams ": streams, "protocol": protocol}
        if serve_forever:
            for name, server in servers.items():
                print(f"{name.strip()} echo server on {HOST}:"
                      f"{server.sockets[0].getsockname()[1]}", flush=True)
            print("Ctrl-C to stop", flush=True)
            await asyncio.Event().wait()
        loop_name = f"{type(loop).__module__}.{type(loop).__qualname__}"
        for name, server in servers.items():
            port = server.sockets[0].getsockname()[1]
            echoed = await asyncio.gather(*(client(port, n) for n in range(CLIENTS)))
            print(f"{name} server on {loop_name}: {len(echoed)} clients echoed "
                  f"{sum(echoed)} lines")


if __name__ == "__main__":
    try:
        gmploop.run(main("--serve" in sys.argv[1:]))
    except KeyboardInterrupt:
        pass

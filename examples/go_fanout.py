"""Fan-out with gmploop.go: start many coroutines, fire and forget, collect answers.

    python examples/go_fanout.py [N]

Starts an echo server on 127.0.0.1 (port 0), then N clients (default 200) with
gmploop.go: each is queued unstarted on the P's queue and started by the loop as a
Task, which connects, sends its number and puts the echo on a queue. main awaits the
N answers and prints one line, e.g.
"go_fanout: 200 coroutines started with gmploop.go, 200 echoes, on gmploop.Loop".
"""
import asyncio
import sys

import gmploop


async def echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def client(port, i, answers):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{i}\n".encode())
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    await answers.put(int(line))


async def main(n):
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    answers = asyncio.Queue()
    async with server:
        for i in range(n):
            gmploop.go(client(port, i, answers))      # returns at once
        got = sorted([await answers.get() for _ in range(n)])
    assert got == list(range(n)), got
    loop = type(asyncio.get_running_loop())
    print(f"go_fanout: {n} coroutines started with gmploop.go, {len(got)} echoes, "
          f"on {loop.__module__}.{loop.__qualname__}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    gmploop.run(main(n))

"""Sysmon catches a handler that blocks its loop, and says where, while it blocks.

A small asyncio TCP server on gmploop answers each request in a coroutine; one kind of
request makes the handler call time.sleep(0.4), a blocking call that stops every other
connection of the loop. Sysmon, gmploop's watchdog thread, notices the loop has run
one callback for longer than its threshold (100 ms by default) and logs a report on
the 'gmploop' logger while the handler is still asleep: the task, the blocking call and
the stack down to it. A second record gives the total when it returns.

    python examples/sysmon_demo.py              # one fast and one slow request, then exit
    GMPLOOP_DEBUG=sysmon=50 python examples/sysmon_demo.py    # a 50 ms threshold

The demo prints sysmon's records as they arrive, then when the slow reply came.
"""

import asyncio
import logging
import sys
import time

import gmploop


def handle_slow_request():
    time.sleep(0.4)            # the mistake: a blocking call inside a coroutine
    return b"slow answer\n"


async def handle(reader, writer):
    line = await reader.readline()
    if line.strip() == b"slow":
        reply = handle_slow_request()
    else:
        reply = b"fast answer\n"
    writer.write(reply)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def ask(port, what):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(what + b"\n")
    reply = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return reply


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        print("fast request:", (await ask(port, b"fast")).decode().strip(), flush=True)
        t0 = time.monotonic()
        reply = await ask(port, b"slow")
        print(f"slow request: {reply.decode().strip()} after "
              f"{time.monotonic() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    # Sysmon reports through logging: show its records on stdout as they arrive.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    logging.getLogger("gmploop").addHandler(handler)
    logging.getLogger("gmploop").setLevel(logging.INFO)
    gmploop.run(main())

"""An aiohttp server on two Ps: gmploop.run(main, procs=2), one listening socket.

    python examples/multi_p_aiohttp.py [PORT]            # serve, query itself, print, exit
    python examples/multi_p_aiohttp.py [PORT] --serve    # keep serving until Ctrl-C

The port comes from the command line, else from $PORT, else 8080 (0 picks a free one:
every P gets the same one). `main` runs once on every P, each a process pinned to its
own CPU; the listener is bound once and shared, and a P that is busy in a handler does
not accept, so concurrent clients spread over the Ps.

Without --serve, P0 also runs a client: it sends batches of concurrent requests until
both Ps have answered, prints one line ("served 16 requests on 2 Ps; each P answered"),
then tells every P to stop through a pipe made before the Ps were started, and each
P's main returns the number of requests it served.
"""
import asyncio
import os
import sys
import time

from aiohttp import ClientSession, TCPConnector, web

import gmploop

HOST = "127.0.0.1"
PROCS = 2
SERVED = web.AppKey("served", list)


async def hello(request):
    # Hold the P a little, as a handler with real work would: meanwhile the other P
    # takes the next connections.
    end = time.perf_counter() + 0.005
    while time.perf_counter() < end:
        pass
    request.app[SERVED][0] += 1
    return web.Response(text=f"Hello from P{os.environ['GMPLOOP_P']}!\n")


def make_app():
    app = web.Application()
    app[SERVED] = [0]
    app.add_routes([web.get("/", hello)])
    return app


async def wait_readable(fd):
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        while True:
            await ready
            try:
                return os.read(fd, 1)
            except BlockingIOError:     # another P took the byte first
                ready = loop.create_future()
                loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    finally:
        loop.remove_reader(fd)


async def query(port):
    """Concurrent requests, each on a new connection, until every P has answered."""
    answered = set()
    sent = 0
    async with ClientSession(connector=TCPConnector(force_close=True)) as session:
        async def one():
            async with session.get(f"http://{HOST}:{port}/") as resp:
                assert resp.status == 200
                return await resp.text()
        while len(answered) < PROCS and sent < 400:
            for text in await asyncio.gather(*[one() for _ in range(8)]):
                answered.add(text)
            sent += 8
    return sent, answered


def main_for(port, serve_forever, stop_r, stop_w):
    async def main():
        app = make_app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, HOST, port)
            await site.start()
            bound = runner.addresses[0][1]
            first = os.environ["GMPLOOP_P"] == "0"
            if serve_forever:
                if first:
                    print(f"serving on http://{HOST}:{bound}/ with {PROCS} Ps "
                          f"(Ctrl-C to stop)", flush=True)
                await asyncio.Event().wait()
            if first:
                sent, answered = await query(bound)
                each = "each P answered" if len(answered) == PROCS else \
                    f"only {sorted(answered)} answered"
                print(f"served {sent} requests on {PROCS} Ps; {each}", flush=True)
                os.write(stop_w, b"x" * PROCS)
            await wait_readable(stop_r)
            return app[SERVED][0]
        finally:
            await runner.cleanup()
    return main


def parse_args(argv):
    args = [a for a in argv if a != "--serve"]
    if len(args) > 1:
        sys.exit(f"usage: {sys.argv[0]} [PORT] [--serve]")
    port = int(args[0]) if args else int(os.environ.get("PORT", "8080"))
    return port, "--serve" in argv


if __name__ == "__main__":
    port, serve_forever = parse_args(sys.argv[1:])
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_r, False)
    try:
        counts = gmploop.run(main_for(port, serve_forever, stop_r, stop_w), procs=PROCS)
    except KeyboardInterrupt:
        pass
    else:
        assert len(counts) == PROCS and all(counts), counts

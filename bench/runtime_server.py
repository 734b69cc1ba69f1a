#!/usr/bin/env python3
"""The aiohttp server that bench/runtime_bench.py loads: gmploop.run(main, procs=N).

    python bench/runtime_server.py --procs 2 [--port 0]

The same application, for the comparison with gunicorn and aiohttp's uvloop worker
(bench/runtime_bench.py binds the socket and passes it as fd://N):

    gunicorn runtime_server:gunicorn_app --chdir bench \
        --worker-class aiohttp.GunicornUVLoopWebWorker -w 2 --bind 127.0.0.1:8080

Routes (aiohttp.web, no access log):

    /        "Hello, World!"
    /cpu     burns about 200 us of CPU in Python, then answers (a handler with work)
    /sleep   blocks its P for 2 s with time.sleep (the stuck-P test), then answers

P0 prints "READY <port>" once its site is listening; every P serves until SIGTERM or
SIGINT (the runtime forwards it to each P). The listeners are the runtime's: one shared
socket, or one per P with GMPLOOP_LISTEN=reuseport. GMPLOOP_M=thread|process chooses
what a P is (threads need a free-threaded Python with the GIL off).

    python bench/runtime_server.py --plain-threads 2 [--port 0]

is the baseline for thread mode: the same app on N plain asyncio loops (no gmploop),
each asyncio.run in a thread of its own with its own SO_REUSEPORT listener on one
port: what CPython itself gives N threads, without any runtime.
"""
import argparse
import asyncio
import os
import signal
import sys
import threading
import time

from aiohttp import web

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gmploop  # noqa: E402
from gmploop import _runtime  # noqa: E402

CPU_BURN = 200e-6   # seconds of Python work per /cpu request
STUCK_FOR = 2.0     # seconds /sleep blocks its P


async def hello(request):
    return web.Response(text="Hello, World!")


async def cpu(request):
    end = time.perf_counter() + CPU_BURN
    n = 0
    while time.perf_counter() < end:
        n += 1
    return web.Response(text=f"burnt {n}")


async def sleep(request):
    time.sleep(STUCK_FOR)       # deliberately blocks the whole P
    return web.Response(text="woke up")


def make_app():
    app = web.Application()
    app.add_routes([web.get("/", hello), web.get("/cpu", cpu), web.get("/sleep", sleep)])
    return app


async def gunicorn_app():
    """gunicorn's entry point (aiohttp's worker awaits an async app factory); no
    access log unless gunicorn is given --access-logfile, as in main below."""
    return make_app()


def main_for(port, reuse_port=None, started=None, stop=None):
    async def main():
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port)
            await site.start()
            if started is not None:
                started(runner.addresses[0][1], asyncio.get_running_loop())
            elif _runtime.this_p() in (None, 0):
                print(f"READY {runner.addresses[0][1]}", flush=True)
            await (stop or asyncio.Event()).wait()
        finally:
            await runner.cleanup()
    return main


def plain_threads(n, port):
    """The baseline: n asyncio.run loops in n threads, one SO_REUSEPORT listener
    each on one port; serves until SIGTERM or SIGINT."""
    ports = []
    stops = []
    first = threading.Event()

    def started(bound, loop):
        ports.append(bound)
        first.set()

    async def thread_main():
        stop = asyncio.Event()
        stops.append((stop, asyncio.get_running_loop()))
        await main_for(ports[0] if ports else port, True, started, stop)()

    def body():
        asyncio.run(thread_main())

    threads = [threading.Thread(target=body)]
    threads[0].start()
    first.wait(30)
    threads += [threading.Thread(target=body) for _ in range(n - 1)]
    for t in threads[1:]:
        t.start()
    while len(ports) < n:
        time.sleep(0.01)
    print(f"READY {ports[0]}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    for stop, loop in stops:
        loop.call_soon_threadsafe(stop.set)
    for t in threads:
        t.join()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--plain-threads", type=int, default=0)
    args = parser.parse_args()
    if args.plain_threads:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        plain_threads(args.plain_threads, args.port)
        sys.exit(0)
    try:
        gmploop.run(main_for(args.port), procs=args.procs)
    except (KeyboardInterrupt, SystemExit):
        pass

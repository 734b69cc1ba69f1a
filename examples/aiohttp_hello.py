"""An aiohttp hello-world server on gmploop.

    python examples/aiohttp_hello.py [PORT]            # serve, query itself, print, exit
    python examples/aiohttp_hello.py [PORT] --serve    # keep serving until Ctrl-C

The port comes from the command line, else from $PORT, else 8080 (0 picks a free one).
Without --serve the server answers a few requests from an aiohttp client on the same loop
and prints one line, e.g. "served 3 requests on gmploop.Loop", then exits.
"""
import asyncio
import os
import sys

from aiohttp import ClientSession, web

import gmploop

HOST = "127.0.0.1"
STATS = web.AppKey("stats", dict)


async def hello(request):
    name = request.match_info.get("name", "world")
    return web.Response(text=f"Hello, {name}!\n")


def make_app():
    app = web.Application()
    app[STATS] = {"served": 0}

    @web.middleware
    async def count(request, handler):
        request.app[STATS]["served"] += 1
        return await handler(request)

    app.middlewares.append(count)
    app.add_routes([web.get("/", hello), web.get("/{name}", hello)])
    return app


async def main(port, serve_forever):
    app = make_app()
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        port = runner.addresses[0][1]
        if serve_forever:
            print(f"serving on http://{HOST}:{port}/ (Ctrl-C to stop)", flush=True)
            await asyncio.Event().wait()
        async with ClientSession() as session:
            for path, expected in (("/", "Hello, world!\n"), ("/gmploop", "Hello, gmploop!\n"),
                                   ("/asyncio", "Hello, asyncio!\n")):
                async with session.get(f"http://{HOST}:{port}{path}") as resp:
                    body = await resp.text()
                    assert resp.status == 200 and body == expected, (resp.status, body)
        loop = type(asyncio.get_running_loop())
        print(f"served {app[STATS]['served']} requests on {loop.__module__}.{loop.__qualname__}")
    finally:
        await runner.cleanup()


def parse_args(argv):
    args = [a for a in argv if a != "--serve"]
    if len(args) > 1:
        sys.exit(f"usage: {sys.argv[0]} [PORT] [--serve]")
    port = int(args[0]) if args else int(os.environ.get("PORT", "8080"))
    return port, "--serve" in argv


if __name__ == "__main__":
    port, serve_forever = parse_args(sys.argv[1:])
    try:
        if sys.version_info >= (3, 12):
            asyncio.run(main(port, serve_forever), loop_factory=gmploop.new_event_loop)
        else:
            gmploop.run(main(port, serve_forever))
    except KeyboardInterrupt:
        pass

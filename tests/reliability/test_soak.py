"""Soak: mixed echo, TLS and HTTP traffic with churning connections; afterwards the fd
count, the task count and the resident size are back at their baseline.

Three servers run on the loop under test in this process: a TCP echo server, a TLS
echo server (the compat suite's self-signed certificate) and an aiohttp application.
A child process on asyncio's own loop drives them for the soak's length: short and
long echo connections (some ended by a reset), TLS connections, HTTP requests on
kept-alive and on fresh sessions. A warm-up round comes first, so that the baseline
includes what the servers keep once they have served (caches, pools, the allocator's
arenas); the soak must then leave nothing more behind.

Length: ``GMPLOOP_SOAK_SECONDS`` (default 60 on gmploop, a quarter of it on asyncio's
loop, whose row only shows the soak itself is sound). CI runs the default; set more
for a long run, e.g. ``GMPLOOP_SOAK_SECONDS=600 python -m pytest -m soak``.
"""

import asyncio
import gc
import os
import ssl
import subprocess
import sys
import textwrap

import pytest

from .support import ExceptionLog, open_fds, rss, run

aiohttp_web = pytest.importorskip("aiohttp.web", reason="the HTTP traffic needs aiohttp")

SOAK_SECONDS = float(os.environ.get("GMPLOOP_SOAK_SECONDS", "60"))
WARM_UP_SECONDS = 2.0
RSS_TOLERANCE = 16 * 1024 * 1024   # allocator slack on a busy box; a per-connection
                                   # leak over tens of thousands of requests is larger
CERTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "compat", "certs")

CLIENT = textwrap.dedent("""
    import asyncio, os, random, socket, ssl, struct, sys, time
    import aiohttp

    echo_port, tls_port, http_port, seconds, cafile = sys.argv[1:]
    seconds = float(seconds)
    rnd = random.Random(1234)
    counts = {"echo": 0, "tls": 0, "http": 0}

    async def echo(port, ssl_ctx=None):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_ctx,
            server_hostname="localhost" if ssl_ctx else None)
        for _ in range(rnd.randint(1, 5)):
            msg = os.urandom(rnd.choice((10, 1000, 70000)))
            writer.write(msg)
            assert await reader.readexactly(len(msg)) == msg
        if ssl_ctx is None and rnd.random() < 0.3:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
        counts["tls" if ssl_ctx else "echo"] += 1

    async def http(session, port):
        if rnd.random() < 0.5:
            async with session.get(f"http://127.0.0.1:{port}/hello") as r:
                assert r.status == 200 and await r.text() == "hello"
        else:
            body = os.urandom(rnd.choice((10, 5000, 200000)))
            async with session.post(f"http://127.0.0.1:{port}/echo", data=body) as r:
                assert await r.read() == body
        counts["http"] += 1

    async def worker(kind, ctx, deadline):
        session = aiohttp.ClientSession()
        try:
            while time.monotonic() < deadline:
                if kind == "echo":
                    await echo(int(echo_port))
                elif kind == "tls":
                    await echo(int(tls_port), ctx)
                else:
                    if rnd.random() < 0.1:      # churn the pool's connections
                        await session.close()
                        session = aiohttp.ClientSession()
                    await http(session, int(http_port))
        finally:
            await session.close()

    async def main():
        ctx = ssl.create_default_context(cafile=cafile)
        deadline = time.monotonic() + seconds
        kinds = ["echo"] * 4 + ["tls"] * 2 + ["http"] * 4
        await asyncio.gather(*(worker(k, ctx, deadline) for k in kinds))
        print(counts["echo"], counts["tls"], counts["http"], flush=True)

    asyncio.run(main())
""")


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def _app():
    async def hello(request):
        return aiohttp_web.Response(text="hello")

    async def echo(request):
        return aiohttp_web.Response(body=await request.read())

    app = aiohttp_web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    return app


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS * 1.25 + 90)
def test_soak_returns_to_baseline(loop, loop_name):
    seconds = SOAK_SECONDS if loop_name == "gmploop" else SOAK_SECONDS / 4
    log = ExceptionLog(loop)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(os.path.join(CERTS, "ssl_cert.pem"),
                               os.path.join(CERTS, "ssl_key.pem"))

    async def drive(ports, length):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, *map(str, ports), str(length),
            os.path.join(CERTS, "ssl_cert.pem"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), length + 60)
        assert proc.returncode == 0, err.decode()[-3000:]
        return [int(x) for x in out.split()]

    async def settle():
        for _ in range(50):     # closes and handshakes in flight finish
            await asyncio.sleep(0.01)
        gc.collect()

    def snapshot():
        return len(open_fds()), len(asyncio.all_tasks()), rss()

    async def main():
        echo_server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=256)
        tls_server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx,
                                              backlog=256)
        runner = aiohttp_web.AppRunner(_app())
        await runner.setup()
        site = aiohttp_web.TCPSite(runner, "127.0.0.1", 0, backlog=256)
        await site.start()
        ports = (echo_server.sockets[0].getsockname()[1],
                 tls_server.sockets[0].getsockname()[1],
                 site._server.sockets[0].getsockname()[1])
        try:
            await drive(ports, WARM_UP_SECONDS)
            await settle()
            base = snapshot()
            counts = await drive(ports, seconds)
            await settle()
            after = snapshot()
        finally:
            await runner.cleanup()
            echo_server.close()
            tls_server.close()
            await echo_server.wait_closed()
            await tls_server.wait_closed()
        return base, after, counts

    base, after, counts = run(loop, main(), timeout=seconds + 80)
    fds0, tasks0, rss0 = base
    fds1, tasks1, rss1 = after
    print(f"{loop_name}: {seconds:.0f}s soak: echo {counts[0]}, tls {counts[1]}, "
          f"http {counts[2]}; fds {fds0}->{fds1}, tasks {tasks0}->{tasks1}, "
          f"rss {rss0 / 2**20:.1f}->{rss1 / 2**20:.1f} MiB")
    assert min(counts) > 0
    assert fds1 <= fds0
    assert tasks1 <= tasks0
    assert rss1 - rss0 < RSS_TOLERANCE
    assert log.contexts == []

"""aiohttp's server and client on the loop: a real application's use of stream
transports, create_server, create_connection, flow control, half-close and shutdown.

Each test starts an application with AppRunner/TCPSite on 127.0.0.1 (a free port) and
talks to it with aiohttp's ClientSession on the same loop; one test runs the whole of
web.run_app on the loop and ends it from inside, as a signal or an exit would.
"""

import asyncio
import hashlib
import io
import os
import random
import signal
import socket

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from .support import run  # noqa: E402

MiB = 1024 * 1024


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


BIG = payload(10 * MiB, 1)
PEERS = web.AppKey("peers", list)
SLOW_STARTED = web.AppKey("slow_started", asyncio.Event)
QUERY = web.AppKey("query", asyncio.Future)


def make_app():
    app = web.Application(client_max_size=64 * MiB)
    app[PEERS] = []

    async def hello(request):
        app[PEERS].append(request.transport.get_extra_info("peername"))
        return web.Response(text="Hello, world")

    async def echo(request):
        body = await request.read()
        return web.Response(body=body, content_type="application/octet-stream")

    async def digest(request):
        h = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            h.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": h.hexdigest()})

    async def download(request):
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def stream(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(50):
            await resp.write(b"chunk %d\n" % i)
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async def slow(request):
        app[SLOW_STARTED].set()
        await asyncio.sleep(0.3)
        return web.Response(text="finished")

    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await sock.send_str(msg.data[::-1])
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(hashlib.sha256(msg.data).digest())
        return sock

    app.add_routes([
        web.get("/", hello), web.post("/echo", echo), web.post("/digest", digest),
        web.get("/download", download), web.get("/stream", stream),
        web.get("/slow", slow), web.get("/ws", ws),
    ])
    return app


class Served:
    """An app served by AppRunner/TCPSite on 127.0.0.1:0 (async context manager)."""

    def __init__(self, app=None, **runner_kwargs):
        self.app = app or make_app()
        self.runner = web.AppRunner(self.app, **runner_kwargs)

    async def __aenter__(self):
        self.app[SLOW_STARTED] = asyncio.Event()
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def test_get_and_post(loop):
    async def main():
        async with Served() as srv, aiohttp.ClientSession() as session:
            async with session.get(srv.url + "/") as resp:
                assert resp.status == 200
                assert await resp.text() == "Hello, world"
            async with session.post(srv.url + "/echo", data=b"some bytes") as resp:
                assert resp.status == 200
                assert await resp.read() == b"some bytes"
            async with session.get(srv.url + "/missing") as resp:
                assert resp.status == 404

    run(loop, main())


def test_ten_mib_upload_and_download(loop):
    async def main():
        async with Served() as srv, aiohttp.ClientSession() as session:
            async with session.post(srv.url + "/digest", data=io.BytesIO(BIG)) as resp:
                assert await resp.json() == {
                    "size": len(BIG), "sha256": hashlib.sha256(BIG).hexdigest()}
            async with session.get(srv.url + "/download") as resp:
                got = await resp.read()
                assert len(got) == len(BIG) and got == BIG
            async with session.post(srv.url + "/echo", data=io.BytesIO(BIG)) as resp:
                assert await resp.read() == BIG

    run(loop, main(), timeout=20)


def test_streamed_upload_and_response(loop):
    async def body():
        for i in range(0, len(BIG), 100_000):
            yield BIG[i:i + 100_000]
            await asyncio.sleep(0)

    async def main():
        async with Served() as srv, aiohttp.ClientSession() as session:
            async with session.post(srv.url + "/digest", data=body()) as resp:
                assert (await resp.json())["sha256"] == hashlib.sha256(BIG).hexdigest()
            async with session.get(srv.url + "/stream") as resp:
                assert resp.headers["Transfer-Encoding"] == "chunked"
                lines = [line async for line in resp.content]
                assert lines == [b"chunk %d\n" % i for i in range(50)]

    run(loop, main(), timeout=20)


def test_keep_alive_reuses_one_connection(loop):
    async def main():
        async with Served() as srv:
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(10):
                    async with session.get(srv.url + "/") as resp:
                        assert await resp.text() == "Hello, world"
            peers = srv.app[PEERS]
            assert len(peers) == 10 and len(set(peers)) == 1, peers

    run(loop, main())


def test_two_hundred_concurrent_requests(loop):
    async def one(session, url, i):
        data = payload(1000 + i, i)
        async with session.post(url + "/echo", data=data) as resp:
            assert await resp.read() == data

    async def main():
        async with Served() as srv:
            connector = aiohttp.TCPConnector(limit=0)     # one connection each
            async with aiohttp.ClientSession(connector=connector) as session:
                await asyncio.gather(*(one(session, srv.url, i) for i in range(200)))
                gets = [session.get(srv.url + "/") for _ in range(200)]
                for resp in await asyncio.gather(*gets):
                    assert resp.status == 200
                    assert await resp.text() == "Hello, world"
                    resp.release()

    run(loop, main(), timeout=20)


def test_websocket_echo(loop):
    async def main():
        async with Served() as srv, aiohttp.ClientSession() as session:
            async with session.ws_connect(srv.url + "/ws") as ws:
                for word in ("hello", "gmploop", "é" * 1000):
                    await ws.send_str(word)
                    assert await ws.receive_str() == word[::-1]
                data = payload(MiB, 2)
                await ws.send_bytes(data)
                assert await ws.receive_bytes() == hashlib.sha256(data).digest()
                await ws.close()
            assert ws.closed

    run(loop, main())


def test_shutdown_with_open_keep_alive_connections(loop):
    async def main():
        srv = Served(shutdown_timeout=2)
        await srv.__aenter__()
        try:
            sessions = [aiohttp.ClientSession() for _ in range(5)]
            for session in sessions:
                async with session.get(srv.url + "/") as resp:
                    assert resp.status == 200
            # Five idle keep-alive connections and one request in flight.
            slow = asyncio.ensure_future(sessions[0].get(srv.url + "/slow"))
            await srv.app[SLOW_STARTED].wait()
        finally:
            started = loop.time()
            await srv.__aexit__(None, None, None)
        took = loop.time() - started
        assert took < 2, f"shutdown took {took:.2f}s with idle keep-alive connections"
        # The request in flight was allowed to finish.
        resp = await slow
        assert resp.status == 200 and await resp.text() == "finished"
        try:
            for session in sessions:
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(srv.url + "/") as resp:
                        await resp.read()
        finally:
            for session in sessions:
                await session.close()

    run(loop, main())


def _run_app_and_query(loop, stop, **kwargs):
    """web.run_app on `loop`; an on_startup task queries the app, then stop(loop,
    results) ends run_app."""
    app = make_app()
    results = {}
    listener = socket.create_server(("127.0.0.1", 0))
    url = "http://%s:%d" % listener.getsockname()

    async def query_then_stop():
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/") as resp:
                    results["status"] = resp.status
                    results["text"] = await resp.text()
        finally:
            stop(loop, results)

    async def on_startup(app):
        app[QUERY] = asyncio.ensure_future(query_then_stop())

    async def on_cleanup(app):
        results["cleaned_up"] = True

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    # run_app closes the listener with the site; the test's closes it in any case.
    with listener:
        web.run_app(app, sock=listener, loop=loop, print=None, shutdown_timeout=1,
                    **kwargs)
    assert loop.is_closed()
    return results


def graceful_exit(loop, results):
    def raise_exit():
        raise web.GracefulExit()
    loop.call_soon(raise_exit)


def test_run_app_ends_on_graceful_exit(loop):
    stop = graceful_exit

    results = _run_app_and_query(loop, stop=stop, handle_signals=False)
    assert results == {"status": 200, "text": "Hello, world", "cleaned_up": True}


def test_run_app_ends_on_sigint(loop):
    def stop(loop, results):
        # Only with run_app's handler in place: pytest's own would end the session.
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            results["sigint"] = "not handled by the loop"
            graceful_exit(loop, results)
        else:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    results = _run_app_and_query(loop, stop=stop, handle_signals=True)
    assert results == {"status": 200, "text": "Hello, world", "cleaned_up": True}
    # asyncio's remove_signal_handler puts Python's own SIGINT handler back (even
    # where the process started with SIGINT ignored, as under a background shell).
    assert signal.getsignal(signal.SIGINT) in (previous, signal.default_int_handler)

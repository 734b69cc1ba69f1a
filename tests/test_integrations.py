"""gmploop in the tools users already run: uvicorn, gunicorn with aiohttp, anyio.

The servers run for real, each in a child process on 127.0.0.1 with a port the kernel
picks (port 0, read back from the server's own log), answer real HTTP requests, say
which loop served them, and are stopped with the signal an operator would send.
"""
import asyncio
import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import gmploop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
# The directory that holds the gmploop under test (this checkout, or site-packages when
# the tests run against an installed wheel): children must import the same one.
GMPLOOP_HOME = os.path.dirname(os.path.dirname(os.path.abspath(gmploop.__file__)))


class Server:
    """A server in a child process whose log (stdout and stderr together) is read by a
    thread, so that waiting for a line is bounded by a deadline."""

    def __init__(self, argv, cwd):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [GMPLOOP_HOME, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern, timeout=30):
        """Return the match of the first log line (from now on) matching pattern."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in {timeout}s; log:\n{self.log}")
            if line is None:
                raise AssertionError(f"server exited ({self.proc.wait()}) before "
                                     f"logging {pattern!r}; log:\n{self.log}")
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m

    def stop(self, sig, timeout=30):
        """Send sig, wait for the exit; return (exit status, the whole log)."""
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return status, self.log

    @property
    def log(self):
        return "".join(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        self.proc.stdout.close()


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- uvicorn ----

@pytest.mark.timeout(90)
def test_uvicorn_serves_the_asgi_example_on_gmploop():
    pytest.importorskip("uvicorn")
    server = Server([sys.executable, "-m", "uvicorn", "asgi_app:app",
                     "--app-dir", EXAMPLES, "--loop", "gmploop:new_event_loop",
                     "--host", "127.0.0.1", "--port", "0"], cwd=ROOT)
    try:
        port = int(server.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")[1])
        assert request(port, "GET", "/") == (200, b"Hello from gmploop.Loop (request 1)\n")
        payload = os.urandom(200_000)
        assert request(port, "POST", "/echo", payload) == (200, payload)
        assert request(port, "GET", "/missing") == (404, b"not found\n")
        assert request(port, "GET", "/") == (200, b"Hello from gmploop.Loop (request 4)\n")
        status, log = server.stop(signal.SIGINT)
        assert status == 0, log
        assert "Application shutdown complete." in log, log
        assert "Finished server process" in log, log
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        server.kill()


@pytest.mark.timeout(90)
def test_asgi_example_run_as_a_script_starts_uvicorn_on_gmploop():
    pytest.importorskip("uvicorn")
    server = Server([sys.executable, os.path.join(EXAMPLES, "asgi_app.py"), "0"], cwd=ROOT)
    try:
        port = int(server.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")[1])
        assert request(port, "GET", "/") == (200, b"Hello from gmploop.Loop (request 1)\n")
        status, log = server.stop(signal.SIGTERM)
        # uvicorn shuts down cleanly, then raises the signal it caught again so that
        # the process ends the way SIGTERM ends it (asyncio's loop gives the same).
        assert status == -signal.SIGTERM, log
        assert "Application shutdown complete." in log, log
        assert "Finished server process" in log, log
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        server.kill()


# ---- gunicorn with aiohttp ----

GUNICORN_APP = '''
import asyncio
import os

from aiohttp import web


async def hello(request):
    loop = type(asyncio.get_running_loop())
    return web.Response(text=f"{loop.__module__}.{loop.__qualname__} in {os.getpid()}\\n")


async def echo(request):
    return web.Response(body=await request.read())


def make_app():
    app = web.Application()
    app.add_routes([web.get("/", hello), web.post("/echo", echo)])
    return app
'''


@pytest.mark.timeout(90)
def test_gunicorn_aiohttp_worker_serves_on_gmploop_and_stops_on_sigterm(tmp_path):
    pytest.importorskip("gunicorn")
    pytest.importorskip("aiohttp")
    from gunicorn.config import KNOWN_SETTINGS

    (tmp_path / "gmp_app.py").write_text(textwrap.dedent(GUNICORN_APP))
    argv = [sys.executable, "-m", "gunicorn", "gmp_app:make_app()",
            "--chdir", str(tmp_path), "--bind", "127.0.0.1:0", "--workers", "2",
            "--worker-class", "gmploop.aiohttp_worker.GMPWebWorker",
            "--graceful-timeout", "10"]
    if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):
        argv.append("--no-control-socket")    # gunicorn 25+: none of this test's business
    server = Server(argv, cwd=str(tmp_path))
    try:
        port = int(server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)")[1])
        server.wait_for(r"Using worker: gmploop\.aiohttp_worker\.GMPWebWorker")
        workers = {int(server.wait_for(r"Booting worker with pid: (\d+)")[1])
                   for _ in range(2)}
        seen = set()
        for _ in range(20):
            status, body = request(port, "GET", "/")
            assert status == 200, body
            m = re.fullmatch(rb"gmploop\.Loop in (\d+)\n", body)
            assert m, body
            seen.add(int(m[1]))
        assert seen <= workers, (seen, workers)
        payload = os.urandom(100_000)
        assert request(port, "POST", "/echo", payload) == (200, payload)
        status, log = server.stop(signal.SIGTERM)
        assert status == 0, log
        assert "Handling signal: term" in log, log
        assert log.count("Worker exiting") == 2, log
        assert "Shutting down: Master" in log, log
        assert "Traceback" not in log and "[ERROR]" not in log, log
    finally:
        server.kill()


def test_importing_gmploop_imports_neither_gunicorn_nor_aiohttp():
    code = ("import sys, gmploop; "
            "print(sorted(m for m in ('gunicorn', 'aiohttp', 'pytest_asyncio', 'anyio') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": GMPLOOP_HOME}, timeout=60,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[]\n"


# ---- anyio ----

def test_anyio_run_with_gmploop_loop_factory():
    anyio = pytest.importorskip("anyio")

    async def main():
        loop = asyncio.get_running_loop()
        results = []

        async def handle(stream):
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, handle)

                async def client(n):
                    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                        await stream.send(f"hello {n}".encode())
                        results.append(await stream.receive())

                async with anyio.create_task_group() as clients:
                    for n in range(5):
                        clients.start_soon(client, n)
                with anyio.fail_after(10):
                    thread_result = await anyio.to_thread.run_sync(sum, range(10))
                tg.cancel_scope.cancel()
        return type(loop), sorted(results), thread_result

    loop_type, results, thread_result = anyio.run(
        main, backend="asyncio", backend_options={"loop_factory": gmploop.new_event_loop})
    assert loop_type is gmploop.Loop
    assert results == [f"HELLO {n}".encode() for n in range(5)]
    assert thread_result == 45

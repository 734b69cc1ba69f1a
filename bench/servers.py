#!/usr/bin/env python3
"""Network servers for the benchmarks, one process per server, on any of the loops.

    python bench/servers.py --loop gmploop --kind protocol [--port 0] [--cpu 0]

Kinds: four echo servers, one per asyncio API a server can be written against, and two
HTTP servers answering every request with "Hello, World!":

    streams   asyncio.start_server; read() whatever is there, write() it, await drain()
    protocol  create_server with a Protocol: data_received writes the data back
    buffered  create_server with a BufferedProtocol reading into one preallocated buffer
    sock      a listening socket served with loop.sock_accept / sock_recv / sock_sendall
    aiohttp   aiohttp.web with one route, AppRunner + SockSite, no access log
    httptools a Protocol parsing with httptools, answering with a fixed response

The process speaks a small line protocol on stdout, the same as the C servers in bench/c/:

    READY <port>          listening (port 0 asks the kernel for a free one)
    {"event": "mark", ...}  on SIGUSR1: the process's CPU time so far and what it served
    {"event": "memory", ...}  on SIGUSR2: the same after a full gc.collect(), for RSS
    {"event": "stop", ...}  on SIGTERM: the same, then the process exits

A report holds utime and stime (seconds, getrusage of the whole process), bytes (echo
payload bytes received), requests (HTTP requests answered), conns (connections open now:
the echo servers count them in their handlers, aiohttp's server keeps its own list;
httptools reports 0),
rss (the resident set now, from /proc/self/statm; 0 where there is none) and errors
(exceptions the loop reported to its exception handler).  The SIGUSR1 mark collects no
garbage, so it costs the same on every loop; the memory report does, so that what it
measures is what is alive.  The harness brackets its load between two marks and
divides the CPU between them by what was served between them, so the CPU the process
spent starting up, importing and accepting the warmup connections is not counted.

Why signals are taken by a thread with sigwait, not by loop.add_signal_handler: the marks
must work the same on every loop, including one whose signal support is the thing under
test.  SIGUSR1, SIGUSR2 and SIGTERM are blocked in the main thread before anything else
starts, so every thread inherits the block and only the waiting thread ever sees them; the
loop never does.  The waiting thread reads counters the loop thread updates, under the GIL; at worst a
mark is one GIL switch interval (5 ms) late, which is noise against a window of seconds.

A server that cannot start because the loop lacks what it needs (NotImplementedError,
AttributeError, a missing module) prints ``UNSUPPORTED <reason>`` and exits with status
3, so the harness can skip it with that reason; any other failure exits 1 with a traceback.
"""
import argparse
import asyncio
import gc
import importlib
import json
import os
import resource
import signal
import socket
import sys
import threading
import traceback

EXIT_UNSUPPORTED = 3
# gmploop-bare: gmploop with sysmon and the timed polls off, the baseline against which
# bench/ measures what observing a loop costs (GMPLOOP_BENCH_OBSERVE, bench/README.md).
LOOPS = ("asyncio", "uvloop", "rloop", "gmploop", "gmploop-bare")
KINDS = ("streams", "protocol", "buffered", "sock", "aiohttp", "httptools")
RECV_SIZE = 256 * 1024
# The harness opens thousands of idle connections in batches smaller than this and
# waits for the server to have accepted each batch, so the accept queue never overflows
# (an overflowing queue drops SYNs, and the client retries a second later).
LISTEN_BACKLOG = 1024


def raise_nofile_limit():
    """Raise the soft limit on open files to the hard one: the idle-connection benchmarks
    hold 10,000 connections, against a usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 16 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Unsupported(Exception):
    """The loop or the environment lacks something this server needs."""


class Counters:
    bytes = 0      # echo: payload bytes received (and written back)
    requests = 0   # http: requests answered
    conns = 0      # echo: connections open now
    conns_now = None  # if set, a function giving the connections open now
    errors = 0     # calls of the loop's exception handler


def rss_bytes():
    """The resident set size now (not the peak, which ru_maxrss would give), or 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def report(event):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    line = json.dumps({
        "event": event, "utime": ru.ru_utime, "stime": ru.ru_stime,
        "bytes": Counters.bytes, "requests": Counters.requests,
        "conns": Counters.conns_now() if Counters.conns_now else Counters.conns,
        "rss": rss_bytes(), "errors": Counters.errors,
    })
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


SIGNALS = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM}


def signal_waiter():
    while True:
        sig = signal.sigwait(SIGNALS)
        if sig == signal.SIGUSR1:
            report("mark")
        elif sig == signal.SIGUSR2:
            # Runs in this thread while the loop's thread waits for the GIL, so the loop
            # is between two bytecodes: what it holds alive stays, garbage goes.
            gc.collect()
            report("memory")
        else:
            report("stop")
            # No teardown: open connections and the loop die with the process, which is
            # what the harness wants once it has the numbers.
            os._exit(0)


def bare_gmploop_loop():
    """A gmploop loop with nothing observing it: sysmon off, and the loop publishing
    neither its current handle nor the time of its polls (loop._observed)."""
    import gmploop
    loop = gmploop.Loop(sysmon=0)
    loop._observed = False
    return loop


def new_loop(name):
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "gmploop-bare":
        try:
            return bare_gmploop_loop()
        except ImportError as exc:
            raise Unsupported(f"gmploop not importable: {exc}") from exc
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise Unsupported(f"{name} not importable: {exc}") from exc
    factory = getattr(mod, "new_event_loop", None)
    if factory is None:
        raise Unsupported(f"{name} has no new_event_loop (not built?)")
    return factory()


def listening_socket(host, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


# Echo servers.  Each counts the bytes it received; the harness divides by the message
# size.  None of them inspects the data: framing is the client's business.


async def serve_streams(loop, sock):
    async def handle(reader, writer):
        read, write, drain = reader.read, writer.write, writer.drain
        Counters.conns += 1
        try:
            while True:
                data = await read(RECV_SIZE)
                if not data:
                    break
                Counters.bytes += len(data)
                write(data)
                await drain()
        except ConnectionError:
            pass
        finally:
            Counters.conns -= 1
            writer.close()

    return await asyncio.start_server(handle, sock=sock)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        Counters.conns += 1

    def connection_lost(self, exc):
        Counters.conns -= 1

    def data_received(self, data):
        Counters.bytes += len(data)
        self.transport.write(data)


async def serve_protocol(loop, sock):
    return await loop.create_server(EchoProtocol, sock=sock)


class BufferedEchoProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(RECV_SIZE)
        self.view = memoryview(self.buffer)
        Counters.conns += 1

    def connection_lost(self, exc):
        Counters.conns -= 1

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        Counters.bytes += nbytes
        # A copy: the buffer is refilled by the next read, while a transport may keep
        # what it could not send at once.
        self.transport.write(self.buffer[:nbytes])


async def serve_buffered(loop, sock):
    return await loop.create_server(BufferedEchoProtocol, sock=sock)


async def serve_sock(loop, sock):
    async def handle(conn):
        recv, sendall = loop.sock_recv, loop.sock_sendall
        Counters.conns += 1
        try:
            while True:
                data = await recv(conn, RECV_SIZE)
                if not data:
                    break
                Counters.bytes += len(data)
                await sendall(conn, data)
        except ConnectionError:
            pass
        finally:
            Counters.conns -= 1
            conn.close()

    async def accept_forever():
        while True:
            conn, _ = await loop.sock_accept(sock)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.create_task(handle(conn))

    # Fails here, not inside the task, if the loop has no sock_accept.
    if not hasattr(loop, "sock_accept"):
        raise Unsupported(f"{type(loop).__name__} has no sock_accept")
    return loop.create_task(accept_forever())


# HTTP servers.

HELLO = b"Hello, World!"


async def serve_aiohttp(loop, sock):
    try:
        from aiohttp import web
    except ImportError as exc:
        raise Unsupported(f"aiohttp not importable: {exc}") from exc

    async def hello(request):
        Counters.requests += 1
        return web.Response(text="Hello, World!")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # The handlers of the connections aiohttp's server holds (keep-alive ones included).
    Counters.conns_now = lambda: len(runner.server.connections)
    site = web.SockSite(runner, sock)
    await site.start()
    return runner


RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(HELLO)).encode() + b"\r\n"
    b"\r\n" + HELLO
)


async def serve_httptools(loop, sock):
    try:
        import httptools
    except ImportError as exc:
        raise Unsupported(
            "httptools not installed (the test extra needs 'httptools>=0.6')"
        ) from exc

    class HttpProtocol(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data):
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()

        def on_message_complete(self):
            Counters.requests += 1
            self.transport.write(RESPONSE)
            if not self.parser.should_keep_alive():
                self.transport.close()

    return await loop.create_server(HttpProtocol, sock=sock)


SERVERS = {
    "streams": serve_streams, "protocol": serve_protocol, "buffered": serve_buffered,
    "sock": serve_sock, "aiohttp": serve_aiohttp, "httptools": serve_httptools,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loop", choices=LOOPS, required=True)
    ap.add_argument("--kind", choices=KINDS, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--cpu", type=int, help="pin the process to this CPU")
    args = ap.parse_args(argv)

    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    raise_nofile_limit()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    threading.Thread(target=signal_waiter, name="signals", daemon=True).start()

    try:
        loop = new_loop(args.loop)
        asyncio.set_event_loop(loop)

        def on_error(loop, context):
            if "blocked_for" in context:
                # gmploop's sysmon reporting a callback that ran long (importing aiohttp
                # at start-up, or a busy machine): already logged, and not an error.
                return
            Counters.errors += 1
            loop.default_exception_handler(context)

        loop.set_exception_handler(on_error)
        sock = listening_socket(args.host, args.port)
        port = sock.getsockname()[1]
        server = loop.run_until_complete(SERVERS[args.kind](loop, sock))
    except (Unsupported, NotImplementedError, AttributeError, ImportError) as exc:
        # Name the failure, and where it came from, in one line: it becomes a skip reason.
        where = traceback.extract_tb(exc.__traceback__)[-1]
        what = str(exc) if isinstance(exc, Unsupported) else type(exc).__name__ + (
            f": {exc}" if str(exc) else "")
        print(f"UNSUPPORTED {what} "
              f"(at {os.path.basename(where.filename)}:{where.lineno} in {where.name})",
              flush=True)
        sys.exit(EXIT_UNSUPPORTED)

    print(f"READY {port}", flush=True)
    loop.run_forever()  # until SIGTERM; `server` stays referenced until then


if __name__ == "__main__":
    main()

"""A server that opens and closes 10,000 connections gives back everything it took.

The server runs in this process on the loop under test (create_server and an echo
protocol); the clients run in a child process on asyncio's own loop, 100 connections at a
time, and end their connections in three ways: a half-close answered by the server's
close, a plain close, and a reset (SO_LINGER 0). Afterwards this process must have the
file descriptors it had before, no tasks left on the loop, no transport alive, and a
resident size that did not grow with the number of connections.
"""

import asyncio
import gc
import logging
import os
import subprocess
import sys
import textwrap
import weakref

import pytest

N_CONNECTIONS = 10_000
CONCURRENCY = 100
WARM_UP = 1_000
RSS_GROWTH_LIMIT = 24 * 1024 * 1024

CLIENT = textwrap.dedent("""
    import asyncio, socket, struct, sys

    async def one(host, port, i):
        reader, writer = await asyncio.open_connection(host, port)
        msg = b"%06d" % i * 100
        writer.write(msg)
        assert await reader.readexactly(len(msg)) == msg
        how = i % 3
        if how == 0:      # half-close; the server answers by closing
            writer.write_eof()
            assert await reader.read() == b""
        elif how == 2:    # reset
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass

    async def main(host, port, first, count, concurrency):
        for start in range(first, first + count, concurrency):
            end = min(start + concurrency, first + count)
            await asyncio.gather(*(one(host, port, i) for i in range(start, end)))
        print(count, flush=True)

    host, port, first, count, concurrency = sys.argv[1:]
    asyncio.run(main(host, int(port), int(first), int(count), int(concurrency)))
""")


def _new_loop(name):
    if name == "asyncio":
        return asyncio.SelectorEventLoop()
    import gmploop
    return gmploop.new_event_loop()


def _fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Echo(asyncio.Protocol):
    live = None        # weakref.WeakSet of transports, or None where they refuse weakrefs
    types = set()      # the transport classes seen
    made = lost = 0

    def connection_made(self, transport):
        cls = type(self)
        cls.made += 1
        cls.types.add(type(transport))
        try:
            cls.live.add(transport)
        except TypeError:
            pass
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        type(self).lost += 1
        self.transport = None


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _live_transports():
    gc.collect()
    counted = sum(1 for o in gc.get_objects() if type(o) in Echo.types)
    return max(counted, len(Echo.live))


@pytest.mark.timeout(60, method="thread")
@pytest.mark.parametrize("loop_name", ["asyncio", "gmploop"])
def test_ten_thousand_connections_leave_nothing_behind(loop_name):
    Echo.live = weakref.WeakSet()
    Echo.types = set()
    Echo.made = Echo.lost = 0
    errors = _Errors()
    logging.getLogger("asyncio").addHandler(errors)
    gc.collect()
    fds_before = _fds()
    loop = _new_loop(loop_name)
    try:
        async def clients(port, first, count):
            proc = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
                [sys.executable, "-c", CLIENT, "127.0.0.1", str(port), str(first),
                 str(count), str(CONCURRENCY)],
                capture_output=True, timeout=45))
            assert proc.returncode == 0, proc.stderr.decode()[-3000:]
            assert proc.stdout.strip() == str(count).encode()

        async def all_closed(expected):
            for _ in range(1000):
                if Echo.lost == expected:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{Echo.made} connections made, {Echo.lost} lost")

        async def main():
            server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=CONCURRENCY * 2)
            port = server.sockets[0].getsockname()[1]
            await clients(port, 0, WARM_UP)
            await all_closed(WARM_UP)
            gc.collect()
            fds_serving = _fds()
            rss_warm = _rss()
            await clients(port, WARM_UP, N_CONNECTIONS - WARM_UP)
            await all_closed(N_CONNECTIONS)
            assert Echo.made == N_CONNECTIONS
            gc.collect()
            assert _fds() == fds_serving
            rss_growth = _rss() - rss_warm
            server.close()
            await server.wait_closed()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            return rss_growth, others

        rss_growth, other_tasks = loop.run_until_complete(main())
        assert not other_tasks, other_tasks
        assert rss_growth < RSS_GROWTH_LIMIT, f"RSS grew by {rss_growth / 2**20:.1f} MiB"
        loop.run_until_complete(loop.shutdown_default_executor())
        assert asyncio.all_tasks(loop) == set()
    finally:
        loop.close()
        logging.getLogger("asyncio").removeHandler(errors)
    del loop
    assert _live_transports() == 0, f"transports still alive: {Echo.types}"
    assert _fds() == fds_before
    assert not errors.records, [errors.format(r) for r in errors.records]

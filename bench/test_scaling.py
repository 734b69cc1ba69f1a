"""Cost that grows only with work: what a loop pays for what it holds but does not use.

Two benchmarks, each comparing a loop with itself, in the same test, with and without a
large amount of idle state, so that the figure is a ratio a shared machine disturbs
little:

``test_idle_connections``
    An echo server (servers.py, kind protocol or streams) pinned to one CPU; the C load
    generator plays ping-pong on 10 connections from the other, as in test_network.py.
    Three measured windows on the same server process: without idle connections, with
    IDLE_CONNS (10,000) idle connections open to the server, and without them again.
    The figure is the server's CPU per request with the idle connections over the mean
    of the two windows without; the before/after pair cancels what the order of the
    windows would otherwise add (a heap grown by the first window, a cache warmed).
    The idle connections are opened by this process, in batches smaller than the
    server's listen backlog, and the harness waits until the server reports it holds
    each batch (a mark's ``conns``), so accepting them falls outside every window; after
    the idle window it checks that the server still holds all of them.  An edge-
    triggered poller pays nothing for a silent fd; a poller or loop that scans its
    registrations, keeps per-connection timers, or touches every transport per
    iteration shows here.

``test_call_soon_pending_timers``
    ``call_soon`` throughput (as test_loop_overhead.py's ``call_soon``) on two loops of
    the same factory: one with no timer, one with PENDING_TIMERS (1,000,000) timers
    pending an hour or more ahead, scheduled in shuffled order (untimed), then frozen
    out of the garbage collector's sight (gc.freeze: its full collections would
    otherwise walk them during whichever round triggers one).  Rounds
    alternate between the two loops (ABBA), so both see the same minute of the machine;
    the figure is the median per-operation time with timers over the one without.  A
    timer heap keeps the next deadline at its top, so a loop iteration reads one entry
    whatever the heap holds; a loop that walks or re-sorts its timers per iteration
    shows here.  No pending timer may fire, and every round must run all its callbacks.

Both scale with GMPLOOP_BENCH_SCALE (sizes, windows) like the other suites; at the CI
smoke scale (0.01) they open 100 idle connections and 10,000 timers, and say nothing
about speed.  compare.py prints them as one table (suite "scaling" in extra_info).
"""
import gc
import itertools
import os
import random
import socket
import statistics
import time

import pytest

from conftest import loop_factory
from servers import raise_nofile_limit
from test_network import (
    DURATION, ECHO_CONNS, LOOPS, SCALE, WARMUP, c_program, echo_window, python_server_argv,
    start_server, stop_checked,
)

# 10,000 idle connections, the figure of the target; with the client's side in this
# process that is 20,000 fds on one machine, the usual hard limit per process here.
IDLE_CONNS = max(100, int(10_000 * SCALE))
# Connections opened before waiting for the server to accept them: under the listen
# backlog, so none is dropped and retried a second later.  That backlog is asyncio's
# default of 100, not servers.LISTEN_BACKLOG: create_server and start_server listen()
# again on the socket they are given, with their own backlog argument.
IDLE_BATCH = 64
IDLE_MSG = 1024
ACCEPT_TIMEOUT = 60.0

PENDING_TIMERS = max(10_000, int(1_000_000 * SCALE))
CALLS = max(10, int(300_000 * SCALE))
# Round pairs for the timer benchmark: seven ABBA pairs of a 0.1-0.5 s round each keep a
# loop's test within about 10 s after the timers are scheduled.
TIMER_PAIRS = int(os.environ.get("GMPLOOP_BENCH_ROUNDS", "0")) or 7

each_loop = pytest.mark.parametrize("loop_name", LOOPS, indirect=True)


# How long a peer loop's count of open connections may stand still, off its expected
# value, before the harness takes it as that loop's final word (see wait_for_conns).
SETTLE = 1.0


def wait_for_conns(server, want, what, strict=True):
    """Poll the server with marks until it reports `want` open connections; return the
    count.  strict=False accepts a count that has stood still for SETTLE seconds: a peer
    loop that never tells a streams handler about a closed connection (rloop's streams
    keep some of echo_load's connections open after it exits) is noted in the results,
    not failed; gmploop is always held to the exact count."""
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    last, since = None, time.monotonic()
    while True:
        rep = server.mark()
        if rep["conns"] == want:
            return want
        now = time.monotonic()
        if rep["conns"] != last:
            last, since = rep["conns"], now
        elif not strict and now - since > SETTLE:
            return last
        if now > deadline:
            raise AssertionError(
                f"{what}: the server holds {rep['conns']} connections, expected {want}, "
                f"after {ACCEPT_TIMEOUT} s\n{server.error_text()}")
        time.sleep(0.005)


class IdleConnections:
    """Connections from this process to a server, opened in batches and left silent
    (or, with `request`, sent one request each and its reply read, then left silent)."""

    def __init__(self, server):
        self.server = server
        self.socks = []

    def open(self, n, base=0, request=None, reply_end=None, strict=True):
        """Open n connections; the server held `base` before.  Returns when the server
        reports base + n open connections."""
        while len(self.socks) < n:
            batch = []
            for _ in range(min(IDLE_BATCH, n - len(self.socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.socks.append(s)
                s.settimeout(ACCEPT_TIMEOUT)
                s.connect(("127.0.0.1", self.server.port))
                batch.append(s)
            if request is not None:
                for s in batch:
                    s.sendall(request)
                for s in batch:
                    read_reply(s, reply_end)
            got = wait_for_conns(self.server, base + len(self.socks),
                                 f"opening {n} idle connections", strict)
            assert got >= base + len(self.socks), (
                f"the server holds {got} connections after {len(self.socks)} were opened "
                f"to it (it held {base} before)")
        return len(self.socks)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks.clear()


def read_reply(sock, end):
    """Read until `end` has arrived (one small reply on a keep-alive connection)."""
    got = b""
    while end not in got:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed a connection before its reply; got {got[:200]!r}"
        got += chunk
    return got


@pytest.mark.timeout(120)
@each_loop
@pytest.mark.parametrize("kind", ("protocol", "streams"))
def test_idle_connections(benchmark, c_programs, kind, loop_name):
    benchmark.group = f"scaling idle connections {kind}"
    c_program(c_programs, "echo_load")  # skip before starting a server if no gcc
    raise_nofile_limit()
    server = start_server(python_server_argv(loop_name, kind), loop_name)
    idle = IdleConnections(server)
    out = {}
    try:
        strict = loop_name.startswith("gmploop")

        def phases():
            out["before"] = echo_window(c_programs, server, IDLE_MSG)
            base = wait_for_conns(server, 0, "echo_load's connections closing", strict)
            idle.open(IDLE_CONNS, base, strict=strict)
            out["idle"] = echo_window(c_programs, server, IDLE_MSG)
            # Every idle connection is still there, and echo_load's are gone.
            held = wait_for_conns(server, base + IDLE_CONNS, "after the idle window", strict)
            assert held >= base + IDLE_CONNS, f"the server dropped idle connections: {held}"
            idle.close()
            out["stuck"] = wait_for_conns(server, 0, "closing the idle connections", strict)
            out["after"] = echo_window(c_programs, server, IDLE_MSG)

        benchmark.pedantic(phases, rounds=1, iterations=1)
        final = stop_checked(server)
    finally:
        idle.close()
        server.close()

    def per_req(got):
        assert got["requests"] > 0 and got["served"] > 0, f"an empty window: {got}"
        return got["cpu"] / got["served"] * 1e6

    without = (per_req(out["before"]) + per_req(out["after"])) / 2
    with_idle = per_req(out["idle"])
    benchmark.extra_info.update(
        suite="scaling", loop=loop_name, kind=f"idle connections {kind}", idle=IDLE_CONNS,
        conns=ECHO_CONNS, size=IDLE_MSG, window=DURATION, warmup=WARMUP, scale=SCALE,
        without_us=without, with_us=with_idle, ratio=with_idle / without,
        before_us=per_req(out["before"]), after_us=per_req(out["after"]),
        rps_without=(out["before"]["requests"] / out["before"]["elapsed"]
                     + out["after"]["requests"] / out["after"]["elapsed"]) / 2,
        rps_with=out["idle"]["requests"] / out["idle"]["elapsed"],
        server_errors=final["errors"], unit="server CPU per request",
        stuck_conns=out["stuck"],
    )


@pytest.mark.timeout(120)
@each_loop
def test_call_soon_pending_timers(benchmark, loop_name):
    benchmark.group = "scaling call_soon with pending timers"
    factory, _ = loop_factory(loop_name)
    fired = itertools.count()
    # Deadlines between one and two hours ahead, distinct, scheduled in shuffled order
    # so the heap does real ordering work; none may come due during the test.
    rng = random.Random(3)
    delays = [3600.0 + 3600.0 * rng.random() for _ in range(PENDING_TIMERS)]
    plain, loaded = factory(), factory()
    try:
        async def schedule():
            call_later, tick = loaded.call_later, fired.__next__
            return [call_later(d, tick) for d in delays]

        handles = loaded.run_until_complete(schedule())
        del delays
        # Both loops live in this process, so the garbage collector's full collections
        # walk the million timer handles whichever loop's round triggers them: a cost
        # of Python's collector, not of the timer structure, and one that lands on a
        # few rounds at random.  Frozen, the collector leaves everything that exists
        # now alone; each round's own garbage is still collected as usual.
        gc.collect()
        gc.freeze()

        def one_round(loop):
            async def main():
                counter = itertools.count()
                tick, call_soon = counter.__next__, loop.call_soon
                for _ in range(CALLS):
                    call_soon(tick)
                done = loop.create_future()
                call_soon(done.set_result, None)  # FIFO: runs after every tick
                await done
                return next(counter)

            coro = main()
            t0 = time.perf_counter()
            ran = loop.run_until_complete(coro)
            elapsed = time.perf_counter() - t0
            assert ran == CALLS, f"{ran} of {CALLS} callbacks ran"
            return elapsed

        one_round(plain), one_round(loaded)  # warmup, untimed
        times = {"plain": [], "loaded": []}

        def pairs():
            for i in range(TIMER_PAIRS):
                order = ("plain", "loaded") if i % 2 == 0 else ("loaded", "plain")
                for which in order:
                    times[which].append(one_round(plain if which == "plain" else loaded))

        benchmark.pedantic(pairs, rounds=1, iterations=1)
        assert next(fired) == 0, "a timer due an hour ahead fired"
        assert not any(h.cancelled() for h in handles[:100])
        for h in handles:
            h.cancel()
    finally:
        gc.unfreeze()
        plain.close()
        loaded.close()

    without = statistics.median(times["plain"]) / CALLS * 1e6
    with_timers = statistics.median(times["loaded"]) / CALLS * 1e6
    benchmark.extra_info.update(
        suite="scaling", loop=loop_name, kind="call_soon with pending timers",
        pending=PENDING_TIMERS, n=CALLS, pairs=TIMER_PAIRS, scale=SCALE,
        without_us=without, with_us=with_timers, ratio=with_timers / without,
        unit="time per call_soon",
    )

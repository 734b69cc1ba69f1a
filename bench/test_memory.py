"""Memory: what an idle connection and an idle task cost on each loop.

``test_idle_http_connection``
    An aiohttp server (servers.py, kind aiohttp) in its own process.  The harness opens
    WARM_HTTP connections, sends one request on each, reads the answers and closes them
    (aiohttp's lazy imports, the first request's caches, the allocator's pools), waits
    until the server has let go of all of them, then asks the server for a memory
    report (SIGUSR2: a full gc.collect(), then the RSS).  Then it opens IDLE_HTTP keep-alive connections the same way, one request each, and
    leaves them open and silent: each is a real aiohttp connection with its request
    handler, parser, transport and keep-alive timer.  Once the server reports holding
    all of them, a second memory report.  The figure is the RSS growth over the number
    of connections.

``test_idle_task``
    bench/memory_probe.py in a fresh process per loop and per measure: N tasks awaiting
    one asyncio.Event, the memory growth over N, as RSS and (another process) as
    tracemalloc's count of Python allocations.  See that script for what is counted.

A fresh process per loop keeps one loop's free lists and grown heap out of another's
figure.  RSS counts whole pages, so the sizes make the growth many megabytes: 10,000
connections and 100,000 tasks at GMPLOOP_BENCH_SCALE=1; the CI smoke run (0.01) checks
that everything runs, with figures too small to mean anything.  compare.py prints the
results as one table (suite "memory" in extra_info).
"""
import json
import subprocess
import sys

import pytest

from servers import raise_nofile_limit
from test_network import (
    HERE, LOOPS, SCALE, python_server_argv, required_loops, server_env, start_server,
    stop_checked,
)
from test_scaling import IdleConnections, wait_for_conns

IDLE_HTTP = max(50, int(10_000 * SCALE))
WARM_HTTP = max(10, IDLE_HTTP // 20)
TASKS = max(100, int(100_000 * SCALE))
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
REPLY_END = b"Hello, World!"

each_loop = pytest.mark.parametrize("loop_name", LOOPS, indirect=True)


@pytest.mark.timeout(120)
@each_loop
def test_idle_http_connection(benchmark, loop_name):
    benchmark.group = "memory idle aiohttp connection"
    raise_nofile_limit()
    server = start_server(python_server_argv(loop_name, "aiohttp"), loop_name)
    warm, idle = IdleConnections(server), IdleConnections(server)
    out = {}
    try:
        def measure():
            warm.open(WARM_HTTP, request=REQUEST, reply_end=REPLY_END)
            warm.close()
            wait_for_conns(server, 0, "closing the warmup connections")
            out["before"] = server.memory()
            idle.open(IDLE_HTTP, request=REQUEST, reply_end=REPLY_END)
            out["after"] = server.memory()

        benchmark.pedantic(measure, rounds=1, iterations=1)
        final = stop_checked(server)
    finally:
        warm.close()
        idle.close()
        server.close()
    before, after = out["before"], out["after"]
    assert after["conns"] == IDLE_HTTP, f"the server holds {after['conns']} of {IDLE_HTTP}"
    assert after["requests"] - before["requests"] == IDLE_HTTP
    assert before["rss"] > 0, "no RSS figure (no /proc/self/statm?)"
    benchmark.extra_info.update(
        suite="memory", loop=loop_name, kind="idle aiohttp connection", measure="rss",
        n=IDLE_HTTP, before=before["rss"], after=after["rss"],
        per_unit=(after["rss"] - before["rss"]) / IDLE_HTTP, scale=SCALE,
        server_errors=final["errors"],
    )


@pytest.mark.timeout(120)
@each_loop
@pytest.mark.parametrize("measure", ("rss", "tracemalloc"))
def test_idle_task(benchmark, measure, loop_name):
    benchmark.group = f"memory idle task {measure}"
    argv = [sys.executable, str(HERE / "memory_probe.py"), "--loop", loop_name,
            "--tasks", str(TASKS)] + (["--tracemalloc"] if measure == "tracemalloc" else [])
    out = {}

    def run():
        out["res"] = subprocess.run(argv, capture_output=True, text=True, timeout=100,
                                    env=server_env())

    benchmark.pedantic(run, rounds=1, iterations=1)
    res = out["res"]
    if res.returncode == 3:
        reason = res.stdout.strip()
        if loop_name in required_loops():
            pytest.fail(f"{loop_name} is required but cannot run: {reason}")
        pytest.skip(f"{loop_name}: {reason}")
    assert res.returncode == 0, f"memory_probe failed ({res.returncode}):\n{res.stderr}"
    got = json.loads(res.stdout)
    benchmark.extra_info.update(
        suite="memory", loop=loop_name, kind="idle task", measure=measure, n=TASKS,
        before=got["before"], after=got["after"], per_unit=got["per_task"], scale=SCALE,
    )

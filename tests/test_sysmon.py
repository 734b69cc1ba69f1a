"""Sysmon (gmploop/_sysmon.py): a callback that blocks a loop is reported while it
still runs, with the stack of the code that blocks; schedtrace prints its lines.

These tests block real loops with real blocking calls (time.sleep, a blocking recv, a
CPU loop) and check what the gmploop logger and the loop's exception handler receive,
and when. Timing is only ever checked in the direction the design promises (a report
arrives before the blocking call returns; a total is at least the time blocked), with
wide upper bounds for a busy machine.
"""
import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import gmploop
from gmploop import _config

HERE = os.path.abspath(__file__)
START = "has been running one callback"
END = "the slow callback returned"


def line_of(marker):
    """The line number in this file of the line that ends with the marker comment."""
    with open(HERE) as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(marker) and "line_of(" not in line:
                return n
    raise AssertionError(f"no line marked {marker!r}")


class Records(logging.Handler):
    """Records (monotonic time, level, message, thread name) of the gmploop logger."""

    def __init__(self, on_record=None):
        super().__init__(logging.DEBUG)
        self.records = []
        self.on_record = on_record

    def emit(self, record):
        self.records.append((time.monotonic(), record.levelno, record.getMessage(),
                             threading.current_thread().name))
        if self.on_record is not None:
            self.on_record(record)

    def messages(self, text):
        return [r for r in self.records if text in r[2]]


@pytest.fixture
def records():
    logger = logging.getLogger("gmploop")
    handler = Records()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def test_blocked_asyncio_server_handler_is_reported_before_it_returns(records):
    """A plain asyncio server; one handler calls time.sleep(0.5). Sysmon's report
    names the handler's function, file and line and time.sleep, before it returns."""
    returned_at = []
    contexts = []
    stats_seen = []

    async def handle_client(reader, writer):
        line = await reader.readline()
        if line == b"slow\n":
            time.sleep(0.5)  # sysmon-test: blocks
        returned_at.append(time.monotonic())
        writer.write(b"done:" + line)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def request(port, what):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(what)
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        return answer

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        records.on_record = lambda rec: stats_seen.append(loop.stats())
        server = await asyncio.start_server(handle_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            assert await request(port, b"fast\n") == b"done:fast\n"
            assert await request(port, b"slow\n") == b"done:slow\n"
        finally:
            server.close()
            await server.wait_closed()

    gmploop.run(main())

    (start,) = records.messages(START)
    (end,) = records.messages(END)
    slow_return = returned_at[1]
    assert start[0] < slow_return, "the report came after the handler returned"
    assert start[1] == logging.WARNING and start[3] == "gmploop-sysmon"
    text = start[2]
    assert "handle_client" in text
    assert f'File "{HERE}", line {line_of("# sysmon-test: blocks")}, in handle_client' in text
    assert "blocked in a call: time.sleep(0.5)" in text
    assert re.search(r"coro=<\S*handle_client\(\) running at", text)   # the task
    # The stack starts at the callback: nothing from below run_forever.
    assert "run_until_complete" not in text and "runners.py" not in text

    assert end[0] >= start[0] and end[3] != "gmploop-sysmon"    # the loop's thread
    total = float(re.search(r"returned after (\d+\.\d+) seconds", end[2]).group(1))
    # The start is known to within half a sampling period (12.5 ms); allow for a late
    # first sample on a busy machine.
    assert 0.4 <= total < 10, end[2]

    # The exception handler hears of it when the loop resumes.
    (ctx,) = contexts
    assert ctx["message"].startswith("gmploop sysmon: a callback blocked the loop for")
    assert ctx["task"].get_coro().__qualname__.endswith("handle_client")
    assert ctx["blocked_for"] >= 0.4
    assert "time.sleep(0.5)" in ctx["blocked_in"]
    assert ctx["stack"][-1].name == "handle_client"
    assert ctx["stack"][-1].lineno == line_of("# sysmon-test: blocks")
    # stats() from the sysmon thread, while the callback was still blocked.
    assert stats_seen[0].state == "blocked" and stats_seen[0].blocked_for > 0.09
    assert stats_seen[0].slow_callbacks == 1


def test_blocked_aiohttp_handler_is_reported(records):
    web = pytest.importorskip("aiohttp.web")
    aiohttp = pytest.importorskip("aiohttp")
    returned_at = []

    async def slow_view(request):
        time.sleep(0.5)  # sysmon-test: aiohttp blocks
        returned_at.append(time.monotonic())
        return web.Response(text="slept")

    async def main():
        app = web.Application()
        app.router.add_get("/slow", slow_view)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/slow") as resp:
                    assert await resp.text() == "slept"
        finally:
            await runner.cleanup()

    gmploop.run(main())
    (start,) = records.messages(START)
    assert start[0] < returned_at[0]
    assert "slow_view" in start[2] and "time.sleep(0.5)" in start[2]
    assert f'line {line_of("# sysmon-test: aiohttp blocks")}, in slow_view' in start[2]
    assert len(records.messages(END)) == 1


def test_cpu_bound_callback_is_reported_as_running_python(records):
    done_at = []
    cpu_share = []

    def spin():
        start, cpu = time.monotonic(), time.thread_time()
        deadline = start + 0.4
        # One line, so that wherever the sample lands, it is on this line.
        while time.monotonic() < deadline: pass  # sysmon-test: spins
        done_at.append(time.monotonic())
        cpu_share.append((time.thread_time() - cpu) / (done_at[0] - start))

    loop = gmploop.new_event_loop()
    try:
        loop.call_soon(spin)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    (start,) = records.messages(START)
    assert start[0] < done_at[0]
    assert "in spin" in start[2] and f"line {line_of('# sysmon-test: spins')}" in start[2]
    # On CPU most of the time: computation, whatever call the sample landed on. (A
    # machine so busy that the thread got under half a core proves nothing here.)
    if sys.platform.startswith("linux") and cpu_share[0] >= 0.5:
        assert "running on CPU: while time.monotonic() < deadline: pass" in start[2], start[2]
    assert "<Handle" in start[2]            # a plain callback, not a task


def test_blocking_socket_call_is_named(records):
    a, b = socket.socketpair()
    got = []

    def read_blocking():
        got.append(a.recv(16))  # sysmon-test: recv

    sender = threading.Timer(0.4, b.sendall, (b"late",))
    loop = gmploop.new_event_loop()
    try:
        loop.call_soon(read_blocking)
        loop.call_soon(loop.stop)
        sender.start()
        loop.run_forever()
    finally:
        sender.join()
        loop.close()
        a.close()
        b.close()
    assert got == [b"late"]
    (start,) = records.messages(START)
    assert "blocked in a call: a.recv(16)" in start[2]
    assert f"line {line_of('# sysmon-test: recv')}, in read_blocking" in start[2]


def test_one_report_per_incident_and_one_per_callback(records):
    loop = gmploop.Loop(sysmon=0.1)
    try:
        loop.call_soon(time.sleep, 0.6)     # one long incident: reported once
        loop.call_soon(time.sleep, 0.3)     # the next callback: an incident of its own
        loop.call_soon(time.sleep, 0.001)   # too short
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert loop.stats().slow_callbacks == 2
    finally:
        loop.close()
    assert len(records.messages(START)) == 2
    assert len(records.messages(END)) == 2


def test_sysmon_zero_turns_it_off(records):
    for loop in (gmploop.Loop(sysmon=0), gmploop.Loop(sysmon=False)):
        try:
            assert loop.sysmon_threshold == 0.0
            loop.call_soon(time.sleep, 0.3)
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert loop.stats().slow_callbacks == 0
        finally:
            loop.close()
    assert not records.messages(START)


def test_run_takes_sysmon(records):
    async def main():
        assert asyncio.get_running_loop().sysmon_threshold == 0.05
        time.sleep(0.2)

    gmploop.run(main(), sysmon=0.05)
    assert len([r for r in records.messages(START) if "time.sleep(0.2)" in r[2]]) == 1


def test_sysmon_option_is_checked():
    assert gmploop.Loop().sysmon_threshold == _config.DEBUG.sysmon_threshold
    with pytest.raises(TypeError):
        gmploop.Loop(sysmon="100")
    with pytest.raises(ValueError):
        gmploop.Loop(sysmon=-1)
    with pytest.raises(ValueError):
        gmploop.Loop(sysmon=float("nan"))


def test_one_sysmon_thread_for_all_loops(records):
    barrier = threading.Barrier(2)

    def run_one():
        loop = gmploop.Loop(sysmon=0.05)
        try:
            loop.call_soon(barrier.wait, 10)
            loop.call_soon(time.sleep, 0.2)
            loop.call_soon(loop.stop)
            loop.run_forever()
        finally:
            loop.close()

    threads = [threading.Thread(target=run_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    names = [t.name for t in threading.enumerate()]
    assert names.count("gmploop-sysmon") == 1
    # (A thread slow to reach the barrier may be reported too: count the sleeps.)
    sleeps = [r[2] for r in records.messages(START) if "time.sleep(0.2)" in r[2]]
    assert len(sleeps) == 2
    # time.sleep is the callback itself: C code, no frame of the callback to show.
    assert all("blocked in a call: time.sleep(0.2) (no Python frame" in m for m in sleeps)
    assert not any("run_one" in m for m in sleeps)


def test_debug_mode_logs_asyncio_line_and_call_graph(records, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def leaf():
        time.sleep(0.05)
        await asyncio.sleep(0.01)

    async def middle():
        await leaf()

    async def main():
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.02
        await asyncio.create_task(middle(), name="slow-one")

    gmploop.run(main(), debug=True, sysmon=0)
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(re.match(r"^Executing <Task .*slow-one.*> took \d+\.\d{3} seconds$", m, re.S)
               for m in slow), slow
    (graph,) = [r[2] for r in records.messages("Call graph of the slow task")]
    assert "slow-one" in graph
    # Where it waits now (leaf, awaited through middle), and who waits for it.
    assert "leaf" in graph and "middle" in graph
    assert "Awaited by" in graph and "main" in graph


def _run_script(tmp_path, code, env_debug, timeout=60):
    """Run code as a script file (so its source lines can be shown) with GMPLOOP_DEBUG."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ)
    env["GMPLOOP_DEBUG"] = env_debug
    root = os.path.dirname(os.path.dirname(HERE))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=timeout)


BLOCK_SCRIPT = """
    import logging, time, gmploop
    logging.basicConfig(level=logging.WARNING)
    async def main():
        time.sleep(0.3)
    gmploop.run(main())
"""


def test_gmploop_debug_sets_the_threshold(tmp_path):
    out = _run_script(tmp_path, BLOCK_SCRIPT, "sysmon=50")
    assert out.returncode == 0, out.stderr
    assert START in out.stderr and "time.sleep(0.3)" in out.stderr
    out = _run_script(tmp_path, BLOCK_SCRIPT, "sysmon=0")
    assert out.returncode == 0, out.stderr
    assert START not in out.stderr
    out = _run_script(tmp_path, BLOCK_SCRIPT, "sysmon=1000")
    assert START not in out.stderr


TRACE_RE = re.compile(
    r"^gmploop: (\d+)ms pid=(\d+) procs=1 p0: state=(stopped|poll|run|blocked) "
    r"runq=(\d+) cb=(\d+) iter=(\d+) util=(\d+)% poll=(\d+)ms timers=(\d+) fds=(\d+) "
    r"steals=(\d+) slow=(\d+)$")


def test_schedtrace_prints_lines_at_its_period(tmp_path):
    code = """
        import asyncio, time, gmploop
        async def main():
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.0
            while loop.time() < end:
                for _ in range(100):
                    loop.call_soon(lambda: None)
                await asyncio.sleep(0.005)
        gmploop.run(main())
    """
    out = _run_script(tmp_path, code, "schedtrace=100,sysmon=0")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("gmploop: ")]
    # About ten in one second; generous bounds for a busy machine.
    assert 4 <= len(lines) <= 14, out.stderr
    parsed = []
    for ln in lines:
        m = TRACE_RE.match(ln)
        assert m, ln
        parsed.append(m)
    elapsed = [int(m.group(1)) for m in parsed]
    assert elapsed == sorted(elapsed)
    # Lines keep to the period's schedule (one late wake-up shortens the next gap, so
    # the mean is what is checked).
    assert (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1) >= 90, elapsed
    assert sum(int(m.group(5)) for m in parsed) > 1000      # callbacks were counted
    assert any(int(m.group(9)) >= 1 for m in parsed)        # the sleep's timer


def test_schedtrace_off_by_default(tmp_path):
    out = _run_script(tmp_path, "import gmploop, asyncio\ngmploop.run(asyncio.sleep(0.3))", "")
    assert out.returncode == 0, out.stderr
    assert "gmploop: " not in out.stderr


def test_sysmon_starts_again_in_a_forked_child(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    code = """
        import logging, os, sys, time, gmploop
        logging.basicConfig(level=logging.WARNING)
        async def block(what):
            time.sleep(0.3)
        gmploop.run(block("parent"), sysmon=0.05)      # sysmon runs in the parent
        pid = os.fork()
        if pid == 0:
            gmploop.run(block("child"), sysmon=0.05)
            logging.shutdown()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """
    out = _run_script(tmp_path, code, "")
    assert out.returncode == 0, out.stderr
    reporters = set(re.findall(r"\(pid (\d+)\) has been running one callback", out.stderr))
    assert len(reporters) == 2, out.stderr     # the parent's report, and the child's

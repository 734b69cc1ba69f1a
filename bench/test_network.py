"""Network benchmarks: echo and HTTP servers on each loop, loaded from another process.

Each test starts one server process (bench/servers.py, or a C reference server from
bench/c/) pinned to one CPU, and a load generator pinned to another: the C ping-pong
client bench/c/echo_load.c for echo, wrk for HTTP.  What a test records, in
benchmark.extra_info (compare.py prints it as the network table):

    requests        requests the load generator completed in its measured window
    rps             those requests per second of the window
    server_cpu      the server's utime + stime over the window (seconds)
    cpu_us_per_req  server_cpu / the requests the server served in the window, in µs
    server_util     server_cpu / window: near 1 when the server was the bottleneck
    client_util     the same for echo_load: near 1 when the client was

The window is bracketed by two SIGUSR1 "marks" at which the server reports its CPU time
and what it has served (see servers.py); echo_load sends them itself after its warmup,
and for wrk the harness sends them around the run.  So start-up, imports and connection
set-up are outside the window.

Why CPU per request is the headline and req/s is not: on a machine whose two cores are
shared, another process taking part of a core lowers req/s by as much as it takes, but
leaves the CPU the server spends per request nearly unchanged.  req/s also measures the
load generator: a C server is faster than one client core can drive (client_util says
when), while CPU per request is the server's own.

pytest-benchmark's time of the test is the wall time of the load run, which is fixed by
the chosen duration and says nothing; the figures are in extra_info.

Skips: a loop that cannot be imported (conftest.py), a server that reports UNSUPPORTED
when it starts (the loop lacks create_server, say, or httptools is not installed; the
reason is the server's own message), no gcc to build the C programs, no wrk.  A loop
named in GMPLOOP_BENCH_REQUIRE fails instead of skipping.  A server that starts and then
misbehaves (a wrong echo, a dropped connection, an exception in its loop) fails the test.
"""
import hashlib
import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"

SCALE = float(os.environ.get("GMPLOOP_BENCH_SCALE", "1"))
# The measured window and the uncounted warmup before it.  Three seconds holds thousands
# of requests even for the slowest server on a busy machine, and 0.5 s of warmup gets
# the connections, caches and the allocator to their steady state.
DURATION = max(0.05, 3.0 * SCALE)
WARMUP = max(0.02, 0.5 * SCALE)
# wrk takes whole seconds only.
WRK_SECONDS = max(1, round(DURATION))
ECHO_CONNS = int(os.environ.get("GMPLOOP_BENCH_CONNS", "10"))
HTTP_CONNS = int(os.environ.get("GMPLOOP_BENCH_HTTP_CONNS", "50"))
SIZES = {"1k": 1024, "10k": 10 * 1024, "100k": 100 * 1024}
ECHO_KINDS = ("streams", "protocol", "buffered", "sock")
HTTP_KINDS = ("aiohttp", "httptools")
LOOPS = ("asyncio", "uvloop", "rloop", "gmploop")  # as conftest.LOOP_NAMES
if os.environ.get("GMPLOOP_BENCH_OBSERVE", "") not in ("", "0"):
    LOOPS += ("gmploop-bare",)
START_TIMEOUT = 30.0
REPORT_TIMEOUT = 10.0


def _pick_cpus():
    """(server CPU, load CPU), or (None, None) when there are not two CPUs to pin to."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else (None, None)


SERVER_CPU, LOAD_CPU = _pick_cpus()


def _pinned(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# Building the C programs, once per source version, into a cache directory.


def _cache_dir():
    base = os.environ.get("GMPLOOP_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gmploop-bench"
    )
    os.makedirs(base, exist_ok=True)
    return Path(base)


def _build(stem):
    """Path of bench/c/<stem>.c compiled with -O2, rebuilt when a source changes."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the C load generator and reference servers cannot be built")
    sources = [C_DIR / f"{stem}.c", C_DIR / "server_common.h"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    exe = _cache_dir() / f"{stem}-{digest}"
    if not exe.exists():
        tmp = exe.with_name(exe.name + f".tmp{os.getpid()}")
        res = subprocess.run(
            [gcc, "-O2", "-Wall", "-o", str(tmp), str(C_DIR / f"{stem}.c"), "-lm"],
            capture_output=True, text=True, timeout=120,
        )
        if res.returncode != 0:
            pytest.fail(f"gcc failed on {stem}.c:\n{res.stderr}")
        os.replace(tmp, exe)
    return str(exe)


def c_program(cache, stem):
    if stem not in cache:
        cache[stem] = _build(stem)
    return cache[stem]


def wrk_path():
    path = shutil.which("wrk")
    if path is None:
        pytest.skip("wrk not found (Debian/Ubuntu: apt-get install wrk)")
    return path


# A server process and its report lines.


class Unsupported(Exception):
    pass


def server_env():
    """The environment for a Python server: it must import the loops from where this
    process does.  Run from a checkout, this process imports gmploop from the current
    directory (sys.path[0] is ''), which a script in bench/ would not; so the directory
    gmploop came from goes first on the server's PYTHONPATH."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("gmploop")
    if spec is not None and spec.submodule_search_locations:
        root = str(Path(list(spec.submodule_search_locations)[0]).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """A server started with argv, pinned to SERVER_CPU, speaking the servers.py protocol."""

    def __init__(self, argv):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=server_env(), preexec_fn=_pinned(SERVER_CPU),
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = None

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def error_text(self):
        self.stderr.seek(0)
        text = self.stderr.read().strip()
        return text[-3000:] if text else "(no stderr)"

    def _line(self, timeout, what):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"server gave no {what} within {timeout} s") from None
        if line is None:
            self.proc.wait(timeout=5)
            raise AssertionError(
                f"server exited with status {self.proc.returncode} before its {what}:\n"
                f"{self.error_text()}"
            )
        return line

    def wait_ready(self):
        line = self._line(START_TIMEOUT, "READY line")
        if line.startswith("UNSUPPORTED "):
            self.proc.wait(timeout=5)
            raise Unsupported(line[len("UNSUPPORTED "):])
        assert line.startswith("READY "), f"unexpected line from server: {line!r}"
        self.port = int(line.split()[1])
        return self.port

    def report(self, event):
        """The next report line; waiting for "stop" passes over marks still unread."""
        while True:
            rep = json.loads(self._line(REPORT_TIMEOUT, f"{event!r} report"))
            if rep["event"] == event:
                return rep
            assert event == "stop" and rep["event"] == "mark", f"expected {event}: {rep}"

    def mark(self):
        self.proc.send_signal(signal.SIGUSR1)
        return self.report("mark")

    def memory(self):
        """A report taken after a full garbage collection in the server (SIGUSR2)."""
        self.proc.send_signal(signal.SIGUSR2)
        return self.report("memory")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rep = self.report("stop")
        self.proc.wait(timeout=REPORT_TIMEOUT)
        return rep

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=REPORT_TIMEOUT)
        self.proc.stdout.close()
        self.stderr.close()


def required_loops():
    """The loops GMPLOOP_BENCH_REQUIRE names (as conftest.py reads it)."""
    return {n.strip() for n in os.environ.get("GMPLOOP_BENCH_REQUIRE", "").split(",")
            if n.strip()}


def loop_version(name):
    if name == "asyncio":
        return "stdlib, Python " + sys.version.split()[0]
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # a source checkout without metadata
        return "unknown version"


def start_server(argv, loop_name):
    """A ready ServerProcess, or a skip (fail if loop_name is required) when unsupported."""
    server = ServerProcess(argv)
    try:
        server.wait_ready()
    except Unsupported as exc:
        server.close()
        if loop_name in required_loops():
            pytest.fail(f"{loop_name} is required (GMPLOOP_BENCH_REQUIRE) but its server "
                        f"cannot start: {exc}")
        pytest.skip(f"{loop_name} server unsupported: {exc}")
    except BaseException:
        server.close()
        raise
    return server


def python_server_argv(loop_name, kind):
    argv = [sys.executable, str(HERE / "servers.py"), "--loop", loop_name, "--kind", kind]
    if SERVER_CPU is not None:
        argv += ["--cpu", str(SERVER_CPU)]
    return argv


def cpu_of(rep):
    return rep["utime"] + rep["stime"]


def record(benchmark, *, loop_name, protocol, kind, size, conns, load, requests, elapsed,
           cpu, served, client_cpu=None, errors=0):
    assert requests > 0, "the load generator completed no request"
    assert served > 0, "the server reports serving nothing in the window"
    info = benchmark.extra_info
    info.update(
        suite="network", loop=loop_name, protocol=protocol, kind=kind, size=size,
        conns=conns, load=load, requests=requests, elapsed=elapsed,
        rps=requests / elapsed, server_cpu=cpu, server_requests=served,
        cpu_us_per_req=cpu / served * 1e6, server_util=cpu / elapsed,
        pinned=SERVER_CPU is not None, scale=SCALE, server_errors=errors,
    )
    if loop_name in LOOPS:
        info["loop_version"] = loop_version(loop_name)
    if client_cpu is not None:
        info["client_util"] = client_cpu / elapsed


# Echo.


def echo_window(c_programs, server, size):
    """One echo_load run against a ready server: its warmup, then a measured window
    between two marks.  Returns echo_load's JSON (requests, elapsed, utime, stime) with
    the server's side added: cpu (seconds in the window) and served (requests it echoed
    in the window).  The server keeps running."""
    client = c_program(c_programs, "echo_load")
    argv = [client, "--port", str(server.port), "--conns", str(ECHO_CONNS),
            "--size", str(size), "--warmup", str(WARMUP), "--duration", str(DURATION),
            "--mark-pid", str(server.proc.pid)]
    res = subprocess.run(argv, capture_output=True, text=True,
                         timeout=WARMUP + DURATION + 30, preexec_fn=_pinned(LOAD_CPU))
    if res.returncode != 0:
        # Drain whatever marks arrived so the server's own complaint is shown.
        stop_error = ""
        try:
            server.stop()
        except AssertionError as exc:
            stop_error = str(exc)
        pytest.fail(f"echo_load failed ({res.returncode}): {res.stderr.strip()}\n"
                    f"server stderr:\n{server.error_text()}\n{stop_error}")
    got = json.loads(res.stdout)
    m1, m2 = server.report("mark"), server.report("mark")
    got["cpu"] = cpu_of(m2) - cpu_of(m1)
    got["served"] = (m2["bytes"] - m1["bytes"]) / size
    return got


def stop_checked(server):
    """Stop the server; fail if its loop reported an error meanwhile."""
    final = server.stop()
    assert final["errors"] == 0, (
        f"the server's loop reported {final['errors']} errors:\n{server.error_text()}")
    return final


def run_echo(benchmark, c_programs, server, *, loop_name, kind, size):
    out = {}

    def load():
        out["got"] = echo_window(c_programs, server, size)

    benchmark.pedantic(load, rounds=1, iterations=1)
    got = out["got"]
    final = stop_checked(server)
    record(benchmark, loop_name=loop_name, protocol="echo", kind=kind, size=size,
           conns=ECHO_CONNS, load="echo_load", requests=got["requests"],
           elapsed=got["elapsed"], cpu=got["cpu"], served=got["served"],
           client_cpu=got["utime"] + got["stime"], errors=final["errors"])


# The loops of one benchmark run one after another (loop_name varies fastest), so they
# share the machine's state of that minute.  loop_name is conftest.py's fixture, which
# skips a loop that is not importable.
each_loop = pytest.mark.parametrize("loop_name", LOOPS, indirect=True)


@pytest.mark.timeout(120)
@each_loop
@pytest.mark.parametrize("size_name", list(SIZES))
@pytest.mark.parametrize("kind", ECHO_KINDS)
def test_echo(benchmark, c_programs, kind, size_name, loop_name):
    benchmark.group = f"net echo {kind} {size_name}"
    c_program(c_programs, "echo_load")  # skip before starting a server if no gcc
    server = start_server(python_server_argv(loop_name, kind), loop_name)
    try:
        run_echo(benchmark, c_programs, server, loop_name=loop_name, kind=kind,
                 size=SIZES[size_name])
    finally:
        server.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size_name", list(SIZES))
def test_echo_c_epoll(benchmark, c_programs, size_name):
    """The machine's practical limit for echo: a minimal edge-triggered epoll server."""
    benchmark.group = f"net echo c-epoll {size_name}"
    server = start_server([c_program(c_programs, "epoll_echo_server")], "c-epoll")
    try:
        run_echo(benchmark, c_programs, server, loop_name="c-epoll", kind="c-epoll",
                 size=SIZES[size_name])
    finally:
        server.close()


# HTTP.

WRK_DONE = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(seconds, port):
    res = subprocess.run(
        [wrk_path(), "-t1", f"-c{HTTP_CONNS}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30, preexec_fn=_pinned(LOAD_CPU),
    )
    assert res.returncode == 0, f"wrk failed ({res.returncode}): {res.stderr}{res.stdout}"
    m = WRK_DONE.search(res.stdout)
    assert m, f"cannot read wrk's output:\n{res.stdout}"
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", res.stdout)
    assert bad is None, f"wrk saw errors:\n{res.stdout}"
    return int(m.group(1)), float(m.group(2)) * WRK_UNITS[m.group(3)]


def run_http(benchmark, server, *, loop_name, kind):
    if SCALE >= 0.5:
        run_wrk(1, server.port)  # warmup, uncounted: first requests, caches, allocator
    out = {}

    def load():
        m1 = server.mark()
        out["wrk"] = run_wrk(WRK_SECONDS, server.port)
        out["marks"] = m1, server.mark()

    benchmark.pedantic(load, rounds=1, iterations=1)
    requests, elapsed = out["wrk"]
    m1, m2 = out["marks"]
    final = stop_checked(server)
    record(benchmark, loop_name=loop_name, protocol="http", kind=kind, size=0,
           conns=HTTP_CONNS, load="wrk", requests=requests, elapsed=elapsed,
           cpu=cpu_of(m2) - cpu_of(m1), served=m2["requests"] - m1["requests"],
           errors=final["errors"])


@pytest.mark.timeout(120)
@each_loop
@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_http(benchmark, kind, loop_name):
    benchmark.group = f"net http {kind}"
    wrk_path()
    server = start_server(python_server_argv(loop_name, kind), loop_name)
    try:
        run_http(benchmark, server, loop_name=loop_name, kind=kind)
    finally:
        server.close()


@pytest.mark.timeout(120)
def test_http_c(benchmark, c_programs):
    """The machine's practical limit for HTTP: a minimal keep-alive responder in C."""
    benchmark.group = "net http c-http"
    wrk_path()
    server = start_server([c_program(c_programs, "http_responder")], "c-http")
    try:
        run_http(benchmark, server, loop_name="c-http", kind="c-http")
    finally:
        server.close()


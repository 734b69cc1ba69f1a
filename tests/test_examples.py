"""The examples run as the README says (python examples/NAME.py) and do what they print.

Each runs in a child process with this checkout first on the module path, so it imports
the gmploop under test rather than an installed one.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name, *args, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env.pop("PORT", None)
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def serving(name, *args, **env):
    """Run an example that serves until Ctrl-C; on leaving, interrupt it and check that
    it exited cleanly and quietly."""
    proc = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, name), *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def first_line(proc):
    """The next line of a serving example's output, or its stderr if it has died."""
    line = proc.stdout.readline()
    if not line and proc.poll() is not None:
        raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read()}")
    return line


def exchange(port, data, half_close=True):
    """Send data to 127.0.0.1:port (then half-close, unless told not to: a request
    that asks the server to close needs no EOF), return everything read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(90)
def test_echo_sockets():
    proc = run_example("echo_sockets.py")
    assert proc.returncode == 0, proc.stderr
    assert "running on gmploop.Loop: 20 clients echoed 5 messages each" in proc.stdout
    assert "loop stats:" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_echo_server_streams_and_protocol():
    proc = run_example("echo_server.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "streams  server on gmploop.Loop: 20 clients echoed 100 lines\n"
        "protocol server on gmploop.Loop: 20 clients echoed 100 lines\n")
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_echo_server_serves_until_interrupted():
    with serving("echo_server.py", "--serve") as proc:
        ports = []
        for kind in ("streams", "protocol"):
            line = first_line(proc)
            assert line.startswith(f"{kind} echo server on 127.0.0.1:"), line
            ports.append(int(line.rsplit(":", 1)[1]))
        assert first_line(proc) == "Ctrl-C to stop\n"
        for port in ports:
            assert exchange(port, b"one\ntwo\n") == b"one\ntwo\n"


@pytest.mark.timeout(90)
def test_aiohttp_hello():
    pytest.importorskip("aiohttp")
    proc = run_example("aiohttp_hello.py", str(free_port()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "served 3 requests on gmploop.Loop\n"
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_aiohttp_hello_serves_until_interrupted_on_the_port_from_the_environment():
    pytest.importorskip("aiohttp")
    port = free_port()
    with serving("aiohttp_hello.py", "--serve", PORT=str(port)) as proc:
        line = first_line(proc)
        assert line == f"serving on http://127.0.0.1:{port}/ (Ctrl-C to stop)\n", line
        response = exchange(
            port, b"GET /there HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            half_close=False)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
        assert response.endswith(b"\r\n\r\nHello, there!\n"), response
        assert proc.poll() is None     # still serving


@pytest.mark.timeout(90)
def test_go_fanout():
    proc = run_example("go_fanout.py", "300")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "go_fanout: 300 coroutines started with gmploop.go, 300 echoes, "
        "on gmploop.Loop\n")
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_multi_p_aiohttp():
    pytest.importorskip("aiohttp")
    proc = run_example("multi_p_aiohttp.py", "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("served ") and proc.stdout.endswith(
        " requests on 2 Ps; each P answered\n"), proc.stdout
    assert proc.stderr == ""


@pytest.mark.timeout(90)
def test_multi_p_aiohttp_serves_until_interrupted():
    pytest.importorskip("aiohttp")
    port = free_port()
    with serving("multi_p_aiohttp.py", str(port), "--serve") as proc:
        line = first_line(proc)
        assert line == (
            f"serving on http://127.0.0.1:{port}/ with 2 Ps (Ctrl-C to stop)\n"), line
        response = exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            half_close=False)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
        assert b"\r\n\r\nHello from P" in response, response
        assert proc.poll() is None     # still serving


@pytest.mark.timeout(90)
def test_sysmon_demo_names_the_blocking_call_before_the_reply():
    proc = run_example("sysmon_demo.py")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "fast request: fast answer"
    blocked = [i for i, line in enumerate(lines)
               if line.startswith("blocked in a call: time.sleep(0.4)")
               and "sysmon_demo.py:25" in line]
    ended = [i for i, line in enumerate(lines) if "the slow callback returned" in line]
    reply = [i for i, line in enumerate(lines) if line.startswith("slow request: slow")]
    assert blocked and ended and reply, proc.stdout
    # The report came while the handler slept, before its reply; the end after it.
    assert blocked[0] < ended[0] < reply[0], proc.stdout
    assert any("in handle_slow_request" in line for line in lines), proc.stdout
    assert proc.stderr == ""

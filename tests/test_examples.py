"""The examples run as the README says (python examples/NAME.py) and do what they print.

Each runs in a child process with this checkout first on the module path, so it imports
the gmploop under test rather than an installed one.
"""

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
def test_aiohttp_hello():
    pytest.importorskip("aiohttp")
    proc = run_example("aiohttp_hello.py", str(free_port()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "served 3 requests on gmploop.Loop\n"
    assert proc.stderr == ""


def serve_until_interrupted(args, env, banner, path):
    """Start an example with --serve, check its banner, GET path on a new connection,
    then SIGINT it: it must exit 0 with nothing on stderr. Returns the response."""
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == banner, (
            line + proc.stderr.read() if proc.poll() is not None else line)
        port = int(banner.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
        assert proc.poll() is None     # still serving
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == ""
        return response
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.timeout(90)
def test_aiohttp_hello_serves_until_interrupted_on_the_port_from_the_environment():
    pytest.importorskip("aiohttp")
    port = free_port()
    response = serve_until_interrupted(
        [os.path.join(EXAMPLES, "aiohttp_hello.py"), "--serve"], {"PORT": str(port)},
        f"serving on http://127.0.0.1:{port}/ (Ctrl-C to stop)\n", "/there")
    assert response.endswith(b"\r\n\r\nHello, there!\n"), response


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
    response = serve_until_interrupted(
        [os.path.join(EXAMPLES, "multi_p_aiohttp.py"), str(port), "--serve"], {},
        f"serving on http://127.0.0.1:{port}/ with 2 Ps (Ctrl-C to stop)\n", "/")
    assert b"\r\n\r\nHello from P" in response, response

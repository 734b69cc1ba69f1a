"""Subprocesses: asyncio.create_subprocess_exec/_shell and loop.subprocess_exec/_shell.

asyncio's subprocess API over the loop: pipes for stdin/stdout/stderr (PIPE, DEVNULL,
STDOUT), communicate() with large payloads, signals (kill, terminate, send_signal)
and returncodes (negative for a signal), wait() from several tasks, the order of
process_exited and pipe_connection_lost, and asyncio's argument checks.
"""

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from .support import run

PY = sys.executable
MiB = 1024 * 1024


def py(code):
    return (PY, "-c", code)


def test_communicate_exec(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; d = sys.stdin.buffer.read(); "
                "sys.stdout.buffer.write(d.upper()); sys.stderr.write('err')"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.pid > 0
        out, err = await proc.communicate(b"hello")
        return out, err, proc.returncode

    assert run(loop, main()) == (b"HELLO", b"err", 0)


def test_communicate_shell(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "read line; echo \"got $line\"; exit 3",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, err = await proc.communicate(b"xyz\n")
        return out, err, proc.returncode

    assert run(loop, main()) == (b"got xyz\n", None, 3)


def test_stderr_to_stdout_and_devnull(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; print('out', flush=True); "
                "print('err', file=sys.stderr, flush=True)"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, err = await proc.communicate()
        assert err is None
        assert proc.stdin is None
        assert out.split() == [b"out", b"err"]
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; print('lost'); sys.exit(sys.stdin.read() != '')"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        assert (await proc.communicate()) == (None, None)
        return proc.returncode

    assert run(loop, main()) == 0


def test_large_output_through_communicate(loop):
    size = 8 * MiB

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; d = sys.stdin.buffer.read(); "
                "sys.stdout.buffer.write(d); sys.stderr.buffer.write(d[::-1])"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        payload = os.urandom(size)
        out, err = await proc.communicate(payload)
        return payload, out, err, proc.returncode

    payload, out, err, rc = run(loop, main(), timeout=30)
    assert rc == 0
    assert out == payload
    assert err == payload[::-1]


def test_stream_reading_line_by_line(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("for i in range(1000): print(i)"), stdout=subprocess.PIPE)
        lines = [int(line) async for line in proc.stdout]
        return lines, await proc.wait()

    lines, rc = run(loop, main())
    assert lines == list(range(1000)) and rc == 0


@pytest.mark.parametrize("how, expected", [
    ("kill", -signal.SIGKILL),
    ("terminate", -signal.SIGTERM),
    ("send_signal", -signal.SIGUSR1),
])
def test_signals_and_negative_returncode(loop, how, expected):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys, time; print('ready', flush=True); time.sleep(60)"),
            stdout=subprocess.PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        assert proc.returncode is None
        if how == "send_signal":
            proc.send_signal(signal.SIGUSR1)
        else:
            getattr(proc, how)()
        rc = await proc.wait()
        # Once the process is waited for, its transport has let it go.
        with pytest.raises(ProcessLookupError):
            proc.kill()
        return rc, proc.returncode

    assert run(loop, main()) == (expected, expected)


def test_exit_code(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(*py("raise SystemExit(42)"))
        return await proc.wait()

    assert run(loop, main()) == 42


def test_wait_from_many_tasks(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import time; time.sleep(0.2)"))
        waits = [asyncio.ensure_future(proc.wait()) for _ in range(5)]
        results = await asyncio.gather(*waits, proc.wait())
        return results, await proc.wait()

    results, again = run(loop, main())
    assert results == [0] * 6 and again == 0


def test_process_exits_before_its_pipes_close(loop):
    # The child exits at once; a grandchild keeps its stdout open for a while.
    events = []

    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.done = loop.create_future()
            self.data = bytearray()

        def pipe_data_received(self, fd, data):
            self.data += data

        def pipe_connection_lost(self, fd, exc):
            events.append(("pipe_lost", fd, exc))

        def process_exited(self):
            events.append(("exited",))

        def connection_lost(self, exc):
            events.append(("lost", exc))
            self.done.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, "/bin/sh", "-c", "(sleep 0.3; echo late) & exit 5",
            stdin=None, stderr=None)
        await proto.done
        rc = transport.get_returncode()
        transport.close()
        return rc, bytes(proto.data)

    rc, data = run(loop, main())
    assert rc == 5
    assert data == b"late\n"
    assert events == [("exited",), ("pipe_lost", 1, None), ("lost", None)]


def test_child_that_never_reads_stdin(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; sys.stdout.write('bye')"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # More than a pipe holds, for a child that exits without reading it:
        # communicate() swallows the broken pipe.
        out, _ = await proc.communicate(b"x" * (4 * MiB))
        return out, proc.returncode

    assert run(loop, main()) == (b"bye", 0)


@pytest.mark.xfail_loop("uvloop", reason="uvloop raises RuntimeError from write() once "
                                          "the pipe is closed, not BrokenPipeError")
def test_write_to_exited_child_raises(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("pass"), stdin=subprocess.PIPE)
        await proc.wait()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                proc.stdin.write(b"x" * 65536)
                await proc.stdin.drain()
        return proc.returncode

    assert run(loop, main()) == 0


def test_many_concurrent_subprocesses(loop):
    async def one(i):
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", f"echo {i}; exit {i % 7}", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return int(out), proc.returncode

    async def main():
        return await asyncio.gather(*(one(i) for i in range(50)))

    assert run(loop, main(), timeout=60) == [(i, i % 7) for i in range(50)]


@pytest.mark.xfail_loop("uvloop", reason="uvloop's is_closing() is False right after "
                                          "close() of a running subprocess")
def test_transport_pipes_and_close_kills(loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.exited = loop.create_future()

        def process_exited(self):
            self.exited.set_result(None)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, *py("import time; time.sleep(60)"))
        stdin = transport.get_pipe_transport(0)
        stdout = transport.get_pipe_transport(1)
        stderr = transport.get_pipe_transport(2)
        assert transport.get_pid() > 0
        assert transport.get_returncode() is None
        assert None not in (stdin, stdout, stderr)
        transport.close()                   # kills the running child
        assert transport.is_closing()
        await proto.exited
        return transport.get_returncode()

    assert run(loop, main()) == -signal.SIGKILL


@pytest.mark.xfail_loop("uvloop", reason="uvloop's transports do not derive from "
                                          "asyncio's transport classes")
def test_pipe_transports_of_a_subprocess_are_asyncio_transports(loop):
    async def main():
        transport, proto = await loop.subprocess_exec(
            asyncio.SubprocessProtocol, *py("pass"))
        try:
            assert isinstance(transport, asyncio.SubprocessTransport)
            assert isinstance(transport.get_pipe_transport(0), asyncio.WriteTransport)
            assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
            assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        finally:
            transport.close()
            await transport._wait()

    run(loop, main())


@pytest.mark.xfail_loop("uvloop", reason="uvloop's get_extra_info('subprocess') is None")
def test_extra_info_subprocess_is_the_popen(loop):
    async def main():
        transport, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol, *py("pass"))
        try:
            popen = transport.get_extra_info("subprocess")
            assert isinstance(popen, subprocess.Popen)
            assert popen.pid == transport.get_pid()
        finally:
            transport.close()
            await transport._wait()

    run(loop, main())


@pytest.mark.parametrize("kwargs, message", [
    ({"universal_newlines": True}, "universal_newlines must be False"),
    ({"shell": True}, "shell must be False"),
    ({"bufsize": 1}, "bufsize must be 0"),
    ({"text": True}, "text must be False"),
    ({"encoding": "utf-8"}, "encoding must be None"),
    ({"errors": "strict"}, "errors must be None"),
])
@pytest.mark.xfail_loop("uvloop", reason="uvloop passes text/encoding/errors on and "
                        "fails with 'unexpected kwargs'",
                        params={"message": ["text must be False", "encoding must be None",
                                            "errors must be None"]})
def test_subprocess_exec_argument_checks(loop, kwargs, message):
    async def main():
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", **kwargs)

    run(loop, main())


@pytest.mark.parametrize("cmd, kwargs, message", [
    (["true"], {}, "cmd must be a string"),
    ("true", {"universal_newlines": True}, "universal_newlines must be False"),
    ("true", {"shell": False}, "shell must be True"),
    ("true", {"bufsize": 1}, "bufsize must be 0"),
    ("true", {"text": True}, "text must be False"),
    ("true", {"encoding": "utf-8"}, "encoding must be None"),
    ("true", {"errors": "strict"}, "errors must be None"),
])
@pytest.mark.xfail_loop("uvloop", reason="uvloop does not check cmd's type, and passes "
                        "text/encoding/errors on (fails with 'unexpected kwargs')",
                        params={"message": ["cmd must be a string", "text must be False",
                                            "encoding must be None", "errors must be None"]})
def test_subprocess_shell_argument_checks(loop, cmd, kwargs, message):
    async def main():
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    run(loop, main())


def test_spawn_failure_raises(loop):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program/for/sure")

    run(loop, main())


def test_thread_fallback_without_pidfd(loop, monkeypatch):
    # gmploop watches children through pidfds where it can; take that away and the
    # waitpid thread reaps them. The other loops run the same test unchanged.
    import gmploop._subprocess as gsub

    def no_pidfd(pid, flags=0):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(gsub, "_pidfd_open", no_pidfd)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            *py("import sys; sys.stdout.write(sys.stdin.read()); sys.exit(9)"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = await proc.communicate(b"threaded")
        sleeper = await asyncio.create_subprocess_exec(
            *py("import time; time.sleep(60)"))
        sleeper.kill()
        async def exit_with(i):
            child = await asyncio.create_subprocess_exec("/bin/sh", "-c", f"exit {i}")
            return await child.wait()

        results = await asyncio.gather(*(exit_with(i) for i in range(5)))
        return out, proc.returncode, await sleeper.wait(), results

    assert run(loop, main()) == (b"threaded", 9, -signal.SIGKILL, [0, 1, 2, 3, 4])

"""Processes and signals: fork while the loop runs, signals during blocking calls,
KeyboardInterrupt from a callback, a subprocess killed while talking to it."""

import asyncio
import os
import signal
import socket
import sys
import threading
import time

import pytest

from .support import ExceptionLog, run

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals are delivered to the main thread only")


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def echo_once(sock, msg):
    sock.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


async def parent_still_serves(loop, server, sock, pid):
    """After the child pid exits (successfully): the connection sock is still served,
    and so is a new one."""
    _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
    await asyncio.sleep(0.05)
    assert await loop.run_in_executor(None, echo_once, sock, b"after") == b"after"
    other = socket.create_connection(server.sockets[0].getsockname(), timeout=2)
    with other:
        assert await loop.run_in_executor(None, echo_once, other, b"new") == b"new"


def test_fork_while_running(loop, loop_factory):
    """The loop forks from inside a callback. The child makes and runs a loop of its
    own (timers, a socket pair, a server) and exits; the parent keeps serving the
    connection it had and accepts new ones: the child touched none of its epoll
    registrations."""
    log = ExceptionLog(loop)

    def child():
        code = 1
        try:
            own = loop_factory()
            try:
                async def work():
                    await asyncio.sleep(0.01)
                    a, b = socket.socketpair()
                    a.setblocking(False)
                    b.setblocking(False)
                    with a, b:
                        await own.sock_sendall(a, b"ping")
                        assert await own.sock_recv(b, 10) == b"ping"
                    server = await own.create_server(Echo, "127.0.0.1", 0)
                    port = server.sockets[0].getsockname()[1]
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"child")
                    assert await reader.readexactly(5) == b"child"
                    writer.close()
                    await writer.wait_closed()
                    server.close()
                    await server.wait_closed()
                    return 0
                code = own.run_until_complete(asyncio.wait_for(work(), 10))
            finally:
                own.close()
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            assert await loop.run_in_executor(None, echo_once, sock, b"before") == b"before"
            pid = os.fork()
            if pid == 0:
                child()
            # The parent keeps serving while the child runs.
            for i in range(20):
                msg = b"during %d" % i
                assert await loop.run_in_executor(None, echo_once, sock, msg) == msg
                await asyncio.sleep(0.01)
            await parent_still_serves(loop, server, sock, pid)
        finally:
            sock.close()
        server.close()
        await server.wait_closed()

    run(loop, main(), timeout=30)
    assert log.contexts == []


@pytest.mark.timeout(5)
@pytest.mark.xfail_loop(
    "asyncio", reason="the child shares the parent's epoll instance; closing an inherited "
    "transport or server there unregisters the fd from it, and the parent stops hearing "
    "about that connection and that listener")
def test_fork_child_closes_inherited_transports(loop):
    """The child closes what it inherited (the server, a connection's transport), as
    a forked worker tidies up before doing its own work. The parent's registrations
    are the parent's: it keeps serving that connection and keeps accepting."""
    log = ExceptionLog(loop)
    transports = []

    class Tracked(Echo):
        def connection_made(self, transport):
            super().connection_made(transport)
            transports.append(transport)

    async def main():
        server = await loop.create_server(Tracked, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            assert await loop.run_in_executor(None, echo_once, sock, b"before") == b"before"
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for t in transports:
                        t.abort()
                    server.close()
                    code = 0
                finally:
                    os._exit(code)
            await parent_still_serves(loop, server, sock, pid)
        finally:
            sock.close()
        server.close()
        await server.wait_closed()

    run(loop, main(), timeout=30)
    assert log.contexts == []


@pytest.mark.timeout(5)
@pytest.mark.xfail_loop(
    "asyncio", reason="both processes poll one shared epoll instance: the child's "
    "server.close() unregisters the parent's listener, and the parent hangs")
def test_fork_child_runs_the_inherited_loop(loop):
    """A loop made (with a server on it) before fork() is run by both processes: the
    child does its own work on it (timers, a socket pair, a server of its own) while
    the parent serves clients. Neither takes the other's events."""
    log = ExceptionLog(loop)
    server = loop.run_until_complete(loop.create_server(Echo, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]

    async def child_work():
        for _ in range(10):
            await asyncio.sleep(0.01)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            for i in range(20):
                await loop.sock_sendall(a, b"%d" % i)
                assert await loop.sock_recv(b, 10) == b"%d" % i
        own = await loop.create_server(Echo, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", own.sockets[0].getsockname()[1])
        for i in range(20):
            writer.write(b"child %d\n" % i)
            assert await reader.readline() == b"child %d\n" % i
        writer.close()
        await writer.wait_closed()
        own.close()
        await own.wait_closed()

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            server.close()      # the parent's listener is the parent's to serve
            loop.run_until_complete(asyncio.wait_for(child_work(), 10))
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)

    async def parent_work():
        for i in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for j in range(10):
                writer.write(b"%d %d\n" % (i, j))
                assert await reader.readline() == b"%d %d\n" % (i, j)
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.01)
        _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child's work failed"
        server.close()
        await server.wait_closed()

    run(loop, parent_work(), timeout=30)
    assert log.contexts == []


def test_sigint_while_blocked_in_poll(loop):
    """SIGINT with Python's own handler while the loop sleeps in its poll:
    KeyboardInterrupt leaves run_forever at once, as on asyncio, and the loop can
    run again."""
    t = _kill_later(signal.SIGINT, 0.1)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    t.join()
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


def _kill_later(sig, delay, count=1, interval=0.0):
    def fire():
        time.sleep(delay)
        for _ in range(count):
            os.kill(os.getpid(), sig)
            if interval:
                time.sleep(interval)
    t = threading.Thread(target=fire)
    t.start()
    return t


def test_signals_while_blocked_in_poll(loop):
    """The loop sleeps in its poll (nothing scheduled) while signals arrive: each
    burst reaches the loop's handler, and a Python-level handler runs at once, while
    the loop is still blocked; nothing escapes."""
    log = ExceptionLog(loop)
    seen = []
    python_level = []
    previous = signal.signal(signal.SIGUSR2, lambda *a: python_level.append(time.monotonic()))

    state = {}

    def on_usr1():
        seen.append(time.monotonic())
        if not state["done"].done():
            state["done"].set_result(None)

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, on_usr1)
        try:
            for _ in range(5):
                state["done"] = loop.create_future()
                t = _kill_later(signal.SIGUSR1, 0.05)
                await asyncio.wait_for(state["done"], 5)
                t.join()
            # A plain Python handler, with the loop blocked until a thread wakes it.
            t = _kill_later(signal.SIGUSR2, 0.05)
            woken = loop.create_future()
            stopper = threading.Thread(target=lambda: (
                time.sleep(0.5), loop.call_soon_threadsafe(woken.set_result, time.monotonic())))
            stopper.start()
            woke_at = await woken
            t.join()
            stopper.join()
            return woke_at
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    try:
        woke_at = run(loop, main())
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert len(seen) == 5
    assert python_level and python_level[0] < woke_at, (
        "the Python-level handler waited for the loop to wake up")
    assert log.contexts == []


def test_signal_during_blocking_call_in_callback(loop):
    """A callback blocks in a syscall (sleep, a blocking recv) while signals arrive:
    the syscall completes, and the loop's handler runs after the callback returns,
    once per burst at least."""
    log = ExceptionLog(loop)
    seen = []

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append("usr1"))
        try:
            a, b = socket.socketpair()
            with a, b:
                t = _kill_later(signal.SIGUSR1, 0.05, count=3, interval=0.02)
                threading.Timer(0.3, b.send, (b"late",)).start()
                got = a.recv(10)        # blocks the loop's thread; signals interrupt it
                t.join()
                assert got == b"late"
            for _ in range(10):
                await asyncio.sleep(0.01)
                if seen:
                    break
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    run(loop, main())
    assert seen
    assert log.contexts == []


def test_keyboard_interrupt_in_callback(loop):
    """KeyboardInterrupt from a callback leaves run_forever at once, with the rest of
    the iteration still queued; the loop is then idle and can run again, and what
    was queued runs."""
    order = []

    def interrupt():
        order.append("interrupt")
        raise KeyboardInterrupt

    loop.call_soon(order.append, "a")
    loop.call_soon(interrupt)
    loop.call_soon(order.append, "b")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert order == ["a", "interrupt"]
    assert not loop.is_running()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["a", "interrupt", "b"]


def test_keyboard_interrupt_in_task(loop):
    """A coroutine that raises KeyboardInterrupt: run_until_complete raises it, the
    task is done with it as its exception, other tasks are untouched."""
    async def bad():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    async def good():
        await asyncio.sleep(0.05)
        return "good"

    other = loop.create_task(good())
    task = loop.create_task(bad())
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    assert task.done() and isinstance(task.exception(), KeyboardInterrupt)
    assert not other.done()
    assert loop.run_until_complete(other) == "good"


def test_sigint_cancels_main_task(loop_factory):
    """SIGINT while asyncio.Runner runs the main coroutine on the loop: the coroutine
    sees CancelledError, the runner raises KeyboardInterrupt, and the next run works."""
    seen = []

    async def main():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    t = _kill_later(signal.SIGINT, 0.1)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        with pytest.raises(KeyboardInterrupt):
            runner.run(main())
        t.join()
        assert seen == ["cancelled"]
        assert runner.run(asyncio.sleep(0, "again")) == "again"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_subprocess_killed_mid_communicate(loop):
    """communicate() is feeding a child a large input and reading its output when the
    child is killed: communicate ends (the broken pipe is not an error, as asyncio
    has it), the return code says SIGKILL, and nothing is left open."""
    log = ExceptionLog(loop)
    payload = os.urandom(64 * 1024) * 256      # 16 MiB, more than the pipe holds

    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import sys, time\n"
            "sys.stdout.buffer.write(sys.stdin.buffer.read(1000)); sys.stdout.flush()\n"
            "time.sleep(30)",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        comm = asyncio.ensure_future(proc.communicate(payload))
        await asyncio.sleep(0.3)
        assert not comm.done()
        proc.kill()
        out, err = await asyncio.wait_for(comm, 10)
        return out, err, proc.returncode

    out, err, code = run(loop, main(), timeout=30)
    assert code == -signal.SIGKILL
    assert out == payload[:len(out)] and len(out) <= 1000
    assert err is None
    assert log.contexts == []

"""Misuse: every call made wrong, on asyncio's loop and on gmploop, side by side.

Each row is one misuse. It runs on a fresh asyncio loop and a fresh gmploop loop, and
its outcome on each (the result, or the type of the exception raised, plus the types
of the exceptions the loop reported to its exception handler) must be the same.
Afterwards nothing may be left half-registered: the loop closes without leaving an fd
open, and an fd whose registration failed is not watched (remove_reader says so).
"""

import asyncio
import math
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading

import pytest

import gmploop

from compat.conftest import _asyncio_factory

from .support import open_fds

FACTORIES = {"asyncio": _asyncio_factory, "gmploop": gmploop.new_event_loop}


def _cb(*args):
    pass


async def _coro():
    return 1


_udp_socks = []


def _udp_sock():
    """A socket of the wrong kind for a stream call; closed by outcome()."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _udp_socks.append(s)
    return s


def outcome(name, case, debug):
    """Run case(loop) on a fresh loop of kind name; return (what happened, reported
    exception types), with the loop closed and no fd left behind."""
    before = open_fds()
    loop = FACTORIES[name]()
    loop.set_debug(debug)
    reported = []
    loop.set_exception_handler(      # sysmon reports aside: see support.ExceptionLog
        lambda _loop, ctx: None if "blocked_for" in ctx
        else reported.append(type(ctx.get("exception")).__name__))
    try:
        try:
            result = case(loop)
        except BaseException as exc:
            result = ("raised", type(exc))
        else:
            result = ("returned", result)
    finally:
        if loop.is_running():
            loop.stop()
        loop.close()
        while _udp_socks:
            _udp_socks.pop().close()
    after = open_fds()
    assert after == before, f"{name}: fds left open: {set(after) - set(before)}"
    return result, reported


def run_one_iteration(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def ran(loop, schedule):
    """schedule(loop, callback) then run two iterations: did the callback run?"""
    hits = []
    schedule(loop, lambda: hits.append(1))
    run_one_iteration(loop)
    run_one_iteration(loop)
    return bool(hits)


def run_coro(loop, make_coro):
    return loop.run_until_complete(asyncio.wait_for(make_coro(loop), 5))


def closed(loop):
    loop.close()
    return loop


def with_pair(body):
    def case(loop):
        a, b = socket.socketpair()
        try:
            a.setblocking(False)
            b.setblocking(False)
            return body(loop, a, b)
        finally:
            a.close()
            b.close()
    return case


def reader_left(loop, fd):
    """True if the loop still watches fd after a failed registration."""
    return loop.remove_reader(fd)


def _closed_fd_reader(loop):
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    try:
        loop.add_reader(r, _cb)
    except OSError as exc:
        return type(exc), reader_left(loop, r)
    return "registered", loop.remove_reader(r)


def _regular_file_reader(loop):
    with tempfile.TemporaryFile() as f:
        try:
            loop.add_reader(f.fileno(), _cb)
        except OSError as exc:
            return type(exc), reader_left(loop, f.fileno())
        return "registered", loop.remove_reader(f.fileno())


async def _recv_nonsocket(loop):
    return await loop.sock_recv(1234, 10)


async def _sendall_str(loop, a):
    return await loop.sock_sendall(a, "text")


def _sock_blocking_debug(loop, a, b):
    a.setblocking(True)
    b.send(b"x")    # without debug, the recv must not block the test
    return run_coro(loop, lambda l: l.sock_recv(a, 10))


def _sock_on_closed_loop(loop, a, b):
    loop.close()
    coro = loop.sock_recv(a, 10)
    try:
        coro.send(None)
    except StopIteration as stop:
        return "completed", stop.value
    finally:
        coro.close()
    return "suspended"


def _sock_ssl(loop, a, b):
    ctx = ssl.create_default_context()
    s = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)
    try:
        return run_coro(loop, lambda l: l.sock_recv(s, 10))
    finally:
        s.close()


def _sock_accept_unbound(loop, a, b):
    s = socket.socket()
    s.setblocking(False)
    try:
        return run_coro(loop, lambda l: l.sock_accept(s))
    finally:
        s.close()


def _sock_connect_bad_address(loop, a, b):
    s = socket.socket()
    s.setblocking(False)
    try:
        return run_coro(loop, lambda l: l.sock_connect(s, ("127.0.0.1", "port")))
    finally:
        s.close()


def _sock_recv_negative(loop, a, b):
    return run_coro(loop, lambda l: l.sock_recv(a, -1))


def _sock_recv_into_bytes(loop, a, b):
    b.send(b"x")
    return run_coro(loop, lambda l: l.sock_recv_into(a, b"immutable"))


def _run_until_complete_while_running(loop):
    async def inner():
        loop.run_until_complete(asyncio.sleep(0))
    return loop.run_until_complete(inner())


def _run_forever_while_running(loop):
    async def inner():
        loop.run_forever()
    return loop.run_until_complete(inner())


def _close_while_running(loop):
    async def inner():
        loop.close()
    return loop.run_until_complete(inner())


def _other_loop_running(loop):
    other = asyncio.SelectorEventLoop()
    try:
        async def inner():
            loop.run_until_complete(asyncio.sleep(0))
        return other.run_until_complete(inner())
    finally:
        other.close()


def _call_soon_from_thread(method):
    def case(loop):
        box = []

        def other_thread():
            try:
                getattr(loop, method)(*(0,) * (method != "call_soon"), _cb)
                box.append("returned")
            except BaseException as exc:
                box.append(type(exc))

        async def main():
            t = threading.Thread(target=other_thread)
            t.start()
            await loop.run_in_executor(None, t.join)
        loop.run_until_complete(main())
        return box[0]
    return case


def _stream_transport(body):
    """body(transport) on a connected transport of the loop; its outcome."""
    def case(loop):
        a, b = socket.socketpair()
        b.setblocking(False)

        async def main():
            transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            try:
                return body(transport)
            finally:
                transport.abort()
                await asyncio.sleep(0)
        try:
            return loop.run_until_complete(main())
        finally:
            b.close()
    return case


def _after_close(method, *args):
    def body(transport):
        transport.close()
        return getattr(transport, method)(*args)
    return body


def _write_after_write_eof(transport):
    transport.write_eof()
    transport.write(b"x")


def _foreign_future(loop):
    other = asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(asyncio.Future(loop=other))
    finally:
        other.close()


def _signal_from_thread(loop):
    box = []

    def other():
        try:
            loop.add_signal_handler(signal.SIGUSR1, _cb)
            box.append("returned")
        except BaseException as exc:
            box.append(type(exc))
    t = threading.Thread(target=other)
    t.start()
    t.join()
    loop.remove_signal_handler(signal.SIGUSR1)
    return box[0]


class _DuckContext:
    """Not a contextvars.Context, but asyncio only calls its run method."""

    def run(self, callback, *args):
        return callback(*args)


NAN = math.nan
INF = math.inf

CASES = {
    # callbacks and timers
    "call_soon(non-callable)": lambda l: ran(l, lambda l, cb: l.call_soon(1)),
    "call_soon(coroutine function)": lambda l: l.call_soon(_coro) and None,
    "call_soon(coroutine object)": lambda l: l.call_soon(_coro()) and None,
    "call_soon(cb, context=1)": lambda l: ran(l, lambda l, cb: l.call_soon(cb, context=1)),
    "call_soon(cb, context=object with run())":
        lambda l: ran(l, lambda l, cb: l.call_soon(cb, context=_DuckContext())),
    "call_later(None)": lambda l: l.call_later(None, _cb),
    "call_later('1')": lambda l: l.call_later("1", _cb),
    "call_later(-1)": lambda l: ran(l, lambda l, cb: l.call_later(-1, cb)),
    "call_later(-inf)": lambda l: ran(l, lambda l, cb: l.call_later(-INF, cb)),
    "call_later(nan)": lambda l: ran(l, lambda l, cb: l.call_later(NAN, cb)),
    "call_later(inf)": lambda l: ran(l, lambda l, cb: l.call_later(INF, cb)),
    "call_later(1e300)": lambda l: ran(l, lambda l, cb: l.call_later(1e300, cb)),
    "call_later(2**2000)": lambda l: l.call_later(2 ** 2000, _cb),
    "call_at(None)": lambda l: l.call_at(None, _cb),
    # asyncio takes the deadline and fails when its iteration compares it; gmploop
    # refuses it at once: the same TypeError, and neither runs the callback.
    "call_at('x') then run": lambda l: (l.call_at("x", _cb), run_one_iteration(l)),
    "call_at(nan)": lambda l: ran(l, lambda l, cb: l.call_at(NAN, cb)),
    "call_at(0)": lambda l: ran(l, lambda l, cb: l.call_at(0, cb)),
    "call_at(inf)": lambda l: ran(l, lambda l, cb: l.call_at(INF, cb)),
    "call_later(coroutine function)": lambda l: l.call_later(1, _coro) and None,
    "call_soon_threadsafe(non-callable)":
        lambda l: ran(l, lambda l, cb: l.call_soon_threadsafe(None)),
    "call_soon from another thread": _call_soon_from_thread("call_soon"),
    "call_later from another thread": _call_soon_from_thread("call_later"),
    "call_at from another thread": _call_soon_from_thread("call_at"),
    # tasks and running
    "create_task(non-coroutine)": lambda l: l.create_task(1),
    "create_task(None)": lambda l: l.create_task(None),
    "run_until_complete(1)": lambda l: l.run_until_complete(1),
    "run_until_complete(foreign loop future)": _foreign_future,
    "run_until_complete while running": _run_until_complete_while_running,
    "run_forever while running": _run_forever_while_running,
    "run_until_complete while another loop runs": _other_loop_running,
    "close while running": _close_while_running,
    "run_in_executor(None, non-callable)":
        lambda l: run_coro(l, lambda l: l.run_in_executor(None, 1)),
    "run_in_executor(None, coroutine function)":
        lambda l: run_coro(l, lambda l: l.run_in_executor(None, _coro)),
    "run_in_executor(executor=1)":
        lambda l: run_coro(l, lambda l: l.run_in_executor(1, _cb)),
    "set_default_executor(1)": lambda l: l.set_default_executor(1),
    "set_task_factory(1)": lambda l: l.set_task_factory(1),
    "set_exception_handler(1)": lambda l: l.set_exception_handler(1),
    # a closed loop
    "closed: call_soon": lambda l: closed(l).call_soon(_cb),
    "closed: call_later": lambda l: closed(l).call_later(1, _cb),
    "closed: call_at": lambda l: closed(l).call_at(1, _cb),
    "closed: call_soon_threadsafe": lambda l: closed(l).call_soon_threadsafe(_cb),
    "closed: run_forever": lambda l: closed(l).run_forever(),
    "closed: run_until_complete(future)":
        lambda l: closed(l).run_until_complete(asyncio.Future(loop=l)),
    "closed: create_task": lambda l: closed(l).create_task(_coro()),
    "closed: run_in_executor": lambda l: closed(l).run_in_executor(None, _cb),
    "closed: add_reader": with_pair(lambda l, a, b: closed(l).add_reader(a, _cb)),
    "closed: add_writer": with_pair(lambda l, a, b: closed(l).add_writer(a, _cb)),
    "closed: remove_reader": with_pair(lambda l, a, b: closed(l).remove_reader(a)),
    "closed: remove_writer": with_pair(lambda l, a, b: closed(l).remove_writer(a)),
    "closed: add_signal_handler":
        lambda l: closed(l).add_signal_handler(signal.SIGUSR1, _cb),
    "closed: remove_signal_handler":
        lambda l: closed(l).remove_signal_handler(signal.SIGUSR1),
    "closed: sock_recv with nothing to read": with_pair(_sock_on_closed_loop),
    "closed: close again": lambda l: closed(l).close(),
    "closed: time": lambda l: type(closed(l).time()),
    "closed: create_future": lambda l: type(closed(l).create_future()).__name__,
    "closed: shutdown_asyncgens": lambda l: closed(l).run_until_complete(
        l.shutdown_asyncgens()),
    "stop before run": lambda l: (l.stop(), ran(l, lambda l, cb: l.call_soon(cb)))[1],
    # readers and writers
    "add_reader(-1)": lambda l: l.add_reader(-1, _cb),
    "add_reader('x')": lambda l: l.add_reader("x", _cb),
    "add_reader(1.5)": lambda l: l.add_reader(1.5, _cb),
    "add_reader(None)": lambda l: l.add_reader(None, _cb),
    "add_writer(object())": lambda l: l.add_writer(object(), _cb),
    "remove_reader(-1)": lambda l: l.remove_reader(-1),
    "remove_reader('x')": lambda l: l.remove_reader("x"),
    "remove_reader(unwatched)": with_pair(lambda l, a, b: l.remove_reader(a)),
    "add_reader(closed fd)": _closed_fd_reader,
    "add_reader(regular file)": _regular_file_reader,
    "add_reader(non-callable) then ready":
        with_pair(lambda l, a, b: (l.add_reader(a, None), b.send(b"x"),
                                   run_one_iteration(l), l.remove_reader(a))[-1]),
    "add_reader(coroutine function)":
        with_pair(lambda l, a, b: (l.add_reader(a, _coro), l.remove_reader(a))[-1]),
    # sock_* with the wrong objects
    "sock_recv(int)": lambda l: run_coro(l, _recv_nonsocket),
    "sock_recv(None)": lambda l: run_coro(l, lambda l: l.sock_recv(None, 1)),
    "sock_sendall(str)": with_pair(lambda l, a, b: run_coro(l, lambda l: _sendall_str(l, a))),
    "sock_recv(blocking socket), debug": with_pair(_sock_blocking_debug),
    "sock_recv(SSLSocket)": with_pair(_sock_ssl),
    "sock_accept(unbound socket)": with_pair(_sock_accept_unbound),
    "sock_connect(bad address)": with_pair(_sock_connect_bad_address),
    "sock_recv(n=-1)": with_pair(_sock_recv_negative),
    "sock_recv_into(bytes)": with_pair(_sock_recv_into_bytes),
    "sock_sendfile(str file)": with_pair(lambda l, a, b: run_coro(
        l, lambda l: l.sock_sendfile(a, "file"))),
    # signals
    "add_signal_handler('x')": lambda l: l.add_signal_handler("x", _cb),
    "add_signal_handler(999)": lambda l: l.add_signal_handler(999, _cb),
    "add_signal_handler(SIGKILL)": lambda l: l.add_signal_handler(signal.SIGKILL, _cb),
    "add_signal_handler(coroutine function)":
        lambda l: l.add_signal_handler(signal.SIGUSR1, _coro),
    "add_signal_handler from a thread": _signal_from_thread,
    "remove_signal_handler(never added)":
        lambda l: l.remove_signal_handler(signal.SIGUSR2),
    # transports
    "transport.write(str)": _stream_transport(lambda t: t.write("text")),
    "transport.write(int)": _stream_transport(lambda t: t.write(1)),
    "transport.writelines([str])": _stream_transport(lambda t: t.writelines(["a"])),
    "transport.write after close": _stream_transport(_after_close("write", b"x")),
    "transport.write_eof after close": _stream_transport(_after_close("write_eof")),
    "transport.pause_reading after close": _stream_transport(_after_close("pause_reading")),
    "transport.resume_reading after close":
        _stream_transport(_after_close("resume_reading")),
    "transport.close twice": _stream_transport(_after_close("close")),
    "transport.abort after close": _stream_transport(_after_close("abort")),
    "transport.write after write_eof": _stream_transport(_write_after_write_eof),
    "transport.set_write_buffer_limits(high < low)":
        _stream_transport(lambda t: t.set_write_buffer_limits(high=1, low=2)),
    "transport.set_write_buffer_limits(-1)":
        _stream_transport(lambda t: t.set_write_buffer_limits(high=-1)),
    "transport.get_extra_info(unknown)":
        _stream_transport(lambda t: t.get_extra_info("nope", "dflt")),
    "create_connection(sock=UDP)": lambda l: l.run_until_complete(
        l.create_connection(asyncio.Protocol, sock=_udp_sock())),
    "create_connection(no host, no sock)": lambda l: l.run_until_complete(
        l.create_connection(asyncio.Protocol)),
    "create_server(sock and host)": lambda l: l.run_until_complete(
        l.create_server(asyncio.Protocol, "127.0.0.1", 0, sock=_udp_sock())),
    "create_connection(ssl_handshake_timeout without ssl)": lambda l: l.run_until_complete(
        l.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1)),
}


def _clean(value):
    """What of a result may be compared across loops (not handles or reprs)."""
    if isinstance(value, tuple) and value and value[0] == "returned":
        v = value[1]
        if isinstance(v, (bool, int, float, str, type(None), type)):
            return value
        if isinstance(v, tuple) and all(isinstance(x, (bool, int, str, type)) for x in v):
            return value
        return ("returned", "an object")
    return value


@pytest.mark.parametrize("debug", [False, True], ids=["nodebug", "debug"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_misuse_matches_asyncio(case, debug, recwarn):
    body = CASES[case]
    expected = outcome("asyncio", body, debug)
    got = outcome("gmploop", body, debug)
    assert (_clean(got[0]), got[1]) == (_clean(expected[0]), expected[1]), (
        f"{case}: gmploop {got}, asyncio {expected}")

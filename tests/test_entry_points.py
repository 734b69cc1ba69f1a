"""The ways users start gmploop all give a compiled gmploop.Loop, and the loop's netpoller
registers sockets edge-triggered (checked in the kernel's own view, /proc fdinfo)."""
import asyncio
import importlib.machinery
import os
import socket
import sys
import warnings

import pytest

import gmploop

EPOLLET = 1 << 31


async def running_loop_type():
    return type(asyncio.get_running_loop())


def test_core_modules_are_compiled_extensions():
    from gmploop import _handles, _loop, _poller, _runq, _timers
    for mod in (_runq, _timers, _poller, _handles, _loop):
        assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod
    assert issubclass(gmploop.Loop, asyncio.AbstractEventLoop)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run has loop_factory from 3.12")
def test_asyncio_run_with_loop_factory():
    assert asyncio.run(running_loop_type(), loop_factory=gmploop.new_event_loop) is gmploop.Loop


def test_asyncio_runner_with_loop_factory():
    with asyncio.Runner(loop_factory=gmploop.new_event_loop) as runner:
        assert runner.run(running_loop_type()) is gmploop.Loop


def test_gmploop_run_takes_a_coroutine_or_a_coroutine_function():
    assert gmploop.run(running_loop_type()) is gmploop.Loop
    assert gmploop.run(running_loop_type) is gmploop.Loop


def test_gmploop_run_debug_flag():
    async def debug():
        return asyncio.get_running_loop().get_debug()
    assert gmploop.run(debug(), debug=True) is True


def test_policy_and_install():
    old = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            # On 3.14+ asyncio itself deprecates policies; that warning is asyncio's.
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(gmploop.Policy())
            assert asyncio.run(running_loop_type()) is gmploop.Loop
            loop = asyncio.new_event_loop()
            assert type(loop) is gmploop.Loop
            loop.close()
            gmploop.install()
            assert isinstance(asyncio.get_event_loop_policy(), gmploop.Policy)
            assert asyncio.run(running_loop_type()) is gmploop.Loop
    finally:
        asyncio.set_event_loop_policy(old)


def test_policy_gives_no_warning_where_asyncio_gives_none():
    if sys.version_info >= (3, 14):
        pytest.skip("policies are deprecated from 3.14: asyncio warns there")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gmploop.Policy()


def epoll_registrations():
    """{epoll fd: {registered fd: events mask}} for this process, from /proc."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/self/fdinfo/{name}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        regs = {}
        for line in lines:
            if line.startswith("tfd:"):
                parts = line.split()
                regs[int(parts[1])] = int(parts[3], 16)
        out[int(name)] = regs
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc fdinfo")
def test_open_tcp_connection_is_registered_edge_triggered():
    async def main():
        loop = asyncio.get_running_loop()
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, lsock.getsockname())
        conn, _ = await loop.sock_accept(lsock)
        # A receive that has to wait registers the socket with the netpoller.
        reader = asyncio.ensure_future(loop.sock_recv(conn, 100))
        await asyncio.sleep(0.01)
        regs = epoll_registrations()
        mine = [r for r in regs.values() if conn.fileno() in r]
        await loop.sock_sendall(client, b"ping")
        assert await reader == b"ping"
        # Still registered, once, after the wait is over: the next wait costs no epoll_ctl.
        still = [r for r in epoll_registrations().values() if conn.fileno() in r]
        for s in (conn, client, lsock):
            s.close()
        return mine, still, conn

    mine, still, _ = gmploop.run(main())
    assert len(mine) == 1, mine
    assert len(still) == 1, still
    (regs,) = mine
    events = next(iter(v for k, v in regs.items() if v & EPOLLET))
    assert events & EPOLLET
    assert events & 0x1 and events & 0x4          # EPOLLIN and EPOLLOUT: both directions


def test_stats_count_a_known_workload():
    n = 1000

    async def main():
        loop = asyncio.get_running_loop()
        before = loop.stats()
        done = loop.create_future()
        count = 0

        def cb():
            nonlocal count
            count += 1
            if count == n:
                done.set_result(None)

        for _ in range(n):
            loop.call_soon(cb)
        await done
        after = loop.stats()
        return before, after

    before, after = gmploop.run(main())
    # n callbacks, plus the task steps and the future's wake-up around them.
    ran = after["callbacks"] - before["callbacks"]
    assert n <= ran <= n + 5, ran


def _policies():
    return [pytest.param(asyncio.DefaultEventLoopPolicy, id="asyncio"),
            pytest.param(lambda: gmploop.Policy(), id="gmploop")]


@pytest.mark.skipif(sys.version_info >= (3, 14),
                    reason="asyncio's child watchers are gone from 3.14")
@pytest.mark.parametrize("make_policy", _policies())
def test_policy_child_watcher_as_asyncio(make_policy):
    """Code written for asyncio's Unix policy calls get/set_child_watcher (deprecated in
    3.12, gone in 3.14); where asyncio has them, a gmploop policy answers as asyncio's."""
    old = asyncio.get_event_loop_policy()
    policy = make_policy()
    try:
        asyncio.set_event_loop_policy(policy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            default = asyncio.get_child_watcher()
            assert isinstance(default, asyncio.AbstractChildWatcher)
            assert asyncio.get_child_watcher() is default
            watcher = asyncio.SafeChildWatcher()
            asyncio.set_child_watcher(watcher)
            assert asyncio.get_child_watcher() is watcher
            loop = policy.new_event_loop()
            try:
                policy.set_event_loop(loop)       # main thread: the watcher is attached
                assert watcher._loop is loop
                # A subprocess works with the watcher installed.
                proc = loop.run_until_complete(asyncio.create_subprocess_exec(
                    sys.executable, "-c", "raise SystemExit(3)"))
                assert loop.run_until_complete(
                    asyncio.wait_for(proc.wait(), 30)) == 3
            finally:
                asyncio.set_child_watcher(None)
                policy.set_event_loop(None)
                loop.close()
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)
                        and "child_watcher" in str(w.message)]
        assert bool(deprecations) == (sys.version_info >= (3, 12))
        with pytest.raises(AssertionError):
            policy.set_child_watcher(object())
    finally:
        asyncio.set_event_loop_policy(old)

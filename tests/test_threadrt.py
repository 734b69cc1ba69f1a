"""The thread runtime (gmploop/_threadrt.py): Ps as threads of one process on a
free-threaded build with the GIL off. Run in this process (gmploop.run from the test's
main thread): results in P order from distinct, pinned threads; one listener serving
from both Ps; a failing P reported with its traceback; SIGINT shutting every P down;
a burst of go() coroutines shared between the Ps by stealing, each run exactly once;
and the StealQueue's conservation with Python objects on real parallel threads.

The runtime's behaviours that do not depend on what an M is (signals through a real
terminal-like SIGINT, port 0, Unix listeners, reopening a port, reuseport) run in
thread mode in tests/test_runtime.py too (its M_MODES).
"""
import asyncio
import gc
import os
import signal
import socket
import sys
import threading
import time
import weakref

import pytest

import gmploop
from gmploop import _go, _runq, _runtime, _threadrt

pytestmark = pytest.mark.timeout(60)

needs_nogil = pytest.mark.skipif(
    not _threadrt.gil_disabled(),
    reason="the thread runtime needs a free-threaded Python with the GIL disabled "
           "(CI runs this file on 3.13t)")

TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2


@pytest.fixture(autouse=True)
def _thread_mode(monkeypatch):
    monkeypatch.setenv("GMPLOOP_M", "thread")
    monkeypatch.delenv("GMPLOOP_LISTEN", raising=False)


def run2(main, procs=2):
    return gmploop.run(main, procs=procs)


# ---------------------------------------------------------------------- choosing

@pytest.mark.skipif(_threadrt.gil_disabled(), reason="tests the refusal on a GIL build")
def test_thread_mode_is_refused_where_the_gil_is_on():
    async def main():
        return 1

    with pytest.raises(RuntimeError, match="GMPLOOP_M=thread needs a free-threaded"):
        run2(main)


def test_gmploop_m_must_name_a_mode(monkeypatch):
    monkeypatch.setenv("GMPLOOP_M", "fibre")
    with pytest.raises(ValueError, match="GMPLOOP_M must be 'thread' or 'process'"):
        _threadrt.use_threads()


def test_policy_mode_refuses_thread_mode():
    with pytest.raises(RuntimeError, match="needs processes"):
        _threadrt.check_policy_mode()


@needs_nogil
def test_without_gmploop_m_a_free_threaded_build_uses_threads(monkeypatch):
    monkeypatch.delenv("GMPLOOP_M")
    assert _threadrt.use_threads()
    assert not sys._is_gil_enabled()        # importing gmploop left the GIL off


# ---------------------------------------------------------------------- run

@needs_nogil
def test_results_in_p_order_from_distinct_pinned_threads():
    main_thread = threading.get_ident()

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01 * (2 - _runtime.this_p()))   # P1 ends first
        return (_runtime.this_p(), loop._p_index, threading.get_ident(),
                sorted(os.sched_getaffinity(0)), os.getpid(), type(loop))

    out = run2(main, procs=3)
    assert [r[0] for r in out] == [0, 1, 2]
    assert [r[1] for r in out] == [0, 1, 2]          # stats and schedtrace say which P
    idents = {r[2] for r in out}
    assert len(idents) == 3 and main_thread not in idents
    assert {r[4] for r in out} == {os.getpid()}
    assert all(r[5] is gmploop.Loop for r in out)
    cpus = sorted(os.sched_getaffinity(0))
    for index, r in enumerate(out):
        assert r[3] == [cpus[index % len(cpus)]]     # each thread on its own CPU
    assert sorted(os.sched_getaffinity(0)) == cpus   # the caller's thread untouched
    assert _runtime.this_p() is None


@needs_nogil
def test_a_failing_p_gives_pfailederror_with_its_traceback_and_the_rest_stop():
    cleaned = []

    async def main():
        if _runtime.this_p() == 1:
            await asyncio.sleep(0.05)
            raise ValueError("boom in P1")
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(_runtime.this_p())

    t0 = time.monotonic()
    with pytest.raises(gmploop.PFailedError) as info:
        run2(main)
    assert time.monotonic() - t0 < 10               # P0 was stopped, not waited for
    assert cleaned == [0]
    err = info.value
    assert [f[0] for f in err.failures] == [1]
    index, pid, status, tb = err.failures[0]
    assert pid == os.getpid()
    assert "gmploop-P1" in status and "main raised an exception" in status
    assert 'raise ValueError("boom in P1")' in tb and "ValueError: boom in P1" in tb
    assert "P1 (pid" in str(err) and "boom in P1" in str(err)


@needs_nogil
@pytest.mark.parametrize("status", [0, 3])
def test_sys_exit_in_a_p_is_that_ps_exit_status(status):
    async def main():
        if _runtime.this_p() == 1:
            sys.exit(status)
        return "ok"

    if status == 0:
        assert run2(main) == ["ok", None]
    else:
        with pytest.raises(gmploop.PFailedError, match=r"sys.exit\(3\)"):
            run2(main)


@needs_nogil
def test_sigint_cancels_every_ps_main_and_run_raises_keyboardinterrupt():
    ready = threading.Barrier(3)
    cleaned = []
    loops = []

    async def main():
        loops.append(asyncio.get_running_loop())
        try:
            await asyncio.to_thread(ready.wait, 10)
            await asyncio.sleep(30)
        finally:
            cleaned.append(_runtime.this_p())

    def interrupt():
        ready.wait(10)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    killer = threading.Thread(target=interrupt)
    killer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run2(main)
    finally:
        killer.join()
    assert time.monotonic() - t0 < 10
    assert sorted(cleaned) == [0, 1]
    assert all(loop.is_closed() for loop in loops)  # each shut down as asyncio.run does
    assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------------- listeners

@needs_nogil
def test_one_listener_bound_once_serves_from_both_ps():
    ports = []
    got_ports = threading.Barrier(3)
    done = threading.Event()
    seen = []

    async def handle(reader, writer):
        if await reader.read(10):
            time.sleep(0.05)    # hold this P, so that the next client goes elsewhere
            writer.write(f"{_runtime.this_p()}".encode())
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        sock = server.sockets[0]
        ports.append((sock.getsockname()[1], os.fstat(sock.fileno()).st_ino,
                      sock.fileno()))
        await asyncio.to_thread(got_ports.wait, 10)
        while not done.is_set():
            await asyncio.sleep(0.02)
        server.close()
        await server.wait_closed()

    def client():
        got_ports.wait(10)
        try:
            port = ports[0][0]
            for _ in range(20):
                answers = asyncio.run(_concurrent_clients(port, 6))
                seen.extend(answers)
                if {0, 1} <= set(seen):
                    break
        finally:
            done.set()

    t = threading.Thread(target=client)
    t.start()
    try:
        run2(main)
    finally:
        done.set()
        t.join()
    assert len({p for p, _, _ in ports}) == 1, ports   # port 0: one port for all Ps
    assert len({i for _, i, _ in ports}) == 1, ports   # one socket ...
    assert len({fd for _, _, fd in ports}) == 2, ports  # ... each P with its own fd
    assert {0, 1} <= set(seen), seen
    # The runtime closed its socket: nothing listens there any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports[0][0]), timeout=2).close()


async def _concurrent_clients(port, n):
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hi")
        data = await r.read()
        w.close()
        await w.wait_closed()
        return int(data)

    return await asyncio.gather(*[one() for _ in range(n)])


# ---------------------------------------------------------------------- go stealing

@needs_nogil
def test_a_go_burst_on_one_p_is_run_by_both_and_each_coroutine_once():
    n = 1000
    ran = []                    # (i, P index): list.append is atomic on 3.13t too
    all_done = threading.Event()

    async def work(i):
        end = time.perf_counter() + 0.0002      # ~200 us of CPU, in one step
        while time.perf_counter() < end:
            pass
        ran.append((i, _runtime.this_p()))
        if len(ran) == n:
            all_done.set()

    async def main():
        loop = asyncio.get_running_loop()
        if _runtime.this_p() == 0:
            await asyncio.sleep(0.05)           # P1 is idle, polling
            for i in range(n):
                gmploop.go(work(i))
        while not all_done.is_set():
            await asyncio.sleep(0.005)
        queue = loop._gmploop_go
        return queue.started, queue.stolen, loop.stats().steals

    t0 = time.monotonic()
    out = run2(main)
    elapsed = time.monotonic() - t0
    ids = sorted(i for i, _ in ran)
    assert ids == list(range(n))                        # every coroutine exactly once
    split = [sum(1 for _, p in ran if p == k) for k in (0, 1)]
    started = [o[0] for o in out]
    steals = [o[2] for o in out]
    print(f"\ngo burst of {n}: run by P0/P1 = {split[0]}/{split[1]}, "
          f"started {started}, steals {steals}, {elapsed:.2f} s")
    assert split == started                             # each ran what it started
    assert split[1] > 0 and steals[1] > 0               # P1 stole a share
    assert out[1][1] == steals[1] == split[1]           # all of it stolen
    assert steals[0] == 0                               # from P0, which stole none


# ---------------------------------------------------------------------- StealQueue

class Box:
    __slots__ = ("n", "__weakref__")

    def __init__(self, n):
        self.n = n


@needs_nogil
@pytest.mark.parametrize("thieves", [1, 3])
def test_steal_queue_objects_conserved_across_parallel_threads(thieves):
    """Owner put/get and thieves' steal_half on object queues, from Python threads
    really running at once: every object is taken exactly once, and once the takers
    drop them every one is freed (no reference lost or counted twice)."""
    n = 50_000
    src = _runq.StealQueue(64)
    start = threading.Barrier(thieves + 1)
    done = threading.Event()
    taken = [[] for _ in range(thieves + 1)]
    refs = []

    def thief(k):
        mine = _runq.StealQueue(64)
        start.wait()
        while True:
            moved = src.steal_half(mine)
            while len(mine):
                taken[k].append(mine.pop().n)
            if not moved and done.is_set() and not len(src):
                return

    threads = [threading.Thread(target=thief, args=(k,)) for k in range(thieves)]
    for t in threads:
        t.start()
    start.wait()
    own = taken[thieves]
    for i in range(n):
        box = Box(i)
        refs.append(weakref.ref(box))
        while not src.push(box):
            try:
                own.append(src.pop().n)
            except IndexError:
                pass
        del box
        if i % 3 == 0:
            try:
                own.append(src.pop().n)
            except IndexError:
                pass
    while True:
        try:
            own.append(src.pop().n)
        except IndexError:
            break
    done.set()
    for t in threads:
        t.join(30)
    everything = sorted(x for part in taken for x in part)
    assert everything == list(range(n))
    assert any(taken[:thieves])                 # the thieves did take some
    gc.collect()
    assert sum(1 for r in refs if r() is not None) == 0

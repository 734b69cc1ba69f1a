"""loop.stats() and gmploop.stats(): frozen snapshots whose counters agree with
workloads of known size.

The counts are exact: each workload is built so that asyncio's iteration order fixes
how many callbacks, iterations and timers it takes (call_soon callbacks queued before
run_forever all run in its first iteration; stop() makes that iteration the last).
Times are only checked against what the workload guarantees (a sleep of 0.2 s in the
poller is at least 0.15 s of poll time), never against an upper bound.
"""
import asyncio
import dataclasses
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

import pytest

import gmploop


def run_batch(loop, callbacks):
    """Queue the callbacks and loop.stop, then run the loop: exactly one iteration."""
    for cb in callbacks:
        loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()


@pytest.fixture
def loop():
    lp = gmploop.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.mark.parametrize("n", [1, 10, 1000, 25_000])
def test_exactly_n_callbacks_in_one_iteration(loop, n):
    ran = []
    before = loop.stats()
    run_batch(loop, [lambda: ran.append(1)] * n)
    after = loop.stats()
    assert len(ran) == n
    assert after.callbacks - before.callbacks == n + 1          # and loop.stop
    assert after.iterations - before.iterations == 1
    assert after.timers_fired == before.timers_fired
    assert after.ready == 0 and after.state == "stopped"


def test_callbacks_queued_by_callbacks_run_in_later_iterations(loop):
    n = 500
    left = [n]

    def link():
        left[0] -= 1
        if left[0]:
            loop.call_soon(link)
        else:
            loop.stop()

    before = loop.stats()
    loop.call_soon(link)
    loop.run_forever()
    after = loop.stats()
    assert after.callbacks - before.callbacks == n
    assert after.iterations - before.iterations == n


def test_cancelled_handles_are_not_counted(loop):
    handles = [loop.call_soon(lambda: None) for _ in range(100)]
    for h in handles[::2]:
        h.cancel()
    before = loop.stats()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert loop.stats().callbacks - before.callbacks == 50 + 1


def test_timers_fired_and_pending(loop):
    n = 300
    fired = []
    now = loop.time()
    for i in range(n):
        loop.call_at(now, fired.append, i)
    far = [loop.call_later(3600, fired.append, -1) for _ in range(7)]
    assert loop.stats().timers_pending == n + 7
    far[0].cancel()
    assert loop.stats().timers_pending == n + 6
    before = loop.stats()
    loop.call_at(now, loop.stop)
    loop.run_forever()
    after = loop.stats()
    assert fired == list(range(n))
    assert after.timers_fired - before.timers_fired == n + 1
    assert after.callbacks - before.callbacks == n + 1
    assert after.timers_pending == 6
    for h in far:
        h.cancel()
    assert loop.stats().timers_pending == 0


def test_fds_registered_and_io_events(loop):
    a, b = socket.socketpair()
    try:
        base = loop.stats()
        got = []

        def on_readable():
            got.append(a.recv(100))
            loop.stop()

        loop.add_reader(a, on_readable)
        assert loop.stats().fds_registered == base.fds_registered + 1
        b.send(b"x")
        loop.run_forever()
        after = loop.stats()
        assert got == [b"x"]
        assert after.io_events - base.io_events == 1
        assert after.callbacks - base.callbacks == 1
        loop.remove_reader(a)
        assert loop.stats().fds_registered == base.fds_registered
    finally:
        a.close()
        b.close()


def test_poll_time_and_busy_time(loop):
    before = loop.stats()
    loop.run_until_complete(asyncio.sleep(0.2))      # waits in the poller
    mid = loop.stats()
    assert mid.poll_time - before.poll_time >= 0.15
    run_batch(loop, [lambda: time.sleep(0.2)])      # busy: blocked in a callback
    after = loop.stats()
    assert after.busy_time - mid.busy_time >= 0.19
    assert after.poll_time - mid.poll_time < 0.19   # the batch never waited
    assert 0.0 < after.utilization < 1.0


def test_states_seen_from_another_thread(loop):
    seen = {}

    def look(key):
        seen[key] = loop.stats()

    async def main():
        t = threading.Timer(0.1, look, ("polling",))
        t.start()
        await asyncio.sleep(0.5)        # the loop waits in its poller meanwhile
        t.join()
        look("running")

    look("before")
    loop.run_until_complete(main())
    look("after")
    assert seen["before"].state == "stopped"
    assert seen["polling"].state == "poll"
    assert seen["running"].state == "run"
    assert seen["after"].state == "stopped"
    assert seen["polling"].poll_time > 0.05     # counted while still in progress


def test_snapshot_is_frozen_and_reads_like_a_dict(loop):
    run_batch(loop, [lambda: None] * 3)
    s = loop.stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.callbacks = 0
    assert s["callbacks"] == s.callbacks == 4
    assert dict(s)["iterations"] == s.iterations
    assert s.get("nope", 42) == 42
    with pytest.raises(KeyError):
        s["nope"]
    assert set(s.keys()) >= {"callbacks", "iterations", "poll_time", "busy_time",
                             "timers_pending", "fds_registered", "steals",
                             "slow_callbacks", "ready"}
    assert pickle.loads(pickle.dumps(s)) == s
    run_batch(loop, [lambda: None])
    assert s.callbacks == 4                     # a snapshot does not move
    assert s.steals == 0 and s.stealable == 0   # no runtime: nothing to steal


def test_gmploop_stats_lists_the_loops_alive():
    a = gmploop.new_event_loop()
    b = gmploop.new_event_loop()
    try:
        run_batch(a, [lambda: None] * 10)
        run_batch(b, [lambda: None] * 20)
        rs = gmploop.stats()
        assert isinstance(rs, gmploop.RuntimeStats)
        by_p = {s.p: s for s in rs.ps}
        assert a.stats().p != b.stats().p
        assert by_p[a.stats().p].callbacks == 11
        assert by_p[b.stats().p].callbacks == 21
        assert [s.p for s in rs.ps] == sorted(s.p for s in rs.ps)
        assert rs.procs == len(rs.ps) == len(rs)
        assert rs.total("callbacks") == sum(s.callbacks for s in rs)
        b.close()
        assert b.stats().p not in {s.p for s in gmploop.stats().ps}
    finally:
        a.close()
        b.close()


def test_stats_inside_the_running_loop():
    async def main():
        loop = asyncio.get_running_loop()
        s = loop.stats()
        mine = [p for p in gmploop.stats().ps if p.p == s.p]
        return s, mine

    s, mine = gmploop.run(main())
    assert s.state == "run" and len(mine) == 1 and mine[0].state == "run"
    assert s.callbacks >= 1 and s.iterations >= 1


def test_unobserved_loop_counts_but_does_not_time(loop):
    # loop._observed = False is the benchmarks' baseline (bench/servers.py,
    # bare_gmploop_loop): the counts stay exact, the polls go untimed.
    loop._observed = False
    seen = {}
    t = threading.Timer(0.1, lambda: seen.setdefault("s", loop.stats()))
    t.start()
    loop.run_until_complete(asyncio.sleep(0.4))
    t.join()
    run_batch(loop, [lambda: None] * 5)
    s = loop.stats()
    assert seen["s"].state == "poll"
    assert s.poll_time == 0.0 and s.busy_time > 0.15
    assert s.callbacks >= 6


# ---------------------------------------------------------------------- shared slots
# gmploop/_statshm.py: how the Ps of the process runtime see each other's snapshots.
# The runtime end to end is in tests/test_runtime.py (test_gmploop_stats_in_a_p_...).

from gmploop import _stats, _statshm  # noqa: E402


@pytest.fixture
def shared():
    s = _statshm.SharedStats(2)
    try:
        yield s
    finally:
        s.close()


def p_loop(loop, index):
    loop._p_index = index           # as Loop.__init__ does in P index of the runtime
    return loop


def test_a_published_snapshot_reads_back_whole(loop, shared):
    source = _statshm.PSource(shared, 1)
    assert shared.read(1) is None and shared.read(0) is None    # not yet published
    run_batch(p_loop(loop, 1), [lambda: None] * 10)
    published = source.publish([loop])
    assert published.callbacks == 11 and published.p == 1
    assert shared.read(1) == published          # every field, the state included
    assert shared.read(0) is None
    assert shared.read_all() == [None, published]
    # snapshots(): the caller's own P taken now; peers as published.
    rs = source.snapshots([loop])
    assert [s.p for s in rs] == [1] and rs[0].time >= published.time


def test_a_torn_half_is_never_read(loop, shared):
    source = _statshm.PSource(shared, 0)
    p_loop(loop, 0)
    run_batch(loop, [lambda: None] * 5)
    older = source.publish([loop])
    run_batch(loop, [lambda: None] * 5)
    newer = source.publish([loop])
    assert shared.read(0) == newer and newer.callbacks == older.callbacks + 6
    # Spoil one byte of the newest half's fields, as a write seen half-done would: the
    # crc no longer matches, and the reader takes the other half.
    at = (_statshm._HALF if (source.gen // 2) & 1 else 0) + _statshm._HEADER.size + 40
    shared.map[at] ^= 0xFF
    assert shared.read(0) == older
    # A half being written (odd gen) is skipped too.
    other = _statshm._HALF - (at - _statshm._HEADER.size - 40)
    _statshm._GEN.pack_into(shared.map, other, source.gen - 1)
    assert shared.read(0) is None
    # The next publication goes to the half written longest ago, and is read whole.
    run_batch(loop, [lambda: None] * 5)
    newest = source.publish([loop])
    assert shared.read(0) == newest
    shared.clear(0)
    assert shared.read(0) is None


def test_a_p_started_again_in_its_slot_goes_on_from_its_generation(loop, shared):
    run_batch(p_loop(loop, 0), [lambda: None])
    first = _statshm.PSource(shared, 0)
    first.publish([loop])
    first.publish([loop])
    again = _statshm.PSource(shared, 0)
    assert again.gen == first.gen
    run_batch(loop, [lambda: None] * 3)
    s = again.publish([loop])
    assert shared.read(0) == s and s.callbacks == 6


CROSS_PROCESS = """
import os, sys
sys.path.insert(0, sys.argv[1])
import gmploop
from gmploop import _stats, _statshm
shared = _statshm.SharedStats(2)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        os.close(r)
        lp = gmploop.Loop(sysmon=0)     # no threads yet: the fork below is clean
        lp._p_index = 1
        for _ in range(100):
            lp.call_soon(lambda: None)
        lp.call_soon(lp.stop)
        lp.run_forever()
        _statshm.attach(shared, 1)
        s = _stats.runtime_source.publish([lp])
        child = os.fork()               # a process forked from a P is no P
        if child == 0:
            os._exit(0 if _stats.runtime_source is None else 1)
        _, status = os.waitpid(child, 0)
        os.write(w, f"{s.callbacks} {os.waitstatus_to_exitcode(status)}".encode())
        lp.close()
        code = 0
    finally:
        os._exit(code)
os.close(w)
with os.fdopen(r) as f:
    callbacks, grandchild = map(int, f.read().split())
_, status = os.waitpid(pid, 0)
s = shared.read(1)
print(os.waitstatus_to_exitcode(status), grandchild, callbacks, pid,
      s.pid, s.p, s.callbacks, shared.read(0), _stats.runtime_source)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_slot_is_read_across_processes():
    # In a fresh process of its own: forking pytest's, which has threads, is unsafe.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", CROSS_PROCESS, root], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    code, grandchild, callbacks, pid, s_pid, s_p, s_callbacks, other, source = \
        out.stdout.split()
    assert code == "0" and grandchild == "0", out.stdout
    assert s_pid == pid and s_p == "1", out.stdout       # the child's, in slot 1
    assert s_callbacks == callbacks == "101", out.stdout
    assert other == "None" and source == "None", out.stdout


def test_gmploop_stats_asks_the_runtime_source(loop):
    # The interface a runtime implements (_stats.RuntimeSource): gmploop.stats() takes
    # the Ps' snapshots from it. The base class reads each loop of this process, which
    # is all a runtime whose Ps are threads of one process needs.
    run_batch(loop, [lambda: None] * 7)
    asked = []

    class Source(_stats.RuntimeSource):
        def snapshots(self, loops):
            asked.append([lp._p_index for lp in loops])
            return super().snapshots(loops)

    try:
        _stats.runtime_source = Source()
        rs = gmploop.stats()
    finally:
        _stats.runtime_source = None
    assert asked and loop._p_index in asked[0]
    mine = [s for s in rs if s.p == loop._p_index]
    assert len(mine) == 1 and mine[0].callbacks == 8
    assert [s.p for s in rs] == [s.p for s in gmploop.stats()]

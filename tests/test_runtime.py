"""The multi-P runtime (gmploop/_runtime.py): real programs with procs=2, run in a
child process with a timeout (tests/runtime_prog.py), checked from outside: both Ps
serve, the listener is bound once, signals shut every P down as asyncio.run does, a
failed P is reported with its traceback and a non-zero exit.
"""
import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import gmploop
from gmploop import _runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = os.path.join(ROOT, "tests", "runtime_prog.py")

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the process runtime needs fork"),
]

# The tests here are the process runtime's unless a test takes M_MODES: those whose
# behaviour does not depend on what an M is run in thread mode too, where it exists
# (a free-threaded build with the GIL off; see tests/test_threadrt.py for the rest).
M_MODES = ["process"] + (["thread"] if gmploop._threadrt.gil_disabled() else [])


@pytest.fixture(autouse=True)
def _process_mode_by_default(monkeypatch):
    monkeypatch.setenv("GMPLOOP_M", "process")


class Prog:
    """tests/runtime_prog.py MODE in a child process; lines read with a deadline."""

    def __init__(self, mode, procs=2, env=None, args=()):
        self.proc = subprocess.Popen(
            [sys.executable, PROG, mode, str(procs), *args], cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def readline(self, timeout=20):
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output in {timeout}s; so far {self.lines}") from None
        if line is None:
            self._queue.put(None)
            raise AssertionError(f"program ended early: {self.lines}\n"
                                 f"{self.proc.stderr.read()}")
        self.lines.append(line)
        return line

    def finish(self, timeout=20):
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        while (line := self._queue.get()) is not None:
            self.lines.append(line)
        self._queue.put(None)
        return self.proc.returncode, self.proc.stderr.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            # The Ps lead process groups of their own and die with their parent
            # (PR_SET_PDEATHSIG); nothing else to do here.
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def prog():
    progs = []

    def start(*args, **kwargs):
        p = Prog(*args, **kwargs)
        progs.append(p)
        return p

    yield start
    for p in progs:
        p.close()


def ready_lines(p, n=2):
    readies = {}
    while len(readies) < n:
        line = p.readline()
        if line.startswith("READY"):
            fields = line.split()
            readies[int(fields[1])] = fields[2:]
    return readies


def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hi")
        data = b""
        while chunk := s.recv(100):
            data += chunk
    index, pid = data.decode().split()
    return int(index), int(pid)


def test_both_ps_serve_one_listener_bound_once(prog):
    p = prog("serve")
    readies = ready_lines(p)
    pids = {int(r[0]) for r in readies.values()}
    ports = {r[1] for r in readies.values()}
    inodes = {r[2] for r in readies.values()}
    assert len(pids) == 2 and p.proc.pid not in pids
    assert len(ports) == 1, readies        # port 0: one ephemeral port for all Ps
    assert len(inodes) == 1, readies       # the same socket, not two bound alike
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        cpus = [r[3] for r in readies.values()]
        assert all("," not in c for c in cpus) and len(set(cpus)) == 2, cpus
    port = int(ports.pop())
    # Concurrent clients; each answer holds its P for 50 ms, so a P that is busy does
    # not accept and the other one is woken.
    seen = answering_ps(port)
    assert {i for i, _ in seen} == {0, 1}
    assert {pid for _, pid in seen} == pids
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    assert sorted(line for line in p.lines if line.startswith("CLEANUP")) == [
        "CLEANUP 0", "CLEANUP 1"]
    assert "Traceback" not in err, err


async def _concurrent(port, n, path=None, http=False):
    """n concurrent clients (of 127.0.0.1:port, or of the Unix socket at path; with
    http, each a GET / with Connection: close); [(P index, pid, seconds until
    answered)] from answers "<P index> <pid>"."""
    t0 = time.monotonic()

    async def one():
        if path is None:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        else:
            r, w = await asyncio.open_unix_connection(path)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" if http
                else b"hi")
        data = await r.read()
        w.close()
        await w.wait_closed()
        if http:
            data = data.rsplit(b"\r\n\r\n", 1)[1]
        index, pid = data.decode().split()
        return int(index), int(pid), time.monotonic() - t0

    return await asyncio.gather(*[one() for _ in range(n)])


def answering_ps(port, path=None, http=False, rounds=10):
    """Rounds of 8 concurrent clients until both Ps have answered; the (index, pid)
    pairs seen."""
    seen = set()
    for _ in range(rounds):
        seen |= {(i, pid) for i, pid, _ in
                 asyncio.run(_concurrent(port, 8, path=path, http=http))}
        if len({i for i, _ in seen}) == 2:
            break
    return seen


@pytest.mark.parametrize("m", M_MODES)
def test_sigint_shuts_every_p_down_as_asyncio_run_does(m, prog):
    p = prog("serve", env={"GMPLOOP_M": m})
    readies = ready_lines(p)
    port = int(next(iter(readies.values()))[1])
    ask(port)
    p.proc.send_signal(signal.SIGINT)
    code, err = p.finish()
    # run() raises KeyboardInterrupt, as asyncio.run does; uncaught, Python ends the
    # process by SIGINT.
    assert code in (-signal.SIGINT, 128 + signal.SIGINT), (code, err)
    assert "KeyboardInterrupt" in err
    assert sorted(line for line in p.lines if line.startswith("CLEANUP")) == [
        "CLEANUP 0", "CLEANUP 1"]
    for pid in (int(r[0]) for r in readies.values()):
        assert not _alive(pid)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crashing_p_is_reported_with_its_traceback(prog):
    p = prog("crash")
    code, err = p.finish()
    assert code == 1, err
    assert "PFailedError: 1 of gmploop's Ps failed" in err
    assert "P1 (pid " in err and "exit status 1, main raised an exception" in err
    assert 'raise ValueError("boom in P1")' in err and "ValueError: boom in P1" in err
    # The other P was shut down as on SIGTERM, not left running or reported.
    assert "CLEANUP 0" in p.lines
    assert "P0 (pid" not in err


def test_a_killed_p_is_reported_and_the_rest_stop(prog):
    p = prog("serve")
    readies = ready_lines(p)
    victim = int(readies[1][0])
    os.kill(victim, signal.SIGKILL)
    code, err = p.finish()
    assert code == 1, err
    assert f"P1 (pid {victim}): killed by SIGKILL, without a report" in err
    assert "CLEANUP 0" in p.lines


@pytest.mark.parametrize("m", M_MODES)
def test_results_come_back_in_p_order(m, prog):
    p = prog("result", 3, env={"GMPLOOP_M": m})
    code, err = p.finish()
    assert code == 0, err
    assert p.lines[-1] == "RESULT [0, 10, 20]"


@pytest.mark.parametrize("m", M_MODES)
def test_two_servers_on_port_zero_get_two_ports_the_same_on_every_p(m, prog):
    p = prog("two", env={"GMPLOOP_M": m})
    code, err = p.finish()
    assert code == 0, err
    ports = sorted(line.split()[1:] for line in p.lines if line.startswith("PORTS"))
    assert len(ports) == 2
    (_, a0, b0), (_, a1, b1) = ports
    assert (a0, b0) == (a1, b1) and a0 != b0


@pytest.mark.parametrize("m", M_MODES)
def test_a_server_closed_and_opened_again_on_its_port_gets_its_socket_back(m, prog):
    p = prog("reopen", env={"GMPLOOP_M": m})
    code, err = p.finish()
    assert code == 0, err
    lines = sorted(line.split() for line in p.lines if line.startswith("REOPEN"))
    assert [fields[2] for fields in lines] == ["True", "True"], lines
    assert lines[0][3] == lines[1][3]


@pytest.mark.parametrize("m", M_MODES)
def test_a_unix_server_is_shared_and_its_file_removed_at_the_end(m, prog, tmp_path):
    path = str(tmp_path / "s.sock")
    p = prog("unix", args=[path], env={"GMPLOOP_M": m})
    readies = ready_lines(p)
    assert len({r[1] for r in readies.values()}) == 1      # one socket for both Ps
    assert {i for i, _ in answering_ps(None, path=path)} == {0, 1}
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    assert not os.path.exists(path)


@pytest.mark.parametrize("m", M_MODES)
def test_reuseport_mode_gives_each_p_its_own_socket_on_one_port(m, prog):
    p = prog("serve", env={"GMPLOOP_M": m, "GMPLOOP_LISTEN": "reuseport"})
    readies = ready_lines(p)
    assert len({r[1] for r in readies.values()}) == 1
    assert len({r[2] for r in readies.values()}) == 2
    port = int(next(iter(readies.values()))[1])
    assert ask(port)[0] in (0, 1)
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err


@pytest.mark.skipif(_runtime._pidfd_getfd is None,
                    reason="connection stealing needs Linux's pidfd_getfd")
def test_connections_a_stuck_p_accepted_are_moved_to_another_p(prog):
    p = prog("steal")
    readies = ready_lines(p)
    port = int(readies[0][1])
    # The burst waits in the backlog; P0 accepts a batch of it and blocks while
    # starting the first connection; P1 polls from 1 s on.
    t0 = time.monotonic()
    answers = asyncio.run(_concurrent(port, 24))
    elapsed = time.monotonic() - t0
    assert len(answers) == 24
    by_p = {0: 0, 1: 0}
    for index, _, took in answers:
        by_p[index] += 1
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    stats = {int(f[1]): list(map(int, f[2:])) for f in
             (line.split() for line in p.lines if line.startswith("STATS"))}
    started0, out0, in0, p0, steals0 = stats[0]
    started1, out1, in1, p1, steals1 = stats[1]
    # Each P's loop.stats() names its P and counts the connections stolen into it.
    assert (p0, p1) == (0, 1), stats
    assert (steals0, steals1) == (in0, in1), stats
    # Every connection was started exactly once, by one P.
    assert started0 + in0 + started1 + in1 == 24, (stats, by_p)
    assert by_p[0] == started0 + in0 and by_p[1] == started1 + in1, (stats, by_p)
    # Some were moved from P0, which was stuck, to P1; none the other way.
    assert out0 == in1 > 0, stats
    assert out1 == in0 == 0, stats
    # Those were answered before P0 woke up (2.5 s after it started).
    moved = sorted(took for index, _, took in answers if index == 1)
    assert moved[0] < 2.2, (moved, elapsed)


# ---------------------------------------------------------------------- restarts

def restart_reports(err):
    return [line for line in err.splitlines() if "restarting it (" in line]


def test_a_p_that_fails_once_is_restarted_and_the_run_completes(prog, tmp_path):
    p = prog("once", env={"GMPLOOP_RESTART": "2"}, args=[str(tmp_path / "marker")])
    code, err = p.finish()
    assert code == 0, err
    assert p.lines[-1] == "RESULT [0, 10]"
    # The failure was reported, with its traceback, though the run went on.
    reports = restart_reports(err)
    assert len(reports) == 1, err
    assert reports[0].startswith("gmploop: P1 (pid ") and \
        "failed: exit status 1, main raised an exception; restarting it " \
        "(1 of 2 restarts allowed in 60 s)" in reports[0], err
    assert "ValueError: boom once in P1" in err
    assert "PFailedError" not in err


def test_a_p_that_always_fails_exhausts_its_restarts(prog, tmp_path):
    p = prog("always", env={"GMPLOOP_RESTART": "2"})
    code, err = p.finish()
    assert code == 1, err
    reports = restart_reports(err)
    assert [r.split("restarting it ")[1] for r in reports] == [
        "(1 of 2 restarts allowed in 60 s)", "(2 of 2 restarts allowed in 60 s)"], err
    # Three lives, three pids; the error names the last one, and P0 was shut down.
    pids = {r.split("(pid ")[1].split(")")[0] for r in reports}
    assert len(pids) == 2
    assert "PFailedError: 1 of gmploop's Ps failed" in err
    last = err.split("PFailedError: ")[1]
    assert "P1 (pid " in last and "exit status 1, main raised an exception" in last
    assert last.split("P1 (pid ")[1].split(")")[0] not in pids
    assert "ValueError: boom always in P1" in last
    assert "(and 2 restarts within 60 s were all it was allowed)" in last
    assert "P0 (pid" not in last


def test_a_restarted_p_gets_its_index_cpu_and_the_shared_listener_back(prog, tmp_path):
    p = prog("serve-once", env={"GMPLOOP_RESTART": "on"},
             args=[str(tmp_path / "marker")])
    first = ready_lines(p)
    while True:     # P1's second life
        line = p.readline()
        if line.startswith("READY 1 "):
            again = line.split()[2:]
            break
    assert again[0] != first[1][0]                  # a new process ...
    assert again[1:] == first[1][1:]                # ... same port, socket and CPU
    port = int(again[1])
    seen = answering_ps(port)
    assert seen >= {(0, int(first[0][0])), (1, int(again[0]))}, seen
    assert (1, int(first[1][0])) not in seen
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    assert len(restart_reports(err)) == 1 and "boom in P1's first life" in err
    assert sorted(line for line in p.lines if line.startswith("CLEANUP")) == [
        "CLEANUP 0", "CLEANUP 1"]


@pytest.mark.skipif(not hasattr(gmploop, "Policy"), reason="no asyncio policies here")
def test_policy_restarts_a_p_where_the_program_started_it(prog, tmp_path):
    # Under the policy a P is a fork of the program at its first loop; the one
    # started again resumes from that same point (asyncio.run makes its loop).
    p = prog("policy-serve-once", env={"GMPLOOP_RESTART": "1"},
             args=[str(tmp_path / "marker")])
    first = ready_lines(p)
    while True:
        line = p.readline()
        if line.startswith("READY 1 "):
            again = line.split()[2:]
            break
    assert again[0] != first[1][0] and again[1:] == first[1][1:]
    seen = answering_ps(int(again[1]))
    assert (1, int(again[0])) in seen and (1, int(first[1][0])) not in seen
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    assert len(restart_reports(err)) == 1
    assert "NOT REACHED" not in "\n".join(p.lines)


def test_without_restart_a_failure_still_ends_the_run(prog, tmp_path):
    p = prog("once", env={"GMPLOOP_RESTART": "0"}, args=[str(tmp_path / "marker")])
    code, err = p.finish()
    assert code == 1, err
    assert not restart_reports(err)
    assert "PFailedError" in err and "boom once in P1" in err


@pytest.mark.skipif(_runtime._pidfd_getfd is None,
                    reason="connection stealing needs Linux's pidfd_getfd")
def test_a_failing_ps_unstarted_connections_are_handed_to_other_ps(prog, tmp_path):
    p = prog("handback", env={"GMPLOOP_RESTART": "1"}, args=[str(tmp_path / "marker")])
    readies = ready_lines(p)
    port = int(readies[0][1])
    doomed = int(readies[1][0])

    async def burst(n):
        # The burst waits in the backlog until P1 polls (0.5 s) and accepts it in one
        # batch; the first connection it starts ends P1.
        async def one():
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"hi")
            try:
                data = await r.read()
            except ConnectionResetError:
                data = b""      # closed unread: the connection that ended P1
            w.close()
            return data.decode().split()
        return await asyncio.gather(*[one() for _ in range(n)])

    answers = asyncio.run(burst(8))
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    # One connection died with P1's first life; the other seven were given back and
    # answered by P0 or by P1's second life, none by the one that failed.
    assert sorted(len(a) for a in answers) == [0] + [2] * 7, (answers, err)
    assert all(int(a[1]) != doomed for a in answers if a), answers
    report = restart_reports(err)
    assert len(report) == 1, err
    assert "exit status 3, main called sys.exit; its 7 unstarted connections go to " \
        "other Ps" in report[0], err


def test_restart_true_restarts_ps_that_died_without_a_report(tmp_path):
    code = ("import gmploop, os, sys\n"
            "async def main():\n"
            "    p = os.environ['GMPLOOP_P']\n"
            "    try:\n"
            "        os.close(os.open(sys.argv[1] + p, os.O_CREAT | os.O_EXCL))\n"
            "    except FileExistsError:\n"
            "        return p\n"
            "    os._exit(7)\n"
            "print(gmploop.run(main, procs=2, restart=True))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    # Both Ps died at once without a report (os._exit): each was started again.
    assert out.returncode == 0, out.stderr
    assert out.stdout == "['0', '1']\n"
    assert sorted(r.split(" (pid")[0] for r in restart_reports(out.stderr)) == [
        "gmploop: P0", "gmploop: P1"]
    assert "exit status 7, without a report" in out.stderr


def test_resolve_restart(monkeypatch):
    monkeypatch.delenv("GMPLOOP_RESTART", raising=False)
    assert _runtime.resolve_restart(None) == 0
    assert _runtime.resolve_restart(False) == 0
    assert _runtime.resolve_restart(True) == _runtime.RESTART_DEFAULT
    assert _runtime.resolve_restart(3) == 3
    monkeypatch.setenv("GMPLOOP_RESTART", "4")
    assert _runtime.resolve_restart(None) == 4
    assert _runtime.resolve_restart(0) == 0
    for text, n in (("on", _runtime.RESTART_DEFAULT), ("off", 0), (" 2 ", 2)):
        monkeypatch.setenv("GMPLOOP_RESTART", text)
        assert _runtime.resolve_restart(None) == n
    monkeypatch.setenv("GMPLOOP_RESTART", "sometimes")
    with pytest.raises(ValueError, match="restart"):
        _runtime.resolve_restart(None)
    with pytest.raises(ValueError):
        _runtime.resolve_restart(-1)
    with pytest.raises(TypeError):
        _runtime.resolve_restart(1.5)

    async def main():
        return 1
    with pytest.raises(ValueError):
        gmploop.run(main, procs=1, restart=-1)
    with pytest.raises(TypeError):
        gmploop.run(main, procs=1, restart="3".encode())


@pytest.mark.skipif(not hasattr(gmploop, "Policy"), reason="no asyncio policies here")
def test_policy_with_procs_starts_the_ps_at_the_first_loop(prog):
    p = prog("policy")
    readies = ready_lines(p)
    assert len({r[1] for r in readies.values()}) == 1
    assert len({r[2] for r in readies.values()}) == 1
    port = int(next(iter(readies.values()))[1])
    assert {i for i, _ in answering_ps(port)} == {0, 1}
    p.proc.send_signal(signal.SIGTERM)
    code, err = p.finish()
    assert code == 128 + signal.SIGTERM, err
    assert sorted(line for line in p.lines if line.startswith("CLEANUP")) == [
        "CLEANUP 0", "CLEANUP 1"]
    assert "NOT REACHED" not in "\n".join(p.lines)


@pytest.mark.skipif(not hasattr(gmploop, "Policy"), reason="no asyncio policies here")
def test_policy_with_procs_reports_a_crashing_p(prog):
    p = prog("policy-crash")
    code, err = p.finish()
    assert code == 1, err
    assert "P1 (pid " in err and "ValueError: boom in P1" in err
    assert "CLEANUP 0" in p.lines


# ---------------------------------------------------------------------- in-process

def test_procs_needs_a_callable_not_a_coroutine():
    async def main():
        return 1
    coro = main()
    with pytest.raises(TypeError, match="main must be a callable"):
        gmploop.run(coro, procs=2)
    # It was closed, not left to warn "never awaited"; no P was started.
    assert coro.cr_frame is None


def test_procs_one_is_the_plain_loop():
    async def main():
        return type(asyncio.get_running_loop())
    assert gmploop.run(main, procs=1) is gmploop.Loop


def test_resolve_procs(monkeypatch):
    monkeypatch.delenv("GMPLOOP_PROCS", raising=False)
    assert _runtime.resolve_procs(None) == 1
    assert _runtime.resolve_procs(3) == 3
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count()
    assert _runtime.resolve_procs(0) == ncpu
    assert _runtime.resolve_procs("auto") == ncpu
    monkeypatch.setenv("GMPLOOP_PROCS", "4")
    assert _runtime.resolve_procs(None) == 4
    assert _runtime.resolve_procs(2) == 2      # the argument wins
    monkeypatch.setenv("GMPLOOP_PROCS", "auto")
    assert _runtime.resolve_procs(None) == ncpu
    with pytest.raises(ValueError):
        _runtime.resolve_procs(-1)
    with pytest.raises(ValueError):
        _runtime.resolve_procs("many")
    with pytest.raises(TypeError):
        _runtime.resolve_procs(2.0)


def test_gmploop_procs_from_the_environment(monkeypatch):
    monkeypatch.setenv("GMPLOOP_PROCS", "2")
    code = ("import gmploop, os\n"
            "async def main():\n"
            "    return os.environ['GMPLOOP_P']\n"
            "print(gmploop.run(main))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "['0', '1']\n"


def test_run_inside_a_running_loop_is_refused():
    async def outer():
        async def main():
            pass
        with pytest.raises(RuntimeError, match="running event loop"):
            gmploop.run(main, procs=2)
    asyncio.run(outer())


@pytest.mark.parametrize("status", [0, 3])
def test_sys_exit_in_a_p_is_that_ps_exit_status(status):
    code = ("import gmploop, os, sys\n"
            "async def main():\n"
            f"    if os.environ['GMPLOOP_P'] == '1': sys.exit({status})\n"
            "    return 5\n"
            "print(gmploop.run(main, procs=2))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    if status == 0:
        assert out.returncode == 0, out.stderr
        assert out.stdout == "[5, None]\n"
    else:
        assert out.returncode == 1
        assert "P1 (pid " in out.stderr and "exit status 3, main called sys.exit" in \
            out.stderr


def test_gmploop_listen_must_name_a_mode(monkeypatch):
    monkeypatch.setenv("GMPLOOP_LISTEN", "sometimes")

    async def main():
        pass

    with pytest.raises(ValueError, match="GMPLOOP_LISTEN"):
        gmploop.run(main, procs=2)


@pytest.mark.skipif(not hasattr(gmploop, "Policy"), reason="no asyncio policies here")
def test_policy_procs_none_reads_gmploop_procs(monkeypatch):
    monkeypatch.setenv("GMPLOOP_PROCS", "2")
    code = ("import asyncio, os, warnings, gmploop\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "asyncio.set_event_loop_policy(gmploop.Policy(procs=None))\n"
            "async def main():\n"
            "    os.write(1, f\"P{os.environ['GMPLOOP_P']}\\n\".encode())\n"
            "asyncio.run(main())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["P0", "P1"]


@pytest.mark.skipif(not hasattr(gmploop, "Policy"), reason="no asyncio policies here")
def test_policy_runs_aiohttp_run_app_on_every_p():
    pytest.importorskip("aiohttp")
    code = (
        "import asyncio, os, sys, time, warnings, gmploop\n"
        "from aiohttp import web\n"
        "warnings.simplefilter('ignore', DeprecationWarning)\n"
        "async def hello(request):\n"
        "    await request.read()\n"
        "    time.sleep(0.05)   # hold this P: concurrent clients reach the other\n"
        "    return web.Response(text=f\"{os.environ['GMPLOOP_P']} {os.getpid()}\")\n"
        "app = web.Application()\n"
        "app.add_routes([web.get('/', hello)])\n"
        "asyncio.set_event_loop_policy(gmploop.Policy(procs=2))\n"
        "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None,\n"
        "            access_log=None)\n"
        "os.write(1, f\"DONE {os.environ['GMPLOOP_P']}\\n\".encode())\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)        # not listening yet
        assert {i for i, _ in answering_ps(port, http=True)} == {0, 1}
        # run_app handles SIGINT itself: every P ends by itself, the program exits 0.
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert sorted(out.split("\n")[:-1]) == ["DONE 0", "DONE 1"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



# ---------------------------------------------------------------------- observability

@pytest.mark.parametrize("mode", ["stats", "policy-stats"])
def test_gmploop_stats_in_a_p_shows_every_p(prog, mode):
    # P i runs 1000 * (i + 1) callbacks (runtime_prog.py, 'stats'), then waits until
    # gmploop.stats() shows every P with its work done; P1 ends once it has seen P0's
    # last burst, and P0 then waits until P1 has dropped out. The same under
    # gmploop.Policy(procs=2).
    p = prog(mode)
    seen = {}
    while len(seen) < 2:
        line = p.readline()
        if line.startswith("STATS"):
            _, index, pid, rows = line.split(" ", 3)
            seen[int(index)] = (int(pid), json.loads(rows))
    code, err = p.finish()
    assert code == 0, err
    if mode == "stats":
        assert "RESULT [0, 1]" in p.lines, p.lines
    pids = {index: pid for index, (pid, _) in seen.items()}
    assert len(set(pids.values())) == 2 and p.proc.pid not in pids.values()
    for index, (pid, rows) in seen.items():
        assert [r[0] for r in rows] == [0, 1], rows            # every P, in P order
        assert {r[0]: r[1] for r in rows} == pids, rows         # each with its pid
        for p_index, _pid, callbacks, state, age in rows:
            assert callbacks >= 1000 * (p_index + 1), rows
            assert state in ("stopped", "poll", "run", "blocked"), rows
            assert age >= 0, rows
        own = rows[index]
        assert own[3] == "run" and own[4] < 1.0, rows           # taken by the caller now
    alone = next(line for line in p.lines if line.startswith("ALONE"))
    rows = json.loads(alone.split(" ", 2)[2])
    assert [r[0] for r in rows] == [0] and rows[0][2] >= 1000 + 5000, rows


TRACE_P = (r"p(\d): (?:pid=(\d+) state=(?:stopped|poll|run|blocked) runq=\d+ cb=(\d+) "
           r"iter=\d+ util=\d+% poll=\d+ms timers=\d+ fds=\d+ steals=\d+ slow=\d+"
           r"|starting|exited)")
TRACE_RUNTIME_RE = re.compile(rf"^gmploop: (\d+)ms pid=(\d+) procs=2 {TRACE_P} {TRACE_P}$")


def test_schedtrace_prints_one_line_for_all_ps(prog):
    # Each P runs 100 callbacks and a 5 ms sleep in turn for a second; sysmon=0: the
    # Ps publish their counters even with sysmon's reports off.
    p = prog("busy", env={"GMPLOOP_DEBUG": "schedtrace=100,sysmon=0"})
    code, err = p.finish()
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("gmploop: ")]
    # About ten in one second; generous bounds for a busy machine.
    assert 4 <= len(lines) <= 30, err
    parsed = []
    for ln in lines:
        m = TRACE_RUNTIME_RE.match(ln)
        assert m, ln
        parsed.append(m.groups())
    # One process prints them all, the supervisor: the Ps print none of their own.
    assert {int(g[1]) for g in parsed} == {p.proc.pid}, lines
    assert all(g[2] == "0" and g[5] == "1" for g in parsed), lines
    pids = {(i, int(g[3 + 3 * i])) for g in parsed for i in (0, 1) if g[3 + 3 * i]}
    assert {i for i, _ in pids} == {0, 1} and len(pids) == 2, lines    # a pid per P
    assert p.proc.pid not in {pid for _, pid in pids}
    for i in (0, 1):     # both Ps' callbacks were counted
        assert sum(int(g[4 + 3 * i] or 0) for g in parsed) > 1000, lines
    elapsed = [int(g[0]) for g in parsed]
    assert elapsed == sorted(elapsed)
    assert (elapsed[-1] - elapsed[0]) / (len(elapsed) - 1) >= 90, elapsed

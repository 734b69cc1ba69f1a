"""A program run by tests/test_runtime.py: gmploop.run(main, procs=N) in one of a few
behaviours, reporting on stdout what each P sees.

    python tests/runtime_prog.py MODE [PROCS]

Modes:
    serve      each P serves on 127.0.0.1 port 0 (one shared listener) and prints
               "READY <P> <pid> <port> <inode> <cpu>"; a connection is answered with
               "<P> <pid>" after the handler holds its P for 50 ms (time.sleep), so
               that concurrent clients reach every P; runs until signalled, then
               prints "CLEANUP <P>" from main's finally block.
    two        each P opens two servers on port 0 and prints "PORTS <P> <port> <port>".
    unix       each P serves on the Unix socket path argv[3] and prints "READY <P>
               <pid> <inode>"; answers as serve does; runs until signalled.
    reopen     each P opens a server on port 0, closes it, opens one on that port
               again and prints "REOPEN <P> <same inode: True/False> <port>".
    crash      P1 raises ValueError("boom in P1") once serving; P0 serves on.
    result     each P returns its index * 10; the supervisor prints the list.
    steal      P0 sleeps (time.sleep) 0.5 s and P1 1 s before they poll; starting
               P0's first connection blocks P0 for 2 s; a connection is answered
               "<P> <pid>" at its first data. Connections P0 accepted but had not
               started when it blocked are moved to P1 by the supervisor. Each P prints "STATS <P> <started>
               <stolen_out> <stolen_in>" when it is stopped.
    stats      P i runs STATS_WORK * (i + 1) callbacks, waits until gmploop.stats()
               shows every P with at least its work done, and prints "STATS <P> <pid>
               <json [[p, pid, callbacks, state, age in seconds], ...]>". Then P0 runs
               STATS_MARK callbacks more, which P1 waits to see before it returns, and
               waits until P1 has dropped out of gmploop.stats(): "ALONE 0 <json>".
    busy       each P runs 100 callbacks and a sleep(0.005) in turn for one second
               (for schedtrace).
    once       (restart tests; argv[3] a marker file) P1 raises ValueError("boom once
               in P1") if the marker does not exist, creating it; else each P returns
               its index * 10.
    always     P1 always raises ValueError("boom always in P1"); P0 waits for it.
    serve-once as serve, but on its first start (no marker argv[3]) P1 raises 0.3 s
               after READY, and is restarted if GMPLOOP_RESTART allows.
    handback   P0 sleeps 1.5 s and P1 0.5 s before they poll; on its first start (no
               marker argv[3]) P1 exits with sys.exit(3) while starting its first
               connection, leaving the rest of its accept batch unstarted; the
               connections are answered "<P> <pid>" at their first data.
    policy     as serve, but started as asyncio.set_event_loop_policy(
               gmploop.Policy(procs=PROCS)) and asyncio.run(serve()).
    policy-crash  as crash, under the policy.
    policy-stats  as stats, under the policy.
    policy-serve-once  as serve-once, under the policy.
"""
import asyncio
import json
import os
import pickle
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gmploop  # noqa: E402

MODE = sys.argv[1]
PROCS = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def say(line):
    """One line in one write(2), so that lines of two Ps never interleave."""
    os.write(1, (line + "\n").encode())


def me():
    # GMPLOOP_P is set in a P that is a process; this_p() says it in a thread too.
    from gmploop import _runtime
    return _runtime.this_p()


async def handle(reader, writer):
    await reader.read(100)
    time.sleep(0.05)        # hold this P, so the next connection goes elsewhere
    writer.write(f"{me()} {os.getpid()}\n".encode())
    await writer.drain()
    writer.close()


async def serve():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    sock = server.sockets[0]
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    say(f"READY {me()} {os.getpid()} {sock.getsockname()[1]} "
        f"{os.fstat(sock.fileno()).st_ino} {cpus}")
    try:
        await server.serve_forever()
    finally:
        say(f"CLEANUP {me()}")


async def two():
    a = await asyncio.start_server(handle, "127.0.0.1", 0)
    b = await asyncio.start_server(handle, "127.0.0.1", 0)
    say(f"PORTS {me()} {a.sockets[0].getsockname()[1]} "
        f"{b.sockets[0].getsockname()[1]}")
    a.close()
    b.close()


async def unix():
    server = await asyncio.start_unix_server(handle, sys.argv[3])
    sock = server.sockets[0]
    say(f"READY {me()} {os.getpid()} {os.fstat(sock.fileno()).st_ino}")
    try:
        await server.serve_forever()
    finally:
        say(f"CLEANUP {me()}")


async def reopen():
    a = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = a.sockets[0].getsockname()[1]
    inode = os.fstat(a.sockets[0].fileno()).st_ino
    a.close()
    await a.wait_closed()
    b = await asyncio.start_server(handle, "127.0.0.1", port)
    same = os.fstat(b.sockets[0].fileno()).st_ino == inode
    say(f"REOPEN {me()} {same} {port}")
    b.close()
    await b.wait_closed()


async def crash():
    if me() == 1:
        await asyncio.sleep(0.2)
        raise ValueError("boom in P1")
    say(f"READY {me()}")
    try:
        await asyncio.sleep(60)
    finally:
        say(f"CLEANUP {me()}")


class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(f"{me()} {os.getpid()}\n".encode())
        self.transport.close()


blocked_once = []


def answer_factory():
    if me() == 0 and not blocked_once:
        blocked_once.append(1)
        time.sleep(2)       # P0 stuck while starting its first connection
    return Answer()


async def steal():
    from gmploop import _runtime
    loop = asyncio.get_running_loop()
    server = await loop.create_server(answer_factory, "127.0.0.1", 0)
    say(f"READY {me()} {os.getpid()} {server.sockets[0].getsockname()[1]}")
    # Neither P polls for a while (the client's burst waits in the backlog); P0 wakes
    # first and accepts a batch.
    time.sleep(0.5 if me() == 0 else 1.0)
    try:
        await server.serve_forever()
    finally:
        st = _runtime.p_stats()
        ls = loop.stats()
        say(f"STATS {me()} {st['started']} {st['stolen_out']} {st['stolen_in']} "
            f"{ls.p} {ls.steals}")


async def result():
    return me() * 10


STATS_WORK = 1000
STATS_MARK = 5000


async def run_callbacks(n):
    """Run exactly n call_soon callbacks (and a task step or two)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [n]

    def one():
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    for _ in range(n):
        loop.call_soon(one)
    await done


async def stats_until(ok, timeout=20):
    """gmploop.stats() every 20 ms until ok(snapshots by P) or the timeout; the last
    RuntimeStats (checked by the test whether ok or not)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rs = gmploop.stats()
        if ok({s.p: s for s in rs}) or loop.time() > deadline:
            return rs
        await asyncio.sleep(0.02)


def stats_json(rs):
    now = time.monotonic()
    return json.dumps([[s.p, s.pid, s.callbacks, s.state, now - s.time] for s in rs])


async def stats():
    await run_callbacks(STATS_WORK * (me() + 1))
    rs = await stats_until(lambda by_p: all(
        i in by_p and by_p[i].callbacks >= STATS_WORK * (i + 1) for i in range(PROCS)))
    assert pickle.loads(pickle.dumps(rs)) == rs
    say(f"STATS {me()} {os.getpid()} {stats_json(rs)}")
    if me() == 0:
        await run_callbacks(STATS_MARK)
        rs = await stats_until(lambda by_p: list(by_p) == [0])
        say(f"ALONE 0 {stats_json(rs)}")
    else:
        await stats_until(lambda by_p: 0 in by_p and
                          by_p[0].callbacks >= STATS_WORK + STATS_MARK)
    return me()


async def busy():
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.0
    while loop.time() < end:
        await run_callbacks(100)
        await asyncio.sleep(0.005)


def first_start():
    """True once per program run: the marker file argv[3] did not exist yet."""
    try:
        os.close(os.open(sys.argv[3], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


async def once():
    if me() == 1 and first_start():
        raise ValueError("boom once in P1")
    await asyncio.sleep(0.2)
    return me() * 10


async def always():
    if me() == 1:
        await asyncio.sleep(0.1)
        raise ValueError("boom always in P1")
    await asyncio.sleep(60)


async def serve_once():
    crash_later = me() == 1 and first_start()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    sock = server.sockets[0]
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    say(f"READY {me()} {os.getpid()} {sock.getsockname()[1]} "
        f"{os.fstat(sock.fileno()).st_ino} {cpus}")
    if crash_later:
        await asyncio.sleep(0.3)
        raise ValueError("boom in P1's first life")
    try:
        await server.serve_forever()
    finally:
        say(f"CLEANUP {me()}")


def exiting_factory():
    if me() == 1 and first_start():
        sys.exit(3)         # out of the loop, with the rest of the batch unstarted
    return Answer()


async def handback():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(exiting_factory, "127.0.0.1", 0)
    say(f"READY {me()} {os.getpid()} {server.sockets[0].getsockname()[1]}")
    time.sleep(1.5 if me() == 0 else 0.5)
    await server.serve_forever()


if __name__ == "__main__" and MODE.startswith("policy"):
    asyncio.set_event_loop_policy(gmploop.Policy(procs=PROCS))
    asyncio.run({"policy-crash": crash, "policy-stats": stats,
                 "policy-serve-once": serve_once}.get(MODE, serve)())
    say("NOT REACHED in the supervisor")
elif __name__ == "__main__":
    main = {"serve": serve, "two": two, "crash": crash, "result": result,
            "steal": steal, "reopen": reopen, "unix": unix, "stats": stats,
            "busy": busy, "once": once, "always": always, "serve-once": serve_once,
            "handback": handback}[MODE]
    out = gmploop.run(main, procs=PROCS)
    say(f"RESULT {out!r}")

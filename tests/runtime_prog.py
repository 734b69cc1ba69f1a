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
    policy     as serve, but started as asyncio.set_event_loop_policy(
               gmploop.Policy(procs=PROCS)) and asyncio.run(serve()).
    policy-crash  as crash, under the policy.
"""
import asyncio
import os
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


if __name__ == "__main__" and MODE.startswith("policy"):
    asyncio.set_event_loop_policy(gmploop.Policy(procs=PROCS))
    asyncio.run(crash() if MODE == "policy-crash" else serve())
    say("NOT REACHED in the supervisor")
elif __name__ == "__main__":
    main = {"serve": serve, "two": two, "crash": crash, "result": result,
            "steal": steal, "reopen": reopen, "unix": unix}[MODE]
    out = gmploop.run(main, procs=PROCS)
    say(f"RESULT {out!r}")

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
    crash      P1 raises ValueError("boom in P1") once serving; P0 serves on.
    result     each P returns its index * 10; the supervisor prints the list.
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
    return int(os.environ["GMPLOOP_P"])


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


async def crash():
    if me() == 1:
        await asyncio.sleep(0.2)
        raise ValueError("boom in P1")
    say(f"READY {me()}")
    try:
        await asyncio.sleep(60)
    finally:
        say(f"CLEANUP {me()}")


async def result():
    return me() * 10


if __name__ == "__main__" and MODE.startswith("policy"):
    asyncio.set_event_loop_policy(gmploop.Policy(procs=PROCS))
    asyncio.run(crash() if MODE == "policy-crash" else serve())
    say("NOT REACHED in the supervisor")
elif __name__ == "__main__":
    main = {"serve": serve, "two": two, "crash": crash, "result": result}[MODE]
    out = gmploop.run(main, procs=PROCS)
    say(f"RESULT {out!r}")

#!/usr/bin/env python3
"""The runtime's measurements: scaling with procs, and a stuck P.

    python bench/runtime_bench.py [--duration 5] [--connections 64] [--repeat 3]
                                  [--skip-scaling] [--skip-stuck] [--threads]

1. Scaling. bench/runtime_server.py with procs=1 and procs=2, each loaded by
   `wrk -t1 -c64 -d5s` (another process) on /cpu (a handler that burns about 200 us
   of CPU in Python) and on / (hello world); requests/s and the ratio procs=2/procs=1.
   Each configuration runs --repeat times, interleaved (1, 2, 1, 2, ...), and the
   ratio is of the best runs: on a shared machine a run can only lose to other work.
2. A stuck P. procs=2; one request to /sleep blocks one P for 2 s (time.sleep). Meanwhile
   four client threads of this process send GET / requests, each on a new connection
   (Connection: close), one after another, for 1.5 s; their latencies, p50/p99/max.
   Once with the shared listener, once with GMPLOOP_LISTEN=reuseport (one SO_REUSEPORT
   listener per P: the kernel hashes connections to sockets, so about half wait for
   the stuck P).

3. With --threads, on a free-threaded Python with the GIL off (the thread runtime):
   part 1 with Ps that are threads (GMPLOOP_M=thread), next to CPython's own ceiling
   on that build: the same app on one plain asyncio loop in one thread, and on two
   plain asyncio loops in two threads (runtime_server.py --plain-threads; one
   SO_REUSEPORT listener each). Replaces parts 1 and 2.

Needs aiohttp, and wrk for part 1 (skipped, and said so, without it). Prints a Markdown
table per part. On a machine whose cores are shared with other work, req/s moves with
that work; run it when the machine is quiet and compare numbers of one run only.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "runtime_server.py")


class Server:
    def __init__(self, procs, listen="shared", m=None, plain=0):
        env = {**os.environ, "GMPLOOP_LISTEN": listen}
        if m is not None:
            env["GMPLOOP_M"] = m
        args = ["--plain-threads", str(plain)] if plain else ["--procs", str(procs)]
        self.proc = subprocess.Popen([sys.executable, SERVER, *args],
                                     env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        time.sleep(0.5)     # every P listening (reuseport: each binds its own socket)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def wrk(port, path, duration, connections):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=duration + 30)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {out.stdout}{out.stderr}")
    if "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        raise RuntimeError(f"wrk saw errors: {out.stdout}")
    return float(m.group(1)), out.stdout


HANDLERS = (("/cpu", "aiohttp, 200 us CPU per request"), ("/", "aiohttp, hello world"))


def best_rates(path, configs, duration, connections, repeat):
    """{config name: [req/s per run]}; configs: {name: Server kwargs}, run
    interleaved (every config once per round) so all see the same minutes."""
    rates = {name: [] for name in configs}
    for _ in range(repeat):
        for name, kwargs in configs.items():
            server = Server(**kwargs)
            try:
                wrk(server.port, path, 1, connections)          # warm up
                rates[name].append(wrk(server.port, path, duration, connections)[0])
            finally:
                server.stop()
    return rates


def scaling(duration, connections, repeat):
    if shutil.which("wrk") is None:
        print("scaling: skipped, wrk is not installed\n")
        return
    rows = []
    for path, name in HANDLERS:
        rates = best_rates(path, {1: {"procs": 1}, 2: {"procs": 2}}, duration,
                           connections, repeat)
        one, two = max(rates[1]), max(rates[2])
        rows.append((name, rates[1], rates[2], two / one))
    print(f"### Scaling: wrk -t1 -c{connections} -d{duration}s, requests/s "
          f"(best of {repeat}; every run listed)\n")
    print("| handler | procs=1 | procs=2 | procs=2 / procs=1 (best) |")
    print("|---|---:|---:|---:|")
    for name, one, two, ratio in rows:
        runs1 = " / ".join(f"{r:,.0f}" for r in one)
        runs2 = " / ".join(f"{r:,.0f}" for r in two)
        print(f"| {name} | {runs1} | {runs2} | {ratio:.2f}x |")
    print()


def thread_scaling(duration, connections, repeat):
    """Part 3: the thread runtime next to plain asyncio threads (see the docstring)."""
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        print("thread scaling: skipped, this Python runs with the GIL "
              "(the thread runtime needs a free-threaded build with the GIL off)\n")
        return
    if shutil.which("wrk") is None:
        print("thread scaling: skipped, wrk is not installed\n")
        return
    configs = {"gmploop procs=1": {"procs": 1, "m": "thread"},
               "gmploop procs=2 (threads)": {"procs": 2, "m": "thread"},
               "asyncio, 1 thread": {"procs": 1, "plain": 1},
               "asyncio, 2 threads": {"procs": 1, "plain": 2}}
    print(f"### Thread runtime: wrk -t1 -c{connections} -d{duration}s, requests/s "
          f"(best of {repeat}; every run listed)\n")
    print("| handler | " + " | ".join(configs) + " | gmploop 2/1 | asyncio 2/1 |")
    print("|---|" + "---:|" * (len(configs) + 2))
    for path, name in HANDLERS:
        rates = best_rates(path, configs, duration, connections, repeat)
        best = {k: max(v) for k, v in rates.items()}
        cells = [" / ".join(f"{r:,.0f}" for r in rates[k]) for k in configs]
        g = best["gmploop procs=2 (threads)"] / best["gmploop procs=1"]
        a = best["asyncio, 2 threads"] / best["asyncio, 1 thread"]
        print(f"| {name} | " + " | ".join(cells) + f" | {g:.2f}x | {a:.2f}x |")
    print()


def get(port, path, timeout=10.0):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad answer: {data[:100]!r}")
    return time.perf_counter() - t0


def stuck(listen, window=1.5, clients=4):
    server = Server(2, listen)
    try:
        for _ in range(20):
            get(server.port, "/")
        sleeper = threading.Thread(target=get, args=(server.port, "/sleep"))
        sleeper.start()
        time.sleep(0.1)         # the /sleep request has reached its P
        latencies = []
        end = time.perf_counter() + window

        def client():
            while time.perf_counter() < end:
                latencies.append(get(server.port, "/"))

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sleeper.join()
    finally:
        server.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies), statistics.median(latencies), p99, latencies[-1]


def stuck_table():
    print("### A stuck P: procs=2, one P in time.sleep(2); GET / with Connection: close, "
          "4 client threads, 1.5 s\n")
    print("| listeners | requests | p50 | p99 | max |")
    print("|---|---:|---:|---:|---:|")
    for listen in ("shared", "reuseport"):
        n, p50, p99, worst = stuck(listen)
        print(f"| {listen} | {n} | {p50 * 1e3:.1f} ms | {p99 * 1e3:.1f} ms | "
              f"{worst * 1e3:.1f} ms |")
    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-stuck", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--threads", action="store_true")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, CPUs {sorted(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    if args.threads:
        thread_scaling(args.duration, args.connections, args.repeat)
    elif not args.skip_scaling:
        scaling(args.duration, args.connections, args.repeat)
    if not args.skip_stuck and not args.threads:
        stuck_table()

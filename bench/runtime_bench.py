#!/usr/bin/env python3
"""The runtime's measurements: scaling with procs, and a stuck P, next to gunicorn+uvloop.

    python bench/runtime_bench.py [--duration 5] [--connections 64] [--repeat 3]
                                  [--skip-scaling] [--skip-stuck] [--skip-gunicorn]
                                  [--cpu] [--threads]

One command, one run, every table: the servers compared are

* gmploop procs=1 and procs=2 (bench/runtime_server.py, gmploop.run(main, procs=N)),
  the latter with the shared listener (the default) and with GMPLOOP_LISTEN=reuseport
  (one SO_REUSEPORT listener per P);
* the same aiohttp application run by gunicorn with aiohttp's uvloop worker
  (aiohttp.GunicornUVLoopWebWorker), 1 and 2 workers: the prefork server an aiohttp
  application would otherwise be deployed with. This script binds the socket and hands
  it to gunicorn (--bind fd://N), so the port is known before gunicorn starts.

1. Scaling. Each server is loaded by `wrk -t1 -c64 -d5s` (another process) on /cpu (a
   handler that burns about 200 us of CPU in Python) and on / (hello world);
   requests/s of every run and of the best. Each configuration runs --repeat times,
   interleaved (all servers once, then all again, ...), and ratios are of the best
   runs: on a shared machine a run can only lose to other work.
2. A stuck P (or worker). Two Ps (workers); one request to /sleep blocks one of them
   for 2 s (time.sleep). Meanwhile four client threads of this process send GET /
   requests, each on a new connection (Connection: close), one after another, for
   1.5 s; their latencies, p50/p99/max, and how many waited longer than 100 ms.

3. With --cpu, where the CPU goes (what bounds procs=2 / procs=1 on a small machine):
   gmploop procs=1 and procs=2 under wrk on / (hello world), and the CPU time each
   process used meanwhile (from /proc and wait4): every P, the supervisor and wrk, as
   CPU-seconds per second and CPU-microseconds per request. If the Ps cost as much per
   request with two Ps as with one, the runtime adds nothing per request, and what is
   missing from 2x is CPU that the Ps did not get (wrk's share, other work); the
   bound that wrk's share sets is printed under the table.

4. With --threads, on a free-threaded Python with the GIL off (the thread runtime):
   part 1 with Ps that are threads (GMPLOOP_M=thread), next to CPython's own ceiling
   on that build: the same app on one plain asyncio loop in one thread, and on two
   plain asyncio loops in two threads (runtime_server.py --plain-threads; one
   SO_REUSEPORT listener each). Replaces parts 1 and 2.

Needs aiohttp; wrk for parts 1, 3 and 4 (skipped, and said so, without it); gunicorn and uvloop
for the gunicorn rows (left out, and said so, without them). Prints Markdown tables.
On a machine whose cores are shared with other work, req/s moves with that work; run
it when the machine is quiet and compare numbers of one run only.
"""
import argparse
import importlib.util
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "runtime_server.py")
START_TIMEOUT = 30.0    # seconds a server may take to come up on a loaded machine
SLOW = 0.100            # a request slower than this waited for the stuck P


class _Server:
    """A server process (self.proc), its stderr in self.log."""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


class GmploopServer(_Server):
    """bench/runtime_server.py: gmploop.run(main, procs=procs)."""

    def __init__(self, procs, listen="shared", m=None, plain=0):
        env = {**os.environ, "GMPLOOP_LISTEN": listen}
        if m is not None:
            env["GMPLOOP_M"] = m
        args = ["--plain-threads", str(plain)] if plain else ["--procs", str(procs)]
        # stderr (sysmon's report of the blocked P, among others) is kept out of the
        # tables, and shown if the server fails to start.
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, SERVER, *args],
                                     env=env, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.proc.kill()
            self.proc.wait()
            self.log.seek(0)
            text = self.log.read()
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{text}")
        self.port = int(line.split()[1])
        time.sleep(0.5)     # every P listening (reuseport: each binds its own socket)


class GunicornServer(_Server):
    """The same application under gunicorn with aiohttp's uvloop worker."""

    def __init__(self, workers):
        self.log = tempfile.TemporaryFile("w+")
        sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
        self.port = sock.getsockname()[1]
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "runtime_server:gunicorn_app",
                 "--chdir", HERE, "--bind", f"fd://{sock.fileno()}",
                 "--worker-class", "aiohttp.GunicornUVLoopWebWorker",
                 "--workers", str(workers), "--graceful-timeout", "5",
                 "--log-level", "info"],
                pass_fds=[sock.fileno()], stdout=subprocess.DEVNULL, stderr=self.log)
        finally:
            sock.close()    # gunicorn holds it now
        try:
            self._wait_ready(workers)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, workers):
        # Every worker has booted (gunicorn logs each) and one answers; then a pause,
        # as for gmploop, so that the last one booted is serving too.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.log.seek(0)
            text = self.log.read()
            if text.count("Booting worker") >= workers:
                try:
                    get(self.port, "/", timeout=2.0)
                    break
                except OSError:
                    pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{text}")
            time.sleep(0.1)
        time.sleep(0.5)


def have_gunicorn():
    """None if the gunicorn rows can run, else why not."""
    missing = [m for m in ("gunicorn", "uvloop") if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def servers(with_gunicorn):
    """(name, factory) of every server compared, in table order."""
    out = [("gmploop procs=1", lambda: GmploopServer(1)),
           ("gmploop procs=2", lambda: GmploopServer(2)),
           ("gmploop procs=2, reuseport", lambda: GmploopServer(2, "reuseport"))]
    if with_gunicorn:
        out += [("gunicorn+uvloop, 1 worker", lambda: GunicornServer(1)),
                ("gunicorn+uvloop, 2 workers", lambda: GunicornServer(2))]
    return out


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


def run_rates(path, configs, duration, connections, repeat):
    """{name: [req/s of each run]} of configs, (name, factory) pairs, run interleaved
    (every server once per round) so that all see the same minutes."""
    rates = {name: [] for name, _ in configs}
    for _ in range(repeat):
        for name, make in configs:
            server = make()
            try:
                wrk(server.port, path, 1, connections)          # warm up
                rates[name].append(wrk(server.port, path, duration, connections)[0])
            finally:
                server.stop()
    return rates


def scaling(duration, connections, repeat, with_gunicorn):
    if shutil.which("wrk") is None:
        print("scaling: skipped, wrk is not installed\n")
        return
    configs = servers(with_gunicorn)
    for path, what in (("/cpu", "aiohttp, 200 us CPU per request"),
                       ("/", "aiohttp, hello world")):
        rates = run_rates(path, configs, duration, connections, repeat)
        best = {name: max(runs) for name, runs in rates.items()}
        base = best["gmploop procs=1"]
        print(f"### Scaling, {what} (`GET {path}`): wrk -t1 -c{connections} "
              f"-d{duration}s, requests/s (best of {repeat}; every run listed)\n")
        print("| server | runs | best | vs gmploop procs=1 |")
        print("|---|---:|---:|---:|")
        for name, runs in rates.items():
            listed = " / ".join(f"{r:,.0f}" for r in runs)
            print(f"| {name} | {listed} | {best[name]:,.0f} | "
                  f"{best[name] / base:.2f}x |")
        print()
        summary = [f"gmploop procs=2 / procs=1: "
                   f"{best['gmploop procs=2'] / base:.2f}x"]
        if with_gunicorn:
            g1 = best["gunicorn+uvloop, 1 worker"]
            g2 = best["gunicorn+uvloop, 2 workers"]
            summary += [f"gunicorn+uvloop 2 workers / 1 worker: {g2 / g1:.2f}x",
                        f"gmploop procs=2 / gunicorn+uvloop 2 workers: "
                        f"{best['gmploop procs=2'] / g2:.2f}x"]
        print("; ".join(summary) + "\n")


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def cpu_split(procs, duration, connections):
    """Requests/s and {process: CPU seconds} over one wrk run on /."""
    server = GmploopServer(procs)
    try:
        wrk(server.port, "/", 1, connections)                   # warm up
        ps = children(server.proc.pid) if procs > 1 else []
        watched = {"supervisor" if ps else "P0": server.proc.pid}
        watched.update({f"P{i}": pid for i, pid in enumerate(ps)})
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s",
             f"http://127.0.0.1:{server.port}/"], stdout=subprocess.PIPE, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - t0
        used = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
        used["wrk"] = usage.ru_utime + usage.ru_stime
    finally:
        server.stop()
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {out}")
    rate = float(m.group(1))
    return rate, {name: t / elapsed for name, t in used.items()}


def cpu_table(duration, connections):
    if shutil.which("wrk") is None or not os.path.exists("/proc/self/stat"):
        print("cpu: skipped, needs wrk and /proc\n")
        return
    ncpu = len(os.sched_getaffinity(0))
    print(f"### Where the CPU goes: gmploop, hello world, wrk -t1 -c{connections} "
          f"-d{duration}s; CPU-seconds per second of each process, and CPU-µs per "
          f"request\n")
    print("| procs | req/s | each P | Ps per request | supervisor | wrk | "
          "wrk per request |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    costs = {}
    for procs in (1, 2):
        rate, load = cpu_split(procs, duration, connections)
        ps = [load[name] for name in load if name.startswith("P")]
        costs[procs] = (sum(ps) / rate * 1e6, load["wrk"] / rate * 1e6)
        print(f"| {procs} | {rate:,.0f} | {', '.join(f'{v:.2f}' for v in ps)} | "
              f"{costs[procs][0]:.1f} µs | {load.get('supervisor', 0.0):.3f} | "
              f"{load['wrk']:.2f} | {costs[procs][1]:.1f} µs |")
    # With the Ps and wrk on the same ncpu CPUs and nothing else running: one P is
    # bounded by its own CPU (wrk fits beside it), two Ps by the CPUs left after wrk.
    p_cost, wrk_cost = costs[1]
    bound = min(2.0, ncpu * p_cost / (p_cost + wrk_cost))
    print(f"\nOn {ncpu} CPUs shared with wrk, at these costs per request, procs=2 can be "
          f"at most {bound:.2f}x procs=1 ({ncpu} x {p_cost:.1f} / ({p_cost:.1f} + "
          f"{wrk_cost:.1f})).\n")


def thread_scaling(duration, connections, repeat):
    """Part 4: the thread runtime next to plain asyncio threads (see the docstring)."""
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        print("thread scaling: skipped, this Python runs with the GIL "
              "(the thread runtime needs a free-threaded build with the GIL off)\n")
        return
    if shutil.which("wrk") is None:
        print("thread scaling: skipped, wrk is not installed\n")
        return
    configs = [("gmploop procs=1", lambda: GmploopServer(1, m="thread")),
               ("gmploop procs=2 (threads)", lambda: GmploopServer(2, m="thread")),
               ("asyncio, 1 thread", lambda: GmploopServer(1, plain=1)),
               ("asyncio, 2 threads", lambda: GmploopServer(1, plain=2))]
    names = [name for name, _ in configs]
    print(f"### Thread runtime: wrk -t1 -c{connections} -d{duration}s, requests/s "
          f"(best of {repeat}; every run listed)\n")
    print("| handler | " + " | ".join(names) + " | gmploop 2/1 | asyncio 2/1 |")
    print("|---|" + "---:|" * (len(names) + 2))
    for path, name in (("/cpu", "aiohttp, 200 us CPU per request"),
                       ("/", "aiohttp, hello world")):
        rates = run_rates(path, configs, duration, connections, repeat)
        best = {k: max(v) for k, v in rates.items()}
        cells = [" / ".join(f"{r:,.0f}" for r in rates[k]) for k in names]
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


def stuck(make, window=1.5, clients=4):
    server = make()
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
    slow = sum(1 for t in latencies if t > SLOW)
    return len(latencies), statistics.median(latencies), p99, latencies[-1], slow


def stuck_table(with_gunicorn):
    print("### A stuck P: two Ps (workers), one in time.sleep(2); GET / with "
          "Connection: close, 4 client threads, 1.5 s\n")
    print(f"| server | requests | p50 | p99 | max | over {SLOW * 1e3:.0f} ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, make in servers(with_gunicorn):
        if name.endswith(("procs=1", "1 worker")):
            continue
        n, p50, p99, worst, slow = stuck(make)
        print(f"| {name} | {n} | {p50 * 1e3:.1f} ms | {p99 * 1e3:.1f} ms | "
              f"{worst * 1e3:.1f} ms | {slow} |")
    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-stuck", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-gunicorn", action="store_true")
    parser.add_argument("--cpu", action="store_true",
                        help="also part 3, where the CPU goes")
    parser.add_argument("--threads", action="store_true",
                        help="part 4 only: the thread runtime (free-threaded Python)")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, CPUs {sorted(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    why_not = "--skip-gunicorn" if args.skip_gunicorn else have_gunicorn()
    if why_not:
        print(f"gunicorn+uvloop rows left out: {why_not}\n")
    if args.threads:
        thread_scaling(args.duration, args.connections, args.repeat)
    elif not args.skip_scaling:
        scaling(args.duration, args.connections, args.repeat, not why_not)
    if not args.skip_stuck and not args.threads:
        stuck_table(not why_not)
    if args.cpu:
        cpu_table(args.duration, args.connections)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")

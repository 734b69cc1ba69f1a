"""The asyncio-behaviour suite (tests/compat, its gmploop rows) in every P of a runtime.

    python tests/compat_in_ps.py [--procs 2] [pytest args...]

Forks the Ps as gmploop.Policy(procs=N) does, and each P runs the whole suite at the
same time as the others, on loops that are the P's own (pinned to its CPU, labelled
with its index, publishing its stats, with its steal queue), so the runtime's
machinery is under every test while the tests check asyncio's behaviour. Each P binds
its own servers: a shared listener would be right for a program that opens the same
server on every P, but each P's tests open theirs at their own moments, and a client
of P0's test must reach P0's server. Each P's pytest output goes to
<tmpdir>/p<i>.txt, printed at the end; the exit status is 0 only if every P passed.
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--procs", type=int, default=2)
    args, pytest_args = parser.parse_known_args()
    outdir = tempfile.mkdtemp(prefix="gmploop-compat-ps-")
    sys.path.insert(0, ROOT)
    import gmploop
    from gmploop import _net, _runtime
    try:
        _runtime.fork_here(args.procs)      # returns in each P; the supervisor exits
    except SystemExit as exc:
        report(outdir, args.procs)
        raise SystemExit(exc.code)
    except BaseException:
        report(outdir, args.procs)
        raise
    p = _runtime.this_p()
    _net.listener_source = None     # this P's tests bind their own servers (above)
    out = os.open(os.path.join(outdir, f"p{p}.txt"),
                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    loop = gmploop.new_event_loop()
    try:
        assert loop.stats().p == p, "a loop made in a P is not labelled with its index"
    finally:
        loop.close()
    import pytest
    os.chdir(ROOT)
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/compat",
                          "-k", "gmploop", *pytest_args]))


def report(outdir, procs):
    for i in range(procs):
        path = os.path.join(outdir, f"p{i}.txt")
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = ["(no output)"]
        print(f"=== P{i}: {path}")
        print("\n".join(lines[-15:]))


if __name__ == "__main__":
    main()

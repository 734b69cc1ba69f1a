"""Loop selection for the benchmarks: every benchmark runs once per loop, in one session.

The ``loop`` fixture is parametrized over LOOP_NAMES.  A loop whose module cannot be
imported is skipped with a reason naming it, and the session header (without -q) and the
end of the run say which loops are missing and why, so a table without gmploop never
passes for a full comparison.  Set GMPLOOP_BENCH_REQUIRE=gmploop (a comma-separated list
of names) to fail instead of skip, for a run whose purpose is to measure that loop.

The size and round knobs (GMPLOOP_BENCH_SCALE, _BUDGET, _ROUNDS) are read by
test_loop_overhead.py; README.md lists them.

GMPLOOP_BENCH_OBSERVE=1 adds the loop "gmploop-bare": gmploop with sysmon and the timed
polls off (servers.py, bare_gmploop_loop), beside "gmploop" as users get it (sysmon on,
stats timed), so that one run measures what observing a loop costs.
"""
import asyncio
import importlib
import os
import sys

import pytest

OBSERVE = os.environ.get("GMPLOOP_BENCH_OBSERVE", "") not in ("", "0")
LOOP_NAMES = ("asyncio", "uvloop", "rloop", "gmploop") + (("gmploop-bare",) if OBSERVE else ())


def _load(name):
    """Return (factory, version) for a loop name, or raise ImportError saying why not."""
    if name == "asyncio":
        return asyncio.new_event_loop, "stdlib, Python " + sys.version.split()[0]
    if name == "gmploop-bare":
        from servers import bare_gmploop_loop
        factory, version = _load("gmploop")
        return bare_gmploop_loop, version + " (sysmon and timed polls off)"
    mod = importlib.import_module(name)
    factory = getattr(mod, "new_event_loop", None)
    if factory is None:
        # A source checkout without built extensions imports as a bare package.
        raise ImportError(
            f"{name} imported from {getattr(mod, '__file__', None) or list(mod.__path__)} "
            f"but has no new_event_loop (not built?)"
        )
    return factory, getattr(mod, "__version__", "unknown version")


_LOADED = {}


def loop_factory(name):
    """(factory, version) for name; raises ImportError (cached) if it cannot be loaded."""
    if name not in _LOADED:
        try:
            _LOADED[name] = _load(name)
        except ImportError as exc:
            _LOADED[name] = exc
    got = _LOADED[name]
    if isinstance(got, ImportError):
        raise got
    return got


def _required():
    return {n.strip() for n in os.environ.get("GMPLOOP_BENCH_REQUIRE", "").split(",") if n.strip()}


def pytest_report_header(config):
    lines = []
    for name in LOOP_NAMES:
        try:
            _, version = loop_factory(name)
            lines.append(f"  {name:8} {version}")
        except ImportError as exc:
            lines.append(f"  {name:8} NOT IMPORTABLE, its benchmarks are skipped: {exc}")
    scale = os.environ.get("GMPLOOP_BENCH_SCALE", "1")
    rounds = os.environ.get("GMPLOOP_BENCH_ROUNDS", "per benchmark")
    return ["gmploop bench loops:"] + lines + [f"  GMPLOOP_BENCH_SCALE={scale} rounds={rounds}"]


def pytest_terminal_summary(terminalreporter):
    missing = []
    for name in LOOP_NAMES:
        try:
            loop_factory(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        terminalreporter.write_line(
            "LOOPS SKIPPED, not importable: " + "; ".join(missing), yellow=True, bold=True
        )


@pytest.fixture(params=LOOP_NAMES)
def loop_name(request):
    name = request.param
    try:
        loop_factory(name)
    except ImportError as exc:
        if name in _required():
            pytest.fail(f"{name} is required (GMPLOOP_BENCH_REQUIRE) but not importable: {exc}")
        pytest.skip(f"{name} not importable: {exc}")
    return name


@pytest.fixture
def loop(loop_name, benchmark):
    """A fresh loop from loop_name's factory, made outside the timed region, closed after."""
    factory, version = loop_factory(loop_name)
    lp = factory()
    benchmark.extra_info["loop"] = loop_name
    benchmark.extra_info["loop_version"] = version
    benchmark.extra_info["loop_class"] = f"{type(lp).__module__}.{type(lp).__qualname__}"
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.run_until_complete(lp.shutdown_asyncgens())
            lp.close()


@pytest.fixture(scope="session")
def c_programs():
    """The C programs built so far in this session, by stem (test_network.c_program)."""
    return {}

"""gmploop's pytest plugin (gmploop/pytest_plugin.py), and the fixture overrides the README
gives for aiohttp's and anyio's pytest plugins, each run in a pytest of its own (pytester).

Installed gmploop registers the plugin through its pytest11 entry point; run from a
checkout that is not installed, the inner runs load it with -p, which is the same module.
"""
import importlib.metadata
import os
import sys

import pytest

import gmploop

pytest_plugins = ["pytester"]

GMPLOOP_HOME = os.path.dirname(os.path.dirname(os.path.abspath(gmploop.__file__)))


def plugin_args():
    for ep in importlib.metadata.entry_points(group="pytest11"):
        if ep.value == "gmploop.pytest_plugin":
            return []
    return ["-p", "gmploop.pytest_plugin"]


@pytest.fixture
def pt(pytester, monkeypatch):
    # Inner runs in a subprocess import the gmploop under test, and know nothing of
    # this project's pytest configuration.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [GMPLOOP_HOME, os.environ.get("PYTHONPATH")])))
    return pytester


def run(pt, *args):
    return pt.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", *args,
                                   timeout=100)


ASYNC_TESTS = """
import asyncio
import pytest
import pytest_asyncio

EXPECTED = {expected!r}


def loop_name():
    loop = type(asyncio.get_running_loop())
    return f"{{loop.__module__}}.{{loop.__qualname__}}"


@pytest_asyncio.fixture
async def server():
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield srv, loop_name()
    srv.close()
    await srv.wait_closed()


@pytest.mark.asyncio
async def test_loop():
    assert loop_name() == EXPECTED


@pytest.mark.asyncio
async def test_streams_through_an_async_fixture(server):
    srv, fixture_loop = server
    assert fixture_loop == EXPECTED
    reader, writer = await asyncio.open_connection(*srv.sockets[0].getsockname())
    writer.write(b"ping")
    assert await reader.read() == b"ping"
    writer.close()
    await writer.wait_closed()


def test_sync_tests_are_untouched():
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
"""


@pytest.fixture
def pytest_asyncio():
    return pytest.importorskip("pytest_asyncio")


@pytest.mark.timeout(110)
def test_option_runs_pytest_asyncio_tests_on_gmploop(pt, pytest_asyncio):
    pt.makepyfile(ASYNC_TESTS.format(expected="gmploop.Loop"))
    result = run(pt, "--gmploop", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["gmploop *: pytest-asyncio tests run on gmploop.Loop",
                                 "*::test_loop PASSED*"])


@pytest.mark.timeout(110)
def test_ini_setting_runs_pytest_asyncio_tests_on_gmploop(pt, pytest_asyncio):
    pt.makeini("[pytest]\ngmploop = true\n")
    pt.makepyfile(ASYNC_TESTS.format(expected="gmploop.Loop"))
    run(pt).assert_outcomes(passed=3)


@pytest.mark.timeout(110)
def test_plugin_is_inert_unless_switched_on(pt, pytest_asyncio):
    pt.makeini("[pytest]\ngmploop = false\n")
    pt.makepyfile(ASYNC_TESTS.format(expected="asyncio.unix_events._UnixSelectorEventLoop"))
    result = run(pt)
    result.assert_outcomes(passed=3)
    # (An installed gmploop is named in pytest's list of plugins, switched on or not.)
    assert "run on gmploop.Loop" not in result.stdout.str()


@pytest.mark.timeout(110)
def test_conftest_hook_wins_and_can_offer_several_loops(pt, pytest_asyncio):
    pt.makeconftest("""
import asyncio
import gmploop

def pytest_asyncio_loop_factories(config, item):
    return {"asyncio": asyncio.new_event_loop, "gmploop": gmploop.new_event_loop}
""")
    pt.makepyfile("""
import asyncio
import pytest

@pytest.mark.asyncio
async def test_loop(request):
    loop = type(asyncio.get_running_loop()).__name__
    expected = {"asyncio": "_UnixSelectorEventLoop", "gmploop": "Loop"}
    assert loop == expected[request.node.callspec.id]
""")
    result = run(pt, "--gmploop", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_loop?asyncio? PASSED*", "*test_loop?gmploop? PASSED*"])


@pytest.mark.timeout(110)
def test_without_pytest_asyncio_nothing_imports_it(pt):
    pt.makepyfile("""
import sys

def test_not_imported():
    assert "pytest_asyncio" not in sys.modules
    assert "gmploop.pytest_plugin" in sys.modules
""")
    run(pt, "-p", "no:asyncio").assert_outcomes(passed=1)


@pytest.mark.timeout(110)
def test_switching_on_without_pytest_asyncio_is_a_usage_error(pt):
    pt.makepyfile("def test_nothing(): pass\n")
    result = run(pt, "-p", "no:asyncio", "--gmploop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gmploop: --gmploop*pytest-asyncio is not active*"])


# ---- the README's fixture overrides for other pytest plugins ----

@pytest.mark.timeout(110)
def test_aiohttp_pytest_plugin_with_the_loop_fixture_override(pt):
    pytest.importorskip("aiohttp")
    pt.makeconftest("""
import pytest
from aiohttp.test_utils import loop_context

import gmploop

pytest_plugins = ["aiohttp.pytest_plugin"]


@pytest.fixture
def loop():
    with loop_context(gmploop.new_event_loop) as loop:
        yield loop
""")
    pt.makepyfile("""
import asyncio
from aiohttp import web


async def test_client_and_server_on_gmploop(aiohttp_client):
    async def hello(request):
        return web.Response(text=type(asyncio.get_running_loop()).__qualname__)

    app = web.Application()
    app.router.add_get("/", hello)
    client = await aiohttp_client(app)
    resp = await client.get("/")
    assert resp.status == 200
    assert await resp.text() == "Loop"
    assert type(asyncio.get_running_loop()).__module__ == "gmploop"
""")
    # aiohttp's plugin and pytest-asyncio both want to run coroutine tests; aiohttp's
    # documentation says to use one of them per run.
    run(pt, "-p", "no:asyncio").assert_outcomes(passed=1)


@pytest.mark.timeout(110)
def test_anyio_pytest_plugin_with_the_backend_fixture_override(pt):
    pytest.importorskip("anyio")
    pt.makeconftest("""
import pytest
import gmploop


@pytest.fixture
def anyio_backend():
    return "asyncio", {"loop_factory": gmploop.new_event_loop}
""")
    pt.makepyfile("""
import asyncio
import anyio
import pytest


@pytest.mark.anyio
async def test_on_gmploop():
    await anyio.sleep(0.001)
    assert type(asyncio.get_running_loop()).__module__ == "gmploop"
""")
    run(pt, "-p", "no:asyncio").assert_outcomes(passed=1)

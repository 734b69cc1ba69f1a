"""pytest plugin: run a project's pytest-asyncio tests on gmploop with one line.

Installing gmploop registers this module with pytest (the ``pytest11`` entry point named
``gmploop``). It does nothing until it is switched on, either for one run::

    pytest --gmploop

or for the project, in its pytest configuration::

    [tool.pytest.ini_options]       # pyproject.toml; in pytest.ini: [pytest]
    gmploop = true

Switched on, it answers pytest-asyncio's ``pytest_asyncio_loop_factories`` hook with
``{"gmploop": gmploop.new_event_loop}``, so every test and fixture that pytest-asyncio
runs gets a gmploop loop, made by the factory rather than by an event loop policy. A
``pytest_asyncio_loop_factories`` in the project's own conftest.py is asked first and
wins (the hook takes the first answer); it can offer gmploop next to other loops to run
each test on all of them.

Why the hook is registered only when switched on: pytest-asyncio treats any
implementation of its hook as a request to parametrize every asyncio test by loop
factory, so an implementation that is merely present, even one that answered "no
opinion", would change every run. Hence the answering object is registered from
``pytest_configure``, and only there.

The plugin never imports pytest-asyncio: with pytest-asyncio absent or blocked
(``-p no:asyncio``) it stays inert, and switching it on is a usage error that says what
is missing. aiohttp's own pytest plugin (``loop`` and ``aiohttp_client`` fixtures) and
anyio's (``anyio_backend``) take their loop from a fixture, not from this hook; the
README shows the two-line fixture that puts each of them on gmploop.
"""
import pytest

import gmploop

HOOK = "pytest_asyncio_loop_factories"


def pytest_addoption(parser):
    group = parser.getgroup("gmploop", "gmploop event loop")
    group.addoption(
        "--gmploop", action="store_true", default=None, dest="gmploop",
        help="run pytest-asyncio's tests and fixtures on gmploop event loops")
    parser.addini(
        "gmploop", type="bool", default=False,
        help="run pytest-asyncio's tests and fixtures on gmploop event loops")


def enabled(config):
    """True if this run asked for gmploop, on the command line or in its ini file."""
    option = config.getoption("gmploop")
    return bool(config.getini("gmploop")) if option is None else option


class GMPLoopFactories:
    """The object registered with pytest when the plugin is switched on."""

    # Last, so that an implementation in the project's conftest.py, registered before or
    # after this one, is asked first; the hook takes the first answer that is not None.
    @pytest.hookimpl(trylast=True)
    def pytest_asyncio_loop_factories(self, config, item):
        return {"gmploop": gmploop.new_event_loop}


def pytest_configure(config):
    if not enabled(config):
        return
    # pytest-asyncio declares the hook in its pytest_addoption, which has run by now.
    if not hasattr(config.hook, HOOK):
        raise pytest.UsageError(
            "gmploop: --gmploop (or the 'gmploop' ini setting) runs pytest-asyncio's "
            "tests on gmploop, but pytest-asyncio is not active in this run, or is too "
            f"old to have the {HOOK} hook (pip install 'pytest-asyncio>=1.4')")
    config.pluginmanager.register(GMPLoopFactories(), "gmploop-loop-factories")


def pytest_report_header(config):
    if enabled(config):
        return f"gmploop {gmploop.__version__}: pytest-asyncio tests run on gmploop.Loop"
    return None

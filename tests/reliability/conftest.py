"""The fault and abuse suite runs each row on asyncio's loop (the bar) and on gmploop.

The fixtures and hooks are the compat suite's (``tests/compat/conftest.py``): a fresh
loop per test, a check that no fd was left open and no error was logged unasked, a
watchdog that stops a hung loop, a default timeout, and ``xfail_loop`` for a row one
loop fails. Only the set of loops differs: uvloop is left out by default
(``GMPLOOP_RELIABILITY_UVLOOP=1`` adds it), because these rows judge gmploop against
asyncio, not against a third loop.
"""

import os

import pytest

from compat import conftest as _compat
from compat.conftest import loop, loop_factory  # noqa: F401  (fixtures, used by name)

LOOP_IDS = ("asyncio", "gmploop")
if os.environ.get("GMPLOOP_RELIABILITY_UVLOOP") == "1":
    LOOP_IDS = ("asyncio", "uvloop", "gmploop")


def pytest_configure(config):
    _compat.pytest_configure(config)


def pytest_collection_modifyitems(config, items):
    _compat.apply_loop_marks(items, "reliability")


pytest_pyfunc_call = _compat.pytest_pyfunc_call


@pytest.fixture(params=LOOP_IDS)
def loop_name(request):
    return request.param

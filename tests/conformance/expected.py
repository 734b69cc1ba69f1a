"""Known failures of CPython's asyncio tests, per loop, each with a one-line reason.

Keys are test ids as the runner prints them: ``<module>.<Class>.<test>``, where
the module is the test_asyncio module (``test_events``, not
``test_events_subprocess``) and bound mixin classes carry the names that
modules.py gives them (``EventLoopTests``, ``SubprocessTests``, ``SockTests``,
...).  A key may be an ``fnmatch`` pattern (``test_events.SubprocessTests.*``).

A value is either the reason, or ``{"reason": ..., "python": ["3.11", ...]}``
to expect the failure only on those Python versions.

Rules:
* gmploop's list holds only tests that cannot pass on any loop other than
  asyncio's own, because they reach into asyncio's private internals (patch
  ``loop._selector``, ``BaseEventLoop`` methods, ``_run_once`` internals, ...)
  or test an asyncio-only API.  Real gmploop bugs are never listed here: they
  fail the run until fixed.
* The runner exits non-zero on any failure not listed for the loop, and
  prints listed tests that now pass ("unexpectedly passing -- remove from list").
"""

EXPECTED = {
    "asyncio": {},
    "uvloop": {},
    "gmploop": {},
}

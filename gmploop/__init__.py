"""gmploop: an asyncio event loop in Cython, built on the ideas of Go's runtime.

Entry points::

    asyncio.run(main(), loop_factory=gmploop.new_event_loop)    # Python 3.12+
    with asyncio.Runner(loop_factory=gmploop.new_event_loop) as r: r.run(main())
    gmploop.run(main())                                         # like uvloop.run
    asyncio.set_event_loop_policy(gmploop.Policy())              # where policies exist
"""

import asyncio as _asyncio
import sys as _sys
import warnings as _warnings

from . import _loop
from ._net import NetMixin as _NetMixin
from ._poller import BACKEND as _BACKEND

__all__ = ("Loop", "new_event_loop", "run", "Policy", "install")
__version__ = "0.1.0.dev0"


class Loop(_NetMixin, _loop.Loop, _asyncio.AbstractEventLoop):
    """An asyncio event loop: one P of gmploop (run queue, timers, netpoller).

    Behaves as asyncio's own loop does; see asyncio's documentation of
    AbstractEventLoop for each method.
    """


def new_event_loop() -> Loop:
    """Return a new gmploop event loop (a zero-argument loop factory)."""
    return Loop()


def run(main, *, debug=None):
    """Run a coroutine (or a zero-argument coroutine function) on a new gmploop loop
    until it completes, the way asyncio.run does; return its result."""
    if callable(main) and not _asyncio.iscoroutine(main):
        main = main()
    with _asyncio.Runner(loop_factory=new_event_loop, debug=debug) as runner:
        return runner.run(main)


# Policies: deprecated in Python 3.14 and gone in 3.16. Policy exists wherever asyncio
# still has the base class, and is built from the private name 3.14 moved it to, so
# that importing gmploop never warns: asyncio itself warns where the user calls its
# deprecated policy functions.
_policy_base = (getattr(_asyncio.events, "BaseDefaultEventLoopPolicy", None)
                or getattr(_asyncio.events, "_BaseDefaultEventLoopPolicy", None))

if _policy_base is not None:

    class Policy(_policy_base):
        """An asyncio event loop policy whose loops are gmploop loops.

        asyncio.set_event_loop_policy(gmploop.Policy())
        """

        def __init__(self):
            if _sys.version_info >= (3, 14):
                _warnings.warn(
                    "gmploop.Policy is deprecated as asyncio's event loop policies "
                    "are; use asyncio.run(main(), loop_factory=gmploop.new_event_loop) "
                    "or gmploop.run(main())", DeprecationWarning, stacklevel=2)
            super().__init__()

        def _loop_factory(self):
            return new_event_loop()

    def install():
        """Make gmploop the default loop: asyncio.set_event_loop_policy(Policy())."""
        _asyncio.set_event_loop_policy(Policy())

else:  # Python without event loop policies

    def __getattr__(name):
        if name in ("Policy", "install"):
            raise AttributeError(
                f"gmploop.{name} is not available: this Python has no asyncio event "
                f"loop policies; use asyncio.run(main(), "
                f"loop_factory=gmploop.new_event_loop) or gmploop.run(main())")
        raise AttributeError(f"module 'gmploop' has no attribute {name!r}")

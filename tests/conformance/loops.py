"""Install a chosen event loop under CPython's asyncio tests, and count its loops.

The tests get their loops in three ways, and each must yield the loop under test:

1. ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner()`` and
   ``unittest.IsolatedAsyncioTestCase``: all go through the current event loop
   policy.  The runner installs a policy whose ``new_event_loop`` returns the
   chosen loop.  Every test_asyncio module calls
   ``asyncio.set_event_loop_policy(None)`` in ``tearDownModule`` (and some
   tests do so in ``tearDown``); the next ``get_event_loop_policy()`` then
   builds a fresh ``asyncio.DefaultEventLoopPolicy()``, looked up by name from
   the ``asyncio`` package (3.11-3.13; ``_DefaultEventLoopPolicy`` on 3.14).
   So that name is rebound too, and a reset policy comes back as ours.
   ``Installation.ensure()`` re-checks both before every test and repairs
   (and reports) anything a previous test left behind.
2. Mixin test classes that ask ``self.create_event_loop()`` / ``self.new_loop()``
   (test_events, test_sock_lowlevel, ...): modules.py binds them to
   ``Installation.factory``.
3. Loops the tests build themselves (``test_utils.TestLoop`` with virtual time,
   ``asyncio.BaseEventLoop()`` with a mocked selector, ``asyncio.EventLoop``,
   ``loop_factory=`` of their own): these never reach the loop under test, and
   the runner must know it.

Accounting: every loop handed out through (1) or (2) is recorded by a
``LoopRecorder``.  A test "touched" the loop under test if at least one loop of
the chosen kind was created while it ran (in any thread).  The same rule is
applied to every loop, asyncio's own included, so the comparison is fair.

All patching happens only in the runner's worker process.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import importlib
import threading
import warnings

LOOP_NAMES = ("asyncio", "uvloop", "gmploop")

# Names under which asyncio looks up the class of a fresh default policy.
_POLICY_NAMES = ("DefaultEventLoopPolicy", "_DefaultEventLoopPolicy")


def _policy_modules():
    mods = [asyncio, asyncio.events]
    for name in ("asyncio.unix_events", "asyncio.windows_events"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass
    return mods


# Captured before anything is patched, so asyncio's own policy stays reachable.
_ORIGINAL_POLICY_ATTRS = {
    (mod.__name__, attr): getattr(mod, attr)
    for mod in _policy_modules()
    for attr in _POLICY_NAMES
    if hasattr(mod, attr)
}


def _original_default_policy():
    for attr in _POLICY_NAMES:
        cls = _ORIGINAL_POLICY_ATTRS.get(("asyncio", attr))
        if cls is not None:
            return cls
    raise RuntimeError("this Python has no asyncio default event loop policy")


class LoopUnavailable(Exception):
    """The chosen loop cannot be imported or lacks its documented entry points."""


def _load_asyncio():
    policy = _original_default_policy()
    factory = policy._loop_factory  # SelectorEventLoop (ProactorEventLoop on Windows)
    return factory, factory, policy


def _load_uvloop():
    try:
        import uvloop
    except ImportError as exc:
        raise LoopUnavailable(f"uvloop is not importable: {exc!r}") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = uvloop.EventLoopPolicy
    return uvloop.new_event_loop, uvloop.Loop, policy


def _load_gmploop():
    try:
        import gmploop
    except ImportError as exc:
        raise LoopUnavailable(f"gmploop is not importable: {exc!r}") from exc
    missing = [n for n in ("new_event_loop", "Loop", "Policy") if not hasattr(gmploop, n)]
    if missing:
        raise LoopUnavailable(
            f"gmploop ({getattr(gmploop, '__file__', '?')}) lacks {', '.join(missing)}")
    return gmploop.new_event_loop, gmploop.Loop, gmploop.Policy


_LOADERS = {"asyncio": _load_asyncio, "uvloop": _load_uvloop, "gmploop": _load_gmploop}


class LoopRecorder:
    """Counts loops handed out by the installed factory and policy."""

    def __init__(self, loop_class):
        self.loop_class = loop_class
        self._lock = threading.Lock()
        self._chosen = 0
        self._other = []

    def record(self, loop):
        with self._lock:
            if isinstance(loop, self.loop_class):
                self._chosen += 1
            else:
                self._other.append(type(loop).__qualname__)
        return loop

    def take(self):
        """Return (loops of the chosen kind, [other kinds]) since the last take()."""
        with self._lock:
            chosen, other = self._chosen, self._other
            self._chosen, self._other = 0, []
        return chosen, other


class Installation:
    def __init__(self, name, raw_factory, loop_class, policy_class, recorder):
        self.name = name
        self.raw_factory = raw_factory
        self.loop_class = loop_class
        self.policy_class = policy_class
        self.recorder = recorder

    def factory(self):
        """Zero-argument factory for mixin test classes (create_event_loop/new_loop)."""
        return self.recorder.record(self.raw_factory())

    def ensure(self):
        """Re-install after a test may have undone it; return notes on what was repaired."""
        notes = []
        for mod in _policy_modules():
            for attr in _POLICY_NAMES:
                if (mod.__name__, attr) in _ORIGINAL_POLICY_ATTRS and \
                        getattr(mod, attr, None) is not self.policy_class:
                    setattr(mod, attr, self.policy_class)
                    notes.append(f"{mod.__name__}.{attr} was rebound; restored")
        current = getattr(asyncio.events, "_event_loop_policy", None)
        if current is not None and not isinstance(current, self.policy_class):
            notes.append(f"a previous test left policy {type(current).__qualname__} "
                         "installed; reset")
            _set_policy(None)
        return notes


def _set_policy(policy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(policy)


def install(name):
    """Make ``name`` the loop that asyncio hands out in this process."""
    if name not in _LOADERS:
        raise ValueError(f"unknown loop {name!r}; choose from {', '.join(LOOP_NAMES)}")
    raw_factory, loop_class, base_policy = _LOADERS[name]()
    recorder = LoopRecorder(loop_class)

    class ConformancePolicy(base_policy):
        """The loop's own policy, with every loop it creates recorded."""

        def new_event_loop(self):
            return recorder.record(super().new_event_loop())

    ConformancePolicy.__qualname__ = ConformancePolicy.__name__ = \
        f"ConformancePolicy[{name}]"

    inst = Installation(name, raw_factory, loop_class, ConformancePolicy, recorder)
    inst.ensure()
    _set_policy(ConformancePolicy())
    # Prove it before any test runs: the policy path yields the chosen loop.
    probe = asyncio.new_event_loop()
    try:
        if not isinstance(probe, loop_class):
            raise LoopUnavailable(
                f"asyncio.new_event_loop() returned {type(probe)!r}, not {loop_class!r}")
    finally:
        probe.close()
    recorder.take()
    return inst

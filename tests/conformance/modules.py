"""Which CPython test_asyncio modules the runner knows, and how to load each one.

Most modules need nothing special: they get their loops from
``asyncio.new_event_loop()``/``asyncio.run()``/``IsolatedAsyncioTestCase``, which
loops.py redirects to the loop under test.

Some modules keep their loop-specific tests in mixins and bind them to concrete
classes per selector (``SelectorEventLoop(EpollSelector())`` and so on); those
concrete classes never touch the loop under test.  For them a ``Binding`` says
which mixins to bind to the loop under test's factory, and which concrete
classes to leave out.  To add a module, append its name to a list below; add a
``Binding`` only if it builds its own loops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import unittest
import warnings

PACKAGE = "test.test_asyncio"

# The loop core.  Modules that this Python does not have (test_staggered and
# test_eager_task_factory are 3.12+) are reported as unavailable, not failed.
CORE_MODULES = [
    "test_tasks",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_queues",
    "test_timeouts",
    "test_taskgroups",
    "test_waitfor",
    "test_context",
    "test_sock_lowlevel",
    "test_events",
    "test_pep492",
    "test_eager_task_factory",
    "test_runners",
    "test_staggered",
    "test_threads",
]

# Transports, TLS and subprocesses.
TRANSPORT_MODULES = [
    "test_events_subprocess",
    "test_streams",
    "test_server",
    "test_sendfile",
    "test_buffered_proto",
    "test_subprocess",
    "test_ssl",
    "test_sslproto",
]

# Both run by default (and in CI's gate).
ALL_MODULES = CORE_MODULES + TRANSPORT_MODULES
DEFAULT_MODULES = ALL_MODULES


@dataclasses.dataclass(frozen=True)
class Binding:
    """Bind mixins to the loop under test as one concrete TestCase class."""

    name: str                       # class name of the bound class (test ids use it)
    mixins: tuple[str, ...]         # attribute names in the module, MRO order
    base: str = "test_utils"        # "test_utils" -> test_utils.TestCase, "unittest"
    method: str = "create_event_loop"   # factory method the mixins call
    # Build the loop in setUp (for mixins that expect the class to do it).
    setup_loop: bool = False
    # Hide the test methods that come from these mixins (keep only their setUp).
    hide_tests_of: tuple[str, ...] = ()
    # Start each test from the policy's default child watcher (see
    # _reset_child_watcher).
    reset_child_watcher: bool = False


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
    name: str                       # runner's name for it (CLI, JSON, tables)
    module: str                     # test_asyncio module to import
    bindings: tuple[Binding, ...] = ()
    # Leave out the module's own TestCase classes that subclass any of these
    # (the per-selector concrete classes that the bindings replace).
    drop_subclasses_of: tuple[str, ...] = ()
    # Run only the bound classes, none of the module's own.
    only_bindings: bool = False


SPECS = {
    # Loop-specific tests live in EventLoopTestsMixin; the loop-independent
    # classes (handles, policies, get_event_loop) are not about the loop.
    "test_events": ModuleSpec(
        "test_events", "test_events",
        bindings=(Binding("EventLoopTests", ("EventLoopTestsMixin",)),),
        only_bindings=True),
    # SubprocessTestsMixin has no setUp of its own: borrow EventLoopTestsMixin's
    # (creates self.loop through create_event_loop) and hide its tests.
    # No child watcher is attached: the loop must handle its own children
    # (asyncio's loop falls back on its policy's default watcher).
    "test_events_subprocess": ModuleSpec(
        "test_events_subprocess", "test_events",
        bindings=(Binding("SubprocessTests", ("SubprocessTestsMixin", "EventLoopTestsMixin"),
                          hide_tests_of=("EventLoopTestsMixin",),
                          reset_child_watcher=True),),
        only_bindings=True),
    "test_sock_lowlevel": ModuleSpec(
        "test_sock_lowlevel", "test_sock_lowlevel",
        bindings=(Binding("SockTests", ("BaseSockTestsMixin",)),),
        drop_subclasses_of=("BaseSockTestsMixin",)),
    "test_sendfile": ModuleSpec(
        "test_sendfile", "test_sendfile",
        bindings=(Binding("SendfileTests", ("SendfileTestsBase",)),),
        drop_subclasses_of=("SendfileBase",)),
    "test_server": ModuleSpec(
        "test_server", "test_server",
        bindings=(Binding("StartServerTests", ("BaseStartServer",), base="unittest",
                          method="new_loop"),),
        drop_subclasses_of=("BaseStartServer",)),
    "test_buffered_proto": ModuleSpec(
        "test_buffered_proto", "test_buffered_proto",
        bindings=(Binding("BufferedProtocolTests", ("BaseTestBufferedProtocol",),
                          base="unittest", method="new_loop"),),
        drop_subclasses_of=("BaseTestBufferedProtocol",)),
    "test_sslproto": ModuleSpec(
        "test_sslproto", "test_sslproto",
        bindings=(Binding("StartTLSTests", ("BaseStartTLS",), base="unittest",
                          method="new_loop"),),
        drop_subclasses_of=("BaseStartTLS",)),
    # The watcher variants (Threaded/Safe/Fast/Pidfd/MultiLoop) exercise
    # asyncio's child watchers; one class with the loop's own subprocess support
    # replaces them.  The module's other classes stay.
    "test_subprocess": ModuleSpec(
        "test_subprocess", "test_subprocess",
        bindings=(Binding("SubprocessLoopTests", ("SubprocessMixin",), setup_loop=True,
                          reset_child_watcher=True),),
        drop_subclasses_of=("SubprocessMixin",)),
}


def spec_for(name):
    return SPECS.get(name) or ModuleSpec(name, name)


def available(name):
    """None if the module exists on this Python, else a reason."""
    spec = spec_for(name)
    try:
        found = importlib.util.find_spec(f"{PACKAGE}.{spec.module}")
    except ImportError as exc:
        return f"cannot import {PACKAGE}: {exc}"
    if found is None:
        return f"{PACKAGE}.{spec.module} does not exist on this Python"
    return None


def _reset_child_watcher():
    """Put the policy's child watcher back to its default, where there is one.

    On 3.11-3.13 asyncio's loop reaps children through a watcher kept in the
    policy, and the policy lives on from test to test.  CPython's own
    subprocess classes install a fresh watcher in every setUp; without that,
    a watcher a previous test left behind (test_subprocess.GenericWatcherTests
    leaves an inactive mock) breaks every later subprocess test on asyncio's
    loop.  ``set_child_watcher(None)`` makes the policy build its default
    watcher on next use.  Policies without watchers (uvloop's, gmploop's,
    3.14+) are left alone: those loops reap their own children.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        try:
            policy.set_child_watcher(None)
        except (NotImplementedError, AttributeError):
            pass


def _bind(mod, binding, installation):
    from test.test_asyncio import utils as test_utils

    mixins = tuple(getattr(mod, m) for m in binding.mixins)
    base = test_utils.TestCase if binding.base == "test_utils" else unittest.TestCase
    ns = {binding.method: lambda self: installation.factory(),
          "__module__": mod.__name__, "__qualname__": binding.name}
    if binding.setup_loop or binding.reset_child_watcher:
        def setUp(self):
            if binding.reset_child_watcher:
                _reset_child_watcher()
            super(cls, self).setUp()
            if binding.setup_loop:
                self.loop = installation.factory()
                self.set_event_loop(self.loop)
        ns["setUp"] = setUp
    cls = type(binding.name, mixins + (base,), ns)
    keep = set()
    for m in binding.mixins:
        if m not in binding.hide_tests_of:
            keep.update(n for n in dir(getattr(mod, m)) if n.startswith("test"))
    for m in binding.hide_tests_of:
        for n in dir(getattr(mod, m)):
            if n.startswith("test") and n not in keep:
                setattr(cls, n, None)   # the loader skips non-callable attributes
    return cls


def load_suite(name, installation, loader=None):
    """The unittest suite for runner module ``name``, bound to ``installation``."""
    loader = loader or unittest.TestLoader()
    spec = spec_for(name)
    mod = importlib.import_module(f"{PACKAGE}.{spec.module}")
    if not spec.bindings:
        return loader.loadTestsFromModule(mod)
    suite = unittest.TestSuite()
    if not spec.only_bindings:
        dropped = tuple(getattr(mod, m) for m in spec.drop_subclasses_of if hasattr(mod, m))
        for attr in dir(mod):
            obj = getattr(mod, attr)
            if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                    and not (dropped and issubclass(obj, dropped))):
                suite.addTests(loader.loadTestsFromTestCase(obj))
    for binding in spec.bindings:
        suite.addTests(loader.loadTestsFromTestCase(_bind(mod, binding, installation)))
    return suite

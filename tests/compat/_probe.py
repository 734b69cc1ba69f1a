"""A fourth loop for the connection tests: NetMixin over asyncio's selector loop.

ProbeLoop runs gmploop's connection and server layer (gmploop/_net.py) on asyncio's
own socket transports, which have the hooks the layer expects. A test module opts in
by importing ``loop_name`` and ``loop_factory`` from here, which then override the
conftest fixtures of the same names and add a ``probe`` parameter.
"""

import asyncio
import signal

import pytest

from gmploop._net import NetMixin

from . import conftest


class ProbeLoop(NetMixin, asyncio.SelectorEventLoop):
    """asyncio's selector loop with gmploop's connection layer on top."""

    # asyncio's sock_* refuse a transport's fd while the transport is registered in
    # _transports; the native sendfile path lends the socket by unregistering it.
    def _transport_sock_lend(self, transport):
        sock = transport._sock
        self._transports.pop(sock.fileno(), None)
        return sock

    def _transport_sock_reclaim(self, transport):
        sock = transport._sock
        if sock is not None:
            self._transports[sock.fileno()] = transport


LOOP_IDS = conftest.LOOP_IDS + ("probe",)


@pytest.fixture(params=LOOP_IDS)
def loop_name(request):
    return request.param


@pytest.fixture
def loop_factory(request, loop_name):
    """conftest's loop_factory, plus the probe."""
    factory = {
        "asyncio": lambda: conftest._asyncio_factory,
        "uvloop": lambda: conftest._uvloop_factory,
        "gmploop": conftest._gmploop_factory,
        "probe": lambda: ProbeLoop,
    }[loop_name]()
    if isinstance(factory, conftest._Unavailable):
        yield factory
        return
    conftest._warm_up(loop_name, factory)
    conftest._release_previous_failure()
    before = conftest._open_fds()
    wakeup_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_before)
    yield factory
    wakeup_after = signal.set_wakeup_fd(wakeup_before)
    if request.node.get_closest_marker("xfail") is not None:
        return
    import gc
    gc.collect()
    after = conftest._open_fds()
    leaked = {fd: t for fd, t in after.items() if fd not in before}
    assert len(after) <= len(before), f"{loop_name}: file descriptors leaked: {leaked}"
    assert wakeup_after == wakeup_before

"""Type stubs for gmploop's public API (the package ships them with py.typed)."""
import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, Literal, TypeVar, overload

_T = TypeVar("_T")

__all__ = ("Loop", "new_event_loop", "run", "Policy", "install", "go", "PFailedError",
           "stats", "LoopStats", "RuntimeStats")
__version__: Final[str]

class LoopStats:
    p: int
    pid: int
    time: float
    state: str
    iterations: int
    callbacks: int
    io_events: int
    timers_fired: int
    ready: int
    timers_pending: int
    fds_registered: int
    poll_ctl_calls: int
    poll_time: float
    busy_time: float
    slow_callbacks: int
    blocked_for: float
    steals: int
    stealable: int
    @property
    def utilization(self) -> float: ...
    def keys(self) -> list[str]: ...
    def __getitem__(self, key: str) -> Any: ...
    def get(self, key: str, default: Any = ...) -> Any: ...
    def items(self) -> list[tuple[str, Any]]: ...
    def as_dict(self) -> dict[str, Any]: ...

class RuntimeStats:
    ps: tuple[LoopStats, ...]
    @property
    def procs(self) -> int: ...
    def total(self, name: str) -> int | float: ...
    def __iter__(self) -> Iterator[LoopStats]: ...
    def __len__(self) -> int: ...

class Loop(asyncio.AbstractEventLoop):
    """An asyncio event loop: one P of gmploop (run queue, timers, netpoller)."""

    slow_callback_duration: float
    sysmon_threshold: float
    def __init__(self, *, sysmon: float | None = ...) -> None: ...
    def stats(self) -> LoopStats: ...

    # Loop implements every method of asyncio.AbstractEventLoop, with asyncio's
    # signatures. Typeshed declares them abstract there; naming each one here, bound to
    # asyncio's own declaration, makes Loop concrete for type checkers (gmploop.Loop()
    # type-checks) while every signature stays the one typeshed gives for this Python.
    add_reader = asyncio.AbstractEventLoop.add_reader
    add_signal_handler = asyncio.AbstractEventLoop.add_signal_handler
    add_writer = asyncio.AbstractEventLoop.add_writer
    call_at = asyncio.AbstractEventLoop.call_at
    call_exception_handler = asyncio.AbstractEventLoop.call_exception_handler
    call_later = asyncio.AbstractEventLoop.call_later
    call_soon = asyncio.AbstractEventLoop.call_soon
    call_soon_threadsafe = asyncio.AbstractEventLoop.call_soon_threadsafe
    close = asyncio.AbstractEventLoop.close
    connect_accepted_socket = asyncio.AbstractEventLoop.connect_accepted_socket
    connect_read_pipe = asyncio.AbstractEventLoop.connect_read_pipe
    connect_write_pipe = asyncio.AbstractEventLoop.connect_write_pipe
    create_connection = asyncio.AbstractEventLoop.create_connection
    create_datagram_endpoint = asyncio.AbstractEventLoop.create_datagram_endpoint
    create_future = asyncio.AbstractEventLoop.create_future
    create_server = asyncio.AbstractEventLoop.create_server
    create_task = asyncio.AbstractEventLoop.create_task
    create_unix_connection = asyncio.AbstractEventLoop.create_unix_connection
    create_unix_server = asyncio.AbstractEventLoop.create_unix_server
    default_exception_handler = asyncio.AbstractEventLoop.default_exception_handler
    get_debug = asyncio.AbstractEventLoop.get_debug
    get_exception_handler = asyncio.AbstractEventLoop.get_exception_handler
    get_task_factory = asyncio.AbstractEventLoop.get_task_factory
    getaddrinfo = asyncio.AbstractEventLoop.getaddrinfo
    getnameinfo = asyncio.AbstractEventLoop.getnameinfo
    is_closed = asyncio.AbstractEventLoop.is_closed
    is_running = asyncio.AbstractEventLoop.is_running
    remove_reader = asyncio.AbstractEventLoop.remove_reader
    remove_signal_handler = asyncio.AbstractEventLoop.remove_signal_handler
    remove_writer = asyncio.AbstractEventLoop.remove_writer
    run_forever = asyncio.AbstractEventLoop.run_forever
    run_in_executor = asyncio.AbstractEventLoop.run_in_executor
    run_until_complete = asyncio.AbstractEventLoop.run_until_complete
    sendfile = asyncio.AbstractEventLoop.sendfile
    set_debug = asyncio.AbstractEventLoop.set_debug
    set_default_executor = asyncio.AbstractEventLoop.set_default_executor
    set_exception_handler = asyncio.AbstractEventLoop.set_exception_handler
    set_task_factory = asyncio.AbstractEventLoop.set_task_factory
    shutdown_asyncgens = asyncio.AbstractEventLoop.shutdown_asyncgens
    shutdown_default_executor = asyncio.AbstractEventLoop.shutdown_default_executor
    sock_accept = asyncio.AbstractEventLoop.sock_accept
    sock_connect = asyncio.AbstractEventLoop.sock_connect
    sock_recv = asyncio.AbstractEventLoop.sock_recv
    sock_recv_into = asyncio.AbstractEventLoop.sock_recv_into
    sock_recvfrom = asyncio.AbstractEventLoop.sock_recvfrom
    sock_recvfrom_into = asyncio.AbstractEventLoop.sock_recvfrom_into
    sock_sendall = asyncio.AbstractEventLoop.sock_sendall
    sock_sendfile = asyncio.AbstractEventLoop.sock_sendfile
    sock_sendto = asyncio.AbstractEventLoop.sock_sendto
    start_tls = asyncio.AbstractEventLoop.start_tls
    stop = asyncio.AbstractEventLoop.stop
    subprocess_exec = asyncio.AbstractEventLoop.subprocess_exec
    subprocess_shell = asyncio.AbstractEventLoop.subprocess_shell
    time = asyncio.AbstractEventLoop.time

def new_event_loop() -> Loop: ...
# One P gives main's result; several Ps give the list of their results, in P order.
# (Without procs=, $GMPLOOP_PROCS may still ask for several Ps: a program that sets it
# should pass procs= and take the list.) restart: how many times a failed P is started
# again per 60 s (True: 5; None: $GMPLOOP_RESTART, else never); one P has no one to
# restart it, so with procs=1 it is only checked.
@overload
def run(
    main: Coroutine[Any, Any, _T] | Callable[[], Coroutine[Any, Any, _T]],
    *,
    debug: bool | None = None,
    procs: Literal[1] = 1,
    sysmon: float | None = None,
    restart: bool | int | None = None,
) -> _T: ...
@overload
def run(
    main: Callable[[], Coroutine[Any, Any, _T]],
    *,
    debug: bool | None = None,
    procs: int | str | None,
    sysmon: float | None = None,
    restart: bool | int | None = None,
) -> _T | list[_T]: ...
def stats() -> RuntimeStats: ...
def go(coro: Coroutine[Any, Any, Any]) -> None: ...

class PFailedError(RuntimeError):
    failures: list[tuple[int, int, str, str]]

if sys.version_info >= (3, 14):
    from asyncio.events import _BaseDefaultEventLoopPolicy as _PolicyBase
else:
    from asyncio.events import BaseDefaultEventLoopPolicy as _PolicyBase

if sys.version_info < (3, 16):
    class Policy(_PolicyBase):
        def __init__(
            self, *, procs: int | str | None = ..., restart: bool | int | None = ...
        ) -> None: ...
        def new_event_loop(self) -> Loop: ...
        if sys.version_info < (3, 14) and sys.platform != "win32":
            # Kept as asyncio's Unix policy keeps them, for code that calls them
            # (deprecated from 3.12); gmploop's own subprocesses need no watcher.
            def get_child_watcher(self) -> asyncio.AbstractChildWatcher: ...
            def set_child_watcher(self, watcher: asyncio.AbstractChildWatcher | None) -> None: ...

    def install() -> None: ...

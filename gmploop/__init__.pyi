import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")

__version__: str

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
    slow_callback_duration: float
    sysmon_threshold: float
    def __init__(self, *, sysmon: float | None = ...) -> None: ...
    def stats(self) -> LoopStats: ...

def new_event_loop() -> Loop: ...
def run(
    main: Coroutine[Any, Any, _T] | Callable[[], Coroutine[Any, Any, _T]],
    *,
    debug: bool | None = ...,
    sysmon: float | None = ...,
) -> _T: ...
def stats() -> RuntimeStats: ...

class Policy(asyncio.DefaultEventLoopPolicy):
    def __init__(self) -> None: ...
    def new_event_loop(self) -> Loop: ...

def install() -> None: ...

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

__version__: str

class Loop(asyncio.AbstractEventLoop):
    slow_callback_duration: float
    def __init__(self) -> None: ...
    def stats(self) -> dict[str, int]: ...

def new_event_loop() -> Loop: ...
def run(
    main: Coroutine[Any, Any, _T] | Callable[[], Coroutine[Any, Any, _T]],
    *,
    debug: bool | None = ...,
    procs: int | str | None = ...,
) -> _T | list[_T]: ...
def go(coro: Coroutine[Any, Any, Any]) -> None: ...

class PFailedError(RuntimeError):
    failures: list[tuple[int, int, str, str]]

class Policy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, *, procs: int | str | None = ...) -> None: ...
    def new_event_loop(self) -> Loop: ...

def install() -> None: ...

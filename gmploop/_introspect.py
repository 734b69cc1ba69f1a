"""What a loop is doing, in words: the task behind a handle, the stack of a loop's
thread, the expression it is blocked in, and the awaiting call graph of a task.

Sysmon (``_sysmon.py``) calls these from its own thread, about a loop whose thread is
inside a callback; debug mode calls ``log_call_graph`` from the loop's thread. So
nothing here may ask the loop anything: ``asyncio.current_task(loop)`` is a lookup
that is not safe from another thread, and the loop is busy anyway. What is read
instead is safe under the GIL from any thread: a handle's callback (a Task's step is a
bound method whose ``__self__`` is the Task), ``sys._current_frames()``, a frame's
code and last instruction, and a future's ``_callbacks``.
"""

import asyncio
import dis
import linecache
import logging
import reprlib
import sys
import traceback

from . import _config

logger = logging.getLogger("gmploop")

# The opcodes a frame is in while it waits for a function it called. On 3.11 a call is
# PRECALL then CALL; co_code holds the unspecialized opcodes, so CALL_BUILTIN_O and the
# other specializations read as CALL.
_CALL_OPS = frozenset(op for op in dis.opmap if op.startswith(("CALL", "PRECALL")))
_CALL_CODES = frozenset(dis.opmap[op] for op in _CALL_OPS)


def task_of(handle):
    """The asyncio Task a handle steps or wakes up, or None for a plain callback."""
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    return owner if isinstance(owner, asyncio.Task) else None


def describe_handle(handle):
    """The task's repr for a task step, else the handle's (as asyncio's loop names
    the callback in its slow-callback message)."""
    task = task_of(handle)
    return repr(task) if task is not None else repr(handle)


def thread_frames(thread_id, base_depth):
    """The frames of a thread, outermost first, without the base_depth outermost ones
    (the code that called run_forever: not part of any callback). [] if the thread
    has no Python frame (it ended)."""
    frame = sys._current_frames().get(thread_id)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    if base_depth <= len(frames):
        frames = frames[base_depth:]
    return frames


def callback_call(handle):
    """The handle's callback as a call expression, ``time.sleep(0.2)``: what a
    callback written in C is doing, since it has no frame of its own to show."""
    callback = getattr(handle, "_callback", None)
    args = getattr(handle, "_args", None) or ()
    module = getattr(callback, "__module__", None)
    name = getattr(callback, "__qualname__", None) or repr(callback)
    if module and module != "builtins":
        name = f"{module}.{name}"
    return f"{name}({', '.join(reprlib.repr(a) for a in args)})"


def frame_depth(frame):
    """How many frames frame and its callers make."""
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def stack_summary(frames, limit=_config.SYSMON_STACK_LIMIT):
    """A traceback.StackSummary of the innermost `limit` frames (outermost first)."""
    frames = frames[-limit:]
    return traceback.StackSummary.extract(
        ((f, f.f_lineno) for f in frames), lookup_lines=True, capture_locals=False)


def current_expression(frame):
    """(is_call, text): whether the frame is in a call it made, and the source of the
    expression it is executing (the call, such as ``time.sleep(0.5)``), or of its line
    when the positions are unknown."""
    code = frame.f_code
    i = frame.f_lasti
    raw = code.co_code
    is_call = 0 <= i < len(raw) and raw[i] in _CALL_CODES
    try:
        lineno, end_lineno, col, end_col = list(code.co_positions())[i // 2]
    except (IndexError, ValueError):
        lineno = end_lineno = col = end_col = None
    if lineno is None:
        lineno = frame.f_lineno
    filename = code.co_filename
    if col is None or end_col is None or end_lineno is None:
        return is_call, linecache.getline(filename, lineno).strip()
    lines = [linecache.getline(filename, n) for n in range(lineno, end_lineno + 1)]
    if not any(lines):
        return is_call, ""
    # Column offsets count UTF-8 bytes, as in tracebacks.
    first = lines[0].encode("utf-8")
    if len(lines) == 1:
        text = first[col:end_col].decode("utf-8", "replace")
    else:
        last = lines[-1].encode("utf-8")[:end_col].decode("utf-8", "replace")
        middle = "".join(lines[1:-1])
        text = first[col:].decode("utf-8", "replace") + middle + last
    return is_call, " ".join(text.split())


def awaited_by(future, depth=0, seen=None, limit=8):
    """Lines naming the tasks waiting for future, and the tasks waiting for those,
    from the done callbacks a task's wake-up leaves on what it awaits."""
    seen = set() if seen is None else seen
    lines = []
    if depth >= limit or id(future) in seen:
        return lines
    seen.add(id(future))
    for entry in getattr(future, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        waiter = getattr(callback, "__self__", None)
        if isinstance(waiter, asyncio.Task):
            lines.append("  " * depth + f"* {_task_label(waiter)}")
            lines.extend(awaited_by(waiter, depth + 1, seen, limit))
    return lines


def _task_label(task):
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"Task(name={task.get_name()!r}, coro={name}(), id={id(task):#x})"


def _suspended_chain(task):
    """(qualname, filename, lineno) of each coroutine of a suspended task, innermost
    first, following cr_await (gi_yieldfrom for generator-based awaitables)."""
    chain = []
    obj = task.get_coro()
    while obj is not None and len(chain) < _config.SYSMON_STACK_LIMIT:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        chain.append((getattr(code, "co_qualname", code.co_name), code.co_filename,
                      frame.f_lineno))
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    chain.reverse()
    return chain


def format_call_graph(task):
    """The awaiting call graph of a task that is not running: asyncio's
    format_call_graph where Python has it (3.14+), else the same shape from a walk of
    the coroutine chain and of the tasks that await it."""
    fmt = getattr(asyncio, "format_call_graph", None)
    if fmt is not None:
        try:
            return fmt(task)
        except Exception:       # a task asyncio cannot walk: use the walk below
            pass
    lines = [f"* {_task_label(task)}"]
    chain = _suspended_chain(task)
    if chain:
        lines.append("+ Call stack:")
        lines.extend(f"|   File {fn!r}, line {ln}, in {name}()" for name, fn, ln in chain)
    waiters = awaited_by(task)
    if waiters:
        lines.append("+ Awaited by:")
        lines.extend("   " + line for line in waiters)
    return "\n".join(lines)


def log_call_graph(task):
    """Debug mode: log where a slow task now waits and who waits for it."""
    try:
        graph = format_call_graph(task)
    except Exception:
        logger.exception("gmploop: cannot format the call graph of %r", task)
        return
    logger.warning("Call graph of the slow task:\n%s", graph)

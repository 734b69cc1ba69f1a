"""The context a callback runs in: asyncio's rules, checked where a loop could cut corners.

asyncio: ``call_soon(cb)`` (and ``call_later``, ``call_at``, ``add_reader``,
``call_soon_threadsafe``) without a context runs ``cb`` in a copy of the context current
at the call; ``cb`` sees the variables as they were then, its own sets are seen by no
other callback nor by the caller, and the handle's context (``get_context()``, 3.12+;
``_context`` before) is the one it ran in, sets included, for as long as the handle
lives. A handle that runs more than once (a reader) keeps one context across runs.

gmploop does not copy the context per handle (see 'Contexts without copies' in
gmploop/_handles.pyx): these tests pin every way the difference could show.
"""

import asyncio
import contextvars
import gc
import sys
import threading
import weakref

import pytest

from .support import run_iterations, socketpair

cvar = contextvars.ContextVar("cvar", default="default")

NO_CONTEXT_ACCESSOR = pytest.mark.xfail_loop(
    "uvloop", reason="uvloop's Handle exposes neither get_context() nor _context")


def context_of(handle):
    """The handle's context: get_context() where asyncio has it (3.12+), else _context."""
    if sys.version_info >= (3, 12):
        return handle.get_context()
    return handle._context


def test_callbacks_see_the_context_at_call_time_not_at_run_time(loop):
    seen = []
    token = cvar.set("first")
    try:
        loop.call_soon(lambda: seen.append(cvar.get()))
        cvar.set("second")
        loop.call_soon(lambda: seen.append(cvar.get()))
        cvar.set("third")
        run_iterations(loop, 1)
        assert seen == ["first", "second"]
        assert cvar.get() == "third"
    finally:
        cvar.reset(token)


def test_sets_stay_in_their_callback(loop):
    # Many callbacks from one context, each setting the variable: none sees another's
    # set, whether the previous callback returned normally or raised.
    seen = []

    def setter(i):
        seen.append(cvar.get())
        cvar.set(i)
        if i % 3 == 0:
            raise ZeroDivisionError(i)

    loop.set_exception_handler(lambda lp, ctx: None)
    for i in range(30):
        loop.call_soon(setter, i)
    run_iterations(loop, 1)
    assert seen == ["default"] * 30
    assert cvar.get() == "default"


def test_sets_stay_in_their_timer_callback(loop):
    seen = []

    def setter(i):
        seen.append(cvar.get())
        cvar.set(i)

    for i in range(10):
        loop.call_later(0, setter, i)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert seen == ["default"] * 10


def test_task_made_in_a_callback_inherits_its_sets(loop):
    seen = []

    async def child():
        seen.append(cvar.get())

    def cb():
        cvar.set("from cb")
        loop.create_task(child())

    loop.call_soon(cb)
    loop.call_soon(lambda: seen.append(cvar.get()))
    run_iterations(loop, 3)
    assert seen == ["default", "from cb"]


@NO_CONTEXT_ACCESSOR
def test_context_asked_for_before_the_run_is_the_one_it_runs_in(loop):
    seen = []
    token = cvar.set("at call")
    try:
        h = loop.call_soon(lambda: (seen.append(cvar.get()), cvar.set("by cb")))
    finally:
        cvar.reset(token)
    ctx = context_of(h)
    assert isinstance(ctx, contextvars.Context)
    assert ctx[cvar] == "at call"
    ctx.run(cvar.set, "set through the handle's context")
    run_iterations(loop, 1)
    assert seen == ["set through the handle's context"]
    assert context_of(h) is ctx
    assert ctx[cvar] == "by cb"


@NO_CONTEXT_ACCESSOR
def test_context_asked_for_after_the_run_holds_the_callbacks_sets(loop):
    h = loop.call_soon(cvar.set, "by cb")
    t = loop.call_later(0, cvar.set, "by timer")
    loop.run_until_complete(asyncio.sleep(0.005))
    assert context_of(h)[cvar] == "by cb"
    assert context_of(t)[cvar] == "by timer"
    assert context_of(h) is context_of(h)
    assert cvar.get() == "default"


@NO_CONTEXT_ACCESSOR
def test_context_taken_during_the_run_is_the_live_one(loop):
    # A callback that takes its own handle's context sees its later sets in it, and the
    # next callback (from the same caller context) does not run in that object.
    handles = []
    kept = []

    def first():
        ctx = context_of(handles[0])
        kept.append(ctx)
        cvar.set("after taking it")

    def second():
        kept.append(context_of(handles[1]))
        kept.append(cvar.get())

    handles.append(loop.call_soon(first))
    handles.append(loop.call_soon(second))
    run_iterations(loop, 1)
    first_ctx, second_ctx, second_saw = kept
    assert first_ctx[cvar] == "after taking it"
    assert first_ctx is not second_ctx
    assert second_saw == "default"
    assert context_of(handles[0]) is first_ctx


@NO_CONTEXT_ACCESSOR
def test_weakly_referenced_context_stays_the_handles(loop):
    handles = []
    refs = []

    def first():
        refs.append(weakref.ref(context_of(handles[0])))
        cvar.set("first")

    def second():
        refs.append(weakref.ref(context_of(handles[1])))
        cvar.set("second")

    handles.append(loop.call_soon(first))
    handles.append(loop.call_soon(second))
    run_iterations(loop, 1)
    gc.collect()
    a, b = refs[0](), refs[1]()
    assert a is context_of(handles[0]) and a[cvar] == "first"
    assert b is context_of(handles[1]) and b[cvar] == "second"
    del a, b
    handles.clear()
    gc.collect()
    assert refs[0]() is None and refs[1]() is None


@NO_CONTEXT_ACCESSOR
def test_nested_handle_run_has_its_own_context(loop):
    # A callback that runs another handle by hand (Handle._run): the inner callback runs
    # in its own context, inside the outer one's run, and neither sees the other's sets.
    seen = []
    handles = []

    def outer():
        cvar.set("outer")
        handles[0]._run()
        handles[0].cancel()     # it ran by hand; its own turn is dropped
        seen.append(("outer", cvar.get()))

    token = cvar.set("caller")
    try:
        loop.call_soon(outer)
    finally:
        cvar.reset(token)
    handles.append(loop.call_soon(lambda: (seen.append(("inner", cvar.get())),
                                           cvar.set("inner"))))
    run_iterations(loop, 1)
    assert seen == [("inner", "default"), ("outer", "outer")]
    assert context_of(handles[0])[cvar] == "inner"


def test_reader_keeps_one_context_across_runs(loop):
    # asyncio copies the context once, at add_reader: each run sees the previous run's
    # set, and the caller sees none of them.
    with socketpair() as (a, b):
        seen = []
        b.send(b"x")          # stays unread: the level-triggered reader runs each turn

        def reader():
            n = cvar.get()
            seen.append(n)
            cvar.set(0 if n == "default" else n + 1)
            if len(seen) == 4:
                loop.remove_reader(a)

        loop.add_reader(a, reader)
        try:
            run_iterations(loop, 8)
        finally:
            loop.remove_reader(a)
        assert seen == ["default", 0, 1, 2]
        assert cvar.get() == "default"


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="the handler runs in the failing handle's context since 3.12")
def test_handler_sees_what_the_failing_callback_set(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(cvar.get()))

    def fails():
        cvar.set("set before raising")
        raise ZeroDivisionError

    loop.call_soon(fails)
    loop.call_soon(lambda: seen.append(cvar.get()))
    run_iterations(loop, 1)
    assert seen == ["set before raising", "default"]


def test_threadsafe_call_captures_the_calling_threads_context(loop):
    seen = []

    def fresh_thread():
        # A thread that never touched a context variable has no context of its own yet.
        loop.call_soon_threadsafe(lambda: seen.append(("fresh", cvar.get())))

    def setting_thread():
        cvar.set("thread")
        loop.call_soon_threadsafe(lambda: seen.append(("set", cvar.get())))

    for target in (fresh_thread, setting_thread):
        th = threading.Thread(target=target)
        th.start()
        th.join()
    run_iterations(loop, 1)
    assert seen == [("fresh", "default"), ("set", "thread")]
    assert cvar.get() == "default"


def test_callbacks_of_two_loops_in_two_threads_keep_their_contexts(loop_factory):
    # Two loops, each on its own thread, interleaving callbacks (the GIL switches between
    # them mid-callback): every callback sees only its own caller's value.
    errors = []

    def worker(factory, name):
        loop = factory()
        try:
            async def main():
                cvar.set(name)
                out = []

                def cb(i):
                    if cvar.get() != name:
                        out.append((i, cvar.get()))
                    cvar.set(f"{name}-{i}")
                    sum(range(2000))   # long enough for the GIL to move between threads

                for i in range(2000):
                    loop.call_soon(cb, i)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                return out

            errors.extend(loop.run_until_complete(main()))
        finally:
            loop.close()

    threads = [threading.Thread(target=worker, args=(loop_factory, n)) for n in "ab"]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []

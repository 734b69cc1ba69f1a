"""create_future, create_task, task factories, and asyncio's task introspection."""

import asyncio
import contextvars
import re
import sys

import pytest

from .support import run

cvar = contextvars.ContextVar("cvar", default="default")


def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    fut.cancel()


def test_create_future_and_task_from_another_running_loop(loop, loop_factory):
    # A loop's create_future/create_task called while a different loop is running in
    # this thread: the future and the task belong to the loop asked, not to the one
    # running.
    async def coro():
        return 5

    other = loop_factory()
    made = {}
    try:
        async def inside_other():
            made["fut"] = loop.create_future()
            made["task"] = loop.create_task(coro())

        other.run_until_complete(inside_other())
    finally:
        other.close()
    assert made["fut"].get_loop() is loop
    assert made["task"].get_loop() is loop
    made["fut"].set_result(1)
    assert run(loop, made["task"]) == 5
    assert made["fut"].result() == 1


def test_create_task_returns_a_real_task(loop):
    async def coro():
        return 7

    async def main():
        task = loop.create_task(coro())
        assert isinstance(task, asyncio.Task)
        assert task.get_loop() is loop
        return await task

    assert run(loop, main()) == 7


def test_create_task_name(loop):
    async def coro():
        pass

    async def main():
        named = loop.create_task(coro(), name="my-task")
        unnamed = loop.create_task(coro())
        await asyncio.gather(named, unnamed)
        return named.get_name(), unnamed.get_name()

    named, unnamed = run(loop, main())
    assert named == "my-task"
    assert re.fullmatch(r"Task-\d+", unnamed)


def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "task ctx")

    async def coro():
        value = cvar.get()
        cvar.set("changed in task")
        return value

    async def main():
        return await loop.create_task(coro(), context=ctx)

    assert run(loop, main()) == "task ctx"
    assert ctx[cvar] == "changed in task"
    assert cvar.get() == "default"


def test_create_task_copies_current_context(loop):
    async def coro():
        return cvar.get()

    async def main():
        cvar.set("in main")
        task = loop.create_task(coro())
        cvar.set("after create_task")
        return await task

    assert run(loop, main()) == "in main"


def test_current_task_and_all_tasks(loop):
    seen = {}

    async def child(ready):
        ready.set()
        await asyncio.sleep(10)

    async def main():
        ready = asyncio.Event()
        me = asyncio.current_task()
        other = loop.create_task(child(ready), name="child")
        await ready.wait()
        seen["me"] = me
        seen["all"] = asyncio.all_tasks()
        seen["all_loop"] = asyncio.all_tasks(loop)
        seen["current_loop"] = asyncio.current_task(loop)
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other
        seen["other"] = other

    run(loop, main())
    assert isinstance(seen["me"], asyncio.Task)
    assert seen["current_loop"] is seen["me"]
    assert {seen["me"], seen["other"]} <= seen["all"]
    assert seen["all"] == seen["all_loop"]
    assert seen["other"].cancelled()


def test_current_task_is_none_in_plain_callback(loop):
    seen = []

    def cb():
        seen.append(asyncio.current_task())
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    assert seen == [None]


def test_tasks_interleave_in_creation_order(loop):
    seen = []

    async def worker(name):
        for i in range(3):
            seen.append((name, i))
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(loop.create_task(worker(n)) for n in "abc"))

    run(loop, main())
    assert seen == [(n, i) for i in range(3) for n in "abc"]


def test_task_cancel(loop):
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        task = loop.create_task(sleeper())
        await asyncio.sleep(0)
        task.cancel("why")
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    task = run(loop, main())
    assert task.cancelled()


def test_get_set_task_factory(loop):
    assert loop.get_task_factory() is None

    def factory(loop, coro, **kwargs):
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None


def test_set_task_factory_rejects_non_callable(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory(1)
    assert loop.get_task_factory() is None


class MyTask(asyncio.Task):
    pass


def test_task_factory_is_used_by_every_task_api(loop):
    calls = []

    def factory(loop_, coro, **kwargs):
        calls.append((loop_, kwargs))
        return MyTask(coro, loop=loop_, **kwargs)

    loop.set_task_factory(factory)

    async def coro():
        return 1

    async def main():
        t1 = loop.create_task(coro(), name="named")
        t2 = asyncio.create_task(coro())
        t3 = asyncio.ensure_future(coro())
        await asyncio.gather(t1, t2, t3)
        return t1, t2, t3

    tasks = run(loop, main())
    assert all(type(t) is MyTask for t in tasks)
    assert tasks[0].get_name() == "named"
    assert all(lp is loop for lp, _ in calls)


@pytest.mark.xfail_loop("uvloop", reason="always calls the factory with context= (and "
                        "eager_start= on 3.13), so a (loop, coro) factory breaks")
def test_two_argument_task_factory(loop):
    # asyncio documents the factory signature as (loop, coro); context is passed only
    # when the caller gives one.
    def factory(loop_, coro):
        return MyTask(coro, loop=loop_)

    loop.set_task_factory(factory)

    async def coro():
        return "two-arg"

    async def main():
        task = loop.create_task(coro())
        assert type(task) is MyTask
        return await task

    assert run(loop, main()) == "two-arg"


def test_task_factory_gets_context(loop):
    calls = []

    def factory(loop_, coro, context=None, **kwargs):
        calls.append(context)
        return asyncio.Task(coro, loop=loop_, context=context, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    ctx.run(cvar.set, "factory ctx")

    async def coro():
        return cvar.get()

    async def main():
        return await loop.create_task(coro(), context=ctx)

    assert run(loop, main()) == "factory ctx"
    assert ctx in calls


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+")
@pytest.mark.xfail_loop("uvloop", condition=sys.version_info >= (3, 13),
                        reason="passes eager_start= to the factory, which "
                        "asyncio.eager_task_factory does not accept")
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    seen = []

    async def finishes_at_once():
        seen.append("ran")
        return "eager"

    async def suspends():
        seen.append("started")
        await asyncio.sleep(0)
        seen.append("resumed")
        return "lazy"

    async def main():
        t1 = loop.create_task(finishes_at_once())
        # eagerly run to completion inside create_task
        assert t1.done() and t1.result() == "eager"
        assert seen == ["ran"]
        t2 = loop.create_task(suspends(), name="eager-named")
        assert seen == ["ran", "started"]
        assert not t2.done()
        assert t2.get_name() == "eager-named"
        assert asyncio.current_task() is not t2
        assert t2 in asyncio.all_tasks()
        return await t2

    assert run(loop, main()) == "lazy"
    assert seen == ["ran", "started", "resumed"]


def test_future_callbacks_run_in_their_context(loop):
    seen = []

    async def main():
        fut = loop.create_future()
        ctx = contextvars.copy_context()
        ctx.run(cvar.set, "callback ctx")
        fut.add_done_callback(lambda f: seen.append(cvar.get()), context=ctx)
        fut.set_result(None)
        await fut
        await asyncio.sleep(0)

    run(loop, main())
    assert seen == ["callback ctx"]


def test_gather_wait_for_and_shield(loop):
    async def value(v, delay=0):
        await asyncio.sleep(delay)
        return v

    async def main():
        results = await asyncio.gather(*(value(i) for i in range(10)))
        assert results == list(range(10))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(value(1, 10), 0.01)
        inner = loop.create_task(value("shielded", 0.02))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(inner), 0.001)
        return await inner

    assert run(loop, main()) == "shielded"


def test_task_group(loop):
    async def child(i):
        await asyncio.sleep(0.001 * i)
        return i

    async def main():
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(child(i)) for i in range(5)]
        return [t.result() for t in tasks]

    assert run(loop, main()) == list(range(5))

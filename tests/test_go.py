"""gmploop.go (gmploop/_go.py): coroutines queued unstarted on the P's StealQueue and
started by the loop as Tasks, each exactly once, in the caller's context."""
import asyncio
import contextvars
import gc

import pytest

import gmploop
from gmploop import _go

pytestmark = pytest.mark.timeout(30)

LOOPS = [pytest.param(gmploop.new_event_loop, id="gmploop"),
         pytest.param(asyncio.new_event_loop, id="asyncio")]


def run(factory, coro):
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.mark.parametrize("factory", LOOPS)
def test_a_burst_is_started_exactly_once_each_in_batches(factory):
    var = contextvars.ContextVar("var")
    done = []

    async def work(i):
        await asyncio.sleep(0)
        done.append((i, var.get()))

    async def main():
        loop = asyncio.get_running_loop()
        for i in range(1000):
            var.set(i)
            assert gmploop.go(work(i)) is None
        assert _go.pending(loop) == 1000          # nothing started yet
        await asyncio.sleep(0)
        assert 0 < 1000 - _go.pending(loop) <= _go.GO_BATCH
        while len(done) < 1000:
            await asyncio.sleep(0)
        assert _go.pending(loop) == 0
        assert loop._gmploop_go.started == 1000
        return sorted(done)

    assert run(factory, main()) == [(i, i) for i in range(1000)]


def test_the_loop_holds_its_go_tasks():

    async def main():
        ev = asyncio.Event()
        hits = []

        async def later():
            await ev.wait()
            hits.append(1)

        gmploop.go(later())
        await asyncio.sleep(0)
        gc.collect()          # asyncio alone keeps tasks weakly; go's must survive
        ev.set()
        await asyncio.sleep(0.01)
        return hits

    assert gmploop.run(main()) == [1]


def test_an_exception_in_go_work_is_reported():
    errors = []

    async def boom():
        raise ValueError("go boom")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: errors.append(ctx))
        gmploop.go(boom())
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()

    gmploop.run(main())
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ValueError)


def test_go_needs_a_coroutine_and_a_running_loop():
    async def coro():
        pass

    c = coro()
    with pytest.raises(RuntimeError, match="no running event loop"):
        gmploop.go(c)
    c.close()

    async def main():
        with pytest.raises(TypeError, match="a coroutine was expected"):
            gmploop.go(lambda: None)

    gmploop.run(main())


def test_overflow_beyond_the_steal_queue_is_started_too():
    n = 3 * 256 + 7
    done = set()

    async def work(i):
        done.add(i)

    async def main():
        for i in range(n):
            gmploop.go(work(i))
        assert len(asyncio.get_running_loop()._gmploop_go.overflow) > 0
        while len(done) < n:
            await asyncio.sleep(0)

    gmploop.run(main())
    assert done == set(range(n))

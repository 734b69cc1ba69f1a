"""Randomised schedules: one random program, asyncio's loop and gmploop, same trace.

Hypothesis draws a program: a tree of call_soon callbacks, call_soon_threadsafe
callbacks, timers, cancellations of earlier handles and writes to a socket pair whose
other end a reader (add_reader) drains, where each callback may run more of the
program when it runs. Both loops run it, and each records what ran, in order.

What asyncio guarantees, and so what is compared:

* call_soon is FIFO and a callback queued during an iteration runs in the next one,
  after the I/O polled at its start and the timers then due.
* Timers with distinct deadlines run in deadline order. Timers already due when an
  iteration polls are queued in that iteration, deterministically, so they are part
  of the exact trace; those due later depend on the clock, so only their relative
  order is compared. No two timers share a deadline: asyncio's heap does not order
  equal deadlines.
* A cancelled handle never runs.

Under these rules the trace of everything but the future timers is fully determined,
so the two loops must produce the same list.
"""

import asyncio
import itertools
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gmploop

from compat.conftest import _asyncio_factory

FACTORIES = {"asyncio": _asyncio_factory, "gmploop": gmploop.new_event_loop}

leaf = st.one_of(
    st.tuples(st.just("future"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("send"), st.integers(1, 64)),
)


def _extend(children):
    body = st.lists(children, max_size=4)
    return st.one_of(
        st.tuples(st.just("soon"), body),
        st.tuples(st.just("threadsafe"), body),
        st.tuples(st.just("past"), st.integers(0, 50), body),
    )


op = st.recursive(leaf, _extend, max_leaves=40)
programs = st.lists(op, min_size=1, max_size=10)


def run_program(name, program):
    loop = FACTORIES[name]()
    trace = []          # the determined part
    future = []         # timers due later: (deadline, id, [time the last was armed])
    armed = [0.0]
    handles = []
    reported = []
    # A sysmon report (see support.ExceptionLog) is no error of the schedule.
    loop.set_exception_handler(
        lambda _l, ctx: None if "blocked_for" in ctx else reported.append(ctx))
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    counter = itertools.count()
    now = loop.time()
    past_base = now - 100.0
    future_base = now + 0.005

    def reader():
        try:
            data = a.recv(65536)
        except BlockingIOError:
            trace.append(("io", "spurious"))
            return
        trace.append(("io", len(data)))

    def execute(ops):
        for o in ops:
            kind = o[0]
            i = next(counter)
            if kind == "soon":
                handles.append(loop.call_soon(fire, i, o[1]))
            elif kind == "threadsafe":
                handles.append(loop.call_soon_threadsafe(fire, i, o[1]))
            elif kind == "past":
                when = past_base + o[1] * 1e-3 + i * 1e-7
                handles.append(loop.call_at(when, fire, i, o[2]))
            elif kind == "future":
                when = future_base + o[1] * 1e-4 + i * 1e-7
                armed[0] = loop.time()
                handles.append(loop.call_at(when, future.append, (when, i, armed)))
            elif kind == "cancel":
                if o[1] < len(handles):
                    handles[o[1]].cancel()
                    trace.append(("cancel", o[1]))
            elif kind == "send":
                b.send(b"x" * o[1])
                trace.append(("send", o[1]))

    def fire(i, children):
        trace.append(("run", i))
        execute(children)

    async def main():
        loop.add_reader(a.fileno(), reader)
        execute(program)
        await asyncio.sleep(0.02)
        for _ in range(60):     # deeper than any program: everything has run
            await asyncio.sleep(0)
        loop.remove_reader(a.fileno())

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        a.close()
        b.close()
    return trace, future, reported


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs)
def test_random_schedule_same_order(program):
    expected, expected_future, expected_reported = run_program("asyncio", program)
    got, got_future, got_reported = run_program("gmploop", program)
    assert expected_reported == [] and got_reported == []
    assert got == expected
    # Later timers: the same ones ran on both, and those that were all waiting in the
    # heap together (due after the last of them was armed) ran in deadline order. One
    # armed after its deadline had passed runs when it is armed, as it should.
    # (Leave out those the program cancelled: whether one fired first is the clock's
    # call.)
    cancelled = {k for kind, k in expected if kind == "cancel"}
    assert ({i for _, i, _ in got_future} - cancelled ==
            {i for _, i, _ in expected_future} - cancelled)
    for fired in (got_future, expected_future):
        together = [(when, i) for when, i, last in fired if when > last[0]]
        assert together == sorted(together)


def test_iteration_boundaries_example():
    """A fixed program, as a readable instance of the property: a callback queued by
    a callback runs after everything queued before it, and after the I/O and the due
    timers of the next iteration's start."""
    program = [("soon", [("soon", []), ("send", 3), ("past", 1, [])]),
               ("soon", [("cancel", 1)]), ("past", 0, [("soon", [])])]
    expected = run_program("asyncio", program)[0]
    assert run_program("gmploop", program)[0] == expected
    # Iteration 1: the three top-level handles (0, 1, 2; the due timer last).
    # Iteration 2: what they queued (3 from 0, 7 from 2), then the reader (the bytes
    # sent in iteration 1), then the timer 5 that 0 armed, already due.
    assert expected == [("run", 0), ("send", 3), ("run", 1), ("cancel", 1), ("run", 2),
                        ("run", 3), ("run", 7), ("io", 3), ("run", 5)]

"""Unit tests of gmploop._runq.RunQueue and StealQueue on their own (no loop).

The invariants under test are the ones in the essay at the top of _runq.pyx: FIFO
across growth and wrap-around, one owned reference per queued slot, and a ring that
stays consistent while a release runs arbitrary Python (__del__); for StealQueue,
conservation: under concurrent put, get and steal, every item is taken exactly once.
"""
import gc
import random
import sys
import threading
import weakref

import pytest

from gmploop import _runq

RunQueue = _runq.RunQueue

# Each test is quick; this bounds one that hangs (a lost wake-up, a wait never
# interrupted) well below the suite-wide limit.
pytestmark = pytest.mark.timeout(10)


class Item:
    """A weak-referenceable payload."""

    __slots__ = ("n", "__weakref__", "__dict__")

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"Item({self.n})"


def drain(q):
    out = []
    while len(q):
        out.append(q.pop())
    return out


# ---------------------------------------------------------------- order


def test_empty_queue():
    q = RunQueue()
    assert len(q) == 0
    with pytest.raises(IndexError):
        q.pop()
    # Still usable after the failed pop.
    q.push(1)
    assert q.pop() == 1
    with pytest.raises(IndexError):
        q.pop()


def test_fifo_simple():
    q = RunQueue()
    for i in range(10):
        q.push(i)
    assert len(q) == 10
    assert drain(q) == list(range(10))


def test_initial_capacity_is_power_of_two():
    cap = RunQueue().capacity
    assert cap > 0 and cap & (cap - 1) == 0


def test_fill_exactly_to_capacity_does_not_grow():
    q = RunQueue()
    cap = q.capacity
    for i in range(cap):
        q.push(i)
    assert q.capacity == cap
    q.push(cap)
    assert q.capacity == 2 * cap
    assert drain(q) == list(range(cap + 1))


def test_fifo_across_growth():
    q = RunQueue()
    cap = q.capacity
    n = cap * 8 + 3
    for i in range(n):
        q.push(i)
    assert q.capacity >= n
    assert q.capacity & (q.capacity - 1) == 0
    assert drain(q) == list(range(n))


def test_shrink_gives_back_a_burst_ring_only_when_empty_and_big():
    q = RunQueue()
    cap = q.capacity
    for i in range(cap * 4):            # a small burst: kept (not worth a realloc)
        q.push(i)
    drain(q)
    q.shrink_py()
    assert q.capacity == cap * 4
    n = 100_000
    for i in range(n):
        q.push(i)
    big = q.capacity
    q.shrink_py()                       # not empty: nothing moves
    assert q.capacity == big and len(q) == n
    assert drain(q) == list(range(n))
    q.shrink_py()
    assert q.capacity == cap
    for i in range(cap + 1):            # and it grows again as before
        q.push(i)
    assert drain(q) == list(range(cap + 1))


def test_fifo_wrap_then_grow():
    # Move head into the middle of the ring, fill past the end of the array so the
    # live slots wrap, then overflow so _grow must unwrap them in order.
    q = RunQueue()
    cap = q.capacity
    nxt = 0
    expect = []
    for _ in range(cap - 10):
        q.push(nxt)
        expect.append(nxt)
        nxt += 1
    for _ in range(cap - 20):
        assert q.pop() == expect.pop(0)
    # head is now at cap - 20, 10 items live; fill to exactly capacity (wrapped).
    while len(q) < cap:
        q.push(nxt)
        expect.append(nxt)
        nxt += 1
    assert q.capacity == cap
    # One more: grow while wrapped.
    q.push(nxt)
    expect.append(nxt)
    nxt += 1
    assert q.capacity == 2 * cap
    assert drain(q) == expect


def test_fifo_randomized_against_list():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    q = RunQueue()
    ref = []
    nxt = 0
    for step in range(20000):
        if rng.random() < 0.55 or not ref:
            for _ in range(rng.randrange(1, 8)):
                q.push(nxt)
                ref.append(nxt)
                nxt += 1
        else:
            for _ in range(rng.randrange(1, 8)):
                if not ref:
                    break
                got = q.pop()
                want = ref.pop(0)
                assert got == want, f"seed={seed} step={step}: {got} != {want}"
        assert len(q) == len(ref), f"seed={seed} step={step}"
    assert drain(q) == ref, f"seed={seed}"


def test_same_object_twice():
    # A handle may legitimately be queued twice (see the essay).
    q = RunQueue()
    o = object()
    base = sys.getrefcount(o)
    q.push(o)
    q.push(o)
    assert sys.getrefcount(o) == base + 2
    assert q.pop() is o
    assert q.pop() is o
    assert sys.getrefcount(o) == base


def test_none_is_a_valid_item():
    q = RunQueue()
    q.push(None)
    q.push(1)
    assert len(q) == 2
    assert q.pop() is None
    assert q.pop() == 1


# ---------------------------------------------------------------- references


def test_refcount_after_push_and_pop():
    q = RunQueue()
    o = object()
    base = sys.getrefcount(o)
    q.push(o)
    assert sys.getrefcount(o) == base + 1
    got = q.pop()
    assert got is o
    del got
    assert sys.getrefcount(o) == base


def test_refcounts_across_growth_and_wrap():
    q = RunQueue()
    objs = [object() for _ in range(q.capacity * 3)]
    bases = [sys.getrefcount(o) for o in objs]
    # Wrap first, then grow.
    for o in objs[:100]:
        q.push(o)
    for _ in range(90):
        q.pop()
    for o in objs[100:]:
        q.push(o)
    del o                   # the loop variable holds the last one
    while len(q):
        q.pop()
    assert [sys.getrefcount(x) for x in objs] == bases


def test_popped_object_survives_when_queue_held_last_reference():
    q = RunQueue()
    q.push(Item(7))
    it = q.pop()
    assert it.n == 7
    r = weakref.ref(it)
    del it
    assert r() is None


def test_release_on_drop():
    q = RunQueue()
    items = [Item(i) for i in range(q.capacity + 5)]
    refs = [weakref.ref(i) for i in items]
    for i in items:
        q.push(i)
    del i                   # the loop variable holds the last one
    q.pop()
    del items
    assert sum(r() is not None for r in refs) == len(refs) - 1
    del q
    assert all(r() is None for r in refs)


def test_clear_releases_and_queue_stays_usable():
    q = RunQueue()
    items = [Item(i) for i in range(300)]
    refs = [weakref.ref(i) for i in items]
    for i in items:
        q.push(i)
    cap = q.capacity
    del items, i
    q.clear_py()
    assert len(q) == 0
    assert all(r() is None for r in refs)
    assert q.capacity == cap    # the essay: clear keeps the memory
    for i in range(5):
        q.push(i)
    assert drain(q) == list(range(5))


@pytest.mark.parametrize("push", ["push", "push_hidden"])
def test_cycle_through_queue_is_collected(push):
    # A loop that is dropped with callbacks still queued: loop -> queue -> handle ->
    # loop. asyncio's deque is visible to the cycle collector; the ring must be too.
    # A hidden item ('Hidden items' in _runq.pyx) is invisible to the collector, so
    # the queue must show it what the item holds.
    class Owner:
        pass

    owner = Owner()
    owner.q = RunQueue()
    item = Item(0)
    item.owner = owner
    getattr(owner.q, push)(item)
    r_owner = weakref.ref(owner)
    r_item = weakref.ref(item)
    del owner, item
    gc.collect()
    assert r_item() is None
    assert r_owner() is None


def test_gc_referents_include_queued_items():
    q = RunQueue()
    a, b = Item(1), Item(2)
    q.push(a)
    q.push(b)
    refs = gc.get_referents(q)
    assert any(x is a for x in refs)
    assert any(x is b for x in refs)
    q.pop()
    refs = gc.get_referents(q)
    assert not any(x is a for x in refs)


# ---------------------------------------------------------------- re-entrancy


class Pusher:
    """On release, pushes `count` fresh objects onto `q` (each weak-referenceable)."""

    def __init__(self, q, count, log):
        self.q = q
        self.count = count
        self.log = log

    def __del__(self):
        for i in range(self.count):
            it = Item(("pushed", i))
            self.log.append(weakref.ref(it))
            self.q.push(it)


def test_del_pushing_during_clear():
    q = RunQueue()
    log = []
    cap = q.capacity
    for i in range(10):
        q.push(Item(i))
    # While clear is releasing, this pushes more than the ring holds: the ring must
    # grow in the middle of clear.
    q.push(Pusher(q, cap + 17, log))
    for i in range(10):
        q.push(Item(i))
    q.clear_py()
    # Everything pushed during clear was released as well (clear runs until empty).
    assert len(q) == 0
    assert len(log) == cap + 17
    assert all(r() is None for r in log)
    assert q.capacity == 2 * cap
    # And the ring is consistent afterwards.
    n = q.capacity + 3
    for i in range(n):
        q.push(i)
    assert drain(q) == list(range(n))


def test_del_pushing_during_clear_with_wrapped_head():
    q = RunQueue()
    log = []
    cap = q.capacity
    for i in range(cap - 2):
        q.push(i)
    for i in range(cap - 4):
        q.pop()
    # head near the end of the array; the pusher's slot wraps.
    q.push(Pusher(q, 3, log))
    q.push(Item("tail"))
    assert len(q) == 4
    q.clear_py()
    assert len(q) == 0
    assert len(log) == 3
    assert all(r() is None for r in log)
    for i in range(2 * cap + 1):
        q.push(i)
    assert drain(q) == list(range(2 * cap + 1))


def test_del_popping_during_clear():
    q = RunQueue()
    popped = []

    class Popper:
        def __del__(self):
            try:
                popped.append(q.pop())
            except IndexError:
                popped.append("empty")

    q.push(Popper())
    q.push(Item(1))
    q.push(Item(2))
    q.clear_py()
    assert len(q) == 0
    assert len(popped) == 1
    popped.clear()
    q.push(10)
    q.push(11)
    assert drain(q) == [10, 11]


def test_del_pushing_during_pop_release():
    # pop hands its reference to the caller, so the release happens in the caller's
    # frame, with the queue consistent.
    q = RunQueue()
    log = []
    q.push(Pusher(q, 2, log))
    q.push("after")
    p = q.pop()
    del p
    assert len(q) == 3
    assert q.pop() == "after"
    assert [x.n for x in drain(q)] == [("pushed", 0), ("pushed", 1)]


def test_del_pushing_during_dealloc_via_cycle():
    # The only way Python code can reach a queue that is being destroyed is the
    # cycle collector: finalizers of the cycle's members run first (PEP 442), then
    # tp_clear. Here the finalizer pushes fresh items, and releasing those pushes
    # more, while the queue is being cleared.
    class Owner:
        pass

    log = []
    owner = Owner()
    owner.q = RunQueue()
    p = Pusher(owner.q, 5, log)
    p.owner = owner            # cycle: owner -> q -> p -> owner
    owner.q.push(p)
    for i in range(300):
        owner.q.push(Item(i))
    r_owner = weakref.ref(owner)
    del owner, p
    gc.collect()
    gc.collect()
    assert r_owner() is None
    assert log and all(r() is None for r in log)


def test_pushing_from_del_of_unrelated_object_during_dealloc():
    # A queue that dies with items whose __del__ push onto another queue.
    target = RunQueue()
    log = []
    q = RunQueue()
    for _ in range(3):
        q.push(Pusher(target, 2, log))
    del q
    assert len(target) == 6
    drain(target)
    assert all(r() is None for r in log)


# --- hidden items ('Hidden items' in _runq.pyx) ----------------------------------------


def test_hidden_item_is_untracked_while_queued_and_tracked_after():
    q = RunQueue()
    item = Item(1)
    assert gc.is_tracked(item)
    q.push_hidden(item)
    assert not gc.is_tracked(item)
    assert q.pop() is item
    assert gc.is_tracked(item)
    q.push_hidden(item)
    q.clear_py()
    assert gc.is_tracked(item)          # still held here: it left the queue tracked


def test_push_hidden_refuses_an_untracked_object():
    with pytest.raises(TypeError):
        RunQueue().push_hidden(12345)


def test_what_hidden_items_hold_survives_collections():
    # Each hidden item holds the only reference to a cyclic payload that is alive
    # through the queue: the collector must count those references as the queue's,
    # exactly once each, or it frees live objects.
    q = RunQueue()
    payloads = []
    for i in range(2000):
        payload = Item(i)
        payload.me = payload                # a cycle of its own, kept alive by the item
        item = Item(-i)
        item.payload = payload
        q.push_hidden(item)
        if i % 3 == 0:
            q.push(payload)                 # and some payloads are queued directly too
        payloads.append(weakref.ref(payload))
    del payload, item
    for _ in range(3):
        gc.collect()
    assert all(r() is not None for r in payloads)
    seen = 0
    while len(q):
        got = q.pop()
        assert gc.is_tracked(got)
        if got.n <= 0 and hasattr(got, "payload"):
            assert got.payload.me is got.payload and got.payload.n == -got.n
            seen += 1
    assert seen == 2000


def test_gc_referents_of_a_hidden_item_are_the_queues():
    q = RunQueue()
    target = Item(7)
    item = Item(1)
    item.target = target
    q.push_hidden(item)
    refs = gc.get_referents(q)
    assert not any(x is item for x in refs)
    assert any(x is item.__dict__ or x is target for x in refs)

# ---------------------------------------------------------------------- StealQueue

StealQueue = _runq.StealQueue


def test_steal_queue_is_fifo_and_bounded():
    q = StealQueue(8)
    items = [Item(i) for i in range(10)]
    assert [q.push(it) for it in items] == [True] * 8 + [False] * 2
    assert len(q) == 8 and q.capacity == 8
    # A refused item was not kept: only the caller holds it.
    assert sys.getrefcount(items[9]) == sys.getrefcount(Item(99)) + 1
    assert [q.pop().n for _ in range(8)] == list(range(8))
    with pytest.raises(IndexError):
        q.pop()


@pytest.mark.parametrize("n,room,expected", [
    (1, 8, 1), (2, 8, 1), (7, 8, 4), (8, 8, 4), (8, 2, 2), (0, 8, 0)])
def test_steal_half_takes_half_rounded_up_within_the_thiefs_room(n, room, expected):
    src = StealQueue(8)
    dst = StealQueue(8)
    for i in range(8 - room):
        dst.push(Item(-1 - i))
    for i in range(n):
        src.push(Item(i))
    assert src.steal_half(dst) == expected
    assert src.steals == expected
    assert len(src) == n - expected and len(dst) == 8 - room + expected
    stolen = [dst.pop().n for _ in range(len(dst))][8 - room:]
    assert stolen == list(range(expected))          # the oldest go to the thief
    assert [src.pop().n for _ in range(len(src))] == list(range(expected, n))


def test_steal_queue_references_are_conserved():
    refs = []
    q = StealQueue(16)
    dst = StealQueue(16)
    for i in range(12):
        it = Item(i)
        refs.append(weakref.ref(it))
        q.push(it)
        del it
    q.steal_half(dst)
    first = q.pop()
    assert all(r() is not None for r in refs)
    del q, dst          # dealloc drops what is still queued
    gc.collect()
    assert [r() is not None for r in refs] == [r() is first for r in refs]


def test_steal_queue_cycle_through_queue_is_collected():
    class Holder:
        pass
    h = Holder()
    h.q = StealQueue(8)
    h.q.push(h)
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None


def test_steal_queue_rejects_bad_capacities_and_mixed_modes():
    for cap in (0, 1, 3, 12):
        with pytest.raises(ValueError):
            StealQueue(cap)
    with pytest.raises(TypeError):
        StealQueue(8).steal_half(StealQueue(8, raw=True))
    with pytest.raises(TypeError):
        StealQueue(8, raw=True).push(Item(1))
    q = StealQueue(8)
    with pytest.raises(ValueError):
        q.steal_half(q)


@pytest.mark.parametrize("capacity,thieves", [(4, 3), (64, 2), (256, 1)])
def test_steal_queue_conservation_nogil(capacity, thieves):
    """Owner put/get and thieves' steal_half_into race on real cores (the harness runs
    the C functions without the GIL): every item is taken exactly once."""
    n = 300_000
    src = StealQueue(capacity, raw=True)
    start = threading.Barrier(thieves + 1)
    results = [None] * thieves
    errors = []

    def thief(k):
        mine = StealQueue(capacity, raw=True)
        start.wait()
        try:
            results[k] = mine._stress_thief(src, n)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=thief, args=(k,)) for k in range(thieves)]
    for t in threads:
        t.start()
    start.wait()
    owned = src._stress_owner(1, n, 3)
    for t in threads:
        t.join(30)
    assert not errors
    taken = list(owned)
    for items, _ in results:
        taken += items
    assert len(taken) == n
    assert sorted(taken) == list(range(1, n + 1))
    assert len(src) == 0
    # Each thief's own items came out in the order the owner put them (a steal
    # takes the oldest, FIFO within one thief's queue).
    for items, _ in results:
        assert items == sorted(items)


def test_steal_queue_conservation_python_threads():
    """The object queue from Python threads (the GIL switching between them every
    few bytecodes): put/get by the owner, steal_half by two thieves; every object
    is seen exactly once."""
    n = 20_000
    src = StealQueue(32)
    seen = []
    done = threading.Event()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def thief():
        mine = StealQueue(32)
        while True:
            moved = src.steal_half(mine)
            while len(mine):
                seen.append(mine.pop())
            if not moved and done.is_set() and not len(src):
                return

    threads = [threading.Thread(target=thief) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for i in range(n):
            while not src.push(i):
                try:
                    seen.append(src.pop())
                except IndexError:
                    pass
            if i % 5 == 0:
                try:
                    seen.append(src.pop())
                except IndexError:
                    pass
        while len(src):
            try:
                seen.append(src.pop())
            except IndexError:
                break
        done.set()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(old)
    assert sorted(seen) == list(range(n))


SHARED_VIEW_IN_GARBAGE = """
import gc
from gmploop._runq import SharedStealQueues

class Holder:
    pass

# Each view is made before its holder: the collector clears garbage in the order it
# was tracked, so the view's tp_clear runs first, while the holder still holds it.
shared = SharedStealQueues(2, 8)
keep = shared.queue(0)          # another view of the same ring, still alive
view = shared.queue(0)
h = Holder()
h.q = view
h.me = h                        # the view is reachable only from cyclic garbage
view.push(5)
view.push(7)
view = SharedStealQueues(1, 8).queue(0)     # the only reference to its mapping
lone = Holder()
lone.q = view
lone.me = lone
view.push(9)
del shared, h, lone, view
gc.collect()
print(len(keep), keep.pop(), keep.pop())
"""


def test_shared_view_freed_by_the_collector():
    """A view of a shared queue that only cyclic garbage holds (a P's loop, freed by
    a collection) neither frees a pointer into the mapping, nor touches the mapping
    after it is gone, nor drains the ring that other views (other processes) share:
    see 'Views and the collector' in _runq.pyx. Run in a child: the bug was a crash."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", SHARED_VIEW_IN_GARBAGE], cwd=root,
                         capture_output=True, text=True, timeout=8)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "5", "7"]

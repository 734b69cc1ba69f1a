"""Unit tests of gmploop._timers.TimerHeap on its own (no loop, no clock).

The invariants under test are those of the essay at the top of _timers.pyx: pops in
(when, insertion order), lazy cancellation with compaction that keeps exactly the live
entries, one owned reference per slot, and a heap that stays whole whenever Python
code (a __del__, a collection, a Python-level dead predicate) can run.
"""
import gc
import heapq
import math
import random
import sys
import weakref

import pytest

from gmploop import _timers

TimerHeap = _timers.TimerHeap

# Each test is quick; this bounds one that hangs (a lost wake-up, a wait never
# interrupted) well below the suite-wide limit.
pytestmark = pytest.mark.timeout(10)


class T:
    """A timer-like payload: weak-referenceable, with a cancelled flag."""

    __slots__ = ("name", "cancelled", "__weakref__", "__dict__")

    def __init__(self, name, cancelled=False):
        self.name = name
        self.cancelled = cancelled

    def __repr__(self):
        return f"T({self.name!r})"


def is_dead(t):
    return t.cancelled


def drain(h):
    out = []
    while len(h):
        out.append(h.pop_py())
    return out


def drain_with_when(h):
    out = []
    while len(h):
        w = h.peek_when_py()
        out.append((w, h.pop_py()))
    return out


# ---------------------------------------------------------------- order


def test_empty_heap():
    h = TimerHeap()
    assert len(h) == 0
    assert h.cancelled == 0
    with pytest.raises(IndexError):
        h.pop_py()
    with pytest.raises(IndexError):
        h.peek_when_py()
    h.push_py(1.0, "a")
    assert h.peek_when_py() == 1.0
    assert h.pop_py() == "a"
    with pytest.raises(IndexError):
        h.pop_py()


def test_pops_by_deadline():
    h = TimerHeap()
    for w in [5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 10.0]:
        h.push_py(w, w)
    assert drain(h) == [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0]


def test_peek_when_tracks_minimum():
    h = TimerHeap()
    h.push_py(3.0, "c")
    assert h.peek_when_py() == 3.0
    h.push_py(1.0, "a")
    assert h.peek_when_py() == 1.0
    h.push_py(2.0, "b")
    assert h.peek_when_py() == 1.0
    assert h.pop_py() == "a"
    assert h.peek_when_py() == 2.0


def test_equal_deadlines_fifo():
    h = TimerHeap()
    for i in range(500):
        h.push_py(7.0, i)
    assert drain(h) == list(range(500))


def test_equal_deadlines_fifo_interleaved():
    # FIFO among equals must hold even when other deadlines are mixed in and the heap
    # has been popped from between pushes.
    h = TimerHeap()
    for i in range(300):
        h.push_py(float(i % 3), ("x", i))
        if i % 7 == 0:
            h.push_py(0.5, ("y", i))
    got = drain_with_when(h)
    whens = [w for w, _ in got]
    assert whens == sorted(whens)
    for w in (0.0, 0.5, 1.0, 2.0):
        seq = [o[1] for ww, o in got if ww == w]
        assert seq == sorted(seq), w


def test_fifo_among_equals_survives_later_pushes():
    h = TimerHeap()
    for i in range(10):
        h.push_py(1.0, i)
    for _ in range(3):
        h.pop_py()
    for i in range(10, 20):
        h.push_py(1.0, i)
    assert drain(h) == list(range(3, 20))


def test_negative_zero_and_infinite_deadlines():
    h = TimerHeap()
    h.push_py(math.inf, "inf")
    h.push_py(-1.0, "neg")
    h.push_py(0.0, "zero")
    h.push_py(-math.inf, "-inf")
    h.push_py(1e-300, "tiny")
    assert drain(h) == ["-inf", "neg", "zero", "tiny", "inf"]


def test_growth_beyond_initial_capacity():
    h = TimerHeap()
    n = 5000
    ws = [float(i) for i in range(n)]
    random.Random(1).shuffle(ws)
    for w in ws:
        h.push_py(w, w)
    assert len(h) == n
    assert drain(h) == sorted(ws)


def _reference_check(seed, ops):
    """Random push/pop mix against heapq over (when, seq); equal deadlines common."""
    rng = random.Random(seed)
    h = TimerHeap()
    ref = []
    seq = 0
    for step in range(ops):
        r = rng.random()
        if r < 0.6 or not ref:
            # Coarse deadlines so that ties are frequent.
            w = rng.choice([rng.randrange(50) / 4, rng.random() * 100])
            obj = ("t", seq)
            h.push_py(w, obj)
            heapq.heappush(ref, (w, seq, obj))
            seq += 1
        else:
            w, _, obj = heapq.heappop(ref)
            assert h.peek_when_py() == w, f"seed={seed} step={step}"
            got = h.pop_py()
            assert got is obj, f"seed={seed} step={step}: {got} != {obj}"
        assert len(h) == len(ref), f"seed={seed} step={step}"
    while ref:
        w, _, obj = heapq.heappop(ref)
        assert h.pop_py() is obj, f"seed={seed} (final drain)"
    assert len(h) == 0


@pytest.mark.parametrize("run", range(5))
def test_randomized_against_sorted_reference(run):
    seed = random.randrange(2**32)
    _reference_check(seed, 4000)


def test_randomized_bulk_against_sorted():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    h = TimerHeap()
    items = []
    for i in range(3000):
        w = rng.randrange(200) * 0.5
        items.append((w, i))
        h.push_py(w, i)
    expect = [i for _, i in sorted(items)]   # sort is stable: (when, insertion)
    assert drain(h) == expect, f"seed={seed}"


# ---------------------------------------------------------------- compaction


def _check_heap_order(h, live_expected, seed=None):
    got = drain_with_when(h)
    whens = [w for w, _ in got]
    assert whens == sorted(whens), f"seed={seed}"
    assert [o for _, o in got] == live_expected, f"seed={seed}"


def test_compact_keeps_exactly_live():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    h = TimerHeap()
    entries = []
    for i in range(1000):
        t = T(i, cancelled=rng.random() < 0.7)
        w = rng.randrange(100) * 1.0
        entries.append((w, i, t))
        h.push_py(w, t)
    for _ in range(sum(t.cancelled for *_, t in entries)):
        h.note_cancelled_py()
    assert h.cancelled > 0
    h.compact_py(is_dead)
    assert h.cancelled == 0
    live = [t for w, i, t in sorted(entries, key=lambda e: (e[0], e[1])) if not t.cancelled]
    assert len(h) == len(live), f"seed={seed}"
    _check_heap_order(h, live, seed)


def test_compact_then_push_keeps_order():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    h = TimerHeap()
    ref = []
    seq = 0
    for _ in range(400):
        t = T(seq, cancelled=rng.random() < 0.5)
        w = float(rng.randrange(40))
        h.push_py(w, t)
        ref.append((w, seq, t))
        seq += 1
    h.compact_py(is_dead)
    ref = [e for e in ref if not e[2].cancelled]
    for _ in range(200):
        t = T(seq)
        w = float(rng.randrange(40))
        h.push_py(w, t)
        ref.append((w, seq, t))
        seq += 1
    ref.sort(key=lambda e: (e[0], e[1]))
    _check_heap_order(h, [e[2] for e in ref], seed)


@pytest.mark.parametrize("dead_fraction", [0.0, 1.0])
def test_compact_all_or_nothing(dead_fraction):
    h = TimerHeap()
    ts = [T(i, cancelled=dead_fraction == 1.0) for i in range(150)]
    for i, t in enumerate(ts):
        h.push_py(float(i % 10), t)
    h.compact_py(is_dead)
    if dead_fraction:
        assert len(h) == 0
    else:
        assert len(h) == 150
        got = drain(h)
        assert got == sorted(ts, key=lambda t: (t.name % 10, t.name))


def test_compact_empty():
    h = TimerHeap()
    h.compact_py(is_dead)
    assert len(h) == 0
    h.push_py(1.0, "a")
    assert h.pop_py() == "a"


def test_compact_predicate_that_raises_keeps_entry():
    h = TimerHeap()

    def bad(t):
        if t.name == 3:
            raise ValueError("boom")
        return t.name % 2 == 0

    ts = [T(i) for i in range(8)]
    for t in ts:
        h.push_py(1.0, t)
    h.compact_py(bad)
    assert [t.name for t in drain(h)] == [1, 3, 5, 7]


def test_compact_predicate_that_pushes_leaves_heap_intact():
    # Positions asked about are stale once the predicate pushes: compact gives up.
    h = TimerHeap()
    ts = [T(i, cancelled=i % 2 == 0) for i in range(20)]
    for t in ts:
        h.push_py(float(t.name), t)
    pushed = []

    def meddling(t):
        if not pushed:
            extra = T("extra")
            pushed.append(extra)
            h.push_py(-1.0, extra)
        return t.cancelled

    h.compact_py(meddling)
    got = drain(h)
    assert got[0] is pushed[0]
    # Either compacted or left alone, but never lost or duplicated a live entry.
    live = [t for t in ts if not t.cancelled]
    assert [t for t in got[1:] if not t.cancelled] == live
    assert len(set(map(id, got))) == len(got)


def test_compact_predicate_that_pops_leaves_heap_intact():
    h = TimerHeap()
    ts = [T(i, cancelled=i % 3 == 0) for i in range(30)]
    for t in ts:
        h.push_py(float(t.name), t)
    popped = []

    def meddling(t):
        if not popped:
            popped.append(h.pop_py())
        return t.cancelled

    h.compact_py(meddling)
    got = drain(h)
    assert popped[0] is ts[0]
    rest = [t for t in ts[1:]]
    assert [t for t in got if not t.cancelled] == [t for t in rest if not t.cancelled]
    assert len(set(map(id, got))) == len(got)


def test_needs_compaction_threshold():
    h = TimerHeap()
    for i in range(100):
        h.push_py(float(i), i)
    for _ in range(100):
        h.note_cancelled_py()
    # At most 100 entries: skipping dead tops is cheaper (asyncio's rule).
    assert not h.needs_compaction_py()
    h.push_py(100.0, 100)
    assert h.needs_compaction_py()
    h.note_reaped_py()
    assert h.cancelled == 99
    # 2 * 99 > 101 still.
    assert h.needs_compaction_py()
    h.clear_py()
    assert h.cancelled == 0
    assert not h.needs_compaction_py()


def test_note_reaped_never_goes_negative():
    h = TimerHeap()
    h.note_reaped_py()
    assert h.cancelled == 0
    h.note_cancelled_py()
    h.note_reaped_py()
    h.note_reaped_py()
    assert h.cancelled == 0


# ---------------------------------------------------------------- references


def test_refcount_after_push_and_pop():
    h = TimerHeap()
    o = object()
    base = sys.getrefcount(o)
    h.push_py(1.0, o)
    assert sys.getrefcount(o) == base + 1
    got = h.pop_py()
    assert got is o
    del got
    assert sys.getrefcount(o) == base


def test_refcounts_across_growth():
    h = TimerHeap()
    objs = [object() for _ in range(1000)]
    bases = [sys.getrefcount(x) for x in objs]
    for i, x in enumerate(objs):
        h.push_py(float((i * 7919) % 1000), x)
    del x
    for _ in range(500):
        h.pop_py()
    h.clear_py()
    assert [sys.getrefcount(x) for x in objs] == bases


def test_popped_entry_released_by_caller():
    h = TimerHeap()
    h.push_py(1.0, T("a"))
    t = h.pop_py()
    r = weakref.ref(t)
    del t
    assert r() is None


def test_compact_releases_dead_and_keeps_live():
    h = TimerHeap()
    ts = [T(i, cancelled=i % 2 == 0) for i in range(200)]
    refs = [weakref.ref(t) for t in ts]
    for t in ts:
        h.push_py(float(t.name), t)
    del t, ts
    h.compact_py(is_dead)
    alive = [r() is not None for r in refs]
    assert alive == [i % 2 == 1 for i in range(200)]
    h.clear_py()
    assert all(r() is None for r in refs)


def test_release_on_drop():
    h = TimerHeap()
    ts = [T(i) for i in range(300)]
    refs = [weakref.ref(t) for t in ts]
    for t in ts:
        h.push_py(float(t.name % 13), t)
    del t, ts
    assert all(r() is not None for r in refs)
    del h
    assert all(r() is None for r in refs)


def test_cycle_through_heap_is_collected():
    # A loop dropped with timers pending: loop -> heap -> handle -> loop.
    class Owner:
        pass

    owner = Owner()
    owner.timers = TimerHeap()
    t = T("t")
    t.owner = owner
    owner.timers.push_py(1.0, t)
    r_owner, r_t = weakref.ref(owner), weakref.ref(t)
    del owner, t
    gc.collect()
    assert r_t() is None
    assert r_owner() is None


def test_gc_referents_are_the_live_entries():
    h = TimerHeap()
    a, b = T("a"), T("b")
    h.push_py(1.0, a)
    h.push_py(2.0, b)
    refs = gc.get_referents(h)
    assert any(x is a for x in refs) and any(x is b for x in refs)
    h.pop_py()
    refs = gc.get_referents(h)
    assert not any(x is a for x in refs)
    assert any(x is b for x in refs)


# ---------------------------------------------------------------- re-entrancy


class Pusher:
    """On release, schedules `count` fresh timers on heap `h`."""

    def __init__(self, h, count, log, cancelled=False):
        self.h = h
        self.count = count
        self.log = log
        self.cancelled = cancelled

    def __del__(self):
        for i in range(self.count):
            t = T(("pushed", i))
            self.log.append(weakref.ref(t))
            self.h.push_py(-float(i), t)


def test_del_pushing_during_compact():
    h = TimerHeap()
    log = []
    ts = [T(i, cancelled=i % 2 == 0) for i in range(150)]
    for t in ts:
        h.push_py(float(t.name), t)
    # A dead entry whose release schedules enough timers to realloc the heap.
    h.push_py(3.5, Pusher(h, 200, log, cancelled=True))
    live = [t for t in ts if not t.cancelled]
    del t, ts
    h.compact_py(is_dead)
    assert len(log) == 200
    assert len(h) == len(live) + 200
    got = drain_with_when(h)
    whens = [w for w, _ in got]
    assert whens == sorted(whens)
    objs = [o for _, o in got]
    assert objs[200:] == live
    assert [o.name for o in objs[:200]] == [("pushed", i) for i in reversed(range(200))]


def test_del_compacting_during_compact():
    # A release during compact runs compact again on the same heap.
    h = TimerHeap()
    log = []

    class Recompacter:
        cancelled = True

        def __del__(self):
            log.append(len(h))
            h.compact_py(is_dead)
            log.append(len(h))

    ts = [T(i, cancelled=i % 3 == 0) for i in range(60)]
    for t in ts:
        h.push_py(float(t.name), t)
    h.push_py(0.0, Recompacter())
    live = [t for t in ts if not t.cancelled]
    h.compact_py(is_dead)
    assert log == [len(live), len(live)]
    assert drain(h) == live


def test_del_pushing_during_clear():
    h = TimerHeap()
    log = []
    for i in range(30):
        h.push_py(float(i), T(i))
    h.push_py(15.5, Pusher(h, 100, log))
    for i in range(30):
        h.push_py(float(i), T(("b", i)))
    h.clear_py()
    # clear runs until the heap is empty, including what was pushed meanwhile.
    assert len(h) == 0
    assert len(log) == 100
    assert all(r() is None for r in log)
    # Usable afterwards, in order.
    _reference_check(random.randrange(2**32), 300)
    for w in [3.0, 1.0, 2.0]:
        h.push_py(w, w)
    assert drain(h) == [1.0, 2.0, 3.0]


def test_del_popping_during_clear():
    h = TimerHeap()
    seen = []

    class Popper:
        def __del__(self):
            if len(h):
                seen.append(h.pop_py())

    h.push_py(9.0, Popper())       # the last slot: released first
    for i in range(5):
        h.push_py(float(i), T(i))
    h.clear_py()
    assert len(h) == 0
    for w in [2.0, 1.0]:
        h.push_py(w, w)
    assert drain(h) == [1.0, 2.0]


def test_del_pushing_during_pop_release():
    h = TimerHeap()
    log = []
    h.push_py(1.0, Pusher(h, 3, log))
    h.push_py(2.0, "later")
    p = h.pop_py()
    del p
    assert len(h) == 4
    got = drain(h)
    # Pusher pushes ("pushed", i) at deadline -i: the highest i pops first.
    assert [t.name for t in got[:3]] == [("pushed", 2), ("pushed", 1), ("pushed", 0)]
    assert got[3] == "later"


def test_del_pushing_during_dealloc_via_cycle():
    class Owner:
        pass

    log = []
    owner = Owner()
    owner.timers = TimerHeap()
    p = Pusher(owner.timers, 5, log)
    p.owner = owner           # cycle: owner -> heap -> p -> owner
    owner.timers.push_py(1.0, p)
    for i in range(100):
        owner.timers.push_py(float(i), T(i))
    r_owner = weakref.ref(owner)
    del owner, p
    gc.collect()
    gc.collect()
    assert r_owner() is None
    assert log and all(r() is None for r in log)


def test_pushing_elsewhere_during_dealloc():
    target = TimerHeap()
    log = []
    h = TimerHeap()
    for i in range(3):
        h.push_py(float(i), Pusher(target, 2, log))
    del h
    assert len(target) == 6
    drain(target)
    assert all(r() is None for r in log)


# --- hidden entries ('Hidden items' in _runq.pyx) -------------------------------------


def test_hidden_entries_keep_order_and_leave_tracked():
    h = TimerHeap()
    items = [T(i) for i in range(200)]
    rng = random.Random(5)
    whens = [rng.random() for _ in items]
    for when, item in zip(whens, items):
        if item.name % 2:
            h.push_hidden_py(when, item)
            assert not gc.is_tracked(item)
        else:
            h.push_py(when, item)
    gc.collect()
    out = [h.pop_py() for _ in range(len(items))]
    assert [o.name for o in out] == [items[i].name for i in sorted(range(200), key=whens.__getitem__)]
    assert all(gc.is_tracked(o) for o in out)


def test_hidden_entries_leave_tracked_through_compact_and_clear():
    h = TimerHeap()
    items = [T(i) for i in range(100)]
    for i, item in enumerate(items):
        h.push_hidden_py(float(i), item)
    h.compact_py(lambda o: o.name % 2 == 0)
    assert len(h) == 50
    assert all(gc.is_tracked(o) for o in items if o.name % 2 == 0)
    h.clear_py()
    assert all(gc.is_tracked(o) for o in items)


def test_cycle_through_hidden_entry_is_collected():
    class Owner:
        pass

    owner = Owner()
    owner.heap = TimerHeap()
    item = T(0)
    item.owner = owner
    owner.heap.push_hidden_py(1.0, item)
    r_owner, r_item = weakref.ref(owner), weakref.ref(item)
    del owner, item
    gc.collect()
    assert r_item() is None
    assert r_owner() is None


def test_push_hidden_refuses_an_untracked_object():
    with pytest.raises(TypeError):
        TimerHeap().push_hidden_py(1.0, 42)

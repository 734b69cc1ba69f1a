/* gp_stealq.h: the bounded queue of unstarted work that an idle P steals from (see
 * 'StealQueue' in _runq.pyx for the design; this file is its lock-free core).
 *
 * A ring of `cap` pointer slots (a power of two) and two free-running 32-bit
 * counters: `head` (next slot to take) and `tail` (next slot to fill). Items live in
 * [head, tail). Who writes what:
 *
 *   tail   only the owner (put), so the owner may read it relaxed; others acquire.
 *   head   the owner (get) and any thief (steal_half_into), by compare-and-swap.
 *   slots  written only by the owner, at tail, while no one can be reading them
 *          legitimately; read by the owner and by thieves. Relaxed atomics: a thief
 *          may read a slot the owner is overwriting, but then its CAS on head fails
 *          and it throws what it read away (Go's runqgrab argument), and an atomic
 *          read of a torn pointer is never undefined behaviour.
 *
 * No function here touches a Python object or needs the GIL: items are opaque
 * pointers whose ownership moves with them. Callers may hold the GIL or not.
 *
 * ABA: head could wrap all the way round (2^32 takes) between a thief's load and its
 * CAS; a thief would have to sleep through four billion operations. Go and tokio
 * accept the same bound.
 */
#ifndef GP_STEALQ_H
#define GP_STEALQ_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    _Atomic uint32_t head;      /* written: owner and thieves (CAS); read: all */
    _Atomic uint32_t tail;      /* written: owner (release); read: thieves (acquire) */
    uint32_t mask;              /* cap - 1; fixed at creation */
    _Atomic int closed;         /* test harness only: the owner will put no more */
    _Atomic(void *) *slots;
} gp_stealq;

/* Make q an empty queue of cap slots (a power of two >= 2) at slots. */
static inline gp_stealq *gp_stealq__init(gp_stealq *q, _Atomic(void *) *slots,
                                         uint32_t cap) {
    uint32_t i;
    q->slots = slots;
    for (i = 0; i < cap; i++) atomic_init(&q->slots[i], NULL);
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->closed, 0);
    q->mask = cap - 1;
    return q;
}

static inline gp_stealq *gp_stealq_new(uint32_t cap) {
    gp_stealq *q;
    _Atomic(void *) *slots;
    if (cap < 2 || (cap & (cap - 1)) != 0) return NULL;
    q = (gp_stealq *)calloc(1, sizeof *q);
    if (q == NULL) return NULL;
    slots = (_Atomic(void *) *)calloc(cap, sizeof(_Atomic(void *)));
    if (slots == NULL) { free(q); return NULL; }
    return gp_stealq__init(q, slots, cap);
}

static inline void gp_stealq_free(gp_stealq *q) {
    if (q == NULL) return;
    free((void *)q->slots);
    free(q);
}

/* Any thread. A snapshot: exact for the owner between its own operations. */
static inline uint32_t gp_stealq_len(gp_stealq *q) {
    /* acquire/acquire: a consistent-enough pair for a length; head first, so that
       tail (read later, and never behind head) gives tail - head >= 0. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint32_t n = t - h;
    return n > q->mask + 1 ? q->mask + 1 : n;
}

/* Owner only. Append item; 0, or -1 when the ring is full (the caller keeps it). */
static inline int gp_stealq_put(gp_stealq *q, void *item) {
    /* acquire: pairs with the release of the CAS in get/steal, so every read of
       the slot we may reuse (by whoever took it) happened before we overwrite it. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    /* relaxed: only this thread writes tail. */
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - h > q->mask) return -1;
    /* relaxed: published by the release store of tail just below. */
    atomic_store_explicit(&q->slots[t & q->mask], item, memory_order_relaxed);
    /* release: pairs with the acquire loads of tail in steal (and len), making the
       slot written above visible before the new tail is. */
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return 0;
}

/* Owner only. Take the oldest item; NULL when empty. */
static inline void *gp_stealq_get(gp_stealq *q) {
    for (;;) {
        /* acquire: pairs with the thieves' release CAS (we see their progress). */
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        void *item;
        if (h == t) return NULL;
        item = atomic_load_explicit(&q->slots[h & q->mask], memory_order_relaxed);
        /* acq_rel on success: release orders our slot read before a later put that
           reuses the slot (see put); acquire on failure: a thief moved head, retry
           from its value. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return item;
    }
}

/* Any thread, as the owner of dst (a thief fills its own queue). Moves half of
 * src's items (rounded up), at most what dst has room for, from src's head to dst's
 * tail; returns how many moved. Go's runqsteal/runqgrab, tokio's steal_into. */
static inline uint32_t gp_stealq_steal_half_into(gp_stealq *src, gp_stealq *dst) {
    /* dst's free room: we own dst, so its tail is ours (relaxed) and its head only
       grows under us (acquire, as in put). */
    uint32_t dt = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    uint32_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
    uint32_t room = (dst->mask + 1) - (dt - dh);
    for (;;) {
        /* acquire both: head pairs with the CAS of other takers; tail pairs with the
           owner's release store in put, so the slots below tail are visible. */
        uint32_t h = atomic_load_explicit(&src->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&src->tail, memory_order_acquire);
        uint32_t n = t - h, i;
        if (n > src->mask + 1) continue;     /* head moved between the loads: again */
        n = n - n / 2;
        if (n > room) n = room;
        if (n == 0) return 0;
        for (i = 0; i < n; i++) {
            void *item = atomic_load_explicit(&src->slots[(h + i) & src->mask],
                                              memory_order_relaxed);
            /* relaxed: invisible until the release store of dst->tail below. */
            atomic_store_explicit(&dst->slots[(dt + i) & dst->mask], item,
                                  memory_order_relaxed);
        }
        /* acq_rel on success: release orders our slot reads before src's owner
           reuses those slots (it acquires head in put); on failure someone else
           took items first and what we copied is garbage in dst's free slots. */
        if (atomic_compare_exchange_weak_explicit(&src->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            /* release: publishes the copied slots to dst's other readers. */
            atomic_store_explicit(&dst->tail, dt + n, memory_order_release);
            return n;
        }
    }
}

/* Queues in memory that several processes map (MAP_SHARED, mapped before fork, so at
 * one address in all of them): the struct, then its slots. The atomics above are
 * lock-free for 32-bit and pointer sizes on every platform gmploop builds on, and
 * lock-free atomics work across processes on shared memory. */
static inline size_t gp_stealq_shared_size(uint32_t cap) {
    size_t head = (sizeof(gp_stealq) + 63) & ~(size_t)63;   /* slots on a new line */
    return head + (size_t)cap * sizeof(_Atomic(void *));
}

static inline gp_stealq *gp_stealq_init_in(void *mem, uint32_t cap) {
    size_t head = (sizeof(gp_stealq) + 63) & ~(size_t)63;
    if (cap < 2 || (cap & (cap - 1)) != 0) return NULL;
    return gp_stealq__init((gp_stealq *)mem, (_Atomic(void *) *)((char *)mem + head),
                           cap);
}

/* Any thread or process. The head now: a watcher that sees it stand still while
 * items wait knows the owner is not taking them (acquire: pairs with the CAS). */
static inline uint32_t gp_stealq_head(gp_stealq *q) {
    return atomic_load_explicit(&q->head, memory_order_acquire);
}

/* Any thread or process: a steal in two steps, for a thief that must act on the
 * items before it may own them (the runtime duplicates the file descriptors they
 * name into its own table first). peek_half copies half of q's items (rounded up, at
 * most max) into buf without taking them and sets *head to where they start; commit
 * takes exactly those iff no one took an item meanwhile (the CAS of steal above,
 * same orderings and the same argument). On a failed commit what was copied may be
 * stale: the caller undoes what it did with it. */
static inline uint32_t gp_stealq_peek_half(gp_stealq *q, void **buf, uint32_t max,
                                           uint32_t *head) {
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        uint32_t n = t - h, i;
        if (n > q->mask + 1) continue;
        n = n - n / 2;
        if (n > max) n = max;
        for (i = 0; i < n; i++)
            buf[i] = atomic_load_explicit(&q->slots[(h + i) & q->mask],
                                          memory_order_relaxed);
        *head = h;
        return n;
    }
}

static inline int gp_stealq_commit(gp_stealq *q, uint32_t h, uint32_t n) {
    return atomic_compare_exchange_strong_explicit(&q->head, &h, h + n,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire);
}

/* Owner only (or with every other user stopped): the i-th item from the head, for
 * the garbage collector's walk over an object queue. */
static inline void *gp_stealq_at(gp_stealq *q, uint32_t i) {
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    return atomic_load_explicit(&q->slots[(h + i) & q->mask], memory_order_relaxed);
}

/* The test harness's end-of-work flag (seq_cst: simple, and off the hot path). */
static inline void gp_stealq_close(gp_stealq *q) { atomic_store(&q->closed, 1); }
static inline int gp_stealq_is_closed(gp_stealq *q) { return atomic_load(&q->closed); }

#endif /* GP_STEALQ_H */

/* gp_poll.h: the OS half of the netpoller (see the essay at the top of _poller.pyx).
 *
 * One small interface over epoll (Linux) and kqueue (macOS, the BSDs), so the Cython
 * side never sees either:
 *
 *   gp_poll_create()                      a new epoll/kqueue fd, close-on-exec
 *   gp_poll_add/mod/del(pfd, fd, ...)     register, change, forget an fd
 *   gp_poll_wait(pfd, buf, n, ms)         wait; normalised events land in buf
 *   gp_wakeup_open/signal/drain           the cross-thread doorbell
 *   gp_monotonic()                        the clock time.monotonic() reads
 *
 * Interest bits: GP_IN, GP_OUT, and GP_EDGE (edge-triggered: EPOLLET / EV_CLEAR).
 * Reported bits: GP_IN, GP_OUT, GP_ERR, GP_HUP (both directions closed), GP_RDHUP
 * (the peer shut down its writing side). Each event carries the 64-bit tag given at
 * registration; the Cython side packs (generation << 32 | fd) into it.
 *
 * kqueue has one filter per direction, so one fd may come back as two events with the
 * same tag; the Cython side copes (a readiness bit set twice is set once).
 */
#ifndef GP_POLL_H
#define GP_POLL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define GP_IN    0x01u
#define GP_OUT   0x02u
#define GP_ERR   0x04u
#define GP_HUP   0x08u
#define GP_RDHUP 0x10u
#define GP_EDGE  0x100u
/* GP_EXCL: a listening socket that several processes poll (the runtime's shared
   listeners): EPOLLEXCLUSIVE, readable only, so the kernel wakes one waiting epoll per
   connection instead of all of them. The kernel refuses it in EPOLL_CTL_MOD and next
   to EPOLLRDHUP; kernels before 4.5 refuse it outright (EINVAL), and the Cython side
   then registers the plain way. kqueue has no such flag: the bit is ignored there. */
#define GP_EXCL  0x200u

typedef struct {
    uint64_t tag;
    uint32_t flags;
} gp_event;

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/eventfd.h>
#define GP_BACKEND "epoll"

static int gp_poll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

static uint32_t gp__epoll_mask(uint32_t interest) {
    uint32_t m = 0;
#ifdef EPOLLEXCLUSIVE
    if (interest & GP_EXCL)
        return EPOLLIN | EPOLLEXCLUSIVE | ((interest & GP_EDGE) ? EPOLLET : 0);
#endif
    if (interest & GP_IN) m |= EPOLLIN | EPOLLRDHUP;
    if (interest & GP_OUT) m |= EPOLLOUT;
    if (interest & GP_EDGE) m |= EPOLLET;
    return m;
}

static int gp__ctl(int pfd, int op, int fd, uint32_t interest, uint64_t tag) {
    struct epoll_event ev;
#ifndef EPOLLEXCLUSIVE
    if (interest & GP_EXCL) { errno = EINVAL; return -1; }
#endif
    ev.events = gp__epoll_mask(interest);
    ev.data.u64 = tag;
    return epoll_ctl(pfd, op, fd, &ev);
}

static int gp_poll_add(int pfd, int fd, uint32_t interest, uint64_t tag) {
    return gp__ctl(pfd, EPOLL_CTL_ADD, fd, interest, tag);
}

static int gp_poll_mod(int pfd, int fd, uint32_t old_interest, uint32_t interest, uint64_t tag) {
    (void)old_interest;
    return gp__ctl(pfd, EPOLL_CTL_MOD, fd, interest, tag);
}

static int gp_poll_del(int pfd, int fd, uint32_t old_interest) {
    struct epoll_event ev = {0};  /* kernels before 2.6.9 wanted a non-NULL pointer */
    (void)old_interest;
    return epoll_ctl(pfd, EPOLL_CTL_DEL, fd, &ev);
}

/* The kernel's events are read into buf itself and normalised in place: a struct
   epoll_event (12 bytes, packed, on x86-64; 16 elsewhere) is never larger than a
   gp_event (16), so raw[i] starts at or before buf[i]. */
static int gp_poll_wait(int pfd, gp_event *buf, int maxevents, int timeout_ms) {
    struct epoll_event *raw = (struct epoll_event *)buf;
    int n, i;
    n = epoll_wait(pfd, raw, maxevents, timeout_ms);
    if (n <= 0) return n;
    /* Walk backwards: raw[i] never starts after buf[i], so writing buf[i] once raw[i]
       is read never overwrites an entry still to be read. */
    for (i = n - 1; i >= 0; i--) {
        uint32_t e = raw[i].events;
        uint64_t tag = raw[i].data.u64;
        uint32_t f = 0;
        if (e & EPOLLIN) f |= GP_IN;
        if (e & EPOLLOUT) f |= GP_OUT;
        if (e & EPOLLERR) f |= GP_ERR;
        if (e & EPOLLHUP) f |= GP_HUP;
        if (e & EPOLLRDHUP) f |= GP_RDHUP;
        buf[i].tag = tag;
        buf[i].flags = f;
    }
    return n;
}

/* The doorbell: one eventfd is both ends. */
static int gp_wakeup_open(int *rfd, int *wfd) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return -1;
    *rfd = *wfd = fd;
    return 0;
}

static int gp_wakeup_signal(int wfd) {
    uint64_t one = 1;
    ssize_t r;
    do { r = write(wfd, &one, sizeof one); } while (r < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, so the reader is already due to wake. */
    return (r < 0 && errno != EAGAIN) ? -1 : 0;
}

static void gp_wakeup_drain(int rfd) {
    uint64_t v;
    ssize_t r;
    do { r = read(rfd, &v, sizeof v); } while (r < 0 && errno == EINTR);
}

#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
      defined(__NetBSD__) || defined(__DragonFly__)
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#define GP_BACKEND "kqueue"

static int gp_poll_create(void) {
    int fd = kqueue();
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* Apply the difference between two interests as EV_ADD / EV_DELETE changes. */
static int gp__kq_apply(int pfd, int fd, uint32_t old_i, uint32_t new_i, uint64_t tag) {
    struct kevent ch[2];
    int n = 0;
    unsigned short clear = (new_i & GP_EDGE) ? EV_CLEAR : 0;
    if (new_i & GP_IN)
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_ADD | clear, 0, 0, (void *)(uintptr_t)tag);
    else if (old_i & GP_IN)
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, 0);
    if (new_i & GP_OUT)
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_ADD | clear, 0, 0, (void *)(uintptr_t)tag);
    else if (old_i & GP_OUT)
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0);
    if (n == 0) return 0;
    return kevent(pfd, ch, n, NULL, 0, NULL);
}

static int gp_poll_add(int pfd, int fd, uint32_t interest, uint64_t tag) {
    return gp__kq_apply(pfd, fd, 0, interest, tag);
}

static int gp_poll_mod(int pfd, int fd, uint32_t old_interest, uint32_t interest, uint64_t tag) {
    return gp__kq_apply(pfd, fd, old_interest, interest, tag);
}

static int gp_poll_del(int pfd, int fd, uint32_t old_interest) {
    return gp__kq_apply(pfd, fd, old_interest, 0, 0);
}

static int gp_poll_wait(int pfd, gp_event *buf, int maxevents, int timeout_ms) {
    struct kevent raw[256];
    struct timespec ts, *tsp = NULL;
    int n, i;
    if (maxevents > 256) maxevents = 256;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    n = kevent(pfd, NULL, 0, raw, maxevents, tsp);
    for (i = 0; i < n; i++) {
        uint32_t f = 0;
        if (raw[i].filter == EVFILT_READ) f |= GP_IN;
        if (raw[i].filter == EVFILT_WRITE) f |= GP_OUT;
        if (raw[i].flags & EV_ERROR) f |= GP_ERR;
        if (raw[i].flags & EV_EOF) f |= (raw[i].filter == EVFILT_READ) ? GP_RDHUP : GP_HUP;
        buf[i].tag = (uint64_t)(uintptr_t)raw[i].udata;
        buf[i].flags = f;
    }
    return n;
}

/* The doorbell: a non-blocking pipe. */
static int gp_wakeup_open(int *rfd, int *wfd) {
    int p[2], i;
    if (pipe(p) < 0) return -1;
    for (i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    *rfd = p[0];
    *wfd = p[1];
    return 0;
}

static int gp_wakeup_signal(int wfd) {
    char c = 0;
    ssize_t r;
    do { r = write(wfd, &c, 1); } while (r < 0 && errno == EINTR);
    return (r < 0 && errno != EAGAIN) ? -1 : 0;
}

static void gp_wakeup_drain(int rfd) {
    char buf[256];
    while (read(rfd, buf, sizeof buf) > 0) {}
}

#else
#error "gmploop needs epoll or kqueue"
#endif

/* time.monotonic() is CLOCK_MONOTONIC on Linux and the BSDs; macOS's Python reads
   mach_absolute_time(), which CLOCK_UPTIME_RAW matches. */
static double gp_monotonic(void) {
    struct timespec ts;
#if defined(__APPLE__)
    clock_gettime(CLOCK_UPTIME_RAW, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif /* GP_POLL_H */

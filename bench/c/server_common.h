/* What the two C reference servers share: a listening socket, an edge-triggered epoll
 * loop, per-connection output that the kernel would not take yet, and the stop/report
 * protocol of bench/servers.py (READY <port>; a JSON report on SIGUSR1; the same report
 * and exit on SIGTERM).
 *
 * Each server defines transform(): given what a connection just received, the bytes to
 * send back.  The loop does the rest.  These servers exist to show what the machine can
 * do with the least possible work per request, so they do nothing else: no framing
 * beyond what transform() needs, no timeouts, one thread.
 *
 * Backpressure: when the kernel does not take all of a reply, the rest is kept and the
 * connection reads nothing more until it has been sent; with edge triggering, the
 * EPOLLOUT that follows resumes both.  Signals arrive through a signalfd in the same
 * epoll set, so a report is taken between two events, never inside one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE (256 * 1024)

struct conn {
    int fd;
    int parse_state;           /* for transform(); starts at 0 */
    char *pending;             /* reply bytes the kernel has not taken yet */
    size_t pending_off, pending_len, pending_cap;
};

static long long served_bytes, served_requests;

/* Defined by each server: the reply to n bytes just received on c (may return in). */
static const char *transform(struct conn *c, const char *in, size_t n, size_t *out_len);

static void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

static void report(const char *event) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"event\": \"%s\", \"utime\": %.6f, \"stime\": %.6f, \"bytes\": %lld, "
           "\"requests\": %lld, \"errors\": 0}\n",
           event, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6, served_bytes, served_requests);
    fflush(stdout);
}

static void conn_close(struct conn *c) {
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Send what is pending; 1 if all of it went, 0 if the kernel is full, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t n = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off,
                         MSG_NOSIGNAL);
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        c->pending_off += (size_t)n;
    }
    c->pending_off = c->pending_len = 0;
    return 1;
}

static int keep_pending(struct conn *c, const char *data, size_t len) {
    if (len > c->pending_cap) {
        char *p = realloc(c->pending, len);
        if (!p)
            return -1;
        c->pending = p;
        c->pending_cap = len;
    }
    memcpy(c->pending, data, len);
    c->pending_off = 0;
    c->pending_len = len;
    return 0;
}

/* Serve one connection until the kernel has nothing more to read or no room to write.
 * Returns -1 when the connection is over (closed by the peer or failed). */
static int conn_serve(struct conn *c, char *buf) {
    for (;;) {
        int f = flush_pending(c);
        if (f < 0)
            return -1;
        if (f == 0)
            return 0;  /* wait for EPOLLOUT; reading resumes after it */
        ssize_t n = recv(c->fd, buf, READ_SIZE, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        size_t out_len;
        const char *out = transform(c, buf, (size_t)n, &out_len);
        size_t off = 0;
        while (off < out_len) {
            ssize_t w = send(c->fd, out + off, out_len - off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    return -1;
                if (keep_pending(c, out + off, out_len - off) < 0)
                    return -1;
                break;
            }
            off += (size_t)w;
        }
    }
}

static int server_main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
            return 2;
        }
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("bind");
    if (listen(lfd, 1024) != 0)
        die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    /* data.ptr NULL marks the listener, &sfd the signalfd; anything else is a conn. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    char *buf = malloc(READ_SIZE);
    if (!buf)
        die("malloc");
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c)
                        die("calloc");
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                    if (conn_serve(c, buf) < 0)
                        conn_close(c);
                }
            } else if (p == &sfd) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (si.ssi_signo == SIGUSR1) {
                        report("mark");
                    } else {
                        report("stop");
                        return 0;
                    }
                }
            } else {
                struct conn *c = p;
                if (conn_serve(c, buf) < 0)
                    conn_close(c);  /* close() also removes it from the epoll set */
            }
        }
    }
}

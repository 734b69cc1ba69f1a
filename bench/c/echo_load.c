/* echo_load: a ping-pong load generator for the echo benchmarks.
 *
 *   echo_load --port P [--host 127.0.0.1] [--conns N] [--size BYTES]
 *             [--warmup SECONDS] [--duration SECONDS] [--requests MAX]
 *             [--mark-pid PID]
 *
 * Opens N connections; on each, sends a message of SIZE bytes, reads SIZE bytes back and
 * checks they are the message, then sends the next.  Every message starts with its own
 * sequence number, so a server that echoes stale or reordered data fails the check.  A
 * connection sends and receives at once while a message is in flight: a server is free
 * to echo the first part of a large message before it has read the rest, and a client
 * that only read after it finished sending could deadlock against it once the socket
 * buffers fill.
 *
 * Phases: the connections run for --warmup seconds uncounted; then the client sends
 * SIGUSR1 to --mark-pid (the server, which reports its CPU time so far), counts the
 * requests of the next --duration seconds (or until --requests, if given), sends SIGUSR1
 * again and prints one JSON line:
 *
 *   {"requests": R, "elapsed": SECONDS, "bytes": R*SIZE, "conns": N, "size": SIZE,
 *    "warmup_requests": W, "utime": ..., "stime": ...}
 *
 * utime/stime are the client's own CPU, so the harness can tell when the client, not the
 * server, was the bottleneck.  Any failure (refused, reset, short or wrong echo, no
 * progress for STALL_SECONDS) prints a message to stderr and exits 1.
 *
 * One thread, epoll, edge-triggered: each socket is registered once for both directions
 * and driven until the kernel says EAGAIN, so the client costs few syscalls per request
 * and stays ahead of the servers it measures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALL_SECONDS 10.0

struct conn {
    int fd;
    size_t sent, got;
    uint64_t seq;
    unsigned char *sbuf, *rbuf;
};

static size_t msg_size = 1024;
static long long counted, warm_count;
static int counting, finished;
static long long max_requests;

static void die(const char *what) {
    fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "echo_load: %s\n", what);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void stamp(struct conn *c) {
    memcpy(c->sbuf, &c->seq, sizeof c->seq < msg_size ? sizeof c->seq : msg_size);
}

/* Move one connection as far as the kernel lets it; returns 1 if anything moved. */
static int drive(struct conn *c) {
    int moved = 0;
    for (;;) {
        int progress = 0;
        if (c->sent < msg_size) {
            ssize_t n = send(c->fd, c->sbuf + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
            if (n > 0) {
                c->sent += (size_t)n;
                progress = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                die("send");
            }
        }
        if (c->got < msg_size) {
            ssize_t n = recv(c->fd, c->rbuf + c->got, msg_size - c->got, 0);
            if (n > 0) {
                c->got += (size_t)n;
                progress = 1;
            } else if (n == 0) {
                fail("server closed a connection mid-run");
            } else if (errno != EAGAIN && errno != EINTR) {
                die("recv");
            }
        }
        if (c->sent == msg_size && c->got == msg_size) {
            if (memcmp(c->sbuf, c->rbuf, msg_size) != 0)
                fail("echo differs from the message sent");
            if (counting)
                counted++;
            else
                warm_count++;
            if (counting && max_requests && counted >= max_requests)
                finished = 1;
            if (finished)
                return 1;
            c->seq++;
            stamp(c);
            c->sent = c->got = 0;
            progress = 1;
        }
        if (!progress)
            return moved;
        moved = 1;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: echo_load --port P [--host H] [--conns N] [--size BYTES] "
                    "[--warmup S] [--duration S] [--requests MAX] [--mark-pid PID]\n");
    exit(2);
}

static void mark(pid_t pid) {
    if (pid > 0 && kill(pid, SIGUSR1) != 0)
        die("kill(mark-pid, SIGUSR1)");
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, nconns = 10;
    double warmup = 0.5, duration = 3.0;
    pid_t mark_pid = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--size")) msg_size = (size_t)atol(v);
        else if (!strcmp(a, "--warmup")) warmup = atof(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--requests")) max_requests = atoll(v);
        else if (!strcmp(a, "--mark-pid")) mark_pid = (pid_t)atoi(v);
        else usage();
    }
    if (port <= 0 || nconns <= 0 || msg_size == 0)
        usage();

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        fail("--host must be an IPv4 address");

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns)
        fail("out of memory");
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->sbuf = malloc(msg_size);
        c->rbuf = malloc(msg_size);
        if (!c->sbuf || !c->rbuf)
            fail("out of memory");
        for (size_t j = 0; j < msg_size; j++)
            c->sbuf[j] = (unsigned char)('a' + (i + j) % 26);
        c->seq = (uint64_t)i << 40;
        stamp(c);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0)
            die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
            die("epoll_ctl");
    }

    double start = now(), t0 = start + warmup, t_end = 0, last_progress = start;
    if (warmup <= 0) {
        mark(mark_pid);
        counting = 1;
        t0 = now();
        t_end = t0 + duration;
    }
    struct epoll_event events[256];
    while (!finished) {
        double t = now(), deadline = counting ? t_end : t0;
        int timeout_ms = (int)ceil((deadline - t) * 1000);
        if (timeout_ms < 0)
            timeout_ms = 0;
        int n = epoll_wait(ep, events, 256, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n && !finished; i++)
            if (drive(events[i].data.ptr))
                last_progress = t;
        t = now();
        if (!counting && t >= t0) {
            mark(mark_pid);
            counting = 1;
            t0 = t;
            t_end = t0 + duration;
        } else if (counting && t >= t_end) {
            finished = 1;
        }
        if (n > 0)
            last_progress = t;
        else if (t - last_progress > STALL_SECONDS)
            fail("no progress for 10 s");
    }
    double elapsed = now() - t0;
    mark(mark_pid);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"requests\": %lld, \"elapsed\": %.6f, \"bytes\": %lld, \"conns\": %d, "
           "\"size\": %zu, \"warmup_requests\": %lld, \"utime\": %.6f, \"stime\": %.6f}\n",
           counted, elapsed, counted * (long long)msg_size, nconns, msg_size, warm_count,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);
    return 0;
}

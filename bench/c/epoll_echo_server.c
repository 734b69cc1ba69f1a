/* epoll_echo_server: the least an echo server can do per request, as the reference
 * row of the echo benchmarks.  Writes back whatever it reads, counts the bytes.
 *
 *   epoll_echo_server [--port P]        (0 or absent: any free port, printed)
 *
 * Speaks the protocol of bench/servers.py: READY <port>, a JSON report on SIGUSR1, the
 * same report and exit on SIGTERM.  See server_common.h.
 */
#include "server_common.h"

static const char *transform(struct conn *c, const char *in, size_t n, size_t *out_len) {
    (void)c;
    served_bytes += (long long)n;
    *out_len = n;
    return in;
}

int main(int argc, char **argv) {
    return server_main(argc, argv);
}

/* http_responder: the least an HTTP/1.1 keep-alive server can do per request, as the
 * reference row of the HTTP benchmarks.  Answers every request with the same fixed
 * "Hello, World!" response the Python servers send.
 *
 *   http_responder [--port P]           (0 or absent: any free port, printed)
 *
 * A request is whatever ends with an empty line (CRLF CRLF): enough for GET requests
 * such as wrk's, which have no body.  The end of a request may be split across reads,
 * so how much of CRLF CRLF has been seen is kept per connection.  Pipelined requests in
 * one read get one response each, in one send.
 *
 * Speaks the protocol of bench/servers.py: READY <port>, a JSON report on SIGUSR1, the
 * same report and exit on SIGTERM.  See server_common.h.
 */
#include "server_common.h"

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";
#define RESPONSE_LEN (sizeof RESPONSE - 1)

static char *out_buf;
static size_t out_cap;

static const char *transform(struct conn *c, const char *in, size_t n, size_t *out_len) {
    static const char end[4] = {'\r', '\n', '\r', '\n'};
    size_t complete = 0;
    int state = c->parse_state;  /* how many bytes of CRLF CRLF were just seen */
    for (size_t i = 0; i < n; i++) {
        if (in[i] == end[state]) {
            if (++state == 4) {
                complete++;
                state = 0;
            }
        } else {
            state = in[i] == '\r' ? 1 : 0;
        }
    }
    c->parse_state = state;
    served_bytes += (long long)n;
    served_requests += (long long)complete;
    if (complete * RESPONSE_LEN > out_cap) {
        out_cap = complete * RESPONSE_LEN;
        out_buf = realloc(out_buf, out_cap);
        if (!out_buf)
            die("realloc");
    }
    for (size_t k = 0; k < complete; k++)
        memcpy(out_buf + k * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
    *out_len = complete * RESPONSE_LEN;
    return out_buf;
}

int main(int argc, char **argv) {
    return server_main(argc, argv);
}

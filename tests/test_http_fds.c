/*
 * The HTTP server at the edges of its resources and life: accept running
 * out of file descriptors while idle keep-alive connections hold them all
 * (the longest-idle ones are closed to make room, issue 8), and
 * corio_http_server_close called from one of the server's own handlers.
 * Clients are streams on the same loop.
 */
#include "runner.h"

#include "corio/http.h"
#include "http/server_internal.h"

#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define NIDLE 16
#define SLACK 8                           /* fds the loop and server may open besides the connections */
#define KEEPALIVE_MS 600000u              /* never reached: the idle clients stay for the whole test */
#define ANSWER_MS (10000 * TEST_SLOWDOWN) /* generous: an answer takes milliseconds */

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_response_send(resp, 200, "text/plain", "Hello, world!", 13);
}

/* Send one request on s and wait (at most ANSWER_MS) for its answer.
 * True if it came. */
static bool ask(corio_stream *s)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *line;
    corio_deadline d = corio_deadline_push(ANSWER_MS);
    bool ok = corio_stream_write(s, req, sizeof req - 1) == 0 && corio_stream_drain(s) == 0 &&
              corio_stream_readuntil(s, "Hello, world!", 13, &line) > 0;
    corio_deadline_pop(d);
    return ok;
}

/* Connect and make one request; NULL if either failed. */
static corio_stream *client(uint16_t port)
{
    corio_stream *s;
    corio_deadline d = corio_deadline_push(ANSWER_MS);
    int r = corio_stream_connect("127.0.0.1", port, &s);
    corio_deadline_pop(d);
    if (r < 0)
        return NULL;
    if (!ask(s)) {
        corio_stream_close(s);
        return NULL;
    }
    return s;
}

/* Does the server close s (EOF) within ANSWER_MS? */
static bool sees_eof(corio_stream *s)
{
    char b[64];
    corio_deadline d = corio_deadline_push(ANSWER_MS);
    ssize_t n = corio_stream_read(s, b, sizeof b);
    corio_deadline_pop(d);
    return n == 0;
}

/* Wait (bounded) until the server has parked n connections. */
static void wait_idle(corio_http_server *srv, unsigned n)
{
    uint64_t t0 = test_ms();
    while (srv->nidle != n && test_ms() - t0 < ANSWER_MS)
        CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(srv->nidle, n);
}

/* The lowest fd number free now: the next socket gets it. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

static void *fds_main(void *arg)
{
    (void)arg;
    /* The limit is in place before the server starts: io_uring takes the
     * limit of an accept when the accept is submitted, so one lowered
     * later would not bind the accept already waiting.  Room for the
     * listener, NIDLE connections (both ends), and a few more. */
    int base = lowest_free_fd();
    struct rlimit old, low;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    low = old;
    low.rlim_cur = (rlim_t)base + 1 + 2 * NIDLE + SLACK;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &low));

    corio_http_server_config cfg = {.keepalive_timeout_ms = KEEPALIVE_MS};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, hello, NULL, &cfg, &srv));
    uint16_t port = corio_http_server_port(srv);
    corio_stream *idle[NIDLE];
    for (int i = 0; i < NIDLE; i++) {
        idle[i] = client(port);
        CHECK(idle[i]);
        wait_idle(srv, (unsigned)i + 1); /* parked in this order: idle[0] is the oldest */
    }
    /* fill what is left but one fd: the next client's socket takes it,
     * so the server's accept finds none */
    int filler[SLACK], nfiller = 0;
    while (lowest_free_fd() < (int)low.rlim_cur - 1) {
        CHECK(nfiller < SLACK);
        filler[nfiller++] = dup(0);
    }

    /* A new client is answered long before the keep-alive time-out: the
     * server closed its longest-idle connection(s) to make room. */
    uint64_t t0 = test_ms();
    corio_stream *fresh = client(port);
    CHECK(fresh);
    CHECK(test_ms() - t0 < ANSWER_MS);
    CHECK(sees_eof(idle[0]));
    /* the newest idle connection was left alone, and still works */
    CHECK(ask(idle[NIDLE - 1]));

    /* and again, with only the fresh client's fd given back on our side */
    corio_stream_close(fresh);
    corio_stream *again = client(port);
    CHECK(again);

    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    while (nfiller)
        close(filler[--nfiller]);
    corio_stream_close(again);
    for (int i = 0; i < NIDLE; i++)
        corio_stream_close(idle[i]);
    CHECK_OK(corio_http_server_close(srv, 1000));
    return NULL;
}

TEST(out_of_fds_closes_the_longest_idle_keepalive_connections)
{
    /* valgrind enforces a lowered RLIMIT_NOFILE itself, after the kernel's
     * accept4 has already taken the connection: it closes the new fd and
     * reports EMFILE, so the client is dropped instead of waiting in the
     * backlog as it does under the kernel's own limit. */
    if (TEST_VALGRIND)
        SKIP("valgrind emulates RLIMIT_NOFILE after accept4 took the connection");
    test_run(fds_main, NULL);
}

/* ---- corio_http_server_close from a handler ---- */

static corio_http_server *closing_srv;
static int close_result = 1;

static void shutdown_handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    if (req->path.len == 9 && memcmp(req->path.ptr, "/shutdown", 9) == 0) {
        close_result = corio_http_server_close(closing_srv, 1000);
        /* the server is closed, but this connection still answers */
        corio_http_response_send(resp, 200, "text/plain", "bye", 3);
        return;
    }
    corio_http_response_send(resp, 200, "text/plain", "Hello, world!", 13);
}

/* Read everything until EOF (bounded); returns the length, -1 on error. */
static ssize_t read_all(corio_stream *s, char *buf, size_t cap)
{
    size_t have = 0;
    corio_deadline d = corio_deadline_push(ANSWER_MS);
    for (;;) {
        ssize_t n = corio_stream_read(s, buf + have, cap - 1 - have);
        if (n <= 0) {
            corio_deadline_pop(d);
            buf[have] = 0;
            return n == 0 ? (ssize_t)have : -1;
        }
        have += (size_t)n;
    }
}

static void *close_main(void *arg)
{
    (void)arg;
    int baseline = test_fd_count();
    corio_http_server_config cfg = {.keepalive_timeout_ms = KEEPALIVE_MS};
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, shutdown_handler, NULL, &cfg, &closing_srv));
    uint16_t port = corio_http_server_port(closing_srv);
    corio_stream *idle = client(port); /* a parked keep-alive connection */
    CHECK(idle);
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s));
    static const char req[] = "GET /shutdown HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_OK(corio_stream_write(s, req, sizeof req - 1));
    char buf[1024];
    ssize_t n = read_all(s, buf, sizeof buf);
    CHECK(n > 0);
    CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
    CHECK(n >= 3 && memcmp(buf + n - 3, "bye", 3) == 0);
    CHECK_EQ(close_result, 0);
    CHECK(sees_eof(idle)); /* the parked connection was closed too */
    corio_stream_close(idle);
    corio_stream_close(s);
    /* listener and both server ends closed, the server freed (ASan checks
     * that), and no new connection is taken */
    CHECK_EQ(test_fd_count(), baseline);
    corio_stream *late;
    CHECK_ERR(corio_stream_connect("127.0.0.1", port, &late), -ECONNREFUSED);
    return NULL;
}

TEST(server_close_from_a_handler_finishes_that_connection_last) { test_run(close_main, NULL); }

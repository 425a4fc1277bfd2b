/*
 * The HTTP/1.1 server (src/http/server.c) seen from the wire.  The server
 * runs on the test's loop; the client is plain blocking socket code on a
 * thread-pool worker (corio_to_thread), so what it checks is exactly the
 * bytes a real client gets: responses (with the Date value masked), keep-
 * alive, pipelining, parse errors answered once, 100-continue, unread
 * bodies, the head deadline, the idle timeout, the connection cap and a
 * graceful close with a request in flight.
 */
#include "runner.h"

#include "internal.h"             /* live task count: idle connections hold no task */
#include "http/server_internal.h" /* a connection's unread input: its bound */

#include <corio/http.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the handler under test ---- */

static int handled;        /* requests that reached the handler (loop thread writes, client reads) */
static int release_slow;   /* set by the client: /release may answer now */
static int flood_sent;     /* set by the client: /hold may look at its input now */
static size_t held_unread; /* what /hold found unread */

static bool path_is(const corio_http_request *req, const char *p)
{
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
    if (path_is(req, "/echo")) {
        const char *b;
        size_t n;
        int r = corio_http_request_read_body(req, 1 << 20, &b, &n);
        if (r < 0)
            return; /* the server answers 400 / 408 / 413 itself */
        corio_http_response_send(resp, 200, "text/plain", b, n);
    } else if (path_is(req, "/pieces")) {
        /* streamed body reads in small pieces, echoed as a chunked response */
        corio_http_response_begin(resp, 200, "text/plain");
        char buf[3];
        ssize_t r;
        while ((r = corio_http_request_read(req, buf, sizeof buf)) > 0)
            corio_http_response_write(resp, buf, (size_t)r);
        corio_http_response_end(resp);
    } else if (path_is(req, "/stream")) {
        corio_http_response_begin(resp, 200, "text/plain");
        corio_http_response_write(resp, "ab", 2);
        corio_http_response_write(resp, "cde", 3);
        corio_http_response_end(resp);
    } else if (path_is(req, "/noread")) {
        corio_http_response_send(resp, 200, "text/plain", "ok", 2);
    } else if (path_is(req, "/slow")) {
        corio_sleep_ms(300);
        corio_http_response_send(resp, 200, "text/plain", "slow", 4);
    } else if (path_is(req, "/release")) {
        /* answers once the client says so (release_slow): in flight for
         * as long as the client needs, however slow the machine */
        for (int i = 0; i < 60000 && !__atomic_load_n(&release_slow, __ATOMIC_SEQ_CST); i++)
            if (corio_sleep_ms(1) < 0)
                return;
        corio_http_response_send(resp, 200, "text/plain", "slow", 4);
    } else if (path_is(req, "/hold")) {
        /* reads none of its body until the client sent what it could */
        for (int i = 0; i < 60000 && !__atomic_load_n(&flood_sent, __ATOMIC_SEQ_CST); i++)
            if (corio_sleep_ms(1) < 0)
                return;
        conn *c = CORIO__CONTAINER_OF(req, conn, req);
        __atomic_store_n(&held_unread, corio__sockin_unread(&c->in), __ATOMIC_SEQ_CST);
        corio_http_response_send(resp, 200, "text/plain", "held", 4);
    } else if (path_is(req, "/hang")) {
        corio_sleep_ms(600000); /* until the server's close cancels it */
    } else if (path_is(req, "/q")) {
        corio_http_response_send(resp, 200, NULL, req->query.ptr, req->query.len);
    } else if (path_is(req, "/hdr")) {
        size_t n = 0;
        const char *v = corio_http_request_header(req, "x-thing", &n);
        CHECK_OK(corio_http_response_add_header(resp, "X-Echo", "yes"));
        corio_http_response_send(resp, 200, "text/plain", v ? v : "none", v ? n : 4);
    } else {
        corio_http_response_send(resp, 200, "text/plain", "hello", 5);
    }
}

/* ---- blocking client helpers (run on a worker thread) ---- */

static int cconnect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {.tv_sec = 30}; /* a ceiling for every wait: far above what one busy CPU needs */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void csend(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

static void csends(int fd, const char *s) { csend(fd, s, strlen(s)); }

static size_t count_of(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

/* Read until EOF (true) or until `needle` occurs `count` times (false), or
 * the 30 s receive timeout (a failure).  buf is NUL-terminated; the Date
 * field's value is replaced by "X". */
static bool crecv(int fd, char *buf, size_t cap, const char *needle, size_t count, size_t *len)
{
    size_t n = 0;
    bool eof = false;
    for (;;) {
        buf[n] = 0;
        if (needle && count_of(buf, needle) >= count)
            break;
        CHECK(n + 1 < cap);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        CHECK(r >= 0 || errno == ECONNRESET);
        if (r <= 0) {
            eof = true;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = 0;
    /* mask dates */
    for (char *p = buf; (p = strstr(p, "Date: "));) {
        char *e = strstr(p, "\r\n");
        if (!e)
            break;
        memmove(p + 7, e, strlen(e) + 1);
        p[6] = 'X';
        p += 7;
    }
    if (len)
        *len = strlen(buf);
    return eof;
}

/* ---- harness: the server on the loop, the client on a worker ---- */

typedef struct tctx {
    corio_http_server_config cfg;
    void (*client)(struct tctx *t);
    int port;
    corio_http_server *srv;
    int close_at_handled; /* > 0: close the server once this many requests reached the handler */
    uint64_t grace_ms;
} tctx;

static void *client_thunk(void *a)
{
    tctx *t = a;
    t->client(t);
    return NULL;
}

static void *client_task(void *a)
{
    CHECK_OK(corio_to_thread(client_thunk, a, NULL));
    return NULL;
}

static void *server_main(void *a)
{
    tctx *t = a;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, handler, NULL, &t->cfg, &t->srv));
    t->port = corio_http_server_port(t->srv);
    corio_task *ct = corio_spawn(client_task, t);
    CHECK(ct);
    if (t->close_at_handled) {
        while (__atomic_load_n(&handled, __ATOMIC_SEQ_CST) < t->close_at_handled)
            CHECK_OK(corio_sleep_ms(1));
        CHECK_OK(corio_http_server_close(t->srv, t->grace_ms));
        CHECK_OK(corio_task_join(ct, NULL));
    } else {
        CHECK_OK(corio_task_join(ct, NULL));
        CHECK_OK(corio_http_server_close(t->srv, 1000));
    }
    return NULL;
}

/* Run client against a fresh server; with close_at_handled > 0 the server
 * is closed (grace grace_ms) as soon as that many requests have reached
 * the handler: the event, not a guess at how long the client takes. */
static void run_client_closing(void (*client)(tctx *t), const corio_http_server_config *cfg,
                               int close_at_handled, uint64_t grace_ms)
{
    tctx t;
    memset(&t, 0, sizeof t);
    if (cfg)
        t.cfg = *cfg;
    t.client = client;
    t.close_at_handled = close_at_handled;
    t.grace_ms = grace_ms;
    test_run(server_main, &t);
}

static void run_client(void (*client)(tctx *t), const corio_http_server_config *cfg)
{
    run_client_closing(client, cfg, 0, 0);
}

#define OK_HELLO                                                                                             \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "                \
    "corio\r\n\r\nhello"

/* ---- tests ---- */

static void c_get(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK_STR(buf, OK_HELLO);
    /* extra headers and case-insensitive lookup */
    csends(fd, "GET /hdr HTTP/1.1\r\nHost: a\r\nX-THING:  val \r\n\r\n");
    crecv(fd, buf, sizeof buf, "val", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Echo: yes\r\nContent-Length: 3\r\nDate: "
                   "X\r\nServer: corio\r\n\r\nval");
    /* HTTP/1.0 without keep-alive: answered, then closed */
    csends(fd, "GET / HTTP/1.0\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "
                   "corio\r\nConnection: close\r\n\r\nhello");
    close(fd);
}
TEST(get_exact_bytes) { run_client(c_get, NULL); }

static void c_head(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    /* HEAD gets the head only: the next response follows right after it */
    csends(fd, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "
                   "corio\r\n\r\n" OK_HELLO);
    csends(fd,
           "HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nDate: "
                   "X\r\nServer: corio\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "
                   "corio\r\nConnection: close\r\n\r\nhello");
    close(fd);
}
TEST(head_has_no_body) { run_client(c_head, NULL); }

static void c_post(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[8192];
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
    crecv(fd, buf, sizeof buf, "world", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nDate: X\r\nServer: "
                   "corio\r\n\r\nhello world");
    csends(
        fd,
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0"
        "\r\nTrailer: x\r\n\r\n");
    crecv(fd, buf, sizeof buf, "abcde", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "
                   "corio\r\n\r\nabcde");
    /* a chunked body sent in pieces, read in 3-byte pieces, echoed chunked */
    csends(fd, "POST /pieces HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab");
    usleep(50000);
    csends(fd, "cd\r\n3\r\nefg\r\n0\r\n\r\n");
    crecv(fd, buf, sizeof buf, "\r\n0\r\n\r\n", 1, NULL);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nDate: "
                       "X\r\nServer: corio\r\n\r\n";
    CHECK(strncmp(buf, head, strlen(head)) == 0);
    /* the pieces depend on how the bytes arrived: decode the chunks */
    char got[64] = "";
    for (const char *p = buf + strlen(head);;) {
        char *end;
        unsigned long sz = strtoul(p, &end, 16);
        CHECK(end[0] == '\r' && end[1] == '\n');
        if (sz == 0)
            break;
        CHECK(sz <= 3);
        strncat(got, end + 2, sz);
        p = end + 2 + sz + 2;
    }
    CHECK_STR(got, "abcdefg");
    /* a large Content-Length body arriving over several reads */
    static char big[200001];
    memset(big, 'z', sizeof big - 1);
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n");
    csend(fd, big, 200000);
    static char rb[300000];
    size_t n;
    crecv(fd, rb, sizeof rb, "zzzz", 50000, &n);
    for (;;) { /* until the whole body is in */
        if (n >= 200000 && strspn(strstr(rb, "\r\n\r\n") + 4, "z") == 200000)
            break;
        ssize_t r = recv(fd, rb + n, sizeof rb - 1 - n, 0);
        CHECK(r > 0);
        n += (size_t)r;
        rb[n] = 0;
    }
    CHECK(strstr(rb, "Content-Length: 200000\r\n"));
    close(fd);
}
TEST(post_length_and_chunked) { run_client(c_post, NULL); }

static void c_stream(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "0\r\n\r\n", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nDate: "
                   "X\r\nServer: corio\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
    /* 1.0: no chunks, the end of the body is the close */
    csends(fd, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nServer: corio\r\nConnection: "
                   "close\r\n\r\nabcde");
    close(fd);
}
TEST(chunked_response) { run_client(c_stream, NULL); }

static void c_keepalive(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    for (int i = 0; i < 5; i++) {
        csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        crecv(fd, buf, sizeof buf, "hello", 1, NULL);
        CHECK_STR(buf, OK_HELLO);
    }
    /* 1.0 with keep-alive is kept too, and says so */
    csends(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK(strstr(buf, "Connection: keep-alive\r\n"));
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK_STR(buf, OK_HELLO);
    close(fd);
}
TEST(keep_alive) { run_client(c_keepalive, NULL); }

static void c_pipeline(tctx *t)
{
    int fd = cconnect(t->port);
    char req[4096] = "", buf[16384];
    for (int i = 0; i < 16; i++)
        snprintf(req + strlen(req), sizeof req - strlen(req), "GET /q?%02d HTTP/1.1\r\nHost: a\r\n\r\n", i);
    csends(fd, req);
    crecv(fd, buf, sizeof buf, "HTTP/1.1 200", 16, NULL);
    /* wait for the last body too */
    while (!strstr(buf, "\r\n\r\n15")) {
        size_t n = strlen(buf);
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        CHECK(r > 0);
        buf[n + (size_t)r] = 0;
    }
    const char *p = buf;
    for (int i = 0; i < 16; i++) {
        char want[64];
        snprintf(want, sizeof want, "Content-Length: 2\r\nDate: ");
        p = strstr(p, want);
        CHECK(p);
        p = strstr(p, "\r\n\r\n");
        CHECK(p);
        p += 4;
        char num[3] = {p[0], p[1], 0};
        CHECK_EQ(atoi(num), i);
    }
    close(fd);
}
TEST(pipelining_16_in_order) { run_client(c_pipeline, NULL); }

static const struct {
    const char *req;
    int status;
} bad_cases[] = {
    {"GET / HTTP/1.1\r\n\r\n", 400}, /* no Host */
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413},
    {NULL, 414}, /* built below: an over-long target */
    {NULL, 431}, /* an over-long header */
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
};

static void c_bad(tctx *t)
{
    static char big[20000], buf[8192];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const char *req = bad_cases[i].req;
        if (bad_cases[i].status == 414) {
            strcpy(big, "GET /");
            memset(big + 5, 'a', 5000);
            strcpy(big + 5005, " HTTP/1.1\r\nHost: a\r\n\r\n");
            req = big;
        } else if (bad_cases[i].status == 431) {
            strcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
            size_t n = strlen(big);
            memset(big + n, 'b', 9000);
            strcpy(big + n + 9000, "\r\n\r\n");
            req = big;
        }
        int before = __atomic_load_n(&handled, __ATOMIC_SEQ_CST);
        int fd = cconnect(t->port);
        csends(fd, req);
        /* a valid request right behind the bad one must never be served */
        csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
        char want[128];
        snprintf(want, sizeof want, "HTTP/1.1 %d %s\r\n", bad_cases[i].status,
                 corio_http_reason(bad_cases[i].status));
        if (strncmp(buf, want, strlen(want)) != 0)
            test_fail(__FILE__, __LINE__, "case %zu: got %.60s", i, buf);
        CHECK_EQ(count_of(buf, "HTTP/1.1 "), 1);
        CHECK(strstr(buf, "\r\nConnection: close\r\n"));
        CHECK_EQ(__atomic_load_n(&handled, __ATOMIC_SEQ_CST), before);
        close(fd);
    }
}
TEST(parse_errors_answered_once) { run_client(c_bad, NULL); }

static void c_bad_after_good(tctx *t)
{
    /* a good request, then garbage: one answer each, then the close */
    int fd = cconnect(t->port);
    char buf[8192];
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK(strncmp(buf, OK_HELLO "HTTP/1.1 400 Bad Request\r\n", strlen(OK_HELLO) + 26) == 0);
    CHECK_EQ(count_of(buf, "HTTP/1.1 "), 2);
    close(fd);
}
TEST(parse_error_after_good_request) { run_client(c_bad_after_good, NULL); }

static void c_continue(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    crecv(fd, buf, sizeof buf, "\r\n\r\n", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    csends(fd, "abcde");
    crecv(fd, buf, sizeof buf, "abcde", 1, NULL);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: X\r\nServer: "
                   "corio\r\n\r\nabcde");
    /* a handler that does not read: no 100, the answer says close */
    csends(fd, "POST /noread HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: X\r\nServer: "
                   "corio\r\nConnection: close\r\n\r\nok");
    close(fd);
}
TEST(expect_100_continue) { run_client(c_continue, NULL); }

static void c_unread(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[8192];
    /* small unread bodies (length and chunked) are drained; the connection goes on */
    csends(fd, "POST /noread HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
               "POST /noread HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK_EQ(count_of(buf, "HTTP/1.1 200 OK"), 3);
    CHECK(strstr(buf, OK_HELLO));
    close(fd);
    /* a body beyond max_drain: answered with close, not read */
    fd = cconnect(t->port);
    csends(fd, "POST /noread HTTP/1.1\r\nHost: a\r\nContent-Length: 500000\r\n\r\nxxxx");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: X\r\nServer: "
                   "corio\r\nConnection: close\r\n\r\nok");
    close(fd);
}
TEST(unread_body_drained) { run_client(c_unread, NULL); }

/* The time-out tests read t0 before they connect: everything the server
 * does for the connection (and the loop clock its time-outs start from)
 * comes after a poll that saw the connect, so the time-out cannot end
 * before t0 + its length, however slowly the client thread runs. */
static void c_slowloris(tctx *t)
{
    uint64_t t0 = test_ms();
    int fd = cconnect(t->port);
    const char *req = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool answered = false;
    for (size_t i = 0; req[i]; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            answered = true;
            break;
        }
    }
    CHECK(answered);
    uint64_t el = test_ms() - t0;
    char buf[4096];
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK(strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK(el >= 500 && el < 5000); /* the 500 ms deadline, not the 10 s default */
    close(fd);
}
TEST(head_deadline_slowloris)
{
    corio_http_server_config cfg = {.head_timeout_ms = 500};
    run_client(c_slowloris, &cfg);
}

static void c_idle(tctx *t)
{
    uint64_t t0 = test_ms();
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "");
    uint64_t el = test_ms() - t0;
    CHECK(el >= 300 && el < 5000); /* the 300 ms time-out, not the 15 s default */
}
TEST(idle_keepalive_timeout)
{
    corio_http_server_config cfg = {.keepalive_timeout_ms = 300};
    run_client(c_idle, &cfg);
}

static void c_cap(tctx *t)
{
    char buf[4096];
    int a = cconnect(t->port), b = cconnect(t->port);
    csends(a, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(a, buf, sizeof buf, "hello", 1, NULL);
    csends(b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(b, buf, sizeof buf, "hello", 1, NULL);
    int c = cconnect(t->port); /* lands in the backlog */
    csends(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    struct pollfd p = {.fd = c, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 300), 0);
    close(a);
    crecv(c, buf, sizeof buf, "hello", 1, NULL);
    CHECK_STR(buf, OK_HELLO);
    close(b);
    close(c);
}
TEST(connection_cap)
{
    corio_http_server_config cfg = {.max_connections = 2};
    run_client(c_cap, &cfg);
}

static void c_graceful(tctx *t)
{
    char buf[4096];
    int idle = cconnect(t->port);
    int busy = cconnect(t->port);
    csends(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(idle, buf, sizeof buf, "hello", 1, NULL);
    csends(busy, "GET /release HTTP/1.1\r\nHost: a\r\n\r\n");
    /* the server closes once /release is in its handler: the idle one
     * goes at once, while that request is still in flight (it answers
     * only after this client saw the idle one's EOF), and the request in
     * flight is finished (and says close) */
    CHECK(crecv(idle, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "");
    __atomic_store_n(&release_slow, 1, __ATOMIC_SEQ_CST);
    CHECK(crecv(busy, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nDate: X\r\nServer: "
                   "corio\r\nConnection: close\r\n\r\nslow");
    close(idle);
    close(busy);
    /* nobody listens any more */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);
}

TEST(graceful_close_finishes_in_flight) { run_client_closing(c_graceful, NULL, 2, 30000); }

static void c_grace_expires(tctx *t)
{
    char buf[4096];
    int busy = cconnect(t->port);
    csends(busy, "GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
    /* the handler never answers: the grace (50 ms) expires, it is
     * cancelled and the connection closed without an answer */
    CHECK(crecv(busy, buf, sizeof buf, NULL, 0, NULL));
    CHECK_STR(buf, "");
    close(busy);
}

TEST(graceful_close_grace_expires) { run_client_closing(c_grace_expires, NULL, 1, 50); }

static void c_body_timeout(tctx *t)
{
    uint64_t t0 = test_ms();
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    uint64_t el = test_ms() - t0;
    CHECK(strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    CHECK(strstr(buf, "\r\nConnection: close\r\n"));
    CHECK(el >= 300 && el < 5000); /* the 300 ms time-out, not the 30 s default */
    /* a bad chunked body is answered 400 by the server */
    fd = cconnect(t->port);
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    close(fd);
}
TEST(body_timeout_and_bad_chunks)
{
    corio_http_server_config cfg = {.body_timeout_ms = 300};
    run_client(c_body_timeout, &cfg);
}

static void c_too_big_chunked(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n"
               "0123456789abcdef0123456789abcdef\r\n0\r\n\r\n");
    CHECK(crecv(fd, buf, sizeof buf, NULL, 0, NULL));
    CHECK(strncmp(buf, "HTTP/1.1 413 ", 13) == 0);
    close(fd);
}
TEST(chunked_body_over_limit)
{
    corio_http_server_config cfg = {.limits = {.max_body = 16}};
    run_client(c_too_big_chunked, &cfg);
}

static int idle_phase;

static void c_idle_many(tctx *t)
{
    enum { N = 100 };
    int fds[N];
    char buf[4096];
    for (int i = 0; i < N; i++) {
        fds[i] = cconnect(t->port);
        csends(fds[i], "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        crecv(fds[i], buf, sizeof buf, "hello", 1, NULL);
    }
    __atomic_store_n(&idle_phase, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&idle_phase, __ATOMIC_SEQ_CST) != 2)
        usleep(1000);
    for (int i = 0; i < N; i++) { /* parked connections wake up for their next request */
        csends(fds[i], "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        crecv(fds[i], buf, sizeof buf, "hello", 1, NULL);
        CHECK_STR(buf, OK_HELLO);
        close(fds[i]);
    }
}

static void *idle_many_main(void *a)
{
    tctx *t = a;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, handler, NULL, NULL, &t->srv));
    t->port = corio_http_server_port(t->srv);
    corio_task *ct = corio_spawn(client_task, t);
    while (__atomic_load_n(&idle_phase, __ATOMIC_SEQ_CST) != 1)
        corio_sleep_ms(5);
    /* main, the client's task, the acceptor, maybe a pool helper: no
     * task per idle connection, once the last one has parked */
    uint64_t t0 = test_ms();
    while (corio__loop()->live_count >= 10 && test_ms() - t0 < 30000)
        corio_sleep_ms(5);
    CHECK_EQ(corio_http_server_connections(t->srv), 100);
    CHECK(corio__loop()->live_count < 10);
    __atomic_store_n(&idle_phase, 2, __ATOMIC_SEQ_CST);
    CHECK_OK(corio_task_join(ct, NULL));
    CHECK_OK(corio_http_server_close(t->srv, 1000));
    return NULL;
}
TEST(idle_connections_hold_no_task)
{
    tctx t;
    memset(&t, 0, sizeof t);
    t.client = c_idle_many;
    test_run(idle_many_main, &t);
}

/* Connections that have sent nothing yet get no task either (they park
 * straight from the accept, or after one empty recv on epoll); one that
 * closes before its first request is closed and counted out; the others
 * are served when their requests come. */
static int fresh_phase;

static void c_fresh_many(tctx *t)
{
    enum { N = 50 };
    int fds[N];
    char buf[4096];
    for (int i = 0; i < N; i++)
        fds[i] = cconnect(t->port);
    __atomic_store_n(&fresh_phase, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&fresh_phase, __ATOMIC_SEQ_CST) != 2)
        usleep(1000);
    close(fds[0]); /* EOF before any request */
    __atomic_store_n(&fresh_phase, 3, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&fresh_phase, __ATOMIC_SEQ_CST) != 4)
        usleep(1000);
    for (int i = 1; i < N; i++) {
        csends(fds[i], "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        crecv(fds[i], buf, sizeof buf, "hello", 1, NULL);
        CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
        CHECK(strstr(buf, "Connection: close\r\n"));
        CHECK_EQ(recv(fds[i], buf, sizeof buf, 0), 0); /* and the server closes it */
        close(fds[i]);
    }
}

static void *fresh_many_main(void *a)
{
    tctx *t = a;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, handler, NULL, NULL, &t->srv));
    t->port = corio_http_server_port(t->srv);
    corio_task *ct = corio_spawn(client_task, t);
    while (__atomic_load_n(&fresh_phase, __ATOMIC_SEQ_CST) != 1)
        corio_sleep_ms(5);
    uint64_t t0 = test_ms();
    while (corio_http_server_connections(t->srv) < 50 && test_ms() - t0 < 30000)
        corio_sleep_ms(5);
    CHECK_EQ(corio_http_server_connections(t->srv), 50);
    /* main, the client's task, the acceptor, maybe a pool helper */
    CHECK(corio__loop()->live_count < 10);
    __atomic_store_n(&fresh_phase, 2, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&fresh_phase, __ATOMIC_SEQ_CST) != 3)
        corio_sleep_ms(5);
    t0 = test_ms();
    while (corio_http_server_connections(t->srv) > 49 && test_ms() - t0 < 30000)
        corio_sleep_ms(5);
    CHECK_EQ(corio_http_server_connections(t->srv), 49);
    __atomic_store_n(&fresh_phase, 4, __ATOMIC_SEQ_CST);
    CHECK_OK(corio_task_join(ct, NULL));
    t0 = test_ms();
    while (corio_http_server_connections(t->srv) > 0 && test_ms() - t0 < 30000)
        corio_sleep_ms(5);
    CHECK_EQ(corio_http_server_connections(t->srv), 0);
    CHECK_OK(corio_http_server_close(t->srv, 1000));
    return NULL;
}
TEST(fresh_connections_hold_no_task_until_their_request)
{
    tctx t;
    memset(&t, 0, sizeof t);
    t.client = c_fresh_many;
    test_run(fresh_many_main, &t);
}

/* Uploads pipelined behind a slow request pile up while its handler
 * sleeps: more than the server holds unread before it stops taking input
 * (16 KiB on io_uring, where a multishot recv keeps receiving), so input
 * is paused and resumed.  Every body comes back whole and in order. */
#define UPLOADS 40
#define UPLOAD_LEN 2000
static void c_pipelined_uploads(tctx *t)
{
    int fd = cconnect(t->port);
    static char req[UPLOADS * (UPLOAD_LEN + 128)];
    size_t n = 0;
    n += (size_t)snprintf(req + n, sizeof req - n, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < UPLOADS; i++) {
        n += (size_t)snprintf(req + n, sizeof req - n,
                              "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%04d", UPLOAD_LEN,
                              i);
        memset(req + n, 'a' + i % 26, UPLOAD_LEN - 4);
        n += UPLOAD_LEN - 4;
    }
    csend(fd, req, n);
    static char buf[UPLOADS * (UPLOAD_LEN + 256) + 4096];
    crecv(fd, buf, sizeof buf, "HTTP/1.1 200", UPLOADS + 1, NULL);
    const char *p = strstr(buf, "\r\n\r\nslow");
    CHECK(p);
    for (int i = 0; i < UPLOADS; i++) {
        /* the last body may still be on its way */
        const char *h;
        while (!(h = strstr(p, "Content-Length: 2000\r\n")) || !strstr(h, "\r\n\r\n") ||
               strlen(strstr(h, "\r\n\r\n") + 4) < UPLOAD_LEN) {
            size_t have = strlen(buf);
            ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
            CHECK(r > 0);
            buf[have + (size_t)r] = 0;
        }
        p = strstr(h, "\r\n\r\n") + 4;
        char want[UPLOAD_LEN];
        snprintf(want, sizeof want, "%04d", i);
        memset(want + 4, 'a' + i % 26, UPLOAD_LEN - 4);
        CHECK(memcmp(p, want, UPLOAD_LEN) == 0);
        p += UPLOAD_LEN;
    }
    close(fd);
}
TEST(pipelined_uploads_beyond_the_input_pause) { run_client(c_pipelined_uploads, NULL); }

/* A client sends a body as fast as it can while the handler reads none of
 * it: the server holds at most its pause mark (16 KiB) plus one kernel
 * buffer (16 KiB) unread, however much arrives (on io_uring the multishot
 * recv is given that byte limit: the kernel fills many buffers per system
 * call, far more than a cancel could stop); then the socket buffers fill
 * and TCP stops the client. */
#define FLOOD_BODY (64u << 20)
static void c_flood_unread(tctx *t)
{
    int fd = cconnect(t->port);
    char head[128];
    snprintf(head, sizeof head, "POST /hold HTTP/1.1\r\nHost: a\r\nContent-Length: %u\r\n\r\n", FLOOD_BODY);
    csends(fd, head);
    /* Send until the connection takes nothing for 200 ms: on a slow machine
     * that may come early, which only makes the check below easier. */
    struct timeval tv = {.tv_usec = 200000};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0);
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    while (sent < FLOOD_BODY) {
        ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (w < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        sent += (size_t)w;
    }
    CHECK(sent < FLOOD_BODY); /* the server stopped taking it */
    __atomic_store_n(&flood_sent, 1, __ATOMIC_SEQ_CST);
    char buf[4096];
    crecv(fd, buf, sizeof buf, "held", 1, NULL);
    CHECK(strstr(buf, "HTTP/1.1 200"));
    CHECK(__atomic_load_n(&held_unread, __ATOMIC_SEQ_CST) <= 16384 + 16384);
    close(fd);
}
TEST(unread_body_input_is_bounded)
{
    corio_http_server_config cfg = {.limits.max_body = FLOOD_BODY};
    run_client(c_flood_unread, &cfg);
}

/* A connection that went idle (parked, no buffers) and then receives one
 * request larger than a read buffer and a kernel-provided buffer: the
 * first bytes start the task, the rest follow in order. */
static void c_big_after_idle(tctx *t)
{
    int fd = cconnect(t->port);
    char buf[4096];
    csends(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    crecv(fd, buf, sizeof buf, "hello", 1, NULL);
    CHECK_STR(buf, OK_HELLO);
    usleep(50 * 1000); /* the server parks the connection meanwhile */
    enum { BODY = 100000 };
    static char req[BODY + 128], resp[BODY + 512];
    size_t n = (size_t)snprintf(req, sizeof req,
                                "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", BODY);
    for (size_t i = 0; i < BODY; i++)
        req[n + i] = (char)('A' + (i * 7) % 26);
    csend(fd, req, n + BODY);
    size_t got = 0;
    char *body = NULL;
    while (!body || strlen(body) < BODY) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        CHECK(r > 0);
        got += (size_t)r;
        resp[got] = 0;
        body = strstr(resp, "\r\n\r\n");
        if (body)
            body += 4;
    }
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n";
    CHECK(strncmp(resp, head, strlen(head)) == 0);
    CHECK(memcmp(body, req + n, BODY) == 0);
    close(fd);
}
TEST(large_request_wakes_a_parked_connection) { run_client(c_big_after_idle, NULL); }

/* corio_http_server_serve_until_signal: several tasks of one loop may wait
 * and each receives the signal; a loop on another thread gets -EBUSY while
 * they wait, and the signals are free again afterwards. */
#include <pthread.h>
#include <signal.h>

static void *sig_waiter(void *arg) { return (void *)(intptr_t)corio_http_server_serve_until_signal(arg); }

static void *other_loop_main(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)corio_http_server_serve_until_signal(NULL);
}

static void *other_loop_thread(void *arg)
{
    void *res = NULL;
    int r = corio_run(NULL, other_loop_main, NULL, &res);
    *(int *)arg = r < 0 ? r : (int)(intptr_t)res;
    return NULL;
}

static void *other_loop_join(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

static void *signal_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {
        corio_task *a = corio_spawn(sig_waiter, NULL);
        corio_task *b = corio_spawn(sig_waiter, NULL);
        CHECK_OK(corio_yield()); /* both wait now */
        int other = 0;
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, other_loop_thread, &other), 0);
        CHECK_OK(corio_to_thread(other_loop_join, &th, NULL));
        CHECK_ERR(other, -EBUSY);
        CHECK_OK(raise(round ? SIGINT : SIGTERM));
        void *res;
        CHECK_OK(corio_task_join(a, &res));
        CHECK_EQ((int)(intptr_t)res, round ? SIGINT : SIGTERM);
        CHECK_OK(corio_task_join(b, &res));
        CHECK_EQ((int)(intptr_t)res, round ? SIGINT : SIGTERM);
    }
    return NULL;
}

TEST(serve_until_signal_several_waiters_one_loop) { test_run(signal_main, NULL); }

/* A handler that cannot be installed is an error at once (the old code
 * ignored it, waited for ever and then "restored" an uninitialised
 * sigaction); the other signal's handler and the slot are left as they
 * were. */
static void *signal_fail_main(void *arg)
{
    (void)arg;
    struct sigaction before, after;
    for (int which = 1; which <= 2; which++) {
        CHECK_OK(sigaction(SIGINT, NULL, &before));
        corio_fi_fail_next("sigaction", which); /* SIGINT's, then SIGTERM's */
        corio_deadline d = corio_deadline_push(2000);
        int r = corio_http_server_serve_until_signal(NULL);
        corio_deadline_pop(d);
        corio_fi_fail_next("sigaction", 0);
        CHECK_ERR(r, -EINVAL);
        CHECK_OK(sigaction(SIGINT, NULL, &after));
        CHECK(after.sa_handler == before.sa_handler);
    }
    /* the slot is free: a real wait still works */
    corio_task *a = corio_spawn(sig_waiter, NULL);
    CHECK_OK(corio_yield());
    CHECK_OK(raise(SIGTERM));
    void *res;
    CHECK_OK(corio_task_join(a, &res));
    CHECK_EQ((int)(intptr_t)res, SIGTERM);
    return NULL;
}

TEST(serve_until_signal_reports_a_handler_it_cannot_install) { test_run(signal_fail_main, NULL); }

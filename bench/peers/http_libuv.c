/*
 * http_libuv — the "plain libuv C server" peer of the HTTP benchmark
 * (bench/http_bench.sh).
 *
 * It is the floor an HTTP server cannot go below with libuv: it does not
 * parse HTTP at all.  Every "\r\n\r\n" in the byte stream is taken as the
 * end of one request and answered with one fixed response (the same bytes
 * corio's examples/http_hello sends, with a frozen Date).  Keep-alive is the
 * default and pipelining works by construction: a read holding 16 request
 * heads gets 16 responses in one write.  The only per-connection state is
 * the uv_tcp_t and how much of "\r\n\r\n" the previous read ended with, so a
 * request head split across reads is still counted once.
 *
 * Reads go into one static buffer shared by every connection: libuv calls
 * alloc_cb and read_cb back to back on one thread, and read_cb is done with
 * the bytes before it returns, so no connection needs its own buffer.  That
 * keeps an idle connection as cheap as libuv allows, which is what the idle
 * RSS comparison should measure.  Responses go out with uv_try_write from a
 * static buffer; only a partial write copies the rest into a uv_write.
 *
 * Usage: http_libuv PORT   (binds 127.0.0.1, prints "ready" once listening)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

static const char RESP[] = "HTTP/1.1 200 OK\r\n"
                           "Content-Type: text/plain\r\n"
                           "Access-Control-Allow-Origin: *\r\n"
                           "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"
                           "Access-Control-Allow-Headers: Content-Type\r\n"
                           "Content-Length: 13\r\n"
                           "Date: Wed, 25 Nov 2026 17:26:24 GMT\r\n"
                           "Server: corio\r\n"
                           "\r\n"
                           "Hello, world!";
#define RESP_LEN (sizeof RESP - 1)
/* One read can hold at most this many complete request heads' worth of
 * answers in the static output buffer; more are sent in several writes. */
#define OUT_MAX 64

typedef struct conn {
    uv_tcp_t tcp; /* first member: the handle pointer is the conn pointer */
    int match;    /* bytes of "\r\n\r\n" matched at the end of the last read */
} conn;

typedef struct wreq {
    uv_write_t req;
    char data[]; /* the unsent tail, owned by the request */
} wreq;

static char rbuf[64 * 1024];
static char obuf[OUT_MAX * RESP_LEN];

static void on_close(uv_handle_t *h) { free(h); }

static void close_conn(conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)h;
    (void)suggested;
    *out = uv_buf_init(rbuf, sizeof rbuf);
}

static void write_cb(uv_write_t *req, int status)
{
    conn *c = req->data;
    free(req);
    if (status < 0)
        close_conn(c);
}

/* Send n fixed responses; a short uv_try_write queues a copy of the rest. */
static int send_responses(conn *c, unsigned n)
{
    while (n) {
        unsigned k = n < OUT_MAX ? n : OUT_MAX;
        size_t len = (size_t)k * RESP_LEN;
        n -= k;
        uv_buf_t b = uv_buf_init(obuf, (unsigned)len);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w == UV_EAGAIN)
            w = 0;
        if (w < 0)
            return w;
        if ((size_t)w == len)
            continue;
        size_t rest = len - (size_t)w;
        wreq *q = malloc(sizeof *q + rest);
        if (!q)
            return UV_ENOMEM;
        memcpy(q->data, obuf + w, rest);
        q->req.data = c;
        b = uv_buf_init(q->data, (unsigned)rest);
        int r = uv_write(&q->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
        if (r < 0) {
            free(q);
            return r;
        }
    }
    return 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    if (nread < 0) {
        close_conn(c);
        return;
    }
    /* A four-state matcher for "\r\n\r\n": state = bytes matched so far. */
    unsigned n = 0;
    int m = c->match;
    for (ssize_t i = 0; i < nread; i++) {
        char ch = buf->base[i];
        if (ch == '\r')
            m = (m == 2) ? 3 : 1;
        else if (ch == '\n' && (m == 1 || m == 3)) {
            if (++m == 4) {
                n++;
                m = 0;
            }
        } else
            m = 0;
    }
    c->match = m;
    if (n && send_responses(c, n) < 0)
        close_conn(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_libuv PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* The idle benchmark holds 10,000 connections. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memcpy(obuf, RESP, RESP_LEN);
    for (unsigned i = 1; i < OUT_MAX; i++)
        memcpy(obuf + i * RESP_LEN, RESP, RESP_LEN);

    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r < 0) {
        fprintf(stderr, "http_libuv: %s\n", uv_strerror(r));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}

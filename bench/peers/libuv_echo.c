/*
 * libuv_echo — the libuv peer for the echo benchmark (bench/echo_bench.sh).
 *
 * A plain, single-threaded libuv TCP echo server written the way a careful
 * libuv user would: one uv_tcp_t per connection with TCP_NODELAY, a read
 * buffer owned by the connection and reused for every read (so the
 * steady state allocates nothing), and each chunk sent back with
 * uv_try_write.  Only when the kernel's send buffer is full (large
 * messages) does the rest go through uv_write; reading is paused until that
 * write completes, both because the reused buffer must not be overwritten
 * while the write still points into it and because that is the
 * backpressure a real server needs.
 *
 * Usage: libuv_echo PORT   (binds 127.0.0.1, prints "ready" once listening)
 *        libuv_echo PATH   (anything but digits: a Unix stream socket at
 *                           PATH, through uv_pipe_t; bench/unix_bench.sh)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* 256 KiB, the size uvloop reads with: measured here, a 64 KiB buffer costs
 * the 100 KiB echo ~40% more CPU per request (two reads and two writes per
 * message instead of one).  The buffer is per connection and only touched
 * pages cost memory. */
#ifndef READ_BUF_SIZE
#define READ_BUF_SIZE (256 * 1024)
#endif

typedef struct conn {
    union { /* first member: the handle pointer is the conn pointer */
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    };
    uv_write_t wreq;
    char buf[READ_BUF_SIZE];
} conn;

static void on_close(uv_handle_t *h) { free(h); }

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    conn *c = (conn *)h;
    *out = uv_buf_init(c->buf, sizeof c->buf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void write_cb(uv_write_t *req, int status)
{
    conn *c = req->data;
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int n = uv_try_write(s, &b, 1);
    if (n == nread)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (unsigned)n;
    }
    /* The remainder still lives in c->buf: stop reading until it is out. */
    uv_read_stop(s);
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &b, 1, write_cb) < 0)
        uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn *c = malloc(sizeof *c);
    if (!c)
        return;
    if (server->type == UV_NAMED_PIPE) {
        uv_pipe_init(server->loop, &c->pipe, 0);
        if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
            uv_close((uv_handle_t *)&c->pipe, on_close);
            return;
        }
        uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
        return;
    }
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : "8888";
    int port = atoi(arg);
    /* libuv writes with write(2), so a peer that vanishes mid-reply would
     * kill the process with SIGPIPE; every libuv server must ignore it. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    if (arg[strspn(arg, "0123456789")] != '\0') {
        uv_pipe_t pserver;
        uv_pipe_init(loop, &pserver, 0);
        unlink(arg);
        int r = uv_pipe_bind(&pserver, arg);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&pserver, 4096, on_connection);
        if (r != 0) {
            fprintf(stderr, "libuv_echo: listen on %s: %s\n", arg, uv_strerror(r));
            return 1;
        }
        printf("ready\n");
        fflush(stdout);
        return uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_tcp_t server;
    struct sockaddr_in addr;

    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", port, &addr);
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "libuv_echo: listen on port %d: %s\n", port, uv_strerror(r));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}

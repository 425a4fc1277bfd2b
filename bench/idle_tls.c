/*
 * idle_tls — what an idle keep-alive HTTPS connection costs a server, in
 * resident memory (bench/tls_bench.sh): bench/idle_conns.c with TLS.
 *
 * From one process (plain epoll and OpenSSL, no corio) it opens N
 * connections to 127.0.0.1:PORT with nonblocking connect, runs a TLS
 * handshake on each (no certificate check: the figure is the server's
 * memory, and verifying 10,000 chains would only slow the run), sends one
 * GET, reads the whole response (head and Content-Length body), and then
 * leaves every connection open and silent: the state a browser leaves a
 * server in between page loads.  The client keeps no session cache, so
 * every handshake is a full one and every server holds the same state.
 * The server's VmRSS and Pss (/proc/PID/status, /proc/PID/smaps_rollup)
 * are read before the first connect and again once all N are idle and
 * SETTLE_MS have passed; the differences divided by N are the figures.
 * Connections are opened in batches of BATCH so the listen backlog never
 * overflows.  Before exiting it checks that the server closed none of them
 * (a server that drops idle connections early would look cheap) and
 * closes them with SO_LINGER 0, so no TIME_WAIT sockets are left.
 *
 * Usage: idle_tls -p PORT -n N --server-pid PID [--settle-ms MS] [--batch B]
 * Output (stdout):
 *   idle_conns: N
 *   idle_rss_before_kib: K
 *   idle_rss_after_kib: K
 *   idle_bytes_per_conn: B          (VmRSS growth / N)
 *   idle_pss_bytes_per_conn: B      (Pss growth / N)
 * Exit status 1 when a connection failed or was closed by the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "idle_common.h"

static const char REQ[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_tls\r\n\r\n";

/* Per connection: how far it has come. */
enum { CONNECTING, HANDSHAKE, WRITING, READING, DONE };

typedef struct conn {
    int fd;
    unsigned char state;
    SSL *ssl;
    /* The response so far, until its head and body are complete. */
    char *buf;
    size_t len;
} conn;

#define RESP_MAX 8192

/* The events the connection waits for after an OpenSSL call returned r. */
static int want_events(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return EPOLLIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return EPOLLOUT;
    return -1;
}

/* True once buf holds a whole response: a head and Content-Length bytes after it. */
static int response_complete(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    long cl = 0;
    for (const char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) {
            cl = strtol(p + 15, NULL, 10);
            break;
        }
    }
    return len >= head + (size_t)cl;
}

/* Drive c as far as it goes; return the epoll events it waits for next, 0 when done, -1 on failure. */
static int step(conn *c)
{
    for (;;) {
        int r;
        switch (c->state) {
        case HANDSHAKE:
            r = SSL_connect(c->ssl);
            if (r != 1)
                return want_events(c->ssl, r);
            c->state = WRITING;
            break;
        case WRITING:
            r = SSL_write(c->ssl, REQ, sizeof REQ - 1);
            if (r <= 0)
                return want_events(c->ssl, r);
            c->state = READING;
            break;
        case READING:
            if (c->len == RESP_MAX)
                return -1;
            r = SSL_read(c->ssl, c->buf + c->len, RESP_MAX - c->len);
            if (r <= 0)
                return want_events(c->ssl, r);
            c->len += (size_t)r;
            if (c->len >= 12 && memcmp(c->buf, "HTTP/1.1 200", 12) != 0)
                return -1;
            if (response_complete(c->buf, c->len)) {
                c->state = DONE;
                free(c->buf);
                c->buf = NULL;
                return 0;
            }
            break;
        default:
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    idle_opts o = {.settle_ms = 1000, .batch = 200};
    if (idle_parse_opts(argc, argv, &o) < 0)
        goto usage;
    int port = o.port, n = o.n, pid = o.pid, settle_ms = o.settle_ms, batch = o.batch;
    if (idle_raise_nofile(n, "idle_tls") < 0)
        return 2;

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* The client's own memory is not measured, but 10,000 connections
     * holding 2 x 17 KB of record buffers each would be 340 MB. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    conn *cs = calloc((size_t)n, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || ep < 0) {
        perror("idle_tls");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long before = proc_kib(pid, "status", "VmRSS:");
    long pss_before = proc_kib(pid, "smaps_rollup", "Pss:");
    if (before < 0) {
        fprintf(stderr, "idle_tls: no process %d\n", pid);
        return 2;
    }
    double t0 = now_s();
    int failed = 0;
    for (int base = 0; base < n; base += batch) {
        int end = base + batch < n ? base + batch : n;
        for (int i = base; i < end; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                perror("idle_tls: socket");
                return 2;
            }
            cs[i].fd = fd;
            int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
            if (r < 0 && errno != EINPROGRESS) {
                fprintf(stderr, "idle_tls: connect #%d: %s\n", i, strerror(errno));
                return 1;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        int pending = end - base;
        while (pending > 0) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, 10000);
            if (k == 0) {
                fprintf(stderr, "idle_tls: %d connections of batch at %d stalled for 10 s\n", pending, base);
                return 1;
            }
            for (int j = 0; j < k; j++) {
                int i = (int)evs[j].data.u32;
                conn *c = &cs[i];
                if (c->state == CONNECTING) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    c->ssl = err ? NULL : SSL_new(ctx);
                    c->buf = malloc(RESP_MAX);
                    if (err || !c->ssl || !c->buf || !SSL_set_fd(c->ssl, c->fd)) {
                        fprintf(stderr, "idle_tls: connection #%d: %s\n", i,
                                err ? strerror(err) : "no memory");
                        return 1;
                    }
                    SSL_set_connect_state(c->ssl);
                    c->state = HANDSHAKE;
                }
                int want = step(c);
                if (want < 0) {
                    unsigned long e = ERR_get_error();
                    fprintf(stderr, "idle_tls: connection #%d failed in state %d: %s\n", i, c->state,
                            e ? ERR_reason_error_string(e) : "bad or no response");
                    ERR_clear_error();
                    failed++;
                    c->state = DONE;
                }
                if (want <= 0) {
                    pending--;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                } else {
                    struct epoll_event ev = {.events = (uint32_t)want, .data.u32 = (uint32_t)i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
        }
    }
    double t_open = now_s() - t0;
    if (failed) {
        fprintf(stderr, "idle_tls: %d connections failed\n", failed);
        return 1;
    }
    usleep((useconds_t)settle_ms * 1000);
    long after = proc_kib(pid, "status", "VmRSS:");
    long pss_after = proc_kib(pid, "smaps_rollup", "Pss:");

    /* A connection the server closed has its FIN (after any close_notify)
     * waiting; unread TLS records (session tickets) are not a close. */
    int closed = 0;
    char tmp[4096];
    for (int i = 0; i < n; i++) {
        ssize_t r;
        while ((r = recv(cs[i].fd, tmp, sizeof tmp, MSG_DONTWAIT)) > 0)
            ;
        if (r == 0 || (r < 0 && errno != EAGAIN))
            closed++;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < n; i++) {
        setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(cs[i].fd);
        SSL_free(cs[i].ssl);
    }
    SSL_CTX_free(ctx);
    fprintf(stderr, "idle_tls: %d TLS connections opened and answered in %.2f s; %d closed by the server\n",
            n, t_open, closed);
    if (after < 0 || closed) {
        fprintf(stderr, "idle_tls: the server %s\n", after < 0 ? "died" : "closed idle connections early");
        return 1;
    }
    printf("idle_conns: %d\n", n);
    printf("idle_rss_before_kib: %ld\n", before);
    printf("idle_rss_after_kib: %ld\n", after);
    printf("idle_bytes_per_conn: %.0f\n", (double)(after - before) * 1024.0 / n);
    if (pss_before >= 0 && pss_after >= 0)
        printf("idle_pss_bytes_per_conn: %.0f\n", (double)(pss_after - pss_before) * 1024.0 / n);
    free(cs);
    return 0;

usage:
    fprintf(stderr, "usage: idle_tls -p PORT -n N --server-pid PID [--settle-ms MS] [--batch B]\n");
    return 2;
}

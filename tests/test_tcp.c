/*
 * TCP servers and clients (src/io/tcp.c) on loopback: echo round trips,
 * 1,000 concurrent connections checked byte for byte, ephemeral ports,
 * IPv6, resets, half-close, backpressure against a peer that stops
 * reading, cancellation of accept and connect, graceful server close, and
 * running out of file descriptors in the accept path.
 */
#include "runner.h"
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[8192];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0) {
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
    }
}

static corio_server *start_echo(const char *host)
{
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start(host, 0, echo_handler, NULL, NULL, &srv));
    CHECK(srv);
    CHECK(corio_server_port(srv) != 0);
    return srv;
}

static void round_trip(const char *host, uint16_t port, const char *msg)
{
    corio_stream *s;
    CHECK_OK(corio_stream_connect(host, port, &s));
    size_t n = strlen(msg);
    CHECK_OK(corio_stream_write(s, msg, n));
    CHECK_OK(corio_stream_drain(s));
    char buf[256];
    CHECK_EQ(corio_stream_readexactly(s, buf, n, NULL), n);
    CHECK_MEM(buf, msg, n);
    CHECK_OK(corio_stream_aclose(s));
}

/* ---- basics ------------------------------------------------------------ */

static void *echo_main(void *arg)
{
    corio_server *srv = start_echo("127.0.0.1");
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK_OK(corio_server_sockname(srv, 0, &ss, &sl));
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), corio_server_port(srv));
    CHECK_ERR(corio_server_sockname(srv, 1, &ss, &sl), -ENOENT);
    round_trip("127.0.0.1", corio_server_port(srv), "hello over tcp");
    round_trip("localhost", corio_server_port(srv), "by name");

    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    char name[64];
    CHECK_OK(corio_stream_sockname(s, &ss, &sl));
    CHECK(strncmp(corio_addr_format((struct sockaddr *)&ss, name, sizeof name), "127.0.0.1:", 10) == 0);
    CHECK_OK(corio_stream_peername(s, &ss, &sl));
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), corio_server_port(srv));
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 100));
    return NULL;
}

TEST(echo_port0_and_addresses) { test_run(echo_main, NULL); }

static char seen_name[64];

static void name_handler(corio_stream *s, void *arg)
{
    snprintf(seen_name, sizeof seen_name, "%s", corio_task_name(corio_current()));
    /* returns without closing: corio closes the stream */
}

static void *handler_name_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, name_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    char buf[4];
    CHECK_EQ(corio_stream_read(s, buf, sizeof buf), 0); /* EOF once the handler returned */
    CHECK(strncmp(seen_name, "conn 127.0.0.1:", 15) == 0);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 0));
    return NULL;
}

TEST(handler_task_named_and_stream_closed_on_return) { test_run(handler_name_main, NULL); }

/* The handler reports the accepted socket's TCP_NODELAY, then answers. */
static void nodelay_handler(corio_stream *s, void *arg)
{
    int on = -1;
    socklen_t len = sizeof on;
    if (getsockopt(corio_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &on, &len) < 0)
        on = -1;
    char c = on < 0 ? 'E' : on ? '1' : '0';
    corio_stream_write(s, &c, 1);
    corio_stream_drain(s);
}

static char nodelay_of_server(bool nagle)
{
    corio_server_config cfg = {.nagle = nagle};
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, nodelay_handler, NULL, &cfg, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    char c = '?';
    CHECK_EQ(corio_stream_read(s, &c, 1), 1);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 0));
    return c;
}

static void *nagle_main(void *arg)
{
    CHECK_EQ(nodelay_of_server(false), '1'); /* the default: small writes leave at once */
    CHECK_EQ(nodelay_of_server(true), '0');  /* nagle asked for: TCP_NODELAY stays off */
    return NULL;
}

TEST(nodelay_by_default_nagle_on_request) { test_run(nagle_main, NULL); }

static void *refused_main(void *arg)
{
    corio_server *srv = start_echo("127.0.0.1");
    uint16_t port = corio_server_port(srv);
    CHECK_OK(corio_server_close(srv, 0));
    corio_stream *s;
    CHECK_ERR(corio_stream_connect("127.0.0.1", port, &s), -ECONNREFUSED);
    CHECK(s == NULL);
    CHECK_ERR(corio_stream_connect("no-such-host.invalid", port, &s), -ENOENT);
    return NULL;
}

TEST(connect_refused_and_unknown_host) { test_run(refused_main, NULL); }

static void *ipv6_main(void *arg)
{
    corio_server *srv;
    int r = corio_server_start("::1", 0, echo_handler, NULL, NULL, &srv);
    if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT)
        return (void *)1;
    CHECK_OK(r);
    struct sockaddr_storage ss;
    CHECK_OK(corio_server_sockname(srv, 0, &ss, NULL));
    CHECK_EQ(ss.ss_family, AF_INET6);
    round_trip("::1", corio_server_port(srv), "over ipv6");
    CHECK_OK(corio_server_close(srv, 0));

    /* all interfaces: one dual-stack socket answers IPv4 and IPv6 */
    srv = start_echo(NULL);
    round_trip("127.0.0.1", corio_server_port(srv), "v4 to any");
    round_trip("::1", corio_server_port(srv), "v6 to any");
    CHECK_OK(corio_server_close(srv, 0));
    return NULL;
}

TEST(ipv6_loopback_and_dual_stack)
{
    if (test_run(ipv6_main, NULL))
        SKIP("no IPv6 loopback");
}

/* ---- many connections ---------------------------------------------------- */

#define NCONN 1000
#define CONN_BYTES 3000

static uint16_t many_port;
static int many_ok;

static unsigned char conn_byte(uintptr_t id, size_t i) { return (unsigned char)(id * 31 + i * 7 + (i >> 8)); }

static void *many_client(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", many_port, &s));
    unsigned char out[CONN_BYTES], in[CONN_BYTES];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = conn_byte(id, i);
    /* in two parts, with a pause, so the server sees several reads */
    CHECK_OK(corio_stream_write(s, out, 1000));
    CHECK_OK(corio_stream_drain(s));
    CHECK_OK(corio_sleep_ms(id % 7));
    CHECK_OK(corio_stream_write(s, out + 1000, sizeof out - 1000));
    CHECK_OK(corio_stream_write_eof(s));
    CHECK_EQ(corio_stream_readexactly(s, in, sizeof in, NULL), sizeof in);
    CHECK_MEM(in, out, sizeof out);
    CHECK_EQ(corio_stream_read(s, in, 1), 0);
    corio_stream_close(s);
    many_ok++;
    return NULL;
}

static void *many_main(void *arg)
{
    corio_server *srv = start_echo("127.0.0.1");
    many_port = corio_server_port(srv);
    corio_task **tasks = calloc(NCONN, sizeof *tasks);
    for (uintptr_t i = 0; i < NCONN; i++) {
        tasks[i] = corio_spawn(many_client, (void *)i);
        CHECK(tasks[i]);
    }
    CHECK_OK(corio_gather(tasks, NCONN, NULL));
    CHECK_EQ(many_ok, NCONN);
    free(tasks);
    CHECK_OK(corio_server_close(srv, 1000));
    return NULL;
}

TEST(thousand_concurrent_connections)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * NCONN + 100) {
        rl.rlim_cur = rl.rlim_max < 2 * NCONN + 100 ? rl.rlim_max : 2 * NCONN + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * NCONN + 100)
            SKIP("RLIMIT_NOFILE too low for 1000 connections");
    }
    test_run(many_main, NULL);
}

/* ---- errors, half-close, backpressure --------------------------------------- */

static void reset_handler(corio_stream *s, void *arg)
{
    char c;
    corio_stream_read(s, &c, 1); /* wait for the client's byte */
    struct linger lg = {1, 0};
    setsockopt(corio_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    corio_stream_close(s); /* linger 0: close sends RST */
}

static void *reset_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, reset_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    CHECK_OK(corio_stream_write(s, "x", 1));
    char buf[8];
    CHECK_ERR(corio_stream_read(s, buf, sizeof buf), -ECONNRESET);
    CHECK_ERR(corio_stream_read(s, buf, sizeof buf), -ECONNRESET); /* remembered */
    int r = corio_stream_write(s, "y", 1);
    CHECK(r == -EPIPE || r == -ECONNRESET);
    CHECK_ERR(corio_stream_drain(s), r);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 0));
    return NULL;
}

TEST(peer_reset) { test_run(reset_main, NULL); }

static void half_close_handler(corio_stream *s, void *arg)
{
    char buf[64];
    size_t total = 0;
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0)
        total += (size_t)n;
    CHECK_EQ(n, 0);
    char reply[32];
    int len = snprintf(reply, sizeof reply, "got %zu", total);
    CHECK_OK(corio_stream_write(s, reply, (size_t)len));
    CHECK_OK(corio_stream_aclose(s));
}

static void *half_close_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, half_close_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    CHECK_OK(corio_stream_write(s, "0123456789", 10));
    CHECK_OK(corio_stream_write_eof(s));
    char buf[32];
    size_t got = 0;
    CHECK_ERR(corio_stream_readexactly(s, buf, sizeof buf, &got), -CORIO_EINCOMPLETE);
    CHECK_EQ(got, 6);
    CHECK_MEM(buf, "got 10", 6);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 100));
    return NULL;
}

TEST(half_close_peer_reads_eof_and_answers) { test_run(half_close_main, NULL); }

static void sleepy_handler(corio_stream *s, void *arg)
{
    corio_sleep_ms(60000); /* never reads: the client's data piles up */
}

static void *backpressure_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, sleepy_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    static char chunk[16384];
    memset(chunk, 'b', sizeof chunk);
    size_t written = 0, max_queued = 0;
    int r = 0;
    corio_deadline d = corio_deadline_push(300);
    while (r == 0) {
        r = corio_stream_write(s, chunk, sizeof chunk);
        if (r == 0) {
            written += sizeof chunk;
            if (corio_stream_write_buffer_size(s) > max_queued)
                max_queued = corio_stream_write_buffer_size(s);
            r = corio_stream_drain(s);
        }
    }
    corio_deadline_pop(d);
    CHECK_ERR(r, -CORIO_EDEADLINE);
    CHECK(written > 0);
    CHECK(max_queued <= 64 * 1024 + sizeof chunk);        /* the default high mark bounds the queue */
    CHECK(corio_stream_write_buffer_size(s) > 16 * 1024); /* the drain was really blocked */
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 0)); /* the sleeping handler is cancelled */
    return NULL;
}

TEST(backpressure_peer_stops_reading) { test_run(backpressure_main, NULL); }

/* ---- cancellation ---------------------------------------------------------- */

static int serve_result = 1;

static void *serve_task(void *arg)
{
    serve_result = corio_server_serve_forever(arg);
    return NULL;
}

static void *cancel_serve_main(void *arg)
{
    corio_server *srv = start_echo("127.0.0.1");
    corio_task *t = corio_spawn(serve_task, srv);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(20));
    round_trip("127.0.0.1", corio_server_port(srv), "while serving");
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(serve_result, -ECANCELED);
    /* the server itself still runs until closed */
    round_trip("127.0.0.1", corio_server_port(srv), "after cancel");

    /* serve_forever returns 0 when another task closes the server */
    serve_result = 1;
    t = corio_spawn(serve_task, srv);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(10));
    CHECK_OK(corio_server_close(srv, 0));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_EQ(serve_result, 0);
    return NULL;
}

TEST(cancel_serve_forever_and_close_wakes_it) { test_run(cancel_serve_main, NULL); }

typedef struct connect_try {
    uint16_t port;
    int result;
} connect_try;

static void *connect_task(void *arg)
{
    connect_try *ct = arg;
    corio_stream *s = NULL;
    ct->result = corio_stream_connect("127.0.0.1", ct->port, &s);
    if (s)
        corio_stream_close(s);
    return NULL;
}

static void *cancel_connect_main(void *arg)
{
    /* A listener that never accepts, with the smallest backlog: once its
     * queue is full the kernel drops further SYNs and connect hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(lfd, 0) == 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);

    int fillers[8], nfill = 0;
    for (; nfill < 8; nfill++) { /* fill the accept queue */
        fillers[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fillers[nfill], (struct sockaddr *)&a, sizeof a);
    }
    CHECK_OK(corio_sleep_ms(20));

    connect_try ct = {port, 1};
    corio_task *t = corio_spawn(connect_task, &ct);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(50));
    CHECK_EQ(ct.result, 1); /* still connecting */
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(ct.result, -ECANCELED);

    /* and a deadline on connect */
    corio_stream *s = NULL;
    corio_deadline d = corio_deadline_push(50);
    CHECK_ERR(corio_stream_connect("127.0.0.1", port, &s), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    CHECK(s == NULL);

    /* cancelled right away, before the first suspension */
    ct.result = 1;
    t = corio_spawn(connect_task, &ct);
    CHECK(t);
    CHECK_OK(corio_task_cancel(t));
    CHECK_OK(corio_task_join(t, NULL));
    CHECK_ERR(ct.result, -ECANCELED);

    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(lfd);
    return NULL;
}

TEST(cancel_during_connect) { test_run(cancel_connect_main, NULL); }

/* ---- graceful close -------------------------------------------------------- */

static int quick_done, slow_cancelled, slow_started;

static void grace_handler(corio_stream *s, void *arg)
{
    char c;
    CHECK_EQ(corio_stream_read(s, &c, 1), 1);
    if (c == 'q') {
        CHECK_OK(corio_sleep_ms(50)); /* finishes within the grace period */
        quick_done++;
    } else {
        slow_started++;
        int r = corio_sleep_ms(60000);
        if (r == -ECANCELED)
            slow_cancelled++;
        /* a cancelled handler's later waits fail at once too */
        CHECK_ERR(corio_stream_read(s, &c, 1), -ECANCELED);
    }
}

static void *grace_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, grace_handler, NULL, NULL, &srv));
    uint16_t port = corio_server_port(srv);
    corio_stream *q, *sl;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &q));
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &sl));
    CHECK_OK(corio_stream_write(q, "q", 1));
    CHECK_OK(corio_stream_write(sl, "s", 1));
    for (int i = 0; i < 30000 && !slow_started; i++) /* the event, with a 30 s ceiling */
        CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(slow_started, 1);
    uint64_t t0 = test_ms();
    CHECK_OK(corio_server_close(srv, 300));
    uint64_t el = test_ms() - t0;
    CHECK(el >= 250 && el < 2000);
    CHECK_EQ(quick_done, 1);
    CHECK_EQ(slow_cancelled, 1);

    /* no more accepting */
    corio_stream *s;
    CHECK_ERR(corio_stream_connect("127.0.0.1", port, &s), -ECONNREFUSED);
    /* both clients see their connection end */
    char buf[4];
    CHECK_EQ(corio_stream_read(q, buf, sizeof buf), 0);
    CHECK_EQ(corio_stream_read(sl, buf, sizeof buf), 0);
    corio_stream_close(q);
    corio_stream_close(sl);
    return NULL;
}

TEST(server_close_grace_then_cancel) { test_run(grace_main, NULL); }

static void *grace_early_main(void *arg)
{
    quick_done = 0;
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, grace_handler, NULL, NULL, &srv));
    corio_stream *q;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &q));
    CHECK_OK(corio_stream_write(q, "q", 1));
    CHECK_OK(corio_sleep_ms(10));
    uint64_t t0 = test_ms();
    CHECK_OK(corio_server_close(srv, 5000)); /* returns as soon as the handler is done */
    CHECK(test_ms() - t0 < 1000);
    CHECK_EQ(quick_done, 1);
    corio_stream_close(q);
    return NULL;
}

TEST(server_close_returns_when_handlers_finish) { test_run(grace_early_main, NULL); }

static void *close_cancelled_main(void *arg)
{
    slow_cancelled = 0;
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, grace_handler, NULL, NULL, &srv));
    corio_stream *sl;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &sl));
    CHECK_OK(corio_stream_write(sl, "s", 1));
    CHECK_OK(corio_sleep_ms(20));
    corio_deadline d = corio_deadline_push(50);
    CHECK_ERR(corio_server_close(srv, 10000), -CORIO_EDEADLINE); /* interrupted: handlers still awaited */
    corio_deadline_pop(d);
    CHECK_EQ(slow_cancelled, 1);
    corio_stream_close(sl);
    return NULL;
}

TEST(server_close_interrupted_still_cancels_handlers) { test_run(close_cancelled_main, NULL); }

/* ---- running out of file descriptors while accepting --------------------- */

static void *emfile_main(void *arg)
{
    corio_server *srv = start_echo("127.0.0.1");
    uint16_t port = corio_server_port(srv);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* open raw connections until the process runs out of fds; the server's
     * accepts run out too */
    int fds[256], n = 0;
    while (n < 256) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            CHECK(errno == EMFILE);
            break;
        }
        connect(fd, (struct sockaddr *)&a, sizeof a);
        fds[n++] = fd;
        if (n % 8 == 0)
            CHECK_OK(corio_yield());
    }
    CHECK(n < 256);
    /* the server now fails accept with EMFILE: it must pause, not spin */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    CHECK_OK(corio_sleep_ms(400));
    getrusage(RUSAGE_SELF, &ru1);
    long cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000L +
                  (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                  (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000L +
                  (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    CHECK(cpu_us < 200000);
    /* free the fds: the server catches up and serves again */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    CHECK_OK(corio_sleep_ms(250));
    round_trip("127.0.0.1", port, "still alive");
    round_trip("127.0.0.1", port, "and again");
    CHECK_OK(corio_server_close(srv, 500));
    return NULL;
}

TEST(emfile_in_accept_pauses_and_recovers)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    test_run(emfile_main, NULL);
}

/* ---- a handler that shuts its own server down ------------------------------ */

static corio_server *self_srv;
static int self_close_result = 1;

static void shutdown_handler(corio_stream *s, void *arg)
{
    char cmd[16];
    ssize_t n = corio_stream_readline(s, cmd, sizeof cmd);
    if (n > 0 && strcmp(cmd, "shutdown\n") == 0) {
        CHECK_OK(corio_stream_write(s, "bye\n", 4));
        self_close_result = corio_server_close(self_srv, 200); /* must not wait for itself */
    } else if (n > 0 && strcmp(cmd, "hi\n") == 0) {
        corio_sleep_ms(60000); /* an idle client: cancelled by the close */
    }
    /* anything else (an injected failure): hang up, so the client sees it */
}

static void *self_close_main(void *arg)
{
    CHECK_OK(corio_server_start("127.0.0.1", 0, shutdown_handler, NULL, NULL, &self_srv));
    uint16_t port = corio_server_port(self_srv);
    corio_task *serve = corio_spawn(serve_task, self_srv);
    CHECK(serve);
    corio_stream *idle, *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &idle));
    CHECK_OK(corio_stream_write(idle, "hi\n", 3));
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s));
    CHECK_OK(corio_stream_write(s, "shutdown\n", 9));
    char buf[8];
    CHECK_EQ(corio_stream_readline(s, buf, sizeof buf), 4);
    CHECK_EQ(corio_stream_read(s, buf, sizeof buf), 0);
    CHECK_EQ(corio_stream_read(idle, buf, sizeof buf), 0);
    CHECK_OK(corio_task_join(serve, NULL));
    CHECK_EQ(serve_result, 0);
    CHECK_EQ(self_close_result, 0);
    corio_stream_close(s);
    corio_stream_close(idle);
    return NULL;
}

TEST(handler_closes_its_own_server) { test_run(self_close_main, NULL); }

/* ---- review: hostile clients and close races -------------------------------- */

#include <malloc.h>

static int flood_result = 1;

static void line_handler(corio_stream *s, void *arg)
{
    char line[256];
    flood_result = (int)corio_stream_readline(s, line, sizeof line);
}

/* A client sends a 10 MB "line" and never reads: the server's buffer stops
 * at the stream limit, readline fails with -CORIO_ELIMIT, and the server
 * hangs up; the client's writes then fail instead of queueing forever. */
static void *flood_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, line_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    struct mallinfo2 m0 = mallinfo2();
    static char chunk[65536];
    memset(chunk, 'f', sizeof chunk);
    int r = 0;
    corio_deadline d = corio_deadline_push(5000);
    for (size_t sent = 0; sent < 10u << 20 && r == 0; sent += sizeof chunk) {
        r = corio_stream_write(s, chunk, sizeof chunk);
        if (r == 0)
            r = corio_stream_drain(s);
    }
    corio_deadline_pop(d);
    CHECK(r == -ECONNRESET || r == -EPIPE);
    CHECK_ERR(flood_result, -CORIO_ELIMIT);
    struct mallinfo2 m1 = mallinfo2();
    CHECK(m1.uordblks + m1.hblkhd < m0.uordblks + m0.hblkhd + 2 * 1024 * 1024);
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 100));
    return NULL;
}

TEST(hostile_client_sends_huge_line) { test_run(flood_main, NULL); }

static int big_reply_result = 1;

static void big_reply_handler(corio_stream *s, void *arg)
{
    static char chunk[65536];
    memset(chunk, 'r', sizeof chunk);
    int r = 0;
    for (int i = 0; i < 1024 && r == 0; i++) { /* 64 MB: far more than the client takes */
        r = corio_stream_write(s, chunk, sizeof chunk);
        if (r == 0)
            r = corio_stream_drain(s);
    }
    big_reply_result = r;
}

/* A client resets the connection in the middle of a long response: the
 * handler's write/drain fails with the connection's error instead of
 * hanging, and everything is released. */
static void *reset_mid_response_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, big_reply_handler, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    char buf[4096];
    CHECK_EQ(corio_stream_readexactly(s, buf, sizeof buf, NULL), sizeof buf);
    struct linger lg = {1, 0};
    setsockopt(corio_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    corio_stream_close(s); /* RST */
    /* the handler ends by itself: a short grace is enough */
    uint64_t t0 = test_ms();
    CHECK_OK(corio_server_close(srv, 3000));
    CHECK(test_ms() - t0 < 2500);
    CHECK(big_reply_result == -ECONNRESET || big_reply_result == -EPIPE);
    return NULL;
}

TEST(client_resets_mid_response) { test_run(reset_mid_response_main, NULL); }

/* Many clients connect and never send; others keep connecting while the
 * server closes (on io_uring the multishot accept is still delivering).
 * The close cancels every parked handler, the connections in the accept
 * queue are dropped, and nothing leaks (ASan). */
static uint16_t churn_port;
static bool churn_stop;

static void *churn_client(void *arg)
{
    while (!churn_stop) {
        corio_stream *s;
        int r = corio_stream_connect("127.0.0.1", churn_port, &s);
        if (r == -ECONNREFUSED || r == -ECANCELED)
            break;
        if (r < 0)
            continue;
        (void)corio_stream_write(s, "hi", 2);
        corio_stream_close(s);
        if (corio_yield() < 0)
            break;
    }
    return NULL;
}

static void *idle_churn_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, line_handler, NULL, NULL, &srv));
    churn_port = corio_server_port(srv);
    enum { IDLE = 200, CHURN = 4 };
    static corio_stream *idle[IDLE];
    for (int i = 0; i < IDLE; i++)
        CHECK_OK(corio_stream_connect("127.0.0.1", churn_port, &idle[i]));
    corio_task *t[CHURN];
    for (int i = 0; i < CHURN; i++)
        CHECK((t[i] = corio_spawn(churn_client, NULL)));
    CHECK_OK(corio_sleep_ms(50));
    uint64_t t0 = test_ms();
    CHECK_OK(corio_server_close(srv, 0));
    CHECK(test_ms() - t0 < 2000);
    churn_stop = true;
    for (int i = 0; i < CHURN; i++)
        CHECK_OK(corio_task_join(t[i], NULL));
    char c;
    for (int i = 0; i < IDLE; i++) {
        CHECK_EQ(corio_stream_read(idle[i], &c, 1), 0); /* the server hung up */
        corio_stream_close(idle[i]);
    }
    return NULL;
}

TEST(server_close_with_idle_clients_and_connects_racing) { test_run(idle_churn_main, NULL); }

/* Two clients send "shutdown" at the same moment: two handlers call
 * corio_server_close on their own server concurrently.  Both must return
 * (the second finds the server already closing), and the server is freed
 * once (ASan). */
static int dual_close_results[2] = {1, 1};
static int dual_close_n;
static corio_server *dual_srv;

static void dual_shutdown_handler(corio_stream *s, void *arg)
{
    char cmd[16];
    if (corio_stream_readline(s, cmd, sizeof cmd) > 0 && strcmp(cmd, "shutdown\n") == 0) {
        int i = dual_close_n++;
        CHECK(i < 2);
        dual_close_results[i] = corio_server_close(dual_srv, 200);
        CHECK_OK(corio_stream_write(s, "bye\n", 4));
    }
}

static void *dual_close_main(void *arg)
{
    CHECK_OK(corio_server_start("127.0.0.1", 0, dual_shutdown_handler, NULL, NULL, &dual_srv));
    uint16_t port = corio_server_port(dual_srv);
    corio_stream *s1, *s2;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s1));
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s2));
    CHECK_OK(corio_sleep_ms(20)); /* both handlers are parked in readline */
    CHECK_OK(corio_stream_write(s1, "shutdown\n", 9));
    CHECK_OK(corio_stream_write(s2, "shutdown\n", 9));
    char buf[8];
    corio_deadline d = corio_deadline_push(3000);
    CHECK_EQ(corio_stream_readline(s1, buf, sizeof buf), 4);
    CHECK_EQ(corio_stream_readline(s2, buf, sizeof buf), 4);
    corio_deadline_pop(d);
    CHECK_EQ(dual_close_n, 2);
    CHECK_EQ(dual_close_results[0], 0);
    CHECK_EQ(dual_close_results[1], 0);
    corio_stream_close(s1);
    corio_stream_close(s2);
    return NULL;
}

TEST(two_handlers_close_their_server_at_once) { test_run(dual_close_main, NULL); }

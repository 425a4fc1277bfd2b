/*
 * The sim backend's network (src/backend/sim_net.c, sim_udp.c), through
 * corio's public API only: streams, servers, datagrams and the HTTP
 * server on simulated hosts, with and without faults, and replay by seed.
 * Every test runs its own sim loop (corio_config.backend = SIM), so the
 * backend the runner picks does not matter.
 */
#include "runner.h"

#include "corio/http.h"
#include "corio/sim.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>

static corio_sim_faults no_faults;

/* Run fn under the sim with seed and faults (NULL: none); returns its result. */
static void *sim_run(uint64_t seed, const corio_sim_faults *f, corio_fn fn, void *arg, corio_sim_report *rep)
{
    corio_sim_config sc = {.seed = seed, .faults = f ? f : &no_faults, .report = rep, .quiet = 1};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
    void *res = NULL;
    int r = corio_run(&cfg, fn, arg, &res);
    if (r != 0)
        test_fail(__FILE__, __LINE__, "corio_run failed: %d (%s)", r, corio_strerror(r));
    return res;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char buf[8192];
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, sizeof buf);
        if (n <= 0)
            break;
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
    }
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + (i >> 9)); }

typedef struct writer_arg {
    corio_stream *s;
    size_t n;
    int res;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *wa = arg;
    unsigned char buf[10000];
    size_t off = 0;
    while (off < wa->n) {
        size_t k = wa->n - off < sizeof buf ? wa->n - off : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(off + i);
        int r = corio_stream_write(wa->s, buf, k);
        if (r == 0)
            r = corio_stream_drain(wa->s);
        if (r < 0) {
            wa->res = r;
            return NULL;
        }
        off += k;
    }
    wa->res = corio_stream_write_eof(wa->s);
    return NULL;
}

/* Read until EOF, checking the pattern; returns bytes or -errno. */
static ssize_t read_pattern(corio_stream *s)
{
    unsigned char buf[7000];
    size_t got = 0;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, sizeof buf);
        if (n < 0)
            return n;
        if (n == 0)
            return (ssize_t)got;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(got + (size_t)i))
                return -EILSEQ;
        got += (size_t)n;
    }
}

/* Echo n bytes through a server on host:port: writes them from a task
 * while reading the echo back.  Returns bytes echoed or -errno. */
static ssize_t echo_through(const char *host, uint16_t port, size_t n)
{
    corio_stream *s;
    int r = corio_stream_connect(host, port, &s);
    if (r < 0)
        return r;
    writer_arg wa = {.s = s, .n = n};
    corio_task *t = corio_spawn(writer_main, &wa);
    ssize_t got = read_pattern(s);
    corio_task_join(t, NULL);
    corio_stream_close(s);
    if (wa.res < 0)
        return wa.res;
    return got;
}

/* ------------------------------------------------------------------ */
/* TCP                                                                 */
/* ------------------------------------------------------------------ */

static void *echo_main(void *arg)
{
    size_t n = *(size_t *)arg;
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, echo_handler, NULL, NULL, &srv));
    uint16_t port = corio_server_port(srv);
    CHECK(port >= 32768);
    ssize_t got = echo_through("127.0.0.1", port, n);
    CHECK_EQ(got, (ssize_t)n);
    CHECK_OK(corio_server_close(srv, 1000));
    return NULL;
}

TEST(echo_1mib_exact_bytes)
{
    size_t n = 1u << 20;
    uint64_t t0 = test_ms();
    sim_run(1, NULL, echo_main, &n, NULL);
    CHECK(test_ms() - t0 < 60000);
}

TEST(echo_1mib_with_latency_and_short_io)
{
    corio_sim_faults f = {.short_io = 1.0, .latency_max_us = 500};
    size_t n = 1u << 20;
    corio_sim_report rep;
    sim_run(7, &f, echo_main, &n, &rep);
    CHECK(rep.faults > 100); /* short reads and writes happened... */
    CHECK(rep.virtual_ns > 0);
}

static void eof_handler(corio_stream *s, void *arg)
{
    char buf[64];
    size_t got = 0;
    for (;;) {
        ssize_t n = corio_stream_read(s, buf + got, sizeof buf - got);
        if (n <= 0) {
            *(ssize_t *)arg = n < 0 ? n : (ssize_t)got;
            break;
        }
        got += (size_t)n;
    }
    (void)corio_stream_write(s, buf, got);
}

static void *eof_main(void *arg)
{
    (void)arg;
    ssize_t seen = -1;
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, eof_handler, &seen, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("localhost", corio_server_port(srv), &s));
    CHECK_OK(corio_stream_write(s, "hello", 5));
    CHECK_OK(corio_stream_write_eof(s));
    char buf[16];
    size_t got = 0;
    CHECK_EQ(corio_stream_readexactly(s, buf, 5, &got), 5);
    CHECK_MEM(buf, "hello", 5);
    CHECK_EQ(corio_stream_read(s, buf, sizeof buf), 0); /* the server's FIN after its reply */
    CHECK_EQ(seen, 5);                                  /* it read our bytes, then EOF */
    corio_stream_close(s);
    CHECK_OK(corio_server_close(srv, 1000));
    return NULL;
}

TEST(eof_after_shutdown) { sim_run(2, NULL, eof_main, NULL, NULL); }

static void *refused_main(void *arg)
{
    (void)arg;
    corio_stream *s = NULL;
    CHECK_ERR(corio_stream_connect("127.0.0.1", 5555, &s), -ECONNREFUSED);
    CHECK(s == NULL);
    CHECK_ERR(corio_stream_connect("127.0.0.99", 80, &s), -EHOSTUNREACH);
    CHECK_ERR(corio_stream_connect("nosuchhost", 80, &s), -ENOENT);
    /* a bound port refuses only when nobody listens on it */
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 8080, echo_handler, NULL, NULL, &srv));
    corio_server *srv2;
    CHECK_ERR(corio_server_start("127.0.0.1", 8080, echo_handler, NULL, NULL, &srv2), -EADDRINUSE);
    CHECK_EQ(echo_through("127.0.0.1", 8080, 1000), 1000);
    CHECK_OK(corio_server_close(srv, 0));
    CHECK_ERR(corio_stream_connect("127.0.0.1", 8080, &s), -ECONNREFUSED);
    return NULL;
}

TEST(connect_refused_unreachable_unknown) { sim_run(3, NULL, refused_main, NULL, NULL); }

static void reset_handler(corio_stream *s, void *arg)
{
    char buf[64];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0) {
    }
    *(ssize_t *)arg = n;
}

static void *reset_main(void *arg)
{
    (void)arg;
    ssize_t server_saw = 1;
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, reset_handler, &server_saw, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    int r = corio_stream_write(s, "x", 1);
    if (r == 0)
        r = corio_stream_drain(s);
    CHECK_ERR(r, -ECONNRESET);
    char c;
    CHECK(corio_stream_read(s, &c, 1) <= 0);
    corio_stream_close(s);
    while (server_saw == 1)
        CHECK_OK(corio_sleep_ms(1));
    CHECK_ERR(server_saw, -ECONNRESET);
    CHECK_OK(corio_server_close(srv, 1000));
    return NULL;
}

TEST(reset_fault_both_ends_see_econnreset)
{
    corio_sim_faults f = {.reset = 1.0};
    corio_sim_report rep;
    sim_run(4, &f, reset_main, NULL, &rep);
    CHECK(rep.faults >= 1);
}

/* ------------------------------------------------------------------ */
/* Hosts                                                               */
/* ------------------------------------------------------------------ */

static void *server_host_main(void *arg)
{
    (void)arg;
    corio_server *srv;
    CHECK_OK(corio_server_start(NULL, 7000, echo_handler, NULL, NULL, &srv));
    corio_server_serve_forever(srv); /* until the crash cancels it */
    (void)corio_server_close(srv, 0);
    return NULL;
}

static void *hosts_main(void *arg)
{
    (void)arg;
    corio_sim_host *h = corio_sim_host_new("db", "127.0.0.2");
    CHECK(h);
    corio_task *t = corio_sim_host_start(h, server_host_main, NULL);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(echo_through("db", 7000, 100000), 100000);
    CHECK_EQ(echo_through("127.0.0.2", 7000, 1000), 1000);
    /* 127.0.0.1 is the main host itself: nobody listens there */
    corio_stream *s;
    CHECK_ERR(corio_stream_connect("127.0.0.1", 7000, &s), -ECONNREFUSED);

    /* crash with a connection open: the peer sees ECONNRESET */
    CHECK_OK(corio_stream_connect("db", 7000, &s));
    CHECK_OK(corio_stream_write(s, "ping", 4));
    char buf[8];
    size_t got;
    CHECK_EQ(corio_stream_readexactly(s, buf, 4, &got), 4);
    CHECK_OK(corio_sim_host_crash(h));
    CHECK_ERR(corio_stream_read(s, buf, sizeof buf), -ECONNRESET);
    corio_stream_close(s);
    corio_stream *s2;
    CHECK_ERR(corio_stream_connect("db", 7000, &s2), -ECONNREFUSED);
    corio_task_join(t, NULL);
    CHECK(!corio_sim_host_running(h));

    /* restarted, it serves again */
    t = corio_sim_host_start(h, server_host_main, NULL);
    CHECK(t);
    CHECK_OK(corio_sleep_ms(1));
    CHECK_EQ(echo_through("db", 7000, 5000), 5000);
    CHECK_OK(corio_sim_host_crash(h));
    corio_task_join(t, NULL);
    return NULL;
}

TEST(hosts_by_name_address_crash_restart) { sim_run(5, NULL, hosts_main, NULL, NULL); }

/* ------------------------------------------------------------------ */
/* UDP                                                                 */
/* ------------------------------------------------------------------ */

typedef struct udp_result {
    int got[64];
    int n;
} udp_result;

#define UDP_N 20

static void *udp_main(void *arg)
{
    udp_result *res = arg;
    corio_dgram *rx, *tx;
    CHECK_OK(corio_dgram_open("127.0.0.1", 9000, NULL, 0, NULL, &rx));
    CHECK_OK(corio_dgram_open(NULL, 0, "127.0.0.1", 9000, NULL, &tx));
    for (int i = 0; i < UDP_N; i++)
        CHECK_EQ(corio_dgram_send(tx, &i, sizeof i), (ssize_t)sizeof i);
    /* truncation keeps the boundary */
    char big[100] = "0123456789";
    CHECK_EQ(corio_dgram_send(tx, big, sizeof big), (ssize_t)sizeof big);
    corio_deadline d = corio_deadline_push(1000);
    for (;;) {
        char buf[8];
        int flags = 0;
        ssize_t n = corio_dgram_recv(rx, buf, sizeof buf, &flags);
        if (n < 0) {
            CHECK_ERR(n, -CORIO_EDEADLINE);
            break;
        }
        if (n == (ssize_t)sizeof buf && (flags & CORIO_DGRAM_TRUNC)) {
            res->got[res->n++] = -1; /* the big one */
            continue;
        }
        CHECK_EQ(n, (ssize_t)sizeof(int));
        CHECK(res->n < 64);
        memcpy(&res->got[res->n++], buf, sizeof(int));
    }
    corio_deadline_pop(d);
    corio_dgram_close(tx);
    corio_dgram_close(rx);
    return NULL;
}

TEST(udp_exact_without_faults)
{
    udp_result r = {{0}, 0};
    sim_run(6, NULL, udp_main, &r, NULL);
    CHECK_EQ(r.n, UDP_N + 1);
    for (int i = 0; i < UDP_N; i++)
        CHECK_EQ(r.got[i], i);
    CHECK_EQ(r.got[UDP_N], -1);
}

TEST(udp_loss_dup_reorder)
{
    udp_result r = {{0}, 0};
    corio_sim_faults loss = {.dgram_loss = 1.0};
    sim_run(6, &loss, udp_main, &r, NULL);
    CHECK_EQ(r.n, 0);

    memset(&r, 0, sizeof r);
    corio_sim_faults dup = {.dgram_dup = 1.0};
    sim_run(6, &dup, udp_main, &r, NULL);
    CHECK_EQ(r.n, 2 * (UDP_N + 1));

    memset(&r, 0, sizeof r);
    corio_sim_faults reorder = {.dgram_reorder = 1.0};
    sim_run(6, &reorder, udp_main, &r, NULL);
    CHECK_EQ(r.n, UDP_N + 1);
    int inversions = 0, seen[UDP_N + 1] = {0};
    for (int i = 0; i < r.n; i++) {
        if (r.got[i] >= 0) {
            CHECK(r.got[i] < UDP_N && !seen[r.got[i]]);
            seen[r.got[i]] = 1;
        }
        if (i && r.got[i] >= 0 && r.got[i] < r.got[i - 1])
            inversions++;
    }
    CHECK(inversions > 0);
}

/* ------------------------------------------------------------------ */
/* HTTP, replay, nothing real                                          */
/* ------------------------------------------------------------------ */

static void hello(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req, (void)arg;
    corio_http_response_send(resp, 200, "text/plain", "hello sim\n", 10);
}

static void *http_main(void *arg)
{
    int rounds = arg ? *(int *)arg : 1;
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 8080, hello, NULL, NULL, &srv));
    for (int i = 0; i < rounds; i++) {
        corio_stream *s;
        CHECK_OK(corio_stream_connect("127.0.0.1", 8080, &s));
        const char *req = "GET / HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n";
        CHECK_OK(corio_stream_write(s, req, strlen(req)));
        char buf[1024];
        size_t got = 0;
        ssize_t n;
        while ((n = corio_stream_read(s, buf + got, sizeof buf - 1 - got)) > 0)
            got += (size_t)n;
        CHECK_EQ(n, 0);
        buf[got] = 0;
        CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        CHECK(strstr(buf, "\r\n\r\nhello sim\n") != NULL);
        CHECK(strstr(buf, "Date: Thu, 01 Jan 2026 00:") != NULL); /* the virtual date */
        corio_stream_close(s);
    }
    CHECK_OK(corio_http_server_close(srv, 1000));
    return NULL;
}

TEST(http_server_answers_under_sim) { sim_run(8, NULL, http_main, NULL, NULL); }

static void *replay_main(void *arg)
{
    (void)arg;
    size_t n = 200000;
    echo_main(&n);
    int rounds = 5;
    http_main(&rounds);
    udp_result r = {{0}, 0};
    udp_main(&r);
    return NULL;
}

TEST(same_seed_same_trace_three_times)
{
    corio_sim_faults f = {.short_io = 0.2,
                          .stall = 0.01,
                          .latency_max_us = 300,
                          .dgram_loss = 0.2,
                          .dgram_dup = 0.2,
                          .dgram_reorder = 0.2};
    corio_sim_report a, b, c, other;
    int before = test_fd_count();
    sim_run(42, &f, replay_main, NULL, &a);
    sim_run(42, &f, replay_main, NULL, &b);
    sim_run(42, &f, replay_main, NULL, &c);
    CHECK_EQ(test_fd_count(), before); /* nothing real was opened (or left open) */
    CHECK(a.trace_hash == b.trace_hash && b.trace_hash == c.trace_hash);
    CHECK_EQ(a.events, c.events);
    CHECK(a.faults > 0);
    sim_run(43, &f, replay_main, NULL, &other);
    CHECK(other.trace_hash != a.trace_hash);
}

TEST(nothing_real_is_opened)
{
    int before = test_fd_count();
    size_t n = 10000;
    sim_run(9, NULL, echo_main, &n, NULL);
    sim_run(9, NULL, hosts_main, NULL, NULL);
    CHECK_EQ(test_fd_count(), before);
}

static void *unsimulated_main(void *arg)
{
    (void)arg;
    corio_stream *s = (corio_stream *)1;
    CHECK_ERR(corio_stream_connect_unix("/tmp/x.sock", &s), -EOPNOTSUPP);
    CHECK(s == NULL);
    corio_server *srv = (corio_server *)1;
    CHECK_ERR(corio_server_start_unix("/tmp/x.sock", echo_handler, NULL, NULL, &srv), -EOPNOTSUPP);
    CHECK(srv == NULL);
    corio_dgram *d;
    CHECK_ERR(corio_dgram_open_unix("/tmp/x.sock", NULL, NULL, &d), -EOPNOTSUPP);
    corio_process *p;
    CHECK_ERR(corio_process_shell("true", NULL, &p), -EOPNOTSUPP);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    CHECK_ERR(corio_signal_wait(&set, 10), -EOPNOTSUPP);
    CHECK_ERR(corio_fd_wait(0, POLLIN, 10), -EOPNOTSUPP);
    errno = 0;
    CHECK(corio_stream_stdin() == NULL && errno == EOPNOTSUPP);
    corio_listen_fd fds[4];
    CHECK_ERR(corio_listen_fds(fds, 4, false), -EOPNOTSUPP);
    /* IPv6 is not simulated either */
    CHECK_ERR(corio_stream_connect("::1", 80, &s), -EAFNOSUPPORT);
    return NULL;
}

TEST(unsimulated_calls_fail_cleanly)
{
    int before = test_fd_count();
    sim_run(10, NULL, unsimulated_main, NULL, NULL);
    CHECK_EQ(test_fd_count(), before);
}

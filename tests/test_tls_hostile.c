/*
 * TLS servers against hostile clients (issue 11): plaintext HTTP sent to
 * the TLS port, garbage after a real ClientHello, a record header that
 * announces an oversized record, a ClientHello cut off by EOF, a record cut
 * in half after the handshake, clients that stall mid-handshake (freed at
 * the handshake deadline) and 10,000 connections that never finish their
 * handshakes.  Each time the bad connection must end with the exact error
 * the contract names (-CORIO_ETLS, -CORIO_ETLSTRUNC, -ETIMEDOUT), be
 * closed, leak nothing (fds here, memory under ASan), and leave the server
 * serving a well-behaved TLS client meanwhile and afterwards.
 *
 * Two kinds of server: one with corio_server_config.tls (the handshake
 * runs before the handler, which never sees a failed connection), and a
 * "probe" server, plain TCP whose handler calls corio_stream_start_tls
 * itself and records what it returned, so the error codes can be checked.
 * The certificates come from tests/tls/make_certs.sh, made once per build
 * tree (under flock, as ctest runs tests side by side).
 */
#include "runner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_MS 30000 /* the ceiling of every wait: far above what a slow machine needs */

static char certs[2048];

static void need_tls(void)
{
    if (!corio_tls_available())
        SKIP("corio was built without TLS (OpenSSL)");
    snprintf(certs, sizeof certs, "%s/tls-certs", CORIO_TEST_BINARY_DIR);
    char cmd[3 * 2048 + 64];
    snprintf(cmd, sizeof cmd, "flock '%s.lock' bash '%s/tests/tls/make_certs.sh' '%s'", certs,
             CORIO_SOURCE_DIR, certs);
    CHECK_EQ(system(cmd), 0);
}

static const char *cert_file(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", certs, name);
    return buf;
}

static corio_tls *server_tls(uint64_t handshake_timeout_ms)
{
    char cert[2100], key[2100];
    corio_tls_cert c = {cert_file(cert, sizeof cert, "server.pem"), cert_file(key, sizeof key, "server.key")};
    corio_tls_options opt = {.certs = &c, .n_certs = 1, .handshake_timeout_ms = handshake_timeout_ms};
    corio_tls *tls = NULL;
    CHECK_OK(corio_tls_server_new(&opt, &tls));
    return tls;
}

static corio_tls *client_tls(void)
{
    char ca[2100];
    corio_tls_options opt = {.ca_file = cert_file(ca, sizeof ca, "ca.pem")};
    corio_tls *tls = NULL;
    CHECK_OK(corio_tls_client_new(&opt, &tls));
    return tls;
}

/* ---- servers ------------------------------------------------------------ */

static int handled; /* handler calls of the cfg.tls server: only finished handshakes */

static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    handled++;
    char buf[4096];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf)) > 0)
        if (corio_stream_write(s, buf, (size_t)n) < 0 || corio_stream_drain(s) < 0)
            break;
}

static corio_server *start_tls_echo(uint64_t handshake_timeout_ms)
{
    corio_tls *tls = server_tls(handshake_timeout_ms);
    corio_server_config cfg = {.tls = tls};
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start("127.0.0.1", 0, echo_handler, NULL, &cfg, &srv));
    corio_tls_free(tls); /* the server keeps its own reference */
    handled = 0;
    return srv;
}

/* The probe server: plain TCP, each connection's handler runs the server
 * handshake itself and records the outcome in the next slot. */
typedef struct probe_slot {
    int result;
    char why[256];
    uint64_t ms; /* how long start_tls took */
    corio_event done;
} probe_slot;

typedef struct probe {
    corio_tls *tls;
    corio_server *srv;
    unsigned n;
    probe_slot slot[8];
} probe;

static void probe_handler(corio_stream *s, void *arg)
{
    probe *p = arg;
    CHECK(p->n < 8);
    probe_slot *ps = &p->slot[p->n++];
    uint64_t t0 = test_ms();
    ps->result = corio_stream_start_tls(s, p->tls, NULL);
    ps->ms = test_ms() - t0;
    snprintf(ps->why, sizeof ps->why, "%s", corio_stream_tls_error(s));
    corio_event_set(&ps->done);
    if (ps->result == 0)
        echo_handler(s, NULL);
}

static void probe_start(probe *p, uint64_t handshake_timeout_ms)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 8; i++)
        corio_event_init(&p->slot[i].done);
    p->tls = server_tls(handshake_timeout_ms);
    CHECK_OK(corio_server_start("127.0.0.1", 0, probe_handler, p, NULL, &p->srv));
}

static void probe_stop(probe *p)
{
    CHECK_OK(corio_server_close(p->srv, 1000));
    corio_tls_free(p->tls);
}

/* Wait until at most want fds are open: a closed stream may give its fd
 * back a little later (a close_notify flushed in the background). */
static void wait_fds_at_most(int want)
{
    for (uint64_t end = test_ms() + LIMIT_MS; test_fd_count() > want;) {
        CHECK(test_ms() < end);
        corio_sleep_ms(5);
    }
}

/* ---- clients ------------------------------------------------------------ */

/* A full TLS client: connect, echo msg, close with close_notify. */
static void tls_round_trip(uint16_t port, const char *msg)
{
    corio_tls *tls = client_tls();
    corio_stream *s = NULL;
    CHECK_OK(corio_stream_connect_tls("localhost", port, tls, &s));
    corio_tls_free(tls);
    size_t n = strlen(msg);
    CHECK_OK(corio_stream_write(s, msg, n));
    char buf[256];
    CHECK_EQ(corio_stream_readexactly(s, buf, n, NULL), n);
    CHECK_MEM(buf, msg, n);
    CHECK_OK(corio_stream_aclose(s));
}

static corio_stream *raw_connect(uint16_t port)
{
    corio_stream *s = NULL;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s));
    return s;
}

/* Read what the server sends until it closes; returns how the read ended
 * (0 for EOF, -ECONNRESET for a reset) and the bytes in buf / *len. */
static ssize_t read_to_close(corio_stream *s, unsigned char *buf, size_t cap, size_t *len)
{
    *len = 0;
    corio_deadline d = corio_deadline_push(LIMIT_MS);
    ssize_t r;
    while ((r = corio_stream_read(s, buf + *len, cap - *len)) > 0) {
        *len += (size_t)r;
        CHECK(*len < cap);
    }
    corio_deadline_pop(d);
    CHECK(r != -CORIO_EDEADLINE); /* the server must close the connection */
    return r;
}

/* The server closed a hostile connection: EOF or a reset, and at most TLS
 * alert records before that (never plaintext, never a handshake going on). */
static void check_closed_with_alert_at_most(corio_stream *s)
{
    unsigned char buf[65536];
    size_t len;
    ssize_t r = read_to_close(s, buf, sizeof buf, &len);
    CHECK(r == 0 || r == -ECONNRESET);
    for (size_t i = 0; i < len;) {
        CHECK(len - i >= 5);
        CHECK_EQ(buf[i], 21); /* content type alert */
        i += 5 + ((size_t)buf[i + 3] << 8 | buf[i + 4]);
        CHECK(i <= len);
    }
}

/* A real ClientHello, as corio's client sends it: a client handshake on a
 * socketpair whose other end reads the first record and then cancels it. */
typedef struct hello {
    unsigned char bytes[4096];
    size_t len;
} hello;

static void *hello_client(void *arg)
{
    corio_stream *s = arg;
    corio_tls *tls = client_tls();
    int r = corio_stream_start_tls(s, tls, "localhost");
    corio_tls_free(tls);
    corio_stream_close(s);
    return (void *)(intptr_t)r;
}

static void *capture_hello_main(void *arg)
{
    hello *h = arg;
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    corio_stream *c = corio_stream_from_fd(sv[0]);
    corio_stream *peer = corio_stream_from_fd(sv[1]);
    CHECK(c && peer);
    corio_task *t = corio_spawn(hello_client, c);
    CHECK(t);
    CHECK_EQ(corio_stream_readexactly(peer, h->bytes, 5, NULL), 5);
    CHECK_EQ(h->bytes[0], 22); /* handshake */
    size_t body = (size_t)h->bytes[3] << 8 | h->bytes[4];
    CHECK(body > 40 && body + 5 <= sizeof h->bytes);
    CHECK_EQ(corio_stream_readexactly(peer, h->bytes + 5, body, NULL), body);
    CHECK_EQ(h->bytes[5], 1); /* client_hello */
    h->len = 5 + body;
    corio_task_cancel(t);
    void *res;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, -ECANCELED);
    corio_stream_close(peer);
    return NULL;
}

static void capture_hello(hello *h)
{
    memset(h, 0, sizeof *h);
    test_run(capture_hello_main, h);
}

/* ---- plaintext to the TLS port ------------------------------------------ */

static void *plaintext_main(void *arg)
{
    (void)arg;
    corio_server *srv = start_tls_echo(0);
    uint16_t port = corio_server_port(srv);
    int fds = test_fd_count();

    /* A TLS client is in the middle of its session... */
    corio_tls *ctls = client_tls();
    corio_stream *good = NULL;
    CHECK_OK(corio_stream_connect_tls("localhost", port, ctls, &good));
    CHECK_OK(corio_stream_write(good, "one", 3));
    char buf[16];
    CHECK_EQ(corio_stream_readexactly(good, buf, 3, NULL), 3);
    CHECK_MEM(buf, "one", 3);
    CHECK_EQ(handled, 1);

    /* ...when a browser speaks plain HTTP to the port: it is closed, with
     * an alert at most, and never reaches the handler. */
    corio_stream *http = raw_connect(port);
    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(http, req, sizeof req - 1));
    check_closed_with_alert_at_most(http);
    corio_stream_close(http);
    CHECK_EQ(handled, 1);

    /* The first client did not notice, and new ones are served. */
    CHECK_OK(corio_stream_write(good, "two", 3));
    CHECK_EQ(corio_stream_readexactly(good, buf, 3, NULL), 3);
    CHECK_MEM(buf, "two", 3);
    tls_round_trip(port, "a new client");
    CHECK_EQ(handled, 2);
    CHECK_OK(corio_stream_aclose(good));
    corio_tls_free(ctls);
    CHECK_OK(corio_server_close(srv, 1000));
    wait_fds_at_most(fds - 1); /* the listener, and every connection, are gone */
    return NULL;
}

TEST(plaintext_http_is_closed_and_others_served)
{
    need_tls();
    test_run(plaintext_main, NULL);
}

static void *plaintext_probe_main(void *arg)
{
    (void)arg;
    probe p;
    probe_start(&p, 0);
    uint16_t port = corio_server_port(p.srv);
    corio_stream *http = raw_connect(port);
    const char req[] = "GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(http, req, sizeof req - 1));
    check_closed_with_alert_at_most(http);
    corio_stream_close(http);
    CHECK_OK(corio_event_wait(&p.slot[0].done));
    CHECK_ERR(p.slot[0].result, -CORIO_ETLS);
    CHECK(p.slot[0].why[0] != 0); /* says why */
    tls_round_trip(port, "still serving");
    CHECK_OK(p.slot[1].result);
    probe_stop(&p);
    return NULL;
}

TEST(plaintext_http_fails_start_tls_with_etls)
{
    need_tls();
    test_run(plaintext_probe_main, NULL);
}

/* ---- garbage, oversized and truncated records --------------------------- */

typedef struct send_case {
    const hello *h;
    const unsigned char *extra; /* sent right after the (partial) hello, in the same write */
    size_t extra_len;
    size_t hello_len; /* how much of the hello to send */
    bool eof;         /* then half-close */
    int want;         /* the server's start_tls result */
} send_case;

static void *send_case_main(void *arg)
{
    send_case *sc = arg;
    probe p;
    probe_start(&p, 0);
    uint16_t port = corio_server_port(p.srv);
    corio_stream *c = raw_connect(port);
    unsigned char msg[8192];
    CHECK(sc->hello_len + sc->extra_len <= sizeof msg);
    memcpy(msg, sc->h->bytes, sc->hello_len);
    if (sc->extra_len)
        memcpy(msg + sc->hello_len, sc->extra, sc->extra_len);
    CHECK_OK(corio_stream_write(c, msg, sc->hello_len + sc->extra_len));
    if (sc->eof)
        CHECK_OK(corio_stream_write_eof(c));
    /* the client stays connected (unless eof): the server must end the
     * connection on what it has, without waiting for more */
    unsigned char buf[65536];
    size_t len;
    ssize_t r = read_to_close(c, buf, sizeof buf, &len);
    CHECK(r == 0 || r == -ECONNRESET);
    corio_stream_close(c);
    CHECK_OK(corio_event_wait(&p.slot[0].done));
    CHECK_ERR(p.slot[0].result, sc->want);
    if (sc->want == -CORIO_ETLS)
        CHECK(p.slot[0].why[0] != 0);
    tls_round_trip(port, "still serving");
    CHECK_OK(p.slot[1].result);
    probe_stop(&p);
    return NULL;
}

TEST(garbage_after_client_hello)
{
    need_tls();
    hello h;
    capture_hello(&h);
    unsigned char garbage[1000];
    memset(garbage, 0xff, sizeof garbage); /* content type 255: no such record */
    send_case sc = {&h, garbage, sizeof garbage, h.len, false, -CORIO_ETLS};
    test_run(send_case_main, &sc);
    /* the same with the client half-closing after the garbage */
    sc.eof = true;
    test_run(send_case_main, &sc);
}

TEST(oversized_record_fails_without_waiting)
{
    need_tls();
    hello h;
    capture_hello(&h);
    /* a handshake record announcing 65535 bytes, far above TLS's limit:
     * the server must refuse it on the header, not wait for the body */
    static const unsigned char big[] = {22, 3, 1, 0xff, 0xff, 1, 0, 0xff};
    send_case sc = {&h, big, sizeof big, 0, false, -CORIO_ETLS};
    test_run(send_case_main, &sc);
    /* and an application-data record in place of the ClientHello */
    static const unsigned char appdata[] = {23, 3, 3, 0,  16, 1,  2,  3,  4,  5, 6,
                                            7,  8, 9, 10, 11, 12, 13, 14, 15, 16};
    send_case sc2 = {&h, appdata, sizeof appdata, 0, false, -CORIO_ETLS};
    test_run(send_case_main, &sc2);
}

TEST(truncated_client_hello_then_eof)
{
    need_tls();
    hello h;
    capture_hello(&h);
    /* the record header and half the ClientHello, then EOF */
    send_case sc = {&h, NULL, 0, h.len / 2, true, -CORIO_ETLSTRUNC};
    test_run(send_case_main, &sc);
    /* a record header alone */
    sc.hello_len = 5;
    test_run(send_case_main, &sc);
    /* three bytes of a header */
    sc.hello_len = 3;
    test_run(send_case_main, &sc);
}

/* A record cut in half after the handshake: the client's records pass
 * through a relay that, once the handshake is over, forwards half of the
 * next one and then ends the connection.  The server's read must report
 * the truncation (-CORIO_ETLSTRUNC), not EOF and not data. */
typedef struct pump {
    corio_stream *from, *to;
    bool *cut_next; /* NULL: forward everything */
} pump;

static void *pump_main(void *arg)
{
    pump *pm = arg;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = corio_stream_read(pm->from, buf, sizeof buf)) > 0) {
        bool cut = pm->cut_next && *pm->cut_next;
        size_t len = cut ? (size_t)n / 2 : (size_t)n;
        if (corio_stream_write(pm->to, buf, len) < 0 || corio_stream_drain(pm->to) < 0)
            break;
        if (cut)
            break;
    }
    corio_stream_write_eof(pm->to);
    return NULL;
}

typedef struct trunc_server {
    corio_stream *s;
    corio_event handshake_done;
    int hs, rd;
    char buf[256];
} trunc_server;

static void *trunc_server_main(void *arg)
{
    trunc_server *ts = arg;
    corio_tls *tls = server_tls(0);
    ts->hs = corio_stream_start_tls(ts->s, tls, NULL);
    corio_tls_free(tls);
    corio_event_set(&ts->handshake_done);
    if (ts->hs == 0)
        ts->rd = (int)corio_stream_read(ts->s, ts->buf, sizeof ts->buf);
    corio_stream_close(ts->s);
    return NULL;
}

static void *truncated_record_main(void *arg)
{
    (void)arg;
    int a[2], b[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a));
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b));
    corio_stream *client = corio_stream_from_fd(a[0]), *ra = corio_stream_from_fd(a[1]);
    corio_stream *rb = corio_stream_from_fd(b[0]);
    trunc_server ts = {.s = corio_stream_from_fd(b[1])};
    CHECK(client && ra && rb && ts.s);
    corio_event_init(&ts.handshake_done);
    bool cut = false;
    pump up = {ra, rb, &cut}, down = {rb, ra, NULL};
    corio_task *server = corio_spawn(trunc_server_main, &ts);
    corio_task *pu = corio_spawn(pump_main, &up), *pd = corio_spawn(pump_main, &down);
    CHECK(server && pu && pd);

    corio_tls *tls = client_tls();
    CHECK_OK(corio_stream_start_tls(client, tls, "localhost"));
    corio_tls_free(tls);
    CHECK_OK(corio_event_wait(&ts.handshake_done));
    CHECK_OK(ts.hs);
    cut = true; /* everything of the handshake went through: cut the next record */
    const char msg[] = "this record arrives only in part";
    CHECK_OK(corio_stream_write(client, msg, sizeof msg - 1));
    CHECK_OK(corio_stream_drain(client));
    CHECK_OK(corio_task_join(server, NULL));
    CHECK_ERR(ts.rd, -CORIO_ETLSTRUNC);
    /* the client, in turn, sees the server's side end without close_notify:
     * the relay forwards the TCP end, nothing of TLS */
    char buf[64];
    corio_deadline d = corio_deadline_push(LIMIT_MS);
    ssize_t r = corio_stream_read(client, buf, sizeof buf);
    corio_deadline_pop(d);
    CHECK(r == -CORIO_ETLSTRUNC || r == 0); /* 0 if the server's close sent close_notify */
    corio_stream_close(client);
    CHECK_OK(corio_task_join(pu, NULL));
    CHECK_OK(corio_task_join(pd, NULL));
    corio_stream_close(ra);
    corio_stream_close(rb);
    return NULL;
}

TEST(truncated_record_after_handshake)
{
    need_tls();
    test_run(truncated_record_main, NULL);
}

/* ---- clients that stall mid-handshake ----------------------------------- */

/* The handshake time-out of the stall tests.  A well-behaved client's
 * handshake on the same server must finish well within it, which takes a
 * few ms natively but far longer under valgrind's JIT or TSan. */
#define STALL_MS ((uint64_t)300 * TEST_SLOWDOWN * (TEST_VALGRIND ? 10 : 1))

static void *stall_probe_main(void *arg)
{
    const hello *h = arg;
    probe p;
    probe_start(&p, STALL_MS);
    uint16_t port = corio_server_port(p.srv);
    corio_stream *c = raw_connect(port);
    CHECK_OK(corio_stream_write(c, h->bytes, h->len / 2)); /* half a ClientHello, then nothing */
    CHECK_OK(corio_stream_drain(c));
    /* meanwhile another client gets its whole session */
    tls_round_trip(port, "served during the stall");
    /* the stalled one is freed at the deadline, and not before */
    check_closed_with_alert_at_most(c);
    corio_stream_close(c);
    CHECK_OK(corio_event_wait(&p.slot[0].done));
    CHECK_ERR(p.slot[0].result, -ETIMEDOUT);
    CHECK(p.slot[0].ms >= STALL_MS - 5); /* test_ms rounds down; the engine may round either way */
    CHECK(p.slot[0].ms < LIMIT_MS);
    CHECK_OK(p.slot[1].result);
    probe_stop(&p);
    return NULL;
}

TEST(stalled_handshake_times_out)
{
    need_tls();
    hello h;
    capture_hello(&h);
    test_run(stall_probe_main, &h);
}

static void *stall_server_main(void *arg)
{
    const hello *h = arg;
    corio_server *srv = start_tls_echo(STALL_MS);
    uint16_t port = corio_server_port(srv);
    int fds = test_fd_count();
    uint64_t t0 = test_ms();                   /* before the connects: no server timer starts earlier */
    corio_stream *silent = raw_connect(port);  /* says nothing at all */
    corio_stream *partial = raw_connect(port); /* half a ClientHello */
    corio_stream *full = raw_connect(port);    /* a whole one, then never its Finished */
    CHECK_OK(corio_stream_write(partial, h->bytes, h->len / 2));
    CHECK_OK(corio_stream_write(full, h->bytes, h->len));
    tls_round_trip(port, "served during the stall");
    CHECK_EQ(handled, 1);
    check_closed_with_alert_at_most(silent);
    check_closed_with_alert_at_most(partial);
    /* the server answered the whole ClientHello with its flight: read it
     * all, and then the end */
    unsigned char buf[65536];
    size_t len;
    ssize_t r = read_to_close(full, buf, sizeof buf, &len);
    CHECK(r == 0 || r == -ECONNRESET);
    CHECK(len > 0 && buf[0] == 22); /* ServerHello */
    CHECK(test_ms() - t0 >= STALL_MS - 5);
    CHECK_EQ(handled, 1); /* none of them reached the handler */
    corio_stream_close(silent);
    corio_stream_close(partial);
    corio_stream_close(full);
    /* the server's ends are closed too: back to the fds we started with */
    wait_fds_at_most(fds);
    tls_round_trip(port, "and after");
    CHECK_OK(corio_server_close(srv, 1000));
    return NULL;
}

TEST(stalled_handshakes_freed_at_deadline)
{
    need_tls();
    hello h;
    capture_hello(&h);
    test_run(stall_server_main, &h);
}

/* ---- 10,000 connections that never finish the handshake ----------------- */

/* Both ends of 10,000 connections in one process would need 20,000 fds,
 * the hard limit here; so the clients run in a child process, forked
 * before any loop exists (it uses plain sockets and epoll, no corio).  A
 * quarter send nothing, a quarter a record header, a quarter half a
 * ClientHello and a quarter a whole one (the server answers with its
 * flight and waits for a Finished that never comes).  The child counts
 * the connections the server closed and reports the count in a pipe. */
#define HANDSHAKE_MS ((uint64_t)1000 * TEST_SLOWDOWN * (TEST_VALGRIND ? 10 : 1))

static int wait_child_closed(int fd, int *open_left)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        close(fd); /* EOF or an error: the server let go of it */
        (*open_left)--;
        return 1;
    }
}

static void hostile_child(int port_rd, int res_wr, const hello *h, int n)
{
    uint16_t port;
    if (read(port_rd, &port, sizeof port) != sizeof port)
        _exit(2);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int open_left = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            failed++;
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t len = i % 4 == 0 ? 0 : i % 4 == 1 ? 5 : i % 4 == 2 ? h->len / 2 : h->len;
        if (len && send(fd, h->bytes, len, MSG_NOSIGNAL) != (ssize_t)len) {
            close(fd); /* already closed by the server? then it counts as freed */
            continue;
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        open_left++;
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (open_left > 0) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++)
            wait_child_closed(evs[i].data.fd, &open_left);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 90)
            break;
    }
    int res[2] = {failed, open_left};
    if (write(res_wr, res, sizeof res) != sizeof res)
        _exit(3);
    _exit(0);
}

typedef struct many {
    int port_wr, res_rd, n;
} many;

static void *many_main(void *arg)
{
    many *m = arg;
    corio_server *srv = start_tls_echo(HANDSHAKE_MS);
    uint16_t port = corio_server_port(srv);
    corio_stream *res = corio_stream_from_fd(m->res_rd);
    CHECK(res);
    int fds = test_fd_count();
    CHECK_EQ(write(m->port_wr, &port, sizeof port), sizeof port);
    int got[2];
    corio_deadline d = corio_deadline_push(110000);
    CHECK_EQ(corio_stream_readexactly(res, got, sizeof got, NULL), sizeof got);
    corio_deadline_pop(d);
    CHECK_EQ(got[0], 0); /* every connect worked */
    CHECK_EQ(got[1], 0); /* and the server closed every connection */
    CHECK_EQ(handled, 0);
    wait_fds_at_most(fds);
    tls_round_trip(port, "still serving after the flood");
    CHECK_EQ(handled, 1);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_stream_close(res);
    return NULL;
}

TEST(many_unfinished_handshakes_all_freed)
{
    need_tls();
    hello h;
    capture_hello(&h);
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = rl.rlim_max;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    int n = TEST_SCALE(10000);
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n + 256 > rl.rlim_cur) {
        n = (int)rl.rlim_cur - 256;
        printf("fd limit %llu: %d connections\n", (unsigned long long)rl.rlim_cur, n);
    }
    int port_pipe[2], res_pipe[2];
    CHECK_OK(pipe2(port_pipe, O_CLOEXEC));
    CHECK_OK(pipe2(res_pipe, O_CLOEXEC));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(port_pipe[1]);
        close(res_pipe[0]);
        hostile_child(port_pipe[0], res_pipe[1], &h, n);
    }
    close(port_pipe[0]);
    close(res_pipe[1]);
    many m = {port_pipe[1], res_pipe[0], n};
    test_run(many_main, &m);
    close(port_pipe[1]);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

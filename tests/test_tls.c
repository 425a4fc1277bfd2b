/*
 * TLS streams, corio client against corio server on loopback: versions,
 * the stream calls over TLS with exact bytes, ALPN, SNI, resumption,
 * close_notify against truncation, verification failures with their
 * reasons, mTLS, the handshake limit, cancel/deadline during a read,
 * certificate reload, and the offload report.  The certificates come from
 * tests/tls/make_certs.sh, made once per build tree (tls-certs/).
 */
#include "runner.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Certificates and servers                                            */
/* ------------------------------------------------------------------ */

static const char *cert(const char *name)
{
    static char dir[1024];
    static char bufs[16][1200];
    static unsigned next;
    if (!dir[0]) {
        if (!corio_tls_available())
            SKIP("corio built without OpenSSL");
        snprintf(dir, sizeof dir, "%s/tls-certs", CORIO_TEST_BINARY_DIR);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "flock '%s.lock' bash '%s/tests/tls/make_certs.sh' '%s'", dir,
                 CORIO_SOURCE_DIR, dir);
        if (system(cmd) != 0)
            SKIP("could not make the test certificates (openssl, flock)");
    }
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static corio_tls *server_tls(const corio_tls_options *base)
{
    static corio_tls_cert certs[2];
    certs[0] = (corio_tls_cert){cert("server.pem"), cert("server.key")};
    certs[1] = (corio_tls_cert){cert("other.pem"), cert("other.key")};
    corio_tls_options o = base ? *base : (corio_tls_options){0};
    if (!o.certs) {
        o.certs = certs;
        o.n_certs = 2;
    }
    corio_tls *t = NULL;
    CHECK_OK(corio_tls_server_new(&o, &t));
    return t;
}

static corio_tls *client_tls(const corio_tls_options *base)
{
    corio_tls_options o = base ? *base : (corio_tls_options){0};
    if (!o.ca_file && !o.insecure_no_verify)
        o.ca_file = cert("ca.pem");
    corio_tls *t = NULL;
    CHECK_OK(corio_tls_client_new(&o, &t));
    return t;
}

static corio_server *serve(corio_tls *tls, corio_conn_fn fn, void *arg, uint16_t *port)
{
    corio_server_config cfg = {.tls = tls};
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start("127.0.0.1", 0, fn, arg, &cfg, &srv));
    *port = corio_server_port(srv);
    return srv;
}

/* Echo lines until EOF, then close politely. */
static void echo_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char line[4096];
    for (;;) {
        ssize_t n = corio_stream_readline(s, line, sizeof line);
        if (n <= 0)
            break;
        if (corio_stream_write(s, line, (size_t)n) < 0)
            break;
    }
    (void)corio_stream_aclose(s);
}

/* ------------------------------------------------------------------ */
/* Basics                                                              */
/* ------------------------------------------------------------------ */

typedef struct version_case {
    int version;
    const char *name;
} version_case;

static void *echo_version_main(void *arg)
{
    version_case *vc = arg;
    corio_tls_options so = {.min_version = vc->version, .max_version = vc->version};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, echo_handler, NULL, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    CHECK_STR(corio_stream_tls_version(c), vc->name);
    CHECK(corio_stream_tls_alpn(c) == NULL);
    CHECK(!corio_stream_tls_offloaded(c));
    CHECK_STR(corio_stream_tls_error(c), "");
    CHECK_OK(corio_stream_write(c, "hello\n", 6));
    char buf[64];
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 6);
    CHECK_MEM(buf, "hello\n", 6);
    CHECK_OK(corio_stream_write(c, "abc\ndef\n", 8));
    CHECK_EQ(corio_stream_readexactly(c, buf, 8, NULL), 8);
    CHECK_MEM(buf, "abc\ndef\n", 8);
    CHECK_OK(corio_stream_write_eof(c));
    CHECK_EQ(corio_stream_read(c, buf, sizeof buf), 0); /* the server's close_notify */
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(echo_tls13)
{
    version_case vc = {0x0304, "TLSv1.3"};
    test_run(echo_version_main, &vc);
}

TEST(echo_tls12)
{
    version_case vc = {0x0303, "TLSv1.2"};
    test_run(echo_version_main, &vc);
}

/* ------------------------------------------------------------------ */
/* Bulk: 1 MiB each way, exact bytes                                   */
/* ------------------------------------------------------------------ */

#define BULK (1024u * 1024u)

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + (i >> 11)); }

static void bulk_handler(corio_stream *s, void *arg)
{
    (void)arg;
    unsigned char *buf = malloc(BULK);
    CHECK(buf);
    CHECK_EQ(corio_stream_readexactly(s, buf, BULK, NULL), BULK);
    for (size_t i = 0; i < BULK; i++)
        if (buf[i] != pattern(i))
            CHECK(!"server got a wrong byte");
    /* back in odd-sized pieces, with drains */
    for (size_t off = 0; off < BULK;) {
        size_t k = BULK - off < 7777 ? BULK - off : 7777;
        CHECK_OK(corio_stream_write(s, buf + off, k));
        CHECK_OK(corio_stream_drain(s));
        off += k;
    }
    free(buf);
    CHECK_OK(corio_stream_aclose(s));
}

static void *bulk_main(void *arg)
{
    (void)arg;
    corio_tls *stls = server_tls(NULL);
    uint16_t port;
    corio_server *srv = serve(stls, bulk_handler, NULL, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    unsigned char *out = malloc(BULK), *in = malloc(BULK);
    CHECK(out && in);
    for (size_t i = 0; i < BULK; i++)
        out[i] = pattern(i);
    CHECK_OK(corio_stream_write(c, out, BULK));
    CHECK_OK(corio_stream_drain(c));
    /* read back with every read call: a few small reads, readline-free bytes, then readexactly */
    size_t got = 0;
    for (int i = 0; i < 10; i++) {
        ssize_t n = corio_stream_read(c, in + got, 100);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(corio_stream_readexactly(c, in + got, BULK - got, NULL), BULK - got);
    CHECK_MEM(in, out, BULK);
    CHECK_EQ(corio_stream_read(c, in, 10), 0);
    corio_stream_close(c);
    free(in);
    free(out);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(bulk_1mib_both_ways) { test_run(bulk_main, NULL); }

/* ------------------------------------------------------------------ */
/* ALPN, SNI                                                           */
/* ------------------------------------------------------------------ */

/* Tell the client what this side saw: "<alpn>|<sni>\n". */
static void report_handler(corio_stream *s, void *arg)
{
    (void)arg;
    char line[300];
    const char *a = corio_stream_tls_alpn(s), *n = corio_stream_tls_server_name(s);
    int k = snprintf(line, sizeof line, "%s|%s\n", a ? a : "-", n ? n : "-");
    CHECK_OK(corio_stream_write(s, line, (size_t)k));
    CHECK_OK(corio_stream_aclose(s));
}

static void read_report(corio_stream *c, const char *want)
{
    char line[300];
    ssize_t n = corio_stream_readline(c, line, sizeof line);
    CHECK(n > 0);
    line[n] = 0;
    CHECK_STR(line, want);
}

static void *alpn_main(void *arg)
{
    (void)arg;
    static const char *const server_protos[] = {"h2", "http/1.1"};
    static const char *const client_both[] = {"http/1.1", "h2"};
    static const char *const client_other[] = {"spdy/1"};
    corio_tls_options so = {.alpn = server_protos, .n_alpn = 2};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, report_handler, NULL, &port);

    /* the server's preference wins among what the client offers */
    corio_tls_options co = {.alpn = client_both, .n_alpn = 2};
    corio_tls *ctls = client_tls(&co);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    read_report(c, "h2|-\n");
    CHECK_STR(corio_stream_tls_alpn(c), "h2");
    corio_stream_close(c);
    corio_tls_free(ctls);

    /* no protocol in common: no ALPN, the connection goes on */
    co = (corio_tls_options){.alpn = client_other, .n_alpn = 1};
    ctls = client_tls(&co);
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    read_report(c, "-|-\n");
    CHECK(corio_stream_tls_alpn(c) == NULL);
    corio_stream_close(c);
    corio_tls_free(ctls);

    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(stls);
    return NULL;
}

TEST(alpn_agreed_and_none) { test_run(alpn_main, NULL); }

/* Connect to 127.0.0.1 asking for name (verified against the CA). */
static int connect_named(uint16_t port, corio_tls *ctls, const char *name, corio_stream **out)
{
    corio_stream *s = NULL;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &s));
    int r = corio_stream_start_tls(s, ctls, name);
    *out = s;
    return r;
}

static void *sni_main(void *arg)
{
    (void)arg;
    corio_tls *stls = server_tls(NULL); /* server.pem (default), other.pem */
    uint16_t port;
    corio_server *srv = serve(stls, report_handler, NULL, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c;
    /* verification proves which certificate came: other.pem alone names these */
    CHECK_OK(connect_named(port, ctls, "other.test", &c));
    read_report(c, "-|other.test\n");
    CHECK_STR(corio_stream_tls_server_name(c), "other.test");
    corio_stream_close(c);
    CHECK_OK(connect_named(port, ctls, "a.wild.test", &c));
    read_report(c, "-|a.wild.test\n");
    corio_stream_close(c);
    /* the default for a name no certificate has, and for localhost */
    CHECK_OK(connect_named(port, ctls, "localhost", &c));
    read_report(c, "-|localhost\n");
    corio_stream_close(c);
    CHECK_ERR(connect_named(port, ctls, "nobody.test", &c), -CORIO_ETLSVERIFY);
    CHECK_STR(corio_stream_tls_error(c), "hostname mismatch");
    corio_stream_close(c);
    /* a wildcard covers one label only */
    CHECK_ERR(connect_named(port, ctls, "a.b.wild.test", &c), -CORIO_ETLSVERIFY);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(sni_picks_certificate) { test_run(sni_main, NULL); }

/* ------------------------------------------------------------------ */
/* Resumption                                                          */
/* ------------------------------------------------------------------ */

typedef struct resume_case {
    int version;
    bool client_no_tickets, server_no_tickets;
} resume_case;

static void *resume_main(void *arg)
{
    resume_case *rc = arg;
    corio_tls_options so = {.max_version = rc->version, .no_session_tickets = rc->server_no_tickets};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, echo_handler, NULL, &port);
    corio_tls_options co = {.no_session_tickets = rc->client_no_tickets};
    corio_tls *ctls = client_tls(&co);
    bool want_resumed = !rc->client_no_tickets && !rc->server_no_tickets;
    for (int i = 0; i < 3; i++) {
        corio_stream *c = NULL;
        CHECK_OK(corio_stream_connect_tls("localhost", port, ctls, &c));
        CHECK_EQ(corio_stream_tls_resumed(c), i > 0 && want_resumed);
        /* a round trip: TLS 1.3 tickets come after the handshake */
        char buf[16];
        CHECK_OK(corio_stream_write(c, "x\n", 2));
        CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 2);
        CHECK_OK(corio_stream_aclose(c));
    }
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(resumption_tls13)
{
    resume_case rc = {0, false, false};
    test_run(resume_main, &rc);
}

TEST(resumption_tls12)
{
    resume_case rc = {0x0303, false, false};
    test_run(resume_main, &rc);
}

TEST(no_resumption_without_tickets)
{
    resume_case rc = {0, true, false};
    test_run(resume_main, &rc);
    rc = (resume_case){0, false, true};
    test_run(resume_main, &rc);
}

/* ------------------------------------------------------------------ */
/* Closing: close_notify against truncation                            */
/* ------------------------------------------------------------------ */

static void truncate_handler(corio_stream *s, void *arg)
{
    corio_event *done = arg;
    CHECK_OK(corio_stream_write(s, "partial body", 12));
    CHECK_OK(corio_stream_drain(s));
    /* the TCP connection ends without close_notify (a cut, or an attack) */
    CHECK(shutdown(corio_stream_fd(s), SHUT_WR) == 0);
    CHECK_OK(corio_event_wait(done));
}

static void *truncation_main(void *arg)
{
    (void)arg;
    corio_event done;
    corio_event_init(&done);
    corio_tls *stls = server_tls(NULL);
    uint16_t port;
    corio_server *srv = serve(stls, truncate_handler, &done, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    char buf[64];
    CHECK_EQ(corio_stream_readexactly(c, buf, 12, NULL), 12);
    CHECK_MEM(buf, "partial body", 12);
    CHECK_ERR(corio_stream_read(c, buf, sizeof buf), -CORIO_ETLSTRUNC);
    CHECK_STR(corio_stream_tls_error(c), "connection closed without TLS close_notify");
    CHECK_ERR(corio_stream_read(c, buf, sizeof buf), -CORIO_ETLSTRUNC); /* and it stays so */
    size_t got = 99;
    CHECK_ERR(corio_stream_readexactly(c, buf, 4, &got), -CORIO_ETLSTRUNC);
    corio_event_set(&done);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(eof_without_close_notify_is_truncation) { test_run(truncation_main, NULL); }

/* ------------------------------------------------------------------ */
/* Verification                                                        */
/* ------------------------------------------------------------------ */

typedef struct verify_case {
    const char *cert, *key; /* the server's only certificate */
    const char *name;       /* what the client asks for */
    const char *reason;     /* NULL: accepted */
    bool insecure;
} verify_case;

static void *verify_main(void *arg)
{
    verify_case *vc = arg;
    corio_tls_cert one = {cert(vc->cert), cert(vc->key)};
    corio_tls_options so = {.certs = &one, .n_certs = 1};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, echo_handler, NULL, &port);
    corio_tls_options co = {.insecure_no_verify = vc->insecure};
    corio_tls *ctls = client_tls(&co);
    corio_stream *c = NULL;
    if (!vc->name) {
        /* through connect_tls: the reason outlives the stream */
        int r = corio_stream_connect_tls("127.0.0.1", port, ctls, &c);
        if (vc->reason) {
            CHECK_ERR(r, -CORIO_ETLSVERIFY);
            CHECK(c == NULL);
            CHECK_STR(corio_stream_tls_error(NULL), vc->reason);
        } else {
            CHECK_OK(r);
        }
    } else {
        int r = connect_named(port, ctls, vc->name, &c);
        if (vc->reason) {
            CHECK_ERR(r, -CORIO_ETLSVERIFY);
            CHECK_STR(corio_stream_tls_error(c), vc->reason);
            /* the stream is unusable, and says so */
            CHECK_ERR(corio_stream_write(c, "x", 1), -CORIO_ETLSVERIFY);
            corio_stream_close(c);
            c = NULL;
        } else {
            CHECK_OK(r);
        }
    }
    if (c) {
        char buf[8];
        CHECK_OK(corio_stream_write(c, "ok\n", 3));
        CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 3);
        corio_stream_close(c);
    }
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(client_refuses_wrong_host)
{
    verify_case vc = {"wronghost.pem", "wronghost.key", "localhost", "hostname mismatch", false};
    test_run(verify_main, &vc);
    /* an address is checked against the certificate's IP entries */
    vc = (verify_case){"other.pem", "other.key", "127.0.0.1", "hostname mismatch", false};
    test_run(verify_main, &vc);
}

TEST(client_refuses_expired)
{
    verify_case vc = {"expired.pem", "expired.key", NULL, "certificate has expired", false};
    test_run(verify_main, &vc);
}

TEST(client_refuses_unknown_ca)
{
    verify_case vc = {"rogue.pem", "rogue.key", NULL, "unable to get local issuer certificate", false};
    test_run(verify_main, &vc);
}

TEST(insecure_no_verify_accepts_rogue)
{
    verify_case vc = {"rogue.pem", "rogue.key", NULL, NULL, true};
    test_run(verify_main, &vc);
    vc = (verify_case){"rogue.pem", "rogue.key", "anything.test", NULL, true};
    test_run(verify_main, &vc);
}

TEST(rsa_certificate)
{
    verify_case vc = {"rsa.pem", "rsa.key", "localhost", NULL, false};
    test_run(verify_main, &vc);
}

/* ------------------------------------------------------------------ */
/* mTLS                                                                */
/* ------------------------------------------------------------------ */

static atomic_int handler_calls;

static void counting_echo(corio_stream *s, void *arg)
{
    atomic_fetch_add(&handler_calls, 1);
    echo_handler(s, arg);
}

static void *mtls_main(void *arg)
{
    (void)arg;
    atomic_store(&handler_calls, 0);
    corio_tls_options so = {.verify_client = true, .ca_file = cert("ca.pem")};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, counting_echo, NULL, &port);

    corio_tls_cert mine = {cert("client.pem"), cert("client.key")};
    corio_tls_options co = {.certs = &mine, .n_certs = 1};
    corio_tls *ctls = client_tls(&co);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    char buf[64];
    CHECK_OK(corio_stream_write(c, "me\n", 3));
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 3);
    CHECK_OK(corio_stream_aclose(c));
    CHECK_EQ(atomic_load(&handler_calls), 1);
    corio_tls_free(ctls);

    /* no certificate: TLS 1.3 lets the client finish first; the server's
     * alert ends the first read, and the handler never runs */
    ctls = client_tls(NULL);
    int r = corio_stream_connect_tls("127.0.0.1", port, ctls, &c);
    if (r == 0) {
        (void)corio_stream_write(c, "me\n", 3);
        CHECK_ERR(corio_stream_readline(c, buf, sizeof buf), -CORIO_ETLS);
        CHECK_STR(corio_stream_tls_error(c), "peer sent alert: certificate required");
        corio_stream_close(c);
    } else {
        CHECK_ERR(r, -CORIO_ETLS);
    }
    CHECK_EQ(atomic_load(&handler_calls), 1);
    corio_tls_free(ctls);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(stls);
    return NULL;
}

TEST(mtls_accepts_client_cert_refuses_none) { test_run(mtls_main, NULL); }

/* ------------------------------------------------------------------ */
/* Handshake limit, failed handshakes                                  */
/* ------------------------------------------------------------------ */

typedef struct stall_ctx {
    corio_tls *stls;
    int result;
    corio_event done;
} stall_ctx;

static void stall_handler(corio_stream *s, void *arg)
{
    stall_ctx *x = arg;
    x->result = corio_stream_start_tls(s, x->stls, NULL);
    corio_event_set(&x->done);
}

static void *stall_main(void *arg)
{
    (void)arg;
    stall_ctx x = {.result = 1};
    corio_event_init(&x.done);
    corio_tls_options so = {.handshake_timeout_ms = 200};
    x.stls = server_tls(&so);
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start("127.0.0.1", 0, stall_handler, &x, NULL, &srv)); /* handshakes itself */
    corio_stream *c = NULL;
    uint64_t t0 = test_ms();
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &c));
    CHECK_OK(corio_stream_write(c, "\x16\x03\x01", 3)); /* the start of a record, then nothing */
    CHECK_OK(corio_event_wait(&x.done));
    CHECK_ERR(x.result, -ETIMEDOUT);
    CHECK(test_ms() - t0 < 60000);
    char buf[16];
    ssize_t n = corio_stream_read(c, buf, sizeof buf); /* the server closed it */
    CHECK(n == 0 || n == -ECONNRESET);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(x.stls);
    return NULL;
}

TEST(handshake_timeout_frees_stalled_peer) { test_run(stall_main, NULL); }

static void *plaintext_main(void *arg)
{
    (void)arg;
    atomic_store(&handler_calls, 0);
    corio_tls *stls = server_tls(NULL);
    uint16_t port;
    corio_server *srv = serve(stls, counting_echo, NULL, &port);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect("127.0.0.1", port, &c));
    CHECK_OK(corio_stream_write(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27));
    char buf[256];
    ssize_t n;
    while ((n = corio_stream_read(c, buf, sizeof buf)) > 0) /* perhaps an alert record, then the end */
        ;
    CHECK(n == 0 || n == -ECONNRESET);
    corio_stream_close(c);
    /* the server still serves */
    corio_tls *ctls = client_tls(NULL);
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    CHECK_OK(corio_stream_write(c, "ok\n", 3));
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 3);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    CHECK_EQ(atomic_load(&handler_calls), 1);
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(failed_handshake_skips_handler) { test_run(plaintext_main, NULL); }

/* ------------------------------------------------------------------ */
/* Cancel and deadline during a read                                   */
/* ------------------------------------------------------------------ */

typedef struct late_ctx {
    corio_event go;
    int rounds;
} late_ctx;

/* Per round: wait until told, then send a line. */
static void late_handler(corio_stream *s, void *arg)
{
    late_ctx *x = arg;
    for (int i = 0; i < x->rounds; i++) {
        CHECK_OK(corio_event_wait(&x->go));
        corio_event_clear(&x->go);
        char line[32];
        int k = snprintf(line, sizeof line, "late %d\n", i);
        CHECK_OK(corio_stream_write(s, line, (size_t)k));
    }
    CHECK_OK(corio_stream_aclose(s));
}

static void *reader_task(void *arg)
{
    char buf[64];
    return (void *)(intptr_t)corio_stream_read(arg, buf, sizeof buf);
}

static void *interrupt_main(void *arg)
{
    (void)arg;
    late_ctx x = {.rounds = 2};
    corio_event_init(&x.go);
    corio_tls *stls = server_tls(NULL);
    uint16_t port;
    corio_server *srv = serve(stls, late_handler, &x, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    char buf[64];

    /* a deadline ends a parked read; the next read gets the data */
    corio_deadline d = corio_deadline_push(50);
    CHECK_ERR(corio_stream_read(c, buf, sizeof buf), -CORIO_EDEADLINE);
    corio_deadline_pop(d);
    corio_event_set(&x.go);
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 7);
    CHECK_MEM(buf, "late 0\n", 7);

    /* a cancel of a task parked in a read: the stream goes on */
    corio_task *t = corio_spawn(reader_task, c);
    CHECK(t);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_yield());
    CHECK_OK(corio_task_cancel(t));
    void *res = NULL;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, -ECANCELED);
    corio_event_set(&x.go);
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 7);
    CHECK_MEM(buf, "late 1\n", 7);
    CHECK_EQ(corio_stream_read(c, buf, sizeof buf), 0);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(cancel_and_deadline_during_read_keep_stream) { test_run(interrupt_main, NULL); }

/* ------------------------------------------------------------------ */
/* Certificate reload                                                  */
/* ------------------------------------------------------------------ */

static void *reload_main(void *arg)
{
    (void)arg;
    corio_tls_cert first = {cert("server.pem"), cert("server.key")};
    corio_tls_options so = {.certs = &first, .n_certs = 1};
    corio_tls *stls = server_tls(&so);
    uint16_t port;
    corio_server *srv = serve(stls, echo_handler, NULL, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *old = NULL, *c = NULL;
    CHECK_OK(connect_named(port, ctls, "localhost", &old));
    char buf[64];
    CHECK_OK(corio_stream_write(old, "1\n", 2));
    CHECK_EQ(corio_stream_readline(old, buf, sizeof buf), 2);

    /* a failed reload changes nothing */
    corio_tls_cert missing = {cert("nope.pem"), cert("server.key")};
    CHECK_ERR(corio_tls_reload_certs(stls, &missing, 1), -ENOENT);
    corio_tls_cert mismatched = {cert("server.pem"), cert("other.key")};
    CHECK_ERR(corio_tls_reload_certs(stls, &mismatched, 1), -CORIO_ETLS);
    CHECK_OK(connect_named(port, ctls, "localhost", &c));
    corio_stream_close(c);

    corio_tls_cert next = {cert("other.pem"), cert("other.key")};
    CHECK_OK(corio_tls_reload_certs(stls, &next, 1));
    /* new connections see the new certificate ... */
    CHECK_OK(connect_named(port, ctls, "other.test", &c));
    CHECK_OK(corio_stream_write(c, "2\n", 2));
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 2);
    corio_stream_close(c);
    CHECK_ERR(connect_named(port, ctls, "localhost", &c), -CORIO_ETLSVERIFY);
    corio_stream_close(c);
    /* ... and the open one goes on */
    CHECK_OK(corio_stream_write(old, "3\n", 2));
    CHECK_EQ(corio_stream_readline(old, buf, sizeof buf), 2);
    CHECK_MEM(buf, "3\n", 2);
    corio_stream_close(old);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(reload_certs_new_connections_only) { test_run(reload_main, NULL); }

/* ------------------------------------------------------------------ */
/* STARTTLS, small stacks                                              */
/* ------------------------------------------------------------------ */

static void starttls_handler(corio_stream *s, void *arg)
{
    corio_tls *stls = arg;
    char line[64];
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 9);
    CHECK_MEM(line, "STARTTLS\n", 9);
    CHECK_OK(corio_stream_write(s, "GO\n", 3));
    CHECK_OK(corio_stream_start_tls(s, stls, NULL));
    CHECK_EQ(corio_stream_readline(s, line, sizeof line), 7);
    CHECK_MEM(line, "secret\n", 7);
    CHECK_OK(corio_stream_write(s, "safe\n", 5));
    CHECK_OK(corio_stream_aclose(s));
}

static void *starttls_main(void *arg)
{
    (void)arg;
    corio_tls *stls = server_tls(NULL);
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start("127.0.0.1", 0, starttls_handler, stls, NULL, &srv));
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &c));
    char line[64];
    CHECK(corio_stream_tls_version(c) == NULL);
    CHECK_ERR(corio_stream_start_tls(c, stls, "localhost"), -EINVAL); /* a server config on a client */
    CHECK_OK(corio_stream_write(c, "STARTTLS\n", 9));
    CHECK_EQ(corio_stream_readline(c, line, sizeof line), 3);
    CHECK_OK(corio_stream_start_tls(c, ctls, "localhost"));
    CHECK_ERR(corio_stream_start_tls(c, ctls, "localhost"), -EINVAL); /* already TLS */
    CHECK_STR(corio_stream_tls_version(c), "TLSv1.3");
    CHECK_OK(corio_stream_write(c, "secret\n", 7));
    CHECK_EQ(corio_stream_readline(c, line, sizeof line), 5);
    CHECK_MEM(line, "safe\n", 5);
    CHECK_EQ(corio_stream_read(c, line, sizeof line), 0);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(starttls_after_plain_exchange) { test_run(starttls_main, NULL); }

static void *small_stack_main(void *arg)
{
    (void)arg;
    corio_tls_cert rsa = {cert("rsa.pem"), cert("rsa.key")};
    corio_tls_options so = {.certs = &rsa, .n_certs = 1};
    corio_tls *stls = server_tls(&so);
    corio_server_config cfg = {.tls = stls, .stack_size = 16 * 1024};
    corio_server *srv = NULL;
    CHECK_OK(corio_server_start("127.0.0.1", 0, echo_handler, NULL, &cfg, &srv));
    corio_tls_free(stls); /* the server keeps its own reference */
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("localhost", corio_server_port(srv), ctls, &c));
    char buf[16];
    CHECK_OK(corio_stream_write(c, "small\n", 6));
    CHECK_EQ(corio_stream_readline(c, buf, sizeof buf), 6);
    corio_stream_close(c);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(server_with_small_handler_stack) { test_run(small_stack_main, NULL); }

/* ------------------------------------------------------------------ */
/* Options, errors, fault injection, offload                           */
/* ------------------------------------------------------------------ */

TEST(options_checked)
{
    corio_tls *t = (corio_tls *)1;
    corio_tls_cert good = {cert("server.pem"), cert("server.key")};
    static const char *const empty_alpn[] = {""};
    CHECK_ERR(corio_tls_server_new(NULL, &t), -EINVAL);
    CHECK(t == NULL);
    corio_tls_options o = {0};
    CHECK_ERR(corio_tls_server_new(&o, &t), -EINVAL); /* no certificate */
    o = (corio_tls_options){.certs = &good, .n_certs = 1, .min_version = 0x0302};
    CHECK_ERR(corio_tls_server_new(&o, &t), -EINVAL); /* TLS 1.1 */
    o = (corio_tls_options){.certs = &good, .n_certs = 1, .min_version = 0x0304, .max_version = 0x0303};
    CHECK_ERR(corio_tls_server_new(&o, &t), -EINVAL);
    o = (corio_tls_options){.certs = &good, .n_certs = 1, .verify_client = true};
    CHECK_ERR(corio_tls_server_new(&o, &t), -EINVAL); /* no CA to check clients against */
    o = (corio_tls_options){.certs = &good, .n_certs = 1, .insecure_no_verify = true};
    CHECK_ERR(corio_tls_server_new(&o, &t), -EINVAL);
    o = (corio_tls_options){.alpn = empty_alpn, .n_alpn = 1};
    CHECK_ERR(corio_tls_client_new(&o, &t), -EINVAL);
    o = (corio_tls_options){.n_alpn = 1};
    CHECK_ERR(corio_tls_client_new(&o, &t), -EINVAL);
    o = (corio_tls_options){.verify_client = true, .ca_file = cert("ca.pem")};
    CHECK_ERR(corio_tls_client_new(&o, &t), -EINVAL);
    corio_tls_cert missing = {cert("none.pem"), cert("server.key")};
    o = (corio_tls_options){.certs = &missing, .n_certs = 1};
    CHECK_ERR(corio_tls_server_new(&o, &t), -ENOENT);
    corio_tls_cert notpem = {cert("server.key"), cert("server.key")};
    o = (corio_tls_options){.certs = &notpem, .n_certs = 1};
    CHECK_ERR(corio_tls_server_new(&o, &t), -CORIO_ETLS);
    corio_tls_cert mismatch = {cert("server.pem"), cert("rsa.key")};
    o = (corio_tls_options){.certs = &mismatch, .n_certs = 1};
    CHECK_ERR(corio_tls_server_new(&o, &t), -CORIO_ETLS);
    o = (corio_tls_options){.ca_file = cert("none.pem")};
    CHECK_ERR(corio_tls_client_new(&o, &t), -ENOENT);
    CHECK(t == NULL);
    /* the defaults: a client on the system store */
    CHECK_OK(corio_tls_client_new(NULL, &t));
    CHECK_ERR(corio_tls_reload_certs(t, &good, 1), -EINVAL); /* not a server */
    corio_tls_free(t);
}

TEST(config_allocation_failures)
{
    corio_tls_cert certs[2] = {{cert("server.pem"), cert("server.key")},
                               {cert("other.pem"), cert("other.key")}};
    static const char *const protos[] = {"h2", "http/1.1"};
    corio_tls_options so = {.certs = certs, .n_certs = 2, .alpn = protos, .n_alpn = 2};
    corio_tls_options co = {.ca_file = cert("ca.pem"), .alpn = protos, .n_alpn = 2};
    for (int server = 0; server < 2; server++) {
        bool ok = false;
        for (long n = 1; n < 100 && !ok; n++) {
            corio_tls *t = NULL;
            corio_fi_fail_at(n);
            int r = server ? corio_tls_server_new(&so, &t) : corio_tls_client_new(&co, &t);
            corio_fi_fail_at(0);
            if (r == 0) {
                ok = true;
                corio_tls_free(t);
            } else {
                CHECK_ERR(r, -ENOMEM);
                CHECK(t == NULL);
            }
        }
        CHECK(ok);
    }
}

static void *start_tls_nomem_main(void *arg)
{
    (void)arg;
    corio_tls *ctls = client_tls(NULL);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    corio_stream *s = corio_stream_from_fd(sv[0]);
    CHECK(s);
    corio_fi_fail_next("calloc", 1);
    CHECK_ERR(corio_stream_start_tls(s, ctls, "localhost"), -ENOMEM);
    CHECK(corio_stream_tls_version(s) == NULL); /* still a plain stream */
    CHECK_OK(corio_stream_write(s, "plain", 5));
    char buf[8];
    CHECK(read(sv[1], buf, sizeof buf) == 5);
    corio_stream_close(s);
    close(sv[1]);
    corio_tls_free(ctls);
    return NULL;
}

TEST(start_tls_out_of_memory_leaves_stream_plain) { test_run(start_tls_nomem_main, NULL); }

TEST(kernel_offload_reported)
{
    (void)cert("ca.pem");
    if (!corio_tls_kernel_offload_available())
        SKIP("kernel has no tls ULP");
    /* With the ULP, records still stay in user space (no offload path yet). */
    CHECK(corio_tls_kernel_offload_available());
}

/* ------------------------------------------------------------------ */
/* Closing while another task waits                                    */
/* ------------------------------------------------------------------ */

static void hold_handler(corio_stream *s, void *arg)
{
    corio_event *done = arg;
    CHECK_OK(corio_event_wait(done));
    corio_stream_close(s);
}

static void *close_while_reading_main(void *arg)
{
    (void)arg;
    corio_event done;
    corio_event_init(&done);
    corio_tls *stls = server_tls(NULL);
    uint16_t port;
    corio_server *srv = serve(stls, hold_handler, &done, &port);
    corio_tls *ctls = client_tls(NULL);
    corio_stream *c = NULL;
    CHECK_OK(corio_stream_connect_tls("127.0.0.1", port, ctls, &c));
    corio_task *t = corio_spawn(reader_task, c);
    CHECK(t);
    CHECK_OK(corio_yield());
    CHECK_OK(corio_yield());
    CHECK_OK(corio_stream_write(c, "bye", 3));
    corio_stream_close(c); /* close_notify queued, the reader woken */
    void *res = NULL;
    CHECK_OK(corio_task_join(t, &res));
    CHECK_EQ((intptr_t)res, -EBADF);
    corio_event_set(&done);
    CHECK_OK(corio_server_close(srv, 1000));
    corio_tls_free(ctls);
    corio_tls_free(stls);
    return NULL;
}

TEST(close_while_another_task_reads) { test_run(close_while_reading_main, NULL); }

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

/*
 * HTTPS in the HTTP server (issue 11): corio_http_server_config.tls.  The
 * server runs on the test's loop and the clients are corio's own TLS
 * streams (corio_stream_connect_tls, trusting the test CA), so every byte
 * is checked end to end: keep-alive and pipelined requests, a POST body
 * (sized and chunked), a file body of several MiB byte for byte (the
 * read-and-encrypt path that replaces sendfile), close_notify at the end,
 * plaintext HTTP to the TLS port (nginx's 400) and other non-TLS bytes
 * (closed, nothing sent), a client stalling mid-handshake (freed at the
 * head deadline), idle keep-alive TLS connections that hold no task and
 * still work afterwards, and a certificate reload under an open
 * connection.  The certificates come from tests/tls/make_certs.sh, run
 * into a fresh temporary directory.
 */
#include "runner.h"

#include "internal.h" /* live task count: idle connections hold no task */

#include <corio/http.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- certificates ---- */

static char certdir[256];
static char ca_pem[300], server_pem[300], server_key[300], other_pem[300], other_key[300];

static void rm_certs(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", certdir);
}

/* Make the test certificates (or skip the test without TLS or openssl). */
static void certs_setup(void)
{
    if (!corio_tls_available())
        SKIP("corio built without TLS (OpenSSL)");
    if (system("openssl version >/dev/null 2>&1") != 0)
        SKIP("no openssl tool to make the test certificates");
    snprintf(certdir, sizeof certdir, "/tmp/corio-http-tls-XXXXXX");
    CHECK(mkdtemp(certdir));
    atexit(rm_certs);
    char src[512], cmd[1024];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(cmd, sizeof cmd, "bash '%s/tls/make_certs.sh' '%s'", dirname(src), certdir);
    CHECK_EQ(system(cmd), 0);
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", certdir);
    snprintf(server_pem, sizeof server_pem, "%s/server.pem", certdir);
    snprintf(server_key, sizeof server_key, "%s/server.key", certdir);
    snprintf(other_pem, sizeof other_pem, "%s/other.pem", certdir);
    snprintf(other_key, sizeof other_key, "%s/other.key", certdir);
}

/* The server's config; hs_timeout_ms 0: the default handshake limit. */
static corio_tls *server_tls_limit(uint64_t hs_timeout_ms)
{
    corio_tls_cert cert = {server_pem, server_key};
    corio_tls_options o = {.certs = &cert, .n_certs = 1, .handshake_timeout_ms = hs_timeout_ms};
    corio_tls *t;
    CHECK_OK(corio_tls_server_new(&o, &t));
    return t;
}

static corio_tls *server_tls(void) { return server_tls_limit(0); }

static corio_tls *client_tls(void)
{
    corio_tls_options o = {.ca_file = ca_pem};
    corio_tls *t;
    CHECK_OK(corio_tls_client_new(&o, &t));
    return t;
}

/* ---- the handler ---- */

static char file_path[300];
static size_t file_size;
static unsigned char *file_bytes;

static bool path_is(const corio_http_request *req, const char *p)
{
    return req->path.len == strlen(p) && memcmp(req->path.ptr, p, req->path.len) == 0;
}

static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    if (path_is(req, "/echo")) {
        const char *b;
        size_t n;
        if (corio_http_request_read_body(req, 4 << 20, &b, &n) < 0)
            return;
        corio_http_response_send(resp, 200, "application/octet-stream", b, n);
    } else if (path_is(req, "/file")) {
        int fd = open(file_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            corio_http_response_send(resp, 500, "text/plain", "no file\n", 8);
            return;
        }
        corio_http_response_send_file(resp, 200, "application/octet-stream", fd, 0, file_size);
        close(fd);
    } else if (path_is(req, "/part")) {
        int fd = open(file_path, O_RDONLY | O_CLOEXEC);
        corio_http_response_send_file(resp, 200, "application/octet-stream", fd, 1000, 70000);
        close(fd);
    } else {
        /* the path back, so that the order of pipelined answers shows */
        corio_http_response_send(resp, 200, "text/plain", req->path.ptr, req->path.len);
    }
}

/* ---- client side ---- */

/* Read one response: status, and the body (Content-Length) into a fresh
 * malloc'd buffer (*body, *len).  Returns the status or -errno. */
static int read_response(corio_stream *s, char **body, size_t *len)
{
    const char *head;
    ssize_t hl = corio_stream_readuntil(s, "\r\n\r\n", 4, &head);
    if (hl < 0)
        return (int)hl;
    int status = atoi(head + 9);
    size_t cl = 0;
    const char *p = memmem(head, (size_t)hl, "Content-Length: ", 16);
    if (p)
        cl = strtoul(p + 16, NULL, 10);
    char *b = malloc(cl + 1);
    CHECK(b);
    if (cl) {
        ssize_t r = corio_stream_readexactly(s, b, cl, NULL);
        if (r < 0) {
            free(b);
            return (int)r;
        }
    }
    b[cl] = 0;
    *body = b;
    *len = cl;
    return status;
}

/* GET path on s and check the answer is 200 with body want. */
static void get_expect(corio_stream *s, const char *path, const char *want)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    CHECK_OK(corio_stream_write(s, req, (size_t)n));
    CHECK_OK(corio_stream_drain(s));
    char *body;
    size_t len;
    CHECK_EQ(read_response(s, &body, &len), 200);
    CHECK_STR(body, want);
    free(body);
}

static corio_http_server *start_server(corio_http_server_config *cfg)
{
    corio_http_server_config def = {0};
    if (!cfg)
        cfg = &def;
    if (!cfg->tls)
        cfg->tls = server_tls();
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, handler, NULL, cfg, &srv));
    corio_tls_free(cfg->tls); /* the server holds its own reference */
    return srv;
}

static corio_stream *connect_tls(corio_http_server *srv, corio_tls *ctls)
{
    corio_stream *s;
    CHECK_OK(corio_stream_connect_tls("localhost", corio_http_server_port(srv), ctls, &s));
    return s;
}

/* A plain TCP connection to the server's port (blocking socket on a worker
 * is not needed: corio streams without TLS). */
static corio_stream *connect_plain(corio_http_server *srv)
{
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &s));
    return s;
}

/* ---- tests ---- */

static void *keepalive_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    corio_stream *s = connect_tls(srv, ctls);
    CHECK_STR(corio_stream_tls_version(s), "TLSv1.3");
    for (int i = 0; i < 5; i++) {
        char path[32];
        snprintf(path, sizeof path, "/req%d", i);
        get_expect(s, path, path);
    }
    CHECK_EQ(corio_http_server_connections(srv), 1u);
    /* Connection: close: the answer, then the server's close_notify (an
     * orderly EOF, never -CORIO_ETLSTRUNC) */
    static const char last[] = "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    CHECK_OK(corio_stream_write(s, last, sizeof last - 1));
    char *body;
    size_t len;
    CHECK_EQ(read_response(s, &body, &len), 200);
    CHECK_STR(body, "/last");
    free(body);
    char b[16];
    CHECK_EQ(corio_stream_read(s, b, sizeof b), 0);
    corio_stream_close(s);

    /* TLS 1.2 (its own record and ticket flow) works the same */
    corio_tls_options o12 = {.ca_file = ca_pem, .max_version = 0x0303};
    corio_tls *c12;
    CHECK_OK(corio_tls_client_new(&o12, &c12));
    s = connect_tls(srv, c12);
    CHECK_STR(corio_stream_tls_version(s), "TLSv1.2");
    get_expect(s, "/v12a", "/v12a");
    get_expect(s, "/v12b", "/v12b");
    corio_stream_close(s);
    corio_tls_free(c12);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(keepalive_get)
{
    certs_setup();
    test_run(keepalive_main, NULL);
}

static void *pipelined_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    corio_stream *s = connect_tls(srv, ctls);
    /* 20 requests in one write: they arrive in one or a few TLS records,
     * and every answer must come, in order, without waiting for more input */
    char reqs[4096];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /p%d HTTP/1.1\r\nHost: localhost\r\n\r\n", i);
    CHECK_OK(corio_stream_write(s, reqs, n));
    CHECK_OK(corio_stream_drain(s));
    for (int i = 0; i < 20; i++) {
        char want[16], *body;
        size_t len;
        snprintf(want, sizeof want, "/p%d", i);
        CHECK_EQ(read_response(s, &body, &len), 200);
        CHECK_STR(body, want);
        free(body);
    }
    /* and two more in two separate TLS records sent back to back */
    static const char r1[] = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char r2[] = "GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(s, r1, sizeof r1 - 1));
    CHECK_OK(corio_stream_write(s, r2, sizeof r2 - 1));
    CHECK_OK(corio_stream_drain(s));
    char *body;
    size_t len;
    CHECK_EQ(read_response(s, &body, &len), 200);
    CHECK_STR(body, "/a");
    free(body);
    CHECK_EQ(read_response(s, &body, &len), 200);
    CHECK_STR(body, "/b");
    free(body);
    corio_stream_close(s);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(pipelined)
{
    certs_setup();
    test_run(pipelined_main, NULL);
}

static void *post_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    corio_stream *s = connect_tls(srv, ctls);
    size_t blen = 300000;
    char *body = malloc(blen);
    CHECK(body);
    for (size_t i = 0; i < blen; i++)
        body[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    char head[128];
    int hn = snprintf(head, sizeof head,
                      "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n", blen);
    CHECK_OK(corio_stream_write(s, head, (size_t)hn));
    CHECK_OK(corio_stream_write(s, body, blen));
    CHECK_OK(corio_stream_drain(s));
    char *got;
    size_t len;
    CHECK_EQ(read_response(s, &got, &len), 200);
    CHECK_EQ(len, blen);
    CHECK(memcmp(got, body, blen) == 0);
    free(got);
    /* chunked, on the same connection */
    static const char chunked[] =
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    CHECK_OK(corio_stream_write(s, chunked, sizeof chunked - 1));
    CHECK_EQ(read_response(s, &got, &len), 200);
    CHECK_STR(got, "hello, world");
    free(got);
    get_expect(s, "/after", "/after");
    free(body);
    corio_stream_close(s);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(post_body)
{
    certs_setup();
    test_run(post_main, NULL);
}

static void *file_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    corio_stream *s = connect_tls(srv, ctls);
    for (int round = 0; round < 2; round++) {
        static const char req[] = "GET /file HTTP/1.1\r\nHost: localhost\r\n\r\n";
        CHECK_OK(corio_stream_write(s, req, sizeof req - 1));
        char *got;
        size_t len;
        CHECK_EQ(read_response(s, &got, &len), 200);
        CHECK_EQ(len, file_size);
        CHECK(memcmp(got, file_bytes, file_size) == 0);
        free(got);
    }
    /* a piece from an offset, then a HEAD (no body), then a small request:
     * the connection is still in step */
    static const char part[] = "GET /part HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(s, part, sizeof part - 1));
    char *got;
    size_t len;
    CHECK_EQ(read_response(s, &got, &len), 200);
    CHECK_EQ(len, 70000u);
    CHECK(memcmp(got, file_bytes + 1000, 70000) == 0);
    free(got);
    static const char head[] = "HEAD /file HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(s, head, sizeof head - 1));
    const char *h;
    ssize_t hl = corio_stream_readuntil(s, "\r\n\r\n", 4, &h);
    CHECK(hl > 0);
    char want[64];
    snprintf(want, sizeof want, "Content-Length: %zu\r\n", file_size);
    CHECK(memmem(h, (size_t)hl, want, strlen(want)) != NULL);
    get_expect(s, "/tail", "/tail");
    corio_stream_close(s);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

/* Serve a file of pseudo-random bytes written to dir/body.bin. */
static void file_body_in(const char *dir)
{
    certs_setup();
    file_size = (size_t)5 * 1024 * 1024 + 12345; /* not a multiple of any buffer or record size */
    file_bytes = malloc(file_size);
    CHECK(file_bytes);
    uint32_t x = 12345;
    for (size_t i = 0; i < file_size; i++) {
        x = x * 1103515245u + 12345u;
        file_bytes[i] = (unsigned char)(x >> 16);
    }
    snprintf(file_path, sizeof file_path, "%s/body.bin", dir);
    FILE *f = fopen(file_path, "wb");
    CHECK(f);
    CHECK_EQ(fwrite(file_bytes, 1, file_size, f), file_size);
    CHECK_EQ(fclose(f), 0);
    test_run(file_main, NULL);
    free(file_bytes);
}

TEST(file_body) { file_body_in(certdir); }

/* The same from tmpfs, which the server reads its own way (one pread per
 * piece on the loop thread, src/io/file.h). */
TEST(file_body_tmpfs)
{
    char dir[] = "/dev/shm/corio_tls_file.XXXXXX";
    if (!mkdtemp(dir))
        SKIP("no /dev/shm");
    file_body_in(dir);
    CHECK_EQ(unlink(file_path), 0);
    CHECK_EQ(rmdir(dir), 0);
}

/* Read until EOF (or an error) into buf; returns the bytes read. */
static size_t read_all(corio_stream *s, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = corio_stream_read(s, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    buf[got] = 0;
    return got;
}

static void *plaintext_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    /* a TLS client keeps its connection through all of this */
    corio_stream *good = connect_tls(srv, ctls);
    get_expect(good, "/before", "/before");

    /* plain HTTP: nginx's answer in clear, then the close */
    corio_stream *p = connect_plain(srv);
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_OK(corio_stream_write(p, req, sizeof req - 1));
    char buf[1024];
    size_t n = read_all(p, buf, sizeof buf);
    CHECK(n > 0);
    CHECK(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    CHECK(strstr(buf, "\r\n\r\n400 Bad Request\nThe plain HTTP request was sent to HTTPS port\n") != NULL);
    corio_stream_close(p);

    /* other bytes that are not TLS: closed without a byte sent back */
    p = connect_plain(srv);
    static const char junk[] = "\x01\x02\x03 not tls at all\r\n\r\n";
    CHECK_OK(corio_stream_write(p, junk, sizeof junk - 1));
    CHECK_EQ(read_all(p, buf, sizeof buf), 0u);
    corio_stream_close(p);

    /* a TLS record header with garbage after it: a handshake failure */
    p = connect_plain(srv);
    static const char bad[] = "\x16\x03\x01\x00\x10garbagegarbage!!";
    CHECK_OK(corio_stream_write(p, bad, sizeof bad - 1));
    read_all(p, buf, sizeof buf); /* an alert perhaps, then the close: the read ends */
    corio_stream_close(p);

    get_expect(good, "/after", "/after");
    corio_stream *again = connect_tls(srv, ctls);
    get_expect(again, "/new", "/new");
    corio_stream_close(again);
    corio_stream_close(good);
    /* every failed connection is gone */
    uint64_t t0 = test_ms();
    while (corio_http_server_connections(srv) > 0 && test_ms() - t0 < 120000)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(corio_http_server_connections(srv), 0u);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(plaintext_to_tls_port)
{
    certs_setup();
    test_run(plaintext_main, NULL);
}

static void *stall_main(void *arg)
{
    (void)arg;
    /* a short head deadline bounds the handshake: the only limit, as the
     * TLS config's own handshake limit is off */
    corio_http_server_config cfg = {.head_timeout_ms = 300, .tls = server_tls_limit(CORIO_NO_TIMEOUT)};
    corio_http_server *srv = start_server(&cfg);
    corio_stream *silent = connect_plain(srv); /* connects, sends nothing */
    corio_stream *half = connect_plain(srv);   /* half a ClientHello record, then nothing */
    static const char part[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    CHECK_OK(corio_stream_write(half, part, sizeof part - 1));
    CHECK_OK(corio_stream_drain(half));
    uint64_t t0 = test_ms();
    char buf[256];
    corio_deadline d = corio_deadline_push(60000);
    ssize_t r1 = corio_stream_read(silent, buf, sizeof buf);
    ssize_t r2 = corio_stream_read(half, buf, sizeof buf);
    corio_deadline_pop(d);
    /* closed by the server (EOF or a reset), not by our own deadline */
    CHECK(r1 == 0 || r1 == -ECONNRESET);
    CHECK(r2 == 0 || r2 == -ECONNRESET);
    CHECK(test_ms() - t0 < 120000);
    while (corio_http_server_connections(srv) > 0 && test_ms() - t0 < 120000)
        CHECK_OK(corio_sleep_ms(5));
    CHECK_EQ(corio_http_server_connections(srv), 0u);
    corio_stream_close(silent);
    corio_stream_close(half);
    CHECK_OK(corio_http_server_close(srv, 10000));

    /* a server close does not wait for a stalled handshake's deadline
     * (also when it comes before the connection's task first ran) */
    corio_http_server_config slow = {.head_timeout_ms = 600000, .tls = server_tls_limit(CORIO_NO_TIMEOUT)};
    srv = start_server(&slow);
    half = connect_plain(srv);
    CHECK_OK(corio_stream_write(half, part, sizeof part - 1));
    CHECK_OK(corio_stream_drain(half));
    while (corio_http_server_connections(srv) == 0)
        CHECK_OK(corio_sleep_ms(1));
    t0 = test_ms();
    CHECK_OK(corio_http_server_close(srv, 600000));
    CHECK(test_ms() - t0 < 120000);
    d = corio_deadline_push(60000);
    r2 = corio_stream_read(half, buf, sizeof buf);
    corio_deadline_pop(d);
    CHECK(r2 == 0 || r2 == -ECONNRESET);
    corio_stream_close(half);
    return NULL;
}

TEST(stall_mid_handshake)
{
    certs_setup();
    test_run(stall_main, NULL);
}

#define NIDLE 50

static int idle_ready;

typedef struct idle_client {
    corio_http_server *srv;
    corio_tls *ctls;
    corio_event *go; /* set when the test has seen every connection parked */
    int ok;
} idle_client;

static void *idle_client_main(void *arg)
{
    idle_client *c = arg;
    corio_stream *s = connect_tls(c->srv, c->ctls);
    get_expect(s, "/one", "/one");
    idle_ready++;
    CHECK_OK(corio_event_wait(c->go));
    /* the parked connection gave its TLS buffers back: it still works */
    get_expect(s, "/two", "/two");
    get_expect(s, "/three", "/three");
    corio_stream_close(s);
    c->ok = 1;
    return NULL;
}

static void *idle_main(void *arg)
{
    (void)arg;
    corio_http_server *srv = start_server(NULL);
    corio_tls *ctls = client_tls();
    corio_event go;
    corio_event_init(&go);
    static idle_client c[NIDLE];
    corio_task *t[NIDLE];
    int nidle = TEST_SCALE(NIDLE);
    unsigned base = corio__loop()->live_count;
    for (int i = 0; i < nidle; i++) {
        c[i] = (idle_client){.srv = srv, .ctls = ctls, .go = &go};
        t[i] = corio_spawn(idle_client_main, &c[i]);
        CHECK(t[i]);
    }
    /* the clients' tasks and the server's accept task: a task per idle
     * server connection would add NIDLE more */
    while (idle_ready < nidle || corio__loop()->live_count > base + (unsigned)nidle + 2)
        CHECK_OK(corio_sleep_ms(5)); /* a task per idle connection: this never ends (ctest's time-out) */
    CHECK_EQ(idle_ready, nidle);
    CHECK(corio__loop()->live_count <= base + (unsigned)nidle + 2);
    CHECK_EQ(corio_http_server_connections(srv), (unsigned)nidle);
    corio_event_set(&go);
    CHECK_OK(corio_gather(t, (size_t)nidle, NULL));
    for (int i = 0; i < nidle; i++)
        CHECK_EQ(c[i].ok, 1);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(ctls);
    return NULL;
}

TEST(idle_conns_hold_no_task)
{
    certs_setup();
    test_run(idle_main, NULL);
}

static void *reload_main(void *arg)
{
    (void)arg;
    corio_tls_cert cert = {server_pem, server_key};
    corio_tls_options o = {.certs = &cert, .n_certs = 1};
    corio_tls *stls;
    CHECK_OK(corio_tls_server_new(&o, &stls));
    corio_http_server_config cfg = {.tls = stls};
    corio_http_server *srv;
    CHECK_OK(corio_http_server_start("127.0.0.1", 0, handler, NULL, &cfg, &srv));
    corio_tls *ctls = client_tls();
    corio_stream *old = connect_tls(srv, ctls);
    get_expect(old, "/before", "/before");

    /* a reload that fails keeps the old certificate */
    corio_tls_cert missing = {"/nonexistent/cert.pem", server_key};
    CHECK(corio_tls_reload_certs(stls, &missing, 1) < 0);
    corio_stream *s = connect_tls(srv, ctls);
    get_expect(s, "/still", "/still");
    corio_stream_close(s);

    /* the new certificate is for other.test: a client asking for that
     * name now verifies, and the open connection carries on (fresh client
     * configs: a session ticket from before would resume without showing
     * a certificate at all) */
    corio_tls_cert other = {other_pem, other_key};
    CHECK_OK(corio_tls_reload_certs(stls, &other, 1));
    corio_tls *fresh = client_tls();
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &s));
    CHECK_OK(corio_stream_start_tls(s, fresh, "other.test"));
    get_expect(s, "/new", "/new");
    corio_stream_close(s);
    corio_tls_free(fresh);
    /* and one asking for localhost no longer does */
    fresh = client_tls();
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_http_server_port(srv), &s));
    CHECK_ERR(corio_stream_start_tls(s, fresh, "localhost"), -CORIO_ETLSVERIFY);
    corio_stream_close(s);
    corio_tls_free(fresh);
    get_expect(old, "/old", "/old");
    corio_stream_close(old);
    CHECK_OK(corio_http_server_close(srv, 10000));
    corio_tls_free(stls);
    corio_tls_free(ctls);
    return NULL;
}

TEST(reload_certs)
{
    certs_setup();
    test_run(reload_main, NULL);
}

static void *bad_config_main(void *arg)
{
    (void)arg;
    corio_tls *ctls = client_tls();
    corio_http_server_config cfg = {.tls = ctls};
    corio_http_server *srv = (corio_http_server *)1;
    CHECK_ERR(corio_http_server_start("127.0.0.1", 0, handler, NULL, &cfg, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_new(handler, NULL, &cfg, &srv), -EINVAL);
    corio_tls_free(ctls);
    return NULL;
}

TEST(client_config_refused)
{
    certs_setup();
    test_run(bad_config_main, NULL);
}

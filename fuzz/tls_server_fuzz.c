/*
 * libFuzzer target for the server side of a TLS stream: the input is what
 * a client sends to corio_stream_start_tls (a ClientHello, records after
 * it, garbage), written into one end of a socketpair whose other end is
 * the server's stream.  Each input runs in a fresh loop (corio_run).
 *
 * Input layout: byte 0 picks how the rest is written (1..3 pieces, split
 * at points scaled from that byte, with yields between them, so the
 * server meets records cut at every place); the rest is the client's
 * bytes, followed by a half-close.  The client then reads whatever the
 * server answers until the end, under a 2 s deadline.
 *
 * What must hold for every input: the handshake ends (it cannot succeed
 * without a real client; a success is read and echoed like any stream)
 * with one of the errors the contract names for a bad or short peer
 * (-CORIO_ETLS, -CORIO_ETLSVERIFY, -CORIO_ETLSTRUNC, -ECONNRESET, -EPIPE),
 * never by the handshake time-out (the client's EOF must end it), never a
 * crash or sanitizer report; corio_stream_tls_error is a string; and no
 * fd is left open after the loop ends (nor memory, under ASan's leak
 * check).
 *
 * The server's certificate comes from tests/tls/make_certs.sh, run once
 * into TLS_FUZZ_CERTS (a directory in the build tree, set at build time).
 * fuzz/replay_main.c replays fuzz/corpus/tls_server through the same
 * entry point under ctest.
 */
#include "corio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_CHECK(c)                                                                                        \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #c);                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define CLIENT_DEADLINE_MS 2000
#define HANDSHAKE_MS 5000 /* longer than the client's deadline: a server that ignores EOF shows */

typedef struct fuzz_run {
    const unsigned char *data; /* what the client sends */
    size_t size;
    unsigned char split; /* input byte 0 */
    int wfd;             /* the client's writing end (a dup of the reading one) */
    int server_result;   /* corio_stream_start_tls's */
} fuzz_run;

static corio_tls *server_tls;

static corio_tls *make_server_tls(void)
{
    char cmd[2 * sizeof TLS_FUZZ_CERTS + sizeof TLS_FUZZ_MAKE_CERTS + 64];
    snprintf(cmd, sizeof cmd, "flock '%s.lock' '%s' '%s'", TLS_FUZZ_CERTS, TLS_FUZZ_MAKE_CERTS,
             TLS_FUZZ_CERTS);
    FUZZ_CHECK(system(cmd) == 0);
    corio_tls_cert cert = {TLS_FUZZ_CERTS "/server.pem", TLS_FUZZ_CERTS "/server.key"};
    /* ALPN on, so the fuzzer reaches the server's ALPN selection */
    static const char *const alpn[] = {"http/1.1", "h2"};
    corio_tls_options opt = {
        .certs = &cert, .n_certs = 1, .alpn = alpn, .n_alpn = 2, .handshake_timeout_ms = HANDSHAKE_MS};
    corio_tls *tls = NULL;
    FUZZ_CHECK(corio_tls_server_new(&opt, &tls) == 0);
    return tls;
}

static void *server_main(void *arg)
{
    corio_stream *s = arg;
    return (void *)(intptr_t)corio_stream_start_tls(s, server_tls, NULL);
}

static void *writer_main(void *arg)
{
    fuzz_run *fr = arg;
    corio_stream *s = corio_stream_from_fd(fr->wfd);
    FUZZ_CHECK(s);
    size_t cuts[3];
    unsigned pieces = 1 + fr->split % 3;
    cuts[0] = fr->size * (fr->split / 3 % 9) / 9;
    cuts[1] = cuts[0] + (fr->size - cuts[0]) * (fr->split / 27 % 10) / 10;
    size_t pos = 0;
    for (unsigned i = 0; i < pieces && pos < fr->size; i++) {
        size_t end = i + 1 == pieces ? fr->size : cuts[i];
        if (end < pos)
            end = pos;
        if (end > pos && (corio_stream_write(s, fr->data + pos, end - pos) < 0 || corio_stream_drain(s) < 0))
            break; /* the server gave up on us: fine */
        pos = end;
        corio_yield();
        corio_yield();
    }
    corio_stream_write_eof(s);
    corio_stream_close(s);
    return NULL;
}

static void *fuzz_main(void *arg)
{
    fuzz_run *fr = arg;
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    fr->wfd = dup(sv[0]);
    FUZZ_CHECK(fr->wfd >= 0);
    corio_stream *ss = corio_stream_from_fd(sv[1]);
    FUZZ_CHECK(ss);
    corio_task *server = corio_spawn_named("fuzz-tls-server", 0, server_main, ss);
    corio_task *w = corio_spawn_named("fuzz-writer", 0, writer_main, fr);
    FUZZ_CHECK(server && w);

    /* the client's reading side: everything the server answers, to the end */
    corio_stream *c = corio_stream_from_fd(sv[0]);
    FUZZ_CHECK(c);
    corio_deadline d = corio_deadline_push(CLIENT_DEADLINE_MS);
    void *res = NULL;
    int jr = corio_task_join(server, &res);
    if (jr == -CORIO_EDEADLINE) {
        fprintf(stderr, "tls_server_fuzz: the handshake neither ended nor failed within %d ms of the EOF\n",
                CLIENT_DEADLINE_MS);
        abort();
    }
    FUZZ_CHECK(jr == 0);
    fr->server_result = (int)(intptr_t)res;
    const char *why = corio_stream_tls_error(ss);
    FUZZ_CHECK(why != NULL);
    (void)strlen(why);
    if (fr->server_result == 0) {
        /* a handshake that got through (it cannot, without a real client,
         * but then the stream must behave): read and echo to the end */
        char buf[4096];
        ssize_t n;
        while ((n = corio_stream_read(ss, buf, sizeof buf)) > 0)
            if (corio_stream_write(ss, buf, (size_t)n) < 0)
                break;
        FUZZ_CHECK(n != -CORIO_EDEADLINE);
    } else {
        int r = fr->server_result;
        if (!(r == -CORIO_ETLS || r == -CORIO_ETLSVERIFY || r == -CORIO_ETLSTRUNC || r == -ECONNRESET ||
              r == -EPIPE)) {
            fprintf(stderr, "tls_server_fuzz: start_tls returned %d (%s): %s\n", r, corio_strerror(r), why);
            abort();
        }
    }
    corio_stream_close(ss);
    /* what the server sent: records (or nothing) up to its close */
    char buf[16384];
    ssize_t n;
    while ((n = corio_stream_read(c, buf, sizeof buf)) > 0) {
    }
    FUZZ_CHECK(n == 0 || n == -ECONNRESET);
    corio_deadline_pop(d);
    FUZZ_CHECK(corio_task_join(w, NULL) == 0);
    corio_stream_close(c);
    return NULL;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!server_tls)
        server_tls = make_server_tls(); /* kept for the whole process: one SSL_CTX, as a server has */
    int free_fd = dup(0);               /* the lowest free fd: a leaked fd would raise it */
    close(free_fd);
    fuzz_run fr = {.data = data + 1, .size = size - 1, .split = data[0]};
    int r = corio_run(NULL, fuzz_main, &fr, NULL);
    if (r != 0) {
        fprintf(stderr, "tls_server_fuzz: corio_run: %s\n", corio_strerror(r));
        abort();
    }
    int free_after = dup(0);
    close(free_after);
    if (free_fd >= 0)
        FUZZ_CHECK(free_after == free_fd); /* the loop and both ends were closed */
    return 0;
}

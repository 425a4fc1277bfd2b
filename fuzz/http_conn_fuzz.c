/*
 * libFuzzer target for a whole HTTP connection: the server module
 * (src/http/) on corio's loop, fed through a socketpair.  Each input
 * runs in a fresh loop (corio_run), so this also checks that loops can be
 * set up and torn down again and again in one process without leaking.
 *
 * Input layout: byte 0 picks how the rest is written (1..3 pieces, split at
 * points scaled from that byte, with a yield between pieces, so that the
 * server meets heads and bodies cut at every place); the rest is what the
 * client sends, followed by a half-close.  The client then reads everything
 * the server answers until EOF, under a 2 s deadline so that a server that
 * forgets a connection shows up as a crash, not a hang.
 *
 * The handler varies its behaviour by the request path so that every
 * response form is reached: "/s..." streams a chunked answer, "/n..."
 * leaves the body unread (the server drains it), "/r..." reads the body in
 * small pieces and answers from a file (sendfile), anything else reads the
 * body in full (at most BODY_CAP bytes) and answers a fixed body; a body
 * error makes it return without answering (the server answers itself).
 *
 * The client checks what a peer can rely on: every response starts with
 * "HTTP/1.1 " and a 3-digit status, its framing (Content-Length or chunked,
 * none for 1xx/204/304 and HEAD) is exact, and nothing follows a response
 * that says "Connection: close".  Each input is run twice, split as byte 0
 * says and in one piece, and the two answers must be the same bytes (Date
 * values aside): the server's behaviour may not depend on how reads cut
 * the input.
 *
 * fuzz/replay_main.c replays fuzz/corpus/http_conn through the same entry
 * point under ctest, so this file builds with gcc as well.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "corio.h"
#include "corio/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_CHECK(c)                                                                                        \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #c);                       \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

#define FIXED_BODY "fuzz-ok\n"
#define BODY_CAP 2048
#define CLIENT_DEADLINE_MS 2000

typedef struct fuzz_run {
    const unsigned char *data; /* what the client sends */
    size_t size;
    unsigned char split; /* input byte 0 */
    int wfd;             /* the client's writing end (a dup of rfd) */
    char *out;           /* what the server sent */
    size_t out_len, out_cap;
} fuzz_run;

static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    char mode = req->path.len >= 2 && req->path.ptr[0] == '/' ? req->path.ptr[1] : 0;
    if (head) /* the client can not tell a HEAD answer's empty body otherwise */
        corio_http_response_add_header(resp, "X-Fuzz-Head", "1");
    if (mode == 'n') {
        corio_http_response_send(resp, 200, "text/plain", FIXED_BODY, sizeof FIXED_BODY - 1);
        return;
    }
    char peer[64];
    corio_http_request_peer(req, peer, sizeof peer);
    FUZZ_CHECK(strcmp(peer, "-") == 0); /* a unix socket has no address to show */
    if (mode == 'r') {                  /* the body in small reads, the answer from a file */
        char piece[7];
        ssize_t r;
        while ((r = corio_http_request_read(req, piece, sizeof piece)) > 0)
            FUZZ_CHECK(r <= (ssize_t)sizeof piece);
        if (r < 0)
            return;
        static int file = -1;
        if (file < 0) {
            file = memfd_create("http_conn_fuzz", MFD_CLOEXEC);
            FUZZ_CHECK(file >= 0 && write(file, FIXED_BODY, sizeof FIXED_BODY - 1) == sizeof FIXED_BODY - 1);
        }
        corio_http_response_send_file(resp, 200, "text/plain", file, 0, sizeof FIXED_BODY - 1);
        return;
    }
    const char *body;
    size_t len;
    if (corio_http_request_read_body(req, BODY_CAP, &body, &len) < 0)
        return;
    FUZZ_CHECK(body[len] == 0);
    if (mode == 's') {
        if (corio_http_response_begin(resp, 200, "text/plain") < 0)
            return;
        corio_http_response_write(resp, "part1\n", 6);
        corio_http_response_write(resp, body, len);
        corio_http_response_end(resp);
        return;
    }
    corio_http_response_send(resp, 200, "text/plain", FIXED_BODY, sizeof FIXED_BODY - 1);
}

static void *writer_main(void *arg)
{
    fuzz_run *fr = arg;
    corio_stream *s = corio_stream_from_fd(fr->wfd);
    FUZZ_CHECK(s);
    size_t cuts[3];
    unsigned pieces = 1 + fr->split % 3;
    cuts[0] = fr->size * (fr->split / 3 % 9) / 9; /* coarse first cut, spread over the input */
    cuts[1] = cuts[0] + (fr->size - cuts[0]) * (fr->split / 27 % 10) / 10;
    size_t pos = 0;
    for (unsigned i = 0; i < pieces && pos < fr->size; i++) {
        size_t end = i + 1 == pieces ? fr->size : cuts[i];
        if (end < pos)
            end = pos;
        if (end > pos && (corio_stream_write(s, fr->data + pos, end - pos) < 0 || corio_stream_drain(s) < 0))
            break; /* the server closed on us: fine, it may after a bad request */
        pos = end;
        corio_yield();
        corio_yield();
    }
    corio_stream_write_eof(s);
    corio_stream_close(s);
    return NULL;
}

/* Find needle in the head h[0..n) (case-insensitive header name match at a
 * line start); returns the value start or NULL. */
static const char *head_field(const char *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 2 + nl < n; i++) {
        if (h[i] == '\n' && strncasecmp(h + i + 1, name, nl) == 0 && h[i + 1 + nl] == ':') {
            const char *v = h + i + 2 + nl;
            while (*v == ' ')
                v++;
            return v;
        }
    }
    return NULL;
}

static const char *find_crlfcrlf(const char *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    return NULL;
}

/* Check the byte stream the server sent: complete, well-framed responses,
 * nothing after "Connection: close". */
static void check_output(const char *p, size_t n)
{
    bool closed = false;
    while (n > 0) {
        FUZZ_CHECK(!closed);
        FUZZ_CHECK(n >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0);
        FUZZ_CHECK(p[9] >= '1' && p[9] <= '9' && p[10] >= '0' && p[10] <= '9' && p[11] >= '0' &&
                   p[11] <= '9');
        FUZZ_CHECK(p[12] == ' ');
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *end = find_crlfcrlf(p, n);
        FUZZ_CHECK(end);
        size_t hl = (size_t)(end - p) + 4;
        /* the head's lines: no bare CR or LF, no NUL */
        for (size_t i = 0; i < hl; i++) {
            FUZZ_CHECK(p[i] != 0);
            if (p[i] == '\r')
                FUZZ_CHECK(p[i + 1] == '\n');
            if (p[i] == '\n')
                FUZZ_CHECK(i > 0 && p[i - 1] == '\r');
        }
        const char *cl = head_field(p, hl, "Content-Length");
        const char *te = head_field(p, hl, "Transfer-Encoding");
        const char *conn = head_field(p, hl, "Connection");
        bool head = head_field(p, hl, "X-Fuzz-Head") != NULL;
        FUZZ_CHECK(!(cl && te));
        if (status < 200) {
            FUZZ_CHECK(status == 100 && !cl && !te && !conn);
            p += hl;
            n -= hl;
            continue;
        }
        if (status >= 400 && status < 500) /* the server's own error answers always close */
            FUZZ_CHECK(conn && strncmp(conn, "close", 5) == 0);
        if (conn && strncmp(conn, "close", 5) == 0)
            closed = true;
        p += hl;
        n -= hl;
        if (head || status == 204 || status == 304)
            continue;
        if (cl) {
            size_t len = strtoul(cl, NULL, 10);
            FUZZ_CHECK(len <= n);
            p += len;
            n -= len;
        } else if (te) {
            FUZZ_CHECK(strncmp(te, "chunked", 7) == 0);
            for (;;) {
                char *e;
                unsigned long sz = strtoul(p, &e, 16);
                FUZZ_CHECK(e != p && (size_t)(e - p) + 2 <= n && memcmp(e, "\r\n", 2) == 0);
                size_t used = (size_t)(e - p) + 2;
                FUZZ_CHECK(sz + 2 <= n - used && memcmp(e + 2 + sz, "\r\n", 2) == 0);
                used += sz + 2;
                p += used;
                n -= used;
                if (sz == 0)
                    break;
            }
        } else {
            /* no framing: only a body ended by the close (HTTP/1.0 streaming) */
            FUZZ_CHECK(closed);
            n = 0;
        }
    }
}

static void *fuzz_main(void *arg)
{
    fuzz_run *fr = arg;
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    fr->wfd = dup(sv[0]);
    FUZZ_CHECK(fr->wfd >= 0);

    corio_http_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    /* small limits so that short inputs reach 413 / 414 / 431 and draining */
    cfg.limits.max_head = 2048;
    cfg.limits.max_target = 512;
    cfg.limits.max_headers = 16;
    cfg.limits.max_body = 4096;
    cfg.max_drain = 1 << 20;    /* see LLVMFuzzerTestOneInput */
    cfg.head_timeout_ms = 5000; /* longer than the client's deadline: a stuck server shows */
    corio_http_server *srv;
    FUZZ_CHECK(corio_http_server_new(handler, NULL, &cfg, &srv) == 0);
    FUZZ_CHECK(corio_http_server_serve_fd(srv, sv[1]) == 0);
    FUZZ_CHECK(corio_http_server_connections(srv) == 1);

    corio_task *w = corio_spawn_named("fuzz-writer", 0, writer_main, fr);
    FUZZ_CHECK(w);
    corio_stream *s = corio_stream_from_fd(sv[0]);
    FUZZ_CHECK(s);
    corio_deadline d = corio_deadline_push(CLIENT_DEADLINE_MS);
    for (;;) {
        if (fr->out_cap - fr->out_len < 4096) {
            fr->out_cap = fr->out_cap ? fr->out_cap * 2 : 65536;
            fr->out = realloc(fr->out, fr->out_cap);
            FUZZ_CHECK(fr->out);
        }
        ssize_t r = corio_stream_read(s, fr->out + fr->out_len, fr->out_cap - fr->out_len);
        if (r == -CORIO_EDEADLINE) {
            fprintf(stderr, "http_conn_fuzz: the server neither answered nor closed within %d ms\n",
                    CLIENT_DEADLINE_MS);
            abort();
        }
        if (r == -ECONNRESET)
            break; /* closing with unread input may reset: what was read stands */
        FUZZ_CHECK(r >= 0);
        if (r == 0)
            break;
        fr->out_len += (size_t)r;
    }
    corio_deadline_pop(d);
    FUZZ_CHECK(corio_task_join(w, NULL) == 0);
    corio_stream_close(s);
    if (getenv("HTTP_CONN_FUZZ_PRINT")) /* for looking at what a seed gets */
        fwrite(fr->out, 1, fr->out_len, stderr);
    check_output(fr->out, fr->out_len);
    FUZZ_CHECK(corio_http_server_close(srv, 1000) == 0);
    return NULL;
}

/* Blank out the Date values, the only bytes that may differ between two
 * runs of one input. */
static void mask_dates(char *p, size_t n)
{
    for (size_t i = 0; i + 8 <= n; i++)
        if (memcmp(p + i, "\r\nDate: ", 8) == 0)
            for (i += 8; i < n && p[i] != '\r'; i++)
                p[i] = 'X';
}

static void run_once(fuzz_run *fr, const unsigned char *data, size_t size, unsigned char split)
{
    memset(fr, 0, sizeof *fr);
    fr->split = split;
    fr->data = data;
    fr->size = size;
    int r = corio_run(NULL, fuzz_main, fr, NULL);
    if (r != 0) {
        fprintf(stderr, "http_conn_fuzz: corio_run: %s\n", corio_strerror(r));
        abort();
    }
    mask_dates(fr->out, fr->out_len);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The answer must not depend on how the bytes arrived: run the input
     * as split by byte 0, and in one piece, and compare (max_drain is above
     * max_body, so that no keep-alive decision hangs on what happens to be
     * buffered). */
    fuzz_run split, whole;
    int free_fd = dup(0); /* the lowest free fd: a leaked fd would raise it */
    close(free_fd);
    run_once(&split, data + 1, size - 1, data[0]);
    run_once(&whole, data + 1, size - 1, 0);
    int free_after = dup(0);
    close(free_after);
    if (free_fd >= 0)
        FUZZ_CHECK(free_after == free_fd); /* the loop, the server and both ends were closed */
    if (split.out_len != whole.out_len || memcmp(split.out, whole.out, split.out_len) != 0) {
        fprintf(stderr, "http_conn_fuzz: the answer depends on the split (byte 0 = %u)\n--- split:\n",
                data[0]);
        fwrite(split.out, 1, split.out_len, stderr);
        fprintf(stderr, "\n--- whole:\n");
        fwrite(whole.out, 1, whole.out_len, stderr);
        abort();
    }
    free(split.out);
    free(whole.out);
    return 0;
}

/*
 * The HTTP simulation suite (issue 13): corio tests its own HTTP server
 * inside the deterministic simulator.  For each seed, one run under the sim
 * backend with swarm faults: a host "server" (127.0.0.2) runs
 * corio_http_server_start with a handler whose answers depend exactly on
 * the request (an echo of the body's length and checksum, large bodies,
 * streamed chunked bodies, slow handlers), and a few client hosts run many
 * simulated clients whose mix is drawn from the seed: keep-alive
 * sequences, pipelined batches, Content-Length and chunked uploads, slow
 * clients dribbling bytes, clients too slow for the server's time-outs,
 * idle keep-alive connections, vanishing clients and clients sending
 * garbage.  At the end the server is closed gracefully while requests are
 * in flight.
 *
 * Invariants (a broken one calls corio_sim_fail, which prints the seed and
 * the trace's last events):
 *  - every request a client finished sending gets exactly one complete,
 *    correct answer (status, framing, exact body), in request order, or
 *    its connection ends (EOF or reset) before the answer; an early end is
 *    legal only when the run injects faults that break or stall
 *    connections (reset, stall), or when the client's own timing or the
 *    server's close explains it;
 *  - the server enforces its time-outs: an idle keep-alive connection is
 *    closed within keepalive_timeout_ms, a head trickled slower than
 *    head_timeout_ms is answered 408 and closed;
 *  - garbage gets its exact error status and a close;
 *  - graceful close finishes within its grace period (virtual time) and
 *    in-flight requests are answered with "Connection: close";
 *  - nothing leaks: at the end only the main task is alive and no virtual
 *    fd is open.
 *
 * Usage: sim_http [--seeds N] [--seed S] [--from S] [--seconds T] [--quiet]
 * [--faults 0] [--mix small].  Runs N seeds from S (default 1), stopping
 * early after T seconds of wall time if given; --faults 0 turns every
 * fault off; --mix small keeps every body under 2 KiB (API-like traffic,
 * for the benchmark: bench/sim_bench.sh); --clients N runs N clients per
 * seed instead of 10 to 60, and --rounds R makes each of them open R
 * connections one after another.
 * Prints "seed S: trace HASH" per seed (--quiet: only failing ones), then "N passed, M failed", the
 * simulated requests completed and the wall time.  Exit status 1 if any
 * seed failed.  --real runs the same clients on the real loopback with the
 * default backend (no determinism, for debugging the suite itself).
 */
#include "backend/sim.h" /* first: it defines _GNU_SOURCE */

#include "corio/http.h"
#include "corio/sim.h"

#include <corio.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Server settings: small, so virtual time runs through every time-out. */
#define HEAD_TO 3000
#define BODY_TO 1500
#define WRITE_TO 2000
#define KEEPALIVE_TO 1000
#define GRACE_MS 3000
#define SLACK_MS 100 /* latency, jitter and scheduling, well above what the sim adds without stalls */
#define STUCK_MS 60000

/* ------------------------------------------------------------------ */
/* Run state                                                           */
/* ------------------------------------------------------------------ */

static struct {
    uint64_t seed;
    bool sim, real, quiet;
    bool lossy;            /* faults that may break or stall a connection are on */
    uint64_t xs;           /* the generator outside a sim run (--real) */
    corio_event listening; /* the server is up */
    corio_event close_now; /* main -> server: begin the graceful close */
    uint16_t port;
    const char *addr;
    uint64_t close_start; /* virtual ns the close began, 0 before */
    unsigned in_wait;     /* requests inside the slow handler right now */
    uint64_t completed;   /* responses received and checked */
    unsigned conns;       /* clients */
    bool failed;
} R;

static uint64_t total_completed;
static bool g_real;
static unsigned g_clients; /* --clients N: this many per run instead of 10..60 drawn */
static unsigned g_rounds;  /* --rounds R: connections per client, one after another */
static bool g_small;       /* --mix small: bodies of at most 1 KiB (the benchmark's API-like traffic) */

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (R.sim && !R.failed) {
        const corio_sim_faults *f = corio__sim_faults(corio__sim_world());
        corio_sim_event("faults: short %g reset %g stall %g jitter %g latency %u us", f->short_io, f->reset,
                        f->stall, f->jitter, f->latency_max_us);
    }
    R.failed = true;
    if (R.sim)
        corio_sim_fail("%s", buf);
    else
        fprintf(stderr, "sim_http: seed %" PRIu64 ": invariant broken: %s\n", R.seed, buf);
}

static uint64_t rnd(void)
{
    if (R.sim)
        return corio_sim_rand();
    uint64_t x = R.xs; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    R.xs = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A number in [lo, hi]. */
static uint64_t between(uint64_t lo, uint64_t hi) { return lo + rnd() % (hi - lo + 1); }

static uint64_t now_ms(void) { return corio_now_ns() / 1000000u; }

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    if (!R.sim)
        return;
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    corio_sim_event("%s", buf);
}

/* ------------------------------------------------------------------ */
/* Bodies both sides can compute                                       */
/* ------------------------------------------------------------------ */

/* Body bytes: a fixed pseudo-random period of 4096 bytes, entered at an
 * offset drawn from the key, so both sides fill bodies with memcpy. */
#define PERIOD 4096
static unsigned char period[2 * PERIOD];

static void period_init(void)
{
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        period[i] = period[i + PERIOD] = (unsigned char)(x >> 24);
    }
}

static void fill(char *p, size_t n, uint64_t key)
{
    size_t off = (size_t)(key * 131 % PERIOD);
    while (n) {
        size_t k = n < PERIOD ? n : PERIOD;
        memcpy(p, period + off, k);
        p += k;
        n -= k;
    }
}

/* A position-sensitive checksum (Fletcher's, in 64 bits) that streams:
 * the handler feeds it the body as it arrives. */
typedef struct sum {
    uint64_t a, b;
} sum_t;

static void sum_add(sum_t *s, const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t a = s->a, b = s->b;
    for (size_t i = 0; i < n; i++) {
        a += c[i];
        b += a;
    }
    s->a = a;
    s->b = b;
}

static uint64_t sum_of(const sum_t *s) { return s->a * 0x9e3779b97f4a7c15ull ^ s->b; }

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* Paths: /e/ID (echo length and checksum of the body), /b/ID/N (N bytes of
 * pattern), /s/ID/N/K (N bytes streamed in K writes), /w/ID/MS (answer
 * after MS ms).  ID is "conn.seq"; key = conn * 1000 + seq. */
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Read a decimal number at *p (before end) into *v: false if no digit. */
static bool take_number(const char **p, const char *end, unsigned long *v)
{
    const char *q = *p;
    unsigned long n = 0;
    while (q < end && is_digit(*q))
        n = n * 10 + (unsigned long)(*q++ - '0');
    if (q == *p)
        return false;
    *p = q;
    *v = n;
    return true;
}

/* Read "/K/CONN.SEQ[/A[/B]]" from the len bytes at p: the number of fields
 * read (kind, conn, seq, a, b), as sscanf("/%c/%u.%u/%lu/%lu") would count
 * them for the paths the clients make.  By hand, because sscanf was the
 * largest single cost of a simulated request (6 % of the samples). */
static int parse_path(const char *p, size_t len, char *kind, unsigned *conn, unsigned *seq, unsigned long *a,
                      unsigned long *b)
{
    const char *end = p + len;
    unsigned long v;
    if (len < 2 || p[0] != '/')
        return 0;
    *kind = p[1];
    p += 2;
    if (p == end || *p++ != '/' || !take_number(&p, end, &v))
        return 1;
    *conn = (unsigned)v;
    if (p == end || *p++ != '.' || !take_number(&p, end, &v))
        return 2;
    *seq = (unsigned)v;
    if (p == end || *p++ != '/' || !take_number(&p, end, a))
        return 3;
    if (p == end || *p++ != '/' || !take_number(&p, end, b))
        return 4;
    return 5;
}

static void handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)arg;
    unsigned conn = 0, seq = 0;
    unsigned long a = 0, b = 0;
    char kind = 0;
    if (parse_path(req->path.ptr, req->path.len, &kind, &conn, &seq, &a, &b) < 3) {
        corio_http_response_send(resp, 404, "text/plain", "no\n", 3);
        return;
    }
    uint64_t key = (uint64_t)conn * 1000 + seq;
    char out[160];
    switch (kind) {
    case 'e': {
        char buf[16384];
        sum_t h = {0, 0};
        uint64_t len = 0;
        for (;;) {
            ssize_t r = corio_http_request_read(req, buf, sizeof buf);
            if (r < 0)
                return; /* the server answers (or closes) itself */
            if (r == 0)
                break;
            sum_add(&h, buf, (size_t)r);
            len += (uint64_t)r;
        }
        int m = snprintf(out, sizeof out, "%.*s %u.%u n=%" PRIu64 " sum=%016" PRIx64 "\n",
                         (int)req->method.len, req->method.ptr, conn, seq, len, sum_of(&h));
        corio_http_response_send(resp, 200, "text/plain", out, (size_t)m);
        return;
    }
    case 'b': {
        char *p = malloc(a ? a : 1);
        if (!p)
            return;
        fill(p, a, key);
        corio_http_response_send(resp, 200, "application/octet-stream", p, a);
        free(p);
        return;
    }
    case 's': {
        if (corio_http_response_begin(resp, 200, "application/octet-stream") < 0)
            return;
        char *p = malloc(a ? a : 1);
        if (!p)
            return;
        fill(p, a, key);
        size_t off = 0, k = b ? b : 1;
        for (size_t i = 0; i < k; i++) {
            size_t end = i + 1 == k ? a : a / k * (i + 1);
            if (corio_http_response_write(resp, p + off, end - off) < 0)
                break;
            off = end;
            if (i % 3 == 1)
                corio_sleep_ms(2);
        }
        free(p);
        corio_http_response_end(resp);
        return;
    }
    case 'w': {
        R.in_wait++;
        int r = corio_sleep_ms(a);
        R.in_wait--;
        if (r < 0)
            return;
        int m = snprintf(out, sizeof out, "waited %lu %u.%u\n", a, conn, seq);
        if (R.close_start) /* tells the client the close had begun: then the answer must say close */
            corio_http_response_add_header(resp, "X-Closing", "1");
        corio_http_response_send(resp, 200, "text/plain", out, (size_t)m);
        return;
    }
    default:
        corio_http_response_send(resp, 404, "text/plain", "no\n", 3);
    }
}

static void *server_main(void *arg)
{
    (void)arg;
    corio_http_server_config cfg = {
        .head_timeout_ms = HEAD_TO,
        .body_timeout_ms = BODY_TO,
        .write_timeout_ms = WRITE_TO,
        .keepalive_timeout_ms = KEEPALIVE_TO,
    };
    corio_http_server *srv;
    int r = corio_http_server_start(R.addr, R.port, handler, NULL, &cfg, &srv);
    if (r < 0) {
        bad("corio_http_server_start: %s", corio_strerror(r));
        corio_event_set(&R.listening);
        return NULL;
    }
    R.port = corio_http_server_port(srv);
    corio_event_set(&R.listening);
    corio_event_wait(&R.close_now);
    uint64_t t0 = corio_now_ns();
    R.close_start = t0;
    note("graceful close begins");
    r = corio_http_server_close(srv, GRACE_MS);
    uint64_t took = (corio_now_ns() - t0) / 1000000u;
    note("graceful close done");
    if (r < 0)
        bad("corio_http_server_close: %s", corio_strerror(r));
    if (took > GRACE_MS + SLACK_MS)
        bad("graceful close took %" PRIu64 " ms, grace is %d ms", took, GRACE_MS);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Requests a client sends, and what it expects back                   */
/* ------------------------------------------------------------------ */

typedef struct req {
    char *wire; /* the request's bytes */
    size_t wire_len;
    char *expect; /* the exact body expected */
    size_t expect_len;
    int status;   /* expected status */
    bool close;   /* sent with "Connection: close" */
    bool is_wait; /* /w/: the handler sleeps */
} req_t;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void putf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

static size_t body_size(void)
{
    if (g_small)
        return rnd() % 4 ? between(0, 100) : between(100, 1024);
    switch (rnd() % 8) {
    case 0:
        return 0;
    case 1:
    case 2:
    case 3:
        return between(1, 100);
    case 4:
    case 5:
        return between(100, 4096);
    case 6:
        return between(4096, 40000);
    default:
        return between(40000, 200000);
    }
}

enum { Q_ECHO_CL, Q_ECHO_CHUNKED, Q_BIG, Q_STREAM, Q_WAIT, Q_N };

/* Build request seq of connection conn, of kind q (or drawn when q < 0). */
static void make_req(req_t *rq, unsigned conn, unsigned seq, int q, bool close, bool small)
{
    memset(rq, 0, sizeof *rq);
    if (q < 0)
        q = (int)(rnd() % (Q_N - 1)); /* waits only when asked for */
    uint64_t key = (uint64_t)conn * 1000 + seq;
    buf_t w = {0}, e = {0};
    const char *conn_hdr = close ? "Connection: close\r\n" : "";
    rq->status = 200;
    rq->close = close;
    switch (q) {
    case Q_ECHO_CL:
    case Q_ECHO_CHUNKED: {
        size_t n = body_size();
        if (small && n > 4096)
            n = n % 4096;
        char *body = malloc(n ? n : 1);
        fill(body, n, key ^ 0x55);
        bool chunked = q == Q_ECHO_CHUNKED;
        putf(&w, "POST /e/%u.%u HTTP/1.1\r\nHost: server\r\n%s", conn, seq, conn_hdr);
        if (!chunked) {
            putf(&w, "Content-Length: %zu\r\n\r\n", n);
            put(&w, body, n);
        } else {
            putf(&w, "Transfer-Encoding: chunked\r\n\r\n");
            size_t off = 0;
            while (off < n) {
                size_t c = between(1, n - off < 9000 ? n - off : 9000);
                if (rnd() % 4 == 0)
                    putf(&w, "%zX;ext=%u\r\n", c, seq);
                else
                    putf(&w, "%zx\r\n", c);
                put(&w, body + off, c);
                put(&w, "\r\n", 2);
                off += c;
            }
            put(&w, "0\r\n", 3);
            if (rnd() % 4 == 0)
                put(&w, "X-Trailer: yes\r\n", 16);
            put(&w, "\r\n", 2);
        }
        sum_t h = {0, 0};
        sum_add(&h, body, n);
        putf(&e, "POST %u.%u n=%zu sum=%016" PRIx64 "\n", conn, seq, n, sum_of(&h));
        free(body);
        break;
    }
    case Q_BIG: {
        size_t n = small && !g_small ? between(0, 8000) : body_size() * 2;
        putf(&w, "GET /b/%u.%u/%zu HTTP/1.1\r\nHost: server\r\n%s\r\n", conn, seq, n, conn_hdr);
        char *p = malloc(n ? n : 1);
        fill(p, n, key);
        put(&e, p, n);
        free(p);
        break;
    }
    case Q_STREAM: {
        size_t n = small && !g_small ? between(0, 8000) : body_size(), k = between(1, 8);
        putf(&w, "GET /s/%u.%u/%zu/%zu HTTP/1.1\r\nHost: server\r\n%s\r\n", conn, seq, n, k, conn_hdr);
        char *p = malloc(n ? n : 1);
        fill(p, n, key);
        put(&e, p, n);
        free(p);
        break;
    }
    default: { /* Q_WAIT */
        unsigned ms = (unsigned)between(50, GRACE_MS / 2);
        putf(&w, "GET /w/%u.%u/%u HTTP/1.1\r\nHost: server\r\n%s\r\n", conn, seq, ms, conn_hdr);
        putf(&e, "waited %u %u.%u\n", ms, conn, seq);
        rq->is_wait = true;
        break;
    }
    }
    if (!e.p)
        put(&e, "", 0);
    rq->wire = w.p;
    rq->wire_len = w.len;
    rq->expect = e.p;
    rq->expect_len = e.len;
}

static void free_req(req_t *rq)
{
    free(rq->wire);
    free(rq->expect);
}

/* ------------------------------------------------------------------ */
/* Reading a response                                                  */
/* ------------------------------------------------------------------ */

enum { GOT_OK, GOT_EOF, GOT_RESET, GOT_TIMEOUT, GOT_BAD };
static const char *got_name[] = {"ok", "EOF", "reset", "time-out", "malformed"};

typedef struct resp {
    int status;
    bool close, chunked, closing;
    buf_t body;
    char why[160];
} resp_t;

static int classify(ssize_t r)
{
    if (r == 0 || r == -CORIO_EINCOMPLETE)
        return GOT_EOF;
    if (r == -CORIO_EDEADLINE)
        return GOT_TIMEOUT;
    return GOT_RESET; /* -ECONNRESET, -EPIPE, ... */
}

static bool hdr_is(const char *line, size_t len, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    while (*v == ' ')
        v++;
    *val = v;
    return true;
}

/* Read one response; GOT_OK with r filled, or why it did not come. */
static int read_response(corio_stream *s, resp_t *r)
{
    r->status = 0;
    r->close = r->chunked = r->closing = false;
    r->body.len = 0;
    r->why[0] = 0;
    const char *p;
    ssize_t n = corio_stream_readuntil(s, "\r\n\r\n", 4, &p);
    if (n < 0) {
        if (n == -CORIO_ELIMIT) {
            snprintf(r->why, sizeof r->why, "response head over the stream's limit");
            return GOT_BAD;
        }
        return classify(n);
    }
    char head[4096];
    if ((size_t)n >= sizeof head) {
        snprintf(r->why, sizeof r->why, "response head of %zd bytes", n);
        return GOT_BAD;
    }
    memcpy(head, p, (size_t)n);
    head[n] = 0;
    /* exactly "HTTP/1.1 DDD " (by hand: sscanf cost 2 % of a request) */
    if ((size_t)n < 13 || memcmp(head, "HTTP/1.1 ", 9) != 0 || !is_digit(head[9]) || !is_digit(head[10]) ||
        !is_digit(head[11]) || head[12] != ' ') {
        snprintf(r->why, sizeof r->why, "bad status line: %.40s", head);
        return GOT_BAD;
    }
    r->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    long long clen = -1;
    for (char *line = strstr(head, "\r\n") + 2; *line && line[0] != '\r';) {
        char *end = strstr(line, "\r\n");
        const char *v;
        if (hdr_is(line, (size_t)(end - line), "content-length", &v))
            clen = strtoll(v, NULL, 10);
        else if (hdr_is(line, (size_t)(end - line), "transfer-encoding", &v))
            r->chunked = !strncasecmp(v, "chunked", 7);
        else if (hdr_is(line, (size_t)(end - line), "connection", &v))
            r->close = !strncasecmp(v, "close", 5);
        else if (hdr_is(line, (size_t)(end - line), "x-closing", &v))
            r->closing = true;
        line = end + 2;
    }
    if (r->status < 200 || r->status == 204 || r->status == 304)
        clen = 0;
    if (r->chunked == (clen >= 0)) {
        snprintf(r->why, sizeof r->why, "response %d framed by %s", r->status,
                 r->chunked ? "both Content-Length and chunked" : "neither Content-Length nor chunked");
        return GOT_BAD;
    }
    if (!r->chunked) {
        put(&r->body, "", 0);
        if (clen > 0) {
            char *b = malloc((size_t)clen);
            size_t got = 0;
            ssize_t k = corio_stream_readexactly(s, b, (size_t)clen, &got);
            if (k >= 0)
                put(&r->body, b, (size_t)clen);
            free(b);
            if (k < 0)
                return classify(k);
        }
        return GOT_OK;
    }
    put(&r->body, "", 0);
    for (;;) {
        n = corio_stream_readuntil(s, "\r\n", 2, &p);
        if (n < 0)
            return n == -CORIO_ELIMIT ? GOT_BAD : classify(n);
        char *endp;
        char line[32];
        size_t m = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 1;
        memcpy(line, p, m);
        line[m] = 0;
        unsigned long long size = strtoull(line, &endp, 16);
        if (endp == line || (*endp != '\r' && *endp != ';')) {
            snprintf(r->why, sizeof r->why, "bad chunk size line %.20s", line);
            return GOT_BAD;
        }
        if (size == 0)
            break;
        char *b = malloc(size + 2);
        ssize_t k = corio_stream_readexactly(s, b, size + 2, NULL);
        if (k >= 0) {
            if (b[size] != '\r' || b[size + 1] != '\n') {
                free(b);
                snprintf(r->why, sizeof r->why, "chunk data not followed by CRLF");
                return GOT_BAD;
            }
            put(&r->body, b, size);
        }
        free(b);
        if (k < 0)
            return classify(k);
    }
    /* trailers (corio sends none) and the final CRLF */
    n = corio_stream_readuntil(s, "\r\n", 2, &p);
    if (n < 0)
        return classify(n);
    if (n != 2) {
        snprintf(r->why, sizeof r->why, "trailer section in a response");
        return GOT_BAD;
    }
    return GOT_OK;
}

/* After a response that said close (or a final request): the connection
 * must end with nothing more on it. */
static void expect_eof(corio_stream *s, unsigned conn, const char *after)
{
    char c;
    corio_deadline d = corio_deadline_push(STUCK_MS);
    ssize_t n = corio_stream_read(s, &c, 1);
    corio_deadline_pop(d);
    if (n > 0)
        bad("conn %u: bytes after %s (an extra response?)", conn, after);
    else if (n == -CORIO_EDEADLINE)
        bad("conn %u: connection not closed after %s", conn, after);
    else if (n < 0 && !R.lossy && n != -ECONNRESET)
        bad("conn %u: %s after %s", conn, corio_strerror((int)n), after);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

enum {
    K_SEQ,      /* keep-alive sequence, some requests sent slowly */
    K_PIPE,     /* pipelined batch */
    K_IDLE,     /* one request, then the keep-alive time-out must close it */
    K_TOOSLOW,  /* a head trickled slower than head_timeout_ms: 408 */
    K_VANISH_Q, /* closes mid-request */
    K_VANISH_A, /* closes mid-response */
    K_GARBAGE,  /* an invalid request, after a few valid ones */
    K_N
};
static const char *kind_name[] = {"seq", "pipe", "idle", "tooslow", "vanish-req", "vanish-resp", "garbage"};

typedef struct client {
    unsigned id;
    int kind;
} client_t;

static int connect_server(corio_stream **s, unsigned conn)
{
    int r = corio_stream_connect(R.addr, R.port, s);
    if (r < 0 && !R.lossy)
        bad("conn %u: connect: %s", conn, corio_strerror(r));
    return r;
}

/* Send bytes, at once or trickled in pieces with sleeps of up to gap_ms. */
static int send_bytes(corio_stream *s, const char *p, size_t n, bool slow, unsigned pieces, unsigned gap_ms)
{
    if (!slow || n < 2) {
        int r = corio_stream_write(s, p, n);
        return r < 0 ? r : corio_stream_drain(s);
    }
    size_t off = 0;
    for (unsigned i = 0; i < pieces && off < n; i++) {
        size_t end = i + 1 == pieces ? n : off + between(1, (n - off + pieces - 1) / (pieces - i));
        if (end > n)
            end = n;
        int r = corio_stream_write(s, p + off, end - off);
        if (r == 0)
            r = corio_stream_drain(s);
        if (r < 0)
            return r;
        off = end;
        if (off < n)
            corio_sleep_ms(between(1, gap_ms));
    }
    return 0;
}

/* Check a response against its request; returns false if the connection
 * is over (legally or not). */
static bool check(corio_stream *s, unsigned conn, req_t *rq, unsigned seq, bool closing_ok)
{
    resp_t r = {0};
    corio_deadline d = corio_deadline_push(STUCK_MS);
    int got = read_response(s, &r);
    corio_deadline_pop(d);
    bool more = false;
    if (got == GOT_BAD) {
        bad("conn %u req %u: %s", conn, seq, r.why);
    } else if (got == GOT_TIMEOUT) {
        bad("conn %u req %u: no response within %d ms", conn, seq, STUCK_MS);
    } else if (got != GOT_OK) {
        /* Closed before the answer: legal with faults that break or stall
         * connections, once the server's close has begun, or when the
         * request itself could have met a time-out of the server's. */
        if (!R.lossy && !closing_ok && !R.close_start)
            bad("conn %u req %u: connection ended (%s) before the response, with no fault or time-out to "
                "explain it",
                conn, seq, got_name[got]);
    } else if (r.status == 408 && r.close && R.lossy) {
        /* A stalled connection met the head or body time-out: the server
         * answers 408 and closes, as it must. */
        expect_eof(s, conn, "a 408");
    } else if (r.status != rq->status) {
        bad("conn %u req %u: status %d, expected %d", conn, seq, r.status, rq->status);
    } else if (r.body.len != rq->expect_len || memcmp(r.body.p, rq->expect, r.body.len)) {
        bad("conn %u req %u: wrong body (%zu bytes, expected %zu): %.60s", conn, seq, r.body.len,
            rq->expect_len, r.body.p);
    } else {
        R.completed++;
        if (rq->close && !r.close)
            bad("conn %u req %u: \"Connection: close\" request answered without it", conn, seq);
        else if (r.close && !rq->close && !R.close_start && !closing_ok)
            bad("conn %u req %u: the server closed a keep-alive connection for no reason", conn, seq);
        more = !r.close;
        if (r.close)
            expect_eof(s, conn, "a response with Connection: close");
    }
    free(r.body.p);
    return more;
}

static void client_seq(corio_stream *s, client_t *c)
{
    unsigned n = (unsigned)between(1, 6);
    for (unsigned i = 0; i < n; i++) {
        req_t rq;
        bool last = i + 1 == n, close = last && rnd() % 2;
        make_req(&rq, c->id, i, -1, close, false);
        /* Slow sending: at most 6 pieces, at most 200 ms apart, well
         * inside head_timeout_ms for the head and body_timeout_ms per wait. */
        bool slow = rnd() % 5 == 0;
        int e = send_bytes(s, rq.wire, rq.wire_len, slow, (unsigned)between(2, 6), 200);
        bool go = true;
        if (e < 0) {
            if (!R.lossy)
                bad("conn %u req %u: send: %s", c->id, i, corio_strerror(e));
            go = false;
        } else {
            go = check(s, c->id, &rq, i, false);
        }
        free_req(&rq);
        if (!go)
            return;
        if (last && !close) {
            /* Keep-alive: the server must close us within its time-out. */
            uint64_t t0 = now_ms();
            expect_eof(s, c->id, "the keep-alive time-out");
            uint64_t took = now_ms() - t0;
            if (!R.lossy && !R.close_start && took > KEEPALIVE_TO + SLACK_MS)
                bad("conn %u: idle keep-alive connection closed after %" PRIu64 " ms (time-out %d ms)", c->id,
                    took, KEEPALIVE_TO);
            return;
        }
        if (!last && rnd() % 3 == 0)
            corio_sleep_ms(between(1, KEEPALIVE_TO / 3)); /* idle, inside the keep-alive time-out */
    }
}

static void client_pipe(corio_stream *s, client_t *c)
{
    unsigned n = (unsigned)between(2, 10);
    req_t rq[10];
    buf_t all = {0};
    bool close = rnd() % 2;
    for (unsigned i = 0; i < n; i++) {
        make_req(&rq[i], c->id, i, -1, close && i + 1 == n, rnd() % 4 != 0);
        put(&all, rq[i].wire, rq[i].wire_len);
    }
    uint64_t t0 = now_ms();
    /* One draw per statement: the order a compiler evaluates arguments in
     * is its own choice, and a build must not change the run. */
    bool slow = rnd() % 3 == 0;
    unsigned pieces = (unsigned)between(2, 5);
    int e = send_bytes(s, all.p, all.len, slow, pieces, 100);
    free(all.p);
    /* The client reads nothing until it has sent the whole batch: if that
     * took longer than write_timeout_ms, the server may have given up on
     * writing the first answers and closed (a reset, as unread bytes were
     * left).  That is the server enforcing its time-out, not a bug. */
    bool slow_reader = now_ms() - t0 + SLACK_MS >= WRITE_TO;
    unsigned i = 0;
    if (e < 0) {
        if (!R.lossy && !slow_reader)
            bad("conn %u: pipelined send: %s", c->id, corio_strerror(e));
    } else {
        for (; i < n; i++)
            if (!check(s, c->id, &rq[i], i, slow_reader))
                break;
        if (i == n && !close)
            expect_eof(s, c->id, "the keep-alive time-out");
    }
    for (unsigned j = 0; j < n; j++)
        free_req(&rq[j]);
}

static void client_idle(corio_stream *s, client_t *c)
{
    req_t rq;
    make_req(&rq, c->id, 0, -1, false, true);
    int e = send_bytes(s, rq.wire, rq.wire_len, false, 0, 0);
    if (e >= 0 && check(s, c->id, &rq, 0, false)) {
        uint64_t t0 = now_ms();
        expect_eof(s, c->id, "the keep-alive time-out");
        uint64_t took = now_ms() - t0;
        if (!R.lossy && !R.close_start && took > KEEPALIVE_TO + SLACK_MS)
            bad("conn %u: idle keep-alive connection closed after %" PRIu64 " ms (time-out %d ms)", c->id,
                took, KEEPALIVE_TO);
        if (!R.lossy && !R.close_start && took + SLACK_MS < KEEPALIVE_TO)
            bad("conn %u: idle keep-alive connection closed after %" PRIu64
                " ms, before its time-out (%d ms)",
                c->id, took, KEEPALIVE_TO);
    } else if (e < 0 && !R.lossy) {
        bad("conn %u: send: %s", c->id, corio_strerror(e));
    }
    free_req(&rq);
}

static void client_tooslow(corio_stream *s, client_t *c)
{
    char head[128];
    int n = snprintf(head, sizeof head, "GET /e/%u.0 HTTP/1.1\r\nHost: server\r\nX-Slow: yes\r\n\r\n", c->id);
    uint64_t t0 = now_ms();
    /* One byte every 300 ms: the head would take about 15 s, the server
     * must give up at head_timeout_ms. */
    for (int i = 0; i < n && now_ms() - t0 < HEAD_TO + 2 * SLACK_MS; i++) {
        if (corio_stream_write(s, head + i, 1) < 0 || corio_stream_drain(s) < 0)
            break;
        corio_sleep_ms(300);
    }
    resp_t r = {0};
    corio_deadline d = corio_deadline_push(HEAD_TO + 1000);
    int got = read_response(s, &r);
    corio_deadline_pop(d);
    if (got == GOT_OK) {
        if (r.status != 408)
            bad("conn %u: a head trickled past head_timeout_ms answered %d, expected 408", c->id, r.status);
        else
            expect_eof(s, c->id, "a 408");
    } else if (got == GOT_TIMEOUT) {
        bad("conn %u: head trickled for %" PRIu64 " ms and still no 408 (head_timeout_ms %d)", c->id,
            now_ms() - t0, HEAD_TO);
    } else if (got == GOT_BAD) {
        bad("conn %u: %s", c->id, r.why);
    } else if (!R.lossy && !R.close_start) {
        bad("conn %u: a head trickled past head_timeout_ms got %s instead of a 408", c->id, got_name[got]);
    }
    free(r.body.p);
}

static void client_vanish_req(corio_stream *s, client_t *c)
{
    req_t rq;
    make_req(&rq, c->id, 0, rnd() % 2 ? Q_ECHO_CL : Q_ECHO_CHUNKED, false, false);
    size_t cut = (size_t)between(0, rq.wire_len - 1);
    send_bytes(s, rq.wire, cut, rnd() % 2, 3, 100);
    if (rnd() % 2)
        corio_sleep_ms(between(1, 500));
    free_req(&rq);
}

static void client_vanish_resp(corio_stream *s, client_t *c)
{
    req_t rq;
    make_req(&rq, c->id, 0, rnd() % 2 ? Q_BIG : Q_STREAM, false, false);
    if (send_bytes(s, rq.wire, rq.wire_len, false, 0, 0) == 0) {
        size_t want = (size_t)between(0, rq.expect_len / 2 + 100);
        char tmp[4096];
        corio_deadline d = corio_deadline_push(STUCK_MS);
        for (size_t got = 0; got < want;) {
            ssize_t r = corio_stream_read(s, tmp, sizeof tmp);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        corio_deadline_pop(d);
    }
    free_req(&rq);
}

/* Invalid requests and the status each must get. */
static const struct {
    const char *wire;
    int status;
    bool trailing; /* bytes may be left unread when the server closes (a reset is fine) */
} garbage[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400, true},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, false},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, false},
    {"\x16\x03\x01\x02\x01 junk\r\n\r\n", 400, false},
    {"GET / HTTP/1.1\nHost: a\n\n", 400, false},
    {"GET / HTTP/1.1\r\n\r\n", 400, false},
    {"POST /e/0.0 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400,
     true},
    {"POST /e/0.0 HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413, false},
};

static void client_garbage(corio_stream *s, client_t *c)
{
    unsigned valid = (unsigned)between(0, 2), g = (unsigned)(rnd() % (sizeof garbage / sizeof garbage[0]));
    req_t rq[2];
    buf_t all = {0};
    for (unsigned i = 0; i < valid; i++) {
        make_req(&rq[i], c->id, i, -1, false, true);
        put(&all, rq[i].wire, rq[i].wire_len);
    }
    put(&all, garbage[g].wire, strlen(garbage[g].wire));
    int e = send_bytes(s, all.p, all.len, rnd() % 3 == 0, 3, 100);
    free(all.p);
    bool go = e >= 0;
    for (unsigned i = 0; go && i < valid; i++)
        go = check(s, c->id, &rq[i], i, false);
    if (go) {
        resp_t r = {0};
        corio_deadline d = corio_deadline_push(STUCK_MS);
        int got = read_response(s, &r);
        corio_deadline_pop(d);
        if (got == GOT_OK) {
            if (r.status != garbage[g].status)
                bad("conn %u: garbage #%u answered %d, expected %d", c->id, g, r.status, garbage[g].status);
            else if (!r.close)
                bad("conn %u: garbage #%u answered without Connection: close", c->id, g);
            else
                expect_eof(s, c->id, "an error response");
        } else if (got == GOT_BAD) {
            bad("conn %u: garbage #%u: %s", c->id, g, r.why);
        } else if (got == GOT_TIMEOUT) {
            bad("conn %u: garbage #%u: no answer", c->id, g);
        } else if (!R.lossy && !R.close_start && !(got == GOT_RESET && garbage[g].trailing)) {
            bad("conn %u: garbage #%u got %s instead of %d", c->id, g, got_name[got], garbage[g].status);
        }
        free(r.body.p);
    } else if (e < 0 && !R.lossy) {
        bad("conn %u: send: %s", c->id, corio_strerror(e));
    }
    for (unsigned i = 0; i < valid; i++)
        free_req(&rq[i]);
}

/* Mostly well-behaved traffic, some of everything else. */
static int draw_kind(void)
{
    unsigned d = (unsigned)(rnd() % 100);
    return d < 40   ? K_SEQ
           : d < 65 ? K_PIPE
           : d < 72 ? K_IDLE
           : d < 77 ? K_TOOSLOW
           : d < 84 ? K_VANISH_Q
           : d < 91 ? K_VANISH_A
                    : K_GARBAGE;
}

static void client_conn(client_t *c)
{
    corio_stream *s;
    note("client %u: %s", c->id, kind_name[c->kind]);
    if (connect_server(&s, c->id) < 0)
        return;
    switch (c->kind) {
    case K_SEQ:
        client_seq(s, c);
        break;
    case K_PIPE:
        client_pipe(s, c);
        break;
    case K_IDLE:
        client_idle(s, c);
        break;
    case K_TOOSLOW:
        client_tooslow(s, c);
        break;
    case K_VANISH_Q:
        client_vanish_req(s, c);
        break;
    case K_VANISH_A:
        client_vanish_resp(s, c);
        break;
    default:
        client_garbage(s, c);
        break;
    }
    corio_stream_close(s);
}

/* A simulated client: one connection, or --rounds of them one after the
 * other (each of a kind drawn anew). */
static void *client_main(void *arg)
{
    client_t *c = arg;
    unsigned id = c->id;
    for (unsigned r = 0; r < (g_rounds ? g_rounds : 1); r++) {
        client_t one = {id + r * 100000, r ? draw_kind() : c->kind};
        client_conn(&one);
    }
    return NULL;
}

/* A client host: its share of the clients, each starting after a delay. */
typedef struct host_job {
    client_t *clients;
    unsigned n;
} host_job;

static void *delayed_client(void *arg)
{
    client_t *c = arg;
    corio_sleep_ms(between(0, 400));
    return client_main(c);
}

static void *client_host_main(void *arg)
{
    host_job *j = arg;
    corio_group g;
    corio_group_init(&g);
    for (unsigned i = 0; i < j->n; i++)
        if (!corio_group_spawn(&g, delayed_client, &j->clients[i]))
            bad("spawn: %s", strerror(errno));
    corio_group_join(&g);
    return NULL;
}

/* Straddlers: requests in flight (or idle connections) when the graceful
 * close begins. */
static void *straddler(void *arg)
{
    client_t *c = arg;
    corio_stream *s;
    if (connect_server(&s, c->id) < 0)
        return NULL;
    req_t rq;
    bool inflight = c->kind == 0;
    make_req(&rq, c->id, 0, inflight ? Q_WAIT : -1, false, true);
    if (send_bytes(s, rq.wire, rq.wire_len, false, 0, 0) == 0) {
        if (inflight) {
            /* Answered in full, with Connection: close (the server is closing). */
            resp_t r = {0};
            corio_deadline d = corio_deadline_push(STUCK_MS);
            int got = read_response(s, &r);
            corio_deadline_pop(d);
            if (got == GOT_OK && r.status == 200 && r.body.len == rq.expect_len &&
                !memcmp(r.body.p, rq.expect, r.body.len)) {
                R.completed++;
                if (r.closing && !r.close)
                    bad("conn %u: answered during the graceful close without Connection: close", c->id);
                else
                    expect_eof(s, c->id,
                               r.close ? "the last response of a closing server"
                                       : "the graceful close of an idle connection");
            } else if (got == GOT_OK) {
                bad("conn %u: in-flight request during graceful close: status %d, %zu bytes", c->id, r.status,
                    r.body.len);
            } else if (got == GOT_BAD || got == GOT_TIMEOUT || !R.lossy) {
                bad("conn %u: in-flight request (handler sleeps less than the grace) not answered: %s %s",
                    c->id, got_name[got], r.why);
            }
            free(r.body.p);
        } else if (check(s, c->id, &rq, 0, false)) {
            expect_eof(s, c->id, "the graceful close of an idle connection");
        }
    }
    free_req(&rq);
    corio_stream_close(s);
    return NULL;
}

static void *straddle_host_main(void *arg)
{
    host_job *j = arg;
    corio_group g;
    corio_group_init(&g);
    for (unsigned i = 0; i < j->n; i++)
        corio_group_spawn(&g, straddler, &j->clients[i]);
    corio_group_join(&g);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* One run                                                             */
/* ------------------------------------------------------------------ */

#define MAX_CLIENT_HOSTS 4

static corio_task *start_on(corio_sim_host *h, corio_fn fn, void *arg)
{
    corio_task *t = R.sim ? corio_sim_host_start(h, fn, arg) : corio_spawn(fn, arg);
    if (!t)
        bad("start: %s", strerror(errno));
    return t;
}

static void *sim_main(void *arg)
{
    (void)arg;
    corio_event_init(&R.listening);
    corio_event_init(&R.close_now);
    corio_sim_host *server = NULL, *hosts[MAX_CLIENT_HOSTS] = {0};
    unsigned nhosts = (unsigned)between(1, MAX_CLIENT_HOSTS);
    if (R.sim) {
        const corio_sim_faults *f = corio__sim_faults(corio__sim_world());
        R.lossy = f->reset > 0 || f->stall > 0;
        server = corio_sim_host_new("server", "127.0.0.2");
        for (unsigned i = 0; i < nhosts; i++) {
            char name[16], addr[20];
            snprintf(name, sizeof name, "client%u", i + 1);
            snprintf(addr, sizeof addr, "127.0.0.%u", 10 + i);
            hosts[i] = corio_sim_host_new(name, addr);
            if (!hosts[i] || !server) {
                bad("corio_sim_host_new: %s", strerror(errno));
                return NULL;
            }
        }
    }
    corio_task *srv = start_on(server, server_main, NULL);
    if (!srv)
        return NULL;
    corio_event_wait(&R.listening);
    if (R.failed) {
        corio_task_join(srv, NULL);
        return NULL;
    }

    /* The clients, dealt out over the client hosts. */
    unsigned n = (unsigned)between(10, 60);
    if (g_clients)
        n = g_clients;
    R.conns = n;
    client_t *cl = calloc(n, sizeof *cl);
    host_job jobs[MAX_CLIENT_HOSTS] = {0};
    for (unsigned i = 0; i < n; i++) {
        cl[i].id = i + 1;
        cl[i].kind = draw_kind();
    }
    for (unsigned h = 0; h < nhosts; h++) {
        jobs[h].clients = cl + n * h / nhosts;
        jobs[h].n = n * (h + 1) / nhosts - n * h / nhosts;
    }
    corio_task *ht[MAX_CLIENT_HOSTS];
    for (unsigned h = 0; h < nhosts; h++)
        ht[h] = start_on(hosts[h], client_host_main, &jobs[h]);
    for (unsigned h = 0; h < nhosts; h++)
        if (ht[h])
            corio_task_join(ht[h], NULL);

    /* Graceful close with requests in flight and idle connections. */
    unsigned ns = (unsigned)between(1, 4);
    client_t st[4];
    for (unsigned i = 0; i < ns; i++) {
        st[i].id = 1000 + i;
        st[i].kind = i == 0 ? 0 : (int)(rnd() % 2);
    }
    unsigned inflight = 0;
    for (unsigned i = 0; i < ns; i++)
        inflight += st[i].kind == 0;
    host_job sj = {st, ns};
    corio_task *stt = start_on(hosts[0], straddle_host_main, &sj);
    /* Wait (bounded) until the in-flight ones are inside the handler. */
    for (int i = 0; i < 3000 && R.in_wait < inflight; i++)
        corio_sleep_ms(1);
    corio_sleep_ms(between(0, 20));
    corio_event_set(&R.close_now);
    corio_task_join(srv, NULL);
    if (stt)
        corio_task_join(stt, NULL);
    free(cl);

    /* Leaks: closed streams finish in the background for up to 10 s; then
     * only this task may be alive. */
    corio_sleep_ms(11000);
    corio_task *tasks[8];
    size_t live = corio_all_tasks(tasks, 8);
    if (live != 1) {
        char names[200] = "";
        for (size_t i = 0; i < live && i < 8; i++) {
            if (tasks[i] == corio_current())
                continue;
            const char *nm = corio_task_name(tasks[i]);
            strncat(names, nm ? nm : "(unnamed)", sizeof names - strlen(names) - 3);
            strcat(names, " ");
        }
        bad("%zu tasks alive at the end besides main: %s", live - 1, names);
    }
    /* ... and no virtual fd open (they are numbered lowest first, so the
     * first few thousand hold every one this run made). */
    if (R.sim) {
        corio__sim *w = corio__sim_world();
        unsigned open = 0;
        for (int fd = CORIO__SIM_FD_BASE; fd < CORIO__SIM_FD_BASE + 4096; fd++)
            open += corio__sim_fd_get(w, fd) != NULL;
        if (open)
            bad("%u virtual fds open at the end", open);
    }
    return NULL;
}

static int run_seed(uint64_t seed, const corio_sim_faults *faults, uint64_t *hash)
{
    memset(&R, 0, sizeof R);
    R.seed = seed;
    R.sim = !g_real;
    R.addr = R.sim ? "127.0.0.2" : "127.0.0.1";
    R.port = R.sim ? 80 : 0;
    R.xs = seed * 0x9e3779b97f4a7c15ull + 1;
    corio_sim_report rep = {0};
    corio_sim_config sc = {.seed = seed,
                           .faults = faults,
                           .report = &rep,
                           .quiet = 1,
                           .trace_tail = getenv("SIM_TAIL") ? (unsigned)atoi(getenv("SIM_TAIL")) : 40};
    corio_config cfg = {.backend = R.sim ? CORIO_BACKEND_SIM : CORIO_BACKEND_AUTO, .sim = R.sim ? &sc : NULL};
    int r = corio_run(&cfg, sim_main, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "sim_http: seed %" PRIu64 ": corio_run: %s\n", seed, corio_strerror(r));
        R.failed = true;
    }
    if (R.sim && rep.failed)
        R.failed = true;
    total_completed += R.completed;
    *hash = rep.trace_hash;
    return R.failed ? -1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sim_http [--seeds N] [--seed S | --from S] [--seconds T] [--faults 0] [--mix "
                    "small] [--clients N] [--rounds R] [--quiet] [--real]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t from = 1, count = 1;
    double max_seconds = 0;
    bool one = false, quiet = false, faults_off = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--real")) {
            g_real = true;
        } else if (i + 1 < argc && !strcmp(a, "--seeds")) {
            count = strtoull(argv[++i], NULL, 0);
        } else if (i + 1 < argc && !strcmp(a, "--seed")) {
            from = strtoull(argv[++i], NULL, 0);
            one = true;
        } else if (i + 1 < argc && !strcmp(a, "--from")) {
            from = strtoull(argv[++i], NULL, 0);
        } else if (i + 1 < argc && !strcmp(a, "--seconds")) {
            max_seconds = strtod(argv[++i], NULL);
        } else if (i + 1 < argc && !strcmp(a, "--clients")) {
            g_clients = (unsigned)strtoul(argv[++i], NULL, 0);
        } else if (i + 1 < argc && !strcmp(a, "--rounds")) {
            g_rounds = (unsigned)strtoul(argv[++i], NULL, 0);
        } else if (i + 1 < argc && !strcmp(a, "--mix")) {
            g_small = !strcmp(argv[++i], "small");
        } else if (i + 1 < argc && !strcmp(a, "--faults")) {
            faults_off = !strcmp(argv[++i], "0");
        } else {
            usage();
        }
    }
    if (one)
        count = 1;
    static const corio_sim_faults none = {0};
    period_init();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t passed = 0, failed = 0;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t seed = from + k, hash = 0;
        int r = run_seed(seed, faults_off ? &none : NULL, &hash);
        if (r == 0)
            passed++;
        else
            failed++;
        if (!quiet || r != 0)
            printf("seed %" PRIu64 ": trace %016" PRIx64 "%s\n", seed, hash, r ? " FAILED" : "");
        fflush(stdout);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (max_seconds > 0 &&
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >= max_seconds)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    struct timespec cpu;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
    double cpus = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    printf("simulated requests: %" PRIu64
           " in %.3f s wall (%.0f requests/s), %.3f s CPU (%.0f requests/CPU s)\n",
           total_completed, wall, wall > 0 ? (double)total_completed / wall : 0.0, cpus,
           cpus > 0 ? (double)total_completed / cpus : 0.0);
    return failed ? 1 : 0;
}

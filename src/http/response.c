/*
 * The response (src/http/server_internal.h has the map): the head the
 * server writes (status line, the handler's extra headers, framing, Date,
 * Server, Connection), bodies of known length (small ones copied into the
 * output buffer, large ones sent from the caller's memory), streamed
 * bodies (chunked, or raw for HTTP/1.0 clients), file bodies through
 * sendfile (or, on HTTPS, read and sent through the TLS engine), and the
 * server's own error answers.  Responses pile up in the
 * output buffer and go out with the batch, or as soon as OUT_FLUSH_AT bytes
 * are waiting (so a handler producing much data is paced by the client).
 */
#include "server_internal.h"
#include "../io/sys.h"
#include "../io/file.h"
#include "../io/sys.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <time.h>

#define DIRECT_SEND_AT 16384 /* bodies this large are sent from the caller's memory */
/* HTTPS file bodies: read and encrypted this much at a time.  Four full
 * records, what the send stage holds (conn_io.c TOUT_CAP), so each piece
 * leaves in one send; and below glibc's mmap threshold (128 KiB), so the
 * buffer is warm heap, not a fresh mapping: with 256 KiB the first
 * transfer spent a third of its CPU in the kernel's copy into the buffer,
 * and later ones stayed 10-20 % dearer (docs/benchmarks.md, "Bulk"). */
#define TLS_FILE_CHUNK (64u << 10)
#define TLS_FILE_SMALL 16384   /* HTTPS file bodies up to this size join the batch's output */
#define YIELD_EVERY (4u << 20) /* a file body lets other connections run after this many bytes */

/* Date header: formatted once per wall-clock second. */
static CORIO__HOT_TLS char date_buf[32];
static CORIO__HOT_TLS uint64_t date_next_ns; /* monotonic time of the next wall second */
static CORIO__HOT_TLS bool date_sim;         /* the cache holds a sim run's virtual date */

static const char *http_date(void)
{
    uint64_t now = corio_now_ns();
    bool sim = corio__sys_simulating();
    if (CORIO__UNLIKELY(now >= date_next_ns || date_buf[0] == 0 || sim != date_sim)) {
        /* a sim run's clock is another clock: never mix the two caches */
        date_sim = sim;
        struct timespec ts;
        corio__sys_realtime(&ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(date_buf, sizeof date_buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        /* the cached loop time may lag a little: refresh at the next
         * second boundary as seen from the fresh clock */
        date_next_ns = corio__clock_ns() + (1000000000ull - (uint64_t)ts.tv_nsec);
    }
    return date_buf;
}

/* Append a response head.  len < 0: no Content-Length (chunked or raw
 * stream, as c's flags say). */
static int put_head(conn *c, int status, const char *ctype, int64_t len, bool chunked)
{
    const char *reason = corio_http_reason(status);
    const char *server = c->srv->cfg.server_header;
    const char *date = http_date();
    size_t need = 64 + strlen(reason) + (ctype ? strlen(ctype) + 16 : 0) + c->xhlen + strlen(server) + 160;
    if (!corio__http_ob_reserve(c, need))
        return -ENOMEM;
    corio__http_ob_puts(c, "HTTP/1.1 ");
    corio__http_ob_putu(c, (uint64_t)status);
    corio__http_ob_put(c, " ", 1);
    corio__http_ob_puts(c, reason);
    corio__http_ob_put(c, "\r\n", 2);
    if (ctype) {
        corio__http_ob_puts(c, "Content-Type: ");
        corio__http_ob_puts(c, ctype);
        corio__http_ob_put(c, "\r\n", 2);
    }
    if (c->xhlen)
        corio__http_ob_put(c, c->xh, c->xhlen);
    if (len >= 0) {
        corio__http_ob_puts(c, "Content-Length: ");
        corio__http_ob_putu(c, (uint64_t)len);
        corio__http_ob_put(c, "\r\n", 2);
    }
    if (chunked)
        corio__http_ob_puts(c, "Transfer-Encoding: chunked\r\n");
    corio__http_ob_puts(c, "Date: ");
    corio__http_ob_puts(c, date);
    corio__http_ob_put(c, "\r\n", 2);
    if (*server) {
        corio__http_ob_puts(c, "Server: ");
        corio__http_ob_puts(c, server);
        corio__http_ob_put(c, "\r\n", 2);
    }
    if (!c->keep_alive)
        corio__http_ob_puts(c, "Connection: close\r\n");
    else if (c->req.version_minor == 0)
        corio__http_ob_puts(c, "Connection: keep-alive\r\n");
    corio__http_ob_put(c, "\r\n", 2);
    return 0;
}

/* Length of a header name or value, or -1 if it may not go on the wire
 * (CR, LF; for a name also controls, space, ':' and non-ASCII). */
static ssize_t header_len(const char *s, bool token)
{
    const char *p = s;
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\r' || ch == '\n')
            return -1;
        if (token && (ch <= ' ' || ch == ':' || ch >= 127))
            return -1;
    }
    return p - s;
}

/* The fields the server writes itself, told apart by length first: this
 * runs for every header of every response. */
static bool reserved_name(const char *name, size_t nl)
{
    switch (nl) {
    case 4:
        return !strcasecmp(name, "Date");
    case 6:
        return !strcasecmp(name, "Server");
    case 14:
        return !strcasecmp(name, "Content-Length");
    case 17:
        return !strcasecmp(name, "Transfer-Encoding");
    default:
        return false;
    }
}

int corio_http_response_add_header(corio_http_response *resp, const char *name, const char *value)
{
    if (!resp || !name || !value)
        return -EINVAL;
    conn *c = resp->c;
    if (c->rstate != R_NONE)
        return -EALREADY;
    ssize_t nls = header_len(name, true), vls = header_len(value, false);
    if (nls <= 0 || vls < 0)
        return -EINVAL;
    size_t nl = (size_t)nls, vl = (size_t)vls, need = nl + vl + 4;
    if (reserved_name(name, nl))
        return -EINVAL;
    if (nl == 10 && !strcasecmp(name, "Connection")) {
        if (strcasestr(value, "close"))
            c->keep_alive = false;
        return 0; /* the server writes its own Connection field */
    }
    if (c->xhcap - c->xhlen < need) {
        size_t cap = c->xhcap ? c->xhcap : 256;
        while (cap - c->xhlen < need)
            cap *= 2;
        char *p = corio__realloc(c->xh, cap);
        if (!p)
            return -ENOMEM;
        c->xh = p;
        c->xhcap = cap;
    }
    char *d = c->xh + c->xhlen;
    memcpy(d, name, nl);
    d[nl] = ':';
    d[nl + 1] = ' ';
    memcpy(d + nl + 2, value, vl);
    d[nl + 2 + vl] = '\r';
    d[nl + 3 + vl] = '\n';
    c->xhlen += need;
    return 0;
}

/* Claim the response for the way it will be sent (R_SENT or R_STREAM):
 * once per request, with a status the head can carry; settles keep-alive.
 * Returns 0, -EALREADY or -EINVAL. */
static int claim(conn *c, int status, uint8_t way)
{
    if (c->rstate != R_NONE)
        return -EALREADY;
    if (status < 200 || status > 999)
        return -EINVAL;
    c->rstate = way;
    corio__http_settle_keep_alive(c);
    return 0;
}

/* The common start of a response whose length is known: check and claim
 * the response, settle keep-alive, queue the head.  Returns 1 when the
 * head was all there is to send (HEAD, 204/304, an empty body; *done_r
 * holds the call's result), 0 when the body follows, or -errno. */
static int begin_sized(conn *c, int status, const char *content_type, uint64_t len, int *done_r)
{
    int r = claim(c, status, R_SENT);
    if (r < 0)
        return r;
    bool no_body = status == 204 || status == 304;
    r = put_head(c, status, content_type, no_body ? -1 : (int64_t)len, false);
    if (r < 0)
        return r;
    if (no_body || c->is_head || len == 0) {
        *done_r = c->olen > OUT_FLUSH_AT ? corio__http_flush(c) : c->werr;
        return 1;
    }
    return 0;
}

int corio_http_response_send(corio_http_response *resp, int status, const char *content_type,
                             const void *body, size_t len)
{
    if (!resp || (!body && len))
        return -EINVAL;
    conn *c = resp->c;
    int done_r;
    int r = begin_sized(c, status, content_type, len, &done_r);
    if (r != 0)
        return r < 0 ? r : done_r;
    if (len >= DIRECT_SEND_AT) {
        struct iovec iov[2] = {{c->obuf, c->olen}, {(void *)body, len}};
        c->olen = 0;
        return corio__http_send_all(c, iov, 2);
    }
    if (!corio__http_ob_reserve(c, len))
        return -ENOMEM;
    corio__http_ob_put(c, body, len);
    return c->olen > OUT_FLUSH_AT ? corio__http_flush(c) : c->werr;
}

int corio_http_response_begin(corio_http_response *resp, int status, const char *content_type)
{
    if (!resp)
        return -EINVAL;
    conn *c = resp->c;
    int r = claim(c, status, R_STREAM);
    if (r < 0)
        return r;
    c->raw_stream = c->req.version_minor == 0;
    if (c->raw_stream)
        c->keep_alive = false; /* the end of the body is the end of the connection */
    r = put_head(c, status, content_type, -1, !c->raw_stream);
    return r < 0 ? r : c->werr;
}

int corio_http_response_write(corio_http_response *resp, const void *data, size_t len)
{
    if (!resp || (!data && len))
        return -EINVAL;
    conn *c = resp->c;
    if (c->rstate != R_STREAM)
        return -EINVAL;
    if (len == 0 || c->is_head)
        return c->werr;
    if (!corio__http_ob_reserve(c, len + 24))
        return -ENOMEM;
    if (!c->raw_stream) {
        corio__http_ob_puthex(c, len);
        corio__http_ob_put(c, "\r\n", 2);
    }
    corio__http_ob_put(c, data, len);
    if (!c->raw_stream)
        corio__http_ob_put(c, "\r\n", 2);
    return c->olen > OUT_FLUSH_AT ? corio__http_flush(c) : c->werr;
}

int corio_http_response_end(corio_http_response *resp)
{
    if (!resp)
        return -EINVAL;
    conn *c = resp->c;
    if (c->rstate != R_STREAM)
        return -EINVAL;
    c->rstate = R_ENDED;
    if (c->is_head || c->raw_stream)
        return c->werr;
    if (!corio__http_ob_reserve(c, 8))
        return -ENOMEM;
    corio__http_ob_puts(c, "0\r\n\r\n");
    return c->olen > OUT_FLUSH_AT ? corio__http_flush(c) : c->werr;
}

/* A file body the connection could not finish: the length in the head
 * can not be kept, so the connection ends after what was sent. */
static int file_failed(conn *c, int err)
{
    c->keep_alive = false;
    if (!c->werr)
        c->werr = err;
    return c->werr;
}

/* HTTPS file bodies: sendfile can not encrypt (no kernel TLS here), so the
 * file is read into a buffer of TLS_FILE_CHUNK (corio__file_pread_seq: a
 * page cache hit is a copy on the loop thread, a miss goes to the ring or
 * the thread pool, never blocking the loop; a tmpfs file is one pread per
 * piece once the first has found out) and each buffer is handed to the
 * engine whole, which cuts it into full 16 KiB records and sends them
 * together.  Reading the next piece while one is encrypted would not pay:
 * both are work for the loop's one CPU (a page-cache copy), and a real
 * disk miss is rare for a file served again and again.  buf holds cap
 * bytes. */
static int send_file_tls(conn *c, int fd, int64_t off, uint64_t len, char *buf, size_t cap)
{
    size_t since_yield = 0;
    int r, how = CORIO__FILE_UNKNOWN;
    while (len > 0) {
        size_t want = len < cap ? (size_t)len : cap;
        ssize_t n = corio__file_pread_seq(fd, buf, want, off, &how);
        if (n <= 0)
            return file_failed(c, n == 0 ? -EIO : (int)n); /* 0: the file shrank under us */
        if ((r = corio__tls_write(c->tls, buf, (size_t)n)) < 0)
            return file_failed(c, r);
        off += n;
        len -= (uint64_t)n;
        if ((since_yield += (size_t)n) >= YIELD_EVERY && len > 0) {
            since_yield = 0;
            if ((r = corio_yield()) < 0)
                return file_failed(c, r);
        }
    }
    return 0;
}

#define SEND_MORE_MAX (16u * 1024u) /* bodies up to this size leave in one go with their head */

/* Zero-copy file bodies: sendfile(2) straight to the (non-blocking)
 * socket, and a POLLOUT wait whenever the socket buffer is full. */
int corio_http_response_send_file(corio_http_response *resp, int status, const char *content_type, int fd,
                                  int64_t off, uint64_t len)
{
    if (!resp || off < 0)
        return -EINVAL;
    conn *c = resp->c;
    char *tbuf = NULL;
    size_t tcap = 0;
    if (c->tls && len > TLS_FILE_SMALL && !c->is_head && c->rstate == R_NONE && status != 204 &&
        status != 304) {
        /* before the response is claimed: out of memory is an answer the
         * handler can still replace */
        tcap = len < TLS_FILE_CHUNK ? (size_t)len : TLS_FILE_CHUNK;
        if (!(tbuf = corio__malloc(tcap)))
            return -ENOMEM;
    }
    int done_r;
    int r = begin_sized(c, status, content_type, len, &done_r);
    if (r != 0) {
        corio__free(tbuf);
        return r < 0 ? r : done_r;
    }
    if (c->tls && len <= TLS_FILE_SMALL) {
        /* small: read it right behind the head, so that both (and the rest
         * of a pipelined batch) leave in one record */
        if (!corio__http_ob_reserve(c, (size_t)len))
            return file_failed(c, -ENOMEM);
        ssize_t n = corio_file_pread(fd, c->obuf + c->olen, (size_t)len, off);
        if (n != (ssize_t)len)
            return file_failed(c, n < 0 ? (int)n : -EIO);
        c->olen += (size_t)len;
        return c->olen > OUT_FLUSH_AT ? corio__http_flush(c) : c->werr;
    }
    /* A small body's head (and the answers before it) held back for the
     * body: with TCP_NODELAY they would leave as a segment of their own,
     * which doubles what the network stack does per small answer (as
     * nginx's tcp_nopush, the body's sendfile then pushes both).  Not for
     * large bodies: measured (bench/static_bench.sh, 100 KiB), holding
     * the head costs more than the one extra segment. */
    c->send_more = !c->tls && len > 0 && len <= SEND_MORE_MAX;
    r = corio__http_flush(c);
    c->send_more = false;
    if (r < 0) {
        corio__free(tbuf);
        return r;
    }
    if (c->tls) {
        r = send_file_tls(c, fd, off, len, tbuf, tcap);
        corio__free(tbuf);
        return r;
    }
    off_t pos = (off_t)off;
    size_t since_yield = 0;
    while (len > 0) {
        size_t n = len > (1u << 20) ? (1u << 20) : (size_t)len;
        ssize_t w = corio__sys_sendfile(c->in.fd, fd, &pos, n);
        if (w > 0) {
            len -= (uint64_t)w;
            /* a fast client never makes sendfile wait: let the other
             * connections have a turn every few MiB all the same */
            if ((since_yield += (size_t)w) >= YIELD_EVERY && len > 0) {
                since_yield = 0;
                if ((r = corio_yield()) < 0) {
                    c->werr = r;
                    return r;
                }
            }
            continue;
        }
        if (w == 0) {
            /* the file shrank under us: the promised length can not be kept */
            return file_failed(c, -EIO);
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            c->werr = -errno;
            return c->werr;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_POLL;
        op.fd = c->in.fd;
        op.flags = POLLOUT;
        op.off = -1;
        corio_deadline d = corio_deadline_push(c->srv->cfg.write_timeout_ms);
        r = corio__op_run(&op);
        corio_deadline_pop(d);
        if (r < 0) {
            c->werr = r == -EAGAIN ? -ETIMEDOUT : r;
            return c->werr;
        }
    }
    return 0;
}

/* The address is asked once per connection (an access log line per
 * request would otherwise cost a getpeername each). */
void corio_http_request_peer(const corio_http_request *req, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    const char *s = NULL;
    char tmp[INET6_ADDRSTRLEN];
    if (req) {
        conn *c = req_conn((corio_http_request *)req);
        if (!c->peer_family) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            c->peer_family = UINT8_MAX;
            if (corio__sys_getpeername(c->in.fd, (struct sockaddr *)&ss, &sl) == 0) {
                if (ss.ss_family == AF_INET) {
                    memcpy(c->peer_addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
                    c->peer_family = AF_INET;
                } else if (ss.ss_family == AF_INET6) {
                    memcpy(c->peer_addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
                    c->peer_family = AF_INET6;
                }
            }
        }
        if (c->peer_family != UINT8_MAX)
            s = inet_ntop(c->peer_family, c->peer_addr, tmp, sizeof tmp);
    }
    snprintf(buf, n, "%s", s ? s : "-");
}

void corio__http_respond_error(conn *c, int status)
{
    c->keep_alive = false;
    c->linger = true;
    c->xhlen = 0;
    c->is_head = false;
    const char *reason = corio_http_reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason);
    c->rstate = R_SENT;
    if (put_head(c, status, "text/plain", n, false) == 0 && corio__http_ob_reserve(c, (size_t)n))
        corio__http_ob_put(c, body, (size_t)n);
}

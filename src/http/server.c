/*
 * The HTTP/1.1 server (include/corio/http.h, "Server" section).
 *
 * It works at the operation level rather than through corio_stream: each
 * connection owns one fixed read buffer (max_head + 8 KiB) and one growable
 * output buffer, and its task runs every request's handler on its own
 * stack.  That is what keeps pipelining cheap: every request already
 * buffered is parsed and answered in place (the parser's strings point into
 * the read buffer, never copied), the responses pile up in the output
 * buffer, and one send goes out when the connection is about to wait for
 * more bytes, i.e. once per batch.
 *
 * Buffer layout while a handler runs: the head stays where it was parsed
 * (rbuf[rpos, rpos + head_len)), body bytes are consumed from body_pos on;
 * when more body bytes are needed the unconsumed ones are moved down to
 * just after the head, so the handler's strings stay valid and there is
 * always at least 4 KiB to receive into.
 *
 * Timeouts are deadlines pushed around single waits: the head deadline is
 * fixed at the first byte of a request (a trickling client gains nothing by
 * sending), the others are per wait (progress timeouts).
 *
 * Input.  On io_uring with multishot support each connection keeps one
 * multishot recv (rop) in the kernel for most of its life: bytes land in
 * buffers from the loop's provided-buffer ring, and the completion copies
 * them straight into the memory of the task waiting in conn_recv, or into a
 * "spill" buffer when the task is busy in a handler, and gives the ring
 * buffer back at once.  That saves a submission and a poll arming per
 * request.  Flow control: with SPILL_HIGH bytes spilled the multishot is
 * cancelled, and re-armed by the next wait that finds the spill empty.
 * Elsewhere (epoll, older kernels) every wait is one plain recv.
 *
 * Idle keep-alive connections hold no task and no buffer: once a batch is
 * flushed and nothing is buffered, the task gives the buffers back (to a
 * small per-server cache, so a busy server does not allocate per request),
 * arms a keep-alive timer and returns.  What waits in its place is the
 * multishot recv (its first bytes go into a fresh read buffer and spawn a
 * new task), or on epoll a POLLIN op (its completion spawns a task whose
 * first wait is a recv).  The timer or a server close cancels that op and
 * its last completion closes the connection.  About 500 bytes per idle
 * connection, plus the kernel's socket.
 *
 * Connections come from the accept tasks or from corio_http_server_serve_fd
 * (a server made by corio_http_server_new has no accept task at all); both
 * go through start_conn and are the same from then on.  Listening sockets
 * are opened by src/io/listen.c exactly as for corio_start_server (one
 * dual-stack socket for "all interfaces", else one per resolved address,
 * all on one port); each has its own accept task, and the connection cap
 * is shared by all of them.
 *
 * Shutdown: closing marks the server, cancels the accept tasks (each closes
 * its socket as it ends) and every connection that is between requests,
 * and waits (through the closer's task being woken by each exiting
 * connection and accept task) for the ones in a request.
 */
#include "../core/internal.h"
#include "../io/listen.h"
#include "corio/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#define BODY_SLACK 8192    /* read buffer beyond max_head: room for body bytes */
#define BODY_MIN_ROOM 4096 /* at least this much room after a head when its handler starts */
#define OUT_FLUSH_AT 65536 /* output buffered before a streaming handler is made to wait */
#define DIRECT_SEND_AT 16384 /* bodies this large are sent from the caller's memory */
#define LINGER_MS 1000     /* after an error answer: how long unread input is drained */
#define SPILL_HIGH 16384   /* unread bytes held before the multishot recv is paused: like
                              * the kernel socket buffer it stands in for, bounded per
                              * connection whatever the client sends */
#define BUF_CACHE 32       /* spare connection buffer sets a server keeps */
#define OBUF_KEEP 65536    /* output buffers larger than this are not kept */

typedef struct conn conn;

struct corio_http_response {
    conn *c;
};

enum { R_NONE = 0, R_SENT, R_STREAM, R_ENDED };
enum { B_NONE = 0, B_LENGTH, B_CHUNKED };

struct conn {
    corio_http_request req; /* the handler's request: body calls find the conn from it */
    corio_http_response resp;
    corio_http_server *srv;
    corio_task *task;
    corio__list link;
    int fd;
    bool idle_wait;  /* parked waiting for (more of) a request head: safe to cancel at close */
    bool parked;     /* idle between requests with no task: pop and ka_timer are armed */
    bool park_cancelled;
    bool keep_alive;
    bool linger;     /* close after an error answer: drain unread input first */
    bool is_head;
    bool continue_sent;
    uint8_t rstate;  /* R_* */
    uint8_t bmode;   /* B_* */
    bool raw_stream; /* streaming to a 1.0 client: no chunk framing */
    bool body_done;
    int body_err;
    char *rbuf;
    size_t rcap, rpos, rend;
    size_t head_len;
    size_t body_pos;           /* next body byte in rbuf */
    size_t pend_pos, pend_len; /* chunk data decoded but not handed out yet */
    uint64_t body_left;        /* Content-Length bytes not yet read from the socket or buffer */
    corio_http_chunked ch;
    char *body_mem;
    corio_http_header *hdrs;
    char *obuf;
    size_t olen, ocap;
    char *xh; /* extra response header lines */
    size_t xhlen, xhcap;
    int werr;
    /* The connection's background receive: on io_uring with multishot
     * support (multi) a multishot recv armed for most of the connection's
     * life; otherwise a POLLIN wait, armed only while parked. */
    corio__op rop;
    corio__timer ka_timer; /* keep-alive timeout while parked */
    bool multi;            /* input comes through the multishot recv in rop */
    bool marmed;           /* rop is in the kernel (its last completion has not come) */
    bool mflow;            /* rop cancelled because nobody reads: re-arm later */
    bool exiting;          /* conn_exit waits for rop's last completion to free c */
    bool reof;             /* the multishot saw EOF */
    int rerr;              /* ... or this error */
    corio_task *rwait;     /* task in multi_recv */
    char *rdst;            /* its memory; bytes arriving meanwhile go straight there */
    size_t rdst_cap, rdst_got;
    char *spill;           /* bytes that arrived with nowhere to go, in order */
    size_t spill_pos, spill_len, spill_cap;
};

/* A connection's buffers, kept by the server for the next connection that
 * needs them while it is between requests (saves four allocations per
 * keep-alive request, and the heap trimming they cause). */
typedef struct conn_bufs {
    char *rbuf;
    corio_http_header *hdrs;
    char *obuf;
    size_t ocap;
    char *xh;
    size_t xhcap;
} conn_bufs;

/* One listening socket and its accept task. */
typedef struct listener {
    corio_http_server *srv;
    corio_task *task; /* its accept task while that runs */
    int fd;           /* -1 once the accept task closed it */
    bool capped;      /* its accept task is parked at the connection cap */
} listener;

struct corio_http_server {
    corio_loop *loop;
    uint16_t port; /* shared by every listener */
    corio_http_handler handler;
    void *arg;
    corio_http_server_config cfg;
    unsigned nlisteners;
    unsigned nacceptors; /* accept tasks still running */
    bool closing;
    corio__list conns;
    unsigned nconns;
    corio_task *accept_waiter; /* the acceptor that connections closing wake at the cap */
    corio_task *closer;        /* task in corio_http_server_close */
    unsigned nbufs;            /* spare buffer sets in bufs */
    conn_bufs bufs[BUF_CACHE];
    listener ls[CORIO__MAX_LISTENERS];
};

/* ------------------------------------------------------------------ */
/* Date header: formatted once per wall-clock second                    */
/* ------------------------------------------------------------------ */

static __thread char date_buf[32];
static __thread uint64_t date_next_ns; /* monotonic time of the next wall second */

static const char *http_date(void)
{
    uint64_t now = corio_now_ns();
    if (CORIO__UNLIKELY(now >= date_next_ns || date_buf[0] == 0)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(date_buf, sizeof date_buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        /* the cached loop time may lag a little: refresh at the next
         * second boundary as seen from the fresh clock */
        date_next_ns = corio__clock_ns() + (1000000000ull - (uint64_t)ts.tv_nsec);
    }
    return date_buf;
}

/* ------------------------------------------------------------------ */
/* Socket I/O with per-wait deadlines                                   */
/* ------------------------------------------------------------------ */

static int flush_out(conn *c);

/* One plain recv through the backend (epoll, or io_uring without
 * multishot support). */
static ssize_t plain_recv(conn *c, void *buf, size_t n)
{
    corio__op op;
    memset(&op, 0, sizeof op);
    op.kind = CORIO__OP_RECV;
    op.fd = c->fd;
    op.buf = buf;
    op.len = n;
    op.off = -1;
    return corio__op_run(&op);
}

/* Keep n bytes that arrived while nobody could take them.  False when out
 * of memory. */
static bool spill_add(conn *c, const char *p, size_t n)
{
    if (c->spill_pos && c->spill_pos + c->spill_len + n > c->spill_cap) {
        memmove(c->spill, c->spill + c->spill_pos, c->spill_len);
        c->spill_pos = 0;
    }
    if (c->spill_len + n > c->spill_cap) {
        size_t cap = c->spill_cap ? c->spill_cap : 16384;
        while (cap < c->spill_len + n)
            cap *= 2;
        char *q = corio__realloc(c->spill, cap);
        if (!q)
            return false;
        c->spill = q;
        c->spill_cap = cap;
    }
    memcpy(c->spill + c->spill_pos + c->spill_len, p, n);
    c->spill_len += n;
    return true;
}

static void multi_done(corio__op *op);

/* Put the multishot recv in the kernel.  False if the backend refused it
 * (the connection then falls back to plain recvs). */
static bool multi_arm(conn *c)
{
    corio_loop *l = c->srv->loop;
    memset(&c->rop, 0, sizeof c->rop);
    c->rop.kind = CORIO__OP_RECV_MULTI;
    c->rop.fd = c->fd;
    c->rop.off = -1;
    c->rop.done = multi_done;
    if (corio__op_start(l, &c->rop))
        return false;
    c->marmed = true;
    c->mflow = false;
    return true;
}

static void multi_cancel(conn *c)
{
    if (c->marmed)
        corio__op_cancel(c->srv->loop, &c->rop);
}

static void rwait_interrupted(corio_task *t, int reason)
{
    conn *c = t->wait_obj;
    c->rwait = NULL;
    c->rdst = NULL; /* bytes arriving from now on are spilled */
    corio__wake(t, reason);
}

/* multi mode: the bytes spilled first, then the multishot's, then its end
 * (EOF, error); waits when there is nothing (arming the multishot again if
 * flow control or a dry buffer ring stopped it). */
static ssize_t multi_recv(conn *c, void *buf, size_t n)
{
    for (;;) {
        if (c->spill_len) {
            size_t k = n < c->spill_len ? n : c->spill_len;
            memcpy(buf, c->spill + c->spill_pos, k);
            c->spill_pos += k;
            c->spill_len -= k;
            if (!c->spill_len)
                c->spill_pos = 0;
            return (ssize_t)k;
        }
        if (c->rerr)
            return c->rerr;
        if (c->reof)
            return 0;
        int r = corio__check();
        if (r)
            return r;
        if (!c->marmed && !multi_arm(c)) {
            c->multi = false;
            return plain_recv(c, buf, n);
        }
        c->rdst = buf;
        c->rdst_cap = n;
        c->rdst_got = 0;
        c->rwait = corio__current_task();
        r = corio__suspend(rwait_interrupted, c, "recv", CORIO__NO_DEADLINE);
        c->rwait = NULL;
        c->rdst = NULL;
        if (c->rdst_got) /* the bytes are in buf: an interrupt surfaces at the next wait */
            return (ssize_t)c->rdst_got;
        if (r < 0)
            return r;
    }
}

/* Receive up to n bytes into buf, waiting at most timeout_ms (0: no
 * limit of our own).  Returns bytes, 0 at EOF or -errno. */
static ssize_t conn_recv(conn *c, void *buf, size_t n, uint64_t timeout_ms)
{
    if (c->multi && c->spill_len)
        return multi_recv(c, buf, n); /* no wait: no deadline to set up */
    corio_deadline d = timeout_ms ? corio_deadline_push(timeout_ms) : (corio_deadline){0};
    ssize_t r = c->multi ? multi_recv(c, buf, n) : plain_recv(c, buf, n);
    if (timeout_ms)
        corio_deadline_pop(d);
    return r;
}

/* Send every byte of iov[0..cnt) (the array is consumed), each wait
 * bounded by the write timeout.  Returns 0 or -errno (kept as werr). */
static int send_all(conn *c, struct iovec *iov, int cnt)
{
    if (c->werr)
        return c->werr;
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        op.fd = c->fd;
        op.off = -1;
        op.flags = MSG_NOSIGNAL;
        if (cnt == 1) {
            op.kind = CORIO__OP_SEND;
            op.buf = iov->iov_base;
            op.len = iov->iov_len;
        } else {
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)cnt;
            op.kind = CORIO__OP_SENDMSG;
            op.msg = &msg;
        }
        corio_deadline d = corio_deadline_push(c->srv->cfg.write_timeout_ms);
        int r = corio__op_run(&op);
        corio_deadline_pop(d);
        if (r < 0) {
            c->werr = r == -EAGAIN ? -ETIMEDOUT : r;
            return c->werr;
        }
        size_t done = (size_t)r;
        while (cnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static int flush_out(conn *c)
{
    if (c->olen == 0)
        return c->werr;
    struct iovec iov = {c->obuf, c->olen};
    int r = send_all(c, &iov, 1);
    c->olen = 0;
    return r;
}

/* ------------------------------------------------------------------ */
/* Output buffer                                                        */
/* ------------------------------------------------------------------ */

static bool ob_reserve(conn *c, size_t n)
{
    if (c->ocap - c->olen >= n)
        return true;
    size_t cap = c->ocap ? c->ocap : 4096;
    while (cap - c->olen < n)
        cap *= 2;
    char *p = corio__realloc(c->obuf, cap);
    if (!p)
        return false;
    c->obuf = p;
    c->ocap = cap;
    return true;
}

static inline void ob_put(conn *c, const void *p, size_t n)
{
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
}

static inline void ob_puts(conn *c, const char *s) { ob_put(c, s, strlen(s)); }

static void ob_putu(conn *c, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ob_put(c, tmp + i, sizeof tmp - (size_t)i);
}

static void ob_puthex(conn *c, uint64_t v)
{
    char tmp[20];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    ob_put(c, tmp + i, sizeof tmp - (size_t)i);
}

/* Append a response head.  len < 0: no Content-Length (chunked or raw
 * stream, as c's flags say). */
static int put_head(conn *c, int status, const char *ctype, int64_t len, bool chunked)
{
    const char *reason = corio_http_reason(status);
    const char *server = c->srv->cfg.server_header;
    const char *date = http_date();
    size_t need = 64 + strlen(reason) + (ctype ? strlen(ctype) + 16 : 0) + c->xhlen + strlen(server) + 160;
    if (!ob_reserve(c, need))
        return -ENOMEM;
    ob_puts(c, "HTTP/1.1 ");
    ob_putu(c, (uint64_t)status);
    ob_put(c, " ", 1);
    ob_puts(c, reason);
    ob_put(c, "\r\n", 2);
    if (ctype) {
        ob_puts(c, "Content-Type: ");
        ob_puts(c, ctype);
        ob_put(c, "\r\n", 2);
    }
    if (c->xhlen)
        ob_put(c, c->xh, c->xhlen);
    if (len >= 0) {
        ob_puts(c, "Content-Length: ");
        ob_putu(c, (uint64_t)len);
        ob_put(c, "\r\n", 2);
    }
    if (chunked)
        ob_puts(c, "Transfer-Encoding: chunked\r\n");
    ob_puts(c, "Date: ");
    ob_puts(c, date);
    ob_put(c, "\r\n", 2);
    if (*server) {
        ob_puts(c, "Server: ");
        ob_puts(c, server);
        ob_put(c, "\r\n", 2);
    }
    if (!c->keep_alive)
        ob_puts(c, "Connection: close\r\n");
    else if (c->req.version_minor == 0)
        ob_puts(c, "Connection: keep-alive\r\n");
    ob_put(c, "\r\n", 2);
    return 0;
}

/* Before a head goes out: decide whether the connection survives this
 * request, so that the head can say so. */
static void settle_keep_alive(conn *c)
{
    if (c->srv->closing || c->body_err)
        c->keep_alive = false;
    if (!c->body_done && c->bmode == B_LENGTH) {
        uint64_t buffered = c->rend - c->body_pos;
        if (c->req.expect_continue && !c->continue_sent)
            c->keep_alive = false; /* the client may or may not send the body now */
        else if (c->body_left > buffered && c->body_left - buffered > c->srv->cfg.max_drain)
            c->keep_alive = false; /* too much to drain */
    } else if (!c->body_done && c->bmode == B_CHUNKED && c->req.expect_continue && !c->continue_sent) {
        c->keep_alive = false;
    }
}

/* ------------------------------------------------------------------ */
/* Request body                                                         */
/* ------------------------------------------------------------------ */

static inline conn *req_conn(corio_http_request *req) { return CORIO__CONTAINER_OF(req, conn, req); }

/* Make room at rbuf's end for more body bytes by moving the unconsumed
 * ones (pending chunk data first) down to just after the head. */
static void body_compact(conn *c)
{
    size_t base = c->rpos + c->head_len;
    size_t from = c->pend_len ? c->pend_pos : c->body_pos;
    if (from > base) {
        memmove(c->rbuf + base, c->rbuf + from, c->rend - from);
        size_t shift = from - base;
        if (c->pend_len)
            c->pend_pos -= shift;
        c->body_pos -= shift;
        c->rend -= shift;
    }
}

/* Receive more body bytes into rbuf.  Returns > 0, or the error to keep. */
static int body_fill(conn *c)
{
    if (c->olen && flush_out(c) < 0)
        return c->werr;
    if (c->rend == c->rcap)
        body_compact(c);
    ssize_t r = conn_recv(c, c->rbuf + c->rend, c->rcap - c->rend, c->srv->cfg.body_timeout_ms);
    if (r == 0)
        return -CORIO_EINCOMPLETE;
    if (r < 0)
        return (int)r;
    c->rend += (size_t)r;
    return (int)r;
}

static int send_continue(conn *c)
{
    c->continue_sent = true;
    if (!ob_reserve(c, 32))
        return -ENOMEM;
    ob_puts(c, "HTTP/1.1 100 Continue\r\n\r\n");
    return flush_out(c);
}

static ssize_t body_read(conn *c, char *buf, size_t n)
{
    if (c->body_err)
        return c->body_err;
    if (c->body_done || n == 0)
        return 0;
    if (c->req.expect_continue && !c->continue_sent && c->rstate == R_NONE) {
        int r = send_continue(c);
        if (r < 0)
            return c->body_err = r;
    }
    if (c->bmode == B_LENGTH) {
        size_t avail = c->rend - c->body_pos;
        size_t k = n;
        if (k > c->body_left)
            k = (size_t)c->body_left;
        if (avail) {
            if (k > avail)
                k = avail;
            memcpy(buf, c->rbuf + c->body_pos, k);
            c->body_pos += k;
        } else {
            /* nothing buffered: straight into the caller's memory, never
             * beyond the body (the next request stays in the socket) */
            if (c->olen && flush_out(c) < 0)
                return c->body_err = c->werr;
            ssize_t r = conn_recv(c, buf, k, c->srv->cfg.body_timeout_ms);
            if (r <= 0)
                return c->body_err = r == 0 ? -CORIO_EINCOMPLETE : (int)r;
            k = (size_t)r;
        }
        c->body_left -= k;
        if (c->body_left == 0)
            c->body_done = true;
        return (ssize_t)k;
    }
    for (;;) {
        if (c->pend_len) {
            size_t k = n < c->pend_len ? n : c->pend_len;
            memcpy(buf, c->rbuf + c->pend_pos, k);
            c->pend_pos += k;
            c->pend_len -= k;
            return (ssize_t)k;
        }
        if (corio_http_chunked_done(&c->ch)) {
            c->body_done = true;
            return 0;
        }
        if (c->body_pos < c->rend) {
            const char *d;
            size_t dl;
            ssize_t u = corio_http_chunked_decode(&c->ch, c->rbuf + c->body_pos, c->rend - c->body_pos, &d, &dl);
            if (u < 0)
                return c->body_err = u == -413 ? -EFBIG : -EBADMSG;
            c->body_pos += (size_t)u;
            if (dl) {
                c->pend_pos = (size_t)(d - c->rbuf);
                c->pend_len = dl;
            }
            if (dl || corio_http_chunked_done(&c->ch))
                continue;
            if (u > 0 && c->body_pos < c->rend)
                continue;
        }
        int r = body_fill(c);
        if (r < 0)
            return c->body_err = r;
    }
}

ssize_t corio_http_body_read(corio_http_request *req, void *buf, size_t n)
{
    return body_read(req_conn(req), buf, n);
}

int corio_http_read_body(corio_http_request *req, size_t cap, const char **ptr, size_t *len)
{
    conn *c = req_conn(req);
    size_t size = 0, mcap = c->bmode == B_LENGTH && c->body_left < cap ? (size_t)c->body_left + 1 : 4096;
    if (mcap > cap + 1)
        mcap = cap + 1;
    corio__free(c->body_mem);
    c->body_mem = corio__malloc(mcap);
    if (!c->body_mem)
        return -ENOMEM;
    for (;;) {
        if (c->body_done)
            break;
        if (size + 1 >= mcap) {
            if (size >= cap + 1 || mcap >= cap + 1) {
                if (size > cap)
                    return -EFBIG;
                /* exactly cap bytes so far: see whether the body ends here */
                char probe;
                ssize_t r = body_read(c, &probe, 1);
                if (r < 0)
                    return (int)r;
                if (r > 0)
                    return -EFBIG;
                break;
            }
            size_t ncap = mcap * 2 > cap + 1 ? cap + 1 : mcap * 2;
            char *p = corio__realloc(c->body_mem, ncap);
            if (!p)
                return -ENOMEM;
            c->body_mem = p;
            mcap = ncap;
        }
        ssize_t r = body_read(c, c->body_mem + size, mcap - 1 - size);
        if (r < 0)
            return (int)r;
        if (r == 0)
            break;
        size += (size_t)r;
    }
    c->body_mem[size] = 0;
    *ptr = c->body_mem;
    *len = size;
    return 0;
}

/* After the handler: read and drop what it left of the body, within
 * max_drain.  Returns true if the connection can go on. */
static bool drain_body(conn *c)
{
    if (c->body_done)
        return true;
    if (c->body_err || (c->req.expect_continue && !c->continue_sent))
        return false;
    if (c->bmode == B_LENGTH) {
        uint64_t buffered = c->rend - c->body_pos;
        if (c->body_left > buffered && c->body_left - buffered > c->srv->cfg.max_drain)
            return false;
    }
    /* max_drain bounds what must still come from the socket, as
     * settle_keep_alive judged when the head went out (promising
     * keep-alive): the bytes already buffered cost nothing to drop */
    size_t allowance = c->srv->cfg.max_drain + (c->rend - c->body_pos) + c->pend_len;
    char scratch[2048];
    size_t dropped = 0;
    for (;;) {
        ssize_t r = body_read(c, scratch, sizeof scratch);
        if (r < 0)
            return false;
        if (r == 0)
            return true;
        dropped += (size_t)r;
        if (dropped > allowance)
            return false;
    }
}

/* ------------------------------------------------------------------ */
/* Response                                                             */
/* ------------------------------------------------------------------ */

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

/* The common start of a response whose length is known: check and claim
 * the response, settle keep-alive, queue the head.  Returns 1 when the
 * head was all there is to send (HEAD, 204/304, an empty body; *done_r
 * holds the call's result), 0 when the body follows, or -errno. */
static int begin_sized(conn *c, int status, const char *content_type, uint64_t len, int *done_r)
{
    if (c->rstate != R_NONE)
        return -EALREADY;
    if (status < 200 || status > 999)
        return -EINVAL;
    c->rstate = R_SENT;
    settle_keep_alive(c);
    bool no_body = status == 204 || status == 304;
    int r = put_head(c, status, content_type, no_body ? -1 : (int64_t)len, false);
    if (r < 0)
        return r;
    if (no_body || c->is_head || len == 0) {
        *done_r = c->olen > OUT_FLUSH_AT ? flush_out(c) : c->werr;
        return 1;
    }
    return 0;
}

int corio_http_respond(corio_http_response *resp, int status, const char *content_type, const void *body,
                       size_t len)
{
    conn *c = resp->c;
    int done_r;
    int r = begin_sized(c, status, content_type, len, &done_r);
    if (r != 0)
        return r < 0 ? r : done_r;
    if (len >= DIRECT_SEND_AT) {
        struct iovec iov[2] = {{c->obuf, c->olen}, {(void *)body, len}};
        c->olen = 0;
        return send_all(c, iov, 2);
    }
    if (!ob_reserve(c, len))
        return -ENOMEM;
    ob_put(c, body, len);
    return c->olen > OUT_FLUSH_AT ? flush_out(c) : c->werr;
}

int corio_http_response_begin(corio_http_response *resp, int status, const char *content_type)
{
    conn *c = resp->c;
    if (c->rstate != R_NONE)
        return -EALREADY;
    if (status < 200 || status > 999)
        return -EINVAL;
    c->rstate = R_STREAM;
    settle_keep_alive(c);
    c->raw_stream = c->req.version_minor == 0;
    if (c->raw_stream)
        c->keep_alive = false; /* the end of the body is the end of the connection */
    int r = put_head(c, status, content_type, -1, !c->raw_stream);
    return r < 0 ? r : c->werr;
}

int corio_http_response_write(corio_http_response *resp, const void *data, size_t len)
{
    conn *c = resp->c;
    if (c->rstate != R_STREAM)
        return -EINVAL;
    if (len == 0 || c->is_head)
        return c->werr;
    if (!ob_reserve(c, len + 24))
        return -ENOMEM;
    if (!c->raw_stream) {
        ob_puthex(c, len);
        ob_put(c, "\r\n", 2);
    }
    ob_put(c, data, len);
    if (!c->raw_stream)
        ob_put(c, "\r\n", 2);
    return c->olen > OUT_FLUSH_AT ? flush_out(c) : c->werr;
}

int corio_http_response_end(corio_http_response *resp)
{
    conn *c = resp->c;
    if (c->rstate != R_STREAM)
        return -EINVAL;
    c->rstate = R_ENDED;
    if (c->is_head || c->raw_stream)
        return c->werr;
    if (!ob_reserve(c, 8))
        return -ENOMEM;
    ob_puts(c, "0\r\n\r\n");
    return c->olen > OUT_FLUSH_AT ? flush_out(c) : c->werr;
}

/* Zero-copy file bodies: sendfile(2) straight to the (non-blocking)
 * socket, and a POLLOUT wait whenever the socket buffer is full. */
int corio_http_respond_file(corio_http_response *resp, int status, const char *content_type, int fd,
                            int64_t off, uint64_t len)
{
    conn *c = resp->c;
    if (off < 0)
        return -EINVAL;
    int done_r;
    int r = begin_sized(c, status, content_type, len, &done_r);
    if (r != 0)
        return r < 0 ? r : done_r;
    if ((r = flush_out(c)) < 0)
        return r;
    off_t pos = (off_t)off;
    size_t since_yield = 0;
    while (len > 0) {
        size_t n = len > (1u << 20) ? (1u << 20) : (size_t)len;
        ssize_t w = sendfile(c->fd, fd, &pos, n);
        if (w > 0) {
            len -= (uint64_t)w;
            /* a fast client never makes sendfile wait: let the other
             * connections have a turn every few MiB all the same */
            if ((since_yield += (size_t)w) >= (4u << 20) && len > 0) {
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
            c->keep_alive = false;
            c->werr = -EIO;
            return c->werr;
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
        op.fd = c->fd;
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

void corio_http_request_peer(const corio_http_request *req, char *buf, size_t n)
{
    if (n == 0)
        return;
    conn *c = req_conn((corio_http_request *)req);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    const char *s = NULL;
    char tmp[INET6_ADDRSTRLEN];
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            s = inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, tmp, sizeof tmp);
        else if (ss.ss_family == AF_INET6)
            s = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, tmp, sizeof tmp);
    }
    snprintf(buf, n, "%s", s ? s : "-");
}

/* An answer of the server's own (errors, timeouts); always closes. */
static void respond_error(conn *c, int status)
{
    c->keep_alive = false;
    c->linger = true;
    c->xhlen = 0;
    c->is_head = false;
    const char *reason = corio_http_reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason);
    c->rstate = R_SENT;
    if (put_head(c, status, "text/plain", n, false) == 0 && ob_reserve(c, (size_t)n))
        ob_put(c, body, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* Connection                                                           */
/* ------------------------------------------------------------------ */

static const corio_http_limits *limits(const corio_http_server *srv) { return &srv->cfg.limits; }

/* Run the handler for the head of head_len bytes at rbuf + rpos.  Returns
 * true if the connection goes on with the next request. */
static bool serve_one(conn *c, size_t head_len)
{
    corio_http_server *srv = c->srv;
    c->head_len = head_len;
    c->body_pos = c->rpos + head_len;
    c->pend_len = 0;
    c->body_err = 0;
    c->body_done = false;
    c->continue_sent = false;
    c->rstate = R_NONE;
    c->xhlen = 0;
    if (c->req.chunked) {
        c->bmode = B_CHUNKED;
        corio_http_chunked_init(&c->ch, srv->cfg.limits.max_body);
    } else if (c->req.content_length > 0) {
        c->bmode = B_LENGTH;
        c->body_left = c->req.content_length;
    } else {
        c->bmode = B_NONE;
        c->body_done = true;
    }
    if (c->bmode != B_NONE && c->rcap - c->body_pos < BODY_MIN_ROOM && c->rpos > 0) {
        /* move the request to the buffer's start, re-parsing its head so
         * the strings point at the new place (cheap, and exact) */
        memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
        c->rend -= c->rpos;
        c->rpos = 0;
        corio_http_request_init(&c->req, c->hdrs, srv->cfg.limits.max_headers);
        corio_http_parse_request(&c->req, c->rbuf, c->rend, limits(srv));
        c->body_pos = head_len;
    }
    c->keep_alive = c->req.keep_alive && !srv->closing;
    c->is_head = c->req.method.len == 4 && memcmp(c->req.method.ptr, "HEAD", 4) == 0;

    srv->handler(&c->req, &c->resp, srv->arg);

    corio__free(c->body_mem);
    c->body_mem = NULL;
    if (c->rstate == R_NONE) {
        if (c->body_err == -EFBIG)
            respond_error(c, 413);
        else if (c->body_err == -EBADMSG)
            respond_error(c, 400);
        else if (c->body_err == -CORIO_EDEADLINE)
            respond_error(c, 408);
        else if (c->body_err)
            c->keep_alive = false; /* the client is gone or broken: nothing to answer */
        else {
            settle_keep_alive(c);
            corio_http_respond(&c->resp, 500, "text/plain", "500 Internal Server Error\n", 26);
        }
    } else if (c->rstate == R_STREAM) {
        c->keep_alive = false;
    }
    if (c->keep_alive && !drain_body(c))
        c->keep_alive = false;
    if (c->keep_alive)
        c->rpos = c->body_pos; /* the next request, if any, starts after the body */
    return c->keep_alive && !c->werr && !corio_cancelled();
}

/* After an error answer: stop sending, then read and drop what the client
 * still sends for a moment, so that closing does not reset the connection
 * and destroy the answer before the client read it. */
static void linger_close(conn *c)
{
    shutdown(c->fd, SHUT_WR);
    char scratch[4096];
    size_t total = 0;
    corio_deadline d = corio_deadline_push(LINGER_MS);
    while (total < 65536) {
        ssize_t r = conn_recv(c, scratch, sizeof scratch, 0);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
    corio_deadline_pop(d);
}

/* ------------------------------------------------------------------ */
/* Buffers and parking                                                  */
/* ------------------------------------------------------------------ */

/* Give c a read buffer and header array (a kept set if the server has
 * one, with its output buffers).  False when out of memory. */
static bool bufs_get(conn *c)
{
    corio_http_server *srv = c->srv;
    if (srv->nbufs) {
        conn_bufs *b = &srv->bufs[--srv->nbufs];
        c->rbuf = b->rbuf;
        c->hdrs = b->hdrs;
        c->obuf = b->obuf;
        c->ocap = b->ocap;
        c->xh = b->xh;
        c->xhcap = b->xhcap;
        return true;
    }
    c->rbuf = corio__malloc(c->rcap);
    c->hdrs = corio__malloc(sizeof(corio_http_header) * srv->cfg.limits.max_headers);
    if (c->rbuf && c->hdrs)
        return true;
    corio__free(c->rbuf);
    corio__free(c->hdrs);
    c->rbuf = NULL;
    c->hdrs = NULL;
    return false;
}

/* Take c's buffers away: kept for the next connection that needs a set
 * when the server has room, else freed. */
static void bufs_put(conn *c)
{
    corio_http_server *srv = c->srv;
    if (c->ocap > OBUF_KEEP) {
        corio__free(c->obuf);
        c->obuf = NULL;
        c->ocap = 0;
    }
    if (c->rbuf && c->hdrs && srv->nbufs < BUF_CACHE && !srv->closing) {
        srv->bufs[srv->nbufs++] = (conn_bufs){c->rbuf, c->hdrs, c->obuf, c->ocap, c->xh, c->xhcap};
    } else {
        corio__free(c->rbuf);
        corio__free(c->hdrs);
        corio__free(c->obuf);
        corio__free(c->xh);
    }
    c->rbuf = c->obuf = c->xh = NULL;
    c->hdrs = NULL;
    c->ocap = c->xhcap = 0;
    c->rpos = c->rend = c->olen = 0;
    corio__free(c->spill);
    c->spill = NULL;
    c->spill_cap = c->spill_pos = c->spill_len = 0;
}

static void bufs_free_kept(corio_http_server *srv)
{
    while (srv->nbufs) {
        conn_bufs *b = &srv->bufs[--srv->nbufs];
        corio__free(b->rbuf);
        corio__free(b->hdrs);
        corio__free(b->obuf);
        corio__free(b->xh);
    }
}

/* Give the task up while the connection waits for its next request: the
 * buffers go and the background receive (rop) stands in for the task,
 * with a keep-alive timer; data arriving spawns a new one.  Called from
 * the connection's task with nothing buffered either way.  Returns true if
 * parked (the task must return at once, without touching c), false if data
 * is already there or parking failed (the task carries on as if nothing
 * happened). */
static void park_done(corio__op *op);
static void park_timeout(corio__timer *t);
static void *conn_main(void *arg);
static void conn_exit(conn *c);

static bool park(conn *c)
{
    corio_http_server *srv = c->srv;
    corio_loop *l = srv->loop;
    if (corio_cancelled())
        return false;
    if (c->multi && (c->spill_len || c->reof || c->rerr || (!c->marmed && !multi_arm(c))))
        return false;
    corio__timer_init(&c->ka_timer, park_timeout);
    if (corio__timer_arm(l, &c->ka_timer, corio_now_ns() + (uint64_t)srv->cfg.keepalive_timeout_ms * 1000000u) < 0)
        return false;
    if (!c->multi) {
        memset(&c->rop, 0, sizeof c->rop);
        c->rop.kind = CORIO__OP_POLL;
        c->rop.fd = c->fd;
        c->rop.flags = POLLIN;
        c->rop.off = -1;
        c->rop.done = park_done;
        if (corio__op_start(l, &c->rop)) {
            /* readable already (or an error the recv will report) */
            corio__timer_disarm(l, &c->ka_timer);
            return false;
        }
    }
    c->parked = true;
    c->park_cancelled = false;
    c->task = NULL;
    bufs_put(c);
    return true;
}

/* End a parked connection's wait early (timeout, server close); rop's
 * last completion then closes it. */
static void unpark_cancel(conn *c)
{
    if (!c->parked || c->park_cancelled)
        return;
    c->park_cancelled = true;
    corio_loop *l = c->srv->loop;
    corio__timer_disarm(l, &c->ka_timer);
    if (c->multi) {
        multi_cancel(c);
    } else {
        corio__op_cancel(l, &c->rop);
    }
}

static void park_timeout(corio__timer *t)
{
    conn *c = CORIO__CONTAINER_OF(t, conn, ka_timer);
    unpark_cancel(c);
}

/* Input arrived for a parked connection: a task takes it up again (loop
 * context). */
static void unpark(conn *c)
{
    corio_http_server *srv = c->srv;
    corio__timer_disarm(srv->loop, &c->ka_timer);
    c->parked = false;
    if (srv->closing) {
        conn_exit(c);
        return;
    }
    c->task = corio__spawn(srv->loop, "http-conn", srv->cfg.stack_size, conn_main, c);
    if (!c->task) {
        conn_exit(c);
        return;
    }
    corio_detach(c->task);
}

/* The parked connection's poll completed (loop context; not multi). */
static void park_done(corio__op *op)
{
    conn *c = CORIO__CONTAINER_OF(op, conn, rop);
    if (c->park_cancelled || op->res < 0) {
        corio__timer_disarm(c->srv->loop, &c->ka_timer);
        c->parked = false;
        conn_exit(c);
        return;
    }
    unpark(c);
}

/* Every completion of a connection's multishot recv (loop context).  The
 * bytes go, in order of preference, into a parked connection's fresh read
 * buffer, into the memory of the task waiting in multi_recv, or to the
 * spill; the ring buffer is given back at once, so no connection pins ring
 * memory. */
static void multi_done(corio__op *op)
{
    conn *c = CORIO__CONTAINER_OF(op, conn, rop);
    corio_loop *l = c->srv->loop;
    int res = op->res;
    bool arrived = false;
    if (op->buf_id != CORIO__NO_BUF) {
        if (res > 0 && !c->exiting && !(c->parked && c->park_cancelled)) {
            const char *p = corio__buf(l, op->buf_id);
            size_t n = (size_t)res;
            if (c->parked && !c->rbuf) {
                if (bufs_get(c)) {
                    size_t k = n < c->rcap ? n : c->rcap;
                    memcpy(c->rbuf, p, k);
                    c->rend = k;
                    p += k;
                    n -= k;
                    arrived = true;
                } else {
                    c->rerr = -ENOMEM;
                    n = 0;
                }
            } else if (c->rdst && !c->spill_len && c->rdst_got < c->rdst_cap) {
                size_t k = c->rdst_cap - c->rdst_got < n ? c->rdst_cap - c->rdst_got : n;
                memcpy(c->rdst + c->rdst_got, p, k);
                c->rdst_got += k;
                p += k;
                n -= k;
            }
            if (n && !spill_add(c, p, n) && !c->rerr)
                c->rerr = -ENOMEM;
        }
        corio__buf_put(l, op->buf_id);
    }
    if (res == 0)
        c->reof = true;
    else if (res < 0 && res != -ENOBUFS && !(res == -ECANCELED && c->mflow) && !c->rerr)
        c->rerr = res; /* -ECANCELED here: somebody else (the loop ending) cancelled it */
    if (!op->more) {
        c->marmed = false;
        if (c->exiting) {
            conn_exit(c);
            return;
        }
    } else if (!c->mflow && c->spill_len >= SPILL_HIGH) {
        c->mflow = true; /* nobody reads: stop taking data until the spill drains */
        multi_cancel(c);
    }
    if (c->parked) {
        if (c->park_cancelled) {
            if (!c->marmed) {
                c->parked = false;
                conn_exit(c);
            }
        } else if (arrived) {
            unpark(c);
        } else if (c->reof || c->rerr || (!c->marmed && !multi_arm(c))) {
            /* closed, broken, or stopped (flow control, a dry ring) and
             * not to be started again */
            corio__timer_disarm(l, &c->ka_timer);
            c->parked = false;
            conn_exit(c);
        }
        return;
    }
    if (c->rwait)
        corio__wake(c->rwait, 0);
}

/* The connection is over (from its task, or from a completion while it is
 * parked).  With the multishot still in the kernel the struct must stay
 * until its last completion, which calls this again. */
static void conn_exit(conn *c)
{
    corio_http_server *srv = c->srv;
    c->task = NULL;
    if (!c->exiting) {
        c->exiting = true;
        corio__list_remove(&c->link); /* no longer one to cancel; still counted */
    }
    if (c->marmed) {
        multi_cancel(c);
        return;
    }
    srv->nconns--;
    corio__close_fd(srv->loop, c->fd);
    bufs_put(c);
    corio__free(c->body_mem);
    corio__free(c);
    if (srv->accept_waiter)
        corio__wake(srv->accept_waiter, 0);
    if (srv->closer)
        corio__wake(srv->closer, 0);
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    corio_http_server *srv = c->srv;
    const corio_http_limits *lim = limits(srv);
    bool parsing = false;
    bool woken = !c->rbuf; /* woken by the poll: its first wait is a recv, data is there */
    if (woken && !bufs_get(c)) {
        conn_exit(c);
        return NULL;
    }
    uint64_t head_deadline = 0;
    for (;;) {
        if (c->rend > c->rpos) {
            if (!parsing) {
                parsing = true;
                head_deadline = corio_now_ns() + (uint64_t)srv->cfg.head_timeout_ms * 1000000u;
                corio_http_request_init(&c->req, c->hdrs, srv->cfg.limits.max_headers);
            }
            ssize_t h = corio_http_parse_request(&c->req, c->rbuf + c->rpos, c->rend - c->rpos, lim);
            if (h < 0) {
                respond_error(c, (int)-h);
                break;
            }
            if (h > 0) {
                parsing = false;
                if (!serve_one(c, (size_t)h))
                    break;
                continue;
            }
        }
        if (srv->closing || corio_cancelled())
            break;
        if (c->olen && flush_out(c) < 0)
            break;
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
            c->rend -= c->rpos;
            c->rpos = 0;
        }
        if (!parsing && c->rend == 0 && !woken && park(c))
            return NULL; /* the connection lives on without this task */
        uint64_t timeout_ms;
        if (parsing) {
            uint64_t now = corio_now_ns();
            if (now >= head_deadline) {
                respond_error(c, 408);
                break;
            }
            timeout_ms = (head_deadline - now + 999999) / 1000000;
        } else {
            timeout_ms = srv->cfg.keepalive_timeout_ms;
        }
        c->idle_wait = true;
        ssize_t r = conn_recv(c, c->rbuf + c->rend, c->rcap - c->rend, timeout_ms);
        c->idle_wait = false;
        woken = false;
        if (srv->closing)
            break; /* a request that arrives as we close is not started: the client may retry it */
        if (r == -CORIO_EDEADLINE && parsing && !corio_deadline_expired()) {
            respond_error(c, 408);
            break;
        }
        if (r <= 0)
            break;
        c->rend += (size_t)r;
    }
    if (c->olen && !corio_cancelled())
        flush_out(c);
    if (c->linger && !c->werr && !corio_cancelled())
        linger_close(c);
    conn_exit(c);
    return NULL;
}

/* Set up a connection on fd (connected, non-blocking) and spawn its task.
 * Returns 0 (fd is the connection's now) or -ENOMEM (fd left to the
 * caller). */
static int start_conn(corio_http_server *srv, int fd)
{
    conn *c = corio__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->srv = srv;
    c->fd = fd;
    c->resp.c = c;
    c->rcap = srv->cfg.limits.max_head + BODY_SLACK;
    c->multi = corio__loop_can(srv->loop, CORIO__CAP_MULTISHOT) && corio__bufring_get(srv->loop) == 0;
    if (!bufs_get(c))
        goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails harmlessly on non-TCP fds */
    c->task = corio_spawn_named("http-conn", srv->cfg.stack_size, conn_main, c);
    if (!c->task)
        goto fail;
    corio__list_push_back(&srv->conns, &c->link);
    srv->nconns++;
    corio_detach(c->task);
    return 0;
fail:
    bufs_put(c);
    corio__free(c);
    return -ENOMEM;
}

int corio_http_server_serve_fd(corio_http_server *srv, int fd)
{
    if (!srv || !corio_current())
        return -EPERM;
    if (srv->closing)
        return -ESHUTDOWN;
    if (srv->nconns >= srv->cfg.max_connections)
        return -EAGAIN;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    /* the epoll backend and sendfile both count on a non-blocking fd */
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return start_conn(srv, fd);
}

/* ------------------------------------------------------------------ */
/* Listening                                                            */
/* ------------------------------------------------------------------ */

static void cancel_conns(corio_http_server *srv, bool all);

/* Park an accept task at the connection cap until a connection closes.
 * conn_exit wakes only srv->accept_waiter, so with several listeners one
 * accept task takes that role and the others park with `capped` set;
 * whichever resumes first wakes the rest to look again (one of them then
 * takes the role if the server is still at the cap).  Returns 0 (look
 * again), or -ECANCELED / -CORIO_EDEADLINE: this accept task stops. */
static int wait_at_cap(listener *ls)
{
    corio_http_server *srv = ls->srv;
    int r = corio__check();
    if (r < 0)
        return r;
    corio_task *me = corio_current();
    if (!srv->accept_waiter)
        srv->accept_waiter = me;
    ls->capped = true;
    r = corio__suspend(NULL, srv, "http accept (connection cap)", CORIO__NO_DEADLINE);
    ls->capped = false;
    if (srv->accept_waiter == me)
        srv->accept_waiter = NULL;
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].capped)
            corio__wake(srv->ls[i].task, 0);
    return r;
}

/* One listener's accept task: accept until the server closes, leaving new
 * connections in the backlog at the cap and pausing after EMFILE.  Closes
 * its socket when it ends. */
static void *accept_main(void *arg)
{
    listener *ls = arg;
    corio_http_server *srv = ls->srv;
    while (!srv->closing) {
        if (srv->nconns >= srv->cfg.max_connections) {
            /* at the cap: leave new connections in the backlog until one
             * of ours closes */
            if (wait_at_cap(ls) < 0)
                break;
            continue;
        }
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_ACCEPT;
        op.fd = ls->fd;
        op.off = -1;
        int r = corio__op_run(&op);
        if (r >= 0) {
            /* another listener may have filled the last place while this
             * accept was pending: hold the connection until one frees */
            int w = 0;
            while (!srv->closing && srv->nconns >= srv->cfg.max_connections && (w = wait_at_cap(ls)) == 0)
                ;
            if (srv->closing || w < 0 || start_conn(srv, r) < 0)
                corio__close_fd(srv->loop, r);
            if (w < 0)
                break;
        } else {
            int kind = corio__accept_error(r);
            if (kind == CORIO__ACCEPT_STOP)
                break;
            if (kind == CORIO__ACCEPT_PAUSE && corio_sleep_ms(CORIO__ACCEPT_PAUSE_MS) < 0)
                break;
            if (kind == CORIO__ACCEPT_BROKEN) {
                fprintf(stderr, "corio http: accept failed: %s; this listener accepts no more connections\n",
                        corio_strerror(r));
                break;
            }
        }
    }
    corio__close_fd(srv->loop, ls->fd);
    ls->fd = -1;
    ls->task = NULL;
    srv->nacceptors--;
    if (srv->nacceptors == 0 && !srv->closing) /* the loop is ending without a close: let parked connections go */
        cancel_conns(srv, false);
    if (srv->closer)
        corio__wake(srv->closer, 0);
    return NULL;
}

int corio_http_server_new(corio_http_handler handler, void *arg, const corio_http_server_config *cfg,
                          corio_http_server **out)
{
    corio_loop *l = corio__loop();
    if (!l || !corio_current())
        return -EPERM;
    if (!handler || !out)
        return -EINVAL;
    corio_http_server *srv = corio__calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    if (cfg)
        srv->cfg = *cfg;
    corio_http_server_config *c = &srv->cfg;
    if (!c->limits.max_head)
        c->limits.max_head = CORIO_HTTP_DEFAULT_MAX_HEAD;
    if (!c->limits.max_target)
        c->limits.max_target = CORIO_HTTP_DEFAULT_MAX_TARGET;
    if (!c->limits.max_headers)
        c->limits.max_headers = CORIO_HTTP_DEFAULT_MAX_HEADERS;
    if (!c->limits.max_body)
        c->limits.max_body = CORIO_HTTP_DEFAULT_MAX_BODY;
    if (!c->max_connections)
        c->max_connections = 10000;
    if (!c->head_timeout_ms)
        c->head_timeout_ms = 10000;
    if (!c->body_timeout_ms)
        c->body_timeout_ms = 30000;
    if (!c->write_timeout_ms)
        c->write_timeout_ms = 30000;
    if (!c->keepalive_timeout_ms)
        c->keepalive_timeout_ms = 15000;
    if (!c->max_drain)
        c->max_drain = 65536;
    if (!c->backlog)
        c->backlog = 4096;
    if (!c->server_header)
        c->server_header = "corio";
    srv->loop = l;
    srv->handler = handler;
    srv->arg = arg;
    corio__list_init(&srv->conns);
    *out = srv;
    return 0;
}

int corio_http_server_start(const char *host, uint16_t port, corio_http_handler handler, void *arg,
                            const corio_http_server_config *cfg, corio_http_server **out)
{
    corio_http_server *srv;
    int r = corio_http_server_new(handler, arg, cfg, &srv);
    if (r < 0)
        return r;
    int fds[CORIO__MAX_LISTENERS];
    corio__listen_opts lo = {.backlog = srv->cfg.backlog};
    int n = corio__listen_all(host, port, &lo, fds, CORIO__MAX_LISTENERS);
    if (n < 0) {
        corio__free(srv);
        return n;
    }
    srv->port = corio__fd_port(fds[0]);
    srv->nlisteners = (unsigned)n;
    for (int i = 0; i < n; i++) {
        srv->ls[i].srv = srv;
        srv->ls[i].fd = fds[i];
    }
    for (int i = 0; i < n; i++) {
        corio_task *t = corio_spawn_named("http-accept", 0, accept_main, &srv->ls[i]);
        if (!t) {
            /* the running accept tasks close their own sockets */
            for (int j = i; j < n; j++) {
                close(fds[j]);
                srv->ls[j].fd = -1;
            }
            (void)corio_http_server_close(srv, 0);
            return -ENOMEM;
        }
        corio_detach(t);
        srv->ls[i].task = t;
        srv->nacceptors++;
    }
    *out = srv;
    return 0;
}

uint16_t corio_http_server_port(const corio_http_server *srv) { return srv->port; }

unsigned corio_http_server_connections(const corio_http_server *srv) { return srv->nconns; }

/* Cancel the connections waiting for a request (all == false), or every
 * one.  The others see `closing` once their current request is answered. */
static void cancel_conns(corio_http_server *srv, bool all)
{
    for (corio__list *n = srv->conns.next; n != &srv->conns; n = n->next) {
        conn *c = CORIO__CONTAINER_OF(n, conn, link);
        if (c->parked)
            unpark_cancel(c);
        else if (all || c->idle_wait)
            corio_cancel(c->task);
    }
}

int corio_http_server_close(corio_http_server *srv, uint64_t grace_ms)
{
    int ret = corio__check();
    srv->closing = true;
    srv->closer = corio_current();
    for (unsigned i = 0; i < srv->nlisteners; i++)
        if (srv->ls[i].task)
            corio_cancel(srv->ls[i].task);
    cancel_conns(srv, false);
    uint64_t end = corio_now_ns() + grace_ms * 1000000u;
    while (ret == 0 && (srv->nconns > 0 || srv->nacceptors > 0) && corio_now_ns() < end) {
        int r = corio__suspend(NULL, srv, "http server close", end);
        if (r < 0)
            ret = r;
    }
    if (srv->nconns > 0)
        cancel_conns(srv, true);
    while (srv->nconns > 0 || srv->nacceptors > 0)
        corio__suspend_uninterruptible(srv, "http server close (cancelled connections)");
    srv->closer = NULL;
    bufs_free_kept(srv);
    corio__free(srv);
    return ret;
}

/* ------------------------------------------------------------------ */
/* SIGINT / SIGTERM                                                     */
/* ------------------------------------------------------------------ */

static int sig_pipe[2] = {-1, -1};
/* Signals are the process's: one caller at a time, whatever its thread
 * (a second loop's call is -EBUSY, not a second handler on the same pipe). */
static atomic_bool sig_serving;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(sig_pipe[1], &b, 1);
    (void)r;
    errno = saved;
}

int corio_http_serve_until_signal(corio_http_server *srv)
{
    (void)srv;
    int r = corio__check();
    if (r < 0)
        return r;
    if (atomic_exchange(&sig_serving, true))
        return -EBUSY;
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        r = -errno;
        sig_pipe[0] = sig_pipe[1] = -1;
        atomic_store(&sig_serving, false);
        return r;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int result = 0;
    while (result == 0) {
        corio__op op;
        memset(&op, 0, sizeof op);
        op.kind = CORIO__OP_POLL;
        op.fd = sig_pipe[0];
        op.flags = POLLIN;
        op.off = -1;
        r = corio__op_run(&op);
        if (r < 0 && r != -EINTR && r != -EAGAIN) {
            result = r;
            break;
        }
        unsigned char b;
        if (read(sig_pipe[0], &b, 1) == 1)
            result = b;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    corio__close_fd(corio__loop(), sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    atomic_store(&sig_serving, false);
    return result;
}

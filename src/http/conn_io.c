/*
 * A connection's bytes (src/http/server_internal.h has the map): input
 * through the socket input (src/io/sockin.c), output through one growable
 * buffer sent whole when the connection is about to wait, or straight from
 * the caller's memory for large bodies.
 *
 * Input.  On io_uring with multishot support each connection keeps one
 * multishot recv in the kernel for most of its life: bytes land in buffers
 * from the loop's provided-buffer ring, and the completion copies them
 * straight into the memory of the task waiting here, or into the socket
 * input's unread buffer when the task is busy in a handler, and gives the
 * ring buffer back at once.  That saves a submission and a poll arming per
 * request.  Flow control: the multishot may receive only the room left
 * below PAUSE_AT unread, so at most PAUSE_AT + 16 KiB (one ring buffer)
 * is held whatever the client sends (src/io/sockin.h).
 * Elsewhere (epoll, older kernels) every wait is one plain recv.
 *
 * Timeouts are deadlines pushed around single waits: the head deadline is
 * fixed by the caller at the first byte of a request (a trickling client
 * gains nothing by sending), the others are per wait (progress timeouts).
 *
 * HTTPS.  A TLS connection puts its engine (src/io/tls.h) between the
 * request loop and the socket: the engine's transport receive is the
 * socket input above (sock_recv), its transport send the send path below
 * (sock_send_all), and corio__http_recv / corio__http_send_all carry
 * plaintext through it, so the parser, the bodies, pipelining and the
 * output batching work unchanged.  The engine hands over one record at a
 * time; the records are staged (tout) and sent together whenever the
 * stage is full, a call into the engine returns, or the engine is about to
 * wait for input: the server's whole handshake flight leaves in one send,
 * and a file body goes out four full records (some 64 KiB) per send (one
 * operation and, on io_uring, one suspension instead of four).  The stage
 * starts small (4 KiB) and grows to four records at the first full one,
 * so that the many connections that never send much (an HTTPS client
 * asking for small things) do not each hold 64 KiB while they are busy.
 * The timeouts pushed around a receive or a send bound the engine's waits
 * too.  Input the engine holds (plaintext decrypted but not asked for
 * yet, or ciphertext not yet decrypted: corio__tls_has_input) is checked
 * by corio__http_input_buffered before a connection parks, so a pipelined
 * request never stalls.  The first bytes of a connection are looked at
 * before the engine sees them: a TLS client always starts with a
 * handshake record (0x16), so anything else ends the handshake at once,
 * without a TLS alert in clear, and a plain HTTP request gets nginx's
 * plain-text 400.
 */
#include "server_internal.h"

#include <stdio.h>

#define TLS_HANDSHAKE_RECORD 0x16     /* the content type every TLS client's first record has */
#define TLS_RECORD_MAX (16384 + 256)  /* a full record: plaintext and the most TLS adds */
#define TOUT_CAP (4 * TLS_RECORD_MAX) /* records staged before they are sent (bulk) */
#define TOUT_SMALL 4096 /* the stage until a full record comes: a handshake flight, small answers */

/* Receive up to n bytes of what the socket brings (ciphertext on HTTPS),
 * under the caller's deadline.  Returns bytes, 0 at EOF or -errno. */
static ssize_t sock_recv(conn *c, void *buf, size_t n)
{
    corio__sockin *in = &c->in;
    for (;;) {
        if (corio__sockin_unread(in))
            return (ssize_t)corio__sockin_take(in, buf, n);
        if (in->err || in->eof)
            return in->err;
        if (!corio__sockin_wants_multi(in, buf, n)) {
            in->fallback = false;
            return corio__sockin_recv(in, buf, n);
        }
        ssize_t r = corio__sockin_wait(in, buf, n);
        if (r != 0)
            return r;
    }
}

/* Plaintext from the TLS engine.  A client that closes without
 * close_notify is an EOF here: most HTTP clients do so, and a message it
 * cut short is told by HTTP's own framing (Content-Length, chunks). */
static ssize_t tls_recv(conn *c, void *buf, size_t n)
{
    ssize_t r = corio__tls_read(c->tls, buf, n);
    return r == -CORIO_ETLSTRUNC ? 0 : r;
}

ssize_t corio__http_recv(conn *c, void *buf, size_t n, uint64_t timeout_ms)
{
    if (c->tls) {
        if (corio__tls_pending(c->tls))
            return tls_recv(c, buf, n); /* no wait: no deadline to set up */
    } else if (corio__sockin_unread(&c->in)) {
        return (ssize_t)corio__sockin_take(&c->in, buf, n);
    }
    corio_deadline d = timeout_ms ? corio_deadline_push(timeout_ms) : (corio_deadline){0};
    ssize_t r = c->tls ? tls_recv(c, buf, n) : sock_recv(c, buf, n);
    if (timeout_ms)
        corio_deadline_pop(d);
    return r;
}

bool corio__http_input_buffered(const conn *c)
{
    return corio__sockin_unread(&c->in) || (c->tls && corio__tls_has_input(c->tls));
}

/* Send every byte of iov[0..cnt) to the socket (the array is consumed). */
static int sock_send_all(conn *c, struct iovec *iov, int cnt)
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
        op.fd = c->in.fd;
        op.off = -1;
        op.flags = MSG_NOSIGNAL | (c->send_more ? MSG_MORE : 0);
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

/* Send the staged records. */
static int tout_flush(conn *c)
{
    if (!c->toutlen)
        return c->werr;
    struct iovec iov = {c->tout, c->toutlen};
    c->toutlen = 0;
    return sock_send_all(c, &iov, 1);
}

/* A call into the engine returned r: keep the first error, send what it
 * staged. */
static int tls_done(conn *c, int r)
{
    if (r < 0 && !c->werr)
        c->werr = r;
    int f = tout_flush(c);
    return r < 0 ? r : f;
}

int corio__http_send_all(conn *c, struct iovec *iov, int cnt)
{
    if (!c->tls)
        return sock_send_all(c, iov, cnt);
    if (c->werr)
        return c->werr;
    int r = 0;
    for (int i = 0; i < cnt && r == 0; i++)
        if (iov[i].iov_len)
            r = corio__tls_write(c->tls, iov[i].iov_base, iov[i].iov_len);
    return tls_done(c, r);
}

void corio__http_tls_close(conn *c) { (void)tls_done(c, corio__tls_shutdown(c->tls)); }

/* -- the TLS engine's transport -- */

static ssize_t tls_transport_recv(void *owner, void *buf, size_t n)
{
    conn *c = owner;
    if (c->toutlen) {
        /* what the engine said so far must be out before it waits for the answer */
        int f = tout_flush(c);
        if (f < 0)
            return f;
    }
    ssize_t r = sock_recv(c, buf, n);
    if (r > 0 && !c->tls_seen) {
        c->tls_seen = true;
        unsigned char b = *(unsigned char *)buf;
        if (b != TLS_HANDSHAKE_RECORD) {
            /* not TLS: stop before OpenSSL answers with an alert in clear */
            c->plain_http = b >= 'A' && b <= 'Z'; /* a method: GET, POST, ... */
            return -EPROTO;
        }
    }
    return r;
}

/* Make the stage hold n more bytes (flushing it first if it must).
 * False: send directly (too big, or no memory). */
static bool tout_room(conn *c, size_t n, int *err)
{
    if (c->toutlen + n <= c->toutcap)
        return true;
    if ((*err = tout_flush(c)) < 0)
        return false;
    if (n <= c->toutcap)
        return true;
    size_t cap = n <= TOUT_SMALL ? TOUT_SMALL : TOUT_CAP;
    if (n > cap)
        return false;
    char *p = corio__malloc(cap); /* empty now: nothing to copy */
    if (!p)
        return false;
    corio__free(c->tout);
    c->tout = p;
    c->toutcap = cap;
    return true;
}

static int tls_transport_send(void *owner, const void *buf, size_t n)
{
    conn *c = owner;
    int err = 0;
    if (c->werr)
        return c->werr;
    if (!tout_room(c, n, &err)) {
        if (err < 0)
            return err;
        struct iovec iov = {(void *)(uintptr_t)buf, n}; /* too big to stage, or no memory: send it now */
        return sock_send_all(c, &iov, 1);
    }
    memcpy(c->tout + c->toutlen, buf, n);
    c->toutlen += n;
    return 0;
}

static const corio__tls_transport tls_transport = {.recv = tls_transport_recv, .send = tls_transport_send};

int corio__http_tls_new(conn *c) { return corio__tls_new(c->srv->cfg.tls, NULL, &tls_transport, c, &c->tls); }

int corio__http_tls_handshake(conn *c)
{
    corio_deadline d = corio_deadline_push(c->srv->cfg.head_timeout_ms);
    int r = corio__tls_handshake(c->tls);
    if (r == 0)
        r = tout_flush(c); /* the last of the handshake (session tickets) */
    corio_deadline_pop(d);
    if (r == 0) {
        c->tls_up = true;
        return 0;
    }
    c->toutlen = 0;
    corio__tls_free(c->tls);
    c->tls = NULL;
    if (c->plain_http && !c->werr && !corio_cancelled()) {
        static const char body[] = "400 Bad Request\nThe plain HTTP request was sent to HTTPS port\n";
        char head[160];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          sizeof body - 1);
        if (corio__http_ob_reserve(c, (size_t)hl + sizeof body)) {
            corio__http_ob_put(c, head, (size_t)hl);
            corio__http_ob_put(c, body, sizeof body - 1);
            c->linger = true; /* let the client read it before the close */
        }
    }
    return r;
}

int corio__http_flush(conn *c)
{
    if (c->olen == 0)
        return c->tls ? tls_done(c, 0) : c->werr;
    struct iovec iov = {c->obuf, c->olen};
    int r = corio__http_send_all(c, &iov, 1);
    c->olen = 0;
    return r;
}

bool corio__http_ob_reserve(conn *c, size_t n)
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

void corio__http_ob_putu(conn *c, uint64_t v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    corio__http_ob_put(c, tmp + i, sizeof tmp - (size_t)i);
}

void corio__http_ob_puthex(conn *c, uint64_t v)
{
    char tmp[20];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    corio__http_ob_put(c, tmp + i, sizeof tmp - (size_t)i);
}

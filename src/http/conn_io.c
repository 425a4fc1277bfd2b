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
 */
#include "server_internal.h"

ssize_t corio__http_recv(conn *c, void *buf, size_t n, uint64_t timeout_ms)
{
    corio__sockin *in = &c->in;
    if (corio__sockin_unread(in))
        return (ssize_t)corio__sockin_take(in, buf, n); /* no wait: no deadline to set up */
    corio_deadline d = timeout_ms ? corio_deadline_push(timeout_ms) : (corio_deadline){0};
    ssize_t r;
    for (;;) {
        if (corio__sockin_unread(in)) {
            r = (ssize_t)corio__sockin_take(in, buf, n);
            break;
        }
        if (in->err || in->eof) {
            r = in->err;
            break;
        }
        if (!corio__sockin_wants_multi(in, buf, n)) {
            in->fallback = false;
            r = corio__sockin_recv(in, buf, n);
            break;
        }
        r = corio__sockin_wait(in, buf, n);
        if (r != 0)
            break;
    }
    if (timeout_ms)
        corio_deadline_pop(d);
    return r;
}

int corio__http_send_all(conn *c, struct iovec *iov, int cnt)
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

int corio__http_flush(conn *c)
{
    if (c->olen == 0)
        return c->werr;
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

/*
 * The request body (src/http/server_internal.h has the map): Content-Length
 * and chunked bodies handed to the handler in pieces or whole, "100
 * Continue" sent when the handler first asks for a body the client is
 * waiting to send, and what the handler left unread dropped afterwards
 * (within max_drain) so the connection can carry on.
 *
 * Buffer layout while a handler runs: the head stays where it was parsed
 * (rbuf[rpos, rpos + head_len)), body bytes are consumed from body_pos on;
 * when more body bytes are needed the unconsumed ones are moved down to
 * just after the head, so the handler's strings stay valid and there is
 * always room to receive into.  A Content-Length body with nothing buffered
 * is received straight into the caller's memory, never past its end (the
 * next request stays in the socket).
 */
#include "server_internal.h"

void corio__http_settle_keep_alive(conn *c)
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
    if (c->olen && corio__http_flush(c) < 0)
        return c->werr;
    if (c->rend == c->rcap)
        body_compact(c);
    ssize_t r = corio__http_recv(c, c->rbuf + c->rend, c->rcap - c->rend, c->srv->cfg.body_timeout_ms);
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
    if (!corio__http_ob_reserve(c, 32))
        return -ENOMEM;
    corio__http_ob_puts(c, "HTTP/1.1 100 Continue\r\n\r\n");
    return corio__http_flush(c);
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
            if (c->olen && corio__http_flush(c) < 0)
                return c->body_err = c->werr;
            ssize_t r = corio__http_recv(c, buf, k, c->srv->cfg.body_timeout_ms);
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
            ssize_t u =
                corio_http_chunked_decode(&c->ch, c->rbuf + c->body_pos, c->rend - c->body_pos, &d, &dl);
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

ssize_t corio_http_request_read(corio_http_request *req, void *buf, size_t n)
{
    if (!req || (!buf && n))
        return -EINVAL;
    return body_read(req_conn(req), buf, n);
}

int corio_http_request_read_body(corio_http_request *req, size_t cap, const char **ptr, size_t *len)
{
    if (!req || !ptr || !len)
        return -EINVAL;
    if (cap > SIZE_MAX - 2) /* cap + 1 (room for the NUL) must not wrap to 0 */
        cap = SIZE_MAX - 2;
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

bool corio__http_drain_body(conn *c)
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

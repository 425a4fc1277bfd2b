/*
 * TLS streams: corio_stream_start_tls, corio_stream_connect_tls and the
 * corio_stream_tls_* queries, and the engine's transport over a stream.
 *
 * A TLS stream is an ordinary corio_stream whose read side gets its bytes
 * from the engine (plaintext, decrypted straight into the caller's memory
 * or the stream's read buffer) and whose writes go through the engine
 * (src/io/stream.c branches on one pointer for both).  The engine moves
 * ciphertext through the transport here:
 *  - recv: a second socket input (src/io/sockin.c) on the same fd, so the
 *    ciphertext side keeps the multishot recv on io_uring (or one plain
 *    recv on epoll, into the engine's buffer directly);
 *  - send: the stream's own plain write (a non-blocking send from
 *    OpenSSL's buffer, the rest queued for the background flusher), so
 *    drain, linger on close and write errors work as for any stream, and
 *    drain means the ciphertext reached the kernel.
 * Closing queues close_notify before the FIN (write_eof, aclose, and close
 * in the background as it flushes).
 */
#include "tls.h"
#include "sys.h"
#include "tls_stream.h"
#include "tls_ctx.h"
#include "sockin.h"

#include <stdio.h>
#include <string.h>

#define GONE (-EBADF) /* as in stream.c: the stream was closed meanwhile */

struct corio__tls_stream {
    corio_stream *s;
    corio__tls *t;
    corio__sockin cin; /* ciphertext in */
};

/* The reason of the calling thread's last failed corio_stream_connect_tls
 * (its stream is gone): corio_stream_tls_error(NULL). */
static __thread char last_connect_error[200];

/* ------------------------------------------------------------------ */
/* The transport                                                       */
/* ------------------------------------------------------------------ */

static ssize_t ts_recv(void *owner, void *buf, size_t n)
{
    corio__tls_stream *x = owner;
    corio__sockin *in = &x->cin;
    for (;;) {
        if (CORIO__UNLIKELY(corio__stream_closing(x->s)))
            return GONE;
        if (in->start != in->end)
            return (ssize_t)corio__sockin_take(in, buf, n);
        if (in->err)
            return in->err;
        if (in->eof)
            return 0;
        ssize_t r;
        if (corio__sockin_wants_multi(in, buf, n)) {
            r = corio__sockin_wait(in, buf, n);
            if (r == 0)
                continue; /* look at the unread buffer, eof and err again */
        } else {
            in->fallback = false;
            r = corio__sockin_recv(in, buf, n);
        }
        if (CORIO__UNLIKELY(corio__stream_closing(x->s)))
            return GONE;
        return r;
    }
}

static int ts_send(void *owner, const void *buf, size_t n)
{
    corio__tls_stream *x = owner;
    return corio__stream_raw_write(x->s, buf, n);
}

static const corio__tls_transport stream_transport = {.recv = ts_recv, .send = ts_send};

/* A completion of the ciphertext multishot: a closing stream may go once
 * the last one is in. */
static bool cin_event(corio__sockin *in)
{
    corio__tls_stream *x = CORIO__CONTAINER_OF(in, corio__tls_stream, cin);
    if (corio__stream_closing(x->s) && in->bg == CORIO__SOCKIN_OFF) {
        corio__stream_maybe_finalize(x->s);
        return true;
    }
    return false;
}

static const corio__sockin_ops cin_ops = {.event = cin_event};

/* The peer's first ciphertext, read before the switch (STARTTLS). */
static int take_early(corio__tls_stream *x, const char *p, size_t n)
{
    return corio__sockin_append(&x->cin, p, n);
}

/* ------------------------------------------------------------------ */
/* Hooks for stream.c                                                  */
/* ------------------------------------------------------------------ */

ssize_t corio__tls_stream_read(corio__tls_stream *x, void *buf, size_t n)
{
    return corio__tls_read(x->t, buf, n);
}

int corio__tls_stream_write(corio__tls_stream *x, const void *buf, size_t n)
{
    return corio__tls_write(x->t, buf, n);
}

int corio__tls_stream_shutdown(corio__tls_stream *x) { return corio__tls_shutdown(x->t); }

void corio__tls_stream_stop(corio__tls_stream *x)
{
    if (x->cin.plain)
        corio__op_cancel(x->cin.loop, x->cin.plain);
    (void)corio__sockin_wake_reader(&x->cin, GONE);
    x->cin.discard = true;
    corio__sockin_stop(&x->cin);
}

bool corio__tls_stream_busy(const corio__tls_stream *x)
{
    return x->cin.plain || x->cin.bg != CORIO__SOCKIN_OFF;
}

void corio__tls_stream_free(corio__tls_stream *x)
{
    if (!x)
        return;
    corio__tls_free(x->t);
    corio__sockin_free_buf(&x->cin);
    corio__free(x);
}

int corio__tls_server_hold(corio_tls *tls)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (tls && corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!tls)
        return 0;
    if (!corio__tls_is_server(tls))
        return -EINVAL;
    corio__tls_ref(tls);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public calls                                                        */
/* ------------------------------------------------------------------ */

int corio_stream_start_tls(corio_stream *s, corio_tls *tls, const char *server_name)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating())
        return -EOPNOTSUPP;
    if (!s || !tls)
        return -EINVAL;
    if (corio__stream_tls(s))
        return -EINVAL;
    corio_loop *l = corio__loop();
    if (!l)
        return -EPERM;
    int r = corio__check();
    if (r)
        return r;
    corio__tls_stream *x = corio__calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->s = s;
    corio__sockin_init(&x->cin, l, corio_stream_fd(s), &cin_ops);
    r = corio__tls_new(tls, server_name, &stream_transport, x, &x->t);
    if (r == 0)
        r = corio__stream_attach_tls(s, x, take_early);
    if (r) {
        /* not attached: s is untouched (or, after -EBADF, already gone) */
        corio__tls_stream_free(x);
        return r;
    }
    corio__stream_set_rbusy(s, true);
    r = corio__tls_handshake(x->t);
    corio__stream_set_rbusy(s, false);
    if (CORIO__UNLIKELY(corio__stream_closing(s))) {
        corio__stream_maybe_finalize(s);
        return GONE;
    }
    return r;
}

int corio_stream_connect_tls(const char *host, uint16_t port, corio_tls *tls, corio_stream **out)
{
    /* not simulated: a sim run never reaches the real machine (corio/sim.h) */
    if (corio__sys_simulating()) {
        if (out)
            *out = NULL;
        return -EOPNOTSUPP;
    }
    if (!out)
        return -EINVAL;
    *out = NULL;
    last_connect_error[0] = 0;
    if (!host || !*host || !tls)
        return -EINVAL;
    if (corio__tls_is_server(tls))
        return -EINVAL;
    corio_stream *s;
    int r = corio_stream_connect(host, port, &s);
    if (r)
        return r;
    r = corio_stream_start_tls(s, tls, host);
    if (r) {
        if (r != GONE) {
            snprintf(last_connect_error, sizeof last_connect_error, "%s", corio_stream_tls_error(s));
            corio_stream_close(s);
        }
        return r;
    }
    *out = s;
    return 0;
}

static corio__tls *engine(const corio_stream *s)
{
    corio__tls_stream *x = s ? corio__stream_tls(s) : NULL;
    return x ? x->t : NULL;
}

const char *corio_stream_tls_error(const corio_stream *s)
{
    if (!s)
        return last_connect_error;
    corio__tls *t = engine(s);
    return t ? corio__tls_error(t) : "";
}

const char *corio_stream_tls_alpn(const corio_stream *s) { return corio__tls_alpn(engine(s)); }

const char *corio_stream_tls_version(const corio_stream *s) { return corio__tls_version(engine(s)); }

bool corio_stream_tls_resumed(const corio_stream *s) { return corio__tls_resumed(engine(s)); }

const char *corio_stream_tls_server_name(const corio_stream *s)
{
    corio__tls *t = engine(s);
    return t ? corio__tls_server_name(t) : NULL;
}

bool corio_stream_tls_offloaded(const corio_stream *s) { return corio__tls_offloaded(engine(s)); }

/*
 * A connection's life (src/http/server_internal.h has the map and the
 * states): its task reads requests, parses every request already buffered
 * and runs the handler for each in turn, flushes the batch's answers when
 * it is about to wait, and ends after an error, a close or a time-out.
 *
 * Connections come from the accept tasks or from corio_http_server_serve_fd
 * (a server made by corio_http_server_new has no accept task at all); both
 * go through corio__http_conn_start and are the same from then on.
 *
 * Idle keep-alive connections hold no task and no buffer: once a batch is
 * flushed and nothing is buffered, the task gives the buffers back (to a
 * small per-server cache, so a busy server does not allocate per request),
 * arms a keep-alive timer and returns (PARKED).  What waits in its place is
 * the socket input: the multishot recv (its first bytes go into a fresh
 * read buffer and spawn a new task), or on epoll a POLLIN op (its
 * completion spawns a task whose first wait is a recv).  The timer, a
 * server close or an eviction stops that op and its last completion closes
 * the connection.  About 700 bytes per idle connection, plus the kernel's
 * socket.
 *
 * HTTPS connections (srv->cfg.tls) run the TLS handshake first in their
 * task, as a wait for the head (a server close cancels it, the head
 * time-out bounds it); from then on their bytes go through the TLS engine
 * (conn_io.c) and everything here is the same, except that a connection
 * parks only when the engine holds no plaintext either, and parking tells
 * the engine to give OpenSSL's buffers back, so that an idle TLS
 * connection costs its SSL state and no buffers.  The bytes that wake a
 * parked TLS connection are ciphertext: they wait in the socket input's
 * unread buffer for the engine rather than going to the read buffer.  Parked connections are also on the
 * server's idle list, least recently parked first (O(1) per park and unpark), so that when accept runs out of
 * file descriptors the server can close the longest-idle ones to make room (corio__http_idle_evict), as nginx
 * does with its reusable connections: otherwise idle clients would hold every fd until their keep-alive
 * time-out while new clients wait.
 */
#include "server_internal.h"
#include "../io/sys.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define BODY_MIN_ROOM 4096 /* at least this much room after a head when its handler starts */
#define LINGER_MS 1000     /* after an error answer: how long unread input is drained */
#define PAUSE_AT                                                                                             \
    16384               /* unread bytes held before the multishot recv stops (+ at most                      \
                         * one 16 KiB ring buffer): like the kernel socket buffer it                         \
                         * stands in for, bounded per connection whatever the client sends */
#define OBUF_KEEP 65536 /* output buffers larger than this are not kept */

static void *conn_main(void *arg);
static void conn_exit(conn *c);
static size_t input_claim(corio__sockin *in, const char *p, size_t n);
static bool input_event(corio__sockin *in);
static const corio__sockin_ops conn_input = {.claim = input_claim, .event = input_event};

/* ------------------------------------------------------------------ */
/* Serving requests                                                     */
/* ------------------------------------------------------------------ */

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
        corio_http_request_parse(&c->req, c->rbuf, c->rend, &srv->cfg.limits);
        c->body_pos = head_len;
    }
    c->keep_alive = c->req.keep_alive && !srv->closing;
    c->is_head = c->req.method.len == 4 && memcmp(c->req.method.ptr, "HEAD", 4) == 0;

    srv->handler(&c->req, &c->resp, srv->arg);

    corio__free(c->body_mem);
    c->body_mem = NULL;
    if (c->rstate == R_NONE) {
        if (c->body_err == -EFBIG)
            corio__http_respond_error(c, 413);
        else if (c->body_err == -EBADMSG)
            corio__http_respond_error(c, 400);
        else if (c->body_err == -CORIO_EDEADLINE)
            corio__http_respond_error(c, 408);
        else if (c->body_err)
            c->keep_alive = false; /* the client is gone or broken: nothing to answer */
        else {
            corio__http_settle_keep_alive(c);
            corio_http_response_send(&c->resp, 500, "text/plain", "500 Internal Server Error\n", 26);
        }
    } else if (c->rstate == R_STREAM) {
        c->keep_alive = false;
    }
    if (c->keep_alive && !corio__http_drain_body(c))
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
    corio__sys_shutdown(c->in.fd, SHUT_WR);
    char scratch[4096];
    size_t total = 0;
    corio_deadline d = corio_deadline_push(LINGER_MS);
    while (total < 65536) {
        ssize_t r = corio__http_recv(c, scratch, sizeof scratch, 0);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
    corio_deadline_pop(d);
}

/* ------------------------------------------------------------------ */
/* Buffers                                                              */
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
        if (c->tout) {
            corio__free(b->tout); /* the handshake made its own */
        } else {
            c->tout = b->tout;
            c->toutcap = b->toutcap;
        }
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
        srv->bufs[srv->nbufs++] =
            (conn_bufs){c->rbuf, c->hdrs, c->obuf, c->ocap, c->xh, c->xhcap, c->tout, c->toutcap};
    } else {
        corio__free(c->rbuf);
        corio__free(c->hdrs);
        corio__free(c->obuf);
        corio__free(c->xh);
        corio__free(c->tout);
    }
    c->rbuf = c->obuf = c->xh = c->tout = NULL;
    c->hdrs = NULL;
    c->ocap = c->xhcap = c->toutcap = 0;
    c->rpos = c->rend = c->olen = c->toutlen = 0;
    corio__sockin_free_buf(&c->in);
}

void corio__http_bufs_free_kept(corio_http_server *srv)
{
    while (srv->nbufs) {
        conn_bufs *b = &srv->bufs[--srv->nbufs];
        corio__free(b->rbuf);
        corio__free(b->hdrs);
        corio__free(b->obuf);
        corio__free(b->xh);
        corio__free(b->tout);
    }
}

/* ------------------------------------------------------------------ */
/* Parking between requests                                             */
/* ------------------------------------------------------------------ */

static void park_timeout(corio__timer *t);

/* Give the task up (or, for a fresh connection, never take one) while the
 * connection waits for its next request: the buffers go and the socket
 * input stands in for the task, with a keep-alive timer; data arriving
 * spawns a task.  Called with nothing buffered either way; empty: the
 * caller's own receive just found the socket empty (corio__sockin_park_empty).
 * Returns true if parked (a task must return at once, without touching c),
 * false if data is already there or parking failed (the caller carries on
 * as if nothing happened). */
static bool park_input(conn *c, bool empty)
{
    corio_http_server *srv = c->srv;
    corio_loop *l = srv->loop;
    corio__timer_init(&c->ka_timer, park_timeout);
    if (corio__timer_arm(l, &c->ka_timer,
                         corio_now_ns() + (uint64_t)srv->cfg.keepalive_timeout_ms * 1000000u) < 0)
        return false;
    if (!(empty ? corio__sockin_park_empty(&c->in) : corio__sockin_park(&c->in))) {
        corio__timer_disarm(l, &c->ka_timer);
        return false;
    }
    conn_set_state(c, CONN_PARKED);
    corio__list_push_back(&srv->idle, &c->idle_link);
    srv->nidle++;
    c->task = NULL;
    bufs_put(c);
    if (c->tls)
        corio__tls_idle(c->tls);
    return true;
}

static bool park(conn *c)
{
    if (corio_cancelled())
        return false;
    return park_input(c, false);
}

/* c leaves the PARKED state: off the idle list, no keep-alive timer. */
static void unpark_common(conn *c, conn_state to)
{
    corio_http_server *srv = c->srv;
    corio__timer_disarm(srv->loop, &c->ka_timer);
    corio__list_remove(&c->idle_link);
    srv->nidle--;
    conn_set_state(c, to);
}

/* End a parked connection's wait early (timeout, server close, eviction);
 * the socket input's last completion then closes it. */
static void park_end(conn *c)
{
    if (c->state != CONN_PARKED)
        return;
    unpark_common(c, CONN_PARK_ENDING);
    c->in.discard = true;
    corio__sockin_stop(&c->in);
}

static void park_timeout(corio__timer *t)
{
    conn *c = CORIO__CONTAINER_OF(t, conn, ka_timer);
    park_end(c);
}

/* Input arrived for a parked connection: a task takes it up again (loop
 * context). */
static void unpark(conn *c)
{
    corio_http_server *srv = c->srv;
    unpark_common(c, CONN_READING);
    if (CONN_STOPS(srv, c)) {
        conn_set_state(c, CONN_CLOSING);
        conn_exit(c);
        return;
    }
    c->task = corio__spawn(srv->loop, "http-conn", srv->cfg.stack_size, conn_main, c);
    if (!c->task) {
        conn_set_state(c, CONN_CLOSING);
        conn_exit(c);
        return;
    }
    corio_task_detach(c->task);
}

/* The first bytes for a parked connection go into a fresh read buffer
 * (loop context). */
static size_t input_claim(corio__sockin *in, const char *p, size_t n)
{
    conn *c = CORIO__CONTAINER_OF(in, conn, in);
    if (c->state != CONN_PARKED || c->rbuf || c->tls)
        return 0; /* TLS: ciphertext, for the engine: it waits in the unread buffer */
    if (!bufs_get(c)) {
        if (!in->err)
            in->err = -ENOMEM;
        return n;
    }
    size_t k = n < c->rcap ? n : c->rcap;
    memcpy(c->rbuf, p, k);
    c->rend = k;
    return k;
}

/* After every completion of the socket input's background op (loop
 * context): a connection without a task decides here what happens; one
 * with a task lets the input wake it. */
static bool input_event(corio__sockin *in)
{
    conn *c = CORIO__CONTAINER_OF(in, conn, in);
    switch (c->state) {
    case CONN_PARK_ENDING:
    case CONN_EXITING:
        if (in->bg == CORIO__SOCKIN_OFF)
            conn_exit(c);
        return true;
    case CONN_PARKED:
        if (c->rbuf || in->ready || corio__sockin_unread(in)) {
            unpark(c);
        } else if (in->eof || in->err || (in->bg == CORIO__SOCKIN_OFF && !corio__sockin_park(in))) {
            /* closed, broken, or stopped (flow control, a dry ring) and
             * not to be started again */
            conn_exit(c);
        }
        return true;
    default:
        return false;
    }
}

unsigned corio__http_idle_evict(corio_http_server *srv, unsigned n)
{
    unsigned done = 0;
    while (done < n && !corio__list_empty(&srv->idle)) {
        park_end(CORIO__CONTAINER_OF(srv->idle.next, conn, idle_link));
        done++;
    }
    return done;
}

/* ------------------------------------------------------------------ */
/* A connection's task, start and end                                   */
/* ------------------------------------------------------------------ */

/* The connection is over (from its task in CLOSING, or from a completion
 * while it has none).  With the socket input still busy in the kernel the
 * struct must stay until its last completion, which calls this again. */
static void conn_exit(conn *c)
{
    corio_http_server *srv = c->srv;
    c->task = NULL;
    if (c->state != CONN_EXITING) {
        if (c->state == CONN_PARKED)
            unpark_common(c, CONN_EXITING);
        else
            conn_set_state(c, CONN_EXITING);
        corio__list_remove(&c->link); /* no longer one to cancel; still counted */
        c->in.discard = true;
    }
    if (c->in.bg != CORIO__SOCKIN_OFF) {
        corio__sockin_stop(&c->in);
        return;
    }
    srv->nconns--;
    corio__http_conns_publish(srv);
    corio__tls_free(c->tls); /* no close_notify without a task: as a TCP close to the client */
    c->tls = NULL;
    corio__close_fd(srv->loop, c->in.fd);
    bufs_put(c);
    corio__free(c->body_mem);
    if (srv->closer_conn == c)
        srv->closer_conn = NULL;
    corio__free(c);
    if (srv->accept_waiter)
        corio__wake(srv->accept_waiter, 0);
    if (srv->closer)
        corio__wake(srv->closer, 0);
    else if (srv->orphaned && srv->nconns == 0 && srv->nacceptors == 0)
        corio__http_server_free(srv); /* closed by one of its handlers, which is done now */
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    corio_http_server *srv = c->srv;
    const corio_http_limits *lim = &srv->cfg.limits;
    bool parsing = false;
    uint64_t head_deadline = 0;
    bool peer_gone = false; /* the client closed or broke the connection: nothing more to send */
    bool fresh_tls = c->tls && !c->tls_up;
    bool woken = !c->rbuf && !fresh_tls; /* woken by the poll: its first wait is a recv, data is there */
    if (fresh_tls) {
        /* the buffers come after the handshake: a client that never
         * finishes one costs no read buffer */
        if (corio_cancelled())
            goto end;                      /* the close's grace ended before this task first ran */
        conn_set_state(c, CONN_WAIT_HEAD); /* a server close cancels a handshake too */
        int hr = corio__http_tls_handshake(c);
        conn_set_state(c, CONN_READING);
        if (hr < 0)
            goto end;
    }
    if (!c->rbuf && !bufs_get(c)) {
        conn_set_state(c, CONN_CLOSING);
        conn_exit(c);
        return NULL;
    }
    for (;;) {
        if (c->rend > c->rpos) {
            if (!parsing) {
                parsing = true;
                head_deadline = corio_now_ns() + (uint64_t)srv->cfg.head_timeout_ms * 1000000u;
                corio_http_request_init(&c->req, c->hdrs, srv->cfg.limits.max_headers);
            }
            ssize_t h = corio_http_request_parse(&c->req, c->rbuf + c->rpos, c->rend - c->rpos, lim);
            if (h < 0) {
                corio__http_respond_error(c, (int)-h);
                break;
            }
            if (h > 0) {
                parsing = false;
                c->served = true;
                conn_set_state(c, CONN_HANDLING);
                bool go_on = serve_one(c, (size_t)h);
                conn_set_state(c, CONN_READING);
                if (!go_on)
                    break;
                continue;
            }
        }
        if (CONN_STOPS(srv, c) || corio_cancelled())
            break;
        if (corio__http_out_pending(c)) {
            conn_set_state(c, CONN_FLUSHING);
            int fr = corio__http_flush(c);
            conn_set_state(c, CONN_READING);
            if (fr < 0)
                break;
        }
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
            c->rend -= c->rpos;
            c->rpos = 0;
        }
        if (!parsing && c->rend == 0 && !woken && !corio__http_input_buffered(c) && park(c))
            return NULL; /* the connection lives on without this task */
        uint64_t timeout_ms;
        if (parsing) {
            uint64_t now = corio_now_ns();
            if (now >= head_deadline) {
                corio__http_respond_error(c, 408);
                break;
            }
            timeout_ms = (head_deadline - now + 999999) / 1000000;
        } else {
            timeout_ms = srv->cfg.keepalive_timeout_ms;
        }
        conn_set_state(c, CONN_WAIT_HEAD);
        ssize_t r = corio__http_recv(c, c->rbuf + c->rend, c->rcap - c->rend, timeout_ms);
        conn_set_state(c, CONN_READING);
        woken = false;
        if (CONN_STOPS(srv, c))
            break; /* a request that arrives on a reused connection as we close is not started: the
                      client may retry it (a fresh connection's first request is served) */
        if (r == -CORIO_EDEADLINE && parsing && !corio_deadline_expired()) {
            corio__http_respond_error(c, 408);
            break;
        }
        if (r <= 0) {
            peer_gone = r == 0 || (r != -ECANCELED && r != -CORIO_EDEADLINE);
            break;
        }
        c->rend += (size_t)r;
    }
end:
    conn_set_state(c, CONN_CLOSING);
    if (corio__http_out_pending(c) && !corio_cancelled())
        corio__http_flush(c);
    if (c->tls_up && !peer_gone && !c->werr && !corio_cancelled())
        corio__http_tls_close(c); /* close_notify: the end of our side is not a truncation */
    if (c->linger && !c->werr && !corio_cancelled())
        linger_close(c);
    conn_exit(c);
    return NULL;
}

/* A fresh plain connection's first step, before any task exists: most
 * clients send their request right behind the handshake, and one that has
 * not yet costs no task.  With the multishot (io_uring) the connection
 * parks at once and the request's bytes spawn its only task; else one
 * direct recv either finds the request (the task is spawned with it in the
 * read buffer, no poll(2) first) or finds nothing, and the connection parks
 * on a POLL that goes straight to epoll.  Returns 0 (parked), 1 (spawn the
 * task: bytes are buffered, or parking failed) or -1 (EOF or an error
 * before any request: close without a word). */
static int first_look(conn *c)
{
    if (!c->in.multi) {
        ssize_t r = corio__sockin_try(&c->in, c->rbuf, c->rcap);
        if (r > 0) {
            c->rend = (size_t)r;
            return 1;
        }
        if (r != -EAGAIN)
            return r == -EINTR ? 1 : -1;
    }
    return park_input(c, !c->in.multi) ? 0 : 1;
}

int corio__http_conn_start(corio_http_server *srv, int fd, bool accepted)
{
    conn *c = corio__calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->srv = srv;
    c->resp.c = c;
    c->rcap = srv->cfg.limits.max_head + BODY_SLACK;
    corio__sockin_init(&c->in, srv->loop, fd, &conn_input);
    c->in.pause_at = PAUSE_AT;
    c->in.multi = c->in.multi && corio__bufring_get(srv->loop) == 0;
    corio__list_init(&c->idle_link);
    if (srv->cfg.tls ? corio__http_tls_new(c) < 0 : !bufs_get(c))
        goto fail; /* a TLS connection gets its buffers after the handshake */
    if (!accepted) {
        /* corio's listeners carry it, and Linux copies it to what they accept */
        int one = 1;
        corio__sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                              sizeof one); /* fails harmlessly on non-TCP fds */
    }
    corio__list_push_back(&srv->conns, &c->link);
    srv->nconns++;
    corio__http_conns_publish(srv);
    if (!c->tls) {
        int w = first_look(c);
        if (w == 0)
            return 0; /* parked: the first bytes spawn its task */
        if (w < 0) {
            conn_set_state(c, CONN_CLOSING);
            conn_exit(c);
            return 0;
        }
    }
    c->task = corio_spawn_named("http-conn", srv->cfg.stack_size, conn_main, c);
    if (!c->task) {
        corio__list_remove(&c->link);
        srv->nconns--;
        corio__http_conns_publish(srv);
        goto fail;
    }
    corio_task_detach(c->task);
    return 0;
fail:
    bufs_put(c);
    corio__tls_free(c->tls);
    corio__free(c);
    return -ENOMEM;
}

int corio_http_server_serve_fd(corio_http_server *srv, int fd)
{
    if (!srv)
        return -EINVAL;
    if (!corio_current())
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
    return corio__http_conn_start(srv, fd, false);
}

void corio__http_conns_cancel(corio_http_server *srv, bool all)
{
    corio__list *n = srv->conns.next;
    while (n != &srv->conns) {
        conn *c = CORIO__CONTAINER_OF(n, conn, link);
        n = n->next; /* park_end keeps c on the list, but be safe */
        /* A fresh connection (no request yet) is spared by a close until
         * its grace ends: its client is sending the first request, or
         * about to, and would not retry it on a connection closed under
         * it; the kernel had already handed it to us (with listening
         * sockets handed to a successor process, nobody else would
         * answer it).  A loop ending without a close spares nobody. */
        bool spare = !all && srv->closing && !srv->fresh_cut && !c->served;
        if (c->state == CONN_PARKED) {
            if (!spare)
                park_end(c);
        } else if (c == srv->closer_conn)
            continue; /* the closer's own: it finishes after its handler returns */
        else if (c->task && (all || (c->state == CONN_WAIT_HEAD && !spare)))
            corio_task_cancel(c->task);
    }
}
